//! Secrets sealed to a model's state (local attestation).
//!
//! Sealing to IMA PCRs is futile: SMP scheduling makes the order of measurements, and so the PCR
//! value, unpredictable. A TSEM state is order-invariant, so the state of a run that stays within
//! a model is known in advance: the model's state for the platform's aggregate
//! ([`crate::ExpectedModel::state_with`]). A run extends that state once into a PCR that starts
//! from its reset value, so the PCR's value after a run that matched the model is
//! [`predict_pcr`]; a secret sealed under a TPM policy on that value and on PCRs 0–7 (the
//! platform's boot chain, which the aggregate is made of) is released only to such a run on that
//! platform. Any forensic event changes the state (it counts every point), so such a run cannot
//! unseal; nor can another TPM (the blob loads only under the storage key it was created under).

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The `format` of a sealed blob.
pub const FORMAT: &str = "tsem-sealed-1";

/// The PCR a secret is sealed to unless told otherwise: resettable from locality 0 (PC Client
/// profile), so every sealed run starts it from zero. PCR 16 is resettable too; any other PCR works
/// only while it still holds its boot value of zero (one sealed run per boot).
pub const DEFAULT_SEAL_PCR: u32 = 23;

/// Whether `pcr` can be reset from locality 0.
pub fn resettable(pcr: u32) -> bool {
    matches!(pcr, 16 | 23)
}

/// What is extended into the PCR after a sealed run, whether it unsealed or not, so the policy
/// no longer holds once the run is over: SHA-256 of this text.
pub const CLOSE: &[u8] = b"tsem: sealed run ended";

/// The value [`CLOSE`] extends.
pub fn close_value() -> [u8; 32] {
    sha2::Sha256::digest(CLOSE).into()
}

/// `SHA-256(prior || value)`: a PCR extension in the SHA-256 bank.
pub fn extend(prior: &[u8; 32], value: &[u8; 32]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(prior);
    h.update(value);
    h.finalize().into()
}

/// The PCR's value after a run whose final state is `state`: the state extended once into the
/// reset value (zero).
pub fn predict_pcr(state: &tsem_core::Digest) -> [u8; 32] {
    extend(&[0u8; 32], &crate::pcr_value_of_state(state))
}

/// The policy's PCR digest: SHA-256 of the values of PCRs 0–7 and the sealed PCR, in ascending
/// index order (the order of a TPM's PCR selection).
pub fn pcr_digest(values: &[(u32, [u8; 32])]) -> [u8; 32] {
    let mut v = values.to_vec();
    v.sort_by_key(|p| p.0);
    let mut h = sha2::Sha256::new();
    for (_, d) in &v {
        h.update(d);
    }
    h.finalize().into()
}

/// A sealed secret and what it was sealed to (the file `tsem seal -o` writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// [`FORMAT`].
    pub format: String,
    /// The model's digest (hex).
    pub model: String,
    /// The namespace's hash function.
    pub hash: String,
    /// The model's state for this platform's aggregate (hex).
    pub state: String,
    /// The PCR the run extends its state into.
    pub pcr: u32,
    /// Its predicted value after a run that matched the model (hex).
    pub pcr_value: String,
    /// PCRs 0–7 as read when sealing: `[index, hex]`.
    pub platform: Vec<(u32, String)>,
    /// The sealed object's `TPMT_PUBLIC` (hex).
    pub public: String,
    /// Its `TPM2B_PRIVATE` buffer (hex), encrypted under the TPM's storage key.
    pub private: String,
}

/// Why a sealed blob cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    /// Not a sealed blob tsem wrote.
    #[error("{file}: not a sealed blob: {msg}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        msg: String,
    },
}

impl Sealed {
    /// Parse a blob (`file` names it in errors).
    pub fn from_json(file: &str, text: &[u8]) -> Result<Self, SealedError> {
        let err = |msg: String| SealedError::Format {
            file: file.to_string(),
            msg,
        };
        let s: Sealed = serde_json::from_slice(text).map_err(|e| {
            err(e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "))
        })?;
        if s.format != FORMAT {
            return Err(err(format!("format {:?}, expected {FORMAT:?}", s.format)));
        }
        if s.pcr > 23 {
            return Err(err(format!("pcr {} does not exist (0-23)", s.pcr)));
        }
        for (field, v) in [("public", &s.public), ("private", &s.private)] {
            crate::claims::from_hex(field, v).map_err(|e| err(e.to_string()))?;
        }
        s.pcr_value_bytes().map_err(err)?;
        s.platform_values().map_err(err)?;
        Ok(s)
    }

    /// [`Sealed::pcr_value`] as bytes.
    pub fn pcr_value_bytes(&self) -> Result<[u8; 32], String> {
        crate::claims::from_hex("pcr_value", &self.pcr_value)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "pcr_value: not 32 bytes".to_string())
    }

    /// [`Sealed::platform`] as bytes: exactly PCRs 0–7.
    pub fn platform_values(&self) -> Result<Vec<(u32, [u8; 32])>, String> {
        let v = self
            .platform
            .iter()
            .map(|(i, h)| {
                let b: [u8; 32] = crate::claims::from_hex("platform", h)
                    .map_err(|e| e.to_string())?
                    .try_into()
                    .map_err(|_| format!("platform PCR {i}: not 32 bytes"))?;
                Ok((*i, b))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if v.iter().map(|p| p.0).collect::<Vec<_>>() != (0..8).collect::<Vec<u32>>() {
            return Err("platform: not PCRs 0 to 7 in order".into());
        }
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prediction_is_one_extension_from_zero() {
        let state = tsem_core::Digest::from_slice(&[5u8; 32]).unwrap();
        let mut h = sha2::Sha256::new();
        h.update([0u8; 32]);
        h.update([5u8; 32]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(predict_pcr(&state), want);
        assert_ne!(extend(&want, &close_value()), want);
        assert!(resettable(23) && resettable(16) && !resettable(11));
    }

    #[test]
    fn blobs_are_checked() {
        let s = Sealed {
            format: FORMAT.into(),
            model: "ab".into(),
            hash: "sha256".into(),
            state: "00".into(),
            pcr: 23,
            pcr_value: "11".repeat(32),
            platform: (0..8).map(|i| (i, "00".repeat(32))).collect(),
            public: "0001".into(),
            private: "0002".into(),
        };
        let text = serde_json::to_vec(&s).unwrap();
        assert_eq!(Sealed::from_json("b", &text).unwrap(), s);
        let mut bad = s.clone();
        bad.platform.pop();
        let e = Sealed::from_json("b", &serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(e.to_string().contains("PCRs 0 to 7"), "{e}");
        let e = Sealed::from_json("b", b"{\"format\": 1}").unwrap_err();
        assert!(e.to_string().starts_with("b: not a sealed blob"), "{e}");
    }
}
