//! Helpers shared by the CLI integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod tma;

pub use tsem_testdata::shared_dir as shared;

pub fn process_dir() -> PathBuf {
    shared().join("conformance/tsem/process")
}

pub fn tsem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
}

pub fn run(args: &[&str]) -> Output {
    tsem().args(args).stdin(Stdio::null()).output().unwrap()
}

pub fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = tsem()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written on its own thread so that a large input cannot block on a full output pipe; tsem
    // stops reading at a bad line, so the rest of the input meets a closed pipe.
    std::thread::scope(|s| {
        s.spawn(move || match stdin.write_all(input) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.unwrap(),
        });
        child.wait_with_output().unwrap()
    })
}

pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "tsem failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Assert a failure with exactly one line on stderr that contains `needle`.
pub fn fails_with(out: &Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected a one-line error, got: {err}"
    );
    assert!(
        err.contains(needle),
        "error {err:?} does not mention {needle:?}"
    );
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tsem-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh directory `tsem-KIND-NAME-PID` that also works when the tests run unprivileged:
/// under `TSEM_TEST_DIR` (a world-writable directory) when it is set, else the temporary one.
pub fn scratch(kind: &str, name: &str) -> PathBuf {
    let base = std::env::var_os("TSEM_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("tsem-{kind}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tsem ARGS` in `dir`, with no input.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    tsem()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--summary-json` file at `path`, which must exist.
pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `--summary-json` file at `path`, or null when the run wrote none.
pub fn summary_or_null(path: &Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null)
}

/// The events of a `--forensics` or `--trajectory` file, one JSON object a line; none when
/// the run wrote no file.
pub fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The pathname of an event's file or dentry, empty when it has neither.
pub fn pathname_of(ev: &serde_json::Value) -> String {
    let ty = ev["event"]["type"].as_str().unwrap_or_default();
    let c = &ev[ty];
    for p in [
        &c["file"]["path"]["pathname"],
        &c["dentry"]["path"]["pathname"],
    ] {
        if let Some(s) = p.as_str() {
            return s.to_string();
        }
    }
    String::new()
}

/// `cc -O1 -o OUT SRC EXTRA` in `dir`; a failed build fails the test with the compiler's words.
pub fn compile(dir: &Path, src: &str, out: &str, extra: &[&str]) {
    let o = Command::new("cc")
        .args(["-O1", "-o", out, src])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A fresh copy of the sample C project in `samples/cbuild` (also used by `tsem bench run`).
pub fn sample_build_tree(src: &Path) {
    let _ = std::fs::remove_dir_all(src);
    std::fs::create_dir_all(src).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/cbuild");
    for f in ["util.h", "util.c", "main.c", "Makefile", "words.txt"] {
        std::fs::copy(sample.join(f), src.join(f)).unwrap();
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the shell finds the program `name`.
pub fn have(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
