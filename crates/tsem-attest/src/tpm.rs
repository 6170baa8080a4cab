//! The attester's side of a TPM quote, through tss-esapi 7.7 (tpm2-tss ≥ 2.4.6).
//!
//! The attestation key is a primary key: a restricted ECDSA P-256/SHA-256 (or, with [`AkAlg::Rsa`],
//! RSA 2048 RSASSA/SHA-256) signing key created in
//! the endorsement hierarchy from a fixed template. A primary key is derived from the hierarchy's
//! seed and the template, so every session gets the same AK on the same TPM and a verifier can pin
//! its public key (`tsem attest --ak-out`) without a persistent handle. That the AK lives in a
//! genuine TPM is proven to a verifier by credential activation ([`Tpm::identity`],
//! [`Tpm::activate`]; the verifier's half is [`crate::credential`]).
//!
//! # Warning
//! There is no resource manager between us and the TPM (swtpm on loopback, or `/dev/tpm0` without
//! `tpm2-abrmd`): every transient object is flushed before returning, on errors too.

use std::str::FromStr as _;

use tss_esapi::Context;
use tss_esapi::abstraction::AsymmetricAlgorithmSelection;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, DigestValues, EccPoint, EccScheme, EncryptedSecret, HashScheme, IdObject,
    KeyDerivationFunctionScheme, PcrSelectionListBuilder, PcrSlot, Public, PublicBuilder,
    PublicEccParametersBuilder, PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme,
    Signature, SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall as _;

use crate::claims::to_hex;
use crate::quote::{ECDSA_P256_SHA256, RSASSA_SHA256, TpmQuote, ecdsa_rs};

/// TPM failures, naming the command.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// A TPM or TSS call failed.
    #[error("TPM {op}: {msg}")]
    Tss {
        /// The operation.
        op: &'static str,
        /// The TSS error.
        msg: String,
    },
    /// A PCR index outside 0..=23.
    #[error("PCR {0} does not exist (0-23)")]
    Pcr(u32),
    /// The TPM returned something unexpected.
    #[error("TPM {0}")]
    Unexpected(&'static str),
    /// The TPM returned a key tsem cannot use.
    #[error("TPM returned {0}")]
    Key(&'static str),
}

pub(crate) fn tss(op: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
    move |e| TpmError::Tss {
        op,
        msg: e.to_string(),
    }
}

pub use crate::quote::AkAlg;

/// A connection to a TPM.
pub struct Tpm {
    pub(crate) ctx: Context,
    ak_alg: AkAlg,
}

/// PCRs 0–7 and `pcr` (ascending), and their selection in the SHA-256 bank: what quotes and
/// sealing policies cover.
pub(crate) fn platform_and(
    pcr: u32,
) -> Result<(Vec<u32>, tss_esapi::structures::PcrSelectionList), TpmError> {
    let mut idx: Vec<u32> = (0..8).collect();
    if !idx.contains(&pcr) {
        idx.push(pcr);
    }
    let sel = sha256_selection(&idx)?;
    Ok((idx, sel))
}

/// `pcrs` in the SHA-256 bank.
fn sha256_selection(pcrs: &[u32]) -> Result<tss_esapi::structures::PcrSelectionList, TpmError> {
    let slots = pcrs
        .iter()
        .map(|&i| slot(i))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(tss("PCR selection"))
}

pub(crate) fn slot(i: u32) -> Result<PcrSlot, TpmError> {
    if i > 23 {
        return Err(TpmError::Pcr(i));
    }
    PcrSlot::try_from(1u32 << i).map_err(|_| TpmError::Pcr(i))
}

fn ak_template(alg: AkAlg) -> Result<Public, TpmError> {
    let attrs = ObjectAttributesBuilder::new()
        .with_restricted(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .with_decrypt(false)
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .build()
        .map_err(tss("AK attributes"))?;
    let builder = match alg {
        AkAlg::Ecc => PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new()
                    .with_symmetric(SymmetricDefinitionObject::Null)
                    .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                    .with_curve(EccCurve::NistP256)
                    .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                    .with_is_signing_key(true)
                    .with_is_decryption_key(false)
                    .with_restricted(true)
                    .build()
                    .map_err(tss("AK parameters"))?,
            )
            .with_ecc_unique_identifier(EccPoint::default()),
        AkAlg::Rsa => PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new()
                    .with_symmetric(SymmetricDefinitionObject::Null)
                    .with_scheme(RsaScheme::RsaSsa(HashScheme::new(HashingAlgorithm::Sha256)))
                    .with_key_bits(RsaKeyBits::Rsa2048)
                    .with_exponent(RsaExponent::default())
                    .with_is_signing_key(true)
                    .with_is_decryption_key(false)
                    .with_restricted(true)
                    .build()
                    .map_err(tss("AK parameters"))?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::default()),
    };
    builder.build().map_err(tss("AK template"))
}

fn ak_pem(public: &Public) -> Result<String, TpmError> {
    match public {
        Public::Ecc { unique, .. } => {
            crate::credential::ecc_pem(unique.x().value(), unique.y().value())
        }
        Public::Rsa {
            unique, parameters, ..
        } => crate::credential::rsa_pem(unique.value(), parameters.exponent().value()),
        _ => Err("an AK that is neither ECC nor RSA"),
    }
    .map_err(TpmError::Key)
}

impl Tpm {
    /// Connect through a TCTI string, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let conf = TctiNameConf::from_str(tcti).map_err(tss("TCTI"))?;
        let ctx = Context::new(conf).map_err(tss("connect"))?;
        Ok(Self {
            ctx,
            ak_alg: AkAlg::default(),
        })
    }

    /// Use an AK of this kind from now on (ECC by default).
    pub fn set_ak_alg(&mut self, alg: AkAlg) {
        self.ak_alg = alg;
    }

    /// SHA-256 values of `pcrs` (ascending, at most 8 per TPM2_PCR_Read, so read in turns).
    pub fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<Vec<(u32, [u8; 32])>, TpmError> {
        let mut out = Vec::with_capacity(pcrs.len());
        for chunk in pcrs.chunks(8) {
            let sel = sha256_selection(chunk)?;
            let (_, read, digests) = self.ctx.pcr_read(sel).map_err(tss("PCR_Read"))?;
            if read.is_empty() || digests.value().len() != chunk.len() {
                return Err(TpmError::Unexpected(
                    "PCR_Read returned fewer PCRs than asked for",
                ));
            }
            for (&i, d) in chunk.iter().zip(digests.value()) {
                let v: [u8; 32] = d
                    .value()
                    .try_into()
                    .map_err(|_| TpmError::Unexpected("PCR_Read returned a non-SHA-256 value"))?;
                out.push((i, v));
            }
        }
        Ok(out)
    }

    /// Extend the SHA-256 bank of `pcr` with `value`.
    pub fn extend(&mut self, pcr: u32, value: &[u8; 32]) -> Result<(), TpmError> {
        let handle = PcrHandle::try_from(pcr).map_err(|_| TpmError::Pcr(pcr))?;
        let mut vals = DigestValues::new();
        vals.set(
            HashingAlgorithm::Sha256,
            tss_esapi::structures::Digest::try_from(value.to_vec()).map_err(tss("digest"))?,
        );
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.pcr_extend(handle, vals)
            })
            .map_err(tss("PCR_Extend"))
    }

    fn create_ak(&mut self) -> Result<(KeyHandle, Public), TpmError> {
        let template = ak_template(self.ak_alg)?;
        let r = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map_err(tss("CreatePrimary (AK)"))?;
        Ok((r.key_handle, r.out_public))
    }

    /// The AK's public key (SPKI PEM), for the verifier's trust store.
    pub fn ak_public_pem(&mut self) -> Result<String, TpmError> {
        let (h, public) = self.create_ak()?;
        let pem = ak_pem(&public);
        self.ctx
            .flush_context(h.into())
            .map_err(tss("FlushContext"))?;
        pem
    }

    /// What a verifier needs to activate the AK: the EK certificate (DER, from its NV index:
    /// 0x01c00002 for the RSA 2048 EK, 0x01c0000a for the ECC P-256 one) and the AK's marshalled
    /// `TPMT_PUBLIC` (whose digest is its name). `None`: no certificate (the caller has it from
    /// its vendor), empty.
    pub fn identity(
        &mut self,
        ek: Option<crate::credential::EkAlg>,
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let cert = match ek {
            None => Vec::new(),
            Some(ek) => {
                tss_esapi::abstraction::ek::retrieve_ek_pubcert(&mut self.ctx, ek_selection(ek))
                    .map_err(tss(match ek {
                        crate::credential::EkAlg::Rsa => {
                            "NV_Read (RSA EK certificate, index 0x01c00002)"
                        }
                        crate::credential::EkAlg::Ecc => {
                            "NV_Read (ECC EK certificate, index 0x01c0000a)"
                        }
                    }))?
            }
        };
        let (h, public) = self.create_ak()?;
        let flushed = self.ctx.flush_context(h.into());
        let bytes = public.marshall().map_err(tss("marshal TPMT_PUBLIC"));
        flushed.map_err(tss("FlushContext"))?;
        Ok((cert, bytes?))
    }

    /// TPM2_ActivateCredential with the AK and the EK `ek` (its default template, authorised by
    /// PolicySecret on the endorsement hierarchy): the credential a verifier made for them.
    pub fn activate(
        &mut self,
        ek: crate::credential::EkAlg,
        blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let blob = IdObject::try_from(blob.to_vec()).map_err(tss("credential blob"))?;
        let secret = EncryptedSecret::try_from(secret.to_vec()).map_err(tss("encrypted secret"))?;
        let ek =
            tss_esapi::abstraction::ek::create_ek_object_2(&mut self.ctx, ek_selection(ek), None)
                .map_err(tss("CreatePrimary (EK)"))?;
        let ak = match self.create_ak() {
            Ok((ak, _)) => ak,
            Err(e) => {
                let _ = self.ctx.flush_context(ek.into());
                return Err(e);
            }
        };
        let res = self.activate_with(ak, ek, blob, secret);
        // Flush before looking at the result: a leaked transient object fills the TPM's slots.
        let f1 = self.ctx.flush_context(ak.into());
        let f2 = self.ctx.flush_context(ek.into());
        let out = res?;
        f1.and(f2).map_err(tss("FlushContext"))?;
        Ok(out)
    }

    fn activate_with(
        &mut self,
        ak: KeyHandle,
        ek: KeyHandle,
        blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Vec<u8>, TpmError> {
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tss("StartAuthSession"))?
            .ok_or(TpmError::Unexpected("returned no policy session"))?;
        let res = (|| {
            let policy = PolicySession::try_from(session).map_err(tss("policy session"))?;
            self.ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
                .map_err(tss("PolicySecret (endorsement)"))?;
            self.ctx
                .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                    ctx.activate_credential(ak, ek, blob, secret)
                })
                .map_err(tss("ActivateCredential"))
        })();
        let flushed = self.ctx.flush_context(SessionHandle::from(session).into());
        let out = res?;
        flushed.map_err(tss("FlushContext (session)"))?;
        Ok(out.value().to_vec())
    }

    /// Quote PCRs 0–7 and `pcr` (SHA-256 bank) with `qualifying` as `extraData`; returns the quote
    /// with the PCR values read right after it (the verifier checks them against the quote's
    /// digest, so a PCR changed in between makes the attestation fail, never pass wrongly).
    pub fn quote(&mut self, pcr: u32, qualifying: &[u8]) -> Result<TpmQuote, TpmError> {
        let (idx, sel) = platform_and(pcr)?;
        let data = Data::try_from(qualifying.to_vec()).map_err(tss("qualifying data"))?;
        let (ak, public) = self.create_ak()?;
        let scheme = match self.ak_alg {
            AkAlg::Ecc => SignatureScheme::EcDsa {
                hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
            },
            AkAlg::Rsa => SignatureScheme::RsaSsa {
                hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
            },
        };
        let res = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.quote(ak, data, scheme, sel)
            });
        // Flush before looking at the result: a leaked transient object fills the TPM's slots.
        let flushed = self.ctx.flush_context(ak.into());
        let (attest, sig) = res.map_err(tss("Quote"))?;
        flushed.map_err(tss("FlushContext"))?;
        let (sig_alg, sig) = match sig {
            Signature::EcDsa(e) => (
                ECDSA_P256_SHA256,
                ecdsa_rs(e.signature_r().value(), e.signature_s().value())
                    .map_err(|_| TpmError::Unexpected("returned an oversized ECDSA scalar"))?
                    .to_vec(),
            ),
            Signature::RsaSsa(r) => (RSASSA_SHA256, r.signature().value().to_vec()),
            _ => return Err(TpmError::Unexpected("signed the quote with another scheme")),
        };
        let attest = attest.marshall().map_err(tss("marshal TPMS_ATTEST"))?;
        let pcrs = self.read_pcrs(&idx)?;
        Ok(TpmQuote {
            attest: crate::attestation::b64_encode(&attest),
            sig_alg: sig_alg.into(),
            sig: to_hex(&sig),
            pcrs: pcrs.iter().map(|(i, v)| (*i, to_hex(v))).collect(),
            ak_public: ak_pem(&public)?,
        })
    }
}

impl crate::QuoteDevice for Tpm {
    fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<Vec<(u32, [u8; 32])>, crate::AttestationError> {
        Ok(Tpm::read_pcrs(self, pcrs)?)
    }

    fn extend_and_quote(
        &mut self,
        pcr: u32,
        value: &[u8; 32],
        qualifying: &[u8],
    ) -> Result<TpmQuote, crate::AttestationError> {
        self.extend(pcr, value)?;
        Ok(self.quote(pcr, qualifying)?)
    }
}

/// The default EK template of `ek` (TCG EK Credential Profile: RSA 2048, or ECC NIST P-256).
fn ek_selection(ek: crate::credential::EkAlg) -> AsymmetricAlgorithmSelection {
    match ek {
        crate::credential::EkAlg::Rsa => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        crate::credential::EkAlg::Ecc => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
    }
}
