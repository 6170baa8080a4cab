//! The point table: a set of coefficients with occupancy counts and validity, in first-seen order.
//!
//! A point is one record (the coefficient, then a little-endian count word whose top bit marks a
//! valid point) in fixed-size chunks, so memory grows by one chunk at a time rather than by a
//! vector's doubling and copy. Records are found through an open-addressing table of our own:
//! each slot is a `u32` position (plus one; zero is empty) beside a 32-bit tag. Coefficients are
//! uniform digests, so their own leading bytes are the hash: the low bits pick the slot, the next
//! 32 bits are the tag, and a probe reads a record only when its tag matches. Lookups can be
//! announced ahead ([`PointSet::prefetch_slot`], then [`PointSet::prefetch_record`]) with a real
//! prefetch instruction, so that a coefficient's slot and record arrive while the next events'
//! hashing runs: at a hundred thousand points and more, the table's two dependent cache misses
//! are what a lookup costs.
//!
//! Memory at a million sha256 points: 40-byte records plus 8-byte slots at a load between 3/8
//! and 3/4, about 51–62 bytes per point.

use alloc::vec::Vec;

use crate::hash::{Digest, HashAlg};
use crate::state::{aggregate_seed, extend_measurement};

/// The point table cannot address another point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// The top bit of a record's count word marks a valid point; the rest is the occupancy count.
const VALID_BIT: u64 = 1 << 63;
const COUNT_MASK: u64 = VALID_BIT - 1;

/// Records per chunk.
const CHUNK_SHIFT: usize = 12;
const CHUNK: usize = 1 << CHUNK_SHIFT;

/// Slots in the smallest table (a power of two).
const MIN_SLOTS: usize = 64;

/// A set of coefficients with counts, in first-seen order.
#[derive(Debug, Clone)]
pub struct PointSet {
    ds: usize,
    rec: usize,
    len: usize,
    chunks: Vec<Vec<u8>>,
    /// `tag << 32 | (position + 1)`; zero is an empty slot.
    slots: Vec<u64>,
}

/// Equality of two digests of the same size, eight bytes at a time: a `memcmp` call per probe
/// showed up as a tenth of the modeling time (the remainder too: `==` on it was a `memcmp` call,
/// even empty).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let word = |c: &[u8]| c.try_into().map(u64::from_ne_bytes).unwrap_or(0);
    a.len() == b.len()
        && a.chunks_exact(8)
            .zip(b.chunks_exact(8))
            .all(|(x, y)| word(x) == word(y))
        && a.chunks_exact(8)
            .remainder()
            .iter()
            .zip(b.chunks_exact(8).remainder())
            .all(|(x, y)| x == y)
}

/// The slot hash of a coefficient: its leading eight bytes (zero-padded for short input).
#[inline]
fn key_hash(bytes: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    let n = bytes.len().min(8);
    k[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(k)
}

/// The tag stored beside a position. It is taken from bits the slot index never uses (the high
/// half), so that a tag match is an independent 32-bit filter.
#[inline]
fn tag_of(h: u64) -> u64 {
    h >> 32
}

/// Ask the CPU to bring `x`'s cache line into every cache level and go on without waiting: a
/// prefetch instruction, which cannot fault, as a safe fn (`safe_arch`). Plain loads instead
/// would stall the first use of their value; elsewhere than x86_64 it does nothing.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(x);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// The record bytes of position `i` (coefficient then count word).
#[inline]
fn record(chunks: &[Vec<u8>], rec: usize, i: usize) -> &[u8] {
    let at = (i & (CHUNK - 1)) * rec;
    chunks
        .get(i >> CHUNK_SHIFT)
        .and_then(|c| c.get(at..at + rec))
        .unwrap_or(&[])
}

impl PointSet {
    /// An empty set of `ds`-byte points.
    pub fn new(ds: usize) -> Self {
        Self {
            ds,
            rec: ds + 8,
            len: 0,
            chunks: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bytes(&self, i: usize) -> &[u8] {
        let r = record(&self.chunks, self.rec, i);
        &r[..r.len().min(self.ds)]
    }

    fn word(&self, i: usize) -> u64 {
        let r = record(&self.chunks, self.rec, i);
        r.get(self.ds..)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    }

    /// The point at insertion position `i`.
    pub fn get(&self, i: usize) -> Option<Digest> {
        if i < self.len {
            Digest::from_slice(self.bytes(i))
        } else {
            None
        }
    }

    /// The slot holding `c`'s position, or the empty slot where it would go.
    #[inline]
    fn probe(&self, b: &[u8]) -> (usize, Option<usize>) {
        let mask = self.slots.len().wrapping_sub(1);
        let h = key_hash(b);
        let tag = tag_of(h);
        let mut s = h as usize & mask;
        // The table is never full (load at most 3/4), so an empty slot ends every probe.
        loop {
            let Some(&v) = self.slots.get(s) else {
                return (s, None);
            };
            if v == 0 {
                return (s, None);
            }
            if v >> 32 == tag {
                let i = (v as u32).wrapping_sub(1) as usize;
                if same(self.bytes(i), b) {
                    return (s, Some(i));
                }
            }
            s = (s + 1) & mask;
        }
    }

    /// Position of `c`, if present.
    pub fn find(&self, c: &Digest) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(c.as_bytes()).1
    }

    /// Ask for the slot where a probe for `c` starts, without waiting for it: the first of a
    /// lookup's two dependent cache misses, issued while other work (the next coefficients'
    /// hashing) runs. A hint only: a stale slot (the table grew since) costs nothing but the miss.
    #[inline]
    pub fn prefetch_slot(&self, c: &Digest) {
        let mask = self.slots.len().wrapping_sub(1);
        if let Some(slot) = self.slots.get(key_hash(c.as_bytes()) as usize & mask) {
            prefetch(slot);
        }
    }

    /// Ask for the record the slot of `c` points to, when its tag matches: the second miss.
    /// Call it once the slot is in the cache ([`PointSet::prefetch_slot`] some time before); a
    /// record straddles two cache lines half the time, so both ends are asked for.
    #[inline]
    pub fn prefetch_record(&self, c: &Digest) {
        let mask = self.slots.len().wrapping_sub(1);
        let h = key_hash(c.as_bytes());
        let Some(&v) = self.slots.get(h as usize & mask) else {
            return;
        };
        if v != 0 && v >> 32 == tag_of(h) {
            let r = record(&self.chunks, self.rec, (v as u32).wrapping_sub(1) as usize);
            if let (Some(first), Some(last)) = (r.first(), r.last()) {
                prefetch(first);
                prefetch(last);
            }
        }
    }

    /// Double the slots (or make the first ones) and place every position again.
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let mut slots = alloc::vec![0u64; n];
        let mask = n - 1;
        for i in 0..self.len {
            let h = key_hash(self.bytes(i));
            let mut s = h as usize & mask;
            while slots.get(s).is_some_and(|&v| v != 0) {
                s = (s + 1) & mask;
            }
            if let Some(slot) = slots.get_mut(s) {
                *slot = (tag_of(h) << 32) | (i as u64 + 1);
            }
        }
        self.slots = slots;
    }

    /// Insert `c` with the given validity, or bump its count. Returns (position, newly inserted,
    /// valid).
    pub(crate) fn touch(
        &mut self,
        c: &Digest,
        valid: bool,
    ) -> Result<(usize, bool, bool), TableFull> {
        let b = c.as_bytes();
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let (s, found) = self.probe(b);
        if let Some(i) = found {
            // One look-up of the record's count word, read and written in place: three bounds-
            // checked look-ups (read, then write) were a fifth of `touch`'s instructions.
            let at = (i & (CHUNK - 1)) * self.rec + self.ds;
            let Some(cw) = self
                .chunks
                .get_mut(i >> CHUNK_SHIFT)
                .and_then(|c| c.get_mut(at..at + 8))
                .and_then(|c| <&mut [u8; 8]>::try_from(c).ok())
            else {
                return Ok((i, false, false));
            };
            let w = u64::from_le_bytes(*cw);
            let count = (w & COUNT_MASK).saturating_add(1).min(COUNT_MASK);
            *cw = ((w & VALID_BIT) | count).to_le_bytes();
            return Ok((i, false, w & VALID_BIT != 0));
        }
        let i = self.len;
        // Positions are stored plus one in 32 bits.
        if i >= u32::MAX as usize {
            return Err(TableFull);
        }
        if i >> CHUNK_SHIFT == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK * self.rec));
        }
        let w = if valid { VALID_BIT | 1 } else { 1 };
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.extend_from_slice(b);
            chunk.extend_from_slice(&w.to_le_bytes());
        }
        if let Some(slot) = self.slots.get_mut(s) {
            *slot = (tag_of(key_hash(b)) << 32) | (i as u64 + 1);
        }
        self.len += 1;
        Ok((i, true, valid))
    }

    /// Occupancy count of position `i`.
    pub fn count(&self, i: usize) -> u64 {
        if i < self.len() {
            self.word(i) & COUNT_MASK
        } else {
            0
        }
    }

    /// Whether position `i` is a valid point.
    pub fn is_valid(&self, i: usize) -> bool {
        i < self.len && self.word(i) & VALID_BIT != 0
    }

    /// Every point in first-seen order with its count and validity.
    pub fn iter(&self) -> impl Iterator<Item = (Digest, u64, bool)> + '_ {
        (0..self.len()).filter_map(move |i| {
            let w = self.word(i);
            Some((
                Digest::from_slice(self.bytes(i))?,
                w & COUNT_MASK,
                w & VALID_BIT != 0,
            ))
        })
    }

    /// The order-invariant state over the points selected by `keep` (§4.4). Sorts 16-byte
    /// (prefix, position) keys rather than whole digests; ties on the prefix fall back to memcmp.
    pub fn state_where(
        &self,
        alg: HashAlg,
        base: &Digest,
        aggregate: &Digest,
        keep: impl Fn(bool) -> bool,
    ) -> Digest {
        let mut order: Vec<(u64, u32)> = (0..self.len())
            .filter(|&i| keep(self.word(i) & VALID_BIT != 0))
            .map(|i| {
                let mut p = [0u8; 8];
                let b = self.bytes(i);
                let n = b.len().min(8);
                p[..n].copy_from_slice(&b[..n]);
                (u64::from_be_bytes(p), i as u32)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.bytes(a.1 as usize).cmp(self.bytes(b.1 as usize)))
        });
        let mut s = aggregate_seed(alg, base, aggregate);
        for (_, i) in order {
            if let Some(d) = Digest::from_slice(self.bytes(i as usize)) {
                s = extend_measurement(alg, base, &s, &d);
            }
        }
        s
    }

    /// Heap bytes held (capacity, not length), for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * core::mem::size_of::<Vec<u8>>()
            + self.slots.capacity() * core::mem::size_of::<u64>()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn point_set_across_chunks() {
        let mut ps = PointSet::new(32);
        let n = 3 * CHUNK + 17;
        let d = |i: usize| HashAlg::Sha256.digest(&i.to_le_bytes());
        for i in 0..n {
            assert_eq!(ps.touch(&d(i), i % 3 != 0).unwrap(), (i, true, i % 3 != 0));
        }
        for i in (0..n).step_by(7) {
            assert_eq!(ps.touch(&d(i), true).unwrap(), (i, false, i % 3 != 0));
        }
        assert_eq!(ps.len(), n);
        for (i, (p, count, valid)) in ps.iter().enumerate() {
            assert_eq!(p, d(i));
            assert_eq!(count, if i % 7 == 0 { 2 } else { 1 });
            assert_eq!(valid, i % 3 != 0);
            assert_eq!(ps.find(&d(i)), Some(i));
        }
        assert_eq!(ps.find(&d(n)), None);
        // The aim of issue 15: at most 96 bytes per point, slack of the last chunk included.
        assert!(ps.heap_bytes() < n * 96, "{} bytes", ps.heap_bytes());
    }

    #[test]
    fn colliding_prefixes_are_told_apart_by_the_whole_digest() {
        // Digests sharing their leading eight bytes land in one slot with one tag: the probe must
        // go on to the record and past it.
        let mut ps = PointSet::new(32);
        let d = |i: u8| {
            let mut b = [7u8; 32];
            b[31] = i;
            Digest::from_slice(&b).unwrap()
        };
        for i in 0..40 {
            assert_eq!(ps.touch(&d(i), true).unwrap(), (i as usize, true, true));
        }
        for i in 0..40 {
            assert_eq!(ps.find(&d(i)), Some(i as usize));
            assert_eq!(ps.touch(&d(i), false).unwrap(), (i as usize, false, true));
        }
        assert_eq!(ps.find(&d(40)), None);
        assert!(ps.iter().all(|(_, count, _)| count == 2));
    }

    #[test]
    fn an_empty_set_finds_nothing() {
        let ps = PointSet::new(48);
        assert_eq!(ps.find(&HashAlg::Sha384.digest(b"x")), None);
        // Announcing a lookup in an empty table touches nothing.
        ps.prefetch_slot(&HashAlg::Sha384.digest(b"x"));
        ps.prefetch_record(&HashAlg::Sha384.digest(b"x"));
        assert!(ps.is_empty() && ps.get(0).is_none() && ps.count(0) == 0);
    }
}
