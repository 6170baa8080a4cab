//! # tsem-evidence
//!
//! Measured-boot and integrity evidence for tsem: TCG PC Client platform firmware event logs (SHA1
//! legacy and crypto-agile), IMA measurement lists (binary and ASCII, every kernel template),
//! their PCR replay, the TSEM hardware aggregate, the IMA boot_aggregate check, the order-invariant
//! TSEM state of a list, and list snapshots.
//!
//! Every parser takes untrusted bytes: it never panics, never allocates on the say-so of a length
//! field without checking it against the input, borrows from the input where it can, and names the
//! byte offset (or line), record index and field of anything it rejects.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod devpath;
pub mod efi;
pub mod eventlog;
pub mod ima;
pub mod payload;
mod reader;
pub mod snapshot;
pub mod template;

pub use eventlog::{EventLog, EventLogError};
pub use ima::{ImaError, ImaList, ParseOptions};
pub use snapshot::{Snapshot, SnapshotError};

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A TCG event log problem.
    #[error("event log: {0}")]
    EventLog(#[from] EventLogError),
    /// An IMA measurement list problem.
    #[error("IMA list: {0}")]
    Ima(#[from] ImaError),
    /// A snapshot problem.
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}
