//! SHA-256 straight over the compression function, and a cache of the state after a preimage's
//! first block keyed by that block's exact bytes.
//!
//! Hashing is most of the modeling core's time, and much of what it hashes repeats: a file
//! event's CELL starts with the flags and the inode's owner, mode, filesystem magic, `s_id` and
//! UUID (the same 64 bytes for every file of a filesystem with one owner and mode), and a
//! coefficient's preimage starts with the event type's name and the parent's and the task's ids
//! (the same for a task's events of one type). SHA-256 absorbs a message 64 bytes at a time, so
//! the state after a first block that was already seen is already known: [`PrefixCache`] keeps
//! it beside the whole block it came from and reuses it only when the new preimage's first 64
//! bytes are equal to those, byte for byte. The digest is the same by construction (SHA-256's
//! state after block one depends on block one only); a cache keyed by anything less than the
//! block would lie, hence the full compare.
//!
//! The one-shot digest hashes whole blocks where they lie in the caller's buffer and builds only
//! the padded last block(s) on the stack: no hasher object, no buffering of the input.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use sha2::block_api::compress256;

use crate::hash::Digest;

/// SHA-256's block size.
const BLOCK: usize = 64;

/// The initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// What a [`PrefixCache`] did: blocks it compressed, and first blocks it did not need to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCount {
    /// Blocks compressed.
    pub compressed: u64,
    /// First blocks whose state came from the cache instead.
    pub reused: u64,
}

/// One cached first block and the state after it.
#[derive(Clone)]
struct Entry {
    block: [u8; BLOCK],
    state: [u32; 8],
}

/// A direct-mapped cache of SHA-256 states after a first block, keyed by the whole block.
#[derive(Clone)]
pub struct PrefixCache {
    entries: Vec<Entry>,
    shift: u32,
    count: BlockCount,
}

impl fmt::Debug for PrefixCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixCache")
            .field("entries", &self.entries.len())
            .field("count", &self.count)
            .finish()
    }
}

/// SHA-256 of `msg`.
pub fn digest(msg: &[u8]) -> Digest {
    finish(IV, 0, msg).0
}

/// SHA-256 of `a || b` (a measurement step: two digests).
pub fn digest2(a: &[u8], b: &[u8]) -> Digest {
    let mut buf = [0u8; 2 * BLOCK];
    match buf.get_mut(..a.len() + b.len()) {
        Some(both) => {
            let (x, y) = both.split_at_mut(a.len());
            x.copy_from_slice(a);
            y.copy_from_slice(b);
            digest(both)
        }
        None => {
            let mut v = Vec::with_capacity(a.len() + b.len());
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            digest(&v)
        }
    }
}

/// The digest of a message whose first `done` bytes (a multiple of 64) are absorbed in `state`
/// and whose remaining bytes are `rest`; and the number of blocks compressed here. Whole blocks
/// are hashed where they lie; only the tail is copied, beside its padding. (Copying the whole
/// rest beside the padding to make one compress call instead of two was measured slower: the
/// bound fell from 3.47 to 3.01 M events/s.)
fn finish(mut state: [u32; 8], done: usize, rest: &[u8]) -> (Digest, u64) {
    let bits = ((done + rest.len()) as u64).wrapping_mul(8);
    let (whole, tail) = rest.as_chunks::<BLOCK>();
    if !whole.is_empty() {
        compress256(&mut state, whole);
    }
    // The tail, 0x80, zeros, and the length in bits: one block, or two when the tail leaves
    // fewer than nine bytes for the 0x80 and the length.
    let mut last = [[0u8; BLOCK]; 2];
    let n = if tail.len() + 9 <= BLOCK { 1 } else { 2 };
    pad(last.as_flattened_mut(), tail, n, bits);
    compress256(&mut state, last.get(..n).unwrap_or(&[]));
    (output(&state), (whole.len() + n) as u64)
}

/// Write `data`, 0x80 and the big-endian bit length into the zeroed `out`, the length ending
/// block `used`.
fn pad(out: &mut [u8], data: &[u8], used: usize, bits: u64) {
    let n = data.len();
    if let Some(t) = out.get_mut(..n) {
        t.copy_from_slice(data);
    }
    if let Some(b) = out.get_mut(n) {
        *b = 0x80;
    }
    if let Some(len) = out.get_mut(used * BLOCK - 8..used * BLOCK) {
        len.copy_from_slice(&bits.to_be_bytes());
    }
}

/// The digest of a final state.
fn output(state: &[u32; 8]) -> Digest {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    Digest::from_slice(&out).unwrap_or(Digest::zero(0))
}

impl PrefixCache {
    /// A cache of `2^bits` entries. Every entry starts as the all-zero block with its true state,
    /// so no entry is ever "empty" and a hit is always a real one.
    /// Nothing is allocated before the first preimage of a block or more.
    pub fn new(bits: u32) -> Self {
        Self {
            entries: Vec::new(),
            shift: 64 - bits.clamp(1, 16),
            count: BlockCount::default(),
        }
    }

    fn fill(&mut self) {
        let zero = [0u8; BLOCK];
        let mut state = IV;
        compress256(&mut state, &[zero]);
        self.entries = vec![Entry { block: zero, state }; 1 << (64 - self.shift)];
    }

    /// SHA-256 of `msg`, equal to [`digest`]`(msg)`, reusing the state after its first block
    /// when that block was seen last in its entry.
    pub fn digest(&mut self, msg: &[u8]) -> Digest {
        let Some((first, rest)) = msg.split_first_chunk::<BLOCK>() else {
            let (d, blocks) = finish(IV, 0, msg);
            self.count.compressed += blocks;
            return d;
        };
        if self.entries.is_empty() {
            self.fill();
        }
        let i = (index_hash(first) >> self.shift) as usize;
        let state = match self.entries.get_mut(i) {
            Some(e) if same_block(&e.block, first) => {
                self.count.reused += 1;
                e.state
            }
            Some(e) => {
                let mut state = IV;
                compress256(&mut state, core::slice::from_ref(first));
                self.count.compressed += 1;
                e.block = *first;
                e.state = state;
                state
            }
            None => {
                let (d, blocks) = finish(IV, 0, msg);
                self.count.compressed += blocks;
                return d;
            }
        };
        let (d, blocks) = finish(state, BLOCK, rest);
        self.count.compressed += blocks;
        d
    }

    /// Blocks compressed and first blocks reused so far.
    pub fn count(&self) -> BlockCount {
        self.count
    }
}

/// The entry index of a block: every word folded, then multiplied so that its high bits mix them
/// all. A collision costs a miss, never a wrong state: the whole block is compared.
#[inline]
fn index_hash(b: &[u8; BLOCK]) -> u64 {
    let (words, _) = b.as_chunks::<8>();
    let x = words
        .iter()
        .fold(0u64, |acc, w| acc ^ u64::from_le_bytes(*w));
    (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Equality of two blocks eight bytes at a time (a `memcmp` call costs more than the compare).
#[inline]
fn same_block(a: &[u8; BLOCK], b: &[u8; BLOCK]) -> bool {
    let (x, _) = a.as_chunks::<8>();
    let (y, _) = b.as_chunks::<8>();
    x.iter().zip(y).fold(0u64, |acc, (p, q)| {
        acc | (u64::from_ne_bytes(*p) ^ u64::from_ne_bytes(*q))
    }) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn reference(msg: &[u8]) -> Digest {
        Digest::from_slice(&sha2::Sha256::digest(msg)).unwrap()
    }

    #[test]
    fn one_shot_equals_sha2_at_every_length_around_the_padding_boundaries() {
        // Lengths 0..=400 cover a tail of 0..63 bytes with one and two padding blocks after
        // up to five whole blocks.
        let data: Vec<u8> = (0..400u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..=data.len() {
            assert_eq!(digest(&data[..n]), reference(&data[..n]), "length {n}");
        }
        assert_eq!(
            digest(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(digest2(b"ab", b"c"), reference(b"abc"));
        let long = [7u8; 300];
        assert_eq!(digest2(&long[..150], &long[150..]), reference(&long));
    }

    #[test]
    fn a_cached_first_block_is_reused_only_for_the_same_block() {
        let mut c = PrefixCache::new(2);
        let base: Vec<u8> = (0..150u32).map(|i| (i * 13 + 5) as u8).collect();
        assert_eq!(c.digest(&base), reference(&base));
        assert_eq!(c.count().reused, 0);
        // The same first block, another rest: reused, and still the right digest.
        let mut other = base.clone();
        other[100] ^= 1;
        assert_eq!(c.digest(&other), reference(&other));
        assert_eq!(c.count().reused, 1);
        // One bit anywhere in the first block: a different preimage never shares the state.
        for byte in 0..BLOCK {
            for bit in 0..8 {
                let mut m = base.clone();
                m[byte] ^= 1 << bit;
                assert_eq!(c.digest(&m), reference(&m), "byte {byte} bit {bit}");
                // And the original after it is right again (its entry may have been evicted).
                assert_eq!(c.digest(&base), reference(&base));
            }
        }
    }

    #[test]
    fn the_all_zero_first_block_is_a_real_entry() {
        // Entries start as the zero block with its true state: a zero-led preimage hits it.
        let mut c = PrefixCache::new(3);
        for n in [64, 65, 119, 120, 128, 200, 311, 312, 400] {
            let m = vec![0u8; n];
            assert_eq!(c.digest(&m), reference(&m), "length {n}");
        }
        assert_eq!(c.count().reused, 9);
        // Shorter than a block: nothing to reuse.
        assert_eq!(c.digest(&[0u8; 63]), reference(&[0u8; 63]));
        assert_eq!(c.count().reused, 9);
    }
}
