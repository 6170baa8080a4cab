//! # tsem-verifier
//!
//! A fleet verifier for tsem attestations: it knows which workloads should run under which
//! models ([`protocol::Enrolment`]), challenges them with single-use nonces, appraises what they
//! post with the same [`tsem_attest::verify`] as `tsem verify`, keeps every result as an IETF RATS
//! EAR in an append-only history, and says at any moment which workloads are trusted — turning
//! silent ones `stale`.
//!
//! State lives in a relational database and nowhere else ([`store`]): SQLite for one process,
//! PostgreSQL for several verifier processes sharing the work through leases. The REST API is
//! described in `docs/verifier.md`; [`client`] is its blocking client, and [`session`] an
//! attester's repeated attestations through it (one request each after the first). The feature `server`
//! (default) builds the service; without it only [`protocol`] and [`client`] remain.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod activate;
#[cfg(feature = "server")]
pub mod appraise;
#[cfg(feature = "server")]
pub mod bench;
pub mod client;
#[cfg(feature = "server")]
pub mod nonce;
pub mod protocol;
mod rate;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
#[cfg(feature = "server")]
pub mod store;
pub mod tls;
#[cfg(feature = "server")]
pub mod ui;

pub use client::{Client, ClientError};
#[cfg(feature = "server")]
pub use server::{Config, ServerError, serve};
pub use session::Session;
#[cfg(feature = "server")]
pub use store::{Store, StoreError};
