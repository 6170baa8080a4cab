//! The REST API's wire types and the parsers of everything a client posts. Every parser takes
//! untrusted bytes, bounds them, and answers with a one-line error; none panics (fuzzed by
//! `fuzz/fuzz_targets/verifier_post.rs`).

use serde::{Deserialize, Serialize};
use tsem_attest::Attestation;

/// Largest attestation post accepted (bytes): an attestation is a few KiB; forensics are bounded
/// below.
pub const MAX_POST: usize = 1 << 20;
/// Largest enrolment accepted (bytes): it carries whole model files.
pub const MAX_ENROLMENT: usize = 32 << 20;
/// Most forensic event descriptions kept with one attestation.
pub const MAX_FORENSICS: usize = 1024;
/// Longest forensic event description kept (bytes).
pub const MAX_FORENSIC_LEN: usize = 16 << 10;
/// Most models enrolled for one workload (a roll-out needs two or three).
pub const MAX_MODELS: usize = 16;
/// Longest workload name.
pub const MAX_NAME: usize = 128;

/// A post that cannot be accepted, with the reason in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// More bytes than the endpoint accepts.
    #[error("request body of {got} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes received.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// Not the JSON the endpoint expects.
    #[error("malformed request body: {0}")]
    Json(String),
    /// A field is out of its bounds.
    #[error("field {field}: {msg}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        msg: String,
    },
}

/// `POST /v1/enroll`: what a workload must run and how it proves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// The workload's name (letters, digits, `.`, `_`, `-`).
    pub workload: String,
    /// The model files (text) the workload may run under; several during a roll-out.
    pub models: Vec<String>,
    /// Ed25519 public key (SPKI PEM) that signs its attestations.
    #[serde(default)]
    pub key: Option<String>,
    /// TPM attestation key (SPKI PEM) that quotes its state.
    #[serde(default)]
    pub ak: Option<String>,
    /// Most forensic events tolerated.
    #[serde(default)]
    pub max_forensics: u64,
    /// The deviation policy (`untrust`, `deny`, `kill`, `restart`) the workload must run under
    /// (its attestations name it; one without it ran under `untrust`). None: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_forensic: Option<String>,
    /// Seconds between attestations; past 1.5 times this without one, the workload is `stale`.
    pub every: u64,
}

/// `POST /v1/workloads/{name}/attestations`: an attestation and the forensic events it counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// The attestation, as `tsem attest` writes it.
    pub attestation: Attestation,
    /// Descriptions of the forensic events (TSEM JSON lines), kept for the operator. Unsigned:
    /// the signed claims name the forensic points, these explain them.
    #[serde(default)]
    pub forensics: Vec<String>,
}

/// The answer to a nonce request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceGrant {
    /// The nonce (hex, 32 bytes), single use.
    pub nonce: String,
    /// When it expires (seconds since the epoch).
    pub expires: u64,
}

/// The verifier's appraisal of one posted attestation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appraisal {
    /// `affirming`, `warning`, `contraindicated` or `none`.
    pub verdict: String,
    /// The one-line reason.
    pub reason: String,
    /// The IETF RATS EAR.
    pub ear: serde_json::Value,
    /// A fresh nonce for the workload's next attestation, issued exactly as `POST …/nonce`
    /// issues one (same MAC, same expiry rule, single use decided by the same append), so that
    /// an attester that reports repeatedly needs one request per attestation. Absent from
    /// verifiers that predate it; clients then ask for a nonce as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_nonce: Option<NonceGrant>,
}

/// One workload's current standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The workload.
    pub workload: String,
    /// `affirming`, `warning`, `contraindicated`, `stale` or `none`.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// When the verdict was reached (seconds since the epoch).
    pub at: u64,
    /// The verifier process that holds the workload's lease, if any holds it now.
    pub lease_holder: Option<String>,
}

/// One entry of a workload's history (append-only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Sequence number.
    pub id: i64,
    /// When (seconds since the epoch).
    pub at: u64,
    /// The verdict.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// The verifier process that recorded it.
    pub verifier: String,
    /// The EAR, for appraisals of attestations.
    pub ear: Option<serde_json::Value>,
    /// The forensic event descriptions posted with the attestation.
    pub forensics: Vec<String>,
}

/// `POST /v1/workloads/{name}/activation`: the TPM's identity, to be challenged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequest {
    /// The RSA 2048 EK certificate (DER, hex).
    pub ek_cert: String,
    /// The AK's marshalled `TPMT_PUBLIC` (hex).
    pub ak_public: String,
    /// Intermediate CA certificates between the EK certificate and a CA the verifier trusts
    /// (DER, hex; at most 4), as the TPM's vendor ships them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ek_chain: Vec<String>,
}

/// The challenge: a credential only the TPM holding both the EK and the AK can recover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationChallenge {
    /// Names the challenge in the answer (hex).
    pub challenge: String,
    /// `TPM2B_ID_OBJECT` buffer (hex) for TPM2_ActivateCredential.
    pub credential_blob: String,
    /// `TPM2B_ENCRYPTED_SECRET` buffer (hex).
    pub secret: String,
    /// When the challenge expires (seconds since the epoch).
    pub expires: u64,
}

/// `POST /v1/workloads/{name}/activation/{challenge}`: the recovered credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationAnswer {
    /// What TPM2_ActivateCredential returned (hex).
    pub credential: String,
}

/// Largest activation request (bytes): an EK certificate is one or two KiB.
pub const MAX_ACTIVATION: usize = 64 << 10;

/// An error answer: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One line.
    pub error: String,
    /// What a client may act on without parsing the line: `nonce_expired` (fetch a fresh
    /// nonce and attest again), `nonce_unknown`, `replayed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// [`ErrorBody::kind`] of a refusal because the nonce expired.
pub const NONCE_EXPIRED: &str = "nonce_expired";

fn bounded(body: &[u8], max: usize) -> Result<(), ProtocolError> {
    if body.len() > max {
        return Err(ProtocolError::TooLarge {
            got: body.len(),
            max,
        });
    }
    Ok(())
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| ProtocolError::Json(one_line(&e.to_string())))
}

/// Collapse a message to one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Check a workload name: 1 to [`MAX_NAME`] letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), ProtocolError> {
    if tsem_core::is_plain_name(name, MAX_NAME) {
        Ok(())
    } else {
        Err(ProtocolError::Field {
            field: "workload",
            msg: format!(
                "{:?} is not 1 to {MAX_NAME} letters, digits, '.', '_' or '-'",
                name.chars().take(MAX_NAME + 1).collect::<String>()
            ),
        })
    }
}

/// Parse an attestation post.
pub fn parse_post(body: &[u8]) -> Result<Post, ProtocolError> {
    bounded(body, MAX_POST)?;
    let p: Post = json(body)?;
    if p.attestation.format != tsem_attest::claims::FORMAT {
        return Err(ProtocolError::Field {
            field: "attestation.format",
            msg: format!(
                "{:?}, expected {:?}",
                p.attestation.format,
                tsem_attest::claims::FORMAT
            ),
        });
    }
    if p.forensics.len() > MAX_FORENSICS {
        return Err(ProtocolError::Field {
            field: "forensics",
            msg: format!("{} entries; at most {MAX_FORENSICS}", p.forensics.len()),
        });
    }
    if let Some((i, f)) = p
        .forensics
        .iter()
        .enumerate()
        .find(|(_, f)| f.len() > MAX_FORENSIC_LEN)
    {
        return Err(ProtocolError::Field {
            field: "forensics",
            msg: format!("entry {i} is {} bytes; at most {MAX_FORENSIC_LEN}", f.len()),
        });
    }
    Ok(p)
}

fn hex_field(field: &'static str, s: &str) -> Result<Vec<u8>, ProtocolError> {
    tsem_attest::claims::from_hex(field, s).map_err(|e| ProtocolError::Field {
        field,
        msg: one_line(&e.to_string()),
    })
}

/// Parse an activation request: `(EK certificate DER, AK TPMT_PUBLIC)`.
pub fn parse_activation_request(body: &[u8]) -> Result<ParsedActivation, ProtocolError> {
    bounded(body, MAX_ACTIVATION)?;
    let r: ActivationRequest = json(body)?;
    if r.ek_chain.len() > 4 {
        return Err(ProtocolError::Field {
            field: "ek_chain",
            msg: format!("{} certificates; at most 4", r.ek_chain.len()),
        });
    }
    Ok(ParsedActivation {
        ek_cert: hex_field("ek_cert", &r.ek_cert)?,
        ak_public: hex_field("ak_public", &r.ak_public)?,
        ek_chain: r
            .ek_chain
            .iter()
            .map(|c| hex_field("ek_chain", c))
            .collect::<Result<_, _>>()?,
    })
}

/// An activation request's bytes.
#[derive(Debug)]
pub struct ParsedActivation {
    /// The EK certificate (DER).
    pub ek_cert: Vec<u8>,
    /// The AK's `TPMT_PUBLIC`.
    pub ak_public: Vec<u8>,
    /// Intermediate CA certificates (DER).
    pub ek_chain: Vec<Vec<u8>>,
}

/// Parse an activation answer: the credential.
pub fn parse_activation_answer(body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    bounded(body, 1024)?;
    let r: ActivationAnswer = json(body)?;
    hex_field("credential", &r.credential)
}

/// Parse an enrolment (the models are parsed by the store, which names their errors).
pub fn parse_enrolment(body: &[u8]) -> Result<Enrolment, ProtocolError> {
    bounded(body, MAX_ENROLMENT)?;
    let e: Enrolment = json(body)?;
    check_name(&e.workload)?;
    let field = |field, msg: &str| {
        Err(ProtocolError::Field {
            field,
            msg: msg.to_string(),
        })
    };
    if e.models.is_empty() {
        return field("models", "at least one model is required");
    }
    if e.models.len() > MAX_MODELS {
        return field("models", &format!("at most {MAX_MODELS} models"));
    }
    if e.key.is_none() && e.ak.is_none() {
        return field("key", "an Ed25519 key or a TPM AK is required");
    }
    // Bounded so that deadlines never overflow and a typo does not silence staleness for years.
    if e.every == 0 || e.every > 366 * 86_400 {
        return field("every", "must be 1 to 31622400 seconds");
    }
    Ok(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("web-1.prod_a").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(MAX_NAME + 1)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn posts_are_bounded_and_errors_are_one_line() {
        let big = vec![b' '; MAX_POST + 1];
        assert!(matches!(
            parse_post(&big),
            Err(ProtocolError::TooLarge { .. })
        ));
        for junk in [&b""[..], b"{", b"[]", b"{\"attestation\": 1}", b"\xff\xfe"] {
            let e = parse_post(junk).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn enrolment_needs_an_anchor_and_an_interval() {
        let e = br#"{"workload":"w","models":["m"],"every":10}"#;
        assert!(parse_enrolment(e).unwrap_err().to_string().contains("key"));
        let e = br#"{"workload":"w","models":["m"],"key":"k","every":0}"#;
        assert!(
            parse_enrolment(e)
                .unwrap_err()
                .to_string()
                .contains("every")
        );
        let e = br#"{"workload":"w","models":["m"],"key":"k","every":5}"#;
        assert_eq!(parse_enrolment(e).unwrap().every, 5);
    }
}
