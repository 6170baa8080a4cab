//! The live side of a `tsem run`.
//!
//! - [`mirror`]: a copy of the modeling namespace that the notification thread keeps current
//!   after each event (a few counter copies; descriptions are cloned only for new points), so
//!   that questions asked while the workload runs never wait on, or slow, the modeling.
//! - [`server`] and [`client`]: the control socket of a named run (`tsem run --name`), one per
//!   run under the user's runtime directory ([`paths`]), reachable only by its owner and never by
//!   a task of the workload; [`protocol`] is what they say to each other.
//! - [`export`]: every event description streamed as TSEM export records (spec §5.3) to a file,
//!   a Unix socket or an MQTT broker ([`mqtt`]), through a bounded queue so that a slow or dead
//!   consumer never holds up a verdict; what it cannot take is counted as lost.

// Every `unsafe` block says why it is sound (`// SAFETY:`).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod client;
pub mod export;
pub mod mirror;
pub mod mqtt;
pub mod paths;
pub mod protocol;
pub mod server;
