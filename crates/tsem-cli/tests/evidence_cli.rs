//! `tsem eventlog` and `tsem ima` end to end, on the real conformance data in the shared directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use tsem_testdata::conformance_dir as conformance;

fn tsem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(args: &[&str]) -> Value {
    let o = tsem(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A failure must be one line `tsem: error: ...` on stderr, exit status 1, and no panic.
fn one_line_error(args: &[&str]) -> String {
    let o = tsem(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: stderr {err}");
    assert!(err.starts_with("tsem: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tsem-evidence-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn eventlog_replay_json_reproduces_expected_pcrs() {
    let dir = conformance().join("eventlog/go-tpm-tools");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected_pcrs.json")).unwrap()).unwrap();
    for (file, want) in expected.as_object().unwrap() {
        let path = dir.join(file);
        let got = ok_json(&["eventlog", "replay", "--json", s(&path)]);
        assert!(got["events"].as_u64().unwrap() > 10);
        assert!(got["format"].as_str().unwrap().starts_with("tcg-"));
        assert_eq!(
            got["digest_mismatches"].as_array().unwrap().len(),
            0,
            "{file}"
        );
        for (bank, pcrs) in want["expected_pcrs"].as_object().unwrap() {
            assert_eq!(
                got["aggregate"][bank].as_str().unwrap().len(),
                pcrs["0"].as_str().unwrap().len()
            );
            for (pcr, hex) in pcrs.as_object().unwrap() {
                assert_eq!(got["pcrs"][bank][pcr], *hex, "{file} {bank} {pcr}");
            }
        }
        // --bank keeps one bank.
        let bank = want["expected_pcrs"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap();
        let one = ok_json(&["eventlog", "replay", "--json", "--bank", bank, s(&path)]);
        assert_eq!(one["pcrs"].as_object().unwrap().len(), 1);
        assert_eq!(one["aggregate"].as_object().unwrap().len(), 1);
    }
    let e = one_line_error(&[
        "eventlog",
        "replay",
        "--bank",
        "sha512",
        s(&dir.join("debian-10.bin")),
    ]);
    assert!(e.contains("no sha512 bank"), "{e}");
}

#[test]
fn eventlog_show_lists_decoded_events() {
    let path = conformance().join("eventlog/go-tpm-tools/ubuntu-2404-amd-sevsnp.bin");
    let o = tsem(&["eventlog", "show", s(&path)]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for needle in [
        "EV_SEPARATOR",
        "SecureBoot",
        "shimx64.efi",
        "EV_EFI_GPT_EVENT",
        "grub_cmd",
        "sha384:",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    let sp = conformance().join("eventlog/go-tpm-tools/eventlogwithsp800155.bin");
    let text = String::from_utf8(tsem(&["eventlog", "show", s(&sp)]).stdout).unwrap();
    assert!(
        text.contains("SP800-155 platform id: vendor 11129"),
        "{text}"
    );
    let gdc = conformance().join("eventlog/go-tpm-tools/gdc-host.bin");
    let text = String::from_utf8(tsem(&["eventlog", "show", s(&gdc)]).stdout).unwrap();
    assert!(text.contains("StartupLocality 3"));
}

#[test]
fn ima_replay_json_reproduces_pcr10_in_four_banks() {
    let dir = conformance().join("ima/ibmtss");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected_pcr10.json")).unwrap()).unwrap();
    for f in ["sha1.log", "sha256.log", "sha384.log", "sha512.log"] {
        let path = dir.join(f);
        let args = [
            "ima", "replay", "--json", "--bank", "sha1", "--bank", "sha256", "--bank", "sha384",
        ];
        let got = ok_json(&[&args[..], &["--bank", "sha512", s(&path)]].concat());
        assert_eq!(got["entries"], 362);
        assert_eq!(got["template_hash_mismatches"], 0);
        assert_eq!(got["boot_aggregate_ok"], Value::Null);
        for (bank, pcrs) in expected[f]["expected_pcrs"].as_object().unwrap() {
            assert_eq!(got["pcrs"][bank]["10"], pcrs["10"], "{f} {bank}");
        }
        // Default bank: the list's own template-hash algorithm.
        let d = ok_json(&["ima", "replay", "--json", s(&path)]);
        let talg = expected[f]["log_template_digest_alg"].as_str().unwrap();
        assert_eq!(d["template_alg"], talg);
        assert_eq!(
            d["pcrs"].as_object().unwrap().keys().collect::<Vec<_>>(),
            vec![talg]
        );
    }
    // From a pipe (read once, in memory) the result is the same as from the file (streamed).
    let f = dir.join("sha384.log");
    let want = ok_json(&["ima", "replay", "--json", "--bank", "sha256", s(&f)]);
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' | '{}' ima replay --json --bank sha256 /dev/stdin",
            s(&f),
            env!("CARGO_BIN_EXE_tsem")
        ))
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let got: Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(got["pcrs"], want["pcrs"]);
    // Checked against an unrelated machine's event log, the boot_aggregate does not match.
    let ev = conformance().join("eventlog/go-tpm-tools/ubuntu-2404-amd-sevsnp.bin");
    let got = ok_json(&[
        "ima",
        "replay",
        "--json",
        "--eventlog",
        s(&ev),
        s(&dir.join("sha256.log")),
    ]);
    assert_eq!(got["boot_aggregate_ok"], false);
}

#[test]
fn ima_snapshot_round_trip_tamper_and_gap() {
    let dir = scratch("snap");
    let list = conformance().join("ima/ibmtss/sha384.log");
    let whole = ok_json(&[
        "ima",
        "replay",
        "--json",
        "--bank",
        "sha1",
        "--bank",
        "sha256",
        s(&list),
    ]);
    let (snap, rem) = (dir.join("s.snap"), dir.join("rem.log"));
    let o = tsem(&[
        "ima",
        "snapshot",
        "--at",
        "200",
        s(&list),
        "-o",
        s(&snap),
        "-r",
        s(&rem),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = ok_json(&[
        "ima",
        "replay",
        "--json",
        "--bank",
        "sha1",
        "--bank",
        "sha256",
        "--snapshot",
        s(&snap),
        s(&rem),
    ]);
    assert_eq!(got["entries"], 162);
    assert_eq!(got["snapshot_entries"], 200);
    assert_eq!(got["pcrs"], whole["pcrs"]);
    // Tampered snapshot.
    let text = std::fs::read_to_string(&snap).unwrap();
    let bad = dir.join("bad.snap");
    std::fs::write(&bad, text.replacen("entries 200", "entries 201", 1)).unwrap();
    let e = one_line_error(&["ima", "replay", "--snapshot", s(&bad), s(&rem)]);
    assert!(e.contains("checksum"), "{e}");
    // Gap: the remainder of a later cut does not follow this snapshot.
    let (snap2, rem2) = (dir.join("s2.snap"), dir.join("rem2.log"));
    assert!(
        tsem(&[
            "ima",
            "snapshot",
            "--at",
            "201",
            s(&list),
            "-o",
            s(&snap2),
            "-r",
            s(&rem2)
        ])
        .status
        .success()
    );
    let e = one_line_error(&["ima", "replay", "--snapshot", s(&snap), s(&rem2)]);
    assert!(e.contains("gap"), "{e}");
    let e = one_line_error(&[
        "ima",
        "snapshot",
        "--at",
        "400",
        s(&list),
        "-o",
        s(&snap2),
        "-r",
        s(&rem2),
    ]);
    assert!(e.contains("has 362"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ima_state_ignores_order_pcr10_does_not() {
    let dir = scratch("order");
    let list = conformance().join("ima/ibmtss/sha1.log");
    let data = std::fs::read(&list).unwrap();
    let parsed = tsem_evidence::ImaList::parse(&data, Default::default()).unwrap();
    let mut swapped = Vec::new();
    let e = &parsed.entries;
    // Swap entries 10 and 11.
    swapped.extend_from_slice(&data[..e[10].offset]);
    swapped.extend_from_slice(&data[e[11].offset..e[11].offset + e[11].len]);
    swapped.extend_from_slice(&data[e[10].offset..e[11].offset]);
    swapped.extend_from_slice(&data[e[11].offset + e[11].len..]);
    let other = dir.join("swapped.log");
    std::fs::write(&other, &swapped).unwrap();
    let a = ok_json(&["ima", "state", "--json", s(&list)]);
    let b = ok_json(&["ima", "state", "--json", s(&other)]);
    assert_eq!(a, b);
    assert_eq!(a["unique"], 362);
    let ra = ok_json(&["ima", "replay", "--json", s(&list)]);
    let rb = ok_json(&["ima", "replay", "--json", s(&other)]);
    assert_ne!(ra["pcrs"]["sha1"]["10"], rb["pcrs"]["sha1"]["10"]);
    // A different aggregate gives a different state.
    let agg = "11".repeat(20);
    let c = ok_json(&["ima", "state", "--json", "--aggregate", &agg, s(&list)]);
    assert_ne!(a["state"], c["state"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_garbage_and_empty_files_fail_with_one_line() {
    let dir = scratch("bad");
    let ev = std::fs::read(conformance().join("eventlog/go-tpm-tools/rhel8-uefi.bin")).unwrap();
    let ima = std::fs::read(conformance().join("ima/ibmtss/sha512.log")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"this is not a log\n\x00\x01\x02".to_vec()),
        ("ev-trunc", ev[..ev.len() - 3].to_vec()),
        ("ev-trunc-header", ev[..40].to_vec()),
        ("ima-trunc", ima[..ima.len() - 5].to_vec()),
        ("ima-trunc-name", ima[..70].to_vec()),
    ];
    for (name, bytes) in &cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        one_line_error(&["eventlog", "replay", s(&p)]);
        one_line_error(&["eventlog", "show", s(&p)]);
        one_line_error(&["ima", "replay", s(&p)]);
        one_line_error(&["ima", "state", s(&p)]);
        one_line_error(&["ima", "show", s(&p)]);
        one_line_error(&["ima", "replay", "--snapshot", s(&p), s(&p)]);
    }
    let e = one_line_error(&["ima", "replay", s(&dir.join("ima-trunc"))]);
    assert!(e.contains("entry 361 at byte"), "{e}");
    let e = one_line_error(&["eventlog", "replay", s(&dir.join("missing"))]);
    assert!(e.contains("reading"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eventlog_json_decodes_the_payloads_of_a_real_log() {
    let path = conformance().join("eventlog/go-tpm-tools/ubuntu-2404-amd-sevsnp.bin");
    let replay = ok_json(&["eventlog", "replay", "--json", s(&path)]);
    let show = ok_json(&["eventlog", "show", "--json", s(&path)]);
    assert_eq!(replay["records"], show["records"], "one decoding for both");
    assert_eq!(replay["warnings"], serde_json::json!([]));
    let recs = replay["records"].as_array().unwrap();
    assert_eq!(recs.len() as u64, replay["events"].as_u64().unwrap());
    let first = |ty: &str, f: &dyn Fn(&Value) -> bool| -> Value {
        recs.iter()
            .find(|r| r["event_type"] == ty && f(&r["payload"]))
            .unwrap_or_else(|| panic!("no {ty}"))["payload"]
            .clone()
    };
    let any = |_: &Value| true;
    let spec = &recs[0]["payload"];
    assert_eq!(spec["kind"], "spec_id");
    assert_eq!(spec["algorithms"][2]["algorithm"], "sha384");
    assert_eq!(recs[0]["extended"], false);
    assert_eq!(
        first("EV_S_CRTM_VERSION", &any),
        serde_json::json!({"kind": "text", "encoding": "utf-16le", "text": "GCE Virtual Firmware v2"})
    );
    let sb = first("EV_EFI_VARIABLE_DRIVER_CONFIG", &|p| {
        p["name"] == "SecureBoot"
    });
    assert_eq!(sb["guid"], "8be4df61-93ca-11d2-aa0d-00e098032b8c");
    assert_eq!(
        (sb["data"].clone(), sb["value"].clone()),
        ("00".into(), 0.into())
    );
    let order = first("EV_EFI_VARIABLE_BOOT", &|p| p["name"] == "BootOrder");
    assert_eq!(order["value"], serde_json::json!(["0002", "0001", "0000"]));
    let boot2 = first("EV_EFI_VARIABLE_BOOT", &|p| p["name"] == "Boot0002");
    assert_eq!(boot2["value"]["description"], "Ubuntu");
    assert!(
        boot2["value"]["device_path"]
            .as_str()
            .unwrap()
            .ends_with("\\EFI\\ubuntu\\shimx64.efi")
    );
    let shim = first("EV_EFI_BOOT_SERVICES_APPLICATION", &any);
    assert_eq!(shim["kind"], "image_load");
    assert_eq!(shim["file"], "\\EFI\\ubuntu\\shimx64.efi");
    assert_eq!(shim["address"], "0xbcb78018");
    assert!(
        shim["device_path"]
            .as_str()
            .unwrap()
            .starts_with("PciRoot(0x0)/Pci(0x4,0x0)/NVMe(0x1,"),
        "{shim}"
    );
    assert!(shim.get("device_path_error").is_none());
    assert_eq!(
        first("EV_IPL", &|p| p["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("grub_cmd: set prefix")))["encoding"],
        "utf-8"
    );
    assert_eq!(
        first("EV_EFI_ACTION", &any)["text"],
        "Calling EFI Application from Boot Option"
    );
    assert_eq!(
        first("EV_SEPARATOR", &any),
        serde_json::json!({"kind": "separator", "value": "00000000", "error": false})
    );
    let gpt = first("EV_EFI_GPT_EVENT", &any);
    assert!(!gpt["partitions"].as_array().unwrap().is_empty());
    // What does not decode is shown raw, with the reason, and digests are listed by bank.
    let raw = first("EV_NONHOST_INFO", &any);
    assert_eq!(raw["kind"], "raw");
    assert!(
        raw["data"]
            .as_str()
            .unwrap()
            .starts_with("474345204e6f6e486f7374")
    );
    assert!(!raw["reason"].as_str().unwrap().is_empty());
    for r in &recs[1..] {
        assert!(r["payload"]["kind"].is_string(), "{r}");
        assert_eq!(r["digests"].as_object().unwrap().len(), 3, "{r}");
    }
}

/// A crypto-agile log declaring sha1 and sha256 whose second record carries only a sha256 digest.
fn log_missing_a_digest() -> Vec<u8> {
    let mut d = b"Spec ID Event03\0".to_vec();
    d.extend_from_slice(&[
        0, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 4, 0, 20, 0, 0x0b, 0, 32, 0, 0,
    ]);
    let mut v = vec![0u8; 4];
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&[0; 20]);
    v.extend_from_slice(&(d.len() as u32).to_le_bytes());
    v.extend_from_slice(&d);
    let record = |v: &mut Vec<u8>, digests: &[(u16, usize)]| {
        v.extend_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for &(alg, n) in digests {
            v.extend_from_slice(&alg.to_le_bytes());
            v.extend(std::iter::repeat_n(0x11, n));
        }
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
    };
    record(&mut v, &[(4, 20), (0x0b, 32)]);
    record(&mut v, &[(0x0b, 32)]);
    record(&mut v, &[(0x0b, 32)]);
    v
}

#[test]
fn eventlog_replay_reports_the_spec_violations_it_tolerated() {
    let dir = scratch("quirks");
    let p = dir.join("missing.bin");
    std::fs::write(&p, log_missing_a_digest()).unwrap();
    let j = ok_json(&["eventlog", "replay", "--json", s(&p)]);
    let w = j["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0]["kind"], "missing_digest");
    assert_eq!(w[0]["bank"], "sha1");
    assert_eq!(
        (w[0]["index"].clone(), w[1]["index"].clone()),
        (2.into(), 3.into())
    );
    assert_eq!(w[0]["offset"], 145);
    assert!(w[0]["message"].as_str().unwrap().contains("not extended"));
    // Human output: one summary line per bank for missing digests.
    let o = tsem(&["eventlog", "replay", s(&p)]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("2 records have no sha1 digest (first: event 2 at byte 145)"),
        "{text}"
    );
}

#[test]
fn utf16_command_lines_and_guid_versions_decode_in_json_and_show() {
    // systemd-boot logs the kernel command line in UTF-16 with an odd number of trailing NULs; this
    // firmware's S-CRTM version is a GUID.
    let path = conformance().join("eventlog/go-tpm-tools/arch-linux-workstation.bin");
    let j = ok_json(&["eventlog", "show", "--json", s(&path)]);
    let recs = j["records"].as_array().unwrap();
    let ipl = recs
        .iter()
        .find(|r| r["event_type"] == "EV_IPL" && r["pcr"] == 8)
        .unwrap();
    assert_eq!(ipl["size"], 365);
    assert_eq!(ipl["payload"]["encoding"], "utf-16le");
    let cmdline = ipl["payload"]["text"].as_str().unwrap();
    assert!(
        cmdline.starts_with("initrd=\\intel-ucode.img "),
        "{cmdline}"
    );
    assert!(!cmdline.contains('\0'));
    assert_eq!(
        recs[1]["payload"],
        serde_json::json!({"kind": "guid", "guid": "546bfb1e-1d0c-4055-a4ad-4ef4bf17b83a"})
    );
    let text = String::from_utf8(tsem(&["eventlog", "show", s(&path)]).stdout).unwrap();
    assert!(text.contains("EV_IPL                             \"initrd=\\intel-ucode.img "));
    assert!(text.contains("GUID 546bfb1e-1d0c-4055-a4ad-4ef4bf17b83a"));
}

/// An event log that breaks the TCG spec, given to `ima replay --eventlog`: the boot_aggregate
/// check rests on how it was replayed, so the replay's warnings are said on stderr (grouped per
/// bank, each line naming the log) and listed in the JSON.
#[test]
fn ima_replay_says_where_the_event_log_breaks_the_spec() {
    let dir = scratch("evwarn");
    let log = dir.join("skips-sha1.bin");
    std::fs::write(&log, tsem_testdata::tcg::missing_sha1_log(3)).unwrap();
    let list = conformance().join("ima/ibmtss/sha256.log");
    for json in [false, true] {
        let mut args = vec!["ima", "replay", "--eventlog", s(&log)];
        if json {
            args.push("--json");
        }
        args.push(s(&list));
        let o = tsem(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        let warn = format!("tsem: warning: {}: ", log.display());
        assert!(err.lines().all(|l| l.starts_with(&warn)), "{err}");
        assert!(
            err.contains("3 records have no sha1 digest (first: event 1"),
            "{err}"
        );
        if json {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let w = v["eventlog_warnings"].as_array().unwrap();
            assert_eq!(w.len(), 3, "{v}");
            assert!(w.iter().all(|x| x["bank"] == "sha1"), "{v}");
        }
    }
    // Without --eventlog nothing rests on a log: no warning, and null in the JSON.
    let o = tsem(&["ima", "replay", "--json", s(&list)]);
    assert!(o.stderr.is_empty());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["eventlog_warnings"], Value::Null);
}
