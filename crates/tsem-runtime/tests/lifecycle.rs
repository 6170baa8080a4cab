//! A supervised container ends as the delegate's does: here when the kernel's OOM killer kills
//! a process in the container's memory cgroup (issue: "Exit status, signals, OOM and delete
//! behave as with the delegate runtime").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{bundle, json, show};

/// A container limited to 32 MiB whose shell runs a program that needs 200 MiB (busybox `dd`
/// allocates its block), then exits with that program's status.
const HOG: &str = "echo start; busybox dd if=/dev/zero of=/dev/null bs=200M count=1; st=$?; \
                   echo dd=$st; exit $st";

fn limit_memory(bundle: &Path) {
    let path = bundle.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 32 * 1024 * 1024 });
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

fn plain_runc(root: &Path, bundle: &Path, id: &str) -> Output {
    Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["run", "-b"])
        .arg(bundle)
        .arg(id)
        .output()
        .unwrap()
}

#[test]
fn an_oom_kill_ends_a_supervised_container_as_it_ends_a_plain_one() {
    let Some(env) = common::env("oom") else {
        return;
    };
    let b = bundle(&env.dir.join("bundle"), HOG, &[]);
    limit_memory(&b);
    let plain = plain_runc(&env.root, &b, "plain");
    // The kernel's verdict first: without it the test would show nothing.
    assert_eq!(plain.status.code(), Some(137), "{}", show(&plain));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("dd=137"),
        "{}",
        show(&plain)
    );

    let annotations = |mode: &str, summary: &str| {
        let mut a = vec![
            ("org.tsem.mode", mode.to_string()),
            ("org.tsem.summary", env.path(summary)),
        ];
        if mode == "learn" {
            a.push(("org.tsem.model-out", env.path("model")));
        } else {
            a.push(("org.tsem.model", env.path("model")));
        }
        a
    };
    for (mode, id) in [("learn", "learning"), ("enforce", "enforced")] {
        common::set_process(&b, HOG, &annotations(mode, &format!("{id}.json")));
        limit_memory(&b);
        let o = env.run(&b, id);
        assert_eq!(o.status.code(), plain.status.code(), "{mode}: {}", show(&o));
        assert_eq!(o.stdout, plain.stdout, "{mode}: {}", show(&o));
        let s = json(&env.path(&format!("{id}.json")));
        assert_eq!(s["lost_events"], 0, "{mode}: {s}");
        assert_eq!(s["forensics_events"], 0, "{mode}: {s}");
        assert_eq!(s["denied"], 0, "{mode}: {s}");
        // `run` deletes the container, as runc's does.
        assert!(env.state(id).is_none(), "{mode}: {id} is still there");
    }
}
