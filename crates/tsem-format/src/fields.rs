//! The field readers the typed event layer (`event_json`) is written against, and the two
//! sources behind them.
//!
//! [`Obj`] reads an object already laid out by the tokenizer ([`crate::json::Document`]): any key
//! order, and every error named by field and offset. [`Scan`] is replay's fast path: it reads
//! the line itself, matching each key the typed layer asks for against the next member as it
//! scans and decoding the value in place, with no member arena. It only accepts what it can
//! prove the tokenizer and [`Obj`] would accept with the same result — members in exactly the
//! order asked, no escapes, kernel strictness — and gives up on anything else, so that its
//! caller re-reads the line with [`Obj`], whose result and error are then the reader's by
//! construction (errors are rare; a line in another key order only costs the slower read).

use std::borrow::Cow;
use std::cell::Cell;

use tsem_core::hash::Digest;
use tsem_core::raw::{RawStr, escape};

use crate::event_json::{RecordError, parse_num};
use crate::json::{Document, Member, Value, find_special};

type R<T> = Result<T, RecordError>;

/// One object's fields, asked for by key. The provided methods hold every type check and
/// message, so both sources report a wrong field the same way.
pub(crate) trait Fields<'a>: Sized {
    /// A string's decoded bytes, exactly as the producer wrote them.
    fn opt_bytes(&mut self, key: &str) -> R<Option<Cow<'a, [u8]>>>;
    /// A number in `strtoll(s, 0)` form ([`parse_num`]).
    fn opt_u64(&mut self, key: &str) -> R<Option<u64>>;
    /// A hex digest.
    fn opt_digest(&mut self, key: &str) -> R<Option<Digest>>;
    /// A nested object.
    fn opt_obj(&mut self, key: &str) -> R<Option<Self>>;
    /// Whether the object has the key at all.
    fn has(&mut self, key: &str) -> R<bool>;
    /// Skip an object value whose contents are not read (the v3 summary of a post-v4 log record).
    fn ignore_obj(&mut self, key: &str) -> R<()>;
    /// Reject keys that were never read.
    fn finish(&mut self) -> R<()>;

    fn bytes(&mut self, key: &str) -> R<Cow<'a, [u8]>> {
        self.opt_bytes(key)?
            .ok_or_else(|| RecordError::field(key, "missing"))
    }

    /// A kernel string (pathname, comm, names): its bytes, whatever they are.
    fn opt_raw(&mut self, key: &str) -> R<Option<RawStr>> {
        Ok(self.opt_bytes(key)?.map(RawStr::from))
    }

    fn raw(&mut self, key: &str) -> R<RawStr> {
        Ok(RawStr::from(self.bytes(key)?))
    }

    /// A keyword (export and event types, log actions): must be text.
    fn text(&mut self, key: &str) -> R<Cow<'a, str>> {
        let not_text = |b: &[u8]| RecordError::field(key, format!("not UTF-8: {:?}", escape(b)));
        match self.bytes(key)? {
            Cow::Borrowed(b) => std::str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| not_text(b)),
            Cow::Owned(b) => String::from_utf8(b)
                .map(Cow::Owned)
                .map_err(|e| not_text(e.as_bytes())),
        }
    }

    fn u64(&mut self, key: &str) -> R<u64> {
        self.opt_u64(key)?
            .ok_or_else(|| RecordError::field(key, "missing"))
    }

    fn u32(&mut self, key: &str) -> R<u32> {
        let v = self.u64(key)?;
        // Accept a value that fits u32, or a negative int (printed %d) as its 32-bit pattern.
        if v <= u64::from(u32::MAX) || v >= (i64::from(i32::MIN) as u64) {
            Ok(v as u32)
        } else {
            Err(RecordError::field(
                key,
                format!("{v} does not fit in 32 bits"),
            ))
        }
    }

    fn u16(&mut self, key: &str) -> R<u16> {
        let v = self.u64(key)?;
        u16::try_from(v)
            .map_err(|_| RecordError::field(key, format!("{v} does not fit in 16 bits")))
    }

    fn digest(&mut self, key: &str) -> R<Digest> {
        self.opt_digest(key)?
            .ok_or_else(|| RecordError::field(key, "missing"))
    }

    fn obj(&mut self, key: &str) -> R<Self> {
        self.opt_obj(key)?
            .ok_or_else(|| RecordError::field(key, "missing"))
    }
}

/// A member value's decoded bytes, or why it has none.
fn value_bytes<'a>(key: &str, v: Value<'a>) -> R<Cow<'a, [u8]>> {
    match v {
        Value::Str { .. } => v
            .as_bytes()
            .ok_or_else(|| RecordError::field(key, "invalid escape sequence")),
        Value::Obj { .. } => Err(RecordError::field(
            key,
            "expected a string, found an object",
        )),
    }
}

/// Key equality without a `memcmp` call: keys are a few bytes long, and the call and its setup
/// cost more than the comparison (a tenth of the typed layer's time in callgrind).
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A view of one tokenized object's members that records which keys were read, so that unknown
/// keys can be rejected.
pub(crate) struct Obj<'d, 'a> {
    doc: &'d Document<'a>,
    members: &'d [Member<'a>],
    used: u64,
    next: usize,
}

impl<'d, 'a> Obj<'d, 'a> {
    pub(crate) fn new(doc: &'d Document<'a>, members: &'d [Member<'a>]) -> Self {
        Self {
            doc,
            members,
            used: 0,
            next: 0,
        }
    }

    fn get(&mut self, key: &str) -> Option<Value<'a>> {
        let key = key.as_bytes();
        // TSEM writes keys in a fixed order, so the next unread member is almost always the one
        // asked for; fall back to a scan for other producers' orders.
        let i = match self.members.get(self.next) {
            Some(m) if same_key(m.key, key) => self.next,
            _ => self.members.iter().position(|m| same_key(m.key, key))?,
        };
        self.next = i + 1;
        if i < 64 {
            self.used |= 1 << i;
        }
        Some(self.members[i].value)
    }
}

impl<'a> Fields<'a> for Obj<'_, 'a> {
    fn opt_bytes(&mut self, key: &str) -> R<Option<Cow<'a, [u8]>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => value_bytes(key, v).map(Some),
        }
    }

    fn opt_u64(&mut self, key: &str) -> R<Option<u64>> {
        let not_a_number =
            |s: &[u8]| RecordError::field(key, format!("not a number: {:?}", escape(s)));
        // Numbers never need unescaping as TSEM writes them: parse the raw bytes in place
        // rather than through a `Cow` (a number field cost ~180 instructions that way).
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str {
                raw,
                escaped: false,
            }) => parse_num(raw).map(Some).ok_or_else(|| not_a_number(raw)),
            Some(v) => {
                let s = value_bytes(key, v)?;
                parse_num(&s).map(Some).ok_or_else(|| not_a_number(&s))
            }
        }
    }

    fn opt_digest(&mut self, key: &str) -> R<Option<Digest>> {
        let bad = |e| RecordError::field(key, format!("bad hex: {e}"));
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str {
                raw,
                escaped: false,
            }) => Digest::from_hex_bytes(raw).map(Some).map_err(bad),
            Some(v) => Digest::from_hex_bytes(&value_bytes(key, v)?)
                .map(Some)
                .map_err(bad),
        }
    }

    fn opt_obj(&mut self, key: &str) -> R<Option<Self>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Obj { start, len }) => {
                Ok(Some(Obj::new(self.doc, self.doc.members(start, len))))
            }
            Some(Value::Str { .. }) => Err(RecordError::field(
                key,
                "expected an object, found a string",
            )),
        }
    }

    fn has(&mut self, key: &str) -> R<bool> {
        Ok(self.members.iter().any(|m| m.key == key.as_bytes()))
    }

    fn ignore_obj(&mut self, key: &str) -> R<()> {
        self.opt_obj(key).map(drop)
    }

    fn finish(&mut self) -> R<()> {
        for (i, m) in self.members.iter().enumerate() {
            if i >= 64 || self.used & (1 << i) == 0 {
                let dup = self.members[..i].iter().any(|p| p.key == m.key);
                return Err(RecordError::field(
                    &escape(m.key).to_string(),
                    if dup {
                        "duplicate key"
                    } else {
                        "unknown field"
                    },
                ));
            }
        }
        Ok(())
    }
}

/// One object of a line read in place. Nested objects share the cursor: the typed layer reads
/// (and finishes) an inner object before it asks its parent for the next key.
pub(crate) struct Scan<'s, 'a> {
    line: &'a [u8],
    pos: &'s Cell<usize>,
    /// No member read yet: the next one is not preceded by a comma.
    first: bool,
}

/// The fast path's only error: "not provably the reader's result; re-read the line". Its text
/// never reaches a user.
fn give_up() -> RecordError {
    RecordError::Field {
        field: String::new(),
        msg: String::new(),
    }
}

/// The offset of the first byte from `i` on that is not the tokenizer's whitespace.
#[inline]
fn ws(line: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = line.get(i) {
        i += 1;
    }
    i
}

impl<'s, 'a> Scan<'s, 'a> {
    /// The root object of `line`, or `None` if it does not start with one.
    pub(crate) fn root(line: &'a [u8], pos: &'s Cell<usize>) -> Option<Self> {
        let i = ws(line, 0);
        (line.get(i) == Some(&b'{')).then(|| {
            pos.set(i + 1);
            Self {
                line,
                pos,
                first: true,
            }
        })
    }

    /// Whether only whitespace follows the cursor (after the root object was finished).
    pub(crate) fn at_end(line: &[u8], pos: &Cell<usize>) -> bool {
        ws(line, pos.get()) == line.len()
    }

    /// The offset of the value of the next member if that member is `key`.
    #[inline]
    fn value_at(&self, key: &str) -> Option<usize> {
        let (line, key) = (self.line, key.as_bytes());
        // The kernel's own separators (`, "key": `, or `"key": ` after the brace) are checked
        // with three compares, not byte by byte through the whitespace loops; any other spacing
        // takes the general path below, which accepts the same members. (`==` on these slices
        // is a `memcmp` call: 6 % of replay's time.)
        let p = self.pos.get();
        let lead: &[u8] = if self.first { b"\"" } else { b", \"" };
        if let Some(rest) = line.get(p..)
            && let Some((l, rest)) = rest.split_at_checked(lead.len())
            && let Some((k, rest)) = rest.split_at_checked(key.len())
            && let Some((tail, _)) = rest.split_at_checked(3)
            && same_key(l, lead)
            && same_key(k, key)
            && same_key(tail, b"\": ")
        {
            return Some(ws(line, p + lead.len() + key.len() + 3));
        }
        let mut i = ws(line, p);
        if !self.first {
            if line.get(i) != Some(&b',') {
                return None;
            }
            i = ws(line, i + 1);
        }
        let end = i + 1 + key.len();
        if line.get(i) != Some(&b'"')
            || !line.get(i + 1..end).is_some_and(|k| same_key(k, key))
            || line.get(end) != Some(&b'"')
        {
            return None;
        }
        let colon = ws(line, end + 1);
        (line.get(colon) == Some(&b':')).then(|| ws(line, colon + 1))
    }

    /// The next member's string value if that member is `key`; the member is then read. A value
    /// with escapes, or that is not a string, gives up.
    #[inline]
    fn str_value(&mut self, key: &str) -> R<Option<&'a [u8]>> {
        let Some(i) = self.value_at(key) else {
            return Ok(None);
        };
        if self.line.get(i) != Some(&b'"') {
            return Err(give_up());
        }
        let rest = self.line.get(i + 1..).unwrap_or(&[]);
        match find_special::<false>(rest) {
            Some(n) if rest[n] == b'"' => {
                self.pos.set(i + 1 + n + 1);
                self.first = false;
                Ok(Some(&rest[..n]))
            }
            _ => Err(give_up()),
        }
    }
}

impl<'a> Fields<'a> for Scan<'_, 'a> {
    fn opt_bytes(&mut self, key: &str) -> R<Option<Cow<'a, [u8]>>> {
        Ok(self.str_value(key)?.map(Cow::Borrowed))
    }

    fn opt_u64(&mut self, key: &str) -> R<Option<u64>> {
        match self.str_value(key)? {
            None => Ok(None),
            Some(raw) => parse_num(raw).map(Some).ok_or_else(give_up),
        }
    }

    fn opt_digest(&mut self, key: &str) -> R<Option<Digest>> {
        match self.str_value(key)? {
            None => Ok(None),
            Some(raw) => Digest::from_hex_bytes(raw).map(Some).map_err(|_| give_up()),
        }
    }

    fn opt_obj(&mut self, key: &str) -> R<Option<Self>> {
        let Some(i) = self.value_at(key) else {
            return Ok(None);
        };
        if self.line.get(i) != Some(&b'{') {
            return Err(give_up());
        }
        self.pos.set(i + 1);
        self.first = false;
        Ok(Some(Scan {
            line: self.line,
            pos: self.pos,
            first: true,
        }))
    }

    /// Only what the scan can see without reading ahead: the next member is `key`, or the object
    /// ends here (every earlier member was read by its own key).
    fn has(&mut self, key: &str) -> R<bool> {
        if self.value_at(key).is_some() {
            return Ok(true);
        }
        match self.line.get(ws(self.line, self.pos.get())) {
            Some(b'}') => Ok(false),
            _ => Err(give_up()),
        }
    }

    fn ignore_obj(&mut self, key: &str) -> R<()> {
        match self.value_at(key) {
            None => Ok(()),
            Some(_) => Err(give_up()),
        }
    }

    fn finish(&mut self) -> R<()> {
        let i = ws(self.line, self.pos.get());
        if self.line.get(i) == Some(&b'}') {
            self.pos.set(i + 1);
            Ok(())
        } else {
            Err(give_up())
        }
    }
}
