//! Fail closed: when the supervisor dies, the workload dies with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use tsem_sensor::{EventHandler, ExecEvent, RawEvent, SensorConfig, Verdict, sys};

/// Reports the pid of the first `sleep` it sees executed, then allows everything.
struct Reporter(Option<OwnedFd>);

impl EventHandler for Reporter {
    fn on_event(&mut self, _ev: &RawEvent) -> Verdict {
        Verdict::allow()
    }
    fn on_exec(&mut self, ev: &ExecEvent) {
        if ev.comm == "sleep"
            && let Some(fd) = self.0.take()
        {
            sys::write_all(fd.as_fd(), &ev.tid.to_le_bytes()).unwrap();
        }
    }
}

#[test]
fn workload_is_killed_when_the_supervisor_dies() {
    let (r, w) = sys::pipe().unwrap();
    let mut w = Some(w);
    // The supervisor runs in a child process so that it can be killed.
    // SAFETY: this test binary runs this one test; the harness's other threads hold no lock the
    // child needs (it starts a supervisor of its own, as `tsem run` does in a fresh process).
    let sup = unsafe {
        sys::fork_fn(move || {
            let argv: Vec<OsString> =
                vec!["/bin/sh".into(), "-c".into(), "sleep 300; exit 0".into()];
            match tsem_sensor::run(&argv, &SensorConfig::default(), Reporter(w.take())) {
                Ok(_) => 0,
                Err(_) => 1,
            }
        })
    }
    .unwrap();
    let mut b = [0u8; 4];
    assert_eq!(
        sys::read(r.as_fd(), &mut b).unwrap(),
        4,
        "the workload never ran"
    );
    let sleeper = i32::from_le_bytes(b);
    let pidfd = sys::pidfd_open(sleeper, 0).unwrap();
    // Wait until it is past every monitored syscall and asleep, so that what ends it is the
    // supervisor's death (PTRACE_O_EXITKILL), not a failing syscall.
    let wchan = format!("/proc/{sleeper}/wchan");
    while !std::fs::read_to_string(&wchan)
        .unwrap_or_default()
        .contains("nanosleep")
    {
        std::thread::yield_now();
    }

    sys::kill(sup, libc::SIGKILL).unwrap();
    let st = sys::waitpid(sup).unwrap();
    assert!(libc::WIFSIGNALED(st));

    // The sleeper must die (PTRACE_O_EXITKILL) rather than sleep on for five minutes. The
    // timeout only keeps a broken build from hanging the test run.
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, 60_000) };
    assert_eq!(n, 1, "the workload survived its supervisor");
}
