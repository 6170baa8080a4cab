//! IMA measurement lists: binary (`binary_runtime_measurements[_<alg>]`) and ASCII
//! (`ascii_runtime_measurements[_<alg>]`), template-hash verification, PCR replay, the
//! boot_aggregate check and the order-invariant TSEM state.
//!
//! Binary record (kernel `ima_fs.c`, `ima_measurements_show`): `u32 pcr`, the template hash (20
//! bytes on older kernels, the size of the list's algorithm on per-bank lists), `u32 name_len`,
//! the template name, then `u32 template_data_len` and the template data (`u32 len` + bytes per
//! field) — except for the legacy `ima` template, which has no data length, a bare 20-byte `d`
//! and `n` without its NUL. Integers are in the writer's byte order (little-endian with
//! `ima_canonical_fmt`); both orders are detected.
//!
//! Every entry is normalised to the binary template-data layout, so that the ASCII form is
//! re-encoded once and the hashing code is shared.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use tsem_core::hash::{Digest, HashAlg, Hasher, extend};
use tsem_core::state::{hardware_aggregate, state_of};

use crate::eventlog;
use crate::reader::{Reader, Short};
use crate::template::{Field, FieldFormat, Template};

/// Longest template name accepted (a custom field list of 15 fields fits easily).
const MAX_TEMPLATE_NAME: u32 = 255;
/// The legacy `ima` template hashes its name padded to `IMA_EVENT_NAME_LEN_MAX + 1` bytes.
const LEGACY_NAME_PAD: usize = 256;
/// Mismatch details kept in a replay (the count is always exact).
pub const MAX_MISMATCH_DETAILS: usize = 100;

/// Why a measurement list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImaError {
    /// The input has no bytes (or no lines).
    #[error("empty measurement list")]
    Empty,
    /// The input is neither a binary nor an ASCII list.
    #[error("not an IMA measurement list: {0}")]
    UnknownFormat(String),
    /// A binary field runs past the end of the input.
    #[error(
        "entry {index} at byte {offset}: {field} truncated at byte {at}: needs {need} bytes, {have} left"
    )]
    Truncated {
        /// Entry index.
        index: usize,
        /// Byte offset of the entry.
        offset: usize,
        /// Field being read.
        field: &'static str,
        /// Byte offset of the field.
        at: usize,
        /// Bytes needed.
        need: u64,
        /// Bytes left.
        have: usize,
    },
    /// A binary field holds a value the format does not allow.
    #[error("entry {index} at byte {offset}: {field}: {reason}")]
    Invalid {
        /// Entry index.
        index: usize,
        /// Byte offset of the entry.
        offset: usize,
        /// Field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An ASCII line is malformed.
    #[error("line {line} (entry {index}): {field}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// Entry index.
        index: usize,
        /// Field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Reading the list failed.
    #[error("reading the list: {0}")]
    Io(String),
    /// A template hash algorithm was forced that does not fit the list.
    #[error("template hash algorithm {alg} does not fit this list: {reason}")]
    WrongAlgorithm {
        /// Forced algorithm.
        alg: &'static str,
        /// Why.
        reason: String,
    },
}

/// Encoding of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImaFormat {
    /// Binary, little-endian integers.
    BinaryLe,
    /// Binary, big-endian integers (a big-endian host without `ima_canonical_fmt`).
    BinaryBe,
    /// ASCII lines.
    Ascii,
}

impl ImaFormat {
    /// Stable machine name.
    pub fn name(self) -> &'static str {
        match self {
            Self::BinaryLe => "binary-le",
            Self::BinaryBe => "binary-be",
            Self::Ascii => "ascii",
        }
    }
}

/// How to read a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The template-hash algorithm, if known (e.g. from a `..._sha256` file name). Otherwise it
    /// is detected: from the digest size, and where two algorithms share a size (sha256, sm3) from
    /// which one verifies the first entry.
    pub template_alg: Option<HashAlg>,
}

impl ParseOptions {
    /// Options with the algorithm taken from a kernel file name such as
    /// `binary_runtime_measurements_sha384`, if it has such a suffix.
    pub fn from_file_name(name: &str) -> Self {
        let alg = name
            .rsplit_once('_')
            .and_then(|(_, s)| s.parse::<HashAlg>().ok());
        Self { template_alg: alg }
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaEntry<'a> {
    /// Index in the list.
    pub index: usize,
    /// Byte offset of the entry (of its line, for ASCII).
    pub offset: usize,
    /// Byte length of the entry (of its line with the newline, for ASCII).
    pub len: usize,
    /// PCR the entry was extended into.
    pub pcr: u32,
    /// Template hash as logged.
    pub template_hash: Digest,
    /// Template name (or field list).
    pub template_name: &'a str,
    /// The template, if the name is known.
    pub template: Option<Template>,
    /// Template data in the binary layout (for `ima`: `d || u32 len || name`).
    pub data: Cow<'a, [u8]>,
    big_endian: bool,
}

/// A digest field: its prefix (`sha256`, `ima:sha256`, empty for `d`) and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDigest<'a> {
    /// Text before `:\0` (`sha256`, `ima:sha256`, `verity:sha256`), or empty for `d`.
    pub prefix: &'a str,
    /// Digest bytes.
    pub digest: &'a [u8],
}

impl FieldDigest<'_> {
    /// Hash algorithm named by the prefix (`d` is SHA-1).
    pub fn alg(&self) -> Option<HashAlg> {
        if self.prefix.is_empty() {
            return Some(HashAlg::Sha1);
        }
        let name = self.prefix.rsplit(':').next().unwrap_or("");
        name.parse().ok()
    }
}

impl<'a> ImaEntry<'a> {
    /// True for a violation (the kernel logs a zero template hash and extends all-0xFF).
    pub fn is_violation(&self) -> bool {
        self.template_hash.is_zero()
    }

    /// The fields `(field, bytes)` of a known template.
    pub fn fields(&self) -> Vec<(Field, &[u8])> {
        let Some(t) = self.template else {
            return Vec::new();
        };
        split_fields(&t, &self.data, self.big_endian).unwrap_or_default()
    }

    /// The file digest (`d`, `d-ng` or `d-ngv2`).
    pub fn file_digest(&self) -> Option<FieldDigest<'_>> {
        for (f, b) in self.fields() {
            match f {
                Field::D => {
                    return Some(FieldDigest {
                        prefix: "",
                        digest: b,
                    });
                }
                Field::DNg | Field::DNgv2 => {
                    let nul = b.iter().position(|&c| c == 0)?;
                    let prefix = core::str::from_utf8(b.get(..nul)?).ok()?;
                    let prefix = prefix.strip_suffix(':').unwrap_or(prefix);
                    return Some(FieldDigest {
                        prefix,
                        digest: b.get(nul + 1..)?,
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// The file name hint (`n` or `n-ng`, without its NUL).
    pub fn file_name(&self) -> Option<&[u8]> {
        self.fields()
            .into_iter()
            .find(|(f, _)| matches!(f, Field::N | Field::NNg))
            .map(|(_, b)| trim_nul(b))
    }

    /// The template hash in `alg`: what the kernel extends into bank `alg`.
    pub fn template_hash_in(&self, alg: HashAlg) -> Digest {
        let mut h = Hasher::new(alg);
        self.hash_template(&mut h);
        h.finalize()
    }

    fn hash_template(&self, h: &mut Hasher) {
        let legacy = self.template.is_some_and(|t| t.is_legacy());
        if !legacy {
            h.update(&self.data);
            return;
        }
        // `ima`: d (20 bytes) then the name zero-padded to 256 bytes, no lengths.
        let d = self.data.get(..20).unwrap_or(&[]);
        let name = self.data.get(24..).unwrap_or(&[]);
        h.update(d);
        h.update(name);
        if name.len() < LEGACY_NAME_PAD {
            h.update(&[0u8; LEGACY_NAME_PAD][..LEGACY_NAME_PAD - name.len()]);
        }
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    match b.split_last() {
        Some((0, head)) => head,
        _ => b,
    }
}

fn read_u32(r: &mut Reader<'_>, be: bool) -> Result<u32, Short> {
    if be { r.u32_be() } else { r.u32_le() }
}

/// Split binary template data into its fields; `Err(reason)` unless it is exactly the fields.
fn split_fields<'d>(
    t: &Template,
    data: &'d [u8],
    be: bool,
) -> Result<Vec<(Field, &'d [u8])>, String> {
    let mut out = Vec::with_capacity(t.fields().len());
    walk_fields(t, data, be, |f, b| out.push((f, b)))?;
    Ok(out)
}

/// Visit the fields of `data`; `Err(reason)` unless it is exactly the template's fields. Takes a
/// visitor rather than building a list so that validating every entry allocates nothing.
fn walk_fields<'d>(
    t: &Template,
    data: &'d [u8],
    be: bool,
    mut visit: impl FnMut(Field, &'d [u8]),
) -> Result<(), String> {
    let mut r = Reader::new(data);
    if t.is_legacy() {
        let d = r
            .take(20)
            .map_err(|_| String::from("d shorter than 20 bytes"))?;
        let n = read_u32(&mut r, be).map_err(|_| String::from("n length missing"))?;
        let name = r
            .take(u64::from(n))
            .map_err(|_| format!("n length {n} exceeds the entry"))?;
        visit(Field::D, d);
        visit(Field::N, name);
    } else {
        for &f in t.fields() {
            let n = read_u32(&mut r, be).map_err(|_| format!("{} length missing", f.id()))?;
            let b = r
                .take(u64::from(n))
                .map_err(|_| format!("{} length {n} exceeds the template data", f.id()))?;
            visit(f, b);
        }
    }
    if !r.is_empty() {
        return Err(format!("{} bytes after the last field", r.remaining()));
    }
    Ok(())
}

/// Streaming parser over a list; yields entries in order and stops at the first error.
#[derive(Debug, Clone)]
pub struct ImaParser<'a> {
    data: &'a [u8],
    pos: usize,
    index: usize,
    line: usize,
    format: ImaFormat,
    alg: HashAlg,
    failed: bool,
    /// Absolute offset of `data[0]` (non-zero when `data` is a window of a streamed file).
    base: usize,
    /// `data` may end mid-entry: an ASCII line without its newline is left for the next window.
    partial: bool,
}

impl<'a> ImaParser<'a> {
    /// Detect the format and template-hash algorithm of `data` and start parsing.
    pub fn new(data: &'a [u8], opts: ParseOptions) -> Result<Self, ImaError> {
        let (format, alg) = detect(data, opts)?;
        Ok(Self::with_format(data, format, alg))
    }

    /// A parser for a list of known format and algorithm.
    pub fn with_format(data: &'a [u8], format: ImaFormat, alg: HashAlg) -> Self {
        Self {
            data,
            pos: 0,
            index: 0,
            line: 0,
            format,
            alg,
            failed: false,
            base: 0,
            partial: false,
        }
    }

    /// Encoding of the list.
    pub fn format(&self) -> ImaFormat {
        self.format
    }

    /// Template-hash algorithm of the list.
    pub fn template_alg(&self) -> HashAlg {
        self.alg
    }

    /// Byte offset of the next entry.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn next_binary(&mut self) -> Result<ImaEntry<'a>, ImaError> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let (e, used) = parse_binary_entry(
            rest,
            self.base + self.pos,
            self.index,
            self.alg,
            self.format == ImaFormat::BinaryBe,
        )?;
        self.pos += used;
        Ok(e)
    }

    fn next_ascii(&mut self) -> Option<Result<ImaEntry<'a>, ImaError>> {
        loop {
            let rest = self.data.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            let (line, used) = match rest.iter().position(|&c| c == b'\n') {
                Some(p) => (rest.get(..p).unwrap_or(&[]), p + 1),
                None if self.partial => return None,
                None => (rest, rest.len()),
            };
            let offset = self.base + self.pos;
            self.pos += used;
            self.line += 1;
            if line.is_empty() {
                continue;
            }
            return Some(parse_ascii_line(
                line, offset, used, self.line, self.index, self.alg,
            ));
        }
    }
}

impl<'a> Iterator for ImaParser<'a> {
    type Item = Result<ImaEntry<'a>, ImaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let r = match self.format {
            ImaFormat::Ascii => self.next_ascii()?,
            _ => self.next_binary(),
        };
        match &r {
            Ok(_) => self.index += 1,
            Err(_) => self.failed = true,
        }
        Some(r)
    }
}

fn parse_binary_entry<'a>(
    rest: &'a [u8],
    offset: usize,
    index: usize,
    alg: HashAlg,
    be: bool,
) -> Result<(ImaEntry<'a>, usize), ImaError> {
    let mut r = Reader::with_base(rest, offset);
    let t = |field: &'static str| {
        move |s: Short| ImaError::Truncated {
            index,
            offset,
            field,
            at: s.offset,
            need: s.need,
            have: s.have,
        }
    };
    let inval = |field: &'static str, reason: String| ImaError::Invalid {
        index,
        offset,
        field,
        reason,
    };
    let pcr = read_u32(&mut r, be).map_err(t("pcr"))?;
    let th = r.take(alg.size() as u64).map_err(t("template hash"))?;
    let name_len = read_u32(&mut r, be).map_err(t("template name length"))?;
    if name_len == 0 || name_len > MAX_TEMPLATE_NAME {
        return Err(inval(
            "template name length",
            format!("{name_len} (allowed 1..={MAX_TEMPLATE_NAME})"),
        ));
    }
    let name_raw = r.take(u64::from(name_len)).map_err(t("template name"))?;
    let template_name = core::str::from_utf8(name_raw)
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| inval("template name", String::from("not printable ASCII")))?;
    let template = Template::from_name(template_name);
    let data_start = r.offset() - offset;
    let data: &'a [u8] = if template_name == "ima" {
        r.take(20).map_err(t("d"))?;
        let n = read_u32(&mut r, be).map_err(t("n length"))?;
        if n as usize >= LEGACY_NAME_PAD {
            return Err(inval(
                "n length",
                format!("{n} (the ima template allows at most 255)"),
            ));
        }
        r.take(u64::from(n)).map_err(t("n"))?;
        rest.get(data_start..r.offset() - offset).unwrap_or(&[])
    } else {
        let n = read_u32(&mut r, be).map_err(t("template data length"))?;
        r.take(u64::from(n)).map_err(t("template data"))?
    };
    if let Some(tpl) = &template {
        walk_fields(tpl, data, be, |_, _| {}).map_err(|reason| inval("template data", reason))?;
    }
    let template_hash = Digest::from_slice(th).unwrap_or(Digest::zero(0));
    let used = r.offset() - offset;
    Ok((
        ImaEntry {
            index,
            offset,
            len: used,
            pcr,
            template_hash,
            template_name,
            template,
            data: Cow::Borrowed(data),
            big_endian: be,
        },
        used,
    ))
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", b.len()));
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for (i, p) in b.chunks_exact(2).enumerate() {
        let v = |c: u8| (c as char).to_digit(16);
        match (v(p[0]), v(p[1])) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err(format!("not a hex digit at character {}", i * 2)),
        }
    }
    Ok(out)
}

fn push_field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encode one ASCII field value into its binary bytes (without the length prefix).
fn encode_ascii_field(f: Field, v: &str) -> Result<Vec<u8>, String> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match f.format() {
        FieldFormat::Digest | FieldFormat::Hex => hex_decode(v)?,
        FieldFormat::DigestWithAlgo => {
            let (prefix, hex) = v
                .rsplit_once(':')
                .ok_or_else(|| String::from("no algorithm prefix"))?;
            let mut out = Vec::with_capacity(prefix.len() + 2 + hex.len() / 2);
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(b":\0");
            out.extend_from_slice(&hex_decode(hex)?);
            out
        }
        FieldFormat::String => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
            out
        }
        FieldFormat::Uint(size) => {
            let n: u64 = v
                .parse()
                .map_err(|_| format!("not a decimal number: {v:?}"))?;
            let bytes = n.to_le_bytes();
            if bytes
                .get(size..)
                .is_some_and(|hi| hi.iter().any(|&b| b != 0))
            {
                return Err(format!("{n} does not fit {size} bytes"));
            }
            bytes.get(..size).unwrap_or(&[]).to_vec()
        }
    })
}

fn parse_ascii_line<'a>(
    line: &'a [u8],
    offset: usize,
    used: usize,
    lineno: usize,
    index: usize,
    alg: HashAlg,
) -> Result<ImaEntry<'a>, ImaError> {
    let err = |field: &'static str, reason: String| ImaError::Line {
        line: lineno,
        index,
        field,
        reason,
    };
    let text = core::str::from_utf8(line)
        .map_err(|e| err("line", format!("not UTF-8 at column {}", e.valid_up_to())))?;
    let mut head = text.splitn(4, ' ');
    let pcr_s = head.next().unwrap_or("");
    let hash_s = head
        .next()
        .ok_or_else(|| err("template hash", String::from("missing")))?;
    let template_name = head
        .next()
        .ok_or_else(|| err("template name", String::from("missing")))?;
    let rest = head.next().unwrap_or("");
    let pcr: u32 = pcr_s
        .parse()
        .map_err(|_| err("pcr", format!("not a decimal number: {pcr_s:?}")))?;
    let th = hex_decode(hash_s).map_err(|r| err("template hash", r))?;
    if th.len() != alg.size() {
        return Err(err(
            "template hash",
            format!(
                "{} bytes, the list uses {} ({} bytes)",
                th.len(),
                alg,
                alg.size()
            ),
        ));
    }
    let template_hash = Digest::from_slice(&th).unwrap_or(Digest::zero(0));
    let template = Template::from_name(template_name).ok_or_else(|| {
        err(
            "template name",
            format!("unknown template {template_name:?}"),
        )
    })?;
    let fields = template.fields();
    let mut values: Vec<&str> = rest.split(' ').collect();
    if values.len() < fields.len() {
        return Err(err(
            "template data",
            format!(
                "{} fields, template {template_name} has {}",
                values.len(),
                fields.len()
            ),
        ));
    }
    // Old kernels print names with spaces as is: fold the surplus into the first string field.
    if values.len() > fields.len() {
        let surplus = values.len() - fields.len();
        let Some(si) = fields
            .iter()
            .position(|f| f.format() == FieldFormat::String)
        else {
            return Err(err(
                "template data",
                format!(
                    "{} fields, template {template_name} has {}",
                    values.len(),
                    fields.len()
                ),
            ));
        };
        let start = values[..si].iter().map(|v| v.len() + 1).sum::<usize>();
        let len = values[si..=si + surplus]
            .iter()
            .map(|v| v.len() + 1)
            .sum::<usize>()
            - 1;
        let joined = rest.get(start..start + len).unwrap_or("");
        values.splice(si..=si + surplus, [joined]);
    }
    let mut data = Vec::with_capacity(line.len());
    if template.is_legacy() {
        let d = encode_ascii_field(Field::D, values[0]).map_err(|r| err("d", r))?;
        if d.len() != 20 {
            return Err(err("d", format!("{} bytes, must be 20", d.len())));
        }
        if values[1].len() >= LEGACY_NAME_PAD {
            return Err(err(
                "n",
                format!(
                    "{} bytes (the ima template allows at most 255)",
                    values[1].len()
                ),
            ));
        }
        data.extend_from_slice(&d);
        push_field(&mut data, values[1].as_bytes());
    } else {
        for (&f, v) in fields.iter().zip(&values) {
            let b = encode_ascii_field(f, v).map_err(|r| err(f.id(), r))?;
            push_field(&mut data, &b);
        }
    }
    Ok(ImaEntry {
        index,
        offset,
        len: used,
        pcr,
        template_hash,
        template_name,
        template: Some(template),
        data: Cow::Owned(data),
        big_endian: false,
    })
}

fn alg_for_size(n: usize) -> Option<HashAlg> {
    match n {
        20 => Some(HashAlg::Sha1),
        32 => Some(HashAlg::Sha256),
        48 => Some(HashAlg::Sha384),
        64 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// Work out the encoding and template-hash algorithm of a list.
pub fn detect(data: &[u8], opts: ParseOptions) -> Result<(ImaFormat, HashAlg), ImaError> {
    if data.iter().all(|c| c.is_ascii_whitespace()) {
        return Err(ImaError::Empty);
    }
    // An ASCII list starts with the decimal PCR and a space; a binary one with a u32 PCR, whose
    // bytes are never all digits for a real PCR index.
    let first_sp = data.iter().take(12).position(|&c| c == b' ');
    if let Some(p) = first_sp
        && p > 0
        && data
            .get(..p)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        let line = data.split(|&c| c == b'\n').next().unwrap_or(&[]);
        let hash_len = line
            .split(|&c| c == b' ')
            .nth(1)
            .map(|h| h.len() / 2)
            .unwrap_or(0);
        let alg = match opts.template_alg {
            Some(a) if a.size() == hash_len => a,
            Some(a) => {
                return Err(ImaError::WrongAlgorithm {
                    alg: a.name(),
                    reason: format!("the first template hash has {hash_len} bytes"),
                });
            }
            None => {
                let a = alg_for_size(hash_len).ok_or_else(|| {
                    ImaError::UnknownFormat(format!(
                        "line 1: template hash of {hash_len} bytes fits no algorithm"
                    ))
                })?;
                prefer_verifying(data, ImaFormat::Ascii, a)
            }
        };
        return Ok((ImaFormat::Ascii, alg));
    }
    let pcr_le = data
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let pcr_be = data
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let format = match (pcr_le, pcr_be) {
        (Some(le), _) if le < 64 => ImaFormat::BinaryLe,
        (_, Some(be)) if be < 64 => ImaFormat::BinaryBe,
        (None, _) => {
            return Err(ImaError::Truncated {
                index: 0,
                offset: 0,
                field: "pcr",
                at: 0,
                need: 4,
                have: data.len(),
            });
        }
        _ => {
            return Err(ImaError::UnknownFormat(String::from(
                "byte 0: neither a decimal PCR (ASCII) nor a PCR index below 64 (binary)",
            )));
        }
    };
    let be = format == ImaFormat::BinaryBe;
    if let Some(a) = opts.template_alg {
        return match parse_binary_entry(data, 0, 0, a, be) {
            Ok(_) => Ok((format, a)),
            Err(e) => Err(ImaError::WrongAlgorithm {
                alg: a.name(),
                reason: format!("{e}"),
            }),
        };
    }
    let mut first_err = None;
    let mut structural = None;
    for size in [20usize, 32, 48, 64] {
        let Some(a) = alg_for_size(size) else {
            continue;
        };
        match parse_binary_entry(data, 0, 0, a, be) {
            Ok((e, _)) => {
                let a = prefer_verifying(data, format, a);
                if e.is_violation() || e.template_hash_in(a) == e.template_hash {
                    return Ok((format, a));
                }
                structural.get_or_insert(a);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (structural, first_err) {
        (Some(a), _) => Ok((format, a)),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ImaError::Empty),
    }
}

/// Between sha256 and sm3 (both 32 bytes), the one that verifies the first non-violation entry.
fn prefer_verifying(data: &[u8], format: ImaFormat, a: HashAlg) -> HashAlg {
    if a != HashAlg::Sha256 {
        return a;
    }
    for e in ImaParser::with_format(data, format, a).take(16) {
        let Ok(e) = e else { break };
        if e.is_violation() {
            continue;
        }
        if e.template_hash_in(a) != e.template_hash
            && e.template_hash_in(HashAlg::Sm3) == e.template_hash
        {
            return HashAlg::Sm3;
        }
        break;
    }
    a
}

/// A parsed list, for callers that want every entry at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaList<'a> {
    /// Encoding.
    pub format: ImaFormat,
    /// Template-hash algorithm.
    pub template_alg: HashAlg,
    /// Entries in order.
    pub entries: Vec<ImaEntry<'a>>,
}

impl<'a> ImaList<'a> {
    /// Parse a whole list.
    pub fn parse(data: &'a [u8], opts: ParseOptions) -> Result<Self, ImaError> {
        let p = ImaParser::new(data, opts)?;
        let (format, template_alg) = (p.format(), p.template_alg());
        let entries = p.collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            format,
            template_alg,
            entries,
        })
    }
}

/// A logged template hash that is not the hash of the entry's template data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMismatch {
    /// Entry index.
    pub index: usize,
    /// Byte offset of the entry.
    pub offset: usize,
    /// Hash in the list.
    pub logged: Digest,
    /// Hash of the template data.
    pub computed: Digest,
}

/// PCR values per bank: `{bank: {pcr: value}}`.
pub type PcrBanks = BTreeMap<HashAlg, BTreeMap<u32, Digest>>;

/// The boot_aggregate entry of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootAggregate {
    /// Entry index.
    pub index: usize,
    /// Hash algorithm of the digest.
    pub alg: HashAlg,
    /// The digest.
    pub digest: Digest,
}

/// Result of replaying a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaReplay {
    /// Encoding of the list.
    pub format: ImaFormat,
    /// Template-hash algorithm.
    pub template_alg: HashAlg,
    /// Number of entries.
    pub entries: usize,
    /// Number of violations (zero template hash, extended as all-0xFF).
    pub violations: usize,
    /// Number of template-hash mismatches.
    pub template_hash_mismatches: usize,
    /// The first [`MAX_MISMATCH_DETAILS`] mismatches.
    pub mismatch_details: Vec<TemplateMismatch>,
    /// Final PCR values of every requested bank, for every PCR the list extends (and every PCR
    /// of the starting values).
    pub pcrs: PcrBanks,
    /// The boot_aggregate entry, if the list has one.
    pub boot_aggregate: Option<BootAggregate>,
    /// Template hash of the first entry.
    pub first_template_hash: Option<Digest>,
    /// Template hash of the last entry.
    pub last_template_hash: Option<Digest>,
    /// Byte offset just past the last entry replayed (where a snapshot cut puts the remainder).
    pub end_offset: usize,
}

impl ImaReplay {
    /// The replay of no entries: nothing extended yet.
    pub fn empty(format: ImaFormat, template_alg: HashAlg) -> Self {
        Self {
            format,
            template_alg,
            entries: 0,
            violations: 0,
            template_hash_mismatches: 0,
            mismatch_details: Vec::new(),
            pcrs: BTreeMap::new(),
            boot_aggregate: None,
            first_template_hash: None,
            last_template_hash: None,
            end_offset: 0,
        }
    }
}

/// Replay a whole list into `banks`, starting each PCR from `start` (a snapshot) or zero.
///
/// Each bank re-hashes the template data with its own algorithm; a violation extends all-0xFF.
/// Stops after `limit` entries if given.
pub fn replay(
    data: &[u8],
    opts: ParseOptions,
    banks: &[HashAlg],
    start: Option<&PcrBanks>,
    limit: Option<usize>,
) -> Result<ImaReplay, ImaError> {
    let mut parser = ImaParser::new(data, opts)?;
    replay_parser(&mut parser, banks, start, limit)
}

/// Lists smaller than this are replayed on one thread: spawning costs more than it saves.
#[cfg(feature = "std")]
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// [`replay`] over an already positioned parser; `parser` ends after the last entry replayed.
///
/// With the `std` feature, banks of a large list are replayed on parallel threads (each bank's
/// chain is independent); the result is the same as on one thread.
pub fn replay_parser(
    parser: &mut ImaParser<'_>,
    banks: &[HashAlg],
    start: Option<&PcrBanks>,
    limit: Option<usize>,
) -> Result<ImaReplay, ImaError> {
    let mut uniq: Vec<HashAlg> = Vec::new();
    for &b in banks {
        if !uniq.contains(&b) {
            uniq.push(b);
        }
    }
    #[cfg(feature = "std")]
    {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(uniq.len());
        if threads > 1 && parser.data.len().saturating_sub(parser.pos) >= PARALLEL_MIN_BYTES {
            return replay_parallel(parser, &uniq, threads, start, limit);
        }
    }
    replay_chain(parser, &uniq, start, limit, true)
}

/// Deal `banks` round-robin over `threads` groups, the template's own bank first (it goes to
/// the first group, which also checks the template hashes).
#[cfg(feature = "std")]
fn bank_groups(banks: &[HashAlg], template: HashAlg, threads: usize) -> Vec<Vec<HashAlg>> {
    let ordered = banks
        .iter()
        .filter(|b| **b == template)
        .chain(banks.iter().filter(|b| **b != template));
    let mut groups: Vec<Vec<HashAlg>> = alloc::vec![Vec::new(); threads.max(1)];
    let n = groups.len();
    for (i, b) in ordered.enumerate() {
        if let Some(g) = groups.get_mut(i % n) {
            g.push(*b);
        }
    }
    groups
}

/// Split `banks` over `threads` threads. The calling thread takes the group holding the
/// template-hash bank (if requested) and does the verification; the others only extend.
#[cfg(feature = "std")]
fn replay_parallel(
    parser: &mut ImaParser<'_>,
    banks: &[HashAlg],
    threads: usize,
    start: Option<&PcrBanks>,
    limit: Option<usize>,
) -> Result<ImaReplay, ImaError> {
    let groups = bank_groups(banks, parser.template_alg(), threads);
    let (main, others) = groups.split_first().ok_or(ImaError::Empty)?;
    std::thread::scope(|s| {
        let handles: Vec<_> = others
            .iter()
            .map(|g| {
                let mut p = parser.clone();
                s.spawn(move || replay_chain(&mut p, g, start, limit, false))
            })
            .collect();
        let mut out = replay_chain(parser, main, start, limit, true)?;
        for h in handles {
            // A worker parses the same bytes as the main thread, so it fails only where the main
            // thread already did; a panic cannot happen, but is reported rather than propagated.
            let r = h.join().map_err(|_| {
                ImaError::UnknownFormat(String::from("replay worker thread failed"))
            })??;
            out.pcrs.extend(r.pcrs);
        }
        Ok(out)
    })
}

fn replay_chain(
    parser: &mut ImaParser<'_>,
    uniq: &[HashAlg],
    start: Option<&PcrBanks>,
    limit: Option<usize>,
    verify: bool,
) -> Result<ImaReplay, ImaError> {
    let mut rp = Replayer::new(parser.format(), parser.template_alg(), uniq, start, verify);
    rp.out.end_offset = parser.offset();
    let limit = limit.unwrap_or(usize::MAX);
    while rp.out.entries < limit {
        let Some(e) = parser.next() else { break };
        rp.push(&e?);
    }
    Ok(rp.finish())
}

/// Replay state, fed one entry at a time by the in-memory and the streaming paths.
struct Replayer {
    talg: HashAlg,
    verify: bool,
    /// PCR values per bank in small vectors: a list touches one or two PCRs.
    state: Vec<(HashAlg, Vec<(u32, Digest)>)>,
    out: ImaReplay,
}

impl Replayer {
    fn new(
        format: ImaFormat,
        talg: HashAlg,
        banks: &[HashAlg],
        start: Option<&PcrBanks>,
        verify: bool,
    ) -> Self {
        let state = banks
            .iter()
            .map(|&b| {
                let init = start
                    .and_then(|s| s.get(&b))
                    .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect());
                (b, init.unwrap_or_default())
            })
            .collect();
        let out = ImaReplay::empty(format, talg);
        Self {
            talg,
            verify,
            state,
            out,
        }
    }

    fn push(&mut self, e: &ImaEntry<'_>) {
        let (talg, out) = (self.talg, &mut self.out);
        out.entries += 1;
        out.end_offset = e.offset + e.len;
        out.first_template_hash.get_or_insert(e.template_hash);
        out.last_template_hash = Some(e.template_hash);
        let violation = e.is_violation();
        let mut own = None;
        if violation {
            out.violations += 1;
        } else if self.verify {
            let computed = e.template_hash_in(talg);
            if computed != e.template_hash {
                out.template_hash_mismatches += 1;
                if out.mismatch_details.len() < MAX_MISMATCH_DETAILS {
                    out.mismatch_details.push(TemplateMismatch {
                        index: e.index,
                        offset: e.offset,
                        logged: e.template_hash,
                        computed,
                    });
                }
            }
            own = Some(computed);
        }
        // The kernel logs the boot_aggregate first; looking only there keeps field splitting out of
        // the hot loop.
        if out.entries == 1
            && e.file_name() == Some(b"boot_aggregate".as_slice())
            && let Some(fd) = e.file_digest()
            && let (Some(alg), Some(digest)) = (fd.alg(), Digest::from_slice(fd.digest))
        {
            out.boot_aggregate = Some(BootAggregate {
                index: e.index,
                alg,
                digest,
            });
        }
        for (alg, pcrs) in &mut self.state {
            let value = if violation {
                Digest::ones(alg.size())
            } else if *alg == talg
                && let Some(c) = own
            {
                c
            } else {
                e.template_hash_in(*alg)
            };
            match pcrs.iter_mut().find(|(p, _)| *p == e.pcr) {
                Some((_, cur)) => *cur = extend(*alg, cur, &value),
                None => pcrs.push((e.pcr, extend(*alg, &alg.null_id(), &value))),
            }
        }
    }

    fn finish(mut self) -> ImaReplay {
        for (alg, pcrs) in self.state {
            self.out.pcrs.insert(alg, pcrs.into_iter().collect());
        }
        self.out
    }
}

/// Window size of the streaming replay: large enough that refills are rare, small enough that a
/// list of any length is replayed in bounded memory.
#[cfg(feature = "std")]
const STREAM_CHUNK: usize = 1 << 20;

/// Replay a list read from `src` (of known format and algorithm) through a bounded window, so
/// that a list of any size needs memory for its largest entry only. Offsets, indices and lines in
/// errors and results are those of the whole stream.
#[cfg(feature = "std")]
pub fn replay_read<R: std::io::Read>(
    src: R,
    format: ImaFormat,
    alg: HashAlg,
    banks: &[HashAlg],
    verify: bool,
) -> Result<ImaReplay, ImaError> {
    replay_read_window(src, format, alg, banks, verify, STREAM_CHUNK)
}

/// [`replay_read`] with a window of `window` bytes to start with (it grows to fit an entry).
#[cfg(feature = "std")]
pub fn replay_read_window<R: std::io::Read>(
    mut src: R,
    format: ImaFormat,
    alg: HashAlg,
    banks: &[HashAlg],
    verify: bool,
    window: usize,
) -> Result<ImaReplay, ImaError> {
    let io = |e: std::io::Error| ImaError::Io(alloc::format!("{e}"));
    let mut want = window.max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(want);
    let (mut base, mut index, mut line) = (0usize, 0usize, 0usize);
    let mut eof = false;
    let mut rp = Replayer::new(format, alg, banks, None, verify);
    loop {
        while !eof && buf.len() < want {
            let old = buf.len();
            buf.resize(want, 0);
            let n = src.read(buf.get_mut(old..).unwrap_or(&mut [])).map_err(io);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    buf.truncate(old);
                    return Err(e);
                }
            };
            buf.truncate(old + n);
            eof = n == 0;
        }
        let mut p = ImaParser {
            base,
            index,
            line,
            partial: !eof,
            ..ImaParser::with_format(&buf, format, alg)
        };
        loop {
            match p.next() {
                None => break,
                Some(Ok(e)) => rp.push(&e),
                // The window ends inside this entry: read more and parse it again.
                Some(Err(ImaError::Truncated { .. })) if !eof => break,
                Some(Err(e)) => return Err(e),
            }
        }
        let used = p.pos;
        (index, line) = (p.index, p.line);
        if eof {
            break;
        }
        if used == 0 && buf.len() >= want {
            // One entry is larger than the window; the bytes are really there, so grow.
            want = want.saturating_mul(2);
        }
        buf.drain(..used);
        base += used;
    }
    Ok(rp.finish())
}

/// [`detect`] on the first few MiB of the file at `path`.
#[cfg(feature = "std")]
pub fn detect_path(
    path: &std::path::Path,
    opts: ParseOptions,
) -> Result<(ImaFormat, HashAlg), ImaError> {
    use std::io::Read as _;
    let io = |e: std::io::Error| ImaError::Io(alloc::format!("{}: {e}", path.display()));
    let mut head = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(4 * STREAM_CHUNK as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    detect(&head, opts)
}

/// Replay the list in the file at `path` without holding it in memory: the banks are split over
/// threads, each streaming the file with [`replay_read`]. A list that grows while it is read (a
/// live securityfs file) gives threads different entry counts; that is reported as
/// [`ImaError::Io`], and the caller should read the file once and use [`replay`].
#[cfg(feature = "std")]
pub fn replay_path(
    path: &std::path::Path,
    opts: ParseOptions,
    banks: &[HashAlg],
) -> Result<ImaReplay, ImaError> {
    let io = |e: std::io::Error| ImaError::Io(alloc::format!("{}: {e}", path.display()));
    let (format, alg) = detect_path(path, opts)?;
    let mut uniq: Vec<HashAlg> = Vec::new();
    for &b in banks {
        if !uniq.contains(&b) {
            uniq.push(b);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(uniq.len())
        .max(1);
    let groups = bank_groups(&uniq, alg, threads);
    let (main, others) = groups.split_first().ok_or(ImaError::Empty)?;
    std::thread::scope(|s| {
        let handles: Vec<_> = others
            .iter()
            .map(|g| {
                s.spawn(move || {
                    let f = std::fs::File::open(path).map_err(io)?;
                    replay_read(f, format, alg, g, false)
                })
            })
            .collect();
        let f = std::fs::File::open(path).map_err(io)?;
        let mut out = replay_read(f, format, alg, main, true)?;
        for h in handles {
            let r = h
                .join()
                .map_err(|_| ImaError::Io(String::from("replay worker thread failed")))??;
            if r.entries != out.entries {
                return Err(ImaError::Io(alloc::format!(
                    "{}: the list changed while it was read ({} and {} entries)",
                    path.display(),
                    out.entries,
                    r.entries
                )));
            }
            out.pcrs.extend(r.pcrs);
        }
        Ok(out)
    })
}

/// Outcome of checking a boot_aggregate against an event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootAggregateCheck {
    /// `Some(true)` if it matches, `Some(false)` if it does not (or cannot be shown to),
    /// `None` if the list has no boot_aggregate entry.
    pub ok: Option<bool>,
    /// Which variant matched or why it failed.
    pub detail: String,
}

/// Check a list's boot_aggregate against a replayed event log. The kernel hashes PCRs 0–7 for
/// SHA-1 and, since 5.8, PCRs 0–9 for other banks; older kernels hash 0–7 in every bank, so both
/// variants are accepted.
pub fn check_boot_aggregate(
    ba: Option<&BootAggregate>,
    log: &eventlog::Replay,
) -> BootAggregateCheck {
    let Some(ba) = ba else {
        return BootAggregateCheck {
            ok: None,
            detail: String::from("the list has no boot_aggregate entry"),
        };
    };
    if !log.banks.contains(&ba.alg) {
        return BootAggregateCheck {
            ok: Some(false),
            detail: format!(
                "the event log has no {} bank to check the boot_aggregate against",
                ba.alg.bank_name()
            ),
        };
    }
    let pcrs = log.pcr_values(ba.alg, 10);
    let a8 = hardware_aggregate(ba.alg, pcrs.get(..8).unwrap_or(&[]));
    let a10 = hardware_aggregate(ba.alg, &pcrs);
    if a8 == ba.digest {
        BootAggregateCheck {
            ok: Some(true),
            detail: format!("{} over PCR 0-7", ba.alg),
        }
    } else if a10 == ba.digest {
        BootAggregateCheck {
            ok: Some(true),
            detail: format!("{} over PCR 0-9", ba.alg),
        }
    } else {
        BootAggregateCheck {
            ok: Some(false),
            detail: format!(
                "boot_aggregate {} is neither {} (PCR 0-7) nor {} (PCR 0-9)",
                ba.digest, a8, a10
            ),
        }
    }
}

/// The TSEM-style order-invariant state of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImaState {
    /// Hash algorithm (the list's template-hash algorithm).
    pub alg: HashAlg,
    /// Number of entries.
    pub entries: usize,
    /// Number of distinct template hashes.
    pub unique: usize,
    /// The state.
    pub state: Digest,
}

/// The order-invariant state over the list's unique template hashes, computed with
/// [`tsem_core::state::state_of`] from `base` and `aggregate` (zero if not given).
pub fn state(
    data: &[u8],
    opts: ParseOptions,
    base: Option<Digest>,
    aggregate: Option<Digest>,
) -> Result<ImaState, ImaError> {
    let parser = ImaParser::new(data, opts)?;
    let alg = parser.template_alg();
    let mut points = Vec::new();
    for e in parser {
        points.push(e?.template_hash);
    }
    let entries = points.len();
    let base = base.unwrap_or_else(|| alg.null_id());
    let aggregate = aggregate.unwrap_or_else(|| alg.null_id());
    let state = state_of(alg, &base, &aggregate, &mut points);
    points.dedup();
    Ok(ImaState {
        alg,
        entries,
        unique: points.len(),
        state,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ng_entry(name: &str, file: &[u8]) -> (Vec<u8>, String) {
        let fd = HashAlg::Sha256.digest(file);
        let mut d = b"sha256:\0".to_vec();
        d.extend_from_slice(fd.as_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        let mut data = Vec::new();
        push_field(&mut data, &d);
        push_field(&mut data, &n);
        let th = HashAlg::Sha1.digest(&data);
        let mut bin = Vec::new();
        bin.extend_from_slice(&10u32.to_le_bytes());
        bin.extend_from_slice(th.as_bytes());
        bin.extend_from_slice(&6u32.to_le_bytes());
        bin.extend_from_slice(b"ima-ng");
        bin.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bin.extend_from_slice(&data);
        let ascii = format!("10 {th} ima-ng sha256:{fd} {name}\n");
        (bin, ascii)
    }

    #[test]
    fn binary_and_ascii_agree() {
        let (b1, a1) = ng_entry("boot_aggregate", b"x");
        let (b2, a2) = ng_entry("/usr/bin/with space", b"y");
        let bin = [b1, b2].concat();
        let ascii = format!("{a1}{a2}");
        let rb = replay(
            &bin,
            ParseOptions::default(),
            &[HashAlg::Sha1, HashAlg::Sha256],
            None,
            None,
        )
        .unwrap();
        let ra = replay(
            ascii.as_bytes(),
            ParseOptions::default(),
            &[HashAlg::Sha1, HashAlg::Sha256],
            None,
            None,
        )
        .unwrap();
        assert_eq!(rb.format, ImaFormat::BinaryLe);
        assert_eq!(ra.format, ImaFormat::Ascii);
        assert_eq!(rb.template_alg, HashAlg::Sha1);
        assert_eq!(rb.template_hash_mismatches, 0);
        assert_eq!(ra.template_hash_mismatches, 0);
        assert_eq!(rb.pcrs, ra.pcrs);
        assert_eq!(rb.boot_aggregate.unwrap().alg, HashAlg::Sha256);
        let list = ImaList::parse(ascii.as_bytes(), ParseOptions::default()).unwrap();
        assert_eq!(
            list.entries[1].file_name(),
            Some(b"/usr/bin/with space".as_slice())
        );
    }

    #[test]
    fn violation_extends_ones() {
        let mut data = Vec::new();
        let mut d = b"sha1:\0".to_vec();
        d.extend_from_slice(&[0; 20]);
        push_field(&mut data, &d);
        push_field(&mut data, b"/tmp/x\0");
        let ascii = format!(
            "10 {} ima-ng sha1:{} /tmp/x\n",
            "0".repeat(40),
            "0".repeat(40)
        );
        let r = replay(
            ascii.as_bytes(),
            ParseOptions::default(),
            &[HashAlg::Sha256],
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.violations, 1);
        let want = extend(
            HashAlg::Sha256,
            &HashAlg::Sha256.null_id(),
            &Digest::ones(32),
        );
        assert_eq!(r.pcrs[&HashAlg::Sha256][&10], want);
    }

    #[test]
    fn legacy_ima_template_hash() {
        let d = [7u8; 20];
        let name = b"/init";
        let mut padded = d.to_vec();
        padded.extend_from_slice(name);
        padded.resize(20 + 256, 0);
        let th = HashAlg::Sha1.digest(&padded);
        let mut bin = Vec::new();
        bin.extend_from_slice(&10u32.to_le_bytes());
        bin.extend_from_slice(th.as_bytes());
        bin.extend_from_slice(&3u32.to_le_bytes());
        bin.extend_from_slice(b"ima");
        bin.extend_from_slice(&d);
        bin.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bin.extend_from_slice(name);
        let r = replay(&bin, ParseOptions::default(), &[HashAlg::Sha1], None, None).unwrap();
        assert_eq!(r.template_hash_mismatches, 0);
        let ascii = format!("10 {th} ima {} /init\n", Digest::from_slice(&d).unwrap());
        let ra = replay(
            ascii.as_bytes(),
            ParseOptions::default(),
            &[HashAlg::Sha1],
            None,
            None,
        )
        .unwrap();
        assert_eq!(ra.template_hash_mismatches, 0);
        assert_eq!(ra.pcrs, r.pcrs);
    }

    #[test]
    fn errors_name_location() {
        let (b1, _) = ng_entry("a", b"x");
        match replay(
            &b1[..b1.len() - 2],
            ParseOptions::default(),
            &[HashAlg::Sha1],
            None,
            None,
        ) {
            Err(ImaError::Truncated {
                index: 0,
                offset: 0,
                field: "template data",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let bad = "10 zz ima-ng sha1:00 x\n";
        assert!(matches!(
            replay(
                bad.as_bytes(),
                ParseOptions::default(),
                &[HashAlg::Sha1],
                None,
                None
            ),
            Err(ImaError::UnknownFormat(_)) | Err(ImaError::Line { .. })
        ));
        assert_eq!(detect(b"", ParseOptions::default()), Err(ImaError::Empty));
    }
}
