//! tsem-runtime under docker (Debian's docker.io 20.10): a test daemon of its own (data root,
//! exec root, pid file and socket in the test's directory, no iptables, no bridge, the vfs
//! storage driver) with tsem-runtime registered in its `daemon.json` twice, once per mode, the
//! mode and files given by `runtimeArgs` (`--tsem-default`: docker 20.10 has no `--annotation`).
//! A busybox root filesystem built here is imported as an image; a container learns, enforces
//! cleanly, and an unmodeled read is denied (the secret never printed) and named; `docker stop`
//! ends a supervised container as it ends runc's.
//!
//! Skipped with one line without dockerd, unless TSEM_REQUIRE_DOCKER=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{SECRET, json, show};

/// Reads a config, writes and removes a file under /tmp, lists a directory, runs a few programs.
const WORKLOAD: &str = "cat /etc/app.conf; echo data > /tmp/out; ls /etc/conf.d; \
                        wc -c /tmp/out; rm /tmp/out; true";

/// A docker daemon of the test's own, stopped on drop.
struct Dockerd {
    child: Child,
    sock: PathBuf,
    client: PathBuf,
}

impl Dockerd {
    fn docker(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("-H").arg(format!("unix://{}", self.sock.display()));
        c
    }

    fn run(&self, runtime: &str, script: &str) -> Output {
        self.docker()
            .args(["run", "--rm", "--network", "none", "--runtime", runtime])
            .args(["tsem-test:1", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: kill with integer arguments, to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// dockerd and docker's client from the same package (docker.io), or a skip line.
fn docker_tools() -> Option<PathBuf> {
    let have = |p: &str| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let client = ["/usr/bin/docker", "docker"].into_iter().find(|p| have(p));
    match (have("dockerd"), client) {
        (true, Some(c)) => Some(PathBuf::from(c)),
        _ => {
            if std::env::var("TSEM_REQUIRE_DOCKER").as_deref() == Ok("1") {
                panic!(
                    "TSEM_REQUIRE_DOCKER=1 but dockerd or docker is missing (Debian: docker.io)"
                );
            }
            println!("skipped docker: dockerd is not installed (Debian: docker.io)");
            None
        }
    }
}

fn start_dockerd(env: &common::Env, client: PathBuf) -> Dockerd {
    let d = &env.dir;
    let runtime = |defaults: &[(&str, String)]| {
        let mut args = vec!["--tsem".to_string(), env.tsem.display().to_string()];
        for (k, v) in defaults {
            args.extend(["--tsem-default".to_string(), format!("{k}={v}")]);
        }
        serde_json::json!({"path": env.runtime.display().to_string(), "runtimeArgs": args})
    };
    let config = serde_json::json!({"runtimes": {
        "tsem-learn": runtime(&[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
            ("org.tsem.summary", env.path("learn.json")),
        ]),
        "tsem-enforce": runtime(&[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.summary", env.path("enforce.json")),
            ("org.tsem.forensics", env.path("forensics")),
        ]),
    }});
    std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
    let sock = d.join("docker.sock");
    let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
    let child = Command::new("dockerd")
        .arg("--config-file")
        .arg(d.join("daemon.json"))
        .arg("--data-root")
        .arg(d.join("data"))
        .arg("--exec-root")
        .arg(d.join("exec"))
        .arg("--pidfile")
        .arg(d.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = Dockerd {
        child,
        sock,
        client,
    };
    // Ready when it answers (bounded: 600 tries, 100 ms apart).
    for _ in 0..600 {
        let up = daemon
            .docker()
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if up {
            return daemon;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "dockerd never answered: {}",
        std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
    );
}

/// The busybox root filesystem as a tarball, imported as `tsem-test:1`.
fn import_image(env: &common::Env, daemon: &Dockerd) {
    let root = common::rootfs(&env.dir.join("image"));
    let tar = env.dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar");
    let o = daemon
        .docker()
        .arg("import")
        .arg(&tar)
        .arg("tsem-test:1")
        .output()
        .unwrap();
    assert!(o.status.success(), "docker import: {}", show(&o));
}

#[test]
fn docker_learns_enforces_and_denies_an_unmodeled_read() {
    let Some(env) = common::env("docker") else {
        return;
    };
    let Some(client) = docker_tools() else {
        return;
    };
    let daemon = start_dockerd(&env, client);
    import_image(&env, &daemon);

    let o = daemon.run("tsem-learn", WORKLOAD);
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

    // Each docker run is a fresh copy of the image: the same state every time.
    let mut states = std::collections::BTreeSet::new();
    for i in 0..3 {
        let o = daemon.run("tsem-enforce", WORKLOAD);
        assert!(o.status.success(), "run {i}: {}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("greeting=hello"));
        let s = json(&env.path("enforce.json"));
        assert_eq!(s["forensics_events"], 0, "run {i}: {s}");
        assert_eq!(s["denied"], 0, "run {i}: {s}");
        assert_eq!(s["lost_events"], 0, "run {i}: {s}");
        assert_ne!(s["landlock"]["status"], "not_enforced", "run {i}: {s}");
        states.insert(s["state"].to_string());
    }
    assert_eq!(states.len(), 1, "{states:?}");

    let o = daemon.run(
        "tsem-enforce",
        &format!("{WORKLOAD}; cat /etc/secret; true"),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains(SECRET), "the secret was read: {}", show(&o));
    assert!(out.contains("greeting=hello"), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "not EPERM: {}",
        show(&o)
    );
    let s = json(&env.path("enforce.json"));
    assert!(s["denied"].as_u64().unwrap() >= 1, "{s}");
    let forensics = std::fs::read_to_string(env.path("forensics")).unwrap();
    assert!(forensics.contains("/etc/secret"), "{forensics}");

    // `docker stop` ends a supervised container as it ends runc's: SIGTERM reaches the
    // container's shell, whose trap gives the exit status docker records.
    let script = "trap 'exit 7' TERM; echo up; while true; do sleep 1; done";
    let mut codes = Vec::new();
    for runtime in ["runc", "tsem-learn"] {
        let name = format!("stop-{runtime}");
        let o = daemon
            .docker()
            .args(["run", "-d", "--network", "none", "--name", &name])
            .args(["--runtime", runtime, "tsem-test:1", "/bin/sh", "-c", script])
            .output()
            .unwrap();
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let up = || {
            daemon
                .docker()
                .args(["logs", &name])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("up"))
        };
        assert!(
            (0..300).any(|_| up() || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                false
            }),
            "{runtime}: never started"
        );
        let o = daemon
            .docker()
            .args(["stop", "-t", "30", &name])
            .output()
            .unwrap();
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let o = daemon
            .docker()
            .args([
                "inspect",
                "-f",
                "{{.State.ExitCode}} {{.State.OOMKilled}}",
                &name,
            ])
            .output()
            .unwrap();
        codes.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
        let o = daemon.docker().args(["rm", &name]).output().unwrap();
        assert!(o.status.success(), "{runtime}: docker rm: {}", show(&o));
    }
    assert_eq!(codes[0], "7 false", "runc: {codes:?}");
    assert_eq!(codes[0], codes[1], "{codes:?}");
    let s = json(&env.path("learn.json"));
    assert_eq!(s["lost_events"], 0, "{s}");
}

/// `--tsem-default` gives an annotation to containers whose config lacks it; the config's own
/// annotation wins.
#[test]
fn tsem_defaults_apply_where_the_bundle_sets_nothing() {
    let Some(env) = common::env("defaults") else {
        return;
    };
    let b = common::bundle(&env.dir.join("bundle"), "cat /etc/app.conf", &[]);
    let with_defaults = |id: &str| {
        env.runtime()
            .args(["--tsem-default", "org.tsem.mode=learn"])
            .arg("--tsem-default")
            .arg(format!("org.tsem.model-out={}", env.path("default.model")))
            .args(["run", "-b"])
            .arg(&b)
            .arg(id)
            .output()
            .unwrap()
    };
    let o = with_defaults("d1");
    assert!(o.status.success(), "{}", show(&o));
    assert!(Path::new(&env.path("default.model")).exists());
    std::fs::remove_file(env.path("default.model")).unwrap();

    common::set_process(
        &b,
        "cat /etc/app.conf",
        &[("org.tsem.model-out", env.path("own.model"))],
    );
    let o = with_defaults("d2");
    assert!(o.status.success(), "{}", show(&o));
    assert!(Path::new(&env.path("own.model")).exists());
    assert!(!Path::new(&env.path("default.model")).exists());
}
