//! podman end to end: `podman --runtime tsem-runtime run --rootfs DIR --annotation
//! org.tsem.mode=learn ...`, then enforce. Skips with one line without podman (Debian: podman),
//! runc or a static busybox, unless TSEM_REQUIRE_CONTAINERS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::{Env, SECRET, json, show};

const SCRIPT: &str = "cat /etc/app.conf; ls /etc/conf.d; echo data > /tmp/out; wc -c /tmp/out; \
                      rm /tmp/out; true";

/// `podman run` of `script` on the root filesystem `rootfs` under tsem-runtime, storage and
/// state in the test's directory. These machines need cgroupfs and explicit limits.
fn podman(
    env: &Env,
    runroot: &std::path::Path,
    rootfs: &std::path::Path,
    annotations: &[(&str, String)],
    script: &str,
) -> Output {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(env.dir.join("storage"))
        .arg("--runroot")
        .arg(runroot)
        .arg("--runtime")
        .arg(&env.runtime)
        .args([
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "run",
            "--rm",
            "--network=none",
            "--ulimit=nofile=1024:1024",
            "--ulimit=nproc=1024:1024",
        ]);
    for (k, v) in annotations {
        c.arg("--annotation").arg(format!("{k}={v}"));
    }
    c.arg("--rootfs")
        .arg(rootfs)
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn podman_learns_then_enforces_a_container() {
    let Some(env) = common::env("podman") else {
        return;
    };
    if Command::new("podman").arg("--version").output().is_err() {
        assert_ne!(
            std::env::var("TSEM_REQUIRE_CONTAINERS").as_deref(),
            Ok("1"),
            "TSEM_REQUIRE_CONTAINERS=1 but podman is not installed"
        );
        println!("skipped podman: podman is not installed (Debian: podman)");
        return;
    }
    let rootfs = common::rootfs(&env.dir);
    // podman refuses a run root longer than 50 bytes: a short one of the test's own.
    let runroot = RunRoot(std::path::PathBuf::from(format!(
        "/run/tsem-pm-{}",
        std::process::id()
    )));
    let o = podman(
        &env,
        &runroot.0,
        &rootfs,
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
            ("org.tsem.summary", env.path("learn.json")),
        ],
        SCRIPT,
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("greeting=hello"),
        "{}",
        show(&o)
    );
    let s = json(&env.path("learn.json"));
    assert_eq!(s["lost_events"], 0, "{s}");
    assert!(s["events"].as_u64().unwrap() > 5, "{s}");

    for i in 0..2 {
        let o = podman(
            &env,
            &runroot.0,
            &rootfs,
            &[
                ("org.tsem.mode", "enforce".into()),
                ("org.tsem.model", env.path("model")),
                ("org.tsem.summary", env.path("enforce.json")),
            ],
            SCRIPT,
        );
        assert!(o.status.success(), "run {i}: {}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("greeting=hello"));
        let s = json(&env.path("enforce.json"));
        assert_eq!(s["forensics_events"], 0, "run {i}: {s}");
        assert_eq!(s["denied"], 0, "run {i}: {s}");
        assert_eq!(s["lost_events"], 0, "run {i}: {s}");
    }

    let o = podman(
        &env,
        &runroot.0,
        &rootfs,
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.forensics", env.path("forensics")),
        ],
        &format!("{SCRIPT}; cat /etc/secret; true"),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains(SECRET), "the secret was read: {}", show(&o));
    assert!(out.contains("greeting=hello"), "{}", show(&o));
    let f = std::fs::read_to_string(env.path("forensics")).unwrap();
    assert!(f.contains("/etc/secret"), "{f}");
}

/// podman's run root, removed with the test.
struct RunRoot(std::path::PathBuf);

impl Drop for RunRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
