//! The kernel backstop (the model's Landlock access set) inside an enforced container, judged by
//! effect: with the sensor's decisions switched off (`tsem run --backstop-only`, reached through
//! tsem-runtime's hidden `--tsem-test-backstop-only` and the consent variable), the container's
//! unmodeled read still fails in the kernel (EACCES, not the sensor's EPERM) and the secret is not
//! printed; a plain enforced run reports the backstop and refuses nothing it learned.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{SECRET, bundle, json, set_process, show};

const CONSENT: (&str, &str) = ("TSEM_TEST_BACKSTOP_ONLY", "sensor-decides-nothing");

/// Landlock in this kernel (`LANDLOCK_CREATE_RULESET_VERSION`), else one line and false.
fn landlock() -> bool {
    // SAFETY: the version query takes no memory (a null attribute, size 0).
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if abi < 1 {
        println!("skipped: the kernel has no Landlock");
    }
    abi >= 1
}

#[test]
fn the_backstop_stops_a_read_the_sensor_lets_through_in_the_container() {
    let Some(env) = common::env("backstop") else {
        return;
    };
    if !landlock() {
        return;
    }
    let b = bundle(
        &env.dir.join("bundle"),
        "cat /etc/app.conf",
        &[
            ("org.tsem.mode", "learn".into()),
            ("org.tsem.model-out", env.path("model")),
        ],
    );
    let o = env.run(&b, "learn");
    assert!(o.status.success(), "{}", show(&o));
    let model = std::fs::read_to_string(env.path("model")).unwrap();
    assert!(
        model.contains("landlock fs read-file /etc/app.conf"),
        "{model}"
    );

    // Nothing but tsem refuses the read: unsupervised, the secret is printed.
    let both = "cat /etc/app.conf /etc/secret";
    set_process(&b, both, &[]);
    let o = env.run(&b, "plain");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(SECRET),
        "{}",
        show(&o)
    );

    // Enforced with its backstop: the learned read goes through, nothing is denied.
    let enforce = |summary: &str| {
        vec![
            ("org.tsem.mode", "enforce".to_string()),
            ("org.tsem.model", env.path("model")),
            ("org.tsem.summary", env.path(summary)),
        ]
    };
    set_process(&b, "cat /etc/app.conf", &enforce("enforce.json"));
    let o = env.run(&b, "enforce");
    assert!(o.status.success(), "{}", show(&o));
    let s = json(&env.path("enforce.json"));
    assert_ne!(s["landlock"]["status"], "not_enforced", "{s}");
    assert!(s["landlock"]["rules"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["denied"], 0, "{s}");

    // The sensor lets every call through: the kernel alone refuses the unmodeled read (the
    // switch takes no outputs).
    let backstop_only = [
        ("org.tsem.mode", "enforce".to_string()),
        ("org.tsem.model", env.path("model")),
    ];
    set_process(&b, both, &backstop_only);
    let o = env
        .runtime()
        .arg("--tsem-test-backstop-only")
        .env(CONSENT.0, CONSENT.1)
        .args(["run", "-b"])
        .arg(&b)
        .arg("backstop")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("greeting=hello"), "{}", show(&o));
    assert!(!out.contains(SECRET), "the secret was read: {}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "not refused by the kernel (EACCES): {}",
        show(&o)
    );

    // The switch is never on by accident: without the consent variable nothing runs.
    set_process(&b, "echo ran > /tmp/ran", &backstop_only);
    let o = env
        .runtime()
        .arg("--tsem-test-backstop-only")
        .env_remove(CONSENT.0)
        .args(["run", "-b"])
        .arg(&b)
        .arg("no-consent")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(CONSENT.0),
        "{}",
        show(&o)
    );
    assert!(!b.join("rootfs/tmp/ran").exists(), "{}", show(&o));
}
