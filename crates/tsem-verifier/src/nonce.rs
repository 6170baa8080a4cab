//! Nonces without database state, in the manner of SYN cookies: a nonce carries its own expiry
//! and is authenticated by an HMAC under the fleet key (one key that every verifier process on a
//! database shares: made once by the first process to open the database, kept there, read at
//! start), bound to the workload it was issued to. Issuing one is a computation, not an INSERT;
//! checking one is a computation, not a read. Single use is decided where it matters, by the one
//! statement that appends the attestation's result: the results' nonce column is UNIQUE, so of
//! several posts of one nonce exactly one is recorded ([`crate::store::Store::record`]).
//!
//! Layout (32 bytes, as the random nonces of schema 2 were, so attesters see no change):
//! `expiry (u64, big-endian) ‖ random (8 bytes) ‖ HMAC-SHA-256(key, DOMAIN ‖ len(workload) ‖
//! workload ‖ expiry ‖ random)[..16]`. The random part makes two nonces issued to one workload in
//! one second distinct (a collision needs about 2^32 of them: the issue rate is limited far
//! below); the MAC makes a nonce unforgeable and unpredictable to anyone without the key, which
//! is what a TPM quote's qualifying data needs: an attester cannot prepare a quote for a nonce
//! not yet issued. 128 bits of tag are the usual truncation of HMAC-SHA-256 (RFC 2104 §5 allows
//! half the output; forging one is a 2^-128 guess per post).

use hmac::Mac as _;

/// Bytes in a nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes in the fleet key.
pub const KEY_LEN: usize = 32;
const EXPIRY: usize = 8;
const RANDOM: usize = 8;
const BODY: usize = EXPIRY + RANDOM;
/// Separates these MACs from any other use of the key (there is none today).
const DOMAIN: &[u8] = b"tsem-verifier nonce v1\0";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a presented nonce is not one to appraise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Not made by a verifier holding the fleet key for this workload (made up, altered,
    /// another workload's, or of the wrong length).
    #[error("not issued by this verifier to this workload")]
    Unknown,
    /// Genuine, but past its expiry (UNIX seconds).
    #[error("expired at {0}")]
    Expired(u64),
    /// No randomness to issue one.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
}

/// The fleet key and the operations under it.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must not reach a log.
        f.write_str("NonceKey(..)")
    }
}

impl NonceKey {
    /// The key of raw bytes.
    pub fn new(key: [u8; KEY_LEN]) -> Self {
        Self { key }
    }

    /// A fresh random key (what the first verifier process stores for the fleet).
    pub fn generate() -> Result<Self, NonceError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| NonceError::Random(e.to_string()))?;
        Ok(Self { key })
    }

    /// The key's bytes (to store it).
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    fn mac(&self, workload: &str, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut m = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(DOMAIN);
        let len = u32::try_from(workload.len()).unwrap_or(u32::MAX);
        m.update(&len.to_be_bytes());
        m.update(workload.as_bytes());
        m.update(body);
        m
    }

    /// A nonce for `workload`, valid until `expires` (UNIX seconds).
    pub fn issue(&self, workload: &str, expires: u64) -> Result<[u8; NONCE_LEN], NonceError> {
        let mut n = [0u8; NONCE_LEN];
        n[..EXPIRY].copy_from_slice(&expires.to_be_bytes());
        getrandom::fill(&mut n[EXPIRY..BODY]).map_err(|e| NonceError::Random(e.to_string()))?;
        let tag = self.mac(workload, &n[..BODY]).finalize().into_bytes();
        n[BODY..].copy_from_slice(&tag[..NONCE_LEN - BODY]);
        Ok(n)
    }

    /// Check that `nonce` was issued under this key to `workload` and has not expired at `now`;
    /// returns its expiry. The tag is compared in constant time. Whether it was used is not
    /// known here: the append statement decides.
    pub fn check(&self, workload: &str, nonce: &[u8], now: u64) -> Result<u64, NonceError> {
        if nonce.len() != NONCE_LEN {
            return Err(NonceError::Unknown);
        }
        self.mac(workload, &nonce[..BODY])
            .verify_truncated_left(&nonce[BODY..])
            .map_err(|_| NonceError::Unknown)?;
        let mut e = [0u8; EXPIRY];
        e.copy_from_slice(&nonce[..EXPIRY]);
        let expires = u64::from_be_bytes(e);
        if expires <= now {
            return Err(NonceError::Expired(expires));
        }
        Ok(expires)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_nonce_is_good_only_for_its_workload_until_its_expiry() {
        let k = NonceKey::generate().unwrap();
        let n = k.issue("web", 1000).unwrap();
        assert_eq!(k.check("web", &n, 999), Ok(1000));
        assert_eq!(k.check("web", &n, 1000), Err(NonceError::Expired(1000)));
        assert_eq!(k.check("web2", &n, 999), Err(NonceError::Unknown));
        assert_eq!(k.check("we", &n, 999), Err(NonceError::Unknown));
        // Another fleet's key.
        let other = NonceKey::generate().unwrap();
        assert_eq!(other.check("web", &n, 999), Err(NonceError::Unknown));
        // Two nonces of one second differ.
        assert_ne!(n, k.issue("web", 1000).unwrap());
    }

    #[test]
    fn any_altered_byte_or_length_is_refused() {
        let k = NonceKey::new([7; KEY_LEN]);
        let n = k.issue("web", u64::MAX).unwrap();
        for i in 0..NONCE_LEN {
            let mut m = n;
            m[i] ^= 1;
            assert_eq!(k.check("web", &m, 0), Err(NonceError::Unknown), "byte {i}");
        }
        // A later expiry written over a genuine nonce: the MAC covers it.
        let short = k.issue("web", 10).unwrap();
        let mut extended = short;
        extended[..EXPIRY].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(k.check("web", &extended, 20), Err(NonceError::Unknown));
        assert_eq!(k.check("web", &n[..31], 0), Err(NonceError::Unknown));
        assert_eq!(k.check("web", &[], 0), Err(NonceError::Unknown));
        let mut long = n.to_vec();
        long.push(0);
        assert_eq!(k.check("web", &long, 0), Err(NonceError::Unknown));
    }

    #[test]
    fn the_tag_is_the_hmac_of_the_documented_input() {
        // Recomputed independently of `mac`: HMAC-SHA-256 per RFC 2104 over the layout the
        // module documents, so the format cannot drift unnoticed.
        use sha2::Digest as _;
        let key = [0x42u8; KEY_LEN];
        let k = NonceKey::new(key);
        let n = k.issue("w1", 77).unwrap();
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&2u32.to_be_bytes());
        msg.extend_from_slice(b"w1");
        msg.extend_from_slice(&n[..BODY]);
        let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
        for i in 0..KEY_LEN {
            ipad[i] ^= key[i];
            opad[i] ^= key[i];
        }
        let inner = sha2::Sha256::new()
            .chain_update(ipad)
            .chain_update(&msg)
            .finalize();
        let outer = sha2::Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize();
        assert_eq!(&n[BODY..], &outer[..16]);
        assert_eq!(&n[..EXPIRY], &77u64.to_be_bytes());
    }
}
