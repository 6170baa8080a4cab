//! Shared by the verifier's integration tests: real databases (a SQLite file; a PostgreSQL
//! server started from Debian's binaries in a temporary directory), real HTTP on loopback, real
//! attestations of the conformance trajectories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;

use tsem_attest::{Attestation, Context, Identity, Signer};
use tsem_core::namespace::{Config, Namespace};
use tsem_format::{ModelFile, Record, RecordParser};
#[allow(unused_imports)]
pub use tsem_testdata::services::{Postgres, TempDir, wait_for};
use tsem_verifier::protocol::{Enrolment, Post};

pub fn process_dir() -> PathBuf {
    tsem_testdata::conformance_dir().join("tsem/process")
}

pub fn test_model() -> String {
    std::fs::read_to_string(process_dir().join("test.model")).unwrap()
}

/// The namespace `tsem attest --model test.model TRAJECTORY...` models.
pub fn namespace(model: &str, trajectories: &[&str]) -> Namespace {
    let mut ns = Namespace::new(Config::default()).unwrap();
    let m = ModelFile::parse_bytes(model.as_bytes()).unwrap();
    m.load_into(&mut ns, None).unwrap();
    ns.seal();
    ns.enforce();
    let mut parser = RecordParser::new();
    for t in trajectories {
        let text = std::fs::read_to_string(process_dir().join(t)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Record::Event { event, .. } = parser.parse(line).unwrap() {
                let task = event.header.pid.or(event.header.tnum).unwrap_or(1);
                ns.model(task, &event).unwrap();
            }
        }
    }
    ns
}

/// A workload's key pair: `(signer, public PEM)`.
pub fn keypair() -> (Signer, String) {
    let (sk, pk) = tsem_format::model_file::generate_ed25519().unwrap();
    (Signer::from_pem(&sk).unwrap(), pk)
}

/// Attest `ns` for `nonce` (hex) as `workload` with `model`'s digest in the claims.
pub fn attest(ns: &Namespace, model: &str, nonce: &str, workload: &str, s: &Signer) -> Attestation {
    let m = ModelFile::parse_bytes(model.as_bytes()).unwrap();
    let cx = Context {
        nonce: tsem_attest::parse_nonce(nonce).unwrap(),
        lost_events: 0,
        identity: Identity {
            host: "test-host".into(),
            workload: workload.into(),
        },
        model: Some(tsem_attest::model_digest(&m)),
        time: tsem_attest::now_unix(),
    };
    tsem_attest::attest(ns, &cx, s).unwrap()
}

pub fn post(att: Attestation, ns: &Namespace) -> Post {
    Post {
        attestation: att,
        forensics: ns
            .forensics()
            .iter()
            .map(|e| {
                String::from_utf8(tsem_format::event_to_json(
                    e,
                    tsem_format::RecordKind::Trajectory,
                ))
                .unwrap()
            })
            .collect(),
    }
}

pub fn enrolment(workload: &str, key: &str, max_forensics: u64, every: u64) -> Enrolment {
    Enrolment {
        workload: workload.into(),
        models: vec![test_model()],
        key: Some(key.into()),
        ak: None,
        max_forensics,
        on_forensic: None,
        every,
    }
}
