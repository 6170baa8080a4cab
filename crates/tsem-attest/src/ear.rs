//! The verification result as an IETF RATS Attestation Result: an EAR (EAT Attestation Result,
//! draft-fv-rats-ear, with the AR4SI trustworthiness vector of draft-ietf-rats-ar4si), as unsigned
//! EAT JSON claims that a relying party or a standard verifier (e.g. Veraison) can consume.
//!
//! Trustworthiness claims used (AR4SI values: 0 no claim, 2 affirming, 32–95 warning, 96–127
//! contraindicated, 99 cryptographic validation failed):
//! - `instance-identity`: 2 when the signature or quote verified with a trusted key; 99 when not.
//! - `executables`: 2 when the state is the model's and nothing is forensic or lost; 33
//!   ("unrecognized") when forensic events are within policy; 96 when the state is not the model's,
//!   events were lost or forensics exceed the policy.
//! - `configuration`: 2 when the attester's model file is the verifier's; 32 when only their
//!   points agree or no model was in force.
//! - `hardware`: 2 when the aggregate was checked against an event log or a TPM quote; 96 when it
//!   disagrees; 32 when it differs from the model's `aggregate` line and nothing checked it; absent
//!   otherwise.
//! - `runtime-opaque`/`storage-opaque`/`sourced-data`: not claimed.
//!
//! A rejection for authenticity or freshness (signature, quote, nonce, age, malformed) sets every
//! claim it touches to 99: nothing in unauthenticated or stale evidence is appraised.

use serde_json::{Map, Value, json};

use crate::Rejection;
use crate::verify::Verified;

/// `eat_profile` of EAR.
pub const EAR_PROFILE: &str = "tag:github.com,2023:veraison/ear";
/// The submodule name used for the workload.
pub const SUBMOD: &str = "tsem";

fn tier(v: i64) -> u8 {
    match v {
        2..=31 => 1,
        32..=95 => 2,
        96..=127 => 3,
        _ => 0,
    }
}

/// The AR4SI trustworthiness vector for an outcome.
pub fn trust_vector(outcome: &Result<Verified, Rejection>) -> Map<String, Value> {
    let mut v = Map::new();
    let mut set = |k: &str, x: i64| {
        v.insert(k.to_string(), json!(x));
    };
    match outcome {
        Ok(ok) => {
            set("instance-identity", 2);
            set("executables", if ok.forensics_events > 0 { 33 } else { 2 });
            set("configuration", if ok.model_differs { 32 } else { 2 });
            if ok.aggregate_checked {
                set("hardware", 2);
            } else if ok.aggregate_unverified {
                set("hardware", 32);
            }
        }
        Err(r) => match r {
            Rejection::Malformed(_)
            | Rejection::NoTrustAnchor
            | Rejection::Unsigned
            | Rejection::WrongKey { .. }
            | Rejection::BadSignature
            | Rejection::NoQuote
            | Rejection::WrongPcr { .. }
            | Rejection::Quote(_)
            | Rejection::PcrNotState { .. }
            | Rejection::Nonce { .. }
            | Rejection::TooOld { .. }
            | Rejection::FromTheFuture { .. } => {
                set("instance-identity", 99);
                set("executables", 99);
            }
            Rejection::AggregateNotQuoted { .. } | Rejection::Aggregate { .. } => {
                set("instance-identity", 2);
                set("hardware", 96);
            }
            // The workload ran, but configured to answer deviations otherwise.
            Rejection::DeviationPolicy { .. } => {
                set("instance-identity", 2);
                set("configuration", 96);
            }
            Rejection::Hash { .. }
            | Rejection::Base { .. }
            | Rejection::ForensicInModel(_)
            | Rejection::State { .. }
            | Rejection::Counters(_)
            | Rejection::Lost(_)
            | Rejection::Forensics { .. } => {
                set("instance-identity", 2);
                set("executables", 96);
            }
        },
    }
    v
}

/// The worst tier of a vector as an `ear.status`.
pub fn status(vector: &Map<String, Value>) -> &'static str {
    let worst = vector
        .values()
        .filter_map(Value::as_i64)
        .map(tier)
        .max()
        .unwrap_or(0);
    match worst {
        1 => "affirming",
        2 => "warning",
        3 => "contraindicated",
        _ => "none",
    }
}

/// The EAR for one verification. `nonce` is the verifier's (as `eat_nonce`, base64url like every
/// EAT byte string in JSON); `iat` seconds since the epoch;
/// `policy_id` names the appraisal policy (e.g. the model's digest); `reason` is the one-line
/// verdict.
pub fn ear(
    outcome: &Result<Verified, Rejection>,
    nonce: &[u8],
    iat: u64,
    policy_id: &str,
    reason: &str,
) -> Value {
    let vector = trust_vector(outcome);
    let st = status(&vector);
    let nonce_b64 = {
        use base64::Engine as _;
        B64URL.encode(nonce)
    };
    json!({
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "eat_nonce": nonce_b64,
        "ear.verifier-id": {
            "developer": "tsem",
            "build": concat!("tsem ", env!("CARGO_PKG_VERSION")),
        },
        "submods": {
            SUBMOD: {
                "ear.status": st,
                "ear.trustworthiness-vector": Value::Object(vector),
                "ear.appraisal-policy-id": policy_id,
                "tsem.verdict": reason,
            }
        }
    })
}

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The EAR as a compact JWS (a JWT, RFC 7519) signed with Ed25519 (`alg` `EdDSA`, RFC 8037),
/// the serialization draft-fv-rats-ear prescribes for EAR in JSON.
pub fn to_jwt(ear: &Value, signer: &crate::Signer) -> String {
    use base64::Engine as _;
    let header = B64URL.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let payload = B64URL.encode(ear.to_string());
    let input = format!("{header}.{payload}");
    let sig = B64URL.encode(signer.sign_bytes(input.as_bytes()));
    format!("{input}.{sig}")
}

/// Check a JWT made by [`to_jwt`] and return its claims.
pub fn from_jwt(jwt: &str, key: &crate::PublicKey) -> Option<Value> {
    use base64::Engine as _;
    let mut it = jwt.trim().split('.');
    let (h, p, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&B64URL.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "EdDSA" {
        return None;
    }
    let sig: [u8; 64] = B64URL.decode(s).ok()?.try_into().ok()?;
    if !key.verify_bytes(format!("{h}.{p}").as_bytes(), &sig) {
        return None;
    }
    serde_json::from_slice(&B64URL.decode(p).ok()?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_and_tamper() {
        let (sk, pk) = tsem_format::model_file::generate_ed25519().unwrap();
        let signer = crate::Signer::from_pem(&sk).unwrap();
        let key = crate::PublicKey::from_pem(&pk).unwrap();
        let v = ear(&Err(Rejection::Lost(2)), &[0; 8], 5, "p", "rejected: lost");
        assert_eq!(v["submods"][SUBMOD]["ear.status"], "contraindicated");
        let jwt = to_jwt(&v, &signer);
        assert_eq!(from_jwt(&jwt, &key), Some(v.clone()));
        let mut parts: Vec<String> = jwt.split('.').map(String::from).collect();
        let forged = ear(
            &Ok(Verified {
                state: tsem_core::HashAlg::Sha256.null_id(),
                events: 1,
                forensics_events: 0,
                signed: true,
                quoted: None,
                aggregate_checked: false,
                aggregate_eventlog: false,
                model_differs: false,
                aggregate_unverified: false,
                warnings: vec![],
            }),
            &[0; 8],
            5,
            "p",
            "verified",
        );
        use base64::Engine as _;
        parts[1] = B64URL.encode(forged.to_string());
        assert_eq!(from_jwt(&parts.join("."), &key), None);
    }
}
