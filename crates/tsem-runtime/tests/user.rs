//! A container whose `process.user` is not root (uid and gid 1000, as many images run): the
//! supervisor wears the container's credentials for every call it performs, so the container is
//! learned and enforced like a root one, and what it creates belongs to uid 1000 (the effect of
//! the worn fsuid, checked on the host).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{bundle, json, set_process, show};

const USER: u32 = 1000;

/// Reads a config, writes under /tmp (world-writable, sticky), lists a directory, runs a few
/// programs, and reads what it wrote.
const WORKLOAD: &str = "cat /etc/app.conf; echo data > /tmp/out; ls /etc/conf.d; \
                        wc -c /tmp/out; head -n 1 /etc/conf.d/a; cat /etc/secret; true";

/// The bundle's process runs as uid and gid `USER`.
fn as_user(dir: &std::path::Path) {
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["user"] = serde_json::json!({ "uid": USER, "gid": USER });
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

#[test]
fn a_container_running_as_uid_1000_is_learned_and_enforced() {
    let Some(env) = common::env("user") else {
        return;
    };
    let dir = env.dir.join("bundle");
    let learn = [
        ("org.tsem.mode", "learn".into()),
        ("org.tsem.model-out", env.path("model")),
        ("org.tsem.summary", env.path("learn.json")),
    ];
    let b = bundle(&dir, WORKLOAD, &learn);
    let tmp = b.join("rootfs/tmp");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // The secret stays root's: uid 1000 is refused it by the kernel's own check.
    std::fs::set_permissions(
        b.join("rootfs/etc/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = tmp.join("out");
    let mut runs = vec![("learn".to_string(), learn.to_vec(), "learn.json")];
    for i in 0..3 {
        runs.push((
            format!("enforce{i}"),
            vec![
                ("org.tsem.mode", "enforce".into()),
                ("org.tsem.model", env.path("model")),
                ("org.tsem.summary", env.path("enforce.json")),
                ("org.tsem.forensics", env.path("forensics")),
            ],
            "enforce.json",
        ));
    }
    for (id, annotations, summary) in runs {
        let _ = std::fs::remove_file(&out);
        set_process(&b, WORKLOAD, &annotations);
        as_user(&b);
        let o = env.run(&b, &id);
        assert!(o.status.success(), "{id}: {}", show(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stdout.contains("greeting=hello") && stdout.contains("5 /tmp/out"),
            "{id}: {}",
            show(&o)
        );
        assert!(!stdout.contains(common::SECRET), "{id}: {}", show(&o));
        assert!(
            stderr.contains("Permission denied"),
            "{id}: the kernel's own refusal: {}",
            show(&o)
        );
        let m = std::fs::metadata(&out).unwrap();
        assert_eq!((m.uid(), m.gid()), (USER, USER), "{id}: owner of /tmp/out");
        let s = json(&env.path(summary));
        assert_eq!(s["sensor"]["unfaithful"], 0, "{id}: {s}");
        assert_eq!(s["forensics_events"], 0, "{id}: {s}");
        assert_eq!(s["denied"], 0, "{id}: {s}");
        assert_eq!(s["lost_events"], 0, "{id}: {s}");
        assert!(s["sensor"]["emulated"].as_u64().unwrap() > 0, "{id}: {s}");
    }
}
