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

mod entry;
mod replay;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

pub use entry::*;
pub use replay::*;
