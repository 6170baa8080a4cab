//! Starting the workload: the child is seized before its exec whatever the supervisor's own
//! dumpable state, and however many runs start at once in one process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Recorder, scratch};
/// The child is seized right after the fork when it inherited a dumpable state, and after it
/// made itself dumpable when it did not (an earlier or a concurrent run in the same process made
/// this process non-dumpable): either way a run starts and its workload runs, and a child that
/// fails before its `execve` (here: `chdir`) says why instead of a failed seize or a hang. Runs
/// on several threads at once, each making the process non-dumpable at its own moment, all
/// start (as an unprivileged user, a seize of a non-dumpable child is refused: CI found the run
/// deciding from this process's state before the fork racing with another run's change).
#[test]
fn the_workload_starts_whether_or_not_the_supervisor_is_dumpable() {
    for dumpable in [1, 0] {
        // SAFETY: plain integer arguments; a test process's own dumpable flag.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable, 0, 0, 0) },
            0
        );
        let argv: Vec<std::ffi::OsString> = vec!["/bin/sh".into(), "-c".into(), "exit 7".into()];
        let r = tsem_sensor::run(&argv, &Default::default(), Recorder::default()).unwrap();
        assert_eq!(r.exit.code(), 7, "dumpable {dumpable}");
        assert!(r.stats.execs >= 1, "dumpable {dumpable}");
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable, 0, 0, 0) };
        let cfg = tsem_sensor::SensorConfig {
            cwd: Some(scratch("no-such-cwd").join("missing")),
            ..Default::default()
        };
        match tsem_sensor::run(&argv, &cfg, Recorder::default()) {
            Err(tsem_sensor::supervisor::SpawnError::Child { stage, source }) => {
                assert_eq!(
                    stage,
                    tsem_sensor::sys::ChildStage::Chdir,
                    "dumpable {dumpable}"
                );
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            other => panic!("dumpable {dumpable}: {:?}", other.map(|r| r.exit)),
        }
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..4 {
                    let argv: Vec<std::ffi::OsString> =
                        vec!["/bin/sh".into(), "-c".into(), "exit 9".into()];
                    let r = tsem_sensor::run(&argv, &Default::default(), Recorder::default())
                        .unwrap_or_else(|e| panic!("thread {t}, run {i}: {e}"));
                    assert_eq!(r.exit.code(), 9, "thread {t}, run {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Every run asks for the same-CPU wake-up (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`) and, where the
/// kernel has it (6.6), gets it: the flag once went by pointer, was refused with `EINVAL`, and
/// nothing showed it.
#[test]
fn a_run_takes_the_same_cpu_wake_up_where_the_kernel_has_it() {
    let argv: Vec<std::ffi::OsString> = vec!["/bin/true".into()];
    let r = tsem_sensor::run(&argv, &Default::default(), Recorder::default()).unwrap();
    assert_eq!(r.exit.code(), 0);
    let has = tsem_sensor::sys::kernel_version().is_some_and(|v| v >= (6, 6));
    assert_eq!(r.stats.sync_wakeup, u64::from(has), "{:?}", r.stats);
}
