//! The three fields the hand-over hook needs from the container state runc writes to a hook's
//! stdin (`id`, `status`, `pid`), read by a strict JSON scanner that uses `core` only: the same
//! source is compiled into `tsem-runtime` (where these tests run) and into the hook binary,
//! which has no libc (`hook/main.rs`: a glibc program's start-up alone costs ~0.35 ms of CPU on a
//! virtual machine, mostly `cpuid` exits, and the hook is on the container's critical path).
//!
//! Only the top-level object is read; every other value is checked for well-formedness and
//! skipped. Anything else fails: malformed JSON, a field missing or of another type, a field
//! given twice, an escaped top-level key or an escaped `id`/`status` (runc writes neither: its
//! ids are `[\w+.-]+`), a `pid` that is not a positive 32-bit integer.

/// What the hook reads from the state.
#[derive(Debug, PartialEq, Eq)]
pub struct State<'a> {
    /// The container's id, as written (no escapes).
    pub id: &'a [u8],
    /// Its status, as written.
    pub status: &'a [u8],
    /// The init's host pid.
    pub pid: i32,
}

/// Why the state was refused (no allocation: the hook has no heap).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum StateError {
    /// Not JSON at this byte offset.
    Syntax(usize),
    /// Nested deeper than [`MAX_DEPTH`] at this offset.
    TooDeep(usize),
    /// A field missing.
    Missing(&'static str),
    /// A field given twice.
    Duplicate(&'static str),
    /// A field of the wrong type or value.
    Bad(&'static str),
    /// An escape in a top-level key or in `id`/`status`, at this offset.
    Escaped(usize),
}

impl StateError {
    /// One line, written into `out`; the length used.
    pub fn describe(&self, out: &mut [u8]) -> usize {
        let mut w = Writer { out, len: 0 };
        match *self {
            Self::Syntax(at) => {
                w.put(b"not JSON at byte ");
                w.num(at as u64);
            }
            Self::TooDeep(at) => {
                w.put(b"nested too deep at byte ");
                w.num(at as u64);
            }
            Self::Missing(f) => {
                w.put(b"no ");
                w.put(f.as_bytes());
            }
            Self::Duplicate(f) => {
                w.put(f.as_bytes());
                w.put(b" given twice");
            }
            Self::Bad(f) => {
                w.put(b"bad ");
                w.put(f.as_bytes());
            }
            Self::Escaped(at) => {
                w.put(b"an escaped name or id at byte ");
                w.num(at as u64);
            }
        }
        w.len
    }
}

/// Appends bytes to a fixed buffer, dropping what does not fit.
pub struct Writer<'a> {
    /// The buffer.
    pub out: &'a mut [u8],
    /// Bytes used.
    pub len: usize,
}

impl Writer<'_> {
    /// Append `b` (truncated to the room left).
    pub fn put(&mut self, b: &[u8]) {
        for &c in b {
            if self.len < self.out.len() {
                self.out[self.len] = c;
                self.len += 1;
            }
        }
    }

    /// Append `n` in decimal.
    pub fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut k = i;
        while k < digits.len() {
            let c = digits[k];
            self.put(&[c]);
            k += 1;
        }
    }
}

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 64;

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), StateError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(StateError::Syntax(self.i))
        }
    }

    /// A string at the cursor: its raw contents and whether it has escapes.
    fn string(&mut self) -> Result<(&'a [u8], bool), StateError> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(StateError::Syntax(self.i));
            };
            match c {
                b'"' => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return Ok((raw, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|h| h.is_ascii_hexdigit()) {
                                    return Err(StateError::Syntax(self.i));
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(StateError::Syntax(self.i)),
                    }
                }
                0..=0x1f => return Err(StateError::Syntax(self.i)),
                _ => self.i += 1,
            }
        }
    }

    /// A number at the cursor: its text.
    fn number(&mut self) -> Result<&'a [u8], StateError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(StateError::Syntax(self.i)),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.need_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.need_digits()?;
        }
        Ok(&self.s[start..self.i])
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn need_digits(&mut self) -> Result<(), StateError> {
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(StateError::Syntax(self.i));
        }
        self.digits();
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), StateError> {
        if self.s.len() >= self.i + word.len() && &self.s[self.i..self.i + word.len()] == word {
            self.i += word.len();
            Ok(())
        } else {
            Err(StateError::Syntax(self.i))
        }
    }

    /// Check and skip any value, without recursion (a stack of container kinds, bounded).
    fn skip_value(&mut self) -> Result<(), StateError> {
        // true: an object (a key comes before each value), false: an array.
        let mut stack = [false; MAX_DEPTH];
        let mut depth = 0;
        loop {
            self.ws();
            // One value.
            match self.peek() {
                Some(b'{' | b'[') => {
                    let object = self.peek() == Some(b'{');
                    if depth == MAX_DEPTH {
                        return Err(StateError::TooDeep(self.i));
                    }
                    self.i += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                    } else {
                        stack[depth] = object;
                        depth += 1;
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => {
                    self.number()?;
                }
            }
            // After a value: close what ends here, or go on to the next element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let object = stack[depth - 1];
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.i += 1;
                        depth -= 1;
                    }
                    Some(b']') if !object => {
                        self.i += 1;
                        depth -= 1;
                    }
                    _ => return Err(StateError::Syntax(self.i)),
                }
            }
        }
    }

    /// An object's key and its colon.
    fn key(&mut self) -> Result<&'a [u8], StateError> {
        self.ws();
        let (k, _) = self.string()?;
        self.ws();
        self.eat(b':')?;
        Ok(k)
    }
}

/// Read `id`, `status` and `pid` from the state `text`.
pub fn parse(text: &[u8]) -> Result<State<'_>, StateError> {
    let mut sc = Scan { s: text, i: 0 };
    let (mut id, mut status, mut pid) = (None, None, None);
    sc.ws();
    sc.eat(b'{')?;
    sc.ws();
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        loop {
            sc.ws();
            let at = sc.i;
            let (key, escaped) = sc.string()?;
            if escaped {
                return Err(StateError::Escaped(at));
            }
            sc.ws();
            sc.eat(b':')?;
            sc.ws();
            match key {
                b"id" | b"status" => {
                    let name = if key == b"id" { "id" } else { "status" };
                    if sc.peek() != Some(b'"') {
                        return Err(StateError::Bad(name));
                    }
                    let at = sc.i;
                    let (v, escaped) = sc.string()?;
                    if escaped {
                        return Err(StateError::Escaped(at));
                    }
                    let slot = if key == b"id" { &mut id } else { &mut status };
                    if slot.replace(v).is_some() {
                        return Err(StateError::Duplicate(name));
                    }
                }
                b"pid" => {
                    if !matches!(sc.peek(), Some(b'-' | b'0'..=b'9')) {
                        return Err(StateError::Bad("pid"));
                    }
                    let n = sc.number()?;
                    if pid.replace(positive_i32(n)?).is_some() {
                        return Err(StateError::Duplicate("pid"));
                    }
                }
                _ => sc.skip_value()?,
            }
            sc.ws();
            match sc.peek() {
                Some(b',') => sc.i += 1,
                Some(b'}') => {
                    sc.i += 1;
                    break;
                }
                _ => return Err(StateError::Syntax(sc.i)),
            }
        }
    }
    sc.ws();
    if sc.i != text.len() {
        return Err(StateError::Syntax(sc.i));
    }
    Ok(State {
        id: id.ok_or(StateError::Missing("id"))?,
        status: status.ok_or(StateError::Missing("status"))?,
        pid: pid.ok_or(StateError::Missing("pid"))?,
    })
}

/// A JSON integer in 1..=i32::MAX (no sign, fraction or exponent).
fn positive_i32(n: &[u8]) -> Result<i32, StateError> {
    if n.is_empty() || n.len() > 10 || !n.iter().all(u8::is_ascii_digit) {
        return Err(StateError::Bad("pid"));
    }
    let mut v: i64 = 0;
    for &c in n {
        v = v * 10 + i64::from(c - b'0');
    }
    if v <= 0 || v > i64::from(i32::MAX) {
        return Err(StateError::Bad("pid"));
    }
    Ok(v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runcs_state_is_read() {
        let text = br#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"creating","bundle":"/b","annotations":{"id":"x","pid":"1","org.tsem.mode":"enforce"}}"#;
        assert_eq!(
            parse(text),
            Ok(State {
                id: b"c1",
                status: b"creating",
                pid: 4242
            })
        );
    }

    #[test]
    fn nested_fields_are_not_taken_for_the_containers() {
        // The only id is inside the annotations: missing at the top level.
        let text = br#"{"annotations":{"id":"c1"},"pid":7,"status":"creating"}"#;
        assert_eq!(parse(text), Err(StateError::Missing("id")));
        let text = br#" { "a" : [1, -2.5e3, true, false, null, {"b": [[]]}, "\u00e9\n"], "id" : "c1", "status" : "creating", "pid" : 7 } "#;
        assert_eq!(parse(text).map(|s| s.pid), Ok(7));
    }

    #[test]
    fn malformed_or_unexpected_states_are_refused() {
        let cases: &[(&[u8], StateError)] = &[
            (b"", StateError::Syntax(0)),
            (b"[]", StateError::Syntax(0)),
            (
                br#"{"id":"c1","status":"creating","pid":7"#,
                StateError::Syntax(38),
            ),
            (
                br#"{"id":"c1","status":"creating","pid":7} x"#,
                StateError::Syntax(40),
            ),
            (
                br#"{"id":"c1","id":"c2","status":"creating","pid":7}"#,
                StateError::Duplicate("id"),
            ),
            (
                br#"{"id":1,"status":"creating","pid":7}"#,
                StateError::Bad("id"),
            ),
            (
                br#"{"id":"c1","status":"creating","pid":"7"}"#,
                StateError::Bad("pid"),
            ),
            (
                br#"{"id":"c1","status":"creating","pid":0}"#,
                StateError::Bad("pid"),
            ),
            (
                br#"{"id":"c1","status":"creating","pid":-7}"#,
                StateError::Bad("pid"),
            ),
            (
                br#"{"id":"c1","status":"creating","pid":7.5}"#,
                StateError::Bad("pid"),
            ),
            (
                br#"{"id":"c1","status":"creating","pid":2147483648}"#,
                StateError::Bad("pid"),
            ),
            (
                br#"{"id":"c\u0031","status":"creating","pid":7}"#,
                StateError::Escaped(6),
            ),
            (
                br#"{"\u0069d":"c1","status":"creating","pid":7}"#,
                StateError::Escaped(1),
            ),
            (
                br#"{"status":"creating","pid":7}"#,
                StateError::Missing("id"),
            ),
            (
                br#"{"id":"c1","x":[1,],"status":"creating","pid":7}"#,
                StateError::Syntax(18),
            ),
            (br#"{"id":"c1","x":"a"#, StateError::Syntax(17)),
            (
                b"{\"id\":\"c\x01\",\"status\":\"creating\",\"pid\":7}",
                StateError::Syntax(8),
            ),
            (
                br#"{"id":"c1","x":tru,"status":"creating","pid":7}"#,
                StateError::Syntax(15),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(*want), "{}", String::from_utf8_lossy(text));
        }
        let deep = [b"{\"x\":".as_slice(), &[b'['; MAX_DEPTH + 1]].concat();
        assert_eq!(parse(&deep), Err(StateError::TooDeep(5 + MAX_DEPTH)));
    }

    #[test]
    fn errors_read_as_one_line() {
        let mut buf = [0u8; 80];
        let n = StateError::Syntax(1234).describe(&mut buf);
        assert_eq!(&buf[..n], b"not JSON at byte 1234");
        let n = StateError::Duplicate("pid").describe(&mut buf);
        assert_eq!(&buf[..n], b"pid given twice");
        let mut small = [0u8; 4];
        let n = StateError::Missing("status").describe(&mut small);
        assert_eq!(&small[..n], b"no s");
    }
}
