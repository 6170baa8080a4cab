//! The verifier: is this attestation authentic, fresh, and is its state the one the expected model
//! implies? Its cost depends on the model's size (one hash chain over its points) and on the
//! number of forensic points the policy tolerates, never on how long the workload ran.

use ed25519_dalek::pkcs8::DecodePublicKey as _;
use sha2::Digest as _;
use tsem_core::Hasher;
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::state::{aggregate_seed, hardware_aggregate, project};
use tsem_format::ModelFile;

use crate::attestation::{PublicKey, b64_decode, quote_data};
use crate::claims::{ClaimsError, from_hex, to_hex};
use crate::quote::{AkKey, QuoteError, verify_quote_with};
use crate::{Attestation, pcr_value_of_state};

mod memo;
pub use memo::StateMemo;

/// The digest of a model file as attested: SHA-256 of the bytes its signatures cover
/// ([`ModelFile::signed_data`]: every line but signature lines, each followed by a NUL). Signing a
/// model later does not change its digest; editing any other line, comments included, does.
pub fn model_digest(m: &ModelFile) -> Digest {
    HashAlg::Sha256.digest(&m.signed_data())
}

/// What the verifier expects: the model's points, base and digest, under a hash function the
/// verifier (not the attester) chooses.
#[derive(Debug, Clone)]
pub struct ExpectedModel {
    alg: HashAlg,
    base: Digest,
    /// The model's `aggregate` line, if any (the platform it was learned on).
    aggregate: Option<Digest>,
    /// Sorted, unique.
    points: Vec<Digest>,
    /// `P(c) = HF(base || c)` of each point, in the same order: the projection does not depend on
    /// the aggregate, so it is computed once per model and each verification hashes once per point.
    projected: Vec<Digest>,
    digest: Digest,
}

/// A model that cannot be used for verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The model's digests do not fit the hash function.
    #[error("the model holds {got}-byte digests but {alg} digests are {expected} bytes")]
    DigestSize {
        /// The hash function.
        alg: &'static str,
        /// Its size.
        expected: usize,
        /// The model's size.
        got: usize,
    },
}

impl ExpectedModel {
    /// From a parsed model file. Verifying the model's own signature is the caller's business.
    pub fn from_model(m: &ModelFile, alg: HashAlg) -> Result<Self, ModelError> {
        if let Some(got) = m.digest_size()
            && got != alg.size()
        {
            return Err(ModelError::DigestSize {
                alg: alg.name(),
                expected: alg.size(),
                got,
            });
        }
        let mut points: Vec<Digest> = m.states().copied().collect();
        points.sort_unstable();
        points.dedup();
        let base = m.base().unwrap_or_else(|| alg.null_id());
        let projected = points.iter().map(|c| project(alg, &base, c)).collect();
        Ok(Self {
            alg,
            base,
            aggregate: m.aggregate(),
            points,
            projected,
            digest: model_digest(m),
        })
    }

    /// Number of unique points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the model has no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The model's digest ([`model_digest`]).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The state of a namespace holding exactly the model's points plus `forensic` (sorted,
    /// unique, none in the model) for `aggregate`: one merge of two sorted lists.
    pub fn state_with(&self, aggregate: &Digest, forensic: &[Digest]) -> Digest {
        let (alg, base) = (self.alg, &self.base);
        let step = |s: &Digest, projected: &Digest| {
            let mut h = Hasher::new(alg);
            h.update(s.as_bytes());
            h.update(projected.as_bytes());
            h.finalize()
        };
        let mut s = aggregate_seed(alg, base, aggregate);
        let (mut i, mut j) = (0, 0);
        loop {
            match (self.points.get(i), forensic.get(j)) {
                (Some(a), Some(b)) if a > b => {
                    s = step(&s, &project(alg, base, b));
                    j += 1;
                }
                (Some(_), _) => {
                    let Some(pa) = self.projected.get(i) else {
                        break;
                    };
                    s = step(&s, pa);
                    i += 1;
                }
                (None, Some(b)) => {
                    s = step(&s, &project(alg, base, b));
                    j += 1;
                }
                (None, None) => break,
            }
        }
        s
    }

    fn contains(&self, d: &Digest) -> bool {
        self.points.binary_search(d).is_ok()
    }
}

/// The PCR `tsem attest --tpm` extends by default, as TSEM's root model does.
pub const DEFAULT_PCR: u32 = 11;

/// The relying party's policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The fresh nonce this verifier issued.
    pub nonce: Vec<u8>,
    /// Check the Ed25519 signature with this key.
    pub key: Option<PublicKey>,
    /// Check the TPM quote with this AK.
    pub ak: Option<AkKey>,
    /// The PCR the state must be quoted in.
    pub pcr: u32,
    /// Most forensic events tolerated (0: the workload must have stayed inside its model).
    pub max_forensics: u64,
    /// Oldest attestation accepted, in seconds, with the verifier's `now`.
    pub max_age: Option<u64>,
    /// The verifier's clock (seconds since the Unix epoch).
    pub now: u64,
    /// The hardware aggregate the verifier computed (e.g. from a TCG event log).
    pub aggregate: Option<Digest>,
    /// The deviation policy the workload must have run under (an attestation without one ran
    /// under `untrust`).
    pub on_forensic: Option<tsem_core::policy::Policy>,
}

impl Policy {
    /// A policy for `nonce` with the defaults: PCR 11, no forensics, no age limit, no anchors.
    pub fn new(nonce: Vec<u8>) -> Self {
        Self {
            nonce,
            key: None,
            ak: None,
            pcr: DEFAULT_PCR,
            max_forensics: 0,
            max_age: None,
            now: 0,
            aggregate: None,
            on_forensic: None,
        }
    }
}

/// Why an attestation was rejected. Each message is the exact reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A field cannot be decoded.
    #[error("malformed attestation: {0}")]
    Malformed(String),
    /// Neither a key nor an AK was given.
    #[error("no trust anchor: give an Ed25519 public key or a TPM AK")]
    NoTrustAnchor,
    /// The policy asks for a signature the attestation lacks.
    #[error("attestation is not signed")]
    Unsigned,
    /// Signed by another key than the one trusted.
    #[error("signed by another key (key id {got}), not the trusted key (key id {expected})")]
    WrongKey {
        /// Trusted key id.
        expected: String,
        /// Key id named by the attestation.
        got: String,
    },
    /// The signature does not cover these claims: a field was altered.
    #[error("signature does not verify: the signed claims were altered")]
    BadSignature,
    /// The policy asks for a quote the attestation lacks.
    #[error("attestation carries no TPM quote")]
    NoQuote,
    /// The quote is not over the PCR the policy names.
    #[error("quote is over {}, not PCR {expected}", match .got { Some(p) => format!("PCR {p}"), None => "no state PCR".to_string() })]
    WrongPcr {
        /// PCR the policy expects.
        expected: u32,
        /// PCR the attestation used.
        got: Option<u32>,
    },
    /// A quote check failed.
    #[error("TPM quote: {0}")]
    Quote(#[from] QuoteError),
    /// The quoted PCR is not the extension of the attested state.
    #[error("quoted PCR {pcr} is {quoted}, not the extension {expected} of the attested state")]
    PcrNotState {
        /// PCR index.
        pcr: u32,
        /// Quoted value.
        quoted: String,
        /// SHA-256(prior || state).
        expected: String,
    },
    /// The attested aggregate is not the one the quoted PCRs 0–7 give.
    #[error("attested aggregate {attested} is not {quoted}, the aggregate of the quoted PCRs 0-7")]
    AggregateNotQuoted {
        /// Attested.
        attested: String,
        /// From the quote.
        quoted: String,
    },
    /// Not this verifier's nonce: an old (replayed) or foreign attestation.
    #[error(
        "nonce mismatch: attestation answers nonce {got}, not this verifier's nonce {expected} (stale or replayed)"
    )]
    Nonce {
        /// The verifier's nonce (hex).
        expected: String,
        /// The attested nonce (hex).
        got: String,
    },
    /// Too old.
    #[error("attestation is {age} s old; the policy accepts at most {max} s")]
    TooOld {
        /// Age in seconds.
        age: u64,
        /// Limit.
        max: u64,
    },
    /// Made in the future by more than the tolerated skew.
    #[error("attestation time {time} is {ahead} s ahead of the verifier's clock")]
    FromTheFuture {
        /// Attested time.
        time: u64,
        /// Seconds ahead.
        ahead: u64,
    },
    /// The workload ran under another deviation policy than the one required.
    #[error("the workload ran with --on-forensic {got}; the policy requires {required}")]
    DeviationPolicy {
        /// Required.
        required: &'static str,
        /// Attested.
        got: &'static str,
    },
    /// The namespace's hash function is not the verifier's.
    #[error("attested hash function {got} is not the verifier's {expected}")]
    Hash {
        /// Verifier's.
        expected: &'static str,
        /// Attested.
        got: String,
    },
    /// The base is not the model's.
    #[error("attested base {got} is not the model's base {expected}")]
    Base {
        /// The model's.
        expected: String,
        /// Attested.
        got: String,
    },
    /// A point claimed forensic is in the model: the claims contradict themselves.
    #[error("forensic point {0} is a point of the model")]
    ForensicInModel(String),
    /// The state is not the model's.
    #[error(
        "state {attested} is not {expected}, the state the model implies for aggregate {aggregate} with {forensic} forensic point(s): a different model or a tampered namespace"
    )]
    State {
        /// Attested.
        attested: String,
        /// Computed from the model.
        expected: String,
        /// Aggregate used.
        aggregate: String,
        /// Forensic points included.
        forensic: usize,
    },
    /// Signed counters that contradict the verified state.
    #[error("counters contradict the state: {0}")]
    Counters(String),
    /// The aggregate is not the one the event log gives.
    #[error("attested aggregate {attested} is not {eventlog}, the aggregate of the event log")]
    Aggregate {
        /// Attested.
        attested: String,
        /// From the event log.
        eventlog: String,
    },
    /// Events were lost, so the state does not account for everything the workload did.
    #[error("{0} event(s) lost: the state does not cover the whole workload")]
    Lost(u64),
    /// More forensic events than the policy tolerates.
    #[error("{events} forensic event(s) at {points} forensic point(s); the policy tolerates {max}")]
    Forensics {
        /// Forensic events.
        events: u64,
        /// Forensic points.
        points: usize,
        /// Tolerated.
        max: u64,
    },
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The verified state.
    pub state: Digest,
    /// Events modeled.
    pub events: u64,
    /// Forensic events (within the policy).
    pub forensics_events: u64,
    /// The Ed25519 signature was checked.
    pub signed: bool,
    /// The TPM quote was checked; its reset count.
    pub quoted: Option<u32>,
    /// The aggregate was checked against the verifier's own (event log) or the quoted PCRs 0–7.
    pub aggregate_checked: bool,
    /// The aggregate was checked against the verifier's own (from an event log): `false` when
    /// only a quote vouched for it (see `quoted`).
    pub aggregate_eventlog: bool,
    /// The attester's model file is not the verifier's (same points), or no model was in force.
    pub model_differs: bool,
    /// The aggregate differs from the model's and nothing checked it.
    pub aggregate_unverified: bool,
    /// Things that do not reject but that a relying party should know (e.g. another model file
    /// with the same points).
    pub warnings: Vec<String>,
}

/// Clock skew tolerated for attestations that claim to come from the future.
pub const MAX_SKEW: u64 = 300;

fn malformed(e: ClaimsError) -> Rejection {
    Rejection::Malformed(e.to_string())
}

/// Verify `att` against `model` under `policy`. Checks, in order: the Ed25519 signature and/or the
/// TPM quote (with the quoted PCR equal to the extension of the state and the aggregate equal to
/// that of the quoted PCRs 0–7), the nonce, the age, the hash function, the state against the
/// model (plus the attested forensic points), the aggregate against the verifier's, lost events,
/// the forensics policy; a different model digest only warns.
///
/// # Warning
/// `policy.nonce` must be fresh and unpredictable for each verification; a reused nonce lets an old
/// attestation be replayed. Keys and AKs must come from the verifier's own trust store, never from
/// the attestation (which names its AK only for convenience).
pub fn verify(
    att: &Attestation,
    model: &ExpectedModel,
    policy: &Policy,
) -> Result<Verified, Rejection> {
    verify_inner(att, model, policy, None)
}

/// [`verify`], taking the expected state from `memo` when it was computed before for the same
/// model, aggregate and forensic points (and storing it when not). The attested state is still
/// compared with that expectation, so the outcome is exactly [`verify`]'s.
pub fn verify_memo(
    att: &Attestation,
    model: &ExpectedModel,
    policy: &Policy,
    memo: &StateMemo,
) -> Result<Verified, Rejection> {
    verify_inner(att, model, policy, Some(memo))
}

fn verify_inner(
    att: &Attestation,
    model: &ExpectedModel,
    policy: &Policy,
    memo: Option<&StateMemo>,
) -> Result<Verified, Rejection> {
    let c = &att.claims;
    if policy.key.is_none() && policy.ak.is_none() {
        return Err(Rejection::NoTrustAnchor);
    }
    let canonical = c.canonical().map_err(malformed)?;
    let alg = c.alg().map_err(malformed)?;
    let state = c.digest("state", &c.state).map_err(malformed)?;
    let aggregate = c.digest("aggregate", &c.aggregate).map_err(malformed)?;
    let base = c.digest("base", &c.base).map_err(malformed)?;

    if let Some(key) = &policy.key {
        let Some(sig) = &att.signature else {
            return Err(Rejection::Unsigned);
        };
        let bytes = att
            .signature_bytes()
            .ok_or_else(|| Rejection::Malformed("signature: not 64 bytes of base64".into()))?;
        if key.key.verify_strict(&canonical, &bytes).is_err() {
            // The key id is unsigned and only picks the more helpful message.
            return Err(if sig.key_id != key.key_id() {
                Rejection::WrongKey {
                    expected: key.key_id(),
                    got: sig.key_id.clone(),
                }
            } else {
                Rejection::BadSignature
            });
        }
    }

    let mut quoted = None;
    if let Some(ak) = &policy.ak {
        let Some(q) = &att.tpm else {
            return Err(Rejection::NoQuote);
        };
        if c.tpm_pcr != Some(policy.pcr) {
            return Err(Rejection::WrongPcr {
                expected: policy.pcr,
                got: c.tpm_pcr,
            });
        }
        let attest = b64_decode(&q.attest)
            .ok_or_else(|| Rejection::Malformed("tpm.attest: not base64".into()))?;
        let sig = from_hex("tpm.sig", &q.sig).map_err(malformed)?;
        let mut pcrs = Vec::with_capacity(q.pcrs.len());
        for (i, h) in &q.pcrs {
            let v: [u8; 32] = from_hex("tpm.pcrs", h)
                .map_err(malformed)?
                .try_into()
                .map_err(|_| Rejection::Malformed(format!("tpm.pcrs: PCR {i} is not 32 bytes")))?;
            pcrs.push((*i, v));
        }
        let info = verify_quote_with(ak, &attest, &q.sig_alg, &sig, &pcrs)?;
        let expected = quote_data(c).map_err(malformed)?;
        if info.extra_data != expected {
            return Err(QuoteError::ExtraData {
                expected: to_hex(&expected),
                got: to_hex(&info.extra_data),
            }
            .into());
        }
        let value = |i: u32| pcrs.iter().find(|p| p.0 == i).map(|p| p.1);
        let Some(pcr) = value(policy.pcr) else {
            return Err(Rejection::WrongPcr {
                expected: policy.pcr,
                got: None,
            });
        };
        let prior = c
            .tpm_pcr_prior
            .as_deref()
            .map(|p| from_hex("tpm_pcr_prior", p))
            .transpose()
            .map_err(malformed)?
            .unwrap_or_default();
        let mut h = sha2::Sha256::new();
        h.update(&prior);
        h.update(pcr_value_of_state(&state));
        let want: [u8; 32] = h.finalize().into();
        if prior.len() != 32 || pcr != want {
            return Err(Rejection::PcrNotState {
                pcr: policy.pcr,
                quoted: to_hex(&pcr),
                expected: to_hex(&want),
            });
        }
        let mut low = Vec::with_capacity(8);
        for i in 0..8 {
            let v = value(i).ok_or(Rejection::Quote(QuoteError::Selection {
                quoted: pcrs.iter().map(|p| p.0).collect(),
                shipped: (0..8).chain([policy.pcr]).collect(),
            }))?;
            low.push(Digest::from_slice(&v).unwrap_or(Digest::zero(32)));
        }
        let hw = hardware_aggregate(alg, &low);
        if hw != aggregate {
            return Err(Rejection::AggregateNotQuoted {
                attested: aggregate.to_hex(),
                quoted: hw.to_hex(),
            });
        }
        quoted = Some(info.reset_count);
    }

    let nonce = c.nonce_bytes().map_err(malformed)?;
    if nonce != policy.nonce {
        return Err(Rejection::Nonce {
            expected: to_hex(&policy.nonce),
            got: c.nonce.to_lowercase(),
        });
    }
    if let Some(max) = policy.max_age {
        if c.time > policy.now.saturating_add(MAX_SKEW) {
            return Err(Rejection::FromTheFuture {
                time: c.time,
                ahead: c.time - policy.now,
            });
        }
        let age = policy.now.saturating_sub(c.time);
        if age > max {
            return Err(Rejection::TooOld { age, max });
        }
    }
    if alg != model.alg {
        return Err(Rejection::Hash {
            expected: model.alg.name(),
            got: c.hash.clone(),
        });
    }
    if base != model.base {
        return Err(Rejection::Base {
            expected: model.base.to_hex(),
            got: base.to_hex(),
        });
    }
    // Bound the work by the policy before hashing: there are never more forensic points than
    // forensic events, so a longer list is over the policy whatever the state turns out to be.
    if c.forensic_points.len() as u64 > policy.max_forensics {
        return Err(Rejection::Forensics {
            events: c.forensics_events,
            points: c.forensic_points.len(),
            max: policy.max_forensics,
        });
    }
    let forensic = c.forensic_digests().map_err(malformed)?;
    if let Some(f) = forensic.iter().find(|f| model.contains(f)) {
        return Err(Rejection::ForensicInModel(f.to_hex()));
    }
    let expected = match memo {
        Some(memo) => memo.state(model, &aggregate, &forensic),
        None => model.state_with(&aggregate, &forensic),
    };
    if expected != state {
        return Err(Rejection::State {
            attested: state.to_hex(),
            expected: expected.to_hex(),
            aggregate: aggregate.to_hex(),
            forensic: forensic.len(),
        });
    }
    // The state fixes the point set, so the counters must agree with it.
    let points = model.len() as u64 + forensic.len() as u64;
    if c.points != points
        || c.forensics_events < forensic.len() as u64
        || c.events < c.forensics_events
    {
        return Err(Rejection::Counters(format!(
            "{} points, {} events, {} forensic events, but the state holds {points} points of which {} forensic",
            c.points,
            c.events,
            c.forensics_events,
            forensic.len()
        )));
    }
    if let Some(a) = &policy.aggregate
        && *a != aggregate
    {
        return Err(Rejection::Aggregate {
            attested: aggregate.to_hex(),
            eventlog: a.to_hex(),
        });
    }
    if c.lost_events > 0 {
        return Err(Rejection::Lost(c.lost_events));
    }
    if let Some(required) = policy.on_forensic {
        let got = c.policy().map_err(malformed)?;
        if got != required {
            return Err(Rejection::DeviationPolicy {
                required: required.name(),
                got: got.name(),
            });
        }
    }
    if c.forensics_events > policy.max_forensics
        || (policy.max_forensics == 0 && !forensic.is_empty())
    {
        return Err(Rejection::Forensics {
            events: c.forensics_events,
            points: forensic.len(),
            max: policy.max_forensics,
        });
    }
    let mut warnings = Vec::new();
    let model_differs = match &c.model {
        Some(m) if !m.eq_ignore_ascii_case(&model.digest.to_hex()) => {
            warnings.push(format!(
                "the attester's model file {m} is not the verifier's {} (same points)",
                model.digest
            ));
            true
        }
        None => {
            warnings.push("the attester modeled freely (no model was in force)".into());
            true
        }
        _ => false,
    };
    let aggregate_checked = policy.aggregate.is_some() || quoted.is_some();
    let aggregate_unverified =
        !aggregate_checked && model.aggregate.is_some_and(|a| a != aggregate);
    if aggregate_unverified {
        warnings.push(format!(
            "aggregate {aggregate} is not the model's and was not checked against an event log or a quote"
        ));
    }
    Ok(Verified {
        state,
        events: c.events,
        forensics_events: c.forensics_events,
        signed: policy.key.is_some(),
        quoted,
        aggregate_checked,
        aggregate_eventlog: policy.aggregate.is_some(),
        model_differs,
        aggregate_unverified,
        warnings,
    })
}

/// Read an Ed25519 or P-256 public key PEM and say which it is (for error messages).
pub fn key_kind(pem: &str) -> &'static str {
    if ed25519_dalek::VerifyingKey::from_public_key_pem(pem).is_ok() {
        "ed25519"
    } else if let Ok(k) = AkKey::from_pem(pem) {
        k.sig_alg()
    } else {
        "unknown"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod memo_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod policy_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
