//! Hash functions of a modeling namespace and a fixed-capacity digest value.
//!
//! TSEM lets every namespace pick its hash function (spec §6.4); all ids, coefficients, file digests and
//! the state of that namespace use it. [`Digest`] holds up to 64 bytes inline so that digests are `Copy`
//! and never allocate on the modeling hot path.

use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;

use digest::Digest as _;

/// Largest digest size of any supported function (sha512), and TSEM's `HASH_MAX_DIGESTSIZE`.
pub const MAX_DIGEST: usize = 64;

/// A hash function usable by a modeling namespace or an evidence bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA-1: only for TPM 1.2 banks and IMA's legacy template digest.
    Sha1,
    /// SHA-256, TSEM's default.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SM3 (256-bit), the Chinese national standard; TPM bank `sm3_256`.
    Sm3,
}

impl HashAlg {
    /// Every supported function, in TPM algorithm-id order.
    pub const ALL: [HashAlg; 5] = [
        Self::Sha1,
        Self::Sha256,
        Self::Sha384,
        Self::Sha512,
        Self::Sm3,
    ];

    /// Digest size in bytes (`ds` in the spec).
    pub const fn size(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sm3 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The kernel crypto name (`digest=` in TSEM's control plane).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
            Self::Sm3 => "sm3",
        }
    }

    /// The TCG bank name (`sm3_256` rather than the kernel's `sm3`).
    pub const fn bank_name(self) -> &'static str {
        match self {
            Self::Sm3 => "sm3_256",
            other => other.name(),
        }
    }

    /// TPM2 `TPM_ALG_ID`.
    pub const fn tpm_alg_id(self) -> u16 {
        match self {
            Self::Sha1 => 0x0004,
            Self::Sha256 => 0x000B,
            Self::Sha384 => 0x000C,
            Self::Sha512 => 0x000D,
            Self::Sm3 => 0x0012,
        }
    }

    /// The function with TPM2 algorithm id `id`, if supported.
    pub const fn from_tpm_alg_id(id: u16) -> Option<Self> {
        match id {
            0x0004 => Some(Self::Sha1),
            0x000B => Some(Self::Sha256),
            0x000C => Some(Self::Sha384),
            0x000D => Some(Self::Sha512),
            0x0012 => Some(Self::Sm3),
            _ => None,
        }
    }

    /// Hash `data` in one shot.
    pub fn digest(self, data: &[u8]) -> Digest {
        // One-shot hashing goes straight to each implementation: the streaming enum is large
        // (sha512's block buffer) and moving it costs as much as hashing a short preimage.
        match self {
            Self::Sha1 => Digest::from_output(&sha1::Sha1::digest(data)),
            Self::Sha256 => crate::sha256::digest(data),
            Self::Sha384 => Digest::from_output(&sha2::Sha384::digest(data)),
            Self::Sha512 => Digest::from_output(&sha2::Sha512::digest(data)),
            Self::Sm3 => Digest::from_output(&sm3::Sm3::digest(data)),
        }
    }

    /// `HF("")`: TSEM's `zero_digest` (spec §3.2).
    pub fn zero_digest(self) -> Digest {
        self.digest(&[])
    }

    /// `ds` zero bytes: the null id, the initial measurement, the aggregate without a TPM.
    pub fn null_id(self) -> Digest {
        Digest::zero(self.size())
    }
}

/// Error for an unknown hash function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHashAlg;

impl fmt::Display for UnknownHashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown hash function (expected sha1, sha256, sha384, sha512 or sm3)")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownHashAlg {}

impl FromStr for HashAlg {
    type Err = UnknownHashAlg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            "sm3" | "sm3_256" | "sm3-256" => Ok(Self::Sm3),
            _ => Err(UnknownHashAlg),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest of up to [`MAX_DIGEST`] bytes, stored inline.
///
/// Ordering is unsigned bytewise over the digest bytes (memcmp order), which is the order TSEM sorts
/// coefficients in before computing the state (spec §4.4).
#[derive(Clone, Copy)]
pub struct Digest {
    len: u8,
    bytes: [u8; MAX_DIGEST],
}

impl Digest {
    /// `len` zero bytes. `len` is clamped to [`MAX_DIGEST`].
    pub const fn zero(len: usize) -> Self {
        let len = if len > MAX_DIGEST { MAX_DIGEST } else { len };
        Self {
            len: len as u8,
            bytes: [0; MAX_DIGEST],
        }
    }

    /// `len` bytes of 0xff (TSEM's failed-mapping TASK_ID, IMA's violation extend value).
    pub fn ones(len: usize) -> Self {
        let mut d = Self::zero(len);
        let n = d.len();
        d.bytes[..n].fill(0xff);
        d
    }

    /// A digest holding a copy of `bytes`; `None` if longer than [`MAX_DIGEST`].
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_DIGEST {
            return None;
        }
        let mut d = Self::zero(bytes.len());
        d.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(d)
    }

    /// From a hash output (never longer than [`MAX_DIGEST`]; longer input is truncated).
    fn from_output(out: &[u8]) -> Self {
        let n = out.len().min(MAX_DIGEST);
        let mut d = Self::zero(n);
        d.bytes[..n].copy_from_slice(&out[..n]);
        d
    }

    /// Parse lowercase or uppercase hex; the digest takes the decoded length.
    pub fn from_hex(hex: &str) -> Result<Self, HexError> {
        Self::from_hex_bytes(hex.as_bytes())
    }

    /// Parse hex given as bytes (a field of a kernel record, which need not be UTF-8).
    pub fn from_hex_bytes(raw: &[u8]) -> Result<Self, HexError> {
        if !raw.len().is_multiple_of(2) {
            return Err(HexError::OddLength);
        }
        if raw.len() / 2 > MAX_DIGEST {
            return Err(HexError::TooLong);
        }
        let mut d = Self::zero(raw.len() / 2);
        // No branch per digit: non-digits (0xff in the table) are noticed once at the end, and
        // only then is the first one looked for (a line carries three or four digests).
        let mut bad = 0u8;
        for (out, pair) in d.bytes.iter_mut().zip(raw.chunks_exact(2)) {
            let (hi, lo) = (HEX_VAL[usize::from(pair[0])], HEX_VAL[usize::from(pair[1])]);
            bad |= hi | lo;
            *out = (hi << 4) | lo;
        }
        if bad > 0x0f {
            let at = raw.iter().position(|&c| hex_val(c).is_none()).unwrap_or(0);
            return Err(HexError::BadChar(at));
        }
        Ok(d)
    }

    /// Parse hex of exactly `len` bytes.
    pub fn from_hex_len(hex: &str, len: usize) -> Result<Self, HexError> {
        let d = Self::from_hex(hex)?;
        if d.len() != len {
            return Err(HexError::WrongLength {
                expected: len,
                got: d.len(),
            });
        }
        Ok(d)
    }

    /// Number of bytes.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True for a zero-length digest.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }

    /// The last byte of the inline storage, whatever the length: the other end of the value
    /// from its first field, for a prefetch that must not read the length.
    pub(crate) fn storage_end(&self) -> Option<&u8> {
        self.bytes.last()
    }

    /// True if every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|b| *b == 0)
    }

    /// The bytes zero-padded (or truncated) to `N`: TSEM's fixed 64-byte task/owner buffers.
    pub fn padded<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = self.len().min(N);
        out[..n].copy_from_slice(&self.bytes[..n]);
        out
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> alloc::string::String {
        let mut s = alloc::string::String::with_capacity(self.len() * 2);
        for b in self.as_bytes() {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Hex digit values, 0xff for non-digits: a table lookup beats a match in the parse hot path.
const HEX_VAL: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_val(c: u8) -> Option<u8> {
    let v = HEX_VAL[c as usize];
    if v == 0xff { None } else { Some(v) }
}

/// Why a hex string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// An odd number of hex digits.
    OddLength,
    /// A character that is not a hex digit, at this offset.
    BadChar(usize),
    /// More than [`MAX_DIGEST`] bytes.
    TooLong,
    /// A digest of the wrong size for the hash function.
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OddLength => f.write_str("odd number of hex digits"),
            Self::BadChar(i) => write!(f, "not a hex digit at character {i}"),
            Self::TooLong => write!(f, "longer than {MAX_DIGEST} bytes"),
            Self::WrongLength { expected, got } => {
                write!(
                    f,
                    "expected {expected} bytes ({} hex digits), got {got} bytes",
                    expected * 2
                )
            }
        }
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for Digest {}

impl core::hash::Hash for Digest {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Digest {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A streaming hash of a runtime-chosen function.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-1 state.
    Sha1(sha1::Sha1),
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-384 state.
    Sha384(sha2::Sha384),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
    /// SM3 state.
    Sm3(sm3::Sm3),
}

impl Hasher {
    /// A fresh state for `alg`.
    pub fn new(alg: HashAlg) -> Self {
        match alg {
            HashAlg::Sha1 => Self::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Self::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Self::Sha512(sha2::Sha512::new()),
            HashAlg::Sm3 => Self::Sm3(sm3::Sm3::new()),
        }
    }

    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
            Self::Sm3(h) => h.update(data),
        }
    }

    /// Finish and return the digest.
    pub fn finalize(self) -> Digest {
        // Every output fits MAX_DIGEST, so from_slice cannot fail; fall back to an empty digest
        // rather than panic to keep this path panic-free.
        let d = match self {
            Self::Sha1(h) => Digest::from_slice(&h.finalize()),
            Self::Sha256(h) => Digest::from_slice(&h.finalize()),
            Self::Sha384(h) => Digest::from_slice(&h.finalize()),
            Self::Sha512(h) => Digest::from_slice(&h.finalize()),
            Self::Sm3(h) => Digest::from_slice(&h.finalize()),
        };
        d.unwrap_or(Digest::zero(0))
    }
}

/// `HF(a || b)`: one extension step.
pub fn extend(alg: HashAlg, a: &Digest, b: &Digest) -> Digest {
    let mut h = Hasher::new(alg);
    h.update(a.as_bytes());
    h.update(b.as_bytes());
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_digest_matches_spec_constant() {
        assert_eq!(
            HashAlg::Sha256.zero_digest().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(HashAlg::Sm3.zero_digest().len(), 32);
        assert_eq!(HashAlg::Sha512.zero_digest().len(), 64);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let d = Digest::from_hex("00ff10Ab").unwrap();
        assert_eq!(d.to_hex(), "00ff10ab");
        assert_eq!(Digest::from_hex("abc"), Err(HexError::OddLength));
        assert_eq!(Digest::from_hex("zz"), Err(HexError::BadChar(0)));
        assert!(matches!(
            Digest::from_hex_len("00", 32),
            Err(HexError::WrongLength { .. })
        ));
    }

    #[test]
    fn every_non_digit_is_found_where_it_is() {
        // The branch-free decoder reports the first non-digit, as a digit-by-digit one would,
        // for every byte value at every position of a 64-digit string (and decodes the rest).
        let good = "0123456789abcdefABCDEF0123456789abcdef0123456789ABCDEF0123456789";
        let want = Digest::from_hex(good).unwrap();
        assert_eq!(want.as_bytes()[..3], [0x01, 0x23, 0x45]);
        assert_eq!(Digest::from_hex_bytes(good.as_bytes()), Ok(want));
        for at in 0..good.len() {
            for c in 0..=255u8 {
                let mut b = good.as_bytes().to_vec();
                b[at] = c;
                let got = Digest::from_hex_bytes(&b);
                if c.is_ascii_hexdigit() {
                    assert!(got.is_ok(), "{c:#x} at {at}");
                } else {
                    assert_eq!(got, Err(HexError::BadChar(at)), "{c:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn ordering_is_memcmp() {
        let a = Digest::from_hex("01ff").unwrap();
        let b = Digest::from_hex("0200").unwrap();
        assert!(a < b);
    }

    #[test]
    fn names_parse() {
        for alg in HashAlg::ALL {
            assert_eq!(alg.name().parse::<HashAlg>(), Ok(alg));
            assert_eq!(alg.bank_name().parse::<HashAlg>(), Ok(alg));
            assert_eq!(HashAlg::from_tpm_alg_id(alg.tpm_alg_id()), Some(alg));
        }
    }
}
