//! `tsem attest` / `tsem verify` end to end on the real TSEM capture, with and without a TPM.
//!
//! The TPM tests start their own swtpm on free loopback ports with a temporary state directory and
//! kill it on drop. Where the `tsem-tpm` helper was not built (cargo feature `tpm`, which needs
//! libtss2-dev) or swtpm/tpm2-tools are missing, each TPM test says so in one line and returns;
//! with `TSEM_REQUIRE_TPM=1` (set by `.ci/run`) that is a failure instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod swtpm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use swtpm::{Swtpm, skip_tpm_test, skip_tpm_test_with, tpm_helper};

use common::{have, process_dir, run, shared, tmpdir};

const NONCE: &str = "6e6f6e63652d6f662d7468652d7665726966696572";
const OTHER_NONCE: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tsem failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A verification that must be rejected (exit 3) with `reason` in its one-line verdict.
fn rejected(out: &Output, reason: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "expected a rejection, got {:?}: {stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "verdict is not one line: {stdout}"
    );
    assert!(
        stdout.starts_with("rejected: ") && stdout.contains(reason),
        "verdict {stdout:?} does not give the reason {reason:?}"
    );
}

struct Setup {
    dir: PathBuf,
    key: PathBuf,
    key_pub: PathBuf,
    learned: PathBuf,
}

/// A key pair and a model learned from process_1 (`tsem model build`).
fn setup(name: &str) -> Setup {
    let dir = tmpdir(name);
    let key = dir.join("key");
    ok(&run(&["keygen", "-o", p(&key)]));
    let learned = dir.join("learned.model");
    let traj = process_dir().join("process_1.json");
    ok(&run(&["model", "build", "-o", p(&learned), p(&traj)]));
    Setup {
        key_pub: dir.join("key.pub"),
        dir,
        key,
        learned,
    }
}

fn traj(n: u32) -> String {
    process_dir()
        .join(format!("process_{n}.json"))
        .to_str()
        .unwrap()
        .to_string()
}

fn attest(s: &Setup, out: &str, extra: &[&str], files: &[u32]) -> PathBuf {
    let o = s.dir.join(out);
    let mut args = vec!["attest", "--nonce", NONCE, "--key", p(&s.key), "-o", p(&o)];
    args.extend_from_slice(extra);
    let files: Vec<String> = files.iter().map(|&n| traj(n)).collect();
    args.extend(files.iter().map(String::as_str));
    ok(&run(&args));
    o
}

fn verify(model: &Path, nonce: &str, anchor: &[&str], att: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify", "--model", p(model), "--nonce", nonce];
    args.extend_from_slice(anchor);
    args.extend_from_slice(extra);
    args.push(p(att));
    run(&args)
}

fn ear(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn learn_enforce_attest_verify_without_tpm() {
    let s = setup("rt");
    let att = attest(&s, "a.json", &["--model", p(&s.learned)], &[1]);
    let earp = s.dir.join("ear.json");
    let out = verify(
        &s.learned,
        NONCE,
        &["--key", p(&s.key_pub)],
        &att,
        &["--ear", p(&earp)],
    );
    let line = ok(&out);
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("verified: state "), "{line}");
    assert!(line.contains("155 events, 0 forensic, 0 lost"), "{line}");
    let e = ear(&earp);
    assert_eq!(e["eat_profile"], "tag:github.com,2023:veraison/ear");
    // The same EAR as a JWT signed by the verifier.
    let jwtp = s.dir.join("ear.jwt");
    let vkey = s.dir.join("verifier");
    ok(&run(&["keygen", "-o", p(&vkey)]));
    ok(&verify(
        &s.learned,
        NONCE,
        &["--key", p(&s.key_pub)],
        &att,
        &[
            "--ear",
            p(&earp),
            "--ear-jwt",
            p(&jwtp),
            "--ear-key",
            p(&vkey),
        ],
    ));
    let e = ear(&earp);
    let jwt = std::fs::read_to_string(&jwtp).unwrap();
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(payload, e);
    assert_eq!(b64.decode(parts[2]).unwrap().len(), 64);
    {
        use base64::Engine as _;
        let raw: Vec<u8> = (0..NONCE.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&NONCE[i..i + 2], 16).unwrap())
            .collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(e["eat_nonce"], b64.encode(raw));
    }
    assert!(e["iat"].as_u64().unwrap() > 0);
    assert_eq!(e["ear.verifier-id"]["developer"], "tsem");
    let sub = &e["submods"]["tsem"];
    assert_eq!(sub["ear.status"], "affirming");
    assert_eq!(sub["ear.trustworthiness-vector"]["executables"], 2);
    assert_eq!(sub["ear.trustworthiness-vector"]["instance-identity"], 2);

    // The attested state is the one `tsem replay` computes for the same enforced run.
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&att).unwrap()).unwrap();
    let r: serde_json::Value = serde_json::from_slice(
        &ok(&run(&[
            "replay",
            "--json",
            "--model",
            p(&s.learned),
            &traj(1),
        ]))
        .into_bytes(),
    )
    .unwrap();
    assert_eq!(a["claims"]["state"], r["state"]);
    assert_eq!(a["claims"]["measurement"], r["measurement"]);
    assert_eq!(a["claims"]["mode"], "enforcing");
    assert_eq!(a["claims"]["events"], 155);

    // Quixote's own model of the run (test.model) holds more points than this trajectory shows:
    // enforcing it attests its state, which the learned model does not imply.
    let quixote = process_dir().join("test.model");
    let qatt = attest(&s, "q.json", &["--model", p(&quixote)], &[1]);
    ok(&verify(
        &quixote,
        NONCE,
        &["--key", p(&s.key_pub)],
        &qatt,
        &[],
    ));
    rejected(
        &verify(&s.learned, NONCE, &["--key", p(&s.key_pub)], &qatt, &[]),
        "the state the model implies",
    );

    // Another file with the same points verifies, with a warning naming the difference.
    let commented = s.dir.join("commented.model");
    let text = std::fs::read_to_string(&s.learned).unwrap();
    std::fs::write(&commented, format!("# reviewed\n{text}")).unwrap();
    let line = ok(&verify(
        &commented,
        NONCE,
        &["--key", p(&s.key_pub)],
        &att,
        &[],
    ));
    assert!(
        line.contains("warning: the attester's model file"),
        "{line}"
    );

    // Learning mode (no model in force) attests the same state: it is the learned model's.
    let free = attest(&s, "free.json", &[], &[1]);
    let line = ok(&verify(
        &s.learned,
        NONCE,
        &["--key", p(&s.key_pub)],
        &free,
        &[],
    ));
    assert!(line.contains("no model was in force"), "{line}");
}

#[test]
fn rejections_name_the_reason() {
    let s = setup("rej");
    let key = ["--key", p(&s.key_pub)];
    let model = ["--model", p(&s.learned)];
    let good = attest(&s, "good.json", &model, &[1]);
    ok(&verify(&s.learned, NONCE, &key, &good, &[]));

    // A wrong nonce.
    rejected(
        &verify(&s.learned, OTHER_NONCE, &key, &good, &[]),
        "nonce mismatch",
    );

    // A replayed old attestation: yesterday's answer to yesterday's nonce, shown to a verifier
    // that issued a fresh nonce today.
    let old = s.dir.join("old.json");
    ok(&run(&[
        "attest",
        "--nonce",
        OTHER_NONCE,
        "--key",
        p(&s.key),
        "--model",
        p(&s.learned),
        "-o",
        p(&old),
        &traj(1),
    ]));
    ok(&verify(&s.learned, OTHER_NONCE, &key, &old, &[]));
    let replay = verify(&s.learned, NONCE, &key, &old, &[]);
    rejected(&replay, "stale or replayed");
    rejected(&replay, &format!("answers nonce {OTHER_NONCE}"));

    // A state from a different model: enforced under a model that also holds process_2's points.
    let up2 = process_dir().join("test.model.up2");
    let other = attest(&s, "other.json", &["--model", p(&up2)], &[1, 2]);
    ok(&verify(&up2, NONCE, &key, &other, &[]));
    rejected(
        &verify(&s.learned, NONCE, &key, &other, &[]),
        "the state the model implies",
    );

    // Forensics above zero when the policy demands none; tolerated up to a limit.
    let forensic = attest(&s, "forensic.json", &model, &[1, 2]);
    rejected(
        &verify(&s.learned, NONCE, &key, &forensic, &[]),
        "2 forensic event(s) at 2 forensic point(s); the policy tolerates 0",
    );
    rejected(
        &verify(
            &s.learned,
            NONCE,
            &key,
            &forensic,
            &["--max-forensics", "1"],
        ),
        "the policy tolerates 1",
    );
    let line = ok(&verify(
        &s.learned,
        NONCE,
        &key,
        &forensic,
        &["--max-forensics", "2"],
    ));
    assert!(line.contains("2 forensic"), "{line}");

    // A tampered field: the forensic count zeroed, the state replaced by the model's own.
    let text = std::fs::read_to_string(&forensic).unwrap();
    let tampered = s.dir.join("tampered.json");
    std::fs::write(
        &tampered,
        text.replace("\"forensics_events\": 2", "\"forensics_events\": 0"),
    )
    .unwrap();
    rejected(
        &verify(
            &s.learned,
            NONCE,
            &key,
            &tampered,
            &["--max-forensics", "2"],
        ),
        "signature does not verify: the signed claims were altered",
    );
    let good_state = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&good).unwrap())
        .unwrap()["claims"]["state"]
        .as_str()
        .unwrap()
        .to_string();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["claims"]["state"] = good_state.into();
    v["claims"]["forensic_points"] = serde_json::json!([]);
    std::fs::write(&tampered, v.to_string()).unwrap();
    rejected(
        &verify(&s.learned, NONCE, &key, &tampered, &[]),
        "signature does not verify",
    );
    // An unsigned field smuggled in.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["claims"]["trusted"] = true.into();
    std::fs::write(&tampered, v.to_string()).unwrap();
    rejected(
        &verify(&s.learned, NONCE, &key, &tampered, &[]),
        "malformed attestation",
    );

    // A wrong key.
    let k2 = s.dir.join("k2");
    ok(&run(&["keygen", "-o", p(&k2)]));
    rejected(
        &verify(
            &s.learned,
            NONCE,
            &["--key", p(&s.dir.join("k2.pub"))],
            &good,
            &[],
        ),
        "signed by another key",
    );

    // Lost events make the state unprovable.
    let lost = attest(
        &s,
        "lost.json",
        &["--model", p(&s.learned), "--lost-events", "3"],
        &[1],
    );
    rejected(
        &verify(&s.learned, NONCE, &key, &lost, &[]),
        "3 event(s) lost",
    );

    // The EAR of a rejection is contraindicated.
    let earp = s.dir.join("ear.json");
    rejected(
        &verify(&s.learned, NONCE, &key, &forensic, &["--ear", p(&earp)]),
        "forensic",
    );
    let e = ear(&earp);
    assert_eq!(e["submods"]["tsem"]["ear.status"], "contraindicated");
    assert_eq!(
        e["submods"]["tsem"]["ear.trustworthiness-vector"]["executables"],
        96
    );
    // Within policy, forensics are a warning.
    ok(&verify(
        &s.learned,
        NONCE,
        &key,
        &forensic,
        &["--max-forensics", "2", "--ear", p(&earp)],
    ));
    assert_eq!(ear(&earp)["submods"]["tsem"]["ear.status"], "warning");
}

/// An attestation `a.json` of the learned model whose aggregate is the event log's (SHA-256
/// bank), as `tsem eventlog replay` computes it.
fn attest_for_eventlog(s: &Setup, log: &Path) -> PathBuf {
    let r: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "eventlog",
        "replay",
        "--json",
        "--bank",
        "sha256",
        p(log),
    ])))
    .unwrap();
    let agg = r["aggregate"]["sha256"].as_str().unwrap().to_string();
    attest(
        s,
        "a.json",
        &["--model", p(&s.learned), "--aggregate", &agg],
        &[1],
    )
}

#[test]
fn aggregate_is_checked_against_the_event_log() {
    let s = setup("evlog");
    let logs = shared().join("conformance/eventlog/go-tpm-tools");
    let rhel = logs.join("rhel8-uefi.bin");
    let att = attest_for_eventlog(&s, &rhel);
    let key = ["--key", p(&s.key_pub)];
    let line = ok(&verify(
        &s.learned,
        NONCE,
        &key,
        &att,
        &["--eventlog", p(&rhel)],
    ));
    assert!(line.contains("aggregate matches the event log"), "{line}");
    // Without the log the state still verifies for that aggregate, but the verdict and the EAR
    // say that nothing vouched for an aggregate other than the model's.
    let earp = s.dir.join("ear.json");
    let line = ok(&verify(&s.learned, NONCE, &key, &att, &["--ear", p(&earp)]));
    assert!(
        line.contains("is not the model's and was not checked"),
        "{line}"
    );
    let e = ear(&earp);
    assert_eq!(e["submods"]["tsem"]["ear.status"], "warning");
    assert_eq!(
        e["submods"]["tsem"]["ear.trustworthiness-vector"]["hardware"],
        32
    );
    rejected(
        &verify(
            &s.learned,
            NONCE,
            &key,
            &att,
            &["--eventlog", p(&logs.join("ubuntu-2104-no-dbx.bin"))],
        ),
        "the aggregate of the event log",
    );
    // Without the event log the state still binds the aggregate: the model's state for another
    // aggregate is another state.
    let zero = attest(&s, "zero.json", &["--model", p(&s.learned)], &[1]);
    rejected(
        &verify(&s.learned, NONCE, &key, &zero, &["--eventlog", p(&rhel)]),
        "the aggregate of the event log",
    );
}

#[test]
fn learn_enforce_attest_verify_with_tpm() {
    if skip_tpm_test("learn_enforce_attest_verify_with_tpm") {
        return;
    }
    let s = setup("tpm");
    let tpm = Swtpm::start("a");
    let tcti = tpm.tcti();
    let ak = s.dir.join("ak.pem");
    let att = attest(
        &s,
        "t.json",
        &["--model", p(&s.learned), "--tpm", &tcti, "--ak-out", p(&ak)],
        &[1],
    );
    let akarg = ["--ak", p(&ak)];
    let line = ok(&verify(&s.learned, NONCE, &akarg, &att, &[]));
    assert!(line.contains("TPM quote (PCR 11) valid"), "{line}");
    let both = [akarg[0], akarg[1], "--key", p(&s.key_pub)];
    let earp = s.dir.join("ear.json");
    let line = ok(&verify(
        &s.learned,
        NONCE,
        &both,
        &att,
        &["--ear", p(&earp)],
    ));
    assert!(line.contains("Ed25519 signature and TPM quote"), "{line}");
    let e = ear(&earp);
    assert_eq!(e["submods"]["tsem"]["ear.status"], "affirming");
    assert_eq!(
        e["submods"]["tsem"]["ear.trustworthiness-vector"]["hardware"],
        2
    );

    // The quoted PCR 11 is the extension of the state: a second attestation extends it again and
    // still verifies (the claims carry the PCR's prior value), and the AK is the same primary.
    let ak2 = s.dir.join("ak2.pem");
    let att2 = attest(
        &s,
        "t2.json",
        &[
            "--model",
            p(&s.learned),
            "--tpm",
            &tcti,
            "--ak-out",
            p(&ak2),
        ],
        &[1],
    );
    assert_eq!(std::fs::read(&ak).unwrap(), std::fs::read(&ak2).unwrap());
    let line = ok(&verify(&s.learned, NONCE, &akarg, &att2, &[]));
    // Without --eventlog only the quote vouched for the aggregate: the verdict says exactly that.
    assert!(
        line.contains("aggregate matches the quoted PCRs 0-7"),
        "{line}"
    );
    assert!(!line.contains("event log"), "{line}");
    let v1: serde_json::Value = serde_json::from_slice(&std::fs::read(&att).unwrap()).unwrap();
    let v2: serde_json::Value = serde_json::from_slice(&std::fs::read(&att2).unwrap()).unwrap();
    assert_ne!(v1["claims"]["tpm_pcr_prior"], v2["claims"]["tpm_pcr_prior"]);

    // Wrong nonce and replay through the quote alone.
    rejected(
        &verify(&s.learned, OTHER_NONCE, &akarg, &att, &[]),
        "nonce mismatch",
    );

    // A quote over the wrong PCR.
    let pcr16 = attest(
        &s,
        "t16.json",
        &["--model", p(&s.learned), "--tpm", &tcti, "--pcr", "16"],
        &[1],
    );
    rejected(
        &verify(&s.learned, NONCE, &akarg, &pcr16, &[]),
        "quote is over PCR 16, not PCR 11",
    );
    ok(&verify(&s.learned, NONCE, &akarg, &pcr16, &["--pcr", "16"]));

    // Tampered claims under the quote alone: the quote's extraData no longer matches.
    let text = std::fs::read_to_string(&att).unwrap();
    let tampered = s.dir.join("tampered.json");
    std::fs::write(
        &tampered,
        text.replace("\"lost_events\": 0", "\"lost_events\": 1"),
    )
    .unwrap();
    rejected(
        &verify(&s.learned, NONCE, &akarg, &tampered, &[]),
        "quote extraData",
    );
    // A shipped PCR value that is not the quoted one.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["tpm"]["pcrs"][8][1] = "00".repeat(32).into();
    std::fs::write(&tampered, v.to_string()).unwrap();
    rejected(
        &verify(&s.learned, NONCE, &akarg, &tampered, &[]),
        "is not the digest",
    );

    // Another TPM's AK (a wrong key).
    let other = Swtpm::start("b");
    let other_ak = s.dir.join("other-ak.pem");
    attest(
        &s,
        "o.json",
        &[
            "--model",
            p(&s.learned),
            "--tpm",
            &other.tcti(),
            "--ak-out",
            p(&other_ak),
        ],
        &[1],
    );
    assert_ne!(
        std::fs::read(&ak).unwrap(),
        std::fs::read(&other_ak).unwrap()
    );
    rejected(
        &verify(&s.learned, NONCE, &["--ak", p(&other_ak)], &att, &[]),
        "quote signature does not verify with the given AK public key",
    );

    // A signed-only attestation offered where a quote is required.
    let plain = attest(&s, "plain.json", &["--model", p(&s.learned)], &[1]);
    rejected(
        &verify(&s.learned, NONCE, &akarg, &plain, &[]),
        "carries no TPM quote",
    );

    // A state from a different model, quoted.
    let up2 = process_dir().join("test.model.up2");
    let diff = attest(&s, "d.json", &["--model", p(&up2), "--tpm", &tcti], &[1, 2]);
    rejected(
        &verify(&s.learned, NONCE, &akarg, &diff, &[]),
        "the state the model implies",
    );
}

#[test]
fn bad_use_is_an_error_not_a_verdict() {
    let s = setup("bad");
    let out = run(&[
        "attest",
        "--nonce",
        "00",
        "--key",
        p(&s.key),
        "-o",
        p(&s.dir.join("x")),
        &traj(1),
    ]);
    // A usage error (exit 2), reported by the argument parser.
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: invalid value '00' for '--nonce <HEX>': nonce: 1 bytes"),
        "{err}"
    );
    let att = attest(&s, "a.json", &[], &[1]);
    // Neither a key nor an AK.
    let out = run(&[
        "verify",
        "--model",
        p(&s.learned),
        "--nonce",
        NONCE,
        p(&att),
    ]);
    assert_eq!(out.status.code(), Some(2), "usage error expected");
    // A private key where the public one belongs.
    let out = verify(&s.learned, NONCE, &["--key", p(&s.key)], &att, &[]);
    common::fails_with(&out, "key");
    // A TPM nobody listens at fails before the workload runs, with the helper's reason.
    let marker = s.dir.join("ran");
    let script = format!("touch {}", p(&marker));
    let out = run(&[
        "run",
        "--attest",
        p(&s.dir.join("live.json")),
        "--nonce",
        NONCE,
        "--key",
        p(&s.key),
        "--tpm",
        "swtpm:host=127.0.0.1,port=1",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    // Either way the run fails before the workload starts: the TPM is unreachable, or (built
    // without the `tpm` feature) there is no helper to reach it.
    let why = if tpm_helper().is_some() {
        "TPM: TPM connect"
    } else {
        "--tpm needs the tsem-tpm helper"
    };
    common::fails_with(&out, why);
    assert!(
        !marker.exists(),
        "the workload ran although the TPM was unreachable"
    );
}

/// The signed bytes as docs/attestation.md defines them, written independently of the library.
fn documented_encoding(c: &serde_json::Value) -> Vec<u8> {
    fn hex(s: &serde_json::Value) -> Vec<u8> {
        let s = s.as_str().unwrap();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
    fn bytes(o: &mut Vec<u8>, b: &[u8]) {
        o.extend_from_slice(&(b.len() as u32).to_be_bytes());
        o.extend_from_slice(b);
    }
    let u64v =
        |o: &mut Vec<u8>, k: &str| o.extend_from_slice(&c[k].as_u64().unwrap().to_be_bytes());
    let mut o = b"tsem-attestation-1\0".to_vec();
    bytes(&mut o, &hex(&c["nonce"]));
    for k in ["hash", "mapping", "mode"] {
        bytes(&mut o, c[k].as_str().unwrap().as_bytes());
    }
    for k in ["state", "measurement", "aggregate", "base"] {
        bytes(&mut o, &hex(&c[k]));
    }
    if c["model"].is_null() {
        o.push(0);
    } else {
        o.push(1);
        bytes(&mut o, &hex(&c["model"]));
    }
    u64v(&mut o, "events");
    u64v(&mut o, "points");
    u64v(&mut o, "forensics_events");
    let f = c["forensic_points"].as_array().unwrap();
    o.extend_from_slice(&(f.len() as u32).to_be_bytes());
    for p in f {
        bytes(&mut o, &hex(p));
    }
    u64v(&mut o, "denied");
    u64v(&mut o, "lost_events");
    for k in ["host", "workload"] {
        bytes(&mut o, c[k].as_str().unwrap().as_bytes());
    }
    u64v(&mut o, "time");
    bytes(&mut o, c["tool"].as_str().unwrap().as_bytes());
    match c["tpm_pcr"].as_u64() {
        None => o.push(0),
        Some(p) => {
            o.push(1);
            o.extend_from_slice(&(p as u32).to_be_bytes());
        }
    }
    if c["tpm_pcr_prior"].is_null() {
        o.push(0);
    } else {
        o.push(1);
        bytes(&mut o, &hex(&c["tpm_pcr_prior"]));
    }
    // [str(on_forensic)]: present only when the claims name a deviation policy.
    if let Some(p) = c["on_forensic"].as_str() {
        bytes(&mut o, p.as_bytes());
    }
    o
}

fn tool(name: &str, package: &str) {
    assert!(
        have(name),
        "{name} is not installed (apt-get install {package})"
    );
}

/// A marshalled TPMT_SIGNATURE, as tpm2_checkquote reads it.
fn tpmt_signature(alg: &str, sig: &[u8]) -> Vec<u8> {
    let tpm2b = |t: &mut Vec<u8>, b: &[u8]| {
        t.extend_from_slice(&(b.len() as u16).to_be_bytes());
        t.extend_from_slice(b);
    };
    match alg {
        // TPM_ALG_ECDSA, TPM_ALG_SHA256, TPM2B r, TPM2B s.
        "ecdsa-p256-sha256" => {
            let mut t = vec![0x00, 0x18, 0x00, 0x0b];
            tpm2b(&mut t, &sig[..32]);
            tpm2b(&mut t, &sig[32..]);
            t
        }
        // TPM_ALG_RSASSA, TPM_ALG_SHA256, TPM2B signature.
        "rsassa-sha256" => {
            let mut t = vec![0x00, 0x14, 0x00, 0x0b];
            tpm2b(&mut t, sig);
            t
        }
        other => panic!("unexpected sig_alg {other}"),
    }
}

#[test]
fn openssl_and_tpm2_checkquote_accept_the_documented_encoding() {
    if skip_tpm_test_with(
        "openssl_and_tpm2_checkquote_accept_the_documented_encoding",
        &[("tpm2_checkquote", "tpm2-tools")],
    ) {
        return;
    }
    for alg in ["ecc", "rsa"] {
        interop(alg);
    }
}

fn interop(ak_alg: &str) {
    use base64::Engine as _;
    tool("openssl", "openssl");
    tool("tpm2_checkquote", "tpm2-tools");
    let s = setup(&format!("interop-{ak_alg}"));
    let tpm = Swtpm::start(&format!("interop-{ak_alg}"));
    let ak = s.dir.join("ak.pem");
    let att = attest(
        &s,
        "t.json",
        &[
            "--model",
            p(&s.learned),
            "--tpm",
            &tpm.tcti(),
            "--ak-alg",
            ak_alg,
            "--ak-out",
            p(&ak),
        ],
        &[1, 2],
    );
    // The quote verifies with the AK it was made with, the forensics within policy.
    let line = ok(&verify(
        &s.learned,
        NONCE,
        &["--ak", p(&ak)],
        &att,
        &["--max-forensics", "2"],
    ));
    assert!(line.contains("TPM quote (PCR 11) valid"), "{line}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&att).unwrap()).unwrap();
    let msg = documented_encoding(&v["claims"]);
    let b64 = base64::engine::general_purpose::STANDARD;

    // Ed25519 over the documented bytes, checked by OpenSSL.
    let (m, sig) = (s.dir.join("claims.bin"), s.dir.join("claims.sig"));
    std::fs::write(&m, &msg).unwrap();
    let sigb = b64
        .decode(v["signature"]["value"].as_str().unwrap())
        .unwrap();
    std::fs::write(&sig, &sigb).unwrap();
    let ossl = |m: &Path| {
        Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                p(&s.key_pub),
                "-rawin",
            ])
            .args(["-in", p(m), "-sigfile", p(&sig)])
            .output()
            .unwrap()
    };
    let out = ossl(&m);
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut other = msg.clone();
    *other.last_mut().unwrap() ^= 1;
    let m2 = s.dir.join("other.bin");
    std::fs::write(&m2, &other).unwrap();
    assert!(!ossl(&m2).status.success());

    // The quote, qualified with SHA-256 of the documented bytes, checked by tpm2-tools.
    let qd = tsem_core::HashAlg::Sha256.digest(&msg).to_hex();
    let tq = &v["tpm"];
    let (qm, qs) = (s.dir.join("q.msg"), s.dir.join("q.sig"));
    std::fs::write(&qm, b64.decode(tq["attest"].as_str().unwrap()).unwrap()).unwrap();
    let hexb = |k: &str| {
        let h = tq[k].as_str().unwrap();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let sig = hexb("sig");
    let t = tpmt_signature(tq["sig_alg"].as_str().unwrap(), &sig);
    std::fs::write(&qs, &t).unwrap();
    let check = |q: &str| {
        Command::new("tpm2_checkquote")
            .args([
                "-u",
                p(&ak),
                "-m",
                p(&qm),
                "-s",
                p(&qs),
                "-g",
                "sha256",
                "-q",
                q,
            ])
            .output()
            .unwrap()
    };
    let out = check(&qd);
    assert!(
        out.status.success(),
        "tpm2_checkquote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !check(v["claims"]["nonce"].as_str().unwrap())
            .status
            .success()
    );
}

/// `tsem run --attest`: a live run's namespace attested when the workload ends, with and without a
/// TPM, and checked by `tsem verify`.
#[test]
fn live_run_is_attested_and_verified() {
    let d = tmpdir("live-run");
    let key = d.join("k");
    assert!(run(&["keygen", "-o", p(&key)]).status.success());
    let model = d.join("m");
    let work = ["/bin/sh", "-c", "cat /etc/hostname > /dev/null"];
    let learn = run(&[&["run", "--learn", "-o", p(&model), "--"][..], &work[..]].concat());
    ok(&learn);
    let nonce = "0f1e2d3c4b5a6978";
    let att = d.join("a.json");
    let enforce = run(&[
        &[
            "run",
            "--enforce",
            "--model",
            p(&model),
            "--attest",
            p(&att),
            "--nonce",
            nonce,
            "--key",
            p(&key),
            "--",
        ][..],
        &work[..],
    ]
    .concat());
    ok(&enforce);
    let key_pub = d.join("k.pub");
    let line = ok(&verify(&model, nonce, &["--key", p(&key_pub)], &att, &[]));
    assert!(line.contains("0 forensic, 0 lost"), "{line}");
    rejected(
        &verify(
            &model,
            "0f1e2d3c4b5a6979",
            &["--key", p(&key_pub)],
            &att,
            &[],
        ),
        "nonce",
    );

    // An out-of-model read under --seal is attested, and the default policy rejects it.
    let sealed = d.join("s.json");
    let other = [
        "/bin/sh",
        "-c",
        "cat /etc/os-release > /dev/null; cat /etc/hostname > /dev/null",
    ];
    let o = run(&[
        &[
            "run",
            "--seal",
            "--model",
            p(&model),
            "--attest",
            p(&sealed),
            "--nonce",
            nonce,
            "--key",
            p(&key),
            "--",
        ][..],
        &other[..],
    ]
    .concat());
    ok(&o);
    rejected(
        &verify(&model, nonce, &["--key", p(&key_pub)], &sealed, &[]),
        "forensic",
    );

    // With a TPM: the state is quoted in PCR 11 and the quote verifies with the AK alone.
    if skip_tpm_test("live_run_is_attested_and_verified (TPM part)") {
        return;
    }
    let tpm = Swtpm::start("live");
    let tcti = tpm.tcti();
    let quoted = d.join("q.json");
    let ak = d.join("ak.pem");
    let o = run(&[
        &[
            "run",
            "--enforce",
            "--model",
            p(&model),
            "--attest",
            p(&quoted),
            "--nonce",
            nonce,
            "--key",
            p(&key),
            "--tpm",
            &tcti,
            "--ak-out",
            p(&ak),
            "--",
        ][..],
        &work[..],
    ]
    .concat());
    ok(&o);
    let line = ok(&verify(&model, nonce, &["--ak", p(&ak)], &quoted, &[]));
    assert!(line.contains("TPM quote (PCR 11) valid"), "{line}");
}

/// `tsem verify --eventlog` with a log that breaks the TCG spec: the aggregate it vouches for
/// rests on how the log was replayed, so the warnings are said on stderr, each line naming it.
#[test]
fn verify_says_where_the_event_log_breaks_the_spec() {
    let s = setup("evwarn");
    let log = s.dir.join("skips-sha1.bin");
    std::fs::write(&log, tsem_testdata::tcg::missing_sha1_log(2)).unwrap();
    let att = attest_for_eventlog(&s, &log);
    let o = verify(
        &s.learned,
        NONCE,
        &["--key", p(&s.key_pub)],
        &att,
        &["--eventlog", p(&log)],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let line = ok(&o);
    assert!(line.contains("aggregate matches the event log"), "{line}");
    let warn = format!("tsem: warning: {}: ", log.display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&warn)
                && l.contains("2 records have no sha1 digest (first: event 1")),
        "{err}"
    );
}
