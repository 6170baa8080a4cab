//! # tsem-core
//!
//! The pure modeling core of tsem: TSEM security event descriptions, their COE and CELL encodings,
//! security state coefficients, and the modeling namespace (points, trajectory, forensics,
//! measurement and the order-invariant state). It performs no I/O, keeps no globals, does not panic
//! on any input, and builds without `std` (with `alloc`), so the same agent can run in a separate
//! process, an enclave or a microcontroller.
//!
//! The byte layouts follow `docs/tsem-spec.md` (TSEM kernel model0, post-v4 by default) and are
//! verified bit-exact against real TSEM captures in the conformance tests.
#![forbid(unsafe_code)]
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod access;
pub mod descriptions;
pub mod event;
pub mod hash;
pub mod map;
pub mod namespace;
pub mod naming;
pub mod outputs;
pub mod points;
pub mod policy;
pub mod raw;
pub mod sha256;
pub mod state;

pub use hash::{Digest, HashAlg, Hasher};
pub use raw::RawStr;

/// A name that may become a file name or a key: 1 to `max` ASCII letters, digits, `.`, `_` or
/// `-`, not starting with `.` (no separators, no hidden files, no `..`). Run names and workload
/// names follow it.
pub fn is_plain_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
