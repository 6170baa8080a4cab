//! Features the real conformance logs do not exercise, on logs built here from the format
//! definitions: SM3 and unknown banks, locality 4 (H-CRTM), PCR 0xFFFFFFFF records, D-RTM PCRs,
//! big-endian IMA lists, custom and evm-sig templates in ASCII.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tsem_core::hash::{Digest, HashAlg, extend};
use tsem_evidence::eventlog::{self, EventLog, EventLogError, LogFormat};
use tsem_evidence::ima::{self, ImaList, ParseOptions};

const BANKS: [(u16, usize); 3] = [(0x0004, 20), (0x0012, 32), (0x00FE, 24)]; // sha1, sm3_256, unknown

fn spec_id_header(banks: &[(u16, usize)]) -> Vec<u8> {
    let mut data = b"Spec ID Event03\0".to_vec();
    data.extend_from_slice(&0u32.to_le_bytes());
    data.extend_from_slice(&[0, 2, 0, 2]);
    data.extend_from_slice(&(banks.len() as u32).to_le_bytes());
    for (id, size) in banks {
        data.extend_from_slice(&id.to_le_bytes());
        data.extend_from_slice(&(*size as u16).to_le_bytes());
    }
    data.push(3);
    data.extend_from_slice(b"ven");
    let mut v = Vec::new();
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&[0u8; 20]);
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    v
}

/// A TCG_PCR_EVENT2 whose digests are the bank hashes of `content` (unknown banks get 0x5a bytes).
fn event2(pcr: u32, ty: u32, content: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&pcr.to_le_bytes());
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&(BANKS.len() as u32).to_le_bytes());
    for (id, size) in BANKS {
        v.extend_from_slice(&id.to_le_bytes());
        match HashAlg::from_tpm_alg_id(id) {
            Some(a) => v.extend_from_slice(a.digest(content).as_bytes()),
            None => v.extend(std::iter::repeat_n(0x5a, size)),
        }
    }
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn replay_by_hand(alg: HashAlg, init: Digest, contents: &[&[u8]]) -> Digest {
    contents
        .iter()
        .fold(init, |p, c| extend(alg, &p, &alg.digest(c)))
}

#[test]
fn sm3_bank_locality_4_hcrtm_drtm_and_unassigned_records() {
    let mut log = spec_id_header(&BANKS);
    let mut loc = b"StartupLocality\0".to_vec();
    loc.push(4);
    log.extend(event2(0, 3, b"", &loc));
    log.extend(event2(0, 0x8000_0010, b"hcrtm-digest", b"HCRTM"));
    log.extend(event2(0, 4, &[0, 0, 0, 0], &[0, 0, 0, 0]));
    log.extend(event2(PCR_NONE, 5, b"ignored", b"vendor trailer"));
    // A dynamic launch: PCR 17 and 18 start at zero, not at the pre-launch 0xFF..FF.
    log.extend(event2(17, 0x402, b"sinit", b""));
    log.extend(event2(18, 0x404, b"mle", b""));
    // A second launch resets 17-22 again.
    log.extend(event2(17, 0x402, b"sinit2", b""));
    log.extend(event2(
        17,
        0x8000_0007,
        b"wrong",
        b"Exit Boot Services Invocation",
    ));
    let parsed = EventLog::parse(&log).unwrap();
    assert_eq!(parsed.format, LogFormat::CryptoAgile);
    assert_eq!(parsed.unknown_algorithms(), vec![0x00FE]);
    assert_eq!(parsed.spec_id.as_ref().unwrap().vendor_info, b"ven");
    let r = eventlog::replay(&parsed);
    assert_eq!(r.banks, vec![HashAlg::Sha1, HashAlg::Sm3]);
    assert_eq!(r.startup_locality, Some(4));
    assert_eq!(r.dynamic_launches, 2);
    for alg in [HashAlg::Sha1, HashAlg::Sm3] {
        let mut init = vec![0u8; alg.size()];
        *init.last_mut().unwrap() = 4;
        let p0 = replay_by_hand(
            alg,
            Digest::from_slice(&init).unwrap(),
            &[b"hcrtm-digest", &[0, 0, 0, 0]],
        );
        assert_eq!(r.pcr(alg, 0), p0, "{alg}");
        assert_eq!(
            r.pcr(alg, 17),
            replay_by_hand(alg, alg.null_id(), &[b"sinit2", b"wrong"])
        );
        assert_eq!(
            r.pcr(alg, 18),
            alg.null_id(),
            "PCR 18 reset by the second launch"
        );
        assert!(!r.pcrs[&alg].contains_key(&PCR_NONE));
        let mut cat = Vec::new();
        for i in 0..8 {
            cat.extend_from_slice(r.pcr(alg, i).as_bytes());
        }
        assert_eq!(r.aggregate(alg), alg.digest(&cat));
    }
    // The EV_EFI_ACTION digest is not the hash of its string: reported in both banks, replay goes on.
    let m: Vec<_> = r
        .digest_mismatches
        .iter()
        .map(|m| (m.index, m.bank))
        .collect();
    assert_eq!(m, vec![(8, HashAlg::Sha1), (8, HashAlg::Sm3)]);
}

const PCR_NONE: u32 = eventlog::PCR_NONE;

#[test]
fn malformed_spec_id_and_digest_lists_are_rejected() {
    let mut bad_size = spec_id_header(&[(0x000B, 20)]);
    bad_size.extend(event2(0, 4, b"", b""));
    match EventLog::parse(&bad_size) {
        Err(EventLogError::Invalid {
            index: 0,
            field: "digestSizes.digestSize",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // An event with an algorithm the header does not declare and tsem does not know: its size,
    // hence where the record goes on, is unknown. (A known one is read with its own size.)
    let mut ev1 = Vec::new();
    ev1.extend_from_slice(&0u32.to_le_bytes());
    ev1.extend_from_slice(&4u32.to_le_bytes());
    ev1.extend_from_slice(&1u32.to_le_bytes());
    ev1.extend_from_slice(&0x00FEu16.to_le_bytes());
    let mut log = spec_id_header(&[(0x0004, 20)]);
    let at = log.len();
    log.extend(ev1);
    log.extend([0u8; 40]);
    match EventLog::parse(&log) {
        Err(EventLogError::Invalid {
            index: 1,
            offset,
            field: "digests.hashAlg",
            ..
        }) => assert_eq!(offset, at),
        other => panic!("{other:?}"),
    }
}

fn fields(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(&(p.len() as u32).to_le_bytes());
        v.extend_from_slice(p);
    }
    v
}

fn binary_entry(be: bool, alg: HashAlg, name: &str, data: &[u8]) -> Vec<u8> {
    let u = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut v = Vec::new();
    v.extend_from_slice(&u(10));
    v.extend_from_slice(alg.digest(data).as_bytes());
    v.extend_from_slice(&u(name.len() as u32));
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(&u(data.len() as u32));
    v.extend_from_slice(data);
    v
}

#[test]
fn evm_sig_and_custom_templates_in_binary_and_ascii() {
    let alg = HashAlg::Sha256;
    let fd = HashAlg::Sha512.digest(b"file");
    let mut dng = b"sha512:\0".to_vec();
    dng.extend_from_slice(fd.as_bytes());
    let evm = fields(&[
        &dng,
        b"/etc/passwd\0",
        &[0x05, 0x02, 0xaa],
        b"security.ima|security.evm\0",
        &[0x10, 0, 0, 0],
        &[0xbe, 0xef],
        &1000u32.to_le_bytes(),
        &100u32.to_le_bytes(),
        &0o100644u16.to_le_bytes(),
    ]);
    let mut dngv2 = b"verity:sha256:\0".to_vec();
    dngv2.extend_from_slice(HashAlg::Sha256.digest(b"v").as_bytes());
    let custom_name = "d-ngv2|n-ng|iuid|imode|buf";
    let custom = fields(&[
        &dngv2,
        b"/bin/v\0",
        &0u32.to_le_bytes(),
        &0o755u16.to_le_bytes(),
        b"",
    ]);
    let bin = [
        binary_entry(false, alg, "evm-sig", &evm),
        binary_entry(false, alg, custom_name, &custom),
    ]
    .concat();
    let ascii = format!(
        "10 {} evm-sig sha512:{fd} /etc/passwd 0502aa security.ima|security.evm 10000000 beef 1000 100 33188\n\
         10 {} {custom_name} verity:sha256:{} /bin/v 0 493 \n",
        alg.digest(&evm),
        alg.digest(&custom),
        HashAlg::Sha256.digest(b"v")
    );
    let b = ima::replay(
        &bin,
        ParseOptions::default(),
        &[HashAlg::Sha384],
        None,
        None,
    )
    .unwrap();
    let a = ima::replay(
        ascii.as_bytes(),
        ParseOptions::default(),
        &[HashAlg::Sha384],
        None,
        None,
    )
    .unwrap();
    assert_eq!(b.template_alg, HashAlg::Sha256);
    assert_eq!(
        (b.template_hash_mismatches, a.template_hash_mismatches),
        (0, 0),
        "{:?}",
        a.mismatch_details
    );
    assert_eq!(a.pcrs, b.pcrs);
    let list = ImaList::parse(ascii.as_bytes(), ParseOptions::default()).unwrap();
    let d = list.entries[0].file_digest().unwrap();
    assert_eq!((d.alg(), d.digest), (Some(HashAlg::Sha512), fd.as_bytes()));
    assert_eq!(
        list.entries[1].file_digest().unwrap().prefix,
        "verity:sha256"
    );
    assert_eq!(
        list.entries[1].file_digest().unwrap().alg(),
        Some(HashAlg::Sha256)
    );
}

#[test]
fn big_endian_binary_lists_and_forced_algorithms() {
    let mut dng = b"sha1:\0".to_vec();
    dng.extend_from_slice(&[3; 20]);
    let mut data = Vec::new();
    for p in [&dng[..], b"/x\0"] {
        data.extend_from_slice(&(p.len() as u32).to_be_bytes());
        data.extend_from_slice(p);
    }
    let be = binary_entry(true, HashAlg::Sha1, "ima-ng", &data);
    let r = ima::replay(&be, ParseOptions::default(), &[HashAlg::Sha1], None, None).unwrap();
    assert_eq!(r.format, ima::ImaFormat::BinaryBe);
    assert_eq!(r.template_hash_mismatches, 0);
    let list = ImaList::parse(&be, ParseOptions::default()).unwrap();
    assert_eq!(list.entries[0].file_name(), Some(b"/x".as_slice()));
    // Forcing a wrong algorithm is an error that says so.
    let e = ima::replay(
        &be,
        ParseOptions {
            template_alg: Some(HashAlg::Sha512),
        },
        &[HashAlg::Sha1],
        None,
        None,
    );
    assert!(
        matches!(e, Err(ima::ImaError::WrongAlgorithm { .. })),
        "{e:?}"
    );
    // An SM3 list is told apart from SHA-256 by which one verifies.
    let sm3 = binary_entry(false, HashAlg::Sm3, "ima-ng", &fields(&[&dng, b"/x\0"]));
    let r = ima::replay(&sm3, ParseOptions::default(), &[HashAlg::Sm3], None, None).unwrap();
    assert_eq!(r.template_alg, HashAlg::Sm3);
    assert_eq!(r.template_hash_mismatches, 0);
    assert_eq!(
        ParseOptions::from_file_name("binary_runtime_measurements_sha384").template_alg,
        Some(HashAlg::Sha384)
    );
    assert_eq!(
        ParseOptions::from_file_name("binary_runtime_measurements").template_alg,
        None
    );
}

#[test]
fn template_hash_mismatch_is_counted_not_fatal() {
    let mut dng = b"sha256:\0".to_vec();
    dng.extend_from_slice(&[1; 32]);
    let data = fields(&[&dng, b"/a\0"]);
    let mut e = binary_entry(false, HashAlg::Sha1, "ima-ng", &data);
    let good = e.clone();
    let n = e.len();
    e[n - 2] = b'b'; // "/a" -> "/b": data no longer matches the logged hash
    let list = [good, e].concat();
    let r = ima::replay(
        &list,
        ParseOptions {
            template_alg: Some(HashAlg::Sha1),
        },
        &[HashAlg::Sha1],
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.template_hash_mismatches, 1);
    assert_eq!(r.mismatch_details[0].index, 1);
}

#[test]
fn parallel_multi_bank_replay_equals_one_bank_at_a_time() {
    // Over 1 MiB, several banks are replayed on parallel threads; each single-bank replay is
    // sequential. Both must agree, including a violation and a mismatch in the middle.
    let mut list = Vec::new();
    for i in 0..12_000u32 {
        let mut dng = b"sha256:\0".to_vec();
        dng.extend_from_slice(HashAlg::Sha256.digest(&i.to_le_bytes()).as_bytes());
        let name = format!("/usr/bin/tool-{i}\0");
        let data = fields(&[&dng, name.as_bytes()]);
        let mut e = binary_entry(false, HashAlg::Sha1, "ima-ng", &data);
        if i == 5000 {
            e[4..24].fill(0); // violation
        }
        if i == 7000 {
            e[4] ^= 1; // mismatch
        }
        list.extend(e);
    }
    assert!(list.len() > 1 << 20);
    let banks = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sm3,
    ];
    let all = ima::replay(&list, ParseOptions::default(), &banks, None, None).unwrap();
    assert_eq!(
        (all.entries, all.violations, all.template_hash_mismatches),
        (12_000, 1, 1)
    );
    for b in banks {
        let one = ima::replay(&list, ParseOptions::default(), &[b], None, None).unwrap();
        assert_eq!(one.pcrs[&b], all.pcrs[&b], "{b}");
        assert_eq!(one.template_hash_mismatches, 1);
    }
    // A cut list fails the same way whatever the thread count.
    let cut = &list[..list.len() - 3];
    let e1 = ima::replay(cut, ParseOptions::default(), &banks, None, None).unwrap_err();
    let e2 = ima::replay(cut, ParseOptions::default(), &[HashAlg::Sha1], None, None).unwrap_err();
    assert_eq!(e1, e2);
}

#[test]
fn boot_aggregate_of_the_wrong_size_survives_a_snapshot_and_fails_the_check() {
    // Found by the fuzzer: a boot_aggregate whose digest is longer than its algorithm's.
    let long = "ab".repeat(48);
    let line = |name: &str, d: &str| {
        let mut dng = b"sha256:\0".to_vec();
        dng.extend_from_slice(Digest::from_hex(d).unwrap().as_bytes());
        let data = fields(&[&dng, format!("{name}\0").as_bytes()]);
        format!(
            "10 {} ima-ng sha256:{d} {name}\n",
            HashAlg::Sha1.digest(&data)
        )
    };
    let list = format!(
        "{}{}",
        line("boot_aggregate", &long),
        line("/bin/sh", &"cd".repeat(32))
    );
    let cut =
        tsem_evidence::Snapshot::take(list.as_bytes(), ParseOptions::default(), 1, None).unwrap();
    let back = tsem_evidence::Snapshot::parse(cut.snapshot.to_text().as_bytes()).unwrap();
    assert_eq!(back, cut.snapshot);
    let ba = back.boot_aggregate.unwrap();
    assert_eq!(ba.digest.len(), 48);
    let log = eventlog::replay(
        &EventLog::parse(&{
            let mut l = spec_id_header(&[(0x000B, 32)]);
            l.extend_from_slice(&0u32.to_le_bytes());
            l.extend_from_slice(&4u32.to_le_bytes());
            l.extend_from_slice(&1u32.to_le_bytes());
            l.extend_from_slice(&0x000Bu16.to_le_bytes());
            l.extend_from_slice(HashAlg::Sha256.digest(&[0; 4]).as_bytes());
            l.extend_from_slice(&4u32.to_le_bytes());
            l.extend_from_slice(&[0; 4]);
            l
        })
        .unwrap(),
    );
    assert_eq!(ima::check_boot_aggregate(Some(&ba), &log).ok, Some(false));
}
