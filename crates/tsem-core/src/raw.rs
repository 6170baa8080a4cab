//! Byte strings as the kernel holds them.
//!
//! TSEM prints a pathname, a comm, a filesystem or xattr name with `%s`: whatever bytes the kernel
//! holds, valid UTF-8 or not, control characters included. Those bytes are what the kernel hashes
//! (`STR(pathname)`, spec §1.4), so a description keeps them exactly: a [`RawStr`] is a plain
//! byte string (the size of a `String`) that never validates, never normalises and never loses a
//! byte. Strings of up to 22 bytes (a comm, a filesystem id, a path type) are kept inline, so
//! that reading an event allocates for its long pathnames only. Only showing one to a person escapes it ([`RawStr::escaped`], `Display`).

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

/// A string of bytes from the kernel (pathname, comm, filesystem type, xattr name, …).
///
/// `Display` shows it escaped (see [`escape`]); `as_bytes` gives the exact bytes.
#[derive(Clone)]
pub struct RawStr(Repr);

/// Bytes kept inside a [`RawStr`] itself rather than on the heap.
const INLINE: usize = 22;

/// Short strings inline (22 bytes and a length, beside the variant's tag: 24 bytes in all, as a
/// `Vec`), longer ones in an exact-size box.
#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// A byte string shown to people: valid UTF-8 as it is, except that a backslash, control and
/// invisible formatting characters (C0, DEL, C1, bidirectional overrides, zero-width characters)
/// and bytes that are not UTF-8 are escaped as `\\`, `\t`, `\n`, `\r`, `\xNN` (one byte) or
/// `\u{NNNN}` (one character). The rendering is unambiguous: distinct byte strings never look
/// alike, and nothing in it can move a terminal's cursor or reorder the text around it.
///
/// `Display` writes the escaped text; `Debug` writes it in double quotes and escapes `"` too.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

impl RawStr {
    /// The empty string.
    pub const fn new() -> Self {
        Self(Repr::Inline {
            len: 0,
            buf: [0; INLINE],
        })
    }

    /// The exact bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(&[]),
            Repr::Heap(b) => b,
        }
    }

    /// The bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        match self.0 {
            Repr::Heap(b) => b.into_vec(),
            Repr::Inline { .. } => self.as_bytes().to_vec(),
        }
    }

    /// A copy of `b`: inline if short, else in a box of exactly its size.
    fn copied(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0; INLINE];
            if let Some(dst) = buf.get_mut(..b.len()) {
                dst.copy_from_slice(b);
            }
            Self(Repr::Inline {
                len: b.len() as u8,
                buf,
            })
        } else {
            Self(Repr::Heap(b.into()))
        }
    }

    /// `v` itself if long (no copy unless it has spare capacity), else inline.
    fn owned(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            Self::copied(&v)
        } else {
            Self(Repr::Heap(v.into_boxed_slice()))
        }
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }

    /// The escaped rendering for people (also what `Display` and `to_string()` give).
    pub fn escaped(&self) -> Escaped<'_> {
        escape(self.as_bytes())
    }

    /// True if the bytes start with `prefix`.
    pub fn starts_with(&self, prefix: impl AsRef<[u8]>) -> bool {
        self.as_bytes().starts_with(prefix.as_ref())
    }

    /// True if the bytes end with `suffix`.
    pub fn ends_with(&self, suffix: impl AsRef<[u8]>) -> bool {
        self.as_bytes().ends_with(suffix.as_ref())
    }

    /// True if `needle` occurs in the bytes.
    pub fn contains(&self, needle: impl AsRef<[u8]>) -> bool {
        let n = needle.as_ref();
        n.is_empty() || self.as_bytes().windows(n.len()).any(|w| w == n)
    }
}

/// The escaped rendering of `bytes` (see [`Escaped`]).
pub fn escape(bytes: &[u8]) -> Escaped<'_> {
    Escaped(bytes)
}

/// Characters that are printable but invisible or that reorder text (Trojan-Source style):
/// zero-width characters, bidirectional marks, embeddings, overrides and isolates, the BOM.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

impl Escaped<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>, quote: bool) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            let text = chunk.valid();
            let mut plain = 0;
            for (i, c) in text.char_indices() {
                let esc: Option<&str> = match c {
                    '\\' => Some("\\\\"),
                    '\t' => Some("\\t"),
                    '\n' => Some("\\n"),
                    '\r' => Some("\\r"),
                    '"' if quote => Some("\\\""),
                    c if c.is_control() || is_invisible(c) => Some(""),
                    _ => None,
                };
                let Some(esc) = esc else { continue };
                f.write_str(&text[plain..i])?;
                plain = i + c.len_utf8();
                if !esc.is_empty() {
                    f.write_str(esc)?;
                } else if (c as u32) < 0x80 {
                    write!(f, "\\x{:02x}", c as u32)?;
                } else {
                    write!(f, "\\u{{{:x}}}", c as u32)?;
                }
            }
            f.write_str(&text[plain..])?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        self.write(f, true)?;
        f.write_str("\"")
    }
}

// Equality, order and hashing are the bytes', whichever way they are stored.
impl Default for RawStr {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for RawStr {
    fn eq(&self, o: &Self) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl Eq for RawStr {}

impl PartialOrd for RawStr {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for RawStr {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(o.as_bytes())
    }
}

impl core::hash::Hash for RawStr {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Display for RawStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.escaped(), f)
    }
}

impl fmt::Debug for RawStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.escaped(), f)
    }
}

impl Deref for RawStr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for RawStr {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl core::borrow::Borrow<[u8]> for RawStr {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<Vec<u8>> for RawStr {
    fn from(v: Vec<u8>) -> Self {
        Self::owned(v)
    }
}

impl From<&[u8]> for RawStr {
    fn from(v: &[u8]) -> Self {
        Self::copied(v)
    }
}

impl<const N: usize> From<&[u8; N]> for RawStr {
    fn from(v: &[u8; N]) -> Self {
        Self::copied(v)
    }
}

impl From<Box<[u8]>> for RawStr {
    fn from(v: Box<[u8]>) -> Self {
        if v.len() <= INLINE {
            Self::copied(&v)
        } else {
            Self(Repr::Heap(v))
        }
    }
}

impl From<Cow<'_, [u8]>> for RawStr {
    fn from(v: Cow<'_, [u8]>) -> Self {
        match v {
            Cow::Borrowed(b) => Self::copied(b),
            Cow::Owned(v) => Self::owned(v),
        }
    }
}

impl From<String> for RawStr {
    fn from(s: String) -> Self {
        Self::owned(s.into_bytes())
    }
}

impl From<&String> for RawStr {
    fn from(s: &String) -> Self {
        Self::copied(s.as_bytes())
    }
}

impl From<&str> for RawStr {
    fn from(s: &str) -> Self {
        Self::copied(s.as_bytes())
    }
}

impl From<Cow<'_, str>> for RawStr {
    fn from(s: Cow<'_, str>) -> Self {
        match s {
            Cow::Borrowed(b) => Self::copied(b.as_bytes()),
            Cow::Owned(v) => Self::owned(v.into_bytes()),
        }
    }
}

impl From<RawStr> for Vec<u8> {
    fn from(s: RawStr) -> Self {
        s.into_bytes()
    }
}

impl PartialEq<[u8]> for RawStr {
    fn eq(&self, o: &[u8]) -> bool {
        self.as_bytes() == o
    }
}

impl PartialEq<str> for RawStr {
    fn eq(&self, o: &str) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<&str> for RawStr {
    fn eq(&self, o: &&str) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<String> for RawStr {
    fn eq(&self, o: &String) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<RawStr> for str {
    fn eq(&self, o: &RawStr) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<RawStr> for &str {
    fn eq(&self, o: &RawStr) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn inline_and_boxed_strings_are_the_same_bytes() {
        // Every length around the inline limit, made every way: same bytes, equality, order and
        // hash whichever way each one is stored; and no bigger than a `Vec`.
        use core::hash::{Hash, Hasher};
        struct Fnv(u64);
        impl Hasher for Fnv {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, b: &[u8]) {
                for &x in b {
                    self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        let h = |x: &dyn Fn(&mut Fnv)| {
            let mut f = Fnv(0xcbf2_9ce4_8422_2325);
            x(&mut f);
            f.finish()
        };
        assert_eq!(
            core::mem::size_of::<RawStr>(),
            core::mem::size_of::<Vec<u8>>()
        );
        let mut all = Vec::new();
        for n in 0..=2 * INLINE + 1 {
            let b: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let ways = [
                RawStr::from(b.as_slice()),
                RawStr::from(b.clone()),
                RawStr::from(b.clone().into_boxed_slice()),
                RawStr::from(Cow::Borrowed(b.as_slice())),
                RawStr::from(Cow::<[u8]>::Owned(b.clone())),
            ];
            for r in &ways {
                assert_eq!(r.as_bytes(), b.as_slice());
                assert_eq!(r, &ways[0]);
                assert_eq!(h(&|f| r.hash(f)), h(&|f| b.hash(f)));
                assert_eq!(r.clone().into_bytes(), b);
            }
            all.push((ways[1].clone(), b));
        }
        all.sort_by(|a, b| a.1.cmp(&b.1));
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            RawStr::new().is_empty() && RawStr::default().is_empty() && RawStr::from("").is_empty()
        );
    }

    #[test]
    fn keeps_every_byte_and_shows_them_escaped() {
        let raw: &[u8] = b"/tmp/a\tb\x01c\xff\xfe\\d\"e\xc3\xa9\xe2\x80\xae.txt";
        let s = RawStr::from(raw);
        assert_eq!(s.as_bytes(), raw);
        assert_eq!(s.to_str(), None);
        assert_eq!(
            format!("{s}"),
            "/tmp/a\\tb\\x01c\\xff\\xfe\\\\d\"eé\\u{202e}.txt"
        );
        assert_eq!(
            format!("{s:?}"),
            "\"/tmp/a\\tb\\x01c\\xff\\xfe\\\\d\\\"eé\\u{202e}.txt\""
        );
        // C1 controls and DEL are escaped; ordinary text is not.
        assert_eq!(
            format!("{}", RawStr::from("x\u{85}\u{7f}y é")),
            "x\\u{85}\\x7fy é"
        );
        assert_eq!(
            format!("{}", RawStr::from("/usr/bin/bash")),
            "/usr/bin/bash"
        );
    }

    #[test]
    fn distinct_bytes_never_render_alike() {
        // A literal backslash-x sequence and the byte it spells differ once rendered.
        let a = RawStr::from(&b"\\xff"[..]);
        let b = RawStr::from(&b"\xff"[..]);
        assert_ne!(format!("{a}"), format!("{b}"));
    }

    #[test]
    fn compares_with_text() {
        let s = RawStr::from("/etc/hostname");
        assert!(s == "/etc/hostname");
        assert!(s.ends_with("/hostname") && s.starts_with("/etc") && s.contains("c/h"));
        assert!(!s.contains("x") && s.contains(""));
    }
}
