//! A strict, zero-copy JSON reader for TSEM records.
//!
//! TSEM emits only objects and string values (spec §1.4, "All values are JSON strings"), one record
//! per line. A general JSON DOM (serde_json::Value) allocates a map and a string per member; this
//! reader instead borrows every key and value from the line and lays objects out in one reusable
//! arena, which is what lets replay parse at memory speed. It is strict: anything that is not an
//! object of strings and objects, trailing data and unescaped control characters are errors with
//! the byte offset. Duplicate keys are rejected by the typed layer (`event_json`), which sees them
//! for free as members it never reads.

use std::borrow::Cow;

/// A JSON syntax error at a byte offset of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON syntax error at byte {offset}: {msg}")]
pub struct SyntaxError {
    /// Byte offset into the line.
    pub offset: usize,
    /// What was wrong.
    pub msg: &'static str,
}

/// One object member.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The key (raw, keys never need unescaping in TSEM; escaped keys are rejected).
    pub key: &'a str,
    /// The value.
    pub value: Value<'a>,
}

/// A member value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A string, still escaped if `escaped` is true.
    Str {
        /// The raw text between the quotes.
        raw: &'a str,
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
    /// The decoded string, if this is a string.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
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

    /// Parse one JSON object from `text` (surrounding whitespace allowed).
    pub fn parse(&mut self, text: &'a str) -> Result<(), SyntaxError> {
        self.arena.clear();
        self.stack.clear();
        let mut p = Parser {
            s: text.as_bytes(),
            text,
            i: 0,
            depth: 0,
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
    text: &'a str,
    i: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &'static str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            msg,
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
                    return Err(SyntaxError {
                        offset: key_at,
                        msg: "escaped characters in a key",
                    });
                }
                self.expect(b':', "expected ':' after a key")?;
                self.ws();
                let value = match self.peek() {
                    Some(b'"') => {
                        let (raw, escaped) = self.string()?;
                        Value::Str { raw, escaped }
                    }
                    Some(b'{') => {
                        let (start, len) = self.object(arena, stack)?;
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
        let start = arena.len();
        arena.extend(stack.drain(mark..));
        self.depth -= 1;
        Ok((start as u32, (arena.len() - start) as u32))
    }

    /// A string starting at the opening quote; returns the raw contents and whether it had escapes.
    fn string(&mut self) -> Result<(&'a str, bool), SyntaxError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            // Scan to the next byte that needs attention.
            let Some(pos) = find_special(&self.s[self.i..]) else {
                self.i = self.s.len();
                return Err(self.err("unterminated string (truncated record?)"));
            };
            self.i += pos;
            match self.s[self.i] {
                b'"' => {
                    let raw = self
                        .text
                        .get(start..self.i)
                        .ok_or(self.err("string is not valid UTF-8"))?;
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
                _ => return Err(self.err("unescaped control character in a string")),
            }
        }
    }
}

/// Position of the first byte that ends a plain run inside a string: `"`, `\\` or a control
/// character. Eight bytes at a time (SWAR): strings are most of a TSEM line.
fn find_special(s: &[u8]) -> Option<usize> {
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
        let hit = ((q.wrapping_sub(LO) & !q)
            | (b.wrapping_sub(LO) & !b)
            | (x.wrapping_sub(LO * 0x20) & !x))
            & HI;
        if hit != 0 {
            return Some(i + hit.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| p + i)
}

/// Decode JSON string escapes. `None` on an invalid escape or lone surrogate.
pub fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hi = hex4(&mut chars)?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(cp)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

/// Append `s` as a JSON string body (without quotes), escaping what JSON requires.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_objects() {
        let mut d = Document::new();
        d.parse(r#"{"a": {"b": "1", "c": {"d": "x\"y"}}, "e": "2"}"#)
            .unwrap();
        let root = d.root();
        assert_eq!(root.len(), 2);
        assert_eq!(root[0].key, "a");
        let Value::Obj { start, len } = root[0].value else {
            panic!()
        };
        let a = d.members(start, len);
        assert_eq!(a[0].key, "b");
        let Value::Obj { start, len } = a[1].value else {
            panic!()
        };
        assert_eq!(d.members(start, len)[0].value.as_str().unwrap(), "x\"y");
        assert_eq!(root[1].value.as_str().unwrap(), "2");
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
            let e = d.parse(text).unwrap_err();
            assert_eq!(e.offset, at, "{text}: {e}");
        }
    }

    #[test]
    fn special_byte_scan_matches_the_naive_one() {
        let naive = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let mut buf = [b'a'; 40];
        assert_eq!(find_special(&buf), None);
        for at in 0..40 {
            for c in [
                b'"', b'\\', 0u8, 0x1f, 0x7f, 0x80, 0xff, b' ', 0x21, 0xa2, 0xdc,
            ] {
                buf = [b'a'; 40];
                buf[at] = c;
                assert_eq!(find_special(&buf), naive(&buf), "byte {c:#x} at {at}");
                assert_eq!(find_special(&buf[at..]), naive(&buf[at..]));
            }
        }
    }

    #[test]
    fn unescape_handles_unicode() {
        assert_eq!(unescape(r"a\u00e9\ud83d\ude00").unwrap(), "aé😀");
        assert!(unescape(r"\ud83d").is_none());
    }
}
