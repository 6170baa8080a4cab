//! The store's file: fixed-size records sorted by key, mapped and searched in place (version 2),
//! or the text lines of version 1, which are read and never written again.
//!
//! Every run opens the store before its workload starts. Version 1 had to be parsed whole (a
//! store of 2 400 files cost ~1 ms of every start even after the parser was made fast, and a
//! store may hold 200 000); a mapped, sorted file costs a run only the pages its lookups touch.

use std::os::fd::AsFd;

use tsem_core::{Digest, HashAlg};

use super::{DigestKey, DigestMap};
use crate::sys;

/// The first bytes of a version 2 store.
const MAGIC: &[u8; 8] = b"tsemdc2\n";
/// Magic, then the hash function's name padded with zero bytes to 8.
const HEADER: usize = 16;
/// dev, ino, ctime (s, ns), mtime (s, ns), size: seven 64-bit little-endian numbers.
const KEY: usize = 56;

/// A store file's bytes: mapped, or in memory.
#[derive(Debug)]
pub enum Bytes {
    /// The file, mapped.
    Mapped(sys::Mapped),
    /// A copy.
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Owned(v) => v,
        }
    }
}

/// The digests a store's file held when it was read.
#[derive(Debug, Default)]
pub(crate) enum Base {
    /// No file, an empty one, or one of another hash function or that is not a store.
    #[default]
    Empty,
    /// A version 1 (text) store, parsed.
    Text(DigestMap),
    /// A version 2 store, mapped: `count` records of `rec` bytes after the header.
    Sorted {
        /// The file's bytes.
        map: Bytes,
        /// Bytes per record: the key and the digest.
        rec: usize,
        /// Records.
        count: usize,
    },
}

impl Base {
    /// The digests for `alg` in `file`. Anything unreadable is no digest: a damaged store only
    /// costs hashing again.
    pub fn read(file: &std::fs::File, alg: HashAlg) -> Self {
        let Ok(len) = file.metadata().map(|m| m.len() as usize) else {
            return Self::Empty;
        };
        if len == 0 {
            return Self::Empty;
        }
        match sys::map_file(file.as_fd(), len) {
            Ok(map) => Self::of(Bytes::Mapped(map), alg),
            Err(_) => Self::Empty,
        }
    }

    /// The digests for `alg` in a store file's `bytes`.
    pub fn of(bytes: Bytes, alg: HashAlg) -> Self {
        let len = bytes.len();
        if bytes.starts_with(b"v1 ") {
            let text = String::from_utf8_lossy(&bytes);
            return Self::Text(parse_entries(&text, alg));
        }
        let rec = KEY + alg.size();
        if len < HEADER || &bytes[..8] != MAGIC || bytes[8..HEADER] != alg_field(alg) {
            return Self::Empty;
        }
        if !(len - HEADER).is_multiple_of(rec) {
            return Self::Empty;
        }
        let count = (len - HEADER) / rec;
        Self::Sorted {
            map: bytes,
            rec,
            count,
        }
    }

    /// The digest of `k`, if the file held one. A version 2 file out of order (written by no
    /// tsem) can only make a lookup miss: a hit needs the very key.
    pub fn get(&self, k: &DigestKey) -> Option<Digest> {
        match self {
            Self::Empty => None,
            Self::Text(m) => m.get(k).copied(),
            Self::Sorted { map, rec, count } => {
                let (mut lo, mut hi) = (0usize, *count);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let r = record(map, *rec, mid);
                    match decode_key(r).cmp(k) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => {
                            return Digest::from_slice(&r[KEY..]);
                        }
                    }
                }
                None
            }
        }
    }

    /// How many digests the file held.
    pub fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Text(m) => m.len(),
            Self::Sorted { count, .. } => *count,
        }
    }

    /// Every digest the file held.
    pub fn entries(&self) -> Vec<(DigestKey, Digest)> {
        match self {
            Self::Empty => Vec::new(),
            Self::Text(m) => m.iter().map(|(k, d)| (*k, *d)).collect(),
            Self::Sorted { map, rec, count } => (0..*count)
                .filter_map(|i| {
                    let r = record(map, *rec, i);
                    Some((decode_key(r), Digest::from_slice(&r[KEY..])?))
                })
                .collect(),
        }
    }
}

fn record(map: &[u8], rec: usize, i: usize) -> &[u8] {
    &map[HEADER + i * rec..HEADER + (i + 1) * rec]
}

fn alg_field(alg: HashAlg) -> [u8; 8] {
    let mut f = [0u8; 8];
    let name = alg.name().as_bytes();
    let n = name.len().min(8);
    f[..n].copy_from_slice(&name[..n]);
    f
}

fn decode_key(r: &[u8]) -> DigestKey {
    let n = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&r[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    DigestKey {
        dev: n(0),
        ino: n(1),
        ctime: (n(2) as i64, n(3) as i64),
        mtime: (n(4) as i64, n(5) as i64),
        size: n(6) as i64,
    }
}

/// A version 2 store holding `entries` (any order; a key given twice keeps its last digest).
pub fn render(entries: impl IntoIterator<Item = (DigestKey, Digest)>, alg: HashAlg) -> Vec<u8> {
    let mut v: Vec<(DigestKey, Digest)> = entries
        .into_iter()
        .filter(|(_, d)| d.len() == alg.size())
        .collect();
    v.sort_by_key(|a| a.0);
    v.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    let mut out = Vec::with_capacity(HEADER + v.len() * (KEY + alg.size()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&alg_field(alg));
    for (k, d) in v {
        for x in [
            k.dev,
            k.ino,
            k.ctime.0 as u64,
            k.ctime.1 as u64,
            k.mtime.0 as u64,
            k.mtime.1 as u64,
            k.size as u64,
        ] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(d.as_bytes());
    }
    out
}

/// The entries of a version 1 store's text for `alg`. Lines that are malformed or of another
/// hash function are skipped.
pub fn parse_entries(text: &str, alg: HashAlg) -> DigestMap {
    let mut out =
        DigestMap::with_capacity_and_hasher(text.len() / (alg.size() * 2 + 60), Default::default());
    for line in text.split('\n') {
        if let Some((k, d)) = parse_line(line.as_bytes(), alg) {
            out.insert(k, d);
        }
    }
    out
}

/// One line of a version 1 store: exactly ten fields separated by single spaces.
fn parse_line(line: &[u8], alg: HashAlg) -> Option<(DigestKey, Digest)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut rest = line
        .strip_prefix(b"v1 ")?
        .strip_prefix(alg.name().as_bytes())?
        .strip_prefix(b" ")?;
    let mut n = || -> Option<i64> {
        let (v, tail) = leading_int(rest)?;
        rest = tail.strip_prefix(b" ")?;
        Some(v)
    };
    let (dev, ino, cs, cn, ms, mn, size) = (n()?, n()?, n()?, n()?, n()?, n()?, n()?);
    // The digest is the rest of the line: a space in it is a bad hex digit.
    let d = Digest::from_hex_bytes(rest).ok()?;
    if d.len() != alg.size() {
        return None;
    }
    let key = DigestKey {
        dev: dev as u64,
        ino: ino as u64,
        ctime: (cs, cn),
        mtime: (ms, mn),
        size,
    };
    Some((key, d))
}

/// The integer at the start of `b` as `str::parse::<i64>` reads it (an optional sign, at least
/// one digit, no overflow), and what follows it.
fn leading_int(b: &[u8]) -> Option<(i64, &[u8])> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut mag: u64 = 0;
    for &c in &digits[..len] {
        mag = mag.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    let v = if neg {
        0i64.checked_sub_unsigned(mag)?
    } else {
        i64::try_from(mag).ok()?
    };
    Some((v, &digits[len..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    use crate::digest_cache::test_key as key;

    /// A version 1 store's text, as tsem wrote it before version 2.
    fn v1_text(m: &DigestMap, alg: HashAlg) -> String {
        m.iter()
            .map(|(k, d)| {
                format!(
                    "v1 {} {} {} {} {} {} {} {} {}\n",
                    alg.name(),
                    k.dev as i64,
                    k.ino as i64,
                    k.ctime.0,
                    k.ctime.1,
                    k.mtime.0,
                    k.mtime.1,
                    k.size,
                    d.to_hex()
                )
            })
            .collect()
    }

    fn file_with(name: &str, bytes: &[u8]) -> std::fs::File {
        let p = std::env::temp_dir().join(format!("tsem-dc-{name}-{}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }

    #[test]
    fn lines_are_read_exactly_as_written_and_anything_else_is_skipped() {
        let alg = HashAlg::Sha256;
        let a = alg.digest(b"a");
        let mut m = DigestMap::default();
        m.insert(key(1, 1000), a);
        m.insert(
            DigestKey {
                dev: u64::MAX,
                ino: 7,
                ctime: (-5, 999_999_999),
                mtime: (i64::MIN, 0),
                size: i64::MAX,
            },
            alg.digest(b"b"),
        );
        let text = v1_text(&m, alg);
        assert_eq!(parse_entries(&text, alg), m);
        let hex = a.to_hex();
        let good = format!("v1 sha256 1 2 3 4 5 6 7 {hex}");
        // What `str::parse::<i64>` accepts is accepted (a sign), and CRLF line ends.
        let ok = [good.clone(), format!("v1 sha256 +1 2 3 4 5 6 7 {hex}\r")];
        for l in &ok {
            assert_eq!(parse_entries(l, alg).len(), 1, "{l}");
        }
        let bad = [
            format!("v1 sha256 1 2 3 4 5 6 {hex}"),
            format!("{good} 8"),
            format!("v1  sha256 1 2 3 4 5 6 7 {hex}"),
            format!("v2 sha256 1 2 3 4 5 6 7 {hex}"),
            format!("v1 sha512 1 2 3 4 5 6 7 {hex}"),
            format!("v1 sha256 1 2 x 4 5 6 7 {hex}"),
            format!("v1 sha256 1 2 3 4 5 6 99999999999999999999 {hex}"),
            format!("v1 sha256 1 2 3 4 5 6 7 {}", &hex[2..]),
            format!("v1 sha256 1 2 3 4 5 6 7 {}zz", &hex[2..]),
            format!("{good} "),
            String::new(),
        ];
        for l in &bad {
            assert!(parse_entries(l, alg).is_empty(), "{l}");
        }
        let mixed = format!("{}\n{}\n{}", bad[0], ok[0], bad[5]);
        assert_eq!(parse_entries(&mixed, alg).len(), 1);
    }

    #[test]
    fn a_sorted_store_finds_every_digest_it_holds_and_nothing_else() {
        for alg in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let mut m = DigestMap::default();
            // Keys that differ in every field, negative times included.
            for i in 0..300u64 {
                let k = DigestKey {
                    dev: i % 3,
                    ino: i * 7919 % 1000,
                    ctime: (i as i64 - 150, (i * 13 % 1_000_000_000) as i64),
                    mtime: (-(i as i64), 0),
                    size: (i * i) as i64,
                };
                m.insert(k, alg.digest(&i.to_le_bytes()));
            }
            let bytes = render(m.iter().map(|(k, d)| (*k, *d)), alg);
            let base = Base::read(&file_with("sorted", &bytes), alg);
            assert!(matches!(base, Base::Sorted { .. }));
            assert_eq!(base.len(), m.len());
            for (k, d) in &m {
                assert_eq!(base.get(k), Some(*d), "{k:?}");
            }
            let mut absent = *m.keys().next().unwrap();
            absent.size += 1_000_000;
            assert_eq!(base.get(&absent), None);
            let back: DigestMap = base.entries().into_iter().collect();
            assert_eq!(back, m);
            // Another hash function's reader sees nothing in it.
            let other = if alg == HashAlg::Sha256 {
                HashAlg::Sha512
            } else {
                HashAlg::Sha256
            };
            assert_eq!(Base::read(&file_with("other", &bytes), other).len(), 0);
            // A torn or foreign file is no store: nothing is served from it.
            let torn = &bytes[..bytes.len() - 1];
            assert_eq!(Base::read(&file_with("torn", torn), alg).len(), 0);
            assert_eq!(Base::read(&file_with("junk", b"junk\n"), alg).len(), 0);
        }
    }

    #[test]
    fn records_out_of_order_only_miss() {
        let alg = HashAlg::Sha256;
        let (a, b) = (alg.digest(b"a"), alg.digest(b"b"));
        let mut bytes = render([(key(1, 10), a), (key(2, 10), b)], alg);
        // Swap the two records: a reader that trusted the order could serve the wrong digest.
        let rec = KEY + alg.size();
        let (x, y) = bytes[HEADER..].split_at_mut(rec);
        x.swap_with_slice(y);
        let base = Base::read(&file_with("swapped", &bytes), alg);
        for (k, d) in [(key(1, 10), a), (key(2, 10), b)] {
            assert!(base.get(&k).is_none_or(|got| got == d), "{k:?}");
        }
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_digest() {
        let alg = HashAlg::Sha256;
        let (a, b) = (alg.digest(b"a"), alg.digest(b"b"));
        let bytes = render([(key(1, 10), a), (key(1, 10), b)], alg);
        let base = Base::read(&file_with("twice", &bytes), alg);
        assert_eq!((base.len(), base.get(&key(1, 10))), (1, Some(b)));
    }
}
