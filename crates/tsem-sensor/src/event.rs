//! What the sensor hands to the modeling layer, and what it gets back.

use std::sync::atomic::{AtomicU64, Ordering};

use tsem_core::Digest;
use tsem_core::event::{Coe, Event, FileDesc};

use crate::syscalls::Sysno;

/// One TSEM security event observed at a notified syscall, described as the kernel would.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Sequence number of the notification it came from (several events may share one).
    pub seq: u64,
    /// Calling thread.
    pub tid: i32,
    /// Calling process.
    pub tgid: i32,
    /// The syscall.
    pub syscall: Sysno,
    /// Its raw arguments.
    pub args: [u64; 6],
    /// The caller is marked untrusted.
    pub untrusted: bool,
    /// The supervisor performs the operation itself on the object described (no TOCTOU gap);
    /// false when the kernel re-reads the arguments after the verdict (see docs/sensor.md).
    pub emulated: bool,
    /// The TSEM description.
    pub event: Event,
}

/// The decision on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Let the operation happen.
    pub allow: bool,
    /// errno for a denial.
    pub errno: i32,
    /// Mark the task untrusted (it and its future descendants).
    pub taint: bool,
    /// Kill every task of the workload (a deviation policy's `kill` or `restart`): the run
    /// ends, and nothing the workload starts meanwhile survives.
    pub end_workload: bool,
}

impl Verdict {
    /// Allow.
    pub const fn allow() -> Self {
        Self {
            allow: true,
            errno: 0,
            taint: false,
            end_workload: false,
        }
    }

    /// Deny with `errno`.
    pub const fn deny(errno: i32) -> Self {
        Self {
            allow: false,
            errno,
            taint: false,
            end_workload: false,
        }
    }

    /// The same verdict, also marking the task untrusted.
    pub const fn tainting(mut self) -> Self {
        self.taint = true;
        self
    }

    /// The same verdict, also ending the workload (every task is killed).
    pub const fn ending(mut self) -> Self {
        self.end_workload = true;
        self
    }
}

/// An exec that completed (ptrace exec stop), with the identity computed for the task.
#[derive(Debug, Clone)]
pub struct ExecEvent {
    /// The task (thread group leader after the exec).
    pub tid: i32,
    /// The task's comm after the exec.
    pub comm: String,
    /// Credentials after the exec (bprm_committed_creds).
    pub coe: Coe,
    /// The executable actually loaded (`/proc/<pid>/exe`).
    pub exe: FileDesc,
    /// The new TASK_ID.
    pub task_id: Digest,
    /// PTASK_ID used for it.
    pub p_task_id: Digest,
    /// The new task instance.
    pub ttd: u64,
}

/// The modeling layer plugged into the sensor.
pub trait EventHandler: Send + 'static {
    /// Decide on one event. Called from the notification thread, in arrival order.
    fn on_event(&mut self, ev: &RawEvent) -> Verdict;

    /// A task executed a program (informational; TASK_ID is already computed).
    fn on_exec(&mut self, _ev: &ExecEvent) {}

    /// A task exited (its thread id may be reused from now on).
    fn on_exit(&mut self, _tid: i32) {}

    /// Paths are named in `view` (crate::view), told before the first event.
    fn on_view(&mut self, _view: &crate::view::View) {}
}

impl<F: FnMut(&RawEvent) -> Verdict + Send + 'static> EventHandler for F {
    fn on_event(&mut self, ev: &RawEvent) -> Verdict {
        self(ev)
    }
}

/// Counters of a supervised run. "Nothing lost": every notification is answered, and each one
/// either produced its events or is counted in `lost`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Notifications received.
    pub notifications: AtomicU64,
    /// TSEM events handed to the handler.
    pub events: AtomicU64,
    /// Notifications answered with a denial because of a verdict.
    pub denied: AtomicU64,
    /// Notifications performed by the supervisor (ADDFD or emulated result).
    pub emulated: AtomicU64,
    /// Notifications answered with CONTINUE.
    pub continued: AtomicU64,
    /// Notifications of syscalls that map to no TSEM event.
    pub unmodeled: AtomicU64,
    /// Notifications whose target went away before the answer (ENOENT on SEND/ADDFD).
    pub abandoned: AtomicU64,
    /// Notifications that could not be described (answered with an error, not modeled).
    pub lost: AtomicU64,
    /// Tasks killed because the program loaded differed from the one approved.
    pub exec_mismatch: AtomicU64,
    /// Calls refused because they would reach the digest store (see `digest_cache`).
    pub protected: AtomicU64,
    /// Calls refused in every mode: those that would escape the sensor or reach a task outside
    /// the workload (the supervisor above all: `CLONE_UNTRACED`, pidfds, process_vm_* and ptrace
    /// on tasks that are not the workload's, stop signals reaching the supervisor), and those the
    /// sensor cannot describe or perform (SysV IPC, keyctl, SCM_CREDENTIALS sends, writes to
    /// running code; docs/sensor.md).
    pub refused: AtomicU64,
    /// Calls the supervisor could not perform as the task would (other credentials): refused
    /// with EPERM when enforcing, else continued by the kernel after their verdict.
    pub unfaithful: AtomicU64,
    /// Calls whose arguments the supervisor could not read or decode (a bad pointer, a path
    /// without its NUL, a malformed structure): answered with the kernel's error for them,
    /// never continued.
    pub undecodable: AtomicU64,
    /// Notification listeners that took `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (the same-CPU
    /// wake-up; 0 on kernels before 6.6, where notifications cost more).
    pub sync_wakeup: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// See [`Counters::notifications`].
    pub notifications: u64,
    /// See [`Counters::events`].
    pub events: u64,
    /// See [`Counters::denied`].
    pub denied: u64,
    /// See [`Counters::emulated`].
    pub emulated: u64,
    /// See [`Counters::continued`].
    pub continued: u64,
    /// See [`Counters::unmodeled`].
    pub unmodeled: u64,
    /// See [`Counters::abandoned`].
    pub abandoned: u64,
    /// See [`Counters::lost`].
    pub lost: u64,
    /// See [`Counters::exec_mismatch`].
    pub exec_mismatch: u64,
    /// See [`Counters::protected`].
    pub protected: u64,
    /// See [`Counters::refused`].
    pub refused: u64,
    /// See [`Counters::unfaithful`].
    pub unfaithful: u64,
    /// See [`Counters::undecodable`].
    pub undecodable: u64,
    /// See [`Counters::sync_wakeup`].
    pub sync_wakeup: u64,
    /// Tasks followed.
    pub tasks: u64,
    /// Exec stops.
    pub execs: u64,
    /// Processes that outlived the one that started them (detached background work), as far
    /// as the run followed them.
    pub outlived: u64,
}

/// The counters of several incarnations of a workload (a restarted one), added up.
impl std::ops::Add for Stats {
    type Output = Stats;
    fn add(self, o: Stats) -> Stats {
        Stats {
            notifications: self.notifications + o.notifications,
            events: self.events + o.events,
            denied: self.denied + o.denied,
            emulated: self.emulated + o.emulated,
            continued: self.continued + o.continued,
            unmodeled: self.unmodeled + o.unmodeled,
            abandoned: self.abandoned + o.abandoned,
            lost: self.lost + o.lost,
            exec_mismatch: self.exec_mismatch + o.exec_mismatch,
            protected: self.protected + o.protected,
            refused: self.refused + o.refused,
            unfaithful: self.unfaithful + o.unfaithful,
            undecodable: self.undecodable + o.undecodable,
            sync_wakeup: self.sync_wakeup + o.sync_wakeup,
            tasks: self.tasks + o.tasks,
            execs: self.execs + o.execs,
            outlived: self.outlived + o.outlived,
        }
    }
}

impl Counters {
    /// Add one to `c`.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            notifications: g(&self.notifications),
            events: g(&self.events),
            denied: g(&self.denied),
            emulated: g(&self.emulated),
            continued: g(&self.continued),
            unmodeled: g(&self.unmodeled),
            abandoned: g(&self.abandoned),
            lost: g(&self.lost),
            exec_mismatch: g(&self.exec_mismatch),
            protected: g(&self.protected),
            refused: g(&self.refused),
            unfaithful: g(&self.unfaithful),
            undecodable: g(&self.undecodable),
            sync_wakeup: g(&self.sync_wakeup),
            tasks: 0,
            execs: 0,
            outlived: 0,
        }
    }
}
