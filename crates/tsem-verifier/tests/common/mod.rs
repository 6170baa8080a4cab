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
use tsem_verifier::{Client, ClientError};

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

/// Two verifiers (`a_url`, `b_url`, admin `token`) on one database, which they alone share: a
/// re-enrolment through one takes effect on the very next post to the other, whichever way the
/// other's cached enrolment is wrong (an old key it would accept, a new key it would refuse, an
/// old policy).
pub fn reenrolment_through_the_other(a_url: &str, b_url: &str, token: &str) {
    let (ca, cb) = (
        Client::new(a_url, Some(token.into())).unwrap(),
        Client::new(b_url, Some(token.into())).unwrap(),
    );
    let model = test_model();
    let ns1 = namespace(&model, &["process_1.json"]);
    let ns2 = namespace(&model, &["process_1.json", "process_2.json"]);
    let (k1, p1) = keypair();
    let (k2, p2) = keypair();
    let (k3, p3) = keypair();
    let w = "moving";
    let attest_to = |c: &Client, ns: &tsem_core::namespace::Namespace, k: &tsem_attest::Signer| {
        let nonce = c.nonce(w).unwrap().nonce;
        c.post(w, &post(attest(ns, &model, &nonce, w, k), ns))
    };
    let recorded = |c: &Client| c.history(w).unwrap()["history"].as_array().unwrap().len();

    cb.enroll(&enrolment(w, &p1, 0, 300)).unwrap();
    // A caches the enrolment (key 1).
    assert_eq!(attest_to(&ca, &ns1, &k1).unwrap().verdict, "affirming");
    // Re-enrolled through B with key 2: key 1's attestation passes A's cached enrolment, but
    // the append statement finds the enrolment changed, A reloads, and refuses it.
    cb.enroll(&enrolment(w, &p2, 0, 300)).unwrap();
    let before = recorded(&cb);
    match attest_to(&ca, &ns1, &k1) {
        Err(ClientError::Status { code, msg, .. }) => {
            assert_eq!(code, 403, "{msg}");
            assert!(msg.contains("another key"), "{msg}");
        }
        other => panic!("key 1 after re-enrolment with key 2: {other:?}"),
    }
    assert_eq!(recorded(&cb), before, "a refused post was recorded");
    assert_eq!(attest_to(&ca, &ns1, &k2).unwrap().verdict, "affirming");
    // Re-enrolled through B with key 3: A's cached key 2 refuses key 3's signature; A reloads
    // before refusing, and the post is affirming.
    cb.enroll(&enrolment(w, &p3, 0, 300)).unwrap();
    assert_eq!(attest_to(&ca, &ns1, &k3).unwrap().verdict, "affirming");
    // Re-enrolled through B with the same key and a policy tolerating two forensic events:
    // A's cached policy (none tolerated) would say contraindicated; the new one says warning.
    cb.enroll(&enrolment(w, &p3, 2, 300)).unwrap();
    let a2 = attest_to(&ca, &ns2, &k3).unwrap();
    assert_eq!(a2.verdict, "warning", "{}", a2.reason);
    // And the other way round: B's cache is as stale, A re-enrols.
    assert_eq!(attest_to(&cb, &ns1, &k3).unwrap().verdict, "affirming");
    ca.enroll(&enrolment(w, &p1, 0, 300)).unwrap();
    assert_eq!(attest_to(&cb, &ns1, &k1).unwrap().verdict, "affirming");
    let last = cb.history(w).unwrap()["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["verdict"], "affirming");
    // A nonce issued by one is good at the other (one fleet key in the database), and used once
    // across both.
    let nonce = cb.nonce(w).unwrap().nonce;
    let p = post(attest(&ns1, &model, &nonce, w, &k1), &ns1);
    assert_eq!(ca.post(w, &p).unwrap().verdict, "affirming");
    match cb.post(w, &p) {
        Err(ClientError::Status { code, msg, .. }) => {
            assert_eq!(code, 409, "{msg}");
            assert!(msg.contains("replayed"), "{msg}");
        }
        other => panic!("a nonce used at A, posted again to B: {other:?}"),
    }
}
