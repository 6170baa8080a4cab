//! TPM-rooted AK enrolment, the verifier's side, in pure Rust (TPM 2.0 Part 1 §24 "Credential
//! Protection"; Part 3 TPM2_MakeCredential).
//!
//! A verifier that is handed an AK public key cannot tell a key inside a TPM from one in a file.
//! Credential activation closes that gap: the verifier checks the EK certificate against the CA
//! certificates it trusts ([`check_ek_cert`]), checks that the AK's public area describes a
//! restricted signing key that cannot leave its TPM ([`AkPublic::parse`]), and encrypts a fresh
//! secret to the EK bound to the AK's name ([`make_credential`]). Only the TPM holding both the
//! EK's private key and an object with exactly that name can recover the secret with
//! TPM2_ActivateCredential, so a correct answer proves the AK lives in the certified TPM.
//!
//! Supported: RSA 2048 EKs with the default (TCG EK profile, template L-1) symmetric algorithm,
//! AES-128-CFB, and SHA-256 names; CA signatures RSA PKCS#1 v1.5 with SHA-256/384/512 or ECDSA
//! P-256 with SHA-256. An ECC EK is refused with a message saying so.

use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, Encode as _};

use crate::quote::AkAlg;

/// Why an EK certificate, an AK or a credential is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The EK certificate is malformed, not from a trusted CA, or not usable.
    #[error("EK certificate: {0}")]
    EkCert(String),
    /// The AK public area is malformed or not a TPM-resident restricted signing key.
    #[error("AK public area: {0}")]
    Ak(String),
    /// The credential could not be made.
    #[error("make credential: {0}")]
    Make(String),
}

/// `TPM_ALG_*` values used here.
const ALG_RSA: u16 = 0x0001;
const ALG_SHA256: u16 = 0x000B;
const ALG_NULL: u16 = 0x0010;
const ALG_RSASSA: u16 = 0x0014;
const ALG_ECDSA: u16 = 0x0018;
const ALG_ECC: u16 = 0x0023;
const ECC_NIST_P256: u16 = 0x0003;

/// `TPMA_OBJECT` bits an AK must have: it never leaves its TPM (`fixedTPM`, `fixedParent`), was
/// generated inside it (`sensitiveDataOrigin`), and signs only what the TPM produced itself
/// (`restricted` + `sign`), so its quotes cannot be forged by signing a made-up TPMS_ATTEST.
const FIXED_TPM: u32 = 1 << 1;
const FIXED_PARENT: u32 = 1 << 4;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
const RESTRICTED: u32 = 1 << 16;
const DECRYPT: u32 = 1 << 17;
const SIGN: u32 = 1 << 18;

/// The AES key size of the default RSA EK template (bytes).
const EK_SYM_KEY: usize = 16;

/// A checked AK public area (`TPMT_PUBLIC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkPublic {
    /// The marshalled `TPMT_PUBLIC`.
    pub bytes: Vec<u8>,
    /// The TPM name: `TPM_ALG_SHA256 || SHA-256(bytes)`.
    pub name: Vec<u8>,
    /// The key (SPKI PEM), as the quotes are verified with.
    pub pem: String,
    /// ECC or RSA.
    pub alg: AkAlg,
}

/// Which endorsement key: the RSA 2048 one (certificate in NV index 0x01c00002) or the ECC
/// NIST P-256 one (0x01c0000a), each from the default template of the TCG EK Credential Profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EkAlg {
    /// RSA 2048: the credential's seed is RSA-OAEP encrypted to it.
    #[default]
    Rsa,
    /// ECC NIST P-256: the seed is agreed by ECDH with an ephemeral key (KDFe).
    Ecc,
}

impl std::str::FromStr for EkAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rsa" => Ok(Self::Rsa),
            "ecc" | "p256" => Ok(Self::Ecc),
            _ => Err(format!("unknown EK algorithm {s:?} (rsa, ecc)")),
        }
    }
}

/// An endorsement key, as its certificate gives it.
#[derive(Debug, Clone)]
pub enum EkKey {
    /// RSA 2048.
    Rsa(rsa::RsaPublicKey),
    /// NIST P-256.
    Ecc(p256::PublicKey),
}

/// A checked EK certificate.
#[derive(Debug, Clone)]
pub struct EkCert {
    /// The EK (RSA 2048 or ECC P-256).
    pub key: EkKey,
    /// Subject of the CA certificate that signed it.
    pub issuer: String,
    /// SHA-256 of the certificate (hex): which TPM this is.
    pub fingerprint: String,
}

/// What the attester's TPM needs to activate: `credentialBlob` (a `TPM2B_ID_OBJECT`'s buffer) and
/// `secret` (a `TPM2B_ENCRYPTED_SECRET`'s buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `integrityHMAC (TPM2B_DIGEST) || encIdentity`.
    pub blob: Vec<u8>,
    /// The seed, RSA-OAEP encrypted to the EK with the label `IDENTITY\0`.
    pub secret: Vec<u8>,
}

/// Reads a marshalled TPM structure, big-endian, failing (never panicking) past its end.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CredentialError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(CredentialError::Ak(format!(
                "truncated at offset {} reading {what}",
                self.at
            )));
        };
        let s = self.b.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16, CredentialError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, CredentialError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn tpm2b(&mut self, what: &str) -> Result<&'a [u8], CredentialError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
}

fn ak_err(msg: impl Into<String>) -> CredentialError {
    CredentialError::Ak(msg.into())
}

impl AkPublic {
    /// Parse and check a marshalled `TPMT_PUBLIC`: an ECC P-256 (ECDSA/SHA-256) or RSA 2048
    /// (RSASSA/SHA-256) restricted signing key with a SHA-256 name, `fixedTPM`, `fixedParent`
    /// and `sensitiveDataOrigin`.
    pub fn parse(bytes: &[u8]) -> Result<Self, CredentialError> {
        let mut r = Reader { b: bytes, at: 0 };
        let ty = r.u16("type")?;
        let name_alg = r.u16("nameAlg")?;
        if name_alg != ALG_SHA256 {
            return Err(ak_err(format!("nameAlg {name_alg:#06x}, expected SHA-256")));
        }
        let attrs = r.u32("objectAttributes")?;
        let need = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;
        if attrs & need != need || attrs & DECRYPT != 0 {
            return Err(ak_err(format!(
                "objectAttributes {attrs:#010x}: not a restricted signing key generated in and \
                 fixed to its TPM (fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign, \
                 not decrypt)"
            )));
        }
        r.tpm2b("authPolicy")?;
        if r.u16("parameters.symmetric")? != ALG_NULL {
            return Err(ak_err("a signing key with a symmetric algorithm"));
        }
        let scheme = r.u16("parameters.scheme")?;
        let scheme_hash = if scheme == ALG_NULL {
            ALG_NULL
        } else {
            r.u16("parameters.scheme.hashAlg")?
        };
        let (alg, pem) = match ty {
            ALG_ECC => {
                if scheme != ALG_ECDSA || scheme_hash != ALG_SHA256 {
                    return Err(ak_err("ECC AK whose scheme is not ECDSA with SHA-256"));
                }
                let curve = r.u16("parameters.curveID")?;
                if curve != ECC_NIST_P256 {
                    return Err(ak_err(format!("curve {curve:#06x}, expected NIST P-256")));
                }
                if r.u16("parameters.kdf")? != ALG_NULL {
                    return Err(ak_err("a signing key with a KDF"));
                }
                let x = r.tpm2b("unique.x")?;
                let y = r.tpm2b("unique.y")?;
                (AkAlg::Ecc, ecc_pem(x, y).map_err(ak_err)?)
            }
            ALG_RSA => {
                if scheme != ALG_RSASSA || scheme_hash != ALG_SHA256 {
                    return Err(ak_err("RSA AK whose scheme is not RSASSA with SHA-256"));
                }
                let bits = r.u16("parameters.keyBits")?;
                if bits != 2048 {
                    return Err(ak_err(format!("RSA key of {bits} bits, expected 2048")));
                }
                let e = r.u32("parameters.exponent")?;
                let n = r.tpm2b("unique")?;
                (AkAlg::Rsa, rsa_pem(n, e).map_err(ak_err)?)
            }
            other => return Err(ak_err(format!("type {other:#06x}: neither ECC nor RSA"))),
        };
        if r.at != bytes.len() {
            return Err(ak_err(format!(
                "{} bytes after the structure",
                bytes.len() - r.at
            )));
        }
        let mut name = ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&sha2::Sha256::digest(bytes));
        Ok(Self {
            bytes: bytes.to_vec(),
            name,
            pem,
            alg,
        })
    }

    /// Whether `pem` (SPKI PEM, any line wrapping) is this AK's key.
    pub fn is_key(&self, pem: &str) -> bool {
        matches!((pem_der(pem), pem_der(&self.pem)), (Some(a), Some(b)) if a == b)
    }
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    crate::attestation::b64_decode(&body)
}

/// An uncompressed P-256 point as SPKI PEM.
pub(crate) fn ecc_pem(x: &[u8], y: &[u8]) -> Result<String, &'static str> {
    use p256::pkcs8::EncodePublicKey as _;
    let pad = |x: &[u8]| -> Option<[u8; 32]> {
        let mut o = [0u8; 32];
        let start = 32usize.checked_sub(x.len())?;
        o.get_mut(start..)?.copy_from_slice(x);
        Some(o)
    };
    let (Some(x), Some(y)) = (pad(x), pad(y)) else {
        return Err("an ECC point that is not P-256");
    };
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| "an ECC point not on P-256")?;
    vk.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|_| "a public key that cannot be encoded")
}

/// An RSA modulus and `TPMS_RSA_PARMS.exponent` (0 means 2^16 + 1) as SPKI PEM.
pub(crate) fn rsa_pem(n: &[u8], e: u32) -> Result<String, &'static str> {
    use rsa::pkcs8::EncodePublicKey as _;
    let e = if e == 0 { 65537 } else { e };
    let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from(e))
        .map_err(|_| "an unusable RSA key")?;
    key.to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|_| "a public key that cannot be encoded")
}

fn cert_err(msg: impl Into<String>) -> CredentialError {
    CredentialError::EkCert(msg.into())
}

/// Parse DER or PEM certificates (a PEM file may hold several).
pub fn parse_certs(data: &[u8]) -> Result<Vec<Vec<u8>>, CredentialError> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(vec![data.to_vec()]);
    };
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Ok(vec![data.to_vec()]);
    }
    let mut out = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let Some((body, _)) = block.split_once("-----END CERTIFICATE-----") else {
            return Err(cert_err("a PEM block without its END line"));
        };
        out.push(pem_der(body).ok_or_else(|| cert_err("a PEM block that is not base64"))?);
    }
    Ok(out)
}

/// Whether `cert`'s signature verifies with `ca`'s key.
fn signed_by(cert: &Certificate, ca: &Certificate) -> Result<(), String> {
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::signature::Verifier as _;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| format!("cannot re-encode: {e}"))?;
    let sig = cert.signature.raw_bytes();
    let spki = ca
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("CA key cannot be encoded: {e}"))?;
    let oid = cert.signature_algorithm.oid.to_string();
    let bad = |e: &dyn std::fmt::Display| format!("signature does not verify: {e}");
    macro_rules! rsa_verify {
        ($h:ty) => {{
            let key = rsa::RsaPublicKey::from_public_key_der(&spki)
                .map_err(|e| format!("CA key is not RSA: {e}"))?;
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| bad(&e))?;
            rsa::pkcs1v15::VerifyingKey::<$h>::new(key)
                .verify(&tbs, &s)
                .map_err(|e| bad(&e))
        }};
    }
    match oid.as_str() {
        "1.2.840.113549.1.1.11" => rsa_verify!(sha2_010::Sha256),
        "1.2.840.113549.1.1.12" => rsa_verify!(sha2_010::Sha384),
        "1.2.840.113549.1.1.13" => rsa_verify!(sha2_010::Sha512),
        "1.2.840.10045.4.3.2" => {
            use p256::ecdsa::signature::Verifier as _;
            use p256::pkcs8::DecodePublicKey as _;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
                .map_err(|e| format!("CA key is not P-256: {e}"))?;
            let s = p256::ecdsa::DerSignature::try_from(sig).map_err(|e| bad(&e))?;
            key.verify(&tbs, &s).map_err(|e| bad(&e))
        }
        other => Err(format!("signature algorithm {other} is not supported")),
    }
}

fn is_ca(ca: &Certificate) -> bool {
    use x509_cert::ext::pkix::BasicConstraints;
    ca.tbs_certificate.extensions.iter().flatten().any(|e| {
        e.extn_id.to_string() == "2.5.29.19"
            && BasicConstraints::from_der(e.extn_value.as_bytes()).is_ok_and(|b| b.ca)
    })
}

fn within_validity(c: &Certificate, now: u64) -> Result<(), String> {
    let v = &c.tbs_certificate.validity;
    let from = v.not_before.to_unix_duration().as_secs();
    let to = v.not_after.to_unix_duration().as_secs();
    if now < from {
        return Err(format!("not valid before {from} (now {now})"));
    }
    if now > to {
        return Err(format!("expired at {to} (now {now})"));
    }
    Ok(())
}

/// The longest chain of intermediate certificates followed from an EK certificate to a
/// configured CA (TPM vendors use one or two).
const MAX_INTERMEDIATES: usize = 4;

/// The configured CA among `cas` that signed `cert` (its subject), or why none did.
fn anchored(cert: &Certificate, cas: &[Vec<u8>], now: u64) -> Result<String, Vec<String>> {
    let issuer = &cert.tbs_certificate.issuer;
    let mut why = Vec::new();
    for (i, ca_der) in cas.iter().enumerate() {
        let Ok(ca) = Certificate::from_der(ca_der) else {
            why.push(format!("CA certificate {i} is not X.509 DER"));
            continue;
        };
        if &ca.tbs_certificate.subject != issuer {
            continue;
        }
        let checked = if is_ca(&ca) {
            within_validity(&ca, now).and_then(|()| signed_by(cert, &ca))
        } else {
            Err("is not marked as a CA (basicConstraints)".into())
        };
        match checked {
            Ok(()) => return Ok(ca.tbs_certificate.subject.to_string()),
            Err(e) => why.push(format!(
                "CA {:?}: {e}",
                ca.tbs_certificate.subject.to_string()
            )),
        }
    }
    Err(why)
}

/// Check an EK certificate (DER): issued by one of `cas` (DER CA certificates, the trust
/// anchors, trusted as they are), directly or through `chain` (DER intermediate CA certificates
/// the attester sent, trusted only as far as a configured CA vouches for them: each must be
/// marked as a CA, within its validity, and signed by the next, at most four of them), every
/// certificate within its validity at `now`, for an RSA 2048 key. Returns the EK.
pub fn check_ek_cert(
    der: &[u8],
    chain: &[Vec<u8>],
    cas: &[Vec<u8>],
    now: u64,
) -> Result<EkCert, CredentialError> {
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::traits::PublicKeyParts as _;
    let cert = Certificate::from_der(der).map_err(|e| cert_err(format!("not X.509 DER: {e}")))?;
    within_validity(&cert, now).map_err(cert_err)?;
    let intermediates = chain
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Certificate::from_der(d)
                .map_err(|e| cert_err(format!("chain certificate {i} is not X.509 DER: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut current = cert.clone();
    let mut why = Vec::new();
    let mut issuer_name = None;
    for _ in 0..=MAX_INTERMEDIATES.min(intermediates.len()) {
        match anchored(&current, cas, now) {
            Ok(name) => {
                issuer_name = Some(name);
                break;
            }
            Err(w) => why.extend(w),
        }
        // Not signed by a configured CA: by an intermediate the attester sent?
        let next = intermediates.iter().find(|c| {
            c.tbs_certificate.subject == current.tbs_certificate.issuer
                && c.tbs_certificate.subject != current.tbs_certificate.subject
        });
        let Some(next) = next else { break };
        let checked = if is_ca(next) {
            within_validity(next, now).and_then(|()| signed_by(&current, next))
        } else {
            Err("is not marked as a CA (basicConstraints)".into())
        };
        if let Err(e) = checked {
            why.push(format!(
                "chain certificate {:?}: {e}",
                next.tbs_certificate.subject.to_string()
            ));
            break;
        }
        current = next.clone();
    }
    let Some(issuer_name) = issuer_name else {
        return Err(cert_err(if why.is_empty() {
            format!(
                "issued by {:?}, which is none of the {} configured CA certificate(s){}",
                current.tbs_certificate.issuer.to_string(),
                cas.len(),
                if chain.is_empty() {
                    " (an intermediate CA's certificate may be sent with the EK's)"
                } else {
                    ""
                }
            )
        } else {
            why.join("; ")
        }));
    };
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| cert_err(format!("key cannot be encoded: {e}")))?;
    let key = match rsa::RsaPublicKey::from_public_key_der(&spki) {
        Ok(key) if key.size() == 256 => EkKey::Rsa(key),
        Ok(key) => {
            return Err(cert_err(format!(
                "RSA EK of {} bits; only RSA 2048 and ECC P-256 EKs are supported",
                key.size() * 8
            )));
        }
        Err(_) => {
            use p256::pkcs8::DecodePublicKey as _;
            EkKey::Ecc(p256::PublicKey::from_public_key_der(&spki).map_err(|_| {
                cert_err("the EK is neither RSA 2048 nor ECC P-256 (the supported EKs)")
            })?)
        }
    };
    Ok(EkCert {
        key,
        issuer: issuer_name,
        fingerprint: crate::claims::to_hex(&sha2::Sha256::digest(der)),
    })
}

/// KDFa (Part 1 §11.4.10.2) with SHA-256: `bits` of output from `key`, a label (its terminating
/// zero included) and two contexts.
fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let want = (bits as usize).div_ceil(8);
    let mut out = Vec::with_capacity(want + 32);
    let mut counter = 1u32;
    while out.len() < want {
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
            // HMAC takes keys of any length.
            return Vec::new();
        };
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(want);
    out
}

/// TPM2_MakeCredential in software: protect `credential` (at most 32 bytes) for the object named
/// `ak_name`, to the RSA EK `ek`.
pub fn make_credential(
    ek: &EkKey,
    ak_name: &[u8],
    credential: &[u8],
) -> Result<Credential, CredentialError> {
    use aes::cipher::{AsyncStreamCipher as _, KeyIvInit as _};
    use rand_core_06::RngCore as _;
    if credential.is_empty() || credential.len() > 32 {
        return Err(CredentialError::Make(format!(
            "a credential of {} bytes (1 to 32)",
            credential.len()
        )));
    }
    let mut rng = rand_core_06::OsRng;
    let (seed, secret) = match ek {
        EkKey::Rsa(ek) => {
            let mut seed = [0u8; 32];
            rng.try_fill_bytes(&mut seed)
                .map_err(|e| CredentialError::Make(format!("no randomness: {e}")))?;
            let secret = ek
                .encrypt(
                    &mut rng,
                    rsa::Oaep::new_with_label::<sha2_010::Sha256, _>("IDENTITY\0"),
                    &seed,
                )
                .map_err(|e| CredentialError::Make(format!("RSA-OAEP to the EK: {e}")))?;
            (seed.to_vec(), secret)
        }
        EkKey::Ecc(ek) => ecc_seed(ek)?,
    };
    let sym = kdfa(&seed, "STORAGE", ak_name, &[], (EK_SYM_KEY * 8) as u32);
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    enc_identity.extend_from_slice(&(credential.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(credential);
    cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym, &[0u8; 16])
        .map_err(|e| CredentialError::Make(format!("AES-128-CFB: {e}")))?
        .encrypt(&mut enc_identity);
    let hmac_key = kdfa(&seed, "INTEGRITY", &[], &[], 256);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&hmac_key)
        .map_err(|e| CredentialError::Make(format!("HMAC: {e}")))?;
    mac.update(&enc_identity);
    mac.update(ak_name);
    let outer = mac.finalize().into_bytes();
    let mut blob = Vec::with_capacity(2 + outer.len() + enc_identity.len());
    blob.extend_from_slice(&(outer.len() as u16).to_be_bytes());
    blob.extend_from_slice(&outer);
    blob.extend_from_slice(&enc_identity);
    Ok(Credential { blob, secret })
}

/// An ECC EK's seed (Part 1 §C.6.1, Part 2 `TPMS_ECC_POINT`): ECDH between a fresh ephemeral
/// P-256 key and the EK, the seed the KDFe of the shared x coordinate with the label `IDENTITY`
/// and both public x coordinates; the ephemeral public point is the encrypted secret.
fn ecc_seed(ek: &p256::PublicKey) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    use rand_core_06::RngCore as _;
    let mut d = [0u8; 32];
    let ephemeral = loop {
        rand_core_06::OsRng
            .try_fill_bytes(&mut d)
            .map_err(|e| CredentialError::Make(format!("no randomness: {e}")))?;
        // A uniformly random 256-bit string is a valid non-zero scalar but for 2^-32 of them.
        if let Some(s) =
            Option::<p256::NonZeroScalar>::from(p256::NonZeroScalar::from_repr(d.into()))
        {
            break s;
        }
    };
    // Uncompressed SEC1: 0x04 || x || y. None of the three is the identity (a non-zero scalar
    // times a point of the prime-order group; `PublicKey` is never the identity).
    let q_e = (p256::ProjectivePoint::GENERATOR * *ephemeral)
        .to_affine()
        .to_uncompressed_point();
    let z = (ek.to_projective() * *ephemeral)
        .to_affine()
        .to_uncompressed_point();
    let q_ek = ek.as_affine().to_uncompressed_point();
    let (Some(qx), Some(qy), Some(zx), Some(ekx)) = (
        q_e.get(1..33),
        q_e.get(33..65),
        z.get(1..33),
        q_ek.get(1..33),
    ) else {
        return Err(CredentialError::Make(
            "a P-256 point of the wrong size".into(),
        ));
    };
    let seed = kdfe(zx, "IDENTITY", qx, ekx);
    let mut point = Vec::with_capacity(4 + qx.len() + qy.len());
    for c in [qx, qy] {
        point.extend_from_slice(&(c.len() as u16).to_be_bytes());
        point.extend_from_slice(c);
    }
    Ok((seed, point))
}

/// KDFe (Part 1 §11.4.10.3) with SHA-256 for 256 bits: `SHA-256(1 || Z || label\0 || U || V)`.
fn kdfe(z: &[u8], label: &str, party_u: &[u8], party_v: &[u8]) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update(label.as_bytes());
    h.update([0u8]);
    h.update(party_u);
    h.update(party_v);
    h.finalize().to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An ECC AK public area as the TPM marshals the one tsem's template creates.
    fn ecc_ak(attrs: u32) -> Vec<u8> {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pt = sk.verifying_key().to_sec1_point(false);
        let pt = pt.as_bytes();
        let mut b = Vec::new();
        b.extend_from_slice(&ALG_ECC.to_be_bytes());
        b.extend_from_slice(&ALG_SHA256.to_be_bytes());
        b.extend_from_slice(&attrs.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&ALG_NULL.to_be_bytes());
        b.extend_from_slice(&ALG_ECDSA.to_be_bytes());
        b.extend_from_slice(&ALG_SHA256.to_be_bytes());
        b.extend_from_slice(&ECC_NIST_P256.to_be_bytes());
        b.extend_from_slice(&ALG_NULL.to_be_bytes());
        for c in [&pt[1..33], &pt[33..65]] {
            b.extend_from_slice(&32u16.to_be_bytes());
            b.extend_from_slice(c);
        }
        b
    }

    const AK_ATTRS: u32 = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;

    #[test]
    fn an_ak_must_be_a_restricted_signing_key_fixed_to_its_tpm() {
        let ok = AkPublic::parse(&ecc_ak(AK_ATTRS | (1 << 6))).unwrap();
        assert_eq!(ok.alg, AkAlg::Ecc);
        assert_eq!(&ok.name[..2], &[0x00, 0x0b]);
        assert!(ok.is_key(&ok.pem.replace('\n', "\n\n")));
        for missing in [
            FIXED_TPM,
            FIXED_PARENT,
            SENSITIVE_DATA_ORIGIN,
            RESTRICTED,
            SIGN,
        ] {
            let e = AkPublic::parse(&ecc_ak(AK_ATTRS & !missing)).unwrap_err();
            assert!(e.to_string().contains("objectAttributes"), "{e}");
        }
        assert!(AkPublic::parse(&ecc_ak(AK_ATTRS | DECRYPT)).is_err());
        let full = ecc_ak(AK_ATTRS);
        for n in 0..full.len() {
            let e = AkPublic::parse(&full[..n]).unwrap_err().to_string();
            assert!(e.contains("truncated"), "{n}: {e}");
        }
        let mut long = full.clone();
        long.push(0);
        assert!(
            AkPublic::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("after")
        );
    }

    #[test]
    fn kdfa_matches_the_reference_construction() {
        // One block: HMAC-SHA256(key, 00000001 || "STORAGE\0" || u || 00000080), truncated.
        let k = kdfa(b"seed", "STORAGE", b"name", &[], 128);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"seed").unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"STORAGE\0name");
        mac.update(&[0, 0, 0, 0x80]);
        assert_eq!(k, mac.finalize().into_bytes()[..16].to_vec());
        assert_eq!(kdfa(b"s", "INTEGRITY", &[], &[], 512).len(), 64);
    }

    #[test]
    fn credentials_are_bounded_and_fresh() {
        let mut rng = rand_core_06::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let ek = EkKey::Rsa(rsa::RsaPublicKey::from(&key));
        let a = make_credential(&ek, b"\x00\x0bname", &[1; 32]).unwrap();
        let b = make_credential(&ek, b"\x00\x0bname", &[1; 32]).unwrap();
        assert_ne!(a.blob, b.blob, "a fresh seed each time");
        assert_eq!(a.secret.len(), 256);
        assert_eq!(a.blob.len(), 2 + 32 + 2 + 32);
        // The seed decrypts with the EK's private key and the TPM's label.
        let seed = key
            .decrypt(
                rsa::Oaep::new_with_label::<sha2_010::Sha256, _>("IDENTITY\0"),
                &a.secret,
            )
            .unwrap();
        assert_eq!(seed.len(), 32);
        assert!(make_credential(&ek, b"n", &[]).is_err());
        assert!(make_credential(&ek, b"n", &[0; 33]).is_err());
    }

    /// An ECC EK's credential: the EK's private scalar recovers the seed from the ephemeral point
    /// (ECDH + KDFe, as TPM2_ActivateCredential does), and the seed's HMAC key authenticates the
    /// blob for this AK name only.
    #[test]
    fn an_ecc_ek_recovers_the_seed_by_ecdh() {
        use hmac::Mac as _;
        use p256::elliptic_curve::sec1::{FromSec1Point as _, ToSec1Point as _};
        let d = p256::NonZeroScalar::from_repr([7u8; 32].into()).unwrap();
        let ek_pub = p256::PublicKey::from_secret_scalar(&d);
        let name = b"\x00\x0bak-name";
        let c = make_credential(&EkKey::Ecc(ek_pub), name, &[9; 32]).unwrap();
        // TPMS_ECC_POINT: two TPM2B of 32 bytes.
        assert_eq!(c.secret.len(), 2 + 32 + 2 + 32);
        assert_eq!(&c.secret[..2], &[0, 32]);
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&c.secret[2..34]);
        sec1.extend_from_slice(&c.secret[36..68]);
        let point = p256::Sec1Point::from_bytes(&sec1).unwrap();
        let q_e = p256::AffinePoint::from_sec1_point(&point).unwrap();
        let z = (p256::ProjectivePoint::from(q_e) * *d)
            .to_affine()
            .to_uncompressed_point();
        let ekx = ek_pub.as_affine().to_uncompressed_point();
        let seed = kdfe(&z[1..33], "IDENTITY", &c.secret[2..34], &ekx[1..33]);
        let hmac_key = kdfa(&seed, "INTEGRITY", &[], &[], 256);
        let outer_len = usize::from(u16::from_be_bytes([c.blob[0], c.blob[1]]));
        let (outer, enc) = c.blob[2..].split_at(outer_len);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&hmac_key).unwrap();
        mac.update(enc);
        mac.update(name);
        assert_eq!(mac.finalize().into_bytes().to_vec(), outer);
        // Another ephemeral key every time.
        let again = make_credential(&EkKey::Ecc(ek_pub), name, &[9; 32]).unwrap();
        assert_ne!(again.secret, c.secret);
    }
}
