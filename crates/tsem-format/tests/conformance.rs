//! Conformance against a real TSEM capture (post-v4 kernel, sha256): `shared/conformance/tsem/`.
//! The data lives beside the repository (never copied in); a missing directory fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::PathBuf;

use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::{Mapper, Mapping};
use tsem_format::{RecordKind, event_to_json, parse_event};

use tsem_testdata::shared_dir as shared;

fn process_dir() -> PathBuf {
    let d = shared().join("conformance/tsem/process");
    assert!(
        d.is_dir(),
        "conformance data missing at {} (set TSEM_SHARED)",
        d.display()
    );
    d
}

fn read(name: &str) -> String {
    std::fs::read_to_string(process_dir().join(name)).unwrap()
}

fn model_states(name: &str) -> Vec<Digest> {
    read(name)
        .lines()
        .filter_map(|l| l.strip_prefix("state "))
        .map(|h| Digest::from_hex(h).unwrap())
        .collect()
}

fn coefficients(name: &str) -> Vec<Digest> {
    let mut m = Mapper::new(HashAlg::Sha256, Mapping::Model0);
    read(name)
        .lines()
        .map(|l| m.coefficient(&parse_event(l).unwrap()))
        .collect()
}

#[test]
fn trajectory_maps_bit_exact_to_model_points_in_order() {
    let coeffs = coefficients("process_1.json");
    assert_eq!(coeffs.len(), 155);
    let states = model_states("test.model");
    assert_eq!(states.len(), 196);
    assert_eq!(&coeffs[..], &states[..155]);
}

#[test]
fn forensics_are_outside_the_model_and_inside_the_updates() {
    let base: HashSet<Digest> = model_states("test.model").into_iter().collect();
    let up2: HashSet<Digest> = model_states("test.model.up2").into_iter().collect();
    let up3: HashSet<Digest> = model_states("test.model.up3").into_iter().collect();
    for n in 2..=7 {
        let c = coefficients(&format!("process_{n}.json"));
        assert!(!c.is_empty());
        assert!(
            c.iter().all(|x| !base.contains(x)),
            "process_{n} has in-model events"
        );
        assert_eq!(
            c.iter().all(|x| up2.contains(x)),
            n <= 4,
            "up2 vs process_{n}"
        );
        assert_eq!(
            c.iter().all(|x| up3.contains(x)),
            n <= 6,
            "up3 vs process_{n}"
        );
        if n == 7 {
            assert!(c.iter().all(|x| !up2.contains(x) && !up3.contains(x)));
        }
    }
}

#[test]
fn every_capture_line_round_trips_byte_for_byte() {
    // Read as the bytes they are, as replay reads them.
    for n in 1..=7 {
        let bytes = std::fs::read(process_dir().join(format!("process_{n}.json"))).unwrap();
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert!(!lines.is_empty());
        for line in lines {
            let ev = parse_event(line).unwrap();
            assert_eq!(event_to_json(&ev, RecordKind::Trajectory), line);
        }
    }
}
