//! TCG event logs that break the PC Client Platform Firmware Profile the way real firmware and
//! peers' test suites do, built here byte by byte, replayed to the PCRs their producers' rules give:
//! per-event digest lists that lack declared banks, a Spec ID `vendorInfo` past the record's
//! `eventDataSize`, and `EV_EFI_HCRTM_EVENT` (PCR 0 starts at `00..04`).
//!
//! The expected PCRs are computed here with the `sha1`/`sha2` crates directly, not with tsem's
//! hashing. Where `tpm2_eventlog` (tpm2-tools) is installed, its PCRs must agree too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use tsem_core::hash::HashAlg;
use tsem_evidence::eventlog::{self, EventLog, EventLogError, WarningKind};
use tsem_testdata::tcg::{SHA1, SHA256, SHA384, SHA512, event2, size, spec_id};

const ALL4: [u16; 4] = [SHA1, SHA256, SHA384, SHA512];

/// The hash, independently of tsem_core.
fn h(alg: u16, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    match alg {
        SHA1 => run::<sha1::Sha1>(parts),
        SHA256 => run::<sha2::Sha256>(parts),
        SHA384 => run::<sha2::Sha384>(parts),
        SHA512 => run::<sha2::Sha512>(parts),
        _ => unreachable!(),
    }
}

fn extend(alg: u16, pcr: &[u8], digest: &[u8]) -> Vec<u8> {
    h(alg, &[pcr, digest])
}

fn zero(alg: u16) -> Vec<u8> {
    vec![0; size(alg)]
}

fn locality(alg: u16, l: u8) -> Vec<u8> {
    let mut v = zero(alg);
    *v.last_mut().unwrap() = l;
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Digests of `content` in `banks`.
fn of(banks: &[u16], content: &[u8]) -> Vec<(u16, Vec<u8>)> {
    banks.iter().map(|&b| (b, h(b, &[content]))).collect()
}

/// `UEFI_VARIABLE_DATA` of EFI_GLOBAL_VARIABLE `SecureBoot` = 1, as in tpm2-tools' fixture
/// `event-uefivar.bin`.
fn secure_boot_var() -> Vec<u8> {
    let mut v = vec![
        0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b,
        0x8c,
    ];
    v.extend_from_slice(&10u64.to_le_bytes());
    v.extend_from_slice(&1u64.to_le_bytes());
    for c in "SecureBoot".encode_utf16() {
        v.extend_from_slice(&c.to_le_bytes());
    }
    v.push(1);
    v
}

type Pcrs = BTreeMap<u16, BTreeMap<u32, Vec<u8>>>;

/// tpm2-tools learned StartupLocality (576a31bc) and H-CRTM (2c407c15) replay in 5.6; Debian 12
/// ships 5.4.
const TPM2_TOOLS_LOCALITY: (u32, u32) = (5, 6);

/// tsem's replay of `log` must give the PCRs of `want`; so must tpm2_eventlog's, if installed and
/// at least version `tpm2_since` (None: tpm2-tools replays this log differently, no comparison).
fn check(name: &str, log: &[u8], want: &Pcrs, tpm2_since: Option<(u32, u32)>) -> eventlog::Replay {
    let parsed = EventLog::parse(log).unwrap_or_else(|e| panic!("{name}: {e}"));
    let r = eventlog::replay(&parsed);
    for (&alg, pcrs) in want {
        let a = HashAlg::from_tpm_alg_id(alg).unwrap();
        for (&p, v) in pcrs {
            assert_eq!(r.pcr(a, p).to_hex(), hex(v), "{name}: {a} PCR {p}");
        }
    }
    if let Some(v) = tpm2_since {
        compare_with_tpm2_eventlog(name, log, want, v);
    }
    r
}

/// The PCRs `tpm2_eventlog` prints for `log` must be `want` (skipped if it is not installed).
fn compare_with_tpm2_eventlog(name: &str, log: &[u8], want: &Pcrs, since: (u32, u32)) {
    let Some(version) = tpm2_tools_version() else {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!("tpm2_eventlog not installed: comparison with tpm2-tools skipped")
        });
        return;
    };
    if version < since {
        eprintln!(
            "{name}: tpm2_eventlog {}.{} predates {}.{}, which replays this log: comparison skipped",
            version.0, version.1, since.0, since.1
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("tsem-tcg-quirks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.bin"));
    std::fs::write(&path, log).unwrap();
    let out = std::process::Command::new("tpm2_eventlog")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: tpm2_eventlog failed");
    // The `pcrs:` section: `  sha256:` then `    7  : 0x…` lines.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut theirs: BTreeMap<String, BTreeMap<u32, String>> = BTreeMap::new();
    let mut bank = None;
    for line in text.lines().skip_while(|l| !l.starts_with("pcrs:")).skip(1) {
        let t = line.trim();
        if let Some(b) = t.strip_suffix(':') {
            bank = Some(b.to_owned());
        } else if let (Some(b), Some((p, v))) = (&bank, t.split_once(':')) {
            let v = v.trim().trim_start_matches("0x").to_lowercase();
            theirs
                .entry(b.clone())
                .or_default()
                .insert(p.trim().parse().unwrap(), v);
        }
    }
    for (&alg, pcrs) in want {
        let bank = HashAlg::from_tpm_alg_id(alg).unwrap().bank_name();
        for (&p, v) in pcrs {
            // tpm2_eventlog lists only the PCRs the log extends in that bank.
            let got = theirs.get(bank).and_then(|m| m.get(&p)).cloned();
            let got = got.unwrap_or_else(|| hex(&zero(alg)));
            assert_eq!(got, hex(v), "{name}: tpm2_eventlog {bank} PCR {p}");
        }
    }
}

/// `(major, minor)` of the installed tpm2-tools, None if `tpm2_eventlog` is not there.
fn tpm2_tools_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("tpm2_eventlog")
        .arg("--version")
        .output()
        .ok()?;
    // tool="tpm2_eventlog" version="5.4" tctis=...
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split("version=\"").nth(1)?.split('"').next()?;
    let mut it = v.split(['.', '-']).map(|x| x.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

fn kinds(r: &eventlog::Replay) -> Vec<(usize, WarningKind)> {
    r.warnings
        .iter()
        .map(|w| (w.index, w.kind.clone()))
        .collect()
}

#[test]
fn events_with_fewer_digests_than_banks_extend_only_their_own() {
    let var = secure_boot_var();
    let sep = [0u8; 4];
    let action = b"Calling EFI Application from Boot Option";
    let mut log = spec_id(&ALL4, b"", 0);
    // 1: sha1 and sha256 only (tpm2-tools' event-uefivar.bin has exactly this record).
    log.extend(event2(7, 0x8000_0001, &of(&[SHA1, SHA256], &var), &var));
    // 2: every bank, in an order other than the Spec ID's.
    log.extend(event2(
        7,
        4,
        &of(&[SHA512, SHA1, SHA384, SHA256], &sep),
        &sep,
    ));
    // 3: sha384 only.
    log.extend(event2(4, 0x8000_0007, &of(&[SHA384], action), action));
    // 4: no digest at all: extends nothing.
    log.extend(event2(4, 0x8000_0007, &[], b"nothing"));

    let mut want = Pcrs::new();
    for alg in ALL4 {
        let mut p7 = zero(alg);
        if matches!(alg, SHA1 | SHA256) {
            p7 = extend(alg, &p7, &h(alg, &[&var]));
        }
        p7 = extend(alg, &p7, &h(alg, &[&sep]));
        want.entry(alg).or_default().insert(7, p7);
        let p4 = if alg == SHA384 {
            extend(alg, &zero(alg), &h(alg, &[action]))
        } else {
            zero(alg)
        };
        want.entry(alg).or_default().insert(4, p4);
    }
    let r = check("fewer-digests", &log, &want, Some((5, 0)));
    assert_eq!(r.digest_mismatches, vec![], "content digests still verify");
    assert_eq!(r.digests_checked, 2 + 4 + 1, "one check per digest present");
    use WarningKind::MissingDigest as M;
    assert_eq!(
        kinds(&r),
        vec![
            (1, M { alg_id: SHA384 }),
            (1, M { alg_id: SHA512 }),
            (3, M { alg_id: SHA1 }),
            (3, M { alg_id: SHA256 }),
            (3, M { alg_id: SHA512 }),
            (4, M { alg_id: SHA1 }),
            (4, M { alg_id: SHA256 }),
            (4, M { alg_id: SHA384 }),
            (4, M { alg_id: SHA512 }),
        ]
    );
    // PCR 4 of sha1/sha256/sha512 was never extended: not listed, zero in the aggregate.
    assert!(!r.pcrs[&HashAlg::Sha1].contains_key(&4));
    let mut cat = Vec::new();
    for i in 0..8 {
        cat.extend_from_slice(want[&SHA384].get(&i).map_or(&zero(SHA384)[..], |v| v));
    }
    assert_eq!(
        r.aggregate(HashAlg::Sha384).to_hex(),
        hex(&h(SHA384, &[&cat]))
    );

    // The value tpm2-tools' own test suite expects for its event-uefivar.bin (PCR 7 after the
    // first record alone), from test/integration/fixtures/event-pretty/event-uefivar.bin.yaml.
    let mut uefivar = spec_id(&ALL4, b"", 0);
    uefivar.extend(event2(7, 0x8000_0001, &of(&[SHA1, SHA256], &var), &var));
    let r = eventlog::replay(&EventLog::parse(&uefivar).unwrap());
    assert_eq!(
        r.pcr(HashAlg::Sha256, 7).to_hex(),
        "e58ada1ba75f2e4722b539824598ad5e10c55f2e4aeab2033f3b0a8ee3f3eca6"
    );
    assert_eq!(
        r.pcr(HashAlg::Sha1, 7).to_hex(),
        "3a1ea200b8fafe60c290e903c5e6443cfef67f04"
    );
}

#[test]
fn an_undeclared_known_algorithm_is_read_with_its_size_and_not_replayed() {
    let sep = [0u8; 4];
    let mut log = spec_id(&[SHA256], b"", 0);
    log.extend(event2(0, 4, &of(&[SHA1, SHA256], &sep), &sep));
    log.extend(event2(0, 4, &of(&[SHA256], &sep), &sep));
    let mut want = Pcrs::new();
    let d = h(SHA256, &[&sep]);
    want.entry(SHA256)
        .or_default()
        .insert(0, extend(SHA256, &extend(SHA256, &zero(SHA256), &d), &d));
    let r = check("undeclared", &log, &want, Some((5, 0)));
    assert_eq!(r.banks, vec![HashAlg::Sha256]);
    assert!(!r.pcrs.contains_key(&HashAlg::Sha1));
    assert_eq!(
        kinds(&r),
        vec![(1, WarningKind::UndeclaredAlgorithm { alg_id: SHA1 })]
    );
    // Listed twice is still ambiguous, hence refused.
    let mut dup = spec_id(&[SHA256], b"", 0);
    dup.extend(event2(0, 4, &of(&[SHA256, SHA256], &sep), &sep));
    match EventLog::parse(&dup) {
        Err(EventLogError::Invalid {
            index: 1,
            field: "digests.hashAlg",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn spec_id_vendor_info_past_event_size_is_read_as_tpm2_tools_does() {
    // tpm2-tools' specid-vendordata.bin: eventDataSize 37 ends at vendorInfoSize, the 4 bytes of
    // vendorInfo follow it. tpm2-tools reads the first TCG_PCR_EVENT2 after vendorInfo.
    let vendor = [0xde, 0xad, 0xbe, 0xef];
    let header = spec_id(&[SHA1, SHA256], &vendor, vendor.len());
    assert_eq!(u32::from_le_bytes(header[28..32].try_into().unwrap()), 37);
    let only = EventLog::parse(&header).unwrap();
    assert_eq!(only.spec_id.as_ref().unwrap().vendor_info, vendor);
    assert_eq!(only.events.len(), 1);
    assert_eq!(
        only.events[0].data.len(),
        37,
        "the record keeps its declared size"
    );

    let sep = [0u8; 4];
    let crtm = b"crtm version";
    let mut log = header.clone();
    log.extend(event2(0, 8, &of(&[SHA1, SHA256], crtm), crtm));
    log.extend(event2(0, 4, &of(&[SHA1, SHA256], &sep), &sep));
    let mut want = Pcrs::new();
    for alg in [SHA1, SHA256] {
        let p0 = extend(
            alg,
            &extend(alg, &zero(alg), &h(alg, &[crtm])),
            &h(alg, &[&sep]),
        );
        want.entry(alg).or_default().insert(0, p0);
    }
    let r = check("specid-vendordata", &log, &want, Some((5, 0)));
    assert_eq!(
        kinds(&r),
        vec![(
            0,
            WarningKind::SpecIdPastEventSize {
                declared: 37,
                structure: 41
            }
        )]
    );
    let parsed = EventLog::parse(&log).unwrap();
    assert_eq!(parsed.events[1].offset, header.len());

    // vendorInfo running past the end of the file is a truncation, named as such.
    match EventLog::parse(&header[..header.len() - 1]) {
        Err(EventLogError::Truncated {
            index: 0,
            field: "vendorInfo",
            need: 4,
            have: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn hcrtm_event_starts_pcr0_at_locality_4() {
    let sep = [0u8; 4];
    let hcrtm_content = b"the H-CRTM measured by the TPM";
    let crtm = b"1.0";
    let banks = [SHA1, SHA256];
    let expect = |start: u8, contents: &[&[u8]]| {
        let mut want = Pcrs::new();
        for alg in banks {
            let p0 = contents
                .iter()
                .fold(locality(alg, start), |p, c| extend(alg, &p, &h(alg, &[c])));
            want.entry(alg).or_default().insert(0, p0);
        }
        want
    };
    let mut startup = b"StartupLocality\0".to_vec();
    startup.push(3);
    let no_action = |data: &[u8]| event2(0, 3, &of(&banks, &[]), data);

    // No StartupLocality event: the H-CRTM alone puts PCR 0 at 00..04.
    let mut log = spec_id(&banks, b"", 0);
    log.extend(event2(0, 0x8000_0010, &of(&banks, hcrtm_content), b"HCRTM"));
    log.extend(event2(0, 8, &of(&banks, crtm), crtm));
    log.extend(event2(0, 4, &of(&banks, &sep), &sep));
    let want = expect(4, &[hcrtm_content, crtm, &sep]);
    let r = check("hcrtm", &log, &want, Some(TPM2_TOOLS_LOCALITY));
    assert_eq!(r.hcrtm, Some(1));
    assert_eq!(r.startup_locality, None);
    assert_eq!(r.warnings, vec![]);
    let mut cat = want[&SHA256][&0].clone();
    for _ in 1..8 {
        cat.extend(zero(SHA256));
    }
    assert_eq!(
        r.aggregate(HashAlg::Sha256).to_hex(),
        hex(&h(SHA256, &[&cat]))
    );

    // A StartupLocality 3 before it: the H-CRTM still wins (tpm2-tools, tpm2-tss).
    let mut log = spec_id(&banks, b"", 0);
    log.extend(no_action(&startup));
    log.extend(event2(0, 0x8000_0010, &of(&banks, hcrtm_content), b"HCRTM"));
    log.extend(event2(0, 8, &of(&banks, crtm), crtm));
    let r = check(
        "hcrtm-after-locality-3",
        &log,
        &expect(4, &[hcrtm_content, crtm]),
        Some(TPM2_TOOLS_LOCALITY),
    );
    assert_eq!((r.startup_locality, r.hcrtm), (Some(3), Some(2)));

    // StartupLocality 3 without an H-CRTM: 00..03 (gdc-host, glinux-alex are real cases).
    let mut log = spec_id(&banks, b"", 0);
    log.extend(no_action(&startup));
    log.extend(event2(0, 8, &of(&banks, crtm), crtm));
    let r = check(
        "locality-3",
        &log,
        &expect(3, &[crtm]),
        Some(TPM2_TOOLS_LOCALITY),
    );
    assert_eq!((r.startup_locality, r.hcrtm), (Some(3), None));

    // An H-CRTM record after PCR 0 was extended is no H-CRTM start: extended from the current
    // value, with a warning (tpm2-tools would overwrite the last byte of the running PCR value,
    // which no TPM does; no comparison). Its data is not "HCRTM": a second warning.
    let mut log = spec_id(&banks, b"", 0);
    log.extend(event2(0, 8, &of(&banks, crtm), crtm));
    log.extend(event2(0, 0x8000_0010, &of(&banks, hcrtm_content), b"hcrtm"));
    let r = check("late-hcrtm", &log, &expect(0, &[crtm, hcrtm_content]), None);
    assert_eq!(r.hcrtm, None);
    assert_eq!(
        kinds(&r),
        vec![(2, WarningKind::HcrtmData), (2, WarningKind::LateHcrtm)]
    );

    // In the SHA1-only legacy format the same rule holds.
    let legacy = |ty: u32, content: &[u8], data: &[u8]| {
        let mut v = Vec::new();
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&h(SHA1, &[content]));
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    };
    let mut log = legacy(0x8000_0010, hcrtm_content, b"HCRTM");
    log.extend(legacy(8, crtm, crtm));
    let mut want = expect(4, &[hcrtm_content, crtm]);
    want.remove(&SHA256);
    let r = check("hcrtm-legacy", &log, &want, None);
    assert_eq!(r.hcrtm, Some(0));
}
