//! Builds the hand-over hook (`hook/main.rs`), a static program without libc that
//! `tsem-runtime` embeds and runs from a sealed memfd (`src/hookbin.rs`): `rustc` with
//! `panic=abort` (the workspace's profiles unwind, which a program without `std` cannot), no
//! start files, no libc. x86_64 Linux only (the hook's system calls are written for it); other
//! targets use `tsem-runtime`'s own hook.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=hook/main.rs");
    println!("cargo::rerun-if-changed=src/hookstate.rs");
    println!("cargo::rustc-check-cfg=cfg(tsem_hook_bin)");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return;
    }
    let (Some(out), Some(rustc), Some(dir)) = (
        std::env::var_os("OUT_DIR"),
        std::env::var_os("RUSTC"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        eprintln!("tsem-runtime build: OUT_DIR, RUSTC or CARGO_MANIFEST_DIR not set by cargo");
        std::process::exit(1);
    };
    let source = PathBuf::from(dir).join("hook/main.rs");
    let bin = PathBuf::from(out).join("tsem-handover");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--crate-name",
            "tsem_handover",
            "--target",
            &target,
            "-C",
            "opt-level=2",
            "-C",
            "debuginfo=0",
            "-C",
            "strip=symbols",
            "-C",
            "panic=abort",
            "-C",
            "relocation-model=static",
            "-C",
            "link-arg=-nostartfiles",
            "-C",
            "link-arg=-nostdlib",
            "-C",
            "link-arg=-static",
            "-C",
            "link-arg=-Wl,--build-id=none",
        ])
        .arg(&source)
        .arg("-o")
        .arg(&bin)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=tsem_hook_bin"),
        Ok(s) => {
            eprintln!("tsem-runtime build: compiling hook/main.rs failed: {s}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("tsem-runtime build: running rustc for hook/main.rs: {e}");
            std::process::exit(1);
        }
    }
}
