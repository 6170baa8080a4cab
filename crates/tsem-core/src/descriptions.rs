//! Event descriptions kept by a namespace (trajectory, forensics), in fixed-size chunks.
//!
//! A vector grows by doubling: at a million descriptions it copies them all again and, for a
//! moment, holds twice their room. Chunks of a fixed number of descriptions are allocated whole
//! and never move, so growing costs one chunk and nothing already stored is copied.

use alloc::vec::Vec;
use core::ops::Index;

use crate::event::Event;

/// Descriptions per chunk.
const CHUNK: usize = 256;

/// Descriptions in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptions {
    chunks: Vec<Vec<Event>>,
    len: usize,
}

impl Descriptions {
    /// No descriptions.
    pub const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }

    /// Append one.
    pub fn push(&mut self, ev: Event) {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(ev);
            self.len += 1;
        }
    }

    /// Number of descriptions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The description at position `i`.
    pub fn get(&self, i: usize) -> Option<&Event> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// Every description, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> + '_ {
        self.chunks.iter().flatten()
    }

    /// The descriptions from position `from` on (none if `from` is past the end).
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &Event> + '_ {
        let (c, o) = (from / CHUNK, from % CHUNK);
        self.chunks
            .get(c..)
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .flat_map(move |(k, chunk)| chunk.get(if k == 0 { o } else { 0 }..).unwrap_or(&[]))
    }

    /// A copy as one vector.
    pub fn to_vec(&self) -> Vec<Event> {
        self.iter().cloned().collect()
    }
}

impl Index<usize> for Descriptions {
    type Output = Event;
    /// Panics if `i` is out of range, as a slice does; use [`Descriptions::get`] on input paths.
    #[allow(clippy::panic)]
    fn index(&self, i: usize) -> &Event {
        self.get(i)
            .unwrap_or_else(|| panic!("description {i} of {}", self.len))
    }
}

impl<'a> IntoIterator for &'a Descriptions {
    type Item = &'a Event;
    type IntoIter = core::iter::Flatten<core::slice::Iter<'a, Vec<Event>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Cell, Coe, EventHeader, EventType};
    use crate::hash::HashAlg;

    fn ev(cap: u32) -> Event {
        let z = HashAlg::Sha256.null_id();
        Event {
            header: EventHeader::new("t", EventType::Capable, z, z),
            coe: Coe::default(),
            cell: Cell::Capable { cap, opts: 0 },
        }
    }

    #[test]
    fn behaves_like_a_vector_across_chunks() {
        let mut d = Descriptions::new();
        let mut v = Vec::new();
        for i in 0..(2 * CHUNK + 3) as u32 {
            d.push(ev(i));
            v.push(ev(i));
            assert_eq!(d.len(), v.len());
        }
        assert_eq!(d.to_vec(), v);
        assert_eq!(d.iter().rev().cloned().collect::<Vec<_>>(), {
            let mut r = v.clone();
            r.reverse();
            r
        });
        for from in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 2,
            2 * CHUNK + 3,
            9999,
        ] {
            let got: Vec<Event> = d.iter_from(from).cloned().collect();
            assert_eq!(got, v.get(from..).unwrap_or(&[]).to_vec(), "from {from}");
        }
        for (i, e) in v.iter().enumerate() {
            assert_eq!(d.get(i), Some(e));
            assert_eq!(&d[i], e);
        }
        assert_eq!(d.get(v.len()), None);
        assert_eq!((&d).into_iter().count(), v.len());
    }
}
