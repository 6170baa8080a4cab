//! # tsem-format
//!
//! The interchange formats of TSEM and Quixote: JSON event descriptions (export records and
//! trajectory/forensics lines, v3 and post-v4 shapes), and Quixote security model files with their
//! RSA signatures (plus an Ed25519 signature of our own). Parsers are strict and report the line,
//! byte offset and field of anything they reject; they never panic on any input. Event records
//! are read and written as bytes: kernel strings are the kernel's bytes (docs/raw-bytes.md).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod event_json;
pub mod explain;
mod fields;
pub mod json;
pub mod lines;
pub mod model_file;

pub use event_json::{
    Parsed, Record, RecordError, RecordKind, RecordParser, Strictness, event_to_json, parse_event,
    parse_record, write_event, write_event_json,
};
pub use model_file::{ModelError, ModelFile};
