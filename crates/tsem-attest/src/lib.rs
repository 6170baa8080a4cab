//! # tsem-attest
//!
//! Attestation of a modeling namespace: TSEM's promise that "the relying party only needs to
//! evaluate a single signed value", end to end.
//!
//! - The attester ([`attest`]) turns a finished [`Namespace`] into [`Claims`] (nonce, state,
//!   measurement, aggregate, base, hash function, model digest, counts, lost events, identity,
//!   time), signs their canonical bytes with Ed25519 and, with a TPM ([`tpm::Tpm`], feature `tpm`),
//!   extends the state into a PCR and quotes it with PCRs 0–7.
//! - The verifier ([`verify()`]) checks the signature and/or quote in pure Rust, the nonce, the age,
//!   that the state is the one the expected model implies for the attested aggregate, the aggregate
//!   against the verifier's own (event log, quoted PCRs 0–7), lost events and a forensics policy.
//! - [`ear::ear`] renders the outcome as an IETF RATS EAR.
//!
//! The file format and the signed encoding are described in `docs/attestation.md` and
//! [`claims`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attestation;
pub mod claims;
pub mod credential;
pub mod ear;
pub mod observed;
pub mod quote;
pub mod sealed;
#[cfg(feature = "tpm")]
pub mod tpm;
#[cfg(feature = "tpm")]
pub mod tpm_seal;
pub mod verify;

use sha2::Digest as _;
pub use tsem_core::namespace::Namespace;

pub use attestation::{Attestation, AttestationError, PublicKey, Signer, quote_data};
pub use claims::{Claims, ClaimsError, Context, Identity, host_identity, now_unix, parse_nonce};
pub use observed::Observed;
pub use quote::{AkAlg, AkKey, QuoteError, TpmQuote};
pub use verify::{
    DEFAULT_PCR, ExpectedModel, Policy, Rejection, StateMemo, Verified, model_digest, verify,
    verify_memo,
};

/// The value extended into the PCR's SHA-256 bank for a state: the state itself when it is 32
/// bytes (sha256, sm3), else its SHA-256.
pub fn pcr_value_of_state(state: &tsem_core::Digest) -> [u8; 32] {
    let b = state.as_bytes();
    match <[u8; 32]>::try_from(b) {
        Ok(a) => a,
        Err(_) => sha2::Sha256::digest(b).into(),
    }
}

/// Attest a finished namespace: claims from `ns` and `cx`, signed with `signer`.
///
/// This is the entry point for `tsem run --attest`: model the workload, then call this (or
/// [`attest_with_tpm`]) with the sensor's lost-event count in `cx.lost_events`.
pub fn attest(
    ns: &Namespace,
    cx: &Context,
    signer: &Signer,
) -> Result<Attestation, AttestationError> {
    attest_observed(&Observed::of(ns), cx, signer)
}

/// [`attest`] from what was observed of a namespace (a live run's published copy).
pub fn attest_observed(
    o: &Observed,
    cx: &Context,
    signer: &Signer,
) -> Result<Attestation, AttestationError> {
    Attestation::sign(Claims::from_observed(o, cx)?, signer)
}

/// [`attest`], and the state extended into `pcr` of `tpm` and quoted with PCRs 0–7, the quote
/// qualified with [`quote_data`] of the claims (which hold the nonce).
///
/// # Warning
/// - The namespace's aggregate must be the TPM's ([`tpm::Tpm::hardware_aggregate`], set with
///   `Namespace::set_aggregate` *before* the first event), or verification with the AK fails:
///   the verifier checks the aggregate against the quoted PCRs 0–7.
/// - Each call extends the PCR again; the claims record the PCR's value before the extension, so
///   repeated attestations verify, but the PCR can never be rolled back.
pub fn attest_with_tpm(
    ns: &Namespace,
    cx: &Context,
    signer: &Signer,
    tpm: &mut dyn QuoteDevice,
    pcr: u32,
) -> Result<Attestation, AttestationError> {
    attest_observed_with_tpm(&Observed::of(ns), cx, signer, tpm, pcr)
}

/// [`attest_with_tpm`] from what was observed of a namespace.
pub fn attest_observed_with_tpm(
    o: &Observed,
    cx: &Context,
    signer: &Signer,
    tpm: &mut dyn QuoteDevice,
    pcr: u32,
) -> Result<Attestation, AttestationError> {
    let mut claims = Claims::from_observed(o, cx)?;
    let prior = tpm
        .read_pcrs(&[pcr])?
        .first()
        .map(|p| p.1)
        .ok_or_else(|| AttestationError::Device("the TPM returned no PCR value".into()))?;
    claims.tpm_pcr = Some(pcr);
    claims.tpm_pcr_prior = Some(claims::to_hex(&prior));
    let quote = tpm.extend_and_quote(pcr, &pcr_value_of_state(&o.state), &quote_data(&claims)?)?;
    let mut a = Attestation::sign(claims, signer)?;
    a.tpm = Some(quote);
    Ok(a)
}

/// A TPM that can read, extend and quote PCRs (SHA-256 bank): [`tpm::Tpm`] in this process
/// (feature `tpm`), or a helper process, so that a program need not link tpm2-tss to attest.
pub trait QuoteDevice {
    /// SHA-256 values of `pcrs`, ascending.
    fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<Vec<(u32, [u8; 32])>, AttestationError>;
    /// Extend `value` into `pcr`, then quote PCRs 0–7 and `pcr` with `qualifying` as
    /// `extraData`.
    fn extend_and_quote(
        &mut self,
        pcr: u32,
        value: &[u8; 32],
        qualifying: &[u8],
    ) -> Result<TpmQuote, AttestationError>;
}

/// The TSEM hardware aggregate (spec §4.1) of the TPM behind `tpm`: `alg` over its SHA-256
/// PCRs 0–7.
pub fn hardware_aggregate(
    tpm: &mut dyn QuoteDevice,
    alg: tsem_core::HashAlg,
) -> Result<tsem_core::Digest, AttestationError> {
    let v = tpm.read_pcrs(&[0, 1, 2, 3, 4, 5, 6, 7])?;
    let d: Vec<tsem_core::Digest> = v
        .iter()
        .filter_map(|p| tsem_core::Digest::from_slice(&p.1))
        .collect();
    Ok(tsem_core::state::hardware_aggregate(alg, &d))
}

/// Measured verification throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// Attestations verified.
    pub n: usize,
    /// Points in the model each verification hashes.
    pub model_points: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Verifications per second.
    pub per_second: f64,
}

/// Verify `n` distinct attestations (each with its own nonce, so nothing is cached) of the
/// namespace `ns` against `model`, signed with a fresh Ed25519 key, and time only the verification.
/// Every verification runs the full check, including recomputing the model's state.
pub fn bench_verify(
    ns: &Namespace,
    model: &ExpectedModel,
    n: usize,
) -> Result<BenchResult, AttestationError> {
    let (sk, pk) = tsem_format::model_file::generate_ed25519()
        .map_err(|e| AttestationError::Key(e.to_string()))?;
    let signer = Signer::from_pem(&sk)?;
    let key = PublicKey::from_pem(&pk)?;
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let cx = Context {
            nonce: nonce.to_vec(),
            time: 1,
            ..Context::default()
        };
        let att = attest(ns, &cx, &signer)?;
        let json = att.to_json();
        items.push((nonce, json));
    }
    let t = std::time::Instant::now();
    for (nonce, json) in &items {
        // Parsing the file is part of verifying it.
        let att = Attestation::from_json(json)?;
        let mut p = Policy::new(nonce.to_vec());
        p.key = Some(key.clone());
        verify(&att, model, &p).map_err(|e| AttestationError::Format(e.to_string()))?;
    }
    let seconds = t.elapsed().as_secs_f64();
    Ok(BenchResult {
        n,
        model_points: model.len(),
        seconds,
        per_second: if seconds > 0.0 {
            n as f64 / seconds
        } else {
            f64::INFINITY
        },
    })
}
