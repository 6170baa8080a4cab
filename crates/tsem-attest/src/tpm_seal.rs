//! Sealing and unsealing with a TPM (feature `tpm`): the TPM side of [`crate::sealed`].
//!
//! The storage key is an ECC P-256 primary in the owner hierarchy from a fixed template, so it is
//! the same key on every call on one TPM and no other TPM can load what it wraps. The sealed
//! object is a keyed-hash data object whose only authorisation is its policy: `PolicyPCR` on the
//! SHA-256 bank of PCRs 0–7 and the sealed PCR (no `userWithAuth`, so no password opens it).

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, KeyDerivationFunctionScheme, KeyedHashScheme, PcrSelectionList,
    Private, Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
    SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall as _, UnMarshall as _};

use crate::tpm::{Tpm, TpmError, platform_and, tss};

/// Largest secret a TPM seals directly (`MAX_SYM_DATA`).
pub const MAX_SECRET: usize = 128;

fn srk_template() -> Result<Public, TpmError> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .with_no_da(true)
        .build()
        .map_err(tss("storage key attributes"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
                .with_ecc_scheme(EccScheme::Null)
                .with_curve(EccCurve::NistP256)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_is_signing_key(false)
                .with_is_decryption_key(true)
                .with_restricted(true)
                .build()
                .map_err(tss("storage key parameters"))?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(tss("storage key template"))
}

fn selection(pcr: u32) -> Result<PcrSelectionList, TpmError> {
    platform_and(pcr).map(|(_, sel)| sel)
}

impl Tpm {
    fn create_srk(&mut self) -> Result<KeyHandle, TpmError> {
        let t = srk_template()?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Owner, t, None, None, None, None)
            })
            .map(|r| r.key_handle)
            .map_err(tss("CreatePrimary (storage key)"))
    }

    fn start_session(&mut self, kind: SessionType) -> Result<AuthSession, TpmError> {
        self.ctx
            .start_auth_session(
                None,
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tss("StartAuthSession"))?
            .ok_or(TpmError::Unexpected("returned no session"))
    }

    fn flush_session(&mut self, s: AuthSession) -> Result<(), TpmError> {
        self.ctx
            .flush_context(SessionHandle::from(s).into())
            .map_err(tss("FlushContext (session)"))
    }

    /// The policy digest of `PolicyPCR(sha256:{0..7, pcr}, pcr_digest)`, computed by the TPM in a
    /// trial session (which takes the digest as given instead of reading the PCRs).
    fn pcr_policy(&mut self, pcr: u32, pcr_digest: &[u8; 32]) -> Result<Digest, TpmError> {
        let trial = self.start_session(SessionType::Trial)?;
        let res = (|| {
            let p = PolicySession::try_from(trial).map_err(tss("trial session"))?;
            let d = Digest::try_from(pcr_digest.to_vec()).map_err(tss("digest"))?;
            self.ctx
                .policy_pcr(p, d, selection(pcr)?)
                .map_err(tss("PolicyPCR (trial)"))?;
            self.ctx
                .policy_get_digest(p)
                .map_err(tss("PolicyGetDigest"))
        })();
        let flushed = self.flush_session(trial);
        let d = res?;
        flushed?;
        Ok(d)
    }

    /// Seal `secret` (at most [`MAX_SECRET`] bytes) under the policy that PCRs 0–7 and `pcr`
    /// hold `values` (SHA-256 bank); returns the object's `(TPMT_PUBLIC, TPM2B_PRIVATE buffer)`.
    pub fn seal(
        &mut self,
        pcr: u32,
        values: &[(u32, [u8; 32])],
        secret: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        if secret.is_empty() || secret.len() > MAX_SECRET {
            return Err(TpmError::Unexpected(
                "cannot seal that: a secret is 1 to 128 bytes (seal a key that encrypts a larger one)",
            ));
        }
        let policy = self.pcr_policy(pcr, &crate::sealed::pcr_digest(values))?;
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_no_da(true)
            .with_admin_with_policy(true)
            .build()
            .map_err(tss("sealed object attributes"))?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_auth_policy(policy)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
            .map_err(tss("sealed object template"))?;
        let data = SensitiveData::try_from(secret.to_vec()).map_err(tss("secret"))?;
        let srk = self.create_srk()?;
        let res = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create(srk, public, None, Some(data), None, None)
            });
        let flushed = self.ctx.flush_context(srk.into());
        let r = res.map_err(tss("Create (sealed object)"))?;
        flushed.map_err(tss("FlushContext"))?;
        let public = r
            .out_public
            .marshall()
            .map_err(tss("marshal TPMT_PUBLIC"))?;
        Ok((public, r.out_private.value().to_vec()))
    }

    /// Unseal the object `(public, private)` that [`Tpm::seal`] made for `pcr`: the TPM releases
    /// it only if PCRs 0–7 and `pcr` hold the values it was sealed to, now.
    pub fn unseal(&mut self, pcr: u32, public: &[u8], private: &[u8]) -> Result<Vec<u8>, TpmError> {
        let public = Public::unmarshall(public).map_err(tss("sealed object public area"))?;
        let private =
            Private::try_from(private.to_vec()).map_err(tss("sealed object private area"))?;
        let srk = self.create_srk()?;
        let loaded = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(srk, private, public)
            });
        let flushed = self.ctx.flush_context(srk.into());
        let obj = loaded.map_err(tss(
            "Load (sealed object; it was sealed by another TPM or its storage key changed)",
        ))?;
        flushed.map_err(tss("FlushContext"))?;
        let res = self.unseal_loaded(pcr, obj.into());
        let flushed = self.ctx.flush_context(obj.into());
        let out = res?;
        flushed.map_err(tss("FlushContext"))?;
        Ok(out)
    }

    fn unseal_loaded(&mut self, pcr: u32, obj: ObjectHandle) -> Result<Vec<u8>, TpmError> {
        let session = self.start_session(SessionType::Policy)?;
        let res = (|| {
            let p = PolicySession::try_from(session).map_err(tss("policy session"))?;
            // An empty digest: the TPM takes the PCRs' current values.
            self.ctx
                .policy_pcr(p, Digest::default(), selection(pcr)?)
                .map_err(tss("PolicyPCR"))?;
            self.ctx
                .execute_with_session(Some(session), |ctx| ctx.unseal(obj))
                .map_err(tss(
                    "Unseal (the PCRs do not hold the values the secret was sealed to)",
                ))
        })();
        let flushed = self.flush_session(session);
        let out = res?;
        flushed?;
        Ok(out.value().to_vec())
    }

    /// Reset `pcr` (16 or 23 from locality 0) to zero.
    pub fn reset_pcr(&mut self, pcr: u32) -> Result<(), TpmError> {
        let handle = PcrHandle::try_from(pcr).map_err(|_| TpmError::Pcr(pcr))?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.pcr_reset(handle))
            .map_err(tss("PCR_Reset"))
    }
}
