//! A zero-copy JSON reader for TSEM records, over bytes.
//!
//! TSEM emits only objects and string values (spec §1.4, "All values are JSON strings"), one record
//! per line. A general JSON DOM (serde_json::Value) allocates a map and a string per member; this
//! reader instead borrows every key and value from the line and lays objects out in one reusable
//! arena, which is what lets replay parse at memory speed. Anything that is not an object of
//! strings and objects, and trailing data, are errors with the byte offset (and the dotted field
//! when the error is inside a value). Duplicate keys are rejected by the typed layer
//! (`event_json`), which sees them for free as members it never reads.
//!
//! The kernel prints strings with `%s`: their bytes are whatever the kernel holds, so a record
//! read in [`Strictness::Kernel`] (the default) takes a string's bytes as they are, invalid UTF-8
//! and raw control characters included; only `\` escapes are decoded. [`Strictness::Json`] is
//! RFC 8259 for files we write ourselves: UTF-8 only, control characters escaped. docs/raw-bytes.md
//! has the whole rule.

use std::borrow::Cow;

/// How much of RFC 8259 a line must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// The TSEM kernel's own form: string bytes are taken as they are (any byte but `"`, `\`
    /// and the line's newline may appear raw, valid UTF-8 or not).
    #[default]
    Kernel,
    /// Strict JSON: strings must be valid UTF-8 with no raw control character.
    Json,
}

/// A JSON syntax error at a byte offset of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON syntax error at byte {offset}{}: {msg}", in_field(.field))]
pub struct SyntaxError {
    /// Byte offset into the line.
    pub offset: usize,
    /// What was wrong.
    pub msg: &'static str,
    /// Dotted path of the member whose value holds the error (empty at the top level).
    pub field: String,
}

fn in_field(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(" in `{field}`")
    }
}

impl SyntaxError {
    /// The same error one object further out: prefix the member's key.
    fn within(mut self, key: &[u8]) -> Self {
        let key = tsem_core::raw::escape(key).to_string();
        self.field = if self.field.is_empty() {
            key
        } else {
            format!("{key}.{}", self.field)
        };
        self
    }
}

/// One object member.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The key's bytes (keys never need unescaping in TSEM; escaped keys are rejected).
    pub key: &'a [u8],
    /// The value.
    pub value: Value<'a>,
}

/// A member value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A string, still escaped if `escaped` is true.
    Str {
        /// The raw bytes between the quotes.
        raw: &'a [u8],
        /// Contains backslash escapes.
        escaped: bool,
    },
    /// An object: its members are `arena[start..start + len]`.
    Obj {
        /// First member index in the arena.
        start: u32,
        /// Number of members.
        len: u32,
    },
}

impl<'a> Value<'a> {
    /// The decoded bytes, if this is a string (`None` also for an invalid escape).
    pub fn as_bytes(&self) -> Option<Cow<'a, [u8]>> {
        match *self {
            Value::Str {
                raw,
                escaped: false,
            } => Some(Cow::Borrowed(raw)),
            Value::Str { raw, escaped: true } => unescape(raw).map(Cow::Owned),
            Value::Obj { .. } => None,
        }
    }
}

/// A parsed line: the arena and the root object.
#[derive(Debug, Default)]
pub struct Document<'a> {
    arena: Vec<Member<'a>>,
    stack: Vec<Member<'a>>,
    root: (u32, u32),
}

impl<'a> Document<'a> {
    /// An empty document whose buffers are reused by [`Document::parse`].
    pub fn new() -> Self {
        Self {
            arena: Vec::with_capacity(64),
            stack: Vec::with_capacity(32),
            root: (0, 0),
        }
    }

    /// The same buffers, emptied, for a line with another lifetime. Collecting an emptied vector
    /// into one of the same layout reuses its allocation, so a long replay allocates them once.
    pub fn recycle<'b>(self) -> Document<'b> {
        // `filter` cannot change the element lifetime; the closure never runs on an empty vector.
        #[allow(clippy::unnecessary_filter_map)]
        fn empty<'b>(mut v: Vec<Member<'_>>) -> Vec<Member<'b>> {
            v.clear();
            v.into_iter().filter_map(|_| None).collect()
        }
        Document {
            arena: empty(self.arena),
            stack: empty(self.stack),
            root: (0, 0),
        }
    }

    /// Parse one JSON object from `text` (surrounding whitespace allowed) as the kernel writes it.
    pub fn parse(&mut self, text: &'a [u8]) -> Result<(), SyntaxError> {
        self.parse_with(text, Strictness::Kernel)
    }

    /// Parse one JSON object from `text` with the given strictness.
    pub fn parse_with(
        &mut self,
        text: &'a [u8],
        strictness: Strictness,
    ) -> Result<(), SyntaxError> {
        self.arena.clear();
        self.stack.clear();
        let mut p = Parser {
            s: text,
            i: 0,
            depth: 0,
            strict: strictness == Strictness::Json,
        };
        p.ws();
        if p.peek() != Some(b'{') {
            return Err(p.err("expected '{' at the start of a record"));
        }
        self.root = p.object(&mut self.arena, &mut self.stack)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("trailing data after the record"));
        }
        Ok(())
    }

    /// The members of the root object.
    pub fn root(&self) -> &[Member<'a>] {
        self.members(self.root.0, self.root.1)
    }

    /// The members of an object value.
    pub fn members(&self, start: u32, len: u32) -> &[Member<'a>] {
        let (s, l) = (start as usize, len as usize);
        self.arena.get(s..s + l).unwrap_or(&[])
    }
}

/// Nesting limit: TSEM records nest at most four deep; anything far deeper is hostile.
const MAX_DEPTH: u32 = 16;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
    strict: bool,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &'static str) -> SyntaxError {
        self.err_at(self.i, msg)
    }
    fn err_at(&self, offset: usize, msg: &'static str) -> SyntaxError {
        SyntaxError {
            offset,
            msg,
            field: String::new(),
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8, msg: &'static str) -> Result<(), SyntaxError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(msg))
        }
    }

    fn object(
        &mut self,
        arena: &mut Vec<Member<'a>>,
        stack: &mut Vec<Member<'a>>,
    ) -> Result<(u32, u32), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("objects nested too deeply"));
        }
        self.i += 1; // '{'
        let mark = stack.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a quoted key"));
                }
                let key_at = self.i;
                let (key, escaped) = self.string()?;
                if escaped {
                    return Err(self.err_at(key_at, "escaped characters in a key"));
                }
                self.expect(b':', "expected ':' after a key")?;
                self.ws();
                let value = match self.peek() {
                    Some(b'"') => {
                        let (raw, escaped) = self.string().map_err(|e| e.within(key))?;
                        Value::Str { raw, escaped }
                    }
                    Some(b'{') => {
                        let (start, len) = self.object(arena, stack).map_err(|e| e.within(key))?;
                        Value::Obj { start, len }
                    }
                    None => return Err(self.err("unexpected end of line (truncated record?)")),
                    Some(_) => {
                        return Err(
                            self.err("expected a string or object value (TSEM values are strings)")
                        );
                    }
                };
                stack.push(Member { key, value });
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    None => return Err(self.err("unexpected end of line (truncated record?)")),
                    Some(_) => return Err(self.err("expected ',' or '}'")),
                }
            }
        }
        // Members are `Copy`: one block copy and a truncation, not `drain`'s element loop.
        let start = arena.len();
        arena.extend_from_slice(stack.get(mark..).unwrap_or(&[]));
        stack.truncate(mark);
        self.depth -= 1;
        Ok((start as u32, (arena.len() - start) as u32))
    }

    /// A string starting at the opening quote; returns the raw contents and whether it had escapes.
    /// Inlined into its two callers: a call's register saves cost a quarter of a short string.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a [u8], bool), SyntaxError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            // Scan to the next byte that needs attention.
            let rest = &self.s[self.i..];
            let found = if self.strict {
                find_special::<true>(rest)
            } else {
                find_special::<false>(rest)
            };
            let Some(pos) = found else {
                self.i = self.s.len();
                return Err(self.err("unterminated string (truncated record?)"));
            };
            self.i += pos;
            match self.s[self.i] {
                b'"' => {
                    let raw = &self.s[start..self.i];
                    if self.strict
                        && let Err(e) = std::str::from_utf8(raw)
                    {
                        return Err(self.err_at(
                            start + e.valid_up_to(),
                            "invalid UTF-8 in a string (strict JSON)",
                        ));
                    }
                    self.i += 1;
                    return Ok((raw, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match self.s.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i + 2..self.i + 6)
                                .ok_or(self.err("truncated \\u escape"))?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(self.err("bad \\u escape"));
                            }
                            self.i += 6;
                        }
                        _ => return Err(self.err("bad escape sequence")),
                    }
                }
                // A raw control character (only strict scans stop at one): the kernel's bytes
                // would be kept as they are; strict JSON refuses them.
                _ => {
                    return Err(self.err("unescaped control character in a string (strict JSON)"));
                }
            }
        }
    }
}

/// Position of the first byte that ends a plain run inside a string: `"`, `\\`, and with
/// `CONTROL` a control character (strict JSON refuses them raw; the kernel's form keeps them, so
/// its scan looks for two bytes, not three). Eight bytes at a time (SWAR): strings are most of a
/// TSEM line.
#[inline(always)]
pub(crate) fn find_special<const CONTROL: bool>(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let x = u64::from_le_bytes(w);
        // A zero byte in x ^ c marks a byte equal to c; (x - 0x20..) & !x & HI marks bytes < 0x20.
        // Borrows can only flag bytes above a real hit, so the lowest flag is the first hit.
        let q = x ^ (LO * u64::from(b'"'));
        let b = x ^ (LO * u64::from(b'\\'));
        let mut hit = (q.wrapping_sub(LO) & !q) | (b.wrapping_sub(LO) & !b);
        if CONTROL {
            hit |= x.wrapping_sub(LO * 0x20) & !x;
        }
        let hit = hit & HI;
        if hit != 0 {
            return Some(i + hit.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || (CONTROL && c < 0x20))
        .map(|p| p + i)
}

/// Decode JSON string escapes into bytes; every other byte is kept as it is. `None` on an
/// invalid escape or a lone surrogate.
pub fn unescape(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let e = *raw.get(i)?;
        i += 1;
        match e {
            b'"' | b'\\' | b'/' => out.push(e),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hi = hex4(raw, &mut i)?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i..i + 2)? != b"\\u" {
                        return None;
                    }
                    i += 2;
                    let lo = hex4(raw, &mut i)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(char::from_u32(cp)?.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
    Some(out)
}

fn hex4(raw: &[u8], i: &mut usize) -> Option<u32> {
    let digits = raw.get(*i..*i + 4)?;
    *i += 4;
    let mut v = 0;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Append `s` as a string body (without quotes) in the kernel's form: `"` and `\` escaped, a
/// newline escaped (a record is one line), every other byte as it is. The reader gives back
/// exactly `s`, and a line the kernel wrote comes out byte for byte.
pub fn escape_kernel_into(out: &mut Vec<u8>, s: &[u8]) {
    let mut plain = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            _ => continue,
        };
        out.extend_from_slice(&s[plain..i]);
        out.extend_from_slice(esc);
        plain = i + 1;
    }
    out.extend_from_slice(&s[plain..]);
}

/// The bytes are not valid UTF-8, so strict JSON cannot carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8 {
    /// Offset of the first byte that is not UTF-8.
    pub at: usize,
}

/// Append `s` as an RFC 8259 string body (without quotes): `"` and `\` escaped, control
/// characters as `\u00XX`. Bytes that are not UTF-8 have no JSON spelling and are refused.
pub fn escape_json_into(out: &mut Vec<u8>, s: &[u8]) -> Result<(), NotUtf8> {
    std::str::from_utf8(s).map_err(|e| NotUtf8 {
        at: e.valid_up_to(),
    })?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&s[plain..i]);
        plain = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    out.extend_from_slice(&s[plain..]);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_objects() {
        let mut d = Document::new();
        d.parse(br#"{"a": {"b": "1", "c": {"d": "x\"y"}}, "e": "2"}"#)
            .unwrap();
        let root = d.root();
        assert_eq!(root.len(), 2);
        assert_eq!(root[0].key, b"a");
        let Value::Obj { start, len } = root[0].value else {
            panic!()
        };
        let a = d.members(start, len);
        assert_eq!(a[0].key, b"b");
        let Value::Obj { start, len } = a[1].value else {
            panic!()
        };
        assert_eq!(
            *d.members(start, len)[0].value.as_bytes().unwrap(),
            *b"x\"y"
        );
        assert_eq!(*root[1].value.as_bytes().unwrap(), *b"2");
    }

    #[test]
    fn rejects_bad_input_with_offsets() {
        let mut d = Document::new();
        for (text, at) in [
            (r#"{"a": "1""#, 9),
            (r#"{"a": 1}"#, 6),
            (r#"{"a": "1"} x"#, 11),
            (r#"{"a": "\q"}"#, 7),
            ("", 0),
        ] {
            let e = d.parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.offset, at, "{text}: {e}");
        }
    }

    #[test]
    fn kernel_strings_keep_raw_bytes_and_strict_json_names_the_field() {
        let line: &[u8] = b"{\"a\": {\"p\": \"x\ty\x01\xff\\\"z\"}}";
        let mut d = Document::new();
        d.parse(line).unwrap();
        let Value::Obj { start, len } = d.root()[0].value else {
            panic!()
        };
        assert_eq!(
            *d.members(start, len)[0].value.as_bytes().unwrap(),
            *b"x\ty\x01\xff\"z"
        );
        let e = d.parse_with(line, Strictness::Json).unwrap_err();
        assert_eq!((e.offset, e.field.as_str()), (14, "a.p"), "{e}");
        assert!(e.to_string().contains("in `a.p`: unescaped control"), "{e}");
        let e = d
            .parse_with(b"{\"a\": {\"p\": \"xy\xffz\"}}", Strictness::Json)
            .unwrap_err();
        assert_eq!((e.offset, e.field.as_str()), (15, "a.p"), "{e}");
        assert!(e.msg.contains("invalid UTF-8"), "{e}");
        d.parse_with(br#"{"a": {"p": "x\ty\u0001\u00e9"}}"#, Strictness::Json)
            .unwrap();
    }

    #[test]
    fn both_escapers_round_trip_through_the_reader() {
        let raw: &[u8] = b"a\"b\\c\nd\te\x01f\x7f\xc3\xa9";
        let mut k = Vec::new();
        escape_kernel_into(&mut k, raw);
        assert_eq!(k, b"a\\\"b\\\\c\\nd\te\x01f\x7f\xc3\xa9");
        assert_eq!(unescape(&k).unwrap(), raw);
        let mut j = Vec::new();
        escape_json_into(&mut j, raw).unwrap();
        assert_eq!(j, b"a\\\"b\\\\c\\u000ad\\u0009e\\u0001f\x7f\xc3\xa9");
        assert_eq!(unescape(&j).unwrap(), raw);
        let mut j = Vec::new();
        assert_eq!(
            escape_json_into(&mut j, b"ok\xffno"),
            Err(NotUtf8 { at: 2 })
        );
    }

    #[test]
    fn special_byte_scan_matches_the_naive_one() {
        let naive = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let kernel = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\');
        let mut buf = [b'a'; 40];
        assert_eq!(find_special::<true>(&buf), None);
        assert_eq!(find_special::<false>(&buf), None);
        for at in 0..40 {
            for c in [
                b'"', b'\\', 0u8, 0x1f, 0x7f, 0x80, 0xff, b' ', 0x21, 0xa2, 0xdc,
            ] {
                buf = [b'a'; 40];
                buf[at] = c;
                assert_eq!(
                    find_special::<true>(&buf),
                    naive(&buf),
                    "byte {c:#x} at {at}"
                );
                assert_eq!(find_special::<true>(&buf[at..]), naive(&buf[at..]));
                assert_eq!(
                    find_special::<false>(&buf),
                    kernel(&buf),
                    "byte {c:#x} at {at}"
                );
                assert_eq!(find_special::<false>(&buf[at..]), kernel(&buf[at..]));
            }
        }
    }

    #[test]
    fn unescape_handles_unicode() {
        assert_eq!(
            unescape(br"a\u00e9\ud83d\ude00").unwrap(),
            "aé😀".as_bytes()
        );
        assert!(unescape(br"\ud83d").is_none());
    }
}
