//! The kernel backstop (a Landlock ruleset compiled from the model's `landlock` lines), judged by
//! effect: with the sensor's decisions switched off (`--backstop-only`, every call continued to
//! the kernel), an unmodeled read or TCP connect still fails in the kernel and the workload cannot
//! signal the supervisor; the summary reports the compatibility level; the sample build still
//! enforces with no false positive; build, merge and extension carry the access set.
//!
//! Landlock domains are only ever created in the `tsem run` children. Tests need a kernel with
//! Landlock (ABI 1, ABI 4 for TCP) and skip with one line otherwise. As root, every scenario also
//! runs as uid 65534.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::summary;

const CONSENT: (&str, &str) = ("TSEM_TEST_BACKSTOP_ONLY", "sensor-decides-nothing");
const NOBODY: u32 = 65534;

/// Whether the kernel has Landlock ABI `min`; says why not on one line.
fn landlock_at_least(min: u32, what: &str) -> bool {
    let abi = tsem_sensor::backstop::kernel_abi();
    if abi < min {
        eprintln!("skipped: {what} needs Landlock ABI {min}, the kernel has {abi}");
    }
    abi >= min
}

/// Who runs the scenarios: ourselves, and uid 65534 too when we are root.
fn users() -> Vec<Option<u32>> {
    let mut v = vec![None];
    if common::is_root() {
        v.push(Some(NOBODY));
    }
    v
}

/// A fresh directory owned by `user`, world-readable.
fn scratch(name: &str, user: Option<u32>) -> PathBuf {
    let tag = user.map_or("self".to_string(), |u| u.to_string());
    let d = common::scratch("backstop", &format!("{name}-{tag}"));
    if let Some(u) = user {
        std::os::unix::fs::chown(&d, Some(u), Some(u)).unwrap();
    }
    d
}

fn tsem(user: Option<u32>, dir: &Path) -> Command {
    let mut c = common::tsem();
    c.current_dir(dir)
        .stdin(Stdio::null())
        .env_remove(CONSENT.0);
    if let Some(u) = user {
        // std drops the supplementary groups when root changes uid.
        c.uid(u).gid(u).env("HOME", dir);
    }
    c
}

fn run(user: Option<u32>, dir: &Path, args: &[&str]) -> Output {
    tsem(user, dir).args(args).output().unwrap()
}

/// `tsem run --backstop-only` with the consent variable.
fn backstop_only(user: Option<u32>, dir: &Path, model: &Path, cmd: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--no-digest-cache",
        "--enforce",
        "--backstop-only",
        "--model",
        model.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(cmd);
    tsem(user, dir)
        .env(CONSENT.0, CONSENT.1)
        .args(&args)
        .output()
        .unwrap()
}

/// The same command under interception only (no model, no backstop): what the workload does
/// when nothing refuses it, so each test can fail.
fn unconfined(user: Option<u32>, dir: &Path, cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--no-digest-cache", "--mechanism-only", "--"];
    args.extend_from_slice(cmd);
    run(user, dir, &args)
}

fn learn(user: Option<u32>, dir: &Path, cmd: &[&str]) -> PathBuf {
    let model = dir.join("learned.model");
    let mut args = vec![
        "run",
        "--no-digest-cache",
        "--learn",
        "-o",
        model.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(cmd);
    let o = run(user, dir, &args);
    assert!(o.status.success(), "learning failed: {}", text(&o.stderr));
    model
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn backstop_alone_refuses_an_unmodeled_read() {
    if !landlock_at_least(1, "the backstop") {
        return;
    }
    for user in users() {
        let d = scratch("read", user);
        let public = d.join("public");
        let secret = d.join("secret");
        std::fs::write(&public, "public bytes\n").unwrap();
        std::fs::write(&secret, "SECRET-4f1c bytes\n").unwrap();
        let (p, s) = (public.to_str().unwrap(), secret.to_str().unwrap());
        let model = learn(user, &d, &["cat", p]);

        // Nothing else refuses the read: the secret is readable by this user.
        let o = unconfined(user, &d, &["cat", p, s]);
        assert!(text(&o.stdout).contains("SECRET-4f1c"), "{user:?}: {o:?}");

        let o = backstop_only(user, &d, &model, &["cat", p, s]);
        let out = text(&o.stdout);
        assert!(
            out.contains("public bytes"),
            "{user:?}: the modeled read fails: {o:?}"
        );
        assert!(
            !out.contains("SECRET"),
            "{user:?}: the secret was read: {o:?}"
        );
        assert!(!o.status.success(), "{user:?}: {o:?}");
        assert!(
            text(&o.stderr).contains("Permission denied"),
            "{user:?}: not refused by the kernel (EACCES): {o:?}"
        );
    }
}

#[test]
fn backstop_alone_refuses_an_unmodeled_tcp_connect() {
    if !landlock_at_least(4, "TCP rules") {
        return;
    }
    if !Path::new("/bin/bash").exists() {
        eprintln!("skipped: no /bin/bash (its /dev/tcp makes the connects)");
        return;
    }
    for user in users() {
        let d = scratch("tcp", user);
        let modeled = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let (p1, p2) = (
            modeled.local_addr().unwrap().port(),
            other.local_addr().unwrap().port(),
        );
        let connect = |port: u16, tag: &str| {
            format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo {tag}-connected")
        };
        let learned = connect(p1, "one");
        let model = learn(user, &d, &["/bin/bash", "-c", &learned]);
        let _ = modeled.accept().unwrap();
        assert!(
            std::fs::read_to_string(&model)
                .unwrap()
                .contains(&format!("landlock tcp-connect {p1}\n")),
            "the learned model lacks the port"
        );
        let both = format!("{}; {}", connect(p1, "one"), connect(p2, "two"));

        let o = backstop_only(user, &d, &model, &["/bin/bash", "-c", &both]);
        let out = text(&o.stdout);
        assert!(
            out.contains("one-connected"),
            "{user:?}: modeled port refused: {o:?}"
        );
        assert!(!out.contains("two-connected"), "{user:?}: {o:?}");
        modeled.set_nonblocking(true).unwrap();
        other.set_nonblocking(true).unwrap();
        assert!(
            modeled.accept().is_ok(),
            "{user:?}: the modeled connect did not arrive"
        );
        // connect(2) returns once the handshake is done, so a connection made is queued by now.
        assert_eq!(
            other.accept().map(|_| ()).unwrap_err().kind(),
            ErrorKind::WouldBlock,
            "{user:?}: the unmodeled listener was reached"
        );
        assert!(
            text(&o.stderr).contains("Permission denied"),
            "{user:?}: not refused by the kernel (EACCES): {o:?}"
        );

        // Without the backstop the same connect arrives: the test can fail.
        other.set_nonblocking(false).unwrap();
        let o = unconfined(user, &d, &["/bin/bash", "-c", &connect(p2, "two")]);
        assert!(text(&o.stdout).contains("two-connected"), "{user:?}: {o:?}");
        let _ = other.accept().unwrap();
    }
}

#[test]
fn the_summary_reports_the_compatibility_level() {
    let abi = tsem_sensor::backstop::kernel_abi();
    let d = scratch("summary", None);
    std::fs::write(d.join("f"), "x\n").unwrap();
    let f = d.join("f");
    let f = f.to_str().unwrap();
    let learn_json = d.join("learn.json");
    let model = d.join("m");
    let o = run(
        None,
        &d,
        &[
            "run",
            "--no-digest-cache",
            "-o",
            model.to_str().unwrap(),
            "--summary-json",
            learn_json.to_str().unwrap(),
            "--",
            "cat",
            f,
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let l = &summary(&learn_json)["landlock"];
    assert_eq!(l["status"], "not_enforced");
    assert_eq!(l["reason"], "learning");
    assert!(l["learned"]["paths"].as_u64().unwrap() > 1, "{l}");
    let text_model = std::fs::read_to_string(&model).unwrap();
    assert!(text_model.contains("\nlandlock abi 7\n"), "{text_model}");
    assert!(text_model.contains(&format!("\nlandlock fs read-file {f}\n")));

    let enforce = |extra: &[&str], model: &Path| {
        let s = d.join("enforce.json");
        let mut args = vec![
            "run",
            "--no-digest-cache",
            "--enforce",
            "--model",
            model.to_str().unwrap(),
            "--summary-json",
            s.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "cat", f]);
        let o = run(None, &d, &args);
        assert!(o.status.success(), "{o:?}");
        (summary(&s)["landlock"].clone(), text(&o.stderr))
    };
    let (l, _) = enforce(&[], &model);
    assert_eq!(l["abi"], abi);
    let want = match abi {
        0 => "not_enforced",
        1..=6 => "partially_enforced",
        _ => "fully_enforced",
    };
    assert_eq!(l["status"], want, "{l}");
    if abi > 0 {
        assert!(l["rules"].as_u64().unwrap() > 1, "{l}");
        assert!(l["reason"].is_null(), "{l}");
    }
    if abi >= 6 {
        assert_eq!(
            l["scoped"],
            serde_json::json!(["signal", "abstract-unix-socket"])
        );
    }

    let (l, _) = enforce(&["--no-backstop"], &model);
    assert_eq!(l["status"], "not_enforced");
    assert_eq!(l["rules"], 0);

    // A model learned before the backstop existed: enforced without it, and said so.
    let old = d.join("old.model");
    let stripped: String = text_model
        .lines()
        .filter(|l| !l.starts_with("landlock "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&old, stripped).unwrap();
    let (l, err) = enforce(&[], &old);
    assert_eq!(l["status"], "not_enforced");
    assert_eq!(l["reason"], "the model has no landlock lines");
    assert!(err.contains("no kernel backstop"), "{err}");
}

#[test]
fn the_backstop_only_switch_cannot_be_enabled_by_accident() {
    let d = scratch("switch", None);
    let model = d.join("m");
    std::fs::write(&model, "landlock abi 7\nseal\nend\n").unwrap();
    let m = model.to_str().unwrap();
    // Without the consent variable.
    let o = run(
        None,
        &d,
        &[
            "run",
            "--enforce",
            "--backstop-only",
            "--model",
            m,
            "--",
            "true",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("TSEM_TEST_BACKSTOP_ONLY"), "{o:?}");
    // Never with an output, a summary or an attestation.
    for extra in [
        &["-o", "x"][..],
        &["--summary-json", "x"],
        &["--trajectory", "x"],
        &["--forensics", "x"],
        &["--learn"],
    ] {
        let mut args = vec!["run", "--backstop-only", "--model", m];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        let o = tsem(None, &d)
            .env(CONSENT.0, CONSENT.1)
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{extra:?} accepted");
        assert!(text(&o.stderr).contains("cannot be used with"), "{o:?}");
    }
}

#[test]
fn the_sample_build_enforces_ten_times_with_the_backstop() {
    if !landlock_at_least(1, "the backstop") {
        return;
    }
    const BUILD: &str =
        "sort words.txt | uniq -c | wc -l > /dev/null && make -s -j2 && ./hello && rm -f *.o hello";
    let d = scratch("build", None);
    let src = d.join("src");
    common::sample_build_tree(&src);
    let model = d.join("build.model");
    let o = run(
        None,
        &src,
        &[
            "run",
            "-o",
            model.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            BUILD,
        ],
    );
    assert!(o.status.success(), "learn: {o:?}");
    for i in 0..10 {
        let s = d.join(format!("enforce{i}.json"));
        let o = run(
            None,
            &src,
            &[
                "run",
                "--enforce",
                "--model",
                model.to_str().unwrap(),
                "--summary-json",
                s.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                BUILD,
            ],
        );
        assert!(o.status.success(), "run {i}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "5\n", "run {i}");
        let v = summary(&s);
        assert_eq!(v["forensics_events"], 0, "run {i}");
        assert_eq!(v["denied"], 0, "run {i}");
        assert_ne!(v["landlock"]["status"], "not_enforced", "run {i}: {v}");
        assert_eq!(v["landlock"]["missing"], serde_json::json!([]), "run {i}");
    }
}

fn landlock_lines(model: &Path) -> Vec<String> {
    std::fs::read_to_string(model)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("landlock "))
        .map(str::to_string)
        .collect()
}

#[test]
fn model_build_and_merge_carry_the_access_set() {
    let d = scratch("carry", None);
    for (name, body) in [("a", "first\n"), ("b", "second\n")] {
        std::fs::write(d.join(name), body).unwrap();
    }
    let (a, b) = (d.join("a"), d.join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let learn = |out: &str, traj: &str, file: &str, base: Option<&str>| {
        let mut args = vec!["run", "--no-digest-cache", "--learn", "-o", out];
        if let Some(m) = base {
            args.extend_from_slice(&["--model", m]);
        }
        args.extend_from_slice(&["--trajectory", traj, "--", "cat", file]);
        let o = run(None, &d, &args);
        assert!(o.status.success(), "{o:?}");
    };
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    learn(&p("ma"), &p("ta"), a, None);
    learn(&p("mb"), &p("tb"), b, None);
    // The run's own set equals the one learned again from its trajectory.
    let o = run(
        None,
        &d,
        &["model", "build", "--backstop", "-o", &p("built"), &p("ta")],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        landlock_lines(&d.join("built")),
        landlock_lines(&d.join("ma"))
    );
    // Without --backstop a built model has none. (It names the rules the run learned with, as
    // models made with different naming rules are never merged.)
    let o = run(
        None,
        &d,
        &[
            "model",
            "build",
            "--rules",
            "created-subtree-v1,proc-pid-v1,prctl-args-v1",
            "-o",
            &p("plain"),
            &p("ta"),
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(landlock_lines(&d.join("plain")).is_empty());
    // merge and extending a model by learning both unite the sets.
    let o = run(
        None,
        &d,
        &["model", "merge", "-o", &p("merged"), &p("ma"), &p("mb")],
    );
    assert!(o.status.success(), "{o:?}");
    learn(&p("extended"), &p("tc"), b, Some(&p("ma")));
    for m in ["merged", "extended"] {
        let lines = landlock_lines(&d.join(m));
        for f in [a, b] {
            let want = format!("landlock fs read-file {f}");
            assert!(lines.contains(&want), "{m} lacks {want}: {lines:?}");
        }
    }
    // A sealed run writing its model keeps the loaded model's set (it learned none).
    let o = run(
        None,
        &d,
        &[
            "run",
            "--no-digest-cache",
            "--seal",
            "--model",
            &p("ma"),
            "-o",
            &p("sealed"),
            "--",
            "cat",
            a,
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        landlock_lines(&d.join("sealed")),
        landlock_lines(&d.join("ma"))
    );
    // Merged with a model that has no set, the result has none (it would deny that workload).
    let o = run(
        None,
        &d,
        &["model", "merge", "-o", &p("mixed"), &p("ma"), &p("plain")],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(landlock_lines(&d.join("mixed")).is_empty());
}

#[test]
fn backstop_alone_keeps_signals_from_the_supervisor() {
    if !landlock_at_least(6, "signal scoping") {
        return;
    }
    for user in users() {
        let d = scratch("signal", user);
        let model = learn(user, &d, &["sh", "-c", "echo learned"]);
        // The workload's first process is the supervisor's child: $PPID is tsem itself.
        let probe = ["sh", "-c", "kill -0 $PPID && echo supervisor-reached"];
        let o = unconfined(user, &d, &probe);
        assert!(
            text(&o.stdout).contains("supervisor-reached"),
            "{user:?}: {o:?}"
        );
        let o = backstop_only(user, &d, &model, &probe);
        assert!(!text(&o.stdout).contains("reached"), "{user:?}: {o:?}");
        assert!(
            text(&o.stderr).contains("not permitted"),
            "{user:?}: not refused by the kernel (EPERM): {o:?}"
        );
    }
}

/// Issue 9 gap 2, met twice: after a credential change every open is described with the
/// task's new credentials and decided, so the sensor alone (`--no-backstop`) refuses the
/// unmodeled read, and counts it; the backstop alone refuses it too in the kernel. Root only
/// (the workload drops to uid 65534).
#[test]
fn a_read_after_a_credential_change_is_refused_by_the_sensor_and_by_the_backstop() {
    if !common::is_root() || !landlock_at_least(1, "the backstop") {
        eprintln!("skipped: needs root (the workload changes its uid) and Landlock");
        return;
    }
    if Command::new("python3").arg("-V").output().is_err() {
        eprintln!("skipped: no python3 (it changes the uid mid-run)");
        return;
    }
    let d = scratch("setuid", None);
    std::fs::write(d.join("public"), "public bytes\n").unwrap();
    std::fs::write(d.join("secret"), "SECRET-77aa bytes\n").unwrap();
    let (public, secret) = (d.join("public"), d.join("secret"));
    let (p, s) = (public.to_str().unwrap(), secret.to_str().unwrap());
    let script = "import os, sys\n\
                  os.setgroups([]); os.setgid(65534); os.setuid(65534)\n\
                  for f in sys.argv[1:]:\n    \
                      try: print(open(f).read().strip())\n    \
                      except OSError as e: print('refused', e.errno)\n";
    let model = learn(None, &d, &["python3", "-c", script, p]);
    let summary = d.join("setuid.summary.json");
    let enforce = |extra: &[&str]| {
        let mut args = vec!["run", "--no-digest-cache", "--enforce", "--model"];
        args.push(model.to_str().unwrap());
        args.extend_from_slice(&["--summary-json", summary.to_str().unwrap()]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "python3", "-c", script, p, s]);
        run(None, &d, &args)
    };
    // The sensor alone: the kernel would let uid 65534 read the file (mode 0644).
    let o = enforce(&["--no-backstop"]);
    let out = text(&o.stdout);
    assert!(
        !out.contains("SECRET"),
        "the sensor let the secret be read: {o:?}"
    );
    assert!(out.contains("public bytes"), "{o:?}");
    assert!(out.contains("refused 1"), "{o:?}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(v["forensics_events"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["denied"].as_u64().unwrap() >= 1, "{v}");
    // With the backstop too.
    let o = enforce(&[]);
    let out = text(&o.stdout);
    assert!(!out.contains("SECRET"), "the secret was read: {o:?}");
    assert!(out.contains("refused"), "{o:?}");
}
