//! `tsem-runtime run` is one `runc run` whose `createRuntime` hook hands the container's init to
//! the supervisor. When that hand-over fails, the container's program must not run: judged by
//! its effect (the file it would write) as well as by the error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bundle, show};

/// Add a `prestart` hook (runc runs those before `createRuntime` ones, on the host, while the
/// init waits) that runs `script` with the host's shell.
fn add_prestart(b: &std::path::Path, script: &str) {
    let path = b.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["hooks"] = serde_json::json!({
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}],
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

#[test]
fn a_failed_hand_over_keeps_the_program_from_running() {
    let Some(env) = common::env("handover") else {
        return;
    };
    let rec = env.dir.join("runc-root.tsem");
    // Each way the hand-over can fail: the supervisor is gone, or the hook cannot reach the run.
    let cases = [
        (
            "supervisor-killed",
            format!(
                "kill -9 $(cut -d' ' -f1 {}/supervisor-killed/supervisor)",
                rec.display()
            ),
            "did not take the container's init",
        ),
        (
            "socket-gone",
            format!("rm {}/socket-gone/handover.sock", rec.display()),
            "hand-over socket",
        ),
    ];
    for (id, sabotage, why) in cases {
        let b = bundle(
            &env.dir.join(id),
            "echo ran > /tmp/ran",
            &[("org.tsem.mode", "learn".into())],
        );
        add_prestart(&b, &sabotage);
        let o = env.run(&b, id);
        assert!(!o.status.success(), "{id}: {}", show(&o));
        assert!(
            !b.join("rootfs/tmp/ran").exists(),
            "{id}: the program ran without its supervisor: {}",
            show(&o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{id}: {}", show(&o));
        assert!(env.state(id).is_none(), "{id}: the container was left");
        assert!(!rec.join(id).exists(), "{id}: the record was left");
    }
}

#[test]
fn a_run_keeps_the_callers_bundle_paths_and_hooks() {
    let Some(env) = common::env("private") else {
        return;
    };
    // A relative root (`rootfs`, as `runc spec` writes it) and the caller's own createRuntime
    // hook, which still runs (after the hand-over) and sees the container's state.
    let b = bundle(
        &env.dir.join("bundle"),
        "cat /etc/app.conf",
        &[("org.tsem.mode", "learn".into())],
    );
    let path = b.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(c["root"]["path"], "rootfs");
    let seen = env.dir.join("hook-state.json");
    c["hooks"] = serde_json::json!({
        "createRuntime": [{"path": "/bin/sh",
                           "args": ["sh", "-c", format!("cat > {}", seen.display())]}],
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let o = env.run(&b, "private");
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("greeting=hello"),
        "{}",
        show(&o)
    );
    let state = common::json(seen.to_str().unwrap());
    assert_eq!(state["id"], "private", "{state}");
    assert!(state["pid"].as_i64().unwrap() > 0, "{state}");
    // The caller's bundle is as it was.
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(after, c);
}

/// runc sets the container up while the supervisor loads its model: a model the supervisor
/// refuses fails the hook, so the `run` fails with the supervisor's word and nothing runs.
#[test]
fn a_model_the_supervisor_refuses_fails_the_run_before_the_program() {
    let Some(env) = common::env("refused") else {
        return;
    };
    let model = env.path("garbage.model");
    std::fs::write(&model, "this is not a model\n").unwrap();
    let b = bundle(
        &env.dir.join("bundle"),
        "echo ran > /tmp/ran",
        &[
            ("org.tsem.mode", "enforce".into()),
            ("org.tsem.model", model.clone()),
        ],
    );
    let o = env.run(&b, "refused");
    assert!(!o.status.success(), "{}", show(&o));
    assert!(!b.join("rootfs/tmp/ran").exists(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("garbage.model"), "{}", show(&o));
    assert!(env.state("refused").is_none());
    assert!(!env.dir.join("runc-root.tsem/refused").exists());
}
