use p256::ecdsa::signature::Signer as _;
use sha2::Digest as _;
use tsem_core::namespace::{Config, Namespace};

use super::*;
use crate::attestation::b64_encode;
use crate::quote::{TPM_ALG_SHA256, TPM_GENERATED, TPM_ST_ATTEST_QUOTE};
use crate::{Claims, Context, Signer, TpmQuote, quote_data};

const NONCE: [u8; 16] = [0x42; 16];

fn namespace(aggregate: Digest) -> Namespace {
    let mut ns = Namespace::new(Config::default()).unwrap();
    ns.set_aggregate(aggregate).unwrap();
    for i in 0u8..20 {
        ns.load_point(HashAlg::Sha256.digest(&[i])).unwrap();
    }
    ns.enforce();
    ns
}

fn keys() -> (Signer, PublicKey) {
    let (sk, pk) = tsem_format::model_file::generate_ed25519().unwrap();
    (
        Signer::from_pem(&sk).unwrap(),
        PublicKey::from_pem(&pk).unwrap(),
    )
}

/// What swtpm would return for a quote of `pcrs` qualified with the claims' digest, signed by
/// a software "AK".
fn fake_quote(ak: &p256::ecdsa::SigningKey, claims: &Claims, pcrs: &[(u32, [u8; 32])]) -> TpmQuote {
    let extra = quote_data(claims).unwrap();
    let mut v = Vec::new();
    v.extend_from_slice(&TPM_GENERATED.to_be_bytes());
    v.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&32u16.to_be_bytes());
    v.extend_from_slice(&extra);
    v.extend_from_slice(&[0; 17]);
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    v.push(3);
    let mut bits = [0u8; 3];
    for (p, _) in pcrs {
        bits[(p / 8) as usize] |= 1 << (p % 8);
    }
    v.extend_from_slice(&bits);
    let mut h = sha2::Sha256::new();
    for (_, x) in pcrs {
        h.update(x);
    }
    v.extend_from_slice(&32u16.to_be_bytes());
    v.extend_from_slice(&h.finalize());
    let sig: p256::ecdsa::Signature = ak.sign(&v);
    let (r, s) = sig.split_bytes();
    TpmQuote {
        attest: b64_encode(&v),
        sig_alg: "ecdsa-p256-sha256".into(),
        sig: crate::claims::to_hex(&crate::quote::ecdsa_rs(&r, &s).unwrap()),
        pcrs: pcrs
            .iter()
            .map(|(i, x)| (*i, crate::claims::to_hex(x)))
            .collect(),
        ak_public: String::new(),
    }
}

fn quoted(
    ns: &Namespace,
    signer: &Signer,
    ak: &p256::ecdsa::SigningKey,
    pcr11: Option<[u8; 32]>,
) -> Attestation {
    let cx = Context {
        nonce: NONCE.to_vec(),
        ..Context::default()
    };
    let mut c = Claims::from_namespace(ns, &cx).unwrap();
    c.tpm_pcr = Some(11);
    c.tpm_pcr_prior = Some("00".repeat(32));
    let extended: [u8; 32] = sha2::Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(crate::pcr_value_of_state(&ns.state()))
        .finalize()
        .into();
    let mut pcrs: Vec<(u32, [u8; 32])> = (0..8).map(|i| (i, [0u8; 32])).collect();
    pcrs.push((11, pcr11.unwrap_or(extended)));
    let q = fake_quote(ak, &c, &pcrs);
    let mut a = Attestation::sign(c, signer).unwrap();
    a.tpm = Some(q);
    a
}

fn zeros_aggregate() -> Digest {
    tsem_core::state::hardware_aggregate(HashAlg::Sha256, &[Digest::zero(32); 8])
}

fn model_of(ns: &Namespace) -> ExpectedModel {
    ExpectedModel::from_model(&ModelFile::from_namespace(ns), HashAlg::Sha256).unwrap()
}

#[test]
fn quoted_state_must_be_the_pcr_extension_and_aggregate_the_quoted_pcrs() {
    let (signer, _) = keys();
    let ak = p256::ecdsa::SigningKey::from_bytes(&[3u8; 32].into()).unwrap();
    let mut policy = Policy::new(NONCE.to_vec());
    policy.ak = Some(AkKey::P256(*ak.verifying_key()));

    let ns = namespace(zeros_aggregate());
    let model = model_of(&ns);
    let v = verify(&quoted(&ns, &signer, &ak, None), &model, &policy).unwrap();
    assert!(v.quoted.is_some());

    // A genuine quote of a PCR 11 that does not hold this state.
    let a = quoted(&ns, &signer, &ak, Some([9; 32]));
    assert!(matches!(
        verify(&a, &model, &policy),
        Err(Rejection::PcrNotState { pcr: 11, .. })
    ));

    // An aggregate that is not the one of the quoted PCRs 0-7.
    let ns0 = namespace(Digest::zero(32));
    let a = quoted(&ns0, &signer, &ak, None);
    assert!(matches!(
        verify(&a, &model_of(&ns0), &policy),
        Err(Rejection::AggregateNotQuoted { .. })
    ));
}

#[test]
fn age_hash_and_self_contradicting_claims() {
    let (signer, key) = keys();
    let ns = namespace(Digest::zero(32));
    let model = model_of(&ns);
    let cx = Context {
        nonce: NONCE.to_vec(),
        time: 1_000,
        ..Context::default()
    };
    let att = crate::attest(&ns, &cx, &signer).unwrap();
    let mut p = Policy::new(NONCE.to_vec());
    p.key = Some(key);
    verify(&att, &model, &p).unwrap();

    p.max_age = Some(60);
    p.now = 1_060;
    verify(&att, &model, &p).unwrap();
    p.now = 1_061;
    assert_eq!(
        verify(&att, &model, &p),
        Err(Rejection::TooOld { age: 61, max: 60 })
    );
    p.now = 1_000 - MAX_SKEW - 1;
    assert!(matches!(
        verify(&att, &model, &p),
        Err(Rejection::FromTheFuture { .. })
    ));
    p.max_age = None;

    // The verifier fixes the hash function: another 32-byte function is not accepted.
    let sm3 = ExpectedModel::from_model(&ModelFile::from_namespace(&ns), HashAlg::Sm3).unwrap();
    assert!(matches!(
        verify(&att, &sm3, &p),
        Err(Rejection::Hash { .. })
    ));

    // More forensic points than the policy tolerates are refused before any hashing.
    let mut c = att.claims.clone();
    c.forensic_points = vec![HashAlg::Sha256.digest(&[3]).to_hex()];
    let many = Attestation::sign(c, &signer).unwrap();
    assert!(matches!(
        verify(&many, &model, &p),
        Err(Rejection::Forensics {
            points: 1,
            max: 0,
            ..
        })
    ));
    p.max_forensics = 5;
    // A key holder claiming a model point as forensic is caught before the state is hashed.
    let mut c = att.claims.clone();
    c.forensic_points = vec![HashAlg::Sha256.digest(&[3]).to_hex()];
    c.forensics_events = 1;
    let lie = Attestation::sign(c, &signer).unwrap();
    assert!(matches!(
        verify(&lie, &model, &p),
        Err(Rejection::ForensicInModel(_))
    ));
    // Signed counters that do not fit the verified point set.
    let mut c = att.claims.clone();
    c.points += 1;
    let lie = Attestation::sign(c, &signer).unwrap();
    assert!(matches!(
        verify(&lie, &model, &p),
        Err(Rejection::Counters(_))
    ));
    // Unsorted forensic points are malformed (one set, one encoding).
    let mut c = att.claims.clone();
    c.forensic_points = vec!["ff".repeat(32), "01".repeat(32)];
    let lie = Attestation::sign(c, &signer).unwrap();
    assert!(matches!(
        verify(&lie, &model, &p),
        Err(Rejection::Malformed(_))
    ));
}

#[test]
fn state_with_forensics_is_the_namespace_state() {
    let ns = namespace(Digest::zero(32));
    let model = model_of(&ns);
    assert_eq!(model.state_with(&ns.aggregate(), &[]), ns.state());
    let mut ns2 = ns.clone();
    let f = HashAlg::Sha256.digest(b"outside");
    use tsem_core::event::{Cell, Coe, Event, EventHeader, EventType};
    let z = HashAlg::Sha256.null_id();
    let ev = Event {
        header: EventHeader::new("t", EventType::Capable, z, z),
        coe: Coe::default(),
        cell: Cell::Capable { cap: 1, opts: 0 },
    };
    ns2.model_coefficient(1, f, &ev).unwrap();
    assert_ne!(ns2.state(), ns.state());
    assert_eq!(model.state_with(&ns2.aggregate(), &[f]), ns2.state());
}

/// Flip one bit of every byte of a signed and quoted attestation file: nothing panics, and
/// whatever still verifies states exactly the same claims (e.g. a hex digit's letter case).
#[test]
fn every_single_byte_corruption_is_rejected_or_harmless() {
    let (signer, key) = keys();
    let ak = p256::ecdsa::SigningKey::from_bytes(&[5u8; 32].into()).unwrap();
    let ns = namespace(zeros_aggregate());
    let model = model_of(&ns);
    let att = quoted(&ns, &signer, &ak, None);
    let text = att.to_json();
    let canonical = att.claims.canonical().unwrap();
    let mut p = Policy::new(NONCE.to_vec());
    p.key = Some(key);
    p.ak = Some(AkKey::P256(*ak.verifying_key()));
    verify(&att, &model, &p).unwrap();
    let mut bytes = text.into_bytes();
    for i in 0..bytes.len() {
        bytes[i] ^= 0x20;
        if let Ok(t) = std::str::from_utf8(&bytes)
            && let Ok(a) = Attestation::from_json(t)
            && verify(&a, &model, &p).is_ok()
        {
            assert_eq!(a.claims.canonical().unwrap(), canonical, "byte {i}");
        }
        bytes[i] ^= 0x20;
    }
}

#[test]
fn bench_verifies_every_attestation() {
    let ns = namespace(Digest::zero(32));
    let r = crate::bench_verify(&ns, &model_of(&ns), 20).unwrap();
    assert_eq!(r.n, 20);
    assert_eq!(r.model_points, 20);
}
