//! The hand-over hook without libc (`hook/main.rs`, run from a sealed memfd): it is a static
//! program with no dynamic loader (what makes it start in microseconds), its memfd cannot be
//! rewritten, and it behaves as `tsem-runtime`'s own hook on every outcome: the pid it sends, its
//! exit status and its error line. Needs no root: the other end of the socket is this test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tsem_runtime::hookbin::Hook;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tsem-hookbin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `hook` (argv[0] and the command as `tsem-runtime run` writes them) with `state` on its
/// stdin, the supervisor's side answering `answer` (none: the connection is closed without a
/// word). The hook's exit code, stderr, and the bytes it sent.
fn run_hook(
    program: &Path,
    prefix: &[&str],
    sock: &Path,
    id: &str,
    state: &str,
    answer: Option<u8>,
) -> (i32, String, Vec<u8>) {
    let _ = std::fs::remove_file(sock);
    // A path longer than a socket address is bound through a descriptor of its directory.
    let dir = std::fs::File::open(sock.parent().unwrap()).unwrap();
    let short =
        PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(sock.file_name().unwrap());
    let listener = UnixListener::bind(&short).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut got = vec![0u8; 4];
        let n = c.read(&mut got).unwrap_or(0);
        got.truncate(n);
        if let Some(a) = answer {
            let _ = c.write_all(&[a]);
        }
        got
    });
    // argv as runc gives it from the hook's `args`: argv[0] is `tsem-runtime`.
    let mut child = Command::new(program)
        .arg0("tsem-runtime")
        .args(prefix)
        .arg(sock)
        .arg(id)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(state.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // A hook that failed before connecting leaves the server waiting: connect once ourselves.
    let _ = std::os::unix::net::UnixStream::connect(&short);
    let sent = server.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        sent,
    )
}

#[test]
fn the_hook_program_is_static_without_a_loader_and_sealed() {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        assert!(Hook::load().is_none());
        return;
    }
    let hook = Hook::load().expect("the embedded hook in a memfd");
    let elf = std::fs::read(hook.path()).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes(elf[54..56].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(elf[56..58].try_into().unwrap()) as usize;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[off..off + 4].try_into().unwrap());
        // PT_DYNAMIC (2), PT_INTERP (3): a dynamic loader and libraries would run first.
        assert!(
            p_type != 2 && p_type != 3,
            "program header {i} is of type {p_type}: not a static program"
        );
    }
    // Sealed: neither rewritten nor truncated, by anyone.
    let w = std::fs::OpenOptions::new().write(true).open(hook.path());
    let rewritten = w.and_then(|mut f| f.write_all(b"#!/bin/sh\n"));
    assert!(rewritten.is_err(), "the hook's memfd could be rewritten");
    assert_eq!(std::fs::read(hook.path()).unwrap(), elf);
}

#[test]
fn the_hook_program_hands_over_as_tsem_runtimes_own_hook_does() {
    let on_x86_64_linux = cfg!(all(target_arch = "x86_64", target_os = "linux"));
    let Some(hook) = Hook::load() else {
        assert!(!on_x86_64_linux, "no embedded hook on x86_64 Linux");
        return;
    };
    let dir = scratch("same");
    // Longer than a socket address holds: reached through a descriptor of its directory.
    let deep = dir.join("d".repeat(120));
    std::fs::create_dir_all(&deep).unwrap();
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_tsem-runtime"));
    let good = r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"creating","bundle":"/b","annotations":{"id":"c2"}}"#;
    // Name, socket directory, id, state, the supervisor's answer, exit code, error text.
    type Case<'a> = (
        &'a str,
        &'a Path,
        &'a str,
        &'a str,
        Option<u8>,
        i32,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        ("handed", &dir, "c1", good, Some(b'r'), 0, ""),
        ("long path", &deep, "c1", good, Some(b'r'), 0, ""),
        (
            "refused",
            &dir,
            "c1",
            good,
            Some(b'x'),
            1,
            "did not take the container's init",
        ),
        (
            "no answer",
            &dir,
            "c1",
            good,
            None,
            1,
            "did not take the container's init",
        ),
        (
            "other container",
            &dir,
            "c9",
            good,
            Some(b'r'),
            1,
            "the hook's state",
        ),
        (
            "running",
            &dir,
            "c1",
            r#"{"id":"c1","pid":4242,"status":"running"}"#,
            Some(b'r'),
            1,
            "the hook's state",
        ),
        (
            "no pid",
            &dir,
            "c1",
            r#"{"id":"c1","status":"creating"}"#,
            Some(b'r'),
            1,
            "the hook's state",
        ),
        (
            "not json",
            &dir,
            "c1",
            r#"{"id":"c1","status":"creating","pid":4242"#,
            Some(b'r'),
            1,
            "the hook's state",
        ),
    ];
    for (name, d, id, state, answer, code, why) in cases {
        let sock = d.join("handover.sock");
        let (c1, e1, s1) = run_hook(&hook.path(), &["tsem-handover"], &sock, id, state, *answer);
        let (c2, e2, s2) = run_hook(&ours, &["tsem-handover"], &sock, id, state, *answer);
        assert_eq!((c1, c2), (*code, *code), "{name}: {e1} / {e2}");
        assert!(e1.contains(why) && e2.contains(why), "{name}: {e1} / {e2}");
        assert_eq!(e1.lines().count(), usize::from(*code != 0), "{name}: {e1}");
        if *code == 0 || name.starts_with("refused") || name.starts_with("no answer") {
            assert_eq!(s1, 4242i32.to_ne_bytes(), "{name}");
        }
        assert_eq!(s1, s2, "{name}: the two hooks sent different bytes");
    }
    // A wrong command line is refused before anything is read or sent.
    let out = Command::new(hook.path())
        .arg0("tsem-runtime")
        .args(["other", "/nonexistent", "c1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    std::fs::remove_dir_all(&dir).unwrap();
}
