//! Truncations, bit flips and garbage of the real logs: the parsers must reject or accept, never
//! panic, and every rejection must name a location inside the input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use tsem_core::hash::HashAlg;
use tsem_evidence::eventlog::{self, EventLog, EventLogError};
use tsem_evidence::ima::{self, ImaError, ImaList, ParseOptions};
use tsem_evidence::snapshot::Snapshot;

use tsem_testdata::conformance_dir as conformance;

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(conformance().join(rel)).unwrap()
}

fn eventlogs() -> Vec<Vec<u8>> {
    let dir = conformance().join("eventlog/go-tpm-tools");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 14);
    v.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn ima_lists() -> Vec<Vec<u8>> {
    ["sha1.log", "sha256.log", "sha384.log", "sha512.log"]
        .iter()
        .map(|f| read(&format!("ima/ibmtss/{f}")))
        .collect()
}

fn exercise_eventlog(data: &[u8]) -> Result<(), EventLogError> {
    let log = EventLog::parse(data)?;
    let r = eventlog::replay(&log);
    for alg in &r.banks {
        let _ = r.aggregate(*alg);
    }
    for w in &r.warnings {
        let _ = w.to_string();
    }
    for ev in &log.events {
        let _ = eventlog::describe(ev);
        let _ = tsem_evidence::payload::decode(ev, log.spec_id.as_ref());
    }
    Ok(())
}

fn exercise_ima(data: &[u8]) -> Result<(), ImaError> {
    let list = ImaList::parse(data, ParseOptions::default())?;
    for e in &list.entries {
        let _ = (e.fields(), e.file_name(), e.file_digest());
    }
    ima::replay(data, ParseOptions::default(), &HashAlg::ALL, None, None)?;
    ima::state(data, ParseOptions::default(), None, None)?;
    Ok(())
}

#[test]
fn every_truncation_of_every_event_log_is_rejected_with_a_location() {
    for data in eventlogs() {
        let full = EventLog::parse(&data).unwrap();
        let ends: std::collections::BTreeSet<usize> =
            full.events.iter().map(|e| e.offset).collect();
        // Cutting inside a record must fail and name an offset within the input; cutting at a record
        // boundary yields a shorter, valid log.
        for cut in 0..data.len() {
            match exercise_eventlog(&data[..cut]) {
                Ok(()) => assert!(ends.contains(&cut), "cut at {cut} accepted mid-record"),
                Err(EventLogError::Empty) => assert_eq!(cut, 0),
                Err(EventLogError::Truncated { offset, at, .. }) => {
                    assert!(
                        offset <= cut && at <= cut,
                        "cut {cut}: offset {offset} at {at}"
                    )
                }
                Err(EventLogError::Invalid { offset, .. }) => assert!(offset < cut),
                Err(e) => panic!("cut {cut}: unexpected {e}"),
            }
        }
    }
}

#[test]
fn every_truncation_of_every_ima_list_is_rejected_with_a_location() {
    for data in ima_lists() {
        let list = ImaList::parse(&data, ParseOptions::default()).unwrap();
        let ends: std::collections::BTreeSet<usize> =
            list.entries.iter().map(|e| e.offset + e.len).collect();
        // Truncations inside the first entries are checked at every byte, later ones sparsely: the
        // parser state is the same per entry.
        for cut in (0..data.len()).filter(|c| *c < 2000 || c % 97 == 0) {
            match exercise_ima(&data[..cut]) {
                Ok(()) => assert!(ends.contains(&cut), "cut at {cut} accepted mid-entry"),
                Err(ImaError::Empty) => assert!(data[..cut].iter().all(u8::is_ascii_whitespace)),
                Err(ImaError::Truncated { offset, at, .. }) => assert!(offset <= cut && at <= cut),
                Err(ImaError::Invalid { offset, .. }) => assert!(offset < cut),
                Err(ImaError::UnknownFormat(_)) | Err(ImaError::WrongAlgorithm { .. }) => {
                    assert!(cut < 200)
                }
                Err(e) => panic!("cut {cut}: unexpected {e}"),
            }
        }
    }
}

#[test]
fn garbage_and_empty_inputs_are_errors() {
    assert_eq!(EventLog::parse(&[]), Err(EventLogError::Empty));
    assert_eq!(
        ImaList::parse(&[], ParseOptions::default()),
        Err(ImaError::Empty)
    );
    assert_eq!(
        ImaList::parse(b"\n\n", ParseOptions::default()),
        Err(ImaError::Empty)
    );
    for g in [
        &b"garbage\n"[..],
        b"\xff\xff\xff\xff",
        b"10 abc ima-ng",
        b"10 0000 nosuch x\n",
        &[0u8; 3],
    ] {
        assert!(ImaList::parse(g, ParseOptions::default()).is_err(), "{g:?}");
        assert!(EventLog::parse(g).is_err(), "{g:?}");
        assert!(Snapshot::parse(g).is_err(), "{g:?}");
    }
}

fn mutate(data: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut d = data.to_vec();
    for &(pos, x) in flips {
        let len = d.len();
        if let Some(b) = d.get_mut(pos % len.max(1)) {
            *b ^= x.max(1);
        }
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn bit_flipped_event_logs_never_panic(which in 0usize..14, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let logs = eventlogs();
        let d = mutate(&logs[which], &flips);
        let _ = exercise_eventlog(&d);
    }

    #[test]
    fn bit_flipped_ima_lists_never_panic(which in 0usize..4, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let lists = ima_lists();
        let d = mutate(&lists[which][..6000], &flips);
        let _ = exercise_ima(&d);
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = exercise_eventlog(&data);
        let _ = exercise_ima(&data);
        let _ = Snapshot::parse(&data);
    }

    #[test]
    fn random_ascii_lines_never_panic(lines in prop::collection::vec("[0-9]{1,3} [0-9a-f]{0,64} (ima|ima-ng|ima-sig|ima-buf|evm-sig|d-ng\\|n-ng\\|iuid\\|imode) [ -~]{0,80}", 1..6)) {
        let text = lines.join("\n");
        let _ = exercise_ima(text.as_bytes());
    }
}
