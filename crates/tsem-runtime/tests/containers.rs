//! `tsem-runtime` with real runc and a busybox root filesystem built here: learning a container,
//! enforcing it, denying what it never did, keeping the supervisor out of its reach, failing
//! closed, and learning the same model in any bundle directory. Judged by effects (what the
//! container printed, whether it still runs) as well as by what tsem reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{SECRET, bundle, json, set_process, show};

/// Reads a config, writes under /tmp, lists a directory, runs a few programs. The root
/// filesystem is a directory that outlives the run, so the script leaves it as it found it.
const WORKLOAD: &str = "cat /etc/app.conf; echo data > /tmp/out; ls /etc/conf.d; \
                        wc -c /tmp/out; head -n 1 /etc/conf.d/a; rm /tmp/out; true";

#[test]
fn learned_container_enforces_cleanly_and_denies_an_unmodeled_read() {
    let Some(env) = common::env("enforce") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        WORKLOAD,
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
            ("org.tsem.summary", env.path("learn.json")),
        ],
    );
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("greeting=hello") && out.contains("5 /tmp/out"),
        "{}",
        show(&o)
    );
    let learned = json(&env.path("learn.json"));
    assert_eq!(learned["lost_events"], 0, "{learned}");
    assert!(learned["events"].as_u64().unwrap() > 10, "{learned}");

    let mut states = std::collections::BTreeSet::new();
    for i in 0..10 {
        set_process(
            &b,
            WORKLOAD,
            &[
                ("org.tsem.mode", "enforce".into()),
                ("org.tsem.model", env.path("model")),
                ("org.tsem.summary", env.path("enforce.json")),
                ("org.tsem.forensics", env.path("forensics")),
            ],
        );
        let o = env.run(&b, &format!("enforce{i}"));
        assert!(o.status.success(), "run {i}: {}", show(&o));
        let s = json(&env.path("enforce.json"));
        assert_eq!(s["forensics_events"], 0, "run {i}: {s}");
        assert_eq!(s["denied"], 0, "run {i}: {s}");
        assert_eq!(s["lost_events"], 0, "run {i}: {s}");
        assert_eq!(s["exit_status"], 0, "run {i}: {s}");
        assert_eq!(s["sensor"]["unfaithful"], 0, "run {i}: {s}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("greeting=hello"));
        states.insert(s["state"].to_string());
    }
    assert_eq!(states.len(), 1, "10 enforced runs, one state: {states:?}");

    // The same container, plus one read it never did.
    set_process(
        &b,
        &format!("{WORKLOAD}; cat /etc/secret; true"),
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.summary", env.path("attack.json")),
            ("org.tsem.forensics", env.path("attack-forensics")),
        ],
    );
    let o = env.run(&b, "attack");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!out.contains(SECRET), "the secret was read: {}", show(&o));
    assert!(out.contains("greeting=hello"), "{}", show(&o));
    assert!(
        err.contains("Operation not permitted"),
        "not EPERM: {}",
        show(&o)
    );
    let s = json(&env.path("attack.json"));
    assert!(s["denied"].as_u64().unwrap() >= 1, "{s}");
    let forensics = std::fs::read_to_string(env.path("attack-forensics")).unwrap();
    assert!(forensics.contains("/etc/secret"), "{forensics}");
}

#[test]
fn the_supervisor_is_out_of_the_containers_reach() {
    let Some(env) = common::env("reach") else {
        return;
    };
    // Every process the container can see, by its command line, then a kill of all of them.
    let script = "for p in /proc/[0-9]*; do cat $p/cmdline; echo; done; kill -9 -1; echo survived";
    let b = bundle(
        &env.dir.join("bundle"),
        script,
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
        ],
    );
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    set_process(
        &b,
        script,
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.summary", env.path("enforce.json")),
        ],
    );
    let o = env.run(&b, "enforce");
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("survived"), "{}", show(&o));
    assert!(
        out.lines().any(|l| l.starts_with("sh")),
        "its own process: {out}"
    );
    assert!(!out.contains("tsem"), "a tsem process is visible: {out}");
    // The supervisor outlived `kill -9 -1`: it wrote its summary after the container's end.
    let s = json(&env.path("enforce.json"));
    assert_eq!(s["exit_status"], 0, "{s}");
    assert_eq!(s["forensics_events"], 0, "{s}");
    assert_eq!(s["lost_events"], 0, "{s}");
}

#[test]
fn killing_the_supervisor_kills_the_container() {
    let Some(env) = common::env("failclosed") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        "echo up > /tmp/up; exec sleep 1000",
        &[("org.tsem.mode", "learn".into())],
    );
    assert!(env.run_detached(&b, "victim"));
    let pid = env.state("victim").unwrap()["pid"].as_i64().unwrap() as i32;
    // Running its own program (sleep), under the supervisor.
    let sleeping = || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with("sleep"))
    };
    assert!(wait_for(sleeping), "the container never ran sleep");
    let rec = env.dir.join("runc-root.tsem/victim/supervisor");
    let text = std::fs::read_to_string(&rec).unwrap();
    let sup: i32 = text.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill with integer arguments.
    assert_eq!(unsafe { libc::kill(sup, libc::SIGKILL) }, 0);
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    assert!(
        wait_for(gone),
        "the container's init {pid} outlived its supervisor"
    );
    assert_eq!(env.state("victim").unwrap()["status"], "stopped");
    let o = env.runtime().args(["delete", "victim"]).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(!rec.exists());
}

#[test]
fn a_fresh_bundle_directory_learns_the_same_model() {
    let Some(env) = common::env("fresh") else {
        return;
    };
    let mut models = Vec::new();
    for (i, dir) in ["one", "elsewhere/two/bundle"].iter().enumerate() {
        let model = env.path(&format!("model{i}"));
        let b = bundle(
            &env.dir.join(dir),
            WORKLOAD,
            &[
                ("org.tsem.mode", "learn".into()),
                ("org.tsem.model-out", model.clone()),
                ("org.tsem.trajectory", env.path(&format!("trajectory{i}"))),
            ],
        );
        let o = env.run(&b, &format!("fresh{i}"));
        assert!(o.status.success(), "{}", show(&o));
        models.push(std::fs::read_to_string(&model).unwrap());
    }
    assert_eq!(models[0], models[1]);
    assert!(
        models[0].contains("\nlandlock fs read-file /etc/app.conf\n"),
        "paths inside the container: {}",
        models[0]
    );
    // Opened files and created entries alike are named from the container's root, also where
    // this host's root is a directory bound onto `/` (CI, a chroot): pivot_root then attaches
    // the container's root where that directory was, and the kernel's names carry its path.
    let trajectory = std::fs::read_to_string(env.path("trajectory0")).unwrap();
    // (`/tmp/out` is named by the created-subtree rule, from its directory's path.)
    for name in ["/etc/app.conf\"", "/tmp/%created:", "/bin/busybox\""] {
        assert!(
            trajectory.contains(&format!("\"pathname\": \"{name}")),
            "{name}: {trajectory}"
        );
    }
    let host_root = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && f[4] == "/").then(|| f[3].to_string())
        })
        .next_back()
        .unwrap();
    if host_root != "/" {
        let bound = format!("\"pathname\": \"{host_root}/");
        assert!(!trajectory.contains(&bound), "{bound}: {trajectory}");
        assert!(
            !models[0].contains(&host_root),
            "{host_root}: {}",
            models[0]
        );
    }
    assert!(
        !models[0].contains(&env.dir.display().to_string()),
        "{}",
        models[0]
    );
}

/// A container id, its annotations, and what its one-line error names.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

#[test]
fn bad_annotations_fail_create_with_one_line_and_nothing_starts() {
    let Some(env) = common::env("badannotations") else {
        return;
    };
    let cases: [Case; 4] = [
        (
            "nomodel",
            vec![("org.tsem.mode", "enforce".into())],
            "org.tsem.model",
        ),
        (
            "badmode",
            vec![("org.tsem.mode", "teach".into())],
            "org.tsem.mode",
        ),
        (
            "missing",
            vec![
                ("org.tsem.mode", "seal".into()),
                ("org.tsem.model", env.path("no-such-model")),
            ],
            "org.tsem.model",
        ),
        (
            "badmodel",
            vec![
                ("org.tsem.mode", "enforce".into()),
                ("org.tsem.model", env.path("garbage")),
            ],
            "garbage",
        ),
    ];
    std::fs::write(env.path("garbage"), "this is not a model\n").unwrap();
    for (id, ann, names) in cases {
        let b = bundle(&env.dir.join(id), "echo ran > /tmp/ran", &ann);
        let o = env
            .runtime()
            .args(["create", "-b"])
            .arg(&b)
            .arg(id)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{id}: {}", show(&o));
        assert_eq!(err.trim().lines().count(), 1, "{id}: one line: {err}");
        assert!(err.contains(names), "{id}: {err}");
        assert!(env.state(id).is_none(), "{id}: a container was created");
        assert!(!b.join("rootfs/tmp/ran").exists(), "{id}: its process ran");
    }
}

#[test]
fn exec_into_a_supervised_container_is_refused() {
    let Some(env) = common::env("exec") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        "exec sleep 1000",
        &[("org.tsem.mode", "learn".into())],
    );
    assert!(env.run_detached(&b, "ex"));
    let o = env
        .runtime()
        .args(["exec", "ex", "sh", "-c", "echo inside > /tmp/exec"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refused"),
        "{}",
        show(&o)
    );
    assert!(!b.join("rootfs/tmp/exec").exists(), "the exec ran");
    // kill and delete behave as the delegate's: the container ends with the signal.
    let o = env.runtime().args(["kill", "ex", "KILL"]).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let stopped = || env.state("ex").is_some_and(|s| s["status"] == "stopped");
    assert!(wait_for(stopped), "kill did not stop it");
    let o = env.runtime().args(["delete", "ex"]).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(env.state("ex").is_none());
}

#[test]
fn unsupervised_containers_are_the_delegates() {
    let Some(env) = common::env("plain") else {
        return;
    };
    let b = bundle(&env.dir.join("bundle"), "cat /etc/secret; exit 3", &[]);
    let o = env.run(&b, "plain");
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(SECRET));
    assert!(!env.dir.join("runc-root.tsem/plain").exists());
    let o = Command::new(&env.runtime).arg("features").output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
}

/// Poll `f` until it holds (at most a minute: a bound for a hung test, not a measurement).
fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..600 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

#[test]
fn an_enforced_container_is_attested_and_verified() {
    let Some(env) = common::env("attest") else {
        return;
    };
    let key = env.path("key");
    let o = Command::new(&env.tsem)
        .args(["keygen", "-o", &key])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let b = bundle(
        &env.dir.join("bundle"),
        WORKLOAD,
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
        ],
    );
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    let nonce = "0f1e2d3c4b5a6978";
    set_process(
        &b,
        WORKLOAD,
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.attest", env.path("attestation.json")),
            ("org.tsem.nonce", nonce.into()),
            ("org.tsem.key", key.clone()),
        ],
    );
    let o = env.run(&b, "attested");
    assert!(o.status.success(), "{}", show(&o));
    let verify = |nonce: &str| {
        Command::new(&env.tsem)
            .args(["verify", "--model", &env.path("model"), "--nonce", nonce])
            .args([
                "--key",
                &format!("{key}.pub"),
                &env.path("attestation.json"),
            ])
            .output()
            .unwrap()
    };
    let o = verify(nonce);
    assert!(o.status.success(), "{}", show(&o));
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.contains("0 forensic, 0 lost"), "{line}");
    assert!(
        !verify("0f1e2d3c4b5a6979").status.success(),
        "another nonce verified"
    );
}

#[test]
fn a_foreground_run_forwards_signals_and_returns_the_exit_status() {
    let Some(env) = common::env("signals") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        "trap 'exit 7' TERM; echo up > /tmp/up; while true; do sleep 1; done",
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.summary", env.path("summary.json")),
        ],
    );
    let mut child = env
        .runtime()
        .args(["run", "-b"])
        .arg(&b)
        .arg("sig")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(|| b.join("rootfs/tmp/up").exists()),
        "never started"
    );
    // SAFETY: kill with integer arguments.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let st = child.wait().unwrap();
    std::fs::remove_file(b.join("rootfs/tmp/up")).unwrap();
    assert_eq!(st.code(), Some(7), "{st:?}");
    let s = json(&env.path("summary.json"));
    assert_eq!(s["exit_status"], 7, "{s}");
    assert_eq!(s["lost_events"], 0, "{s}");
    assert!(env.state("sig").is_none(), "not deleted");
}

/// A supervised container is a named, live namespace (its id): `tsem ctl` answers while it
/// runs. `org.tsem.export` streams its events (replayed to the run's state) and
/// `org.tsem.on-forensic=deny` refuses only the out-of-model read: the container goes on.
#[test]
fn a_container_is_live_by_its_id_exports_and_takes_a_deviation_policy() {
    let Some(env) = common::env("live") else {
        return;
    };
    let rt = env.dir.join("xdg");
    std::fs::create_dir_all(&rt).unwrap();
    let b = bundle(&env.dir.join("bundle"), "true", &[]);
    // At the root: the container's /tmp may be a mount of its own.
    let fifo = b.join("rootfs/go");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    // The host side of the FIFO: one line, once the container waits on it (a non-blocking open
    // for writing succeeds only then); a bound, so a container that never waits fails the test.
    let release = |fifo: std::path::PathBuf| {
        std::thread::spawn(move || {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            for _ in 0..1200 {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo)
                {
                    Ok(mut f) => return f.write_all(b"ok\n").is_ok(),
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            false
        })
    };
    let run = |id: &str| {
        env.runtime()
            .env("XDG_RUNTIME_DIR", &rt)
            .args(["run", "-b"])
            .arg(&b)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let script = |extra: &str| format!("{WORKLOAD}; {extra}read x < /go; echo after=$x");
    set_process(
        &b,
        &script(""),
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
        ],
    );
    let h = release(fifo.clone());
    let o = run("live-learn").wait_with_output().unwrap();
    assert!(
        h.join().unwrap(),
        "the container never waited: {}",
        show(&o)
    );
    assert!(o.status.success(), "{}", show(&o));

    set_process(
        &b,
        &script("cat /etc/secret; "),
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.summary", env.path("s.json")),
            ("org.tsem.export", env.path("export.jsonl")),
            ("org.tsem.on-forensic", "deny".into()),
        ],
    );
    let child = run("live-c1");
    // While it waits on the FIFO: its control socket, under its id, has the denial.
    let ctl = || {
        Command::new(&env.tsem)
            .env("XDG_RUNTIME_DIR", &rt)
            .args(["ctl", "state", "live-c1", "--json"])
            .output()
            .unwrap()
    };
    let mut state = serde_json::Value::Null;
    for _ in 0..600 {
        let o = ctl();
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            if v["forensics_events"].as_u64() >= Some(1) {
                state = v;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(state["on_forensic"], "deny", "{state}");
    let released = release(fifo).join().unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(released, "the container never waited: {}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("after=ok"),
        "the container stopped at the denial: {}",
        show(&o)
    );
    assert!(
        !out.contains(common::SECRET),
        "the secret was read: {}",
        show(&o)
    );
    let s = json(&env.path("s.json"));
    assert_eq!(s["on_forensic"], "deny", "{s}");
    assert!(s["denied"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["lost_exports"], 0, "{s}");
    // The export replays to the run's state.
    let r = Command::new(&env.tsem)
        .args([
            "replay",
            "--json",
            "--model",
            &env.path("model"),
            &env.path("export.jsonl"),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", show(&r));
    let r: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r["state"], s["state"], "{r}\n{s}");
    assert_eq!(r["events"], s["events"]);
    // The socket went with the container.
    assert!(!ctl().status.success());
}

/// A container task naming itself through its own /proc gets what it gets without tsem: its
/// own files by its number in the container's pid namespace (the shell is 1 there), its own
/// executable through the magic link, and busybox's exec of /proc/self/exe for an applet runs
/// (before, the supervisor walked its own numbers in the container's /proc: the read failed,
/// and each command fell back to eight execs down PATH).
#[test]
fn a_container_task_names_itself_through_its_own_proc() {
    let Some(env) = common::env("procself") else {
        return;
    };
    let script = "read pid rest < /proc/self/stat; echo pid=$pid; \
                  cat /proc/self/exe | wc -c; cat /etc/app.conf";
    let b = bundle(
        &env.dir.join("bundle"),
        script,
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
            ("org.tsem.trajectory", env.path("trajectory")),
            ("org.tsem.summary", env.path("learn.json")),
        ],
    );
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let size = std::fs::metadata("/bin/busybox").unwrap().len();
    assert!(out.contains("pid=1\n"), "{}", show(&o));
    assert!(out.contains(&format!("{size}\n")), "{}", show(&o));
    assert!(out.contains("greeting=hello"), "{}", show(&o));
    // `cat` ran as busybox runs it: an exec of /proc/self/exe, whose name the kernel gives the
    // task until busybox renames it (a walk down PATH would have exec'd /bin/cat).
    let learned = json(&env.path("learn.json"));
    assert_eq!(learned["sensor"]["refused"], 0, "{learned}");
    let traj = std::fs::read_to_string(env.path("trajectory")).unwrap();
    assert!(
        traj.lines().any(|l| l.contains("\"process\": \"exe\"")),
        "no exec of /proc/self/exe: {traj}"
    );
}

/// The supervisor is started while runc sets the container up; one that cannot start (no such
/// `tsem`) or that refuses its model fails the run with its reason, and the container's program
/// never runs (its marker file is not written), nor is anything left in runc's state.
#[test]
fn a_supervisor_that_cannot_start_fails_the_run_before_the_program() {
    let Some(env) = common::env("nosup") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        "echo ran > /tmp/marker",
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
        ],
    );
    let marker = b.join("rootfs/tmp/marker");
    let o = Command::new(&env.runtime)
        .arg("--root")
        .arg(&env.root)
        .arg("--tsem")
        .arg(env.dir.join("no-such-tsem"))
        .args(["run", "-b"])
        .arg(&b)
        .arg("nosup1")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot start the supervisor"), "{}", show(&o));
    assert!(!marker.exists(), "the program ran: {}", show(&o));
    // A model that does not parse: the supervisor refuses it, the program does not run.
    std::fs::write(env.path("bad.model"), "not a model\n").unwrap();
    set_process(
        &b,
        "echo ran > /tmp/marker",
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("bad.model")),
        ],
    );
    let o = env.run(&b, "nosup2");
    assert!(!o.status.success(), "{}", show(&o));
    assert!(!marker.exists(), "the program ran: {}", show(&o));
    for id in ["nosup1", "nosup2"] {
        assert!(env.state(id).is_none(), "{id} left in runc's state");
    }
}

/// A terminal container run in the foreground (`process.terminal`, no `--console-socket`: runc
/// gives the container a pseudo-terminal of its own and relays it to the caller's terminal) is
/// supervised as any other: the program sees a terminal on its stdin and the model is learned.
/// The caller's terminal is `script`'s (util-linux, in every Debian).
#[test]
fn a_terminal_container_runs_supervised_in_the_foreground() {
    let Some(env) = common::env("tty") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        "tty; cat /etc/app.conf",
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
            ("org.tsem.summary", env.path("learn.json")),
        ],
    );
    let path = b.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = true.into();
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    let line = format!(
        "{} --root {} --tsem {} run -b {} tty1",
        env.runtime.display(),
        env.root.display(),
        env.tsem.display(),
        b.display()
    );
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", show(&o));
    assert!(out.contains("/dev/pts/"), "no terminal: {}", show(&o));
    assert!(out.contains("greeting=hello"), "{}", show(&o));
    let learned = json(&env.path("learn.json"));
    assert_eq!(learned["lost_events"], 0, "{learned}");
    assert!(
        std::fs::read_to_string(env.path("model"))
            .unwrap()
            .lines()
            .count()
            > 3
    );
}

/// A `/proc` that is not a procfs (a directory in a chroot the workload made, whose `self/exe`
/// is an ordinary symbolic link to a script) is walked as the kernel walks it: the exec of
/// `/proc/self/exe` there is described as the script the kernel runs, never as the task's own
/// executable reached through the supervisor's /proc (which would let an unmodeled script run
/// under busybox's description).
#[test]
fn a_fake_proc_in_a_chroot_is_described_as_what_the_kernel_runs() {
    let Some(env) = common::env("fakeproc") else {
        return;
    };
    let script = "mkdir -p /x/proc/self /x/bin /x/tmp; ln /bin/busybox /x/bin/sh; \
                  printf '#!/bin/sh\\necho ran > /tmp/evil-ran\\n' > /x/bin/evil; \
                  chmod +x /x/bin/evil; ln -s /bin/evil /x/proc/self/exe; \
                  chroot /x /proc/self/exe; echo status=$?";
    let b = bundle(
        &env.dir.join("bundle"),
        script,
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
            ("org.tsem.trajectory", env.path("trajectory")),
        ],
    );
    // runc's default spec keeps no CAP_SYS_CHROOT.
    let path = b.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_CHROOT".into());
    }
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    // The script ran, as without tsem.
    assert!(
        b.join("rootfs/x/tmp/evil-ran").exists(),
        "the script did not run: {}",
        show(&o)
    );
    // The exec's open (exec flags, by `chroot`) names the script the workload created (a
    // `%created` pseudonym), never busybox, the task's own executable.
    let traj = std::fs::read_to_string(env.path("trajectory")).unwrap();
    let execs: Vec<serde_json::Value> = traj
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| {
            e["event"]["process"] == "chroot"
                && e["event"]["type"] == "file_open"
                && e["file_open"]["file"]["flags"] == "32800"
        })
        .collect();
    assert!(!execs.is_empty(), "the exec is not described: {traj}");
    for e in &execs {
        let name = e["file_open"]["file"]["path"]["pathname"].as_str().unwrap();
        assert!(name.contains("%created"), "described as {name}: {e}");
    }
}
