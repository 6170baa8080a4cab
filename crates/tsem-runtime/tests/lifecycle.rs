//! A supervised container ends as the delegate's does: here when the kernel's OOM killer kills
//! a process in the container's memory cgroup (issue: "Exit status, signals, OOM and delete
//! behave as with the delegate runtime"), and when its very first program is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{bundle, json, set_process, show};

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

/// The container's first program is described and decided at its exec stop, on a second thread
/// while the tracer installs the filter and the backstop in the held task. When the model
/// refuses it, the program never runs (judged by what it would print: a write to its stdout is
/// no event, so only a program that never ran prints nothing), the run fails, and the refusal
/// is reported and in the forensics, however the two threads' work interleaved: several runs.
#[test]
fn a_first_program_the_model_refuses_never_runs() {
    let Some(env) = common::env("first") else {
        return;
    };
    let b = bundle(
        &env.dir.join("bundle"),
        "echo learned",
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
        ],
    );
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("learned"));
    // The same shell from another file: an open of /bin/other the model never saw.
    std::fs::copy(b.join("rootfs/bin/busybox"), b.join("rootfs/bin/other")).unwrap();
    for i in 0..4 {
        set_process(
            &b,
            "echo ran",
            &[
                ("org.tsem.mode", "enforce".into()),
                ("org.tsem.model", env.path("model")),
                ("org.tsem.summary", env.path("enforce.json")),
                ("org.tsem.forensics", env.path("forensics")),
            ],
        );
        let path = b.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        c["process"]["args"] = serde_json::json!(["/bin/other", "sh", "-c", "echo ran"]);
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        let o = env.run(&b, &format!("enforce{i}"));
        assert!(!o.status.success(), "run {i}: {}", show(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("ran"),
            "run {i}: the refused program ran: {}",
            show(&o)
        );
        let s = json(&env.path("enforce.json"));
        assert!(s["denied"].as_u64().unwrap() >= 1, "run {i}: {s}");
        assert_eq!(s["lost_events"], 0, "run {i}: {s}");
        let forensics = std::fs::read_to_string(env.path("forensics")).unwrap();
        assert!(forensics.contains("/bin/other"), "run {i}: {forensics}");
        std::fs::remove_file(env.path("forensics")).unwrap();
    }
}
