//! What a new user meets first: bad use is a usage error (exit 2) with a message naming what is
//! wrong, a command that cannot be run gets the shell's status (127, 126), a model file cut
//! short is refused, `tsem model sign` writes where it is told, output into a closed pipe (or
//! one closed after a few bytes, `| head`) ends quietly, and the digest cache is never silently
//! off or moved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Output, Stdio};

use common::{process_dir, run, s, shared, stderr, tmpdir, tsem};

/// Exit status 2 and exactly `line` as the first line on stderr.
fn usage_error(out: &Output, line: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().next(), Some(line), "stderr: {err}");
}

#[test]
fn run_without_a_command_is_a_usage_error() {
    let model = process_dir().join("test.model");
    let out = run(&["run", "--enforce", "--model", s(&model)]);
    usage_error(
        &out,
        "tsem: error: no command: give the workload after `--`, e.g. `tsem run -- make test`",
    );
    let out = run(&["run", "--", ""]);
    usage_error(
        &out,
        "tsem: error: the command name is empty (`tsem run -- \"\"`)",
    );
}

#[test]
fn a_bad_nonce_is_a_usage_error_that_says_what_a_nonce_is() {
    let d = tmpdir("first-nonce");
    let key = d.join("k");
    let traj = process_dir().join("process_1.json");
    for (nonce, why) in [
        (
            "zz",
            "not hex (non-hex digit): a nonce is 16 to 128 hex digits (8 to 64 bytes)",
        ),
        ("00112233", "nonce: 4 bytes; a nonce must be 8 to 64 bytes"),
    ] {
        let out = run(&[
            "attest",
            "--nonce",
            nonce,
            "--key",
            s(&key),
            "-o",
            s(&d.join("a.json")),
            s(&traj),
        ]);
        usage_error(
            &out,
            &format!("error: invalid value '{nonce}' for '--nonce <HEX>': {why}"),
        );
        let out = run(&[
            "verify",
            "--model",
            s(&process_dir().join("test.model")),
            "--nonce",
            nonce,
            s(&d.join("a.json")),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    }
}

#[test]
fn empty_and_truncated_models_are_refused_with_the_line() {
    let d = tmpdir("first-model");
    let full = std::fs::read_to_string(process_dir().join("test.model")).unwrap();
    let traj = process_dir().join("process_1.json");
    let cut = full.trim_end().strip_suffix("end").unwrap().to_string();
    let lines = cut.lines().count();
    for (name, text, msg) in [
        (
            "empty",
            String::new(),
            "line 1: end: empty model file".to_string(),
        ),
        (
            "cut",
            cut,
            format!(
                "line {}: end: no `end` line: the model is truncated",
                lines + 1
            ),
        ),
    ] {
        let m = d.join(name);
        std::fs::write(&m, text).unwrap();
        for args in [
            vec!["replay", "--model", s(&m), s(&traj)],
            vec!["model", "show", s(&m)],
        ] {
            let out = run(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert_eq!(
                stderr(&out).trim_end(),
                format!("tsem: error: {}: {msg}", m.display()),
                "{args:?}"
            );
        }
    }
}

#[test]
fn model_sign_writes_where_it_is_told() {
    let d = tmpdir("first-sign");
    let key = d.join("k");
    assert!(run(&["keygen", "-o", s(&key)]).status.success());
    let original = std::fs::read(process_dir().join("test.model")).unwrap();
    let m = d.join("m");
    std::fs::write(&m, &original).unwrap();
    let verified = |path: &std::path::Path| {
        run(&["model", "verify", "--key", s(&d.join("k.pub")), s(path)])
            .status
            .success()
    };

    // Default: the signed model on stdout, the file unchanged.
    let out = run(&["model", "sign", "--key", s(&key), s(&m)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&m).unwrap(), original);
    let piped = d.join("piped");
    std::fs::write(&piped, &out.stdout).unwrap();
    assert!(verified(&piped));
    assert!(!verified(&m));

    // -o OUT.
    let signed = d.join("signed");
    let out = run(&["model", "sign", "--key", s(&key), "-o", s(&signed), s(&m)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(verified(&signed));

    // --in-place.
    let out = run(&["model", "sign", "--key", s(&key), "--in-place", s(&m)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(verified(&m));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let log = shared().join("conformance/eventlog/go-tpm-tools/rhel8-uefi.bin");
    for args in [
        vec!["eventlog", "replay", "--json", s(&log)],
        vec!["eventlog", "show", s(&log)],
        vec!["eventlog", "show", "--json", s(&log)],
        vec![
            "ima",
            "show",
            s(&shared().join("conformance/ima/ibmtss/sha256.log")),
        ],
        vec!["replay", "--json", s(&process_dir().join("process_1.json"))],
    ] {
        // The reader is gone before tsem writes a byte: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = tsem()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(stderr(&out), "", "{args:?}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc_sigpipe()),
            "{args:?}: {:?}",
            out.status
        );
    }
}

const fn libc_sigpipe() -> i32 {
    13
}

/// A pipe's capacity on Linux unless enlarged (F_SETPIPE_SZ): output longer than this plus
/// what the reader took cannot all be written before the reader leaves.
const PIPE_CAPACITY: usize = 64 * 1024;

/// `tsem ARGS | head -c 64`: the reader takes a few bytes, then closes while tsem still has
/// output to write. Returns the output of a whole run, to check that premise.
fn read_a_little_then_close(args: &[&str]) -> Vec<u8> {
    use std::io::Read as _;
    let whole = run(args);
    assert!(whole.status.success(), "{args:?}: {}", stderr(&whole));
    let mut child = tsem()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head[..], &whole.stdout[..64], "{args:?}");
    // The reader is gone (the pipe's read end dropped above).
    let out = child.wait_with_output().unwrap();
    assert_eq!(stderr(&out), "", "{args:?}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc_sigpipe()),
        "{args:?}: {:?}",
        out.status
    );
    whole.stdout
}

#[test]
fn output_into_a_pipe_whose_reader_leaves_early_ends_quietly() {
    let log = shared().join("conformance/eventlog/go-tpm-tools/gdc-host.bin");
    let whole = read_a_little_then_close(&["eventlog", "replay", "--json", s(&log)]);
    assert!(whole.len() > PIPE_CAPACITY + 64, "{} bytes", whole.len());

    // A large trajectory none of whose events is in the model: a line per forensic point.
    let d = tmpdir("first-head");
    let traj = d.join("big.json");
    let mut text = Vec::new();
    for i in 0..4000 {
        let path = format!("/tmp/head/file-{i}");
        text.extend(tsem_testdata::raw_kernel::file_open_line(
            b"cat",
            path.as_bytes(),
        ));
        text.push(b'\n');
    }
    std::fs::write(&traj, text).unwrap();
    let model = d.join("m.model");
    std::fs::write(
        &model,
        format!(
            "aggregate {0}\nstate {1}\nseal\nend\n",
            "0".repeat(64),
            "1".repeat(64)
        ),
    )
    .unwrap();
    for json in [false, true] {
        let mut args = vec!["replay", "--model", s(&model), s(&traj)];
        if json {
            args.insert(1, "--json");
        }
        let whole = read_a_little_then_close(&args);
        assert!(
            whole.len() > PIPE_CAPACITY + 64,
            "{args:?}: {} bytes",
            whole.len()
        );
    }
}

#[test]
fn a_command_that_cannot_be_run_exits_as_in_the_shell() {
    let d = tmpdir("first-exec");
    let plain = d.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    for (cmd, code, msg) in [
        (
            "tsem-no-such-command-xyz",
            127,
            "tsem: command not found: tsem-no-such-command-xyz".to_string(),
        ),
        (
            "/nonexistent/cmd",
            127,
            "tsem: cannot execute /nonexistent/cmd: No such file or directory (os error 2)"
                .to_string(),
        ),
        (
            s(&plain),
            126,
            format!(
                "tsem: cannot execute {}: Permission denied (os error 13)",
                plain.display()
            ),
        ),
    ] {
        let out = run(&["run", "--backend", "sensor", "--", cmd]);
        assert_eq!(out.status.code(), Some(code), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).lines().any(|l| l == msg),
            "{cmd}: {}",
            stderr(&out)
        );
    }
}

/// `tsem run /bin/true` with `home` as HOME (None: unset) and no XDG_CACHE_HOME: the default
/// digest cache cannot be used, so it goes under XDG_RUNTIME_DIR with a note saying where and
/// why (`why`), and the summary names that file.
fn digest_cache_moves_and_says_where(name: &str, home: Option<&str>, why: &str) {
    let d = tmpdir(name);
    let runtime = d.join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let summary = d.join("summary.json");
    let mut cmd = tsem();
    match home {
        Some(h) => cmd.env("HOME", h),
        None => cmd.env_remove("HOME"),
    };
    let out = cmd
        .env_remove("XDG_CACHE_HOME")
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["run", "--summary-json", s(&summary), "--", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = runtime.join("tsem/digests-sha256");
    let note = format!("tsem: note: digest cache in {} (", expected.display());
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with(&note));
    assert!(
        line.is_some_and(|l| l.contains(why) && l.ends_with("); --digest-cache FILE to choose")),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(v["digest_cache"], s(&expected), "{v}");
    assert!(expected.exists(), "the fallback store was not written");
}

#[test]
fn a_home_that_is_not_ours_moves_the_digest_cache_and_says_where() {
    // /proc is nobody's home: no `.cache` can be made there, by root or anyone.
    digest_cache_moves_and_says_where("first-cache", Some("/proc"), "/proc/.cache");
}

#[test]
fn no_home_moves_the_digest_cache_and_says_where() {
    digest_cache_moves_and_says_where(
        "first-nohome",
        None,
        "neither HOME nor XDG_CACHE_HOME is set",
    );
}
