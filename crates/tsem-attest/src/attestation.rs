//! The attestation file: claims, an Ed25519 signature over their canonical bytes, and optionally a
//! TPM quote whose `extraData` is the SHA-256 of the same bytes.

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::claims::{ClaimsError, FORMAT};
use crate::{Claims, TpmQuote};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Problems making or reading an attestation.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    /// A claims field is wrong.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// The signing or public key cannot be read.
    #[error("key: {0}")]
    Key(String),
    /// The file is not an attestation.
    #[error("not a tsem attestation: {0}")]
    Format(String),
    /// A TPM reached through a helper failed.
    #[error("TPM: {0}")]
    Device(String),
    /// The TPM failed.
    #[cfg(feature = "tpm")]
    #[error(transparent)]
    Tpm(#[from] crate::tpm::TpmError),
}

/// An Ed25519 signature over the canonical claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `ed25519`.
    pub alg: String,
    /// SHA-256 of the raw 32-byte public key (hex): names the key, proves nothing.
    pub key_id: String,
    /// The 64-byte signature (base64).
    pub value: String,
}

/// An attestation as written to a file (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// Always [`FORMAT`].
    pub format: String,
    /// What is asserted.
    pub claims: Claims,
    /// Ed25519 signature over [`Claims::canonical`].
    pub signature: Option<Signature>,
    /// TPM quote over the state's PCR and PCRs 0–7, qualified with [`quote_data`].
    pub tpm: Option<TpmQuote>,
}

/// An Ed25519 signing key.
pub struct Signer {
    key: ed25519_dalek::SigningKey,
}

impl Signer {
    /// From a PKCS#8 PEM private key, as `tsem keygen` writes it.
    pub fn from_pem(pem: &str) -> Result<Self, AttestationError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| AttestationError::Key(format!("not an Ed25519 PKCS#8 PEM key: {e}")))?;
        Ok(Self { key })
    }

    /// The public key as SPKI PEM (what `KEY.pub` holds).
    pub fn public_pem(&self) -> Result<String, AttestationError> {
        self.key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| AttestationError::Key(e.to_string()))
    }

    /// A raw Ed25519 signature over `msg` (e.g. a JWS signing input).
    pub fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    fn sign(&self, msg: &[u8]) -> Signature {
        Signature {
            alg: "ed25519".into(),
            key_id: key_id(&self.key.verifying_key()),
            value: B64.encode(self.key.sign(msg).to_bytes()),
        }
    }
}

/// An Ed25519 public key that verifies attestations.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub(crate) key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// From an SPKI PEM public key (`KEY.pub`).
    pub fn from_pem(pem: &str) -> Result<Self, AttestationError> {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| AttestationError::Key(format!("not an Ed25519 SPKI PEM key: {e}")))?;
        Ok(Self { key })
    }

    /// Check a raw Ed25519 signature (strict: no malleable or small-order encodings).
    pub fn verify_bytes(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.key
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    }

    /// SHA-256 of the raw key (hex), as in [`Signature::key_id`].
    pub fn key_id(&self) -> String {
        key_id(&self.key)
    }
}

fn key_id(k: &ed25519_dalek::VerifyingKey) -> String {
    crate::claims::to_hex(&sha2::Sha256::digest(k.as_bytes()))
}

/// The quote's qualifying data: `SHA-256(canonical claims)`. The claims hold the verifier's nonce,
/// so the quote is fresh exactly when the claims' nonce is.
pub fn quote_data(claims: &Claims) -> Result<[u8; 32], ClaimsError> {
    Ok(sha2::Sha256::digest(claims.canonical()?).into())
}

impl Attestation {
    /// Sign `claims` with `signer` (and no quote).
    pub fn sign(claims: Claims, signer: &Signer) -> Result<Self, AttestationError> {
        let msg = claims.canonical()?;
        Ok(Self {
            format: FORMAT.into(),
            signature: Some(signer.sign(&msg)),
            claims,
            tpm: None,
        })
    }

    /// Parse the JSON file. Unknown fields anywhere are an error: nothing unsigned rides along.
    pub fn from_json(text: &str) -> Result<Self, AttestationError> {
        let a: Attestation =
            serde_json::from_str(text).map_err(|e| AttestationError::Format(e.to_string()))?;
        if a.format != FORMAT {
            return Err(AttestationError::Format(format!(
                "format {:?}, expected {FORMAT:?}",
                a.format
            )));
        }
        Ok(a)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The signature bytes, if present and well-formed.
    pub(crate) fn signature_bytes(&self) -> Option<ed25519_dalek::Signature> {
        let s = self.signature.as_ref()?;
        let b = B64.decode(&s.value).ok()?;
        let arr: [u8; 64] = b.try_into().ok()?;
        Some(ed25519_dalek::Signature::from_bytes(&arr))
    }
}

pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

#[cfg(any(test, feature = "tpm"))]
pub(crate) fn b64_encode(b: &[u8]) -> String {
    B64.encode(b)
}
