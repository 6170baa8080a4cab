//! Conformance against real logs from other systems, read from the shared directory (never copied
//! into the repository). Missing data fails the tests: CI has it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use tsem_core::hash::{Digest, HashAlg};
use tsem_evidence::eventlog::{self, EventLog, LogFormat};
use tsem_evidence::ima::{self, ImaList, ParseOptions};
use tsem_evidence::snapshot::{Snapshot, SnapshotError};

use tsem_testdata::conformance_dir as conformance;

fn read(rel: &str) -> Vec<u8> {
    let p = conformance().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).unwrap()
}

const IMA_LOGS: [&str; 4] = ["sha1.log", "sha256.log", "sha384.log", "sha512.log"];
const IMA_BANKS: [HashAlg; 4] = [
    HashAlg::Sha1,
    HashAlg::Sha256,
    HashAlg::Sha384,
    HashAlg::Sha512,
];

#[test]
fn go_tpm_tools_logs_reproduce_every_expected_pcr() {
    let expected = json("eventlog/go-tpm-tools/expected_pcrs.json");
    let files = expected.as_object().unwrap();
    assert_eq!(files.len(), 14);
    let mut checked = 0;
    for (file, want) in files {
        let data = read(&format!("eventlog/go-tpm-tools/{file}"));
        let log = EventLog::parse(&data).unwrap_or_else(|e| panic!("{file}: {e}"));
        let r = eventlog::replay(&log);
        for (bank, pcrs) in want["expected_pcrs"].as_object().unwrap() {
            let alg: HashAlg = bank.parse().unwrap();
            r.require_bank(alg)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            for (pcr, hex) in pcrs.as_object().unwrap() {
                let got = r.pcr(alg, pcr.parse().unwrap());
                assert_eq!(
                    got.to_hex(),
                    hex.as_str().unwrap(),
                    "{file} {bank} PCR {pcr}"
                );
                checked += 1;
            }
        }
        if file == "debian-10.bin" {
            assert_eq!(log.format, LogFormat::Sha1Legacy);
        } else {
            assert_eq!(log.format, LogFormat::CryptoAgile, "{file}");
        }
        if file == "gdc-host.bin" || file == "glinux-alex.bin" {
            assert_eq!(r.startup_locality, Some(3), "{file}");
        }
        // These logs keep the spec: no quirk tolerated, no H-CRTM.
        assert_eq!(r.warnings, vec![], "{file}");
        assert_eq!(r.hcrtm, None, "{file}");
    }
    assert!(checked > 200, "only {checked} PCR values checked");
}

#[test]
fn go_tpm_tools_known_content_digests_verify() {
    // Separators and EFI variables have content-defined digests; a broken check (everything
    // mismatching, or nothing checked) fails here.
    let expected = json("eventlog/go-tpm-tools/expected_pcrs.json");
    for file in expected.as_object().unwrap().keys() {
        let data = read(&format!("eventlog/go-tpm-tools/{file}"));
        let log = EventLog::parse(&data).unwrap();
        let r = eventlog::replay(&log);
        let separators = log
            .events
            .iter()
            .filter(|e| e.event_type == eventlog::EV_SEPARATOR)
            .count();
        assert!(separators >= 7, "{file}: {separators} separators");
        let mismatching_separators = r
            .digest_mismatches
            .iter()
            .filter(|m| m.event_type == eventlog::EV_SEPARATOR)
            .count();
        assert_eq!(
            mismatching_separators, 0,
            "{file}: {:?}",
            r.digest_mismatches
        );
    }
}

#[test]
fn tampered_event_log_changes_pcrs_and_reports_mismatch() {
    let mut data = read("eventlog/go-tpm-tools/ubuntu-2104-no-secure-boot.bin");
    let log = EventLog::parse(&data).unwrap();
    let sep = log
        .events
        .iter()
        .find(|e| e.event_type == eventlog::EV_SEPARATOR && e.pcr == 7)
        .unwrap();
    // The event data is the last `len` bytes of the record.
    let end = log
        .events
        .get(sep.index + 1)
        .map_or(data.len(), |n| n.offset);
    let pos = end - sep.data.len();
    let sep_index = sep.index;
    let before = eventlog::replay(&log);
    assert!(
        before
            .digest_mismatches
            .iter()
            .all(|m| m.index != sep_index)
    );
    drop(log);
    // Flip the separator's data: its logged digests no longer match the content.
    data[pos] ^= 1;
    let after = eventlog::replay(&EventLog::parse(&data).unwrap());
    assert!(
        after
            .digest_mismatches
            .iter()
            .any(|m| m.index == sep_index && m.pcr == 7)
    );
    // The replay still uses the logged digests, as the TPM did.
    assert_eq!(before.pcrs, after.pcrs);
}

#[test]
fn ibmtss_lists_reproduce_pcr10_in_all_banks() {
    let expected = json("ima/ibmtss/expected_pcr10.json");
    for f in IMA_LOGS {
        let data = read(&format!("ima/ibmtss/{f}"));
        let want = &expected[f];
        let talg: HashAlg = want["log_template_digest_alg"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let r = ima::replay(&data, ParseOptions::default(), &IMA_BANKS, None, None).unwrap();
        assert_eq!(
            r.template_alg, talg,
            "{f}: detected template-hash algorithm"
        );
        assert_eq!(r.entries, 362, "{f}");
        assert_eq!(
            r.template_hash_mismatches, 0,
            "{f}: {:?}",
            r.mismatch_details
        );
        for (bank, pcrs) in want["expected_pcrs"].as_object().unwrap() {
            let alg: HashAlg = bank.parse().unwrap();
            assert_eq!(
                r.pcrs[&alg][&10].to_hex(),
                pcrs["10"].as_str().unwrap(),
                "{f} {bank}"
            );
        }
        // The same with the algorithm given, as from a `_<alg>` file name.
        let named =
            ParseOptions::from_file_name(&format!("binary_runtime_measurements_{}", talg.name()));
        let r2 = ima::replay(&data, named, &IMA_BANKS, None, None).unwrap();
        assert_eq!(r2.pcrs, r.pcrs);
    }
}

/// Byte ranges of each entry of a binary list.
fn entry_ranges(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    ImaList::parse(data, ParseOptions::default())
        .unwrap()
        .entries
        .iter()
        .map(|e| e.offset..e.offset + e.len)
        .collect()
}

#[test]
fn ibmtss_snapshot_round_trip_tamper_and_gap() {
    let expected = json("ima/ibmtss/expected_pcr10.json");
    for f in IMA_LOGS {
        let data = read(&format!("ima/ibmtss/{f}"));
        let whole = ima::replay(&data, ParseOptions::default(), &IMA_BANKS, None, None).unwrap();
        for at in [0usize, 1, 100, 361, 362] {
            let cut = Snapshot::take(&data, ParseOptions::default(), at, None).unwrap();
            let text = cut.snapshot.to_text();
            let snap = Snapshot::parse(text.as_bytes()).unwrap();
            assert_eq!(snap, cut.snapshot);
            let rem = &data[cut.remainder_offset..];
            let r = snap
                .replay_remainder(rem, ParseOptions::default(), &IMA_BANKS)
                .unwrap();
            assert_eq!(r.entries, 362 - at, "{f} at {at}");
            for alg in IMA_BANKS {
                assert_eq!(
                    r.pcrs[&alg][&10], whole.pcrs[&alg][&10],
                    "{f} at {at} {alg}"
                );
                let want = expected[f]["expected_pcrs"][alg.name()]["10"]
                    .as_str()
                    .unwrap();
                assert_eq!(r.pcrs[&alg][&10].to_hex(), want);
            }
            assert_eq!(
                r.boot_aggregate, whole.boot_aggregate,
                "boot_aggregate carried by the snapshot"
            );
        }
        let ranges = entry_ranges(&data);
        let cut = Snapshot::take(&data, ParseOptions::default(), 100, None).unwrap();
        let snap = cut.snapshot.clone();
        // Gap: drop the first remainder entry.
        let gap = &data[ranges[101].start..];
        assert!(matches!(
            snap.replay_remainder(gap, ParseOptions::default(), &IMA_BANKS),
            Err(SnapshotError::Gap { .. })
        ));
        // Overlap: start one entry early.
        let overlap = &data[ranges[99].start..];
        assert!(matches!(
            snap.replay_remainder(overlap, ParseOptions::default(), &IMA_BANKS),
            Err(SnapshotError::Gap { .. })
        ));
        // Tampered snapshot: change a PCR value, keep the checksum.
        let text = snap.to_text();
        let pcr_line = text
            .lines()
            .find(|l| l.starts_with("pcr sha256 10 "))
            .unwrap();
        let mut bad = pcr_line.to_owned();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        let tampered = text.replacen(pcr_line, &bad, 1);
        assert!(matches!(
            Snapshot::parse(tampered.as_bytes()),
            Err(SnapshotError::Checksum { .. })
        ));
        // Chained snapshots: cut the remainder again.
        let rem = &data[cut.remainder_offset..];
        let cut2 = Snapshot::take(rem, ParseOptions::default(), 50, Some(&snap)).unwrap();
        assert_eq!(cut2.snapshot.entries, 150);
        let r = cut2
            .snapshot
            .replay_remainder(
                &rem[cut2.remainder_offset..],
                ParseOptions::default(),
                &IMA_BANKS,
            )
            .unwrap();
        assert_eq!(r.pcrs, whole.pcrs);
        assert!(Snapshot::take(&data, ParseOptions::default(), 363, None).is_err());
    }
}

#[test]
fn reordered_list_keeps_state_and_changes_pcr10() {
    for f in IMA_LOGS {
        let data = read(&format!("ima/ibmtss/{f}"));
        let ranges = entry_ranges(&data);
        // Reverse the order of every entry after the boot_aggregate.
        let mut reordered = data[ranges[0].clone()].to_vec();
        for r in ranges[1..].iter().rev() {
            reordered.extend_from_slice(&data[r.clone()]);
        }
        assert_eq!(reordered.len(), data.len());
        let s1 = ima::state(&data, ParseOptions::default(), None, None).unwrap();
        let s2 = ima::state(&reordered, ParseOptions::default(), None, None).unwrap();
        assert_eq!(s1, s2, "{f}");
        assert!(s1.unique > 300);
        let r1 = ima::replay(&data, ParseOptions::default(), &IMA_BANKS, None, None).unwrap();
        let r2 = ima::replay(&reordered, ParseOptions::default(), &IMA_BANKS, None, None).unwrap();
        assert_eq!(r2.template_hash_mismatches, 0);
        for alg in IMA_BANKS {
            assert_ne!(r1.pcrs[&alg][&10], r2.pcrs[&alg][&10], "{f} {alg}");
        }
        // Dropping an entry changes the state.
        let mut dropped = data[..ranges[5].start].to_vec();
        dropped.extend_from_slice(&data[ranges[5].end..]);
        let s3 = ima::state(&dropped, ParseOptions::default(), None, None).unwrap();
        assert_ne!(s3.state, s1.state);
    }
}

#[test]
fn ascii_rendering_of_ibmtss_lists_replays_identically() {
    // Render the binary list in the kernel's ASCII form and parse it back: the re-encoded template
    // data must verify and replay to the same PCRs.
    for f in IMA_LOGS {
        let data = read(&format!("ima/ibmtss/{f}"));
        let list = ImaList::parse(&data, ParseOptions::default()).unwrap();
        let ascii = ascii_list(&list);
        let a = ima::replay(
            ascii.as_bytes(),
            ParseOptions::default(),
            &IMA_BANKS,
            None,
            None,
        )
        .unwrap();
        let b = ima::replay(&data, ParseOptions::default(), &IMA_BANKS, None, None).unwrap();
        assert_eq!(
            a.template_hash_mismatches,
            0,
            "{f}: {:?}",
            a.mismatch_details.first()
        );
        assert_eq!(a.pcrs, b.pcrs);
        assert_eq!(a.format, ima::ImaFormat::Ascii);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn render_ascii(f: tsem_evidence::template::Field, b: &[u8]) -> String {
    use tsem_evidence::template::FieldFormat;
    if b.is_empty() {
        return String::new();
    }
    match f.format() {
        FieldFormat::Digest | FieldFormat::Hex => hex(b),
        FieldFormat::DigestWithAlgo => {
            let nul = b.iter().position(|&c| c == 0).unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&b[..nul]),
                hex(&b[nul + 1..])
            )
        }
        FieldFormat::String => {
            String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned()
        }
        FieldFormat::Uint(_) => {
            let mut v = [0u8; 8];
            v[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(v).to_string()
        }
    }
}

#[test]
fn boot_aggregate_checks_against_an_event_log() {
    // The ibmtss lists come from another machine, so their boot_aggregate must not match a
    // go-tpm-tools log; a list whose boot_aggregate is computed from a log must.
    let data = read("ima/ibmtss/sha256.log");
    let r = ima::replay(
        &data,
        ParseOptions::default(),
        &[HashAlg::Sha256],
        None,
        None,
    )
    .unwrap();
    let ba = r.boot_aggregate.unwrap();
    assert_eq!(ba.index, 0);
    let ev = read("eventlog/go-tpm-tools/ubuntu-2404-amd-sevsnp.bin");
    let rep = eventlog::replay(&EventLog::parse(&ev).unwrap());
    assert_eq!(ima::check_boot_aggregate(Some(&ba), &rep).ok, Some(false));
    for (n, variant) in [(8u32, "PCR 0-7"), (10, "PCR 0-9")] {
        let mut mine = ba;
        mine.digest = tsem_core::state::hardware_aggregate(ba.alg, &rep.pcr_values(ba.alg, n));
        let c = ima::check_boot_aggregate(Some(&mine), &rep);
        assert_eq!(c.ok, Some(true));
        assert!(c.detail.contains(variant), "{}", c.detail);
    }
    assert_eq!(ima::check_boot_aggregate(None, &rep).ok, None);
    // An event log without the boot_aggregate's bank cannot vouch for it.
    let sha1_only =
        eventlog::replay(&EventLog::parse(&read("eventlog/go-tpm-tools/debian-10.bin")).unwrap());
    assert_eq!(
        ima::check_boot_aggregate(Some(&ba), &sha1_only).ok,
        Some(false)
    );
}

#[test]
fn aggregate_is_the_tsem_hardware_aggregate() {
    let data = read("eventlog/go-tpm-tools/arch-linux-workstation.bin");
    let r = eventlog::replay(&EventLog::parse(&data).unwrap());
    let mut cat = Vec::new();
    for i in 0..8 {
        cat.extend_from_slice(r.pcr(HashAlg::Sha256, i).as_bytes());
    }
    assert_eq!(r.aggregate(HashAlg::Sha256), HashAlg::Sha256.digest(&cat));
    let _: BTreeMap<u32, Digest> = r.pcrs[&HashAlg::Sha256].clone();
}

#[test]
fn streaming_replay_equals_in_memory_at_any_window() {
    for f in IMA_LOGS {
        let path = conformance().join(format!("ima/ibmtss/{f}"));
        let data = std::fs::read(&path).unwrap();
        let whole = ima::replay(&data, ParseOptions::default(), &IMA_BANKS, None, None).unwrap();
        let (format, alg) = ima::detect(&data, ParseOptions::default()).unwrap();
        for window in [1usize, 7, 64, 1000, 4096, 1 << 20] {
            let r =
                ima::replay_read_window(&data[..], format, alg, &IMA_BANKS, true, window).unwrap();
            assert_eq!(r, whole, "{f} window {window}");
        }
        assert_eq!(
            ima::replay_path(&path, ParseOptions::default(), &IMA_BANKS).unwrap(),
            whole
        );
        // A truncated stream fails exactly like the truncated slice.
        let cut = &data[..data.len() - 9];
        let e1 = ima::replay(cut, ParseOptions::default(), &IMA_BANKS, None, None).unwrap_err();
        let e2 = ima::replay_read_window(cut, format, alg, &IMA_BANKS, true, 100).unwrap_err();
        assert_eq!(e1, e2);
        // ASCII streams: lines cut by the window are completed before they are parsed.
        let list = ImaList::parse(&data, ParseOptions::default()).unwrap();
        let ascii = ascii_list(&list);
        let mem = ima::replay(
            ascii.as_bytes(),
            ParseOptions::default(),
            &IMA_BANKS,
            None,
            None,
        )
        .unwrap();
        for window in [1usize, 13, 333, 1 << 20] {
            let r = ima::replay_read_window(
                ascii.as_bytes(),
                ima::ImaFormat::Ascii,
                alg,
                &IMA_BANKS,
                true,
                window,
            )
            .unwrap();
            assert_eq!(r, mem, "{f} ascii window {window}");
        }
        // Without its last newline the last line is still an entry.
        let trimmed = ascii.trim_end_matches('\n');
        let r = ima::replay_read_window(
            trimmed.as_bytes(),
            ima::ImaFormat::Ascii,
            alg,
            &IMA_BANKS,
            true,
            50,
        )
        .unwrap();
        assert_eq!(r.pcrs, mem.pcrs);
    }
}

/// A parsed list in the kernel's ASCII form (`ascii_runtime_measurements`).
fn ascii_list(list: &ImaList) -> String {
    let mut ascii = String::new();
    for e in &list.entries {
        ascii.push_str(&format!(
            "{} {} {}",
            e.pcr, e.template_hash, e.template_name
        ));
        for (field, bytes) in e.fields() {
            ascii.push(' ');
            ascii.push_str(&render_ascii(field, bytes));
        }
        ascii.push('\n');
    }
    ascii
}
