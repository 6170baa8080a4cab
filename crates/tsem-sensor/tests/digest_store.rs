//! The digest store kept across runs: reused by the next run, out of the workload's reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsString;

use common::{Recorder, scratch};
use tsem_core::HashAlg;
use tsem_sensor::SensorConfig;
use tsem_sensor::digest_cache::Store;

fn run_with_store(
    script: &str,
    dir: &std::path::Path,
    store: Store,
) -> tsem_sensor::Report<Recorder> {
    let argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let cfg = SensorConfig {
        cwd: Some(dir.to_path_buf()),
        digest_cache: Some(store),
        ..SensorConfig::default()
    };
    tsem_sensor::run(&argv, &cfg, Recorder::default()).unwrap()
}

#[test]
fn the_next_run_reuses_digests_and_the_workload_cannot_reach_the_store() {
    let d = scratch("store");
    let path = d.join("cache").join("digests");
    let r = run_with_store(
        "/bin/true",
        &d,
        Store::open(&path, HashAlg::Sha256).unwrap(),
    );
    assert_eq!(r.exit.code(), 0);
    assert_eq!(r.digest_cache_error, None);
    let first = Store::open(&path, HashAlg::Sha256).unwrap();
    // /bin/sh, /bin/true, the loader and libc at least.
    assert!(
        first.entries().len() >= 3,
        "{} entries",
        first.entries().len()
    );

    // Every way at the store is refused, in learning mode too; the workload's own files next
    // to it (in an ancestor of the store's directory) are not, nor is a create of an entry that
    // exists (`mkdir -p` of the store's directory: the kernel's EEXIST, nothing changes).
    let script = r#"n=0
        true > cache/digests 2>/dev/null || n=$((n+1))
        echo x >> cache/digests 2>/dev/null || n=$((n+1))
        cat cache/digests > /dev/null 2>&1 || n=$((n+1))
        touch cache/new 2>/dev/null || n=$((n+1))
        rm -f cache/digests 2>/dev/null || n=$((n+1))
        mv cache cache2 2>/dev/null || n=$((n+1))
        chmod 777 cache 2>/dev/null || n=$((n+1))
        ln cache/digests hardlink 2>/dev/null || n=$((n+1))
        mv "$PWD" "$PWD.moved" 2>/dev/null || n=$((n+1))
        echo mine > own-file || exit 99
        mkdir -p "$PWD/cache" || exit 98
        mkdir cache 2>&1 | grep -q 'File exists' || exit 97
        exit $n"#;
    let r = run_with_store(script, &d, first.clone());
    assert_eq!(
        r.exit.code(),
        9,
        "every attempt must fail; stats {:?}",
        r.stats
    );
    assert!(r.stats.protected >= 9, "protected {}", r.stats.protected);
    assert_eq!(r.stats.lost, 0);
    assert!(!d.join("cache/new").exists() && !d.join("cache2").exists());
    assert!(!d.join("hardlink").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("own-file")).unwrap(),
        "mine\n"
    );
    let after = Store::open(&path, HashAlg::Sha256).unwrap();
    for (k, v) in &first.entries() {
        assert_eq!(
            after.entries().get(k),
            Some(v),
            "an entry was lost or changed"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}
