//! TPM2 quotes checked in pure Rust: `TPMS_ATTEST` unmarshalling, the PCR digest and the AK's
//! ECDSA P-256 signature. No TPM and no tpm2-tss are needed to verify.

use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// `TPM_GENERATED_VALUE`: the TPM only signs structures that start with it.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;

/// A quote that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// The TPMS_ATTEST bytes do not parse.
    #[error("TPMS_ATTEST malformed at byte {offset}: {msg}")]
    Malformed {
        /// Byte offset.
        offset: usize,
        /// What is wrong.
        msg: &'static str,
    },
    /// Not `TPM_GENERATED_VALUE`: the TPM did not produce this structure.
    #[error("TPMS_ATTEST magic is {0:#010x}, not TPM_GENERATED_VALUE 0xff544347")]
    Magic(u32),
    /// Not a quote.
    #[error("TPMS_ATTEST type is {0:#06x}, not TPM_ST_ATTEST_QUOTE 0x8018")]
    Type(u16),
    /// The AK public key cannot be read.
    #[error("AK public key: {0}")]
    AkKey(String),
    /// The signature is not a P-256 ECDSA signature.
    #[error("quote signature malformed: {0}")]
    SignatureFormat(String),
    /// The AK did not sign these bytes.
    #[error("quote signature does not verify with the given AK public key")]
    Signature,
    /// `extraData` is not what the verifier expected.
    #[error("quote extraData {got} is not {expected} (the digest of these claims with this nonce)")]
    ExtraData {
        /// Expected (hex).
        expected: String,
        /// Found (hex).
        got: String,
    },
    /// The selection is not what the shipped PCR values cover.
    #[error(
        "quote PCR selection {quoted:?} (sha256) differs from the PCR values shipped {shipped:?}"
    )]
    Selection {
        /// PCRs selected in the quote.
        quoted: Vec<u32>,
        /// PCRs whose values were shipped.
        shipped: Vec<u32>,
    },
    /// The selection uses another bank or more than one bank.
    #[error("quote selects banks {0:?}; only a single sha256 bank (0x000b) is supported")]
    Banks(Vec<u16>),
    /// The shipped PCR values do not hash to the quoted pcrDigest.
    #[error("quoted pcrDigest {quoted} is not the digest {computed} of the shipped PCR values")]
    PcrDigest {
        /// From the quote (hex).
        quoted: String,
        /// Over the shipped values (hex).
        computed: String,
    },
}

/// The parts of a `TPMS_ATTEST` quote the verifier uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    /// `extraData` (the qualifying data).
    pub extra_data: Vec<u8>,
    /// `clockInfo.resetCount`: changes on every TPM reset (reboot).
    pub reset_count: u32,
    /// `clockInfo.restartCount`.
    pub restart_count: u32,
    /// Selected PCRs per bank: (TPM_ALG_ID, ascending PCR indices).
    pub selection: Vec<(u16, Vec<u32>)>,
    /// `pcrDigest`.
    pub pcr_digest: Vec<u8>,
}

struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], QuoteError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        match end.and_then(|e| self.b.get(self.at..e)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(QuoteError::Malformed {
                offset: self.at,
                msg: what,
            }),
        }
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, QuoteError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, QuoteError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, QuoteError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn tpm2b(&mut self, what: &'static str) -> Result<&'a [u8], QuoteError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
}

/// Unmarshal a `TPMS_ATTEST` holding a quote (TPM 2.0 Part 2, §10.12.12). Trailing bytes are
/// rejected so that one signature cannot stand for two readings.
pub fn parse_attest(b: &[u8]) -> Result<QuoteInfo, QuoteError> {
    let mut r = Rd { b, at: 0 };
    let magic = r.u32("magic")?;
    if magic != TPM_GENERATED {
        return Err(QuoteError::Magic(magic));
    }
    let ty = r.u16("type")?;
    if ty != TPM_ST_ATTEST_QUOTE {
        return Err(QuoteError::Type(ty));
    }
    r.tpm2b("qualifiedSigner")?;
    let extra_data = r.tpm2b("extraData")?.to_vec();
    r.take(8, "clockInfo.clock")?;
    let reset_count = r.u32("clockInfo.resetCount")?;
    let restart_count = r.u32("clockInfo.restartCount")?;
    r.u8("clockInfo.safe")?;
    r.take(8, "firmwareVersion")?;
    let count = r.u32("pcrSelect.count")?;
    if count > 16 {
        return Err(QuoteError::Malformed {
            offset: r.at,
            msg: "pcrSelect.count above 16",
        });
    }
    let mut selection = Vec::new();
    for _ in 0..count {
        let alg = r.u16("pcrSelections.hash")?;
        let size = r.u8("pcrSelections.sizeofSelect")?;
        let bits = r.take(usize::from(size), "pcrSelections.pcrSelect")?;
        let mut pcrs = Vec::new();
        for (byte, &v) in bits.iter().enumerate() {
            for bit in 0..8 {
                if v & (1 << bit) != 0 {
                    pcrs.push((byte * 8 + bit) as u32);
                }
            }
        }
        selection.push((alg, pcrs));
    }
    let pcr_digest = r.tpm2b("pcrDigest")?.to_vec();
    if r.at != b.len() {
        return Err(QuoteError::Malformed {
            offset: r.at,
            msg: "trailing bytes after TPMS_QUOTE_INFO",
        });
    }
    Ok(QuoteInfo {
        extra_data,
        reset_count,
        restart_count,
        selection,
        pcr_digest,
    })
}

/// A quote as shipped in an attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmQuote {
    /// The marshalled `TPMS_ATTEST` (base64).
    pub attest: String,
    /// Signature algorithm: `ecdsa-p256-sha256` or `rsassa-sha256` (PKCS#1 v1.5).
    pub sig_alg: String,
    /// The signature (hex): `r ‖ s`, 32 bytes each, for ECDSA; the PKCS#1 v1.5 signature for RSA.
    pub sig: String,
    /// SHA-256 PCR values of the quoted PCRs, ascending by index: (index, hex).
    pub pcrs: Vec<(u32, String)>,
    /// The AK public key (SPKI PEM) the attester used. Informational: the verifier must use a
    /// key it trusts (`--ak`), never this one.
    pub ak_public: String,
}

/// `sig_alg` of ECDSA P-256 quotes.
pub const ECDSA_P256_SHA256: &str = "ecdsa-p256-sha256";
/// `sig_alg` of RSA (RSASSA-PKCS1-v1_5) quotes.
pub const RSASSA_SHA256: &str = "rsassa-sha256";

/// A TPM attestation key the verifier trusts: ECC NIST P-256 (ECDSA) or RSA (RSASSA-PKCS1-v1_5),
/// both with SHA-256.
#[derive(Debug, Clone)]
pub enum AkKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa(rsa::pkcs1v15::VerifyingKey<sha2_010::Sha256>),
}

impl AkKey {
    /// From an SPKI PEM public key (P-256 or RSA), as `tsem attest --ak-out` writes it.
    pub fn from_pem(pem: &str) -> Result<Self, QuoteError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::P256(k));
        }
        use rsa::pkcs8::DecodePublicKey as _;
        match rsa::RsaPublicKey::from_public_key_pem(pem) {
            Ok(k) => Ok(Self::Rsa(rsa::pkcs1v15::VerifyingKey::new(k))),
            Err(e) => Err(QuoteError::AkKey(format!(
                "neither a P-256 nor an RSA SPKI PEM public key: {e}"
            ))),
        }
    }

    /// The `sig_alg` this key verifies.
    pub fn sig_alg(&self) -> &'static str {
        match self {
            Self::P256(_) => ECDSA_P256_SHA256,
            Self::Rsa(_) => RSASSA_SHA256,
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), QuoteError> {
        match self {
            Self::P256(k) => {
                let (r, s) = sig.split_at_checked(32).ok_or_else(|| {
                    QuoteError::SignatureFormat(format!("{} bytes, not r ‖ s", sig.len()))
                })?;
                if s.len() != 32 {
                    return Err(QuoteError::SignatureFormat(format!(
                        "{} bytes, not r ‖ s",
                        sig.len()
                    )));
                }
                let mut rb = [0u8; 32];
                let mut sb = [0u8; 32];
                rb.copy_from_slice(r);
                sb.copy_from_slice(s);
                let sig = p256::ecdsa::Signature::from_scalars(rb, sb)
                    .map_err(|e| QuoteError::SignatureFormat(e.to_string()))?;
                // The TPM signs SHA-256(TPMS_ATTEST); the verifier hashes the message itself.
                k.verify(msg, &sig).map_err(|_| QuoteError::Signature)
            }
            Self::Rsa(k) => {
                use rsa::signature::Verifier as _;
                let sig = rsa::pkcs1v15::Signature::try_from(sig)
                    .map_err(|e| QuoteError::SignatureFormat(e.to_string()))?;
                k.verify(msg, &sig).map_err(|_| QuoteError::Signature)
            }
        }
    }
}

/// ECDSA `r` and `s` as the TPM returns them (big-endian, possibly shorter than 32 bytes) to the
/// fixed `r ‖ s` form of [`TpmQuote::sig`].
pub fn ecdsa_rs(r: &[u8], s: &[u8]) -> Result<[u8; 64], QuoteError> {
    let mut o = [0u8; 64];
    for (x, half) in [(r, 0usize), (s, 32)] {
        let x = match x.iter().position(|&b| b != 0) {
            Some(i) => x.get(i..).unwrap_or(&[]),
            None => &[],
        };
        let start = (half + 32)
            .checked_sub(x.len())
            .filter(|&st| st >= half)
            .ok_or_else(|| QuoteError::SignatureFormat(format!("{}-byte scalar", x.len())))?;
        o[start..half + 32].copy_from_slice(x);
    }
    Ok(o)
}

/// Verify the quote's signature (`sig_alg`, `sig`) with the trusted `ak` and that its PCR digest
/// covers exactly `pcrs` (SHA-256 values, ascending index). Returns the parsed quote; the caller
/// checks `extra_data`.
pub fn verify_quote_with(
    ak: &AkKey,
    attest: &[u8],
    sig_alg: &str,
    sig: &[u8],
    pcrs: &[(u32, [u8; 32])],
) -> Result<QuoteInfo, QuoteError> {
    if sig_alg != ak.sig_alg() {
        return Err(QuoteError::SignatureFormat(format!(
            "quote signed with {sig_alg}, but the trusted AK verifies {}",
            ak.sig_alg()
        )));
    }
    ak.verify(attest, sig)?;
    let q = parse_attest(attest)?;
    let banks: Vec<u16> = q.selection.iter().map(|s| s.0).collect();
    let [(TPM_ALG_SHA256, quoted)] = q.selection.as_slice() else {
        return Err(QuoteError::Banks(banks));
    };
    let shipped: Vec<u32> = pcrs.iter().map(|p| p.0).collect();
    if *quoted != shipped {
        return Err(QuoteError::Selection {
            quoted: quoted.clone(),
            shipped,
        });
    }
    let mut h = sha2::Sha256::new();
    for (_, v) in pcrs {
        h.update(v);
    }
    let computed = h.finalize();
    if computed.as_slice() != q.pcr_digest.as_slice() {
        return Err(QuoteError::PcrDigest {
            quoted: crate::claims::to_hex(&q.pcr_digest),
            computed: crate::claims::to_hex(&computed),
        });
    }
    Ok(q)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attest_bytes(extra: &[u8], pcrs: &[u32], digest: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&TPM_GENERATED.to_be_bytes());
        v.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        v.extend_from_slice(&[0, 2, 0xaa, 0xbb]);
        v.extend_from_slice(&(extra.len() as u16).to_be_bytes());
        v.extend_from_slice(extra);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&5u32.to_be_bytes());
        v.extend_from_slice(&6u32.to_be_bytes());
        v.push(1);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        v.push(3);
        let mut bits = [0u8; 3];
        for &p in pcrs {
            bits[(p / 8) as usize] |= 1 << (p % 8);
        }
        v.extend_from_slice(&bits);
        v.extend_from_slice(&(digest.len() as u16).to_be_bytes());
        v.extend_from_slice(digest);
        v
    }

    #[test]
    fn parses_and_rejects_every_truncation() {
        let b = attest_bytes(b"nonce", &[0, 7, 11], &[9; 32]);
        let q = parse_attest(&b).unwrap();
        assert_eq!(q.extra_data, b"nonce");
        assert_eq!(q.reset_count, 5);
        assert_eq!(q.restart_count, 6);
        assert_eq!(q.selection, vec![(TPM_ALG_SHA256, vec![0, 7, 11])]);
        for n in 0..b.len() {
            assert!(parse_attest(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(parse_attest(&long).is_err());
        let mut bad = b;
        bad[0] = 0;
        assert!(matches!(parse_attest(&bad), Err(QuoteError::Magic(_))));
    }

    #[test]
    fn signed_quote_checks_digest_selection_and_key() {
        use p256::ecdsa::signature::Signer as _;
        let sk = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let vk = AkKey::P256(*sk.verifying_key());
        let pcrs: Vec<(u32, [u8; 32])> = vec![(0, [1; 32]), (11, [2; 32])];
        let mut h = sha2::Sha256::new();
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        let d = h.finalize();
        let b = attest_bytes(b"x", &[0, 11], &d);
        let sig: p256::ecdsa::Signature = sk.sign(&b);
        let (r, s) = sig.split_bytes();
        let rs = ecdsa_rs(&r, &s).unwrap();
        let e = ECDSA_P256_SHA256;
        verify_quote_with(&vk, &b, e, &rs, &pcrs).unwrap();
        assert!(matches!(
            verify_quote_with(&vk, &b, RSASSA_SHA256, &rs, &pcrs),
            Err(QuoteError::SignatureFormat(_))
        ));
        // A PCR value that is not what was quoted.
        let mut other = pcrs.clone();
        other[1].1[0] ^= 1;
        assert!(matches!(
            verify_quote_with(&vk, &b, e, &rs, &other),
            Err(QuoteError::PcrDigest { .. })
        ));
        // PCR values for another selection.
        let sel = vec![(0, [1; 32]), (16, [2; 32])];
        assert!(matches!(
            verify_quote_with(&vk, &b, e, &rs, &sel),
            Err(QuoteError::Selection { .. })
        ));
        // Another key.
        let sk2 = p256::ecdsa::SigningKey::from_bytes(&[8u8; 32].into()).unwrap();
        assert_eq!(
            verify_quote_with(&AkKey::P256(*sk2.verifying_key()), &b, e, &rs, &pcrs),
            Err(QuoteError::Signature)
        );
    }

    #[test]
    fn short_ecdsa_scalars_are_left_padded() {
        let o = ecdsa_rs(&[1], &[0, 0, 2]).unwrap();
        assert_eq!(o[31], 1);
        assert_eq!(o[63], 2);
        assert_eq!(o.iter().filter(|&&b| b != 0).count(), 2);
        assert!(ecdsa_rs(&[1; 33], &[1]).is_err());
    }
}

/// The kind of attestation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AkAlg {
    /// ECC NIST P-256, ECDSA with SHA-256 (the default: small and fast to create).
    #[default]
    Ecc,
    /// RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256 (what many deployed verifiers expect).
    Rsa,
}

impl std::str::FromStr for AkAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ecc" | "ecdsa" | "p256" => Ok(Self::Ecc),
            "rsa" => Ok(Self::Rsa),
            _ => Err(format!("unknown AK algorithm {s:?} (ecc, rsa)")),
        }
    }
}
