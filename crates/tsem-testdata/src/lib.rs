//! Where the tests find the shared conformance data: `$TSEM_SHARED`, else the `shared/` directory
//! beside the repository (as CI lays it out). The data is read in place, never copied into the
//! repository.
//!
//! # Warning
//! Missing data panics: a conformance test that cannot find its data must fail, not pass vacuously.
#![forbid(unsafe_code)]
#![allow(clippy::panic)]

use std::path::PathBuf;

pub mod services;

/// The `shared/` directory.
pub fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("TSEM_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    };
    if !dir.join("conformance").is_dir() {
        panic!(
            "conformance data not found at {}/conformance (set TSEM_SHARED)",
            dir.display()
        );
    }
    dir
}

/// `shared/conformance`.
pub fn conformance_dir() -> PathBuf {
    shared_dir().join("conformance")
}

pub mod port;
pub mod pty;
pub mod raw_kernel;
pub mod tcg;
