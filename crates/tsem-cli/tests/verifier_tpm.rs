//! TPM-rooted enrolment end to end: swtpms manufactured with EK certificates from local CAs the
//! test creates, a `tsem verifier serve --ek-ca` process, `tsem verifier activate` and
//! `tsem attest --verifier --tpm` as separate processes. Each refusal is tested by its effect: the
//! workload's TPM attestations stay unappraised.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod swtpm;
mod verifier_process;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use swtpm::{LocalCa, Swtpm, path as p, skip_tpm_test, skip_tpm_test_with};
use tsem_verifier::protocol::{ActivationAnswer, ActivationRequest};
use tsem_verifier::{Client, ClientError};
use verifier_process::{Verifier, text};

fn tsem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
}

fn run(args: &[&str]) -> Output {
    tsem().args(args).stdin(Stdio::null()).output().unwrap()
}

fn process_dir() -> PathBuf {
    tsem_testdata::conformance_dir().join("tsem/process")
}

/// `(EK certificate DER, AK TPMT_PUBLIC, AK PEM)` of a TPM, as its helper reports them.
fn identity(t: &Swtpm) -> (Vec<u8>, Vec<u8>, String) {
    let id = t.helper(&["identity"]).unwrap();
    let hex = |k: &str| tsem_attest::claims::from_hex("x", id[k].as_str().unwrap()).unwrap();
    let (ek, ak) = (hex("ek_cert"), hex("ak_public"));
    let pem = tsem_attest::credential::AkPublic::parse(&ak).unwrap().pem;
    (ek, ak, pem)
}

struct Fleet {
    dir: tsem_testdata::services::TempDir,
    v: Verifier,
    token: PathBuf,
    key: PathBuf,
}

impl Fleet {
    /// Enrol `workload` with the Ed25519 key and `ak_pem` as its AK.
    fn enroll(&self, workload: &str, ak_pem: &str) {
        let ak = self.dir.0.join(format!("{workload}.ak.pem"));
        std::fs::write(&ak, ak_pem).unwrap();
        let o = run(&[
            "verifier",
            "enroll",
            "--url",
            &self.v.url,
            "--token-file",
            p(&self.token),
            "--workload",
            workload,
            "--model",
            p(&process_dir().join("test.model")),
            "--key",
            &format!("{}.pub", p(&self.key)),
            "--ak",
            p(&ak),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }

    fn activate(&self, workload: &str, t: &Swtpm, extra: &[&str]) -> Output {
        let tcti = t.tcti();
        let mut args = vec![
            "verifier",
            "activate",
            "--url",
            &self.v.url,
            "--workload",
            workload,
            "--tpm",
            &tcti,
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    /// `tsem attest --verifier --tpm` of process_1 under test.model.
    fn attest(&self, workload: &str, t: &Swtpm) -> Output {
        run(&[
            "attest",
            "--verifier",
            &self.v.url,
            "--workload",
            workload,
            "--key",
            p(&self.key),
            "--tpm",
            &t.tcti(),
            "--model",
            p(&process_dir().join("test.model")),
            p(&process_dir().join("process_1.json")),
        ])
    }
}

fn refused(o: &Output, needle: &str) {
    assert!(!o.status.success(), "accepted:\n{}", text(o));
    assert!(
        text(o).contains(needle),
        "expected {needle:?}:\n{}",
        text(o)
    );
}

#[test]
fn an_ak_counts_only_after_activation_against_a_certified_ek() {
    if skip_tpm_test("an_ak_counts_only_after_activation_against_a_certified_ek") {
        return;
    }
    let (ca, other_ca) = (LocalCa::new("vendor"), LocalCa::new("other"));
    let a = Swtpm::manufactured("a", &ca);
    let b = Swtpm::manufactured("b", &ca);
    let foreign = Swtpm::manufactured("foreign", &other_ca);

    let dir = tsem_testdata::services::TempDir::new("verifier-tpm");
    let db = format!("sqlite://{}", p(&dir.0.join("v.db")));
    let token = dir.0.join("token");
    let v = Verifier::start(
        &db,
        &[
            "--admin-token-file",
            p(&token),
            "--ek-ca",
            p(&ca.issuer_cert()),
        ],
    );
    let key = dir.0.join("key");
    assert!(run(&["keygen", "-o", p(&key)]).status.success());
    let f = Fleet { dir, v, token, key };

    let (_, _, ak_a) = identity(&a);
    let (ek_b, ak_b_public, ak_b) = identity(&b);
    let (_, _, ak_foreign) = identity(&foreign);
    f.enroll("a", &ak_a);
    f.enroll("b", &ak_b);
    f.enroll("foreign", &ak_foreign);

    // Not activated yet: a quote by the enrolled AK is not appraised.
    refused(&f.attest("a", &a), "not activated");

    // The EK certificate of another TPM (genuine, same CA): the credential is encrypted to that
    // TPM's EK, so this TPM cannot recover it.
    let ek_b_file = f.dir.0.join("ek_b.der");
    std::fs::write(&ek_b_file, &ek_b).unwrap();
    refused(
        &f.activate("a", &a, &["--ek-cert", p(&ek_b_file)]),
        "ActivateCredential",
    );
    refused(&f.attest("a", &a), "not activated");

    // Another TPM's AK for this workload: not the AK enrolled.
    refused(&f.activate("a", &b, &[]), "not the one enrolled");

    // An EK certified by a CA this verifier does not trust (swtpm_localca names every CA alike:
    // only the signature tells them apart).
    refused(
        &f.activate("foreign", &foreign, &[]),
        "EK certificate: CA \"CN=swtpm-localca\": signature does not verify",
    );
    refused(&f.attest("foreign", &foreign), "not activated");

    // The genuine pair: activated, and then its quotes are appraised.
    let o = f.activate("a", &a, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("activated a"), "{}", text(&o));
    let o = f.attest("a", &a);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("affirming"), "{}", text(&o));
    // Once is enough, and the history says against which EK.
    refused(&f.activate("a", &a, &[]), "already activated");
    let client = Client::new(&f.v.url, None).unwrap();
    let h = client.history("a").unwrap().to_string();
    assert!(h.contains("AK activated"), "{h}");

    // A replayed activation: the answer that activated once is refused the second time, and a
    // wrong answer spends its challenge.
    let req = ActivationRequest {
        ek_cert: tsem_attest::claims::to_hex(&ek_b),
        ak_public: tsem_attest::claims::to_hex(&ak_b_public),
        ek_chain: Vec::new(),
    };
    let wrong = client.activation_challenge("b", &req).unwrap();
    let guess = ActivationAnswer {
        credential: "00".repeat(32),
    };
    let e = client
        .activation_answer("b", &wrong.challenge, &guess)
        .unwrap_err();
    assert!(matches!(e, ClientError::Status { code: 403, .. }), "{e}");
    assert!(e.to_string().contains("wrong credential"), "{e}");
    let ch = client.activation_challenge("b", &req).unwrap();
    let got = b
        .helper(&[
            "activate",
            "--blob",
            &ch.credential_blob,
            "--secret",
            &ch.secret,
        ])
        .unwrap();
    let answer = ActivationAnswer {
        credential: got["credential"].as_str().unwrap().to_string(),
    };
    // The right answer to the spent challenge is refused too.
    let e = client
        .activation_answer("b", &wrong.challenge, &answer)
        .unwrap_err();
    assert!(e.to_string().contains("replayed"), "{e}");
    client
        .activation_answer("b", &ch.challenge, &answer)
        .unwrap();
    let e = client
        .activation_answer("b", &ch.challenge, &answer)
        .unwrap_err();
    assert!(matches!(e, ClientError::Status { code: 409, .. }), "{e}");
    assert!(e.to_string().contains("replayed"), "{e}");
    let o = f.attest("b", &b);
    assert!(o.status.success(), "{}", text(&o));
}

/// EK certificates issued by an intermediate CA: the verifier trusts only the root
/// (`--ek-ca ROOT`), the attester sends the intermediate (`activate --ek-chain`). Without it, or
/// with an intermediate of the same name under another root, nothing is activated.
#[test]
fn an_ek_certificate_chains_through_an_intermediate_ca() {
    if skip_tpm_test("an_ek_certificate_chains_through_an_intermediate_ca") {
        return;
    }
    let (ca, other_ca) = (LocalCa::new("chain"), LocalCa::new("chain-other"));
    let t = Swtpm::manufactured("chain", &ca);
    let foreign = Swtpm::manufactured("chain-foreign", &other_ca);
    let root = ca.dir.join("state/swtpm-localca-rootca-cert.pem");
    assert!(root.exists(), "swtpm_localca made no root CA certificate");

    let dir = tsem_testdata::services::TempDir::new("verifier-chain");
    let db = format!("sqlite://{}", p(&dir.0.join("v.db")));
    let token = dir.0.join("token");
    let v = Verifier::start(&db, &["--admin-token-file", p(&token), "--ek-ca", p(&root)]);
    let key = dir.0.join("key");
    assert!(run(&["keygen", "-o", p(&key)]).status.success());
    let f = Fleet { dir, v, token, key };
    let (_, _, ak) = identity(&t);
    let (_, _, ak_foreign) = identity(&foreign);
    f.enroll("c", &ak);
    f.enroll("foreign", &ak_foreign);

    // The EK certificate alone: its issuer is not a configured CA.
    refused(&f.activate("c", &t, &[]), "none of the 1 configured CA");
    // An intermediate of the same name under another root: the root's signature decides.
    let other_chain = other_ca.issuer_cert();
    refused(
        &f.activate("foreign", &foreign, &["--ek-chain", p(&other_chain)]),
        "signature does not verify",
    );
    refused(&f.attest("foreign", &foreign), "not activated");
    // The genuine intermediate of this TPM's vendor sent with the EK, the wrong one is refused.
    refused(
        &f.activate("c", &t, &["--ek-chain", p(&other_chain)]),
        "signature does not verify",
    );
    refused(&f.attest("c", &t), "not activated");
    let o = f.activate("c", &t, &["--ek-chain", p(&ca.issuer_cert())]);
    assert!(o.status.success(), "{}", text(&o));
    let o = f.attest("c", &t);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("affirming"), "{}", text(&o));
}

/// An ECC P-256 EK (the TCG low-range template; swtpm_setup certifies only its RSA 2048 and ECC
/// P-384 EKs, so the test certifies the P-256 one itself with the vendor CA's key, as a vendor
/// would): the credential's seed is agreed by ECDH and only this TPM's EK recovers it.
#[test]
fn an_ecc_p256_ek_activates() {
    let tools = [("tpm2_createek", "tpm2-tools"), ("openssl", "openssl")];
    if skip_tpm_test_with("an_ecc_p256_ek_activates", &tools) {
        return;
    }
    let ca = LocalCa::new("ecc");
    let t = Swtpm::manufactured("ecc", &ca);
    let dir = tsem_testdata::services::TempDir::new("verifier-ecc-ek");
    let ek_pem = dir.0.join("ek.pem");
    let o = Command::new("tpm2_createek")
        .args(["-T", &t.tcti(), "-G", "ecc", "-c", p(&dir.0.join("ek.ctx"))])
        .args(["-u", p(&ek_pem), "-f", "pem"])
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let _ = Command::new("tpm2_flushcontext")
        .args(["-T", &t.tcti(), "-t"])
        .env("TSS2_LOG", "all+none")
        .output();
    let ek_cert = dir.0.join("ek-ecc.pem");
    let state = ca.dir.join("state");
    let o = Command::new("openssl")
        .args([
            "x509",
            "-new",
            "-subj",
            "/CN=tsem test ECC EK",
            "-days",
            "2",
        ])
        .args(["-force_pubkey", p(&ek_pem)])
        .args(["-CA", p(&ca.issuer_cert())])
        .args(["-CAkey", p(&state.join("signkey.pem"))])
        .args(["-out", p(&ek_cert)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let db = format!("sqlite://{}", p(&dir.0.join("v.db")));
    let token = dir.0.join("token");
    let v = Verifier::start(
        &db,
        &[
            "--admin-token-file",
            p(&token),
            "--ek-ca",
            p(&ca.issuer_cert()),
        ],
    );
    let key = dir.0.join("key");
    assert!(run(&["keygen", "-o", p(&key)]).status.success());
    let f = Fleet { dir, v, token, key };
    let (ek_rsa, _, ak) = identity(&t);
    f.enroll("e", &ak);
    refused(&f.attest("e", &t), "not activated");
    // The RSA EK's certificate with the ECC EK in the TPM: the seed is encrypted to a key the
    // ECC EK does not hold.
    let rsa_file = f.dir.0.join("ek-rsa.der");
    std::fs::write(&rsa_file, &ek_rsa).unwrap();
    refused(
        &f.activate("e", &t, &["--ek-alg", "ecc", "--ek-cert", p(&rsa_file)]),
        "ActivateCredential",
    );
    refused(&f.attest("e", &t), "not activated");
    let o = f.activate("e", &t, &["--ek-alg", "ecc", "--ek-cert", p(&ek_cert)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = f.attest("e", &t);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("affirming"), "{}", text(&o));
}
