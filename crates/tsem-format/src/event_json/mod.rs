//! TSEM JSON event descriptions: export records and trajectory/forensics lines, v3 and post-v4
//! shapes (spec §1.4, §5.3), parsed strictly into [`tsem_core::event::Event`] and emitted in the
//! kernel's own form.
//!
//! Lines are bytes, not text: the kernel prints strings with `%s`, so a pathname or a comm comes
//! as the kernel's bytes (invalid UTF-8, raw tabs and all) and goes back out byte for byte
//! ([`write_event`]). [`Strictness::Json`] and [`write_event_json`] are strict RFC 8259 for files
//! we write ourselves. The rule is in docs/raw-bytes.md.

use tsem_core::event::Event;
use tsem_core::hash::Digest;
use tsem_core::raw::RawStr;

use crate::fields::{Fields, Obj, Scan};
pub use crate::json::Strictness;
use crate::json::{Document, SyntaxError};

/// Why a record was rejected: a syntax error, or a field that is missing, unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The line is not well-formed JSON of the TSEM kind.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A field is wrong; `field` is its dotted path (e.g. `file_open.file.inode.mode`).
    #[error("field `{field}`: {msg}")]
    Field {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
}

impl RecordError {
    pub(crate) fn field(field: &str, msg: impl Into<String>) -> Self {
        Self::Field {
            field: field.to_string(),
            msg: msg.into(),
        }
    }
    /// Prefix the field path with the enclosing object's key.
    fn inside(self, parent: &str) -> Self {
        match self {
            Self::Field { field, msg } => Self::Field {
                field: format!("{parent}.{field}"),
                msg,
            },
            other => other,
        }
    }
}

type R<T> = Result<T, RecordError>;

/// Which export record (or plain trajectory line) an event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A trajectory or forensics line: no `export` wrapper.
    Trajectory,
    /// `{"export": {"type": "event"}, ...}`: the task waits for a verdict.
    Event,
    /// `{"export": {"type": "async_event"}, ...}`: atomic context, nobody waits.
    AsyncEvent,
    /// `{"export": {"type": "log"}, ...}` carrying a full description (post-v4).
    Log,
}

/// A `log` record in the v3 shape: an already-untrusted task's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The task's comm (the kernel's bytes).
    pub process: RawStr,
    /// Event name.
    pub event: String,
    /// `LOG` or `DENY`.
    pub action: String,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // events are the common case; boxing them costs an allocation per line
pub enum Record {
    /// An event description.
    Event {
        /// How it arrived.
        kind: RecordKind,
        /// The description.
        event: Event,
    },
    /// `{"export": {"type": "aggregate"}, "aggregate": {"value": HEX}}`.
    Aggregate(Digest),
    /// A v3 log record without a description.
    Log(LogRecord),
}

/// One line read by [`RecordParser::parse_into`]: an event, whose description was written into
/// the caller's slot, or another record. An event is ~600 bytes: returned inside a [`Record`] it
/// was copied a dozen times on its way from the parser to replay's batch (a seventh of replay's
/// time); written into a slot, each part is moved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An event description, now in the slot.
    Event(RecordKind),
    /// `{"export": {"type": "aggregate"}, "aggregate": {"value": HEX}}`.
    Aggregate(Digest),
    /// A v3 log record without a description.
    Log(LogRecord),
}

impl Parsed {
    /// The record, with `event` (the slot) as its description if it is one.
    pub fn into_record(self, event: Event) -> Record {
        match self {
            Parsed::Event(kind) => Record::Event { kind, event },
            Parsed::Aggregate(a) => Record::Aggregate(a),
            Parsed::Log(l) => Record::Log(l),
        }
    }
}

/// A placeholder description: a slot for [`RecordParser::parse_into`] to write into.
pub fn blank_event() -> Event {
    use tsem_core::event::{Coe, EventHeader, EventType};
    Event {
        header: EventHeader::new(
            RawStr::default(),
            EventType::SocketCreate,
            Digest::zero(0),
            Digest::zero(0),
        ),
        coe: Coe::default(),
        cell: tsem_core::event::Cell::SocketCreate {
            family: 0,
            sock_type: 0,
            protocol: 0,
            kern: 0,
        },
    }
}

/// A reusable line parser: keeps its buffers between lines.
#[derive(Debug, Default)]
pub struct RecordParser {
    doc: Option<Document<'static>>,
    strictness: Strictness,
}

impl RecordParser {
    /// A parser with empty buffers that reads lines as the kernel writes them.
    pub fn new() -> Self {
        Self::with_strictness(Strictness::Kernel)
    }

    /// A parser with empty buffers and the given strictness.
    pub fn with_strictness(strictness: Strictness) -> Self {
        Self {
            doc: Some(Document::new()),
            strictness,
        }
    }

    /// Parse one line (an export record or a trajectory line), given without its newline.
    pub fn parse<L: AsRef<[u8]> + ?Sized>(&mut self, line: &L) -> R<Record> {
        let mut event = blank_event();
        let p = self.parse_into(line, &mut event)?;
        Ok(p.into_record(event))
    }

    /// Parse one line; an event's description is written into `slot` (reused from line to line,
    /// see [`Parsed`]). On an error `slot` holds no meaningful description.
    pub fn parse_into<L: AsRef<[u8]> + ?Sized>(&mut self, line: &L, slot: &mut Event) -> R<Parsed> {
        let mut doc = self.doc.take().unwrap_or_default().recycle();
        let r = parse_with(&mut doc, line.as_ref(), self.strictness, slot);
        self.doc = Some(doc.recycle());
        r
    }

    /// Parse one line that must be an event description.
    pub fn parse_event<L: AsRef<[u8]> + ?Sized>(&mut self, line: &L) -> R<Event> {
        event_only(self.parse(line)?)
    }
}

/// Parse one line (an export record or a trajectory line) as the kernel writes it.
pub fn parse_record<L: AsRef<[u8]> + ?Sized>(line: &L) -> R<Record> {
    let mut event = blank_event();
    let p = parse_with(
        &mut Document::new(),
        line.as_ref(),
        Strictness::Kernel,
        &mut event,
    )?;
    Ok(p.into_record(event))
}

fn event_only(r: Record) -> R<Event> {
    match r {
        Record::Event { event, .. } => Ok(event),
        Record::Aggregate(_) => Err(RecordError::field(
            "export.type",
            "an aggregate record, not an event",
        )),
        Record::Log(_) => Err(RecordError::field(
            "export.type",
            "a log record without an event description",
        )),
    }
}

/// Read a line in place ([`Scan`]); when that cannot prove its result, or the line is not in the
/// kernel's form, tokenize it and read the members ([`Obj`]), which gives the same record, or
/// the error with its field and offset.
fn parse_with<'a>(
    doc: &mut Document<'a>,
    line: &'a [u8],
    strictness: Strictness,
    slot: &mut Event,
) -> R<Parsed> {
    if strictness == Strictness::Kernel
        && let Some(r) = parse_in_place(line, slot)
    {
        return Ok(r);
    }
    parse_tokenized(doc, line, strictness, slot)
}

/// The fast path alone: `None` where it gives up.
fn parse_in_place(line: &[u8], slot: &mut Event) -> Option<Parsed> {
    let pos = std::cell::Cell::new(0);
    let mut root = Scan::root(line, &pos)?;
    let r = parse_root(&mut root, slot).ok()?;
    Scan::at_end(line, &pos).then_some(r)
}

/// The reference reader: tokenize the whole line, then read its members.
fn parse_tokenized<'a>(
    doc: &mut Document<'a>,
    line: &'a [u8],
    strictness: Strictness,
    slot: &mut Event,
) -> R<Parsed> {
    doc.parse_with(line, strictness)?;
    let doc = &*doc;
    parse_root(&mut Obj::new(doc, doc.root()), slot)
}

/// Lines compared by the property tests: the in-place reader alone and the reference reader
/// alone. Not an API.
#[doc(hidden)]
pub mod reference {
    use super::*;

    /// [`parse_record`] through the fast path only: `None` where it gives up.
    pub fn parse_in_place_only(line: &[u8]) -> Option<Record> {
        let mut event = blank_event();
        let p = parse_in_place(line, &mut event)?;
        Some(p.into_record(event))
    }

    /// [`parse_record`] through the tokenizing reader only.
    pub fn parse_tokenized_only(line: &[u8], strictness: Strictness) -> R<Record> {
        let mut event = blank_event();
        let p = parse_tokenized(&mut Document::new(), line, strictness, &mut event)?;
        Ok(p.into_record(event))
    }
}

fn parse_root<'a, O: Fields<'a>>(root: &mut O, slot: &mut Event) -> R<Parsed> {
    let kind = match root.opt_obj("export")? {
        None => RecordKind::Trajectory,
        Some(mut export) => {
            let t = export.text("type").map_err(|e| e.inside("export"))?;
            export.finish().map_err(|e| e.inside("export"))?;
            match &*t {
                "event" => RecordKind::Event,
                "async_event" => RecordKind::AsyncEvent,
                "aggregate" => {
                    let mut agg = root.obj("aggregate")?;
                    let v = agg.digest("value").map_err(|e| e.inside("aggregate"))?;
                    agg.finish().map_err(|e| e.inside("aggregate"))?;
                    root.finish()?;
                    return Ok(Parsed::Aggregate(v));
                }
                "log" => {
                    if root.has("event")? {
                        RecordKind::Log
                    } else {
                        let mut log = root.obj("log")?;
                        let rec = LogRecord {
                            process: log.raw("process").map_err(|e| e.inside("log"))?,
                            event: log.text("event").map_err(|e| e.inside("log"))?.into_owned(),
                            action: log
                                .text("action")
                                .map_err(|e| e.inside("log"))?
                                .into_owned(),
                        };
                        log.finish().map_err(|e| e.inside("log"))?;
                        root.finish()?;
                        return Ok(Parsed::Log(rec));
                    }
                }
                other => {
                    return Err(RecordError::field(
                        "export.type",
                        format!("unknown export type {other:?}"),
                    ));
                }
            }
        }
    };
    if kind == RecordKind::Log {
        // A post-v4 log record may repeat the v3 summary next to the description.
        root.ignore_obj("log")?;
    }
    parse_event_members(root, slot)?;
    Ok(Parsed::Event(kind))
}

/// Parse one line that must be an event description (trajectory, forensics or event export).
pub fn parse_event<L: AsRef<[u8]> + ?Sized>(line: &L) -> R<Event> {
    event_only(parse_record(line)?)
}

/// The description's three parts, each written into `slot` as it is read.
fn parse_event_members<'a, O: Fields<'a>>(root: &mut O, slot: &mut Event) -> R<()> {
    let mut ev = root.obj("event")?;
    slot.header = parse_header(&mut ev).map_err(|e| e.inside("event"))?;
    let mut coe_obj = root.obj("COE")?;
    slot.coe = parse_coe(&mut coe_obj).map_err(|e| e.inside("COE"))?;
    let event_type = slot.header.event_type;
    let name = event_type.name();
    let mut cell_obj = root.obj(name)?;
    slot.cell = parse_cell(event_type, &mut cell_obj).map_err(|e| e.inside(name))?;
    root.finish()
}

mod parse;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod write;

pub use parse::parse_num;
use parse::{parse_cell, parse_coe, parse_header};
pub use write::{event_to_json, write_event, write_event_json};
