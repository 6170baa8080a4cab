//! Calls that reach another task: signals (task_kill), pidfds, another task's memory and
//! descriptors (ptrace_access_check, file_receive), and `CLONE_UNTRACED`.
//!
//! The supervisor is never a legal target. It is non-dumpable, so a workload with the same uid
//! but without `CAP_SYS_PTRACE` is refused by the kernel; a root workload would not be, so the
//! sensor refuses in every mode, counted in `refused`: a pidfd, `process_vm_*`, `pidfd_getfd`
//! or ptrace attach of any task that is not the workload's (the supervisor above all), an open
//! of anything under the supervisor's `/proc/<pid>` or of another outside process's
//! `/proc/<pid>` directory (a pidfd to `pidfd_send_signal`), a path through a magic link of
//! either (`/proc/<pid>/fd/N`, `cwd`, `root`...), a signal to one of its threads, a
//! broadcast signal (`kill(-1, sig)`), and a stop signal to its process group. The event is
//! still described and handed to the model first, so the attempt is recorded (forensics when
//! sealed or enforcing). A signal that only ends the supervisor ends the workload with it
//! (fail closed), so process-group signals other than stops are left to the model.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use tsem_core::Digest;
use tsem_core::event::{Cell, EventType};

use super::decode::SigTarget;
use super::target::Ident;
use super::{Call, Continuation, Fail, Notifier, Reply, Target, is, stat_of, verdict};
use crate::event::{Counters, EventHandler};
use crate::sys;

/// `PTRACE_MODE_ATTACH | PTRACE_MODE_REALCREDS`: what `process_vm_*` and `pidfd_getfd` check.
const ATTACH_REALCREDS: u32 = 0x02 | 0x08;

/// `pidfd_send_signal` flag: signal the target's process group.
const PIDFD_SIGNAL_PROCESS_GROUP: u64 = 1 << 2;

/// Who a pid names, as the supervisor sees it.
enum Whom {
    /// A task of the workload, with its TASK_ID.
    Workload(Digest),
    /// One of the supervisor's threads.
    Supervisor,
    /// Any other task, or none.
    Outsider,
}

fn is_stop_signal(sig: u32) -> bool {
    [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&(sig as i32))
}

/// The pid a pidfd refers to (`Pid:` of its fdinfo; -1 once the task is gone).
fn pidfd_pid(fd: BorrowedFd<'_>) -> Result<i32, Fail> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok());
    match pid {
        // Not a pidfd.
        None => Err(Fail::Errno(libc::EBADF)),
        Some(p) if p <= 0 => Err(Fail::Errno(libc::ESRCH)),
        Some(p) => Ok(p),
    }
}

/// `/proc/<pid>/[task/<tid>/](fd/N|cwd|root|exe|ns/X|map_files/R)[/rest]` split into the pid,
/// the magic link and the rest.
fn split_magic(path: &[u8]) -> Option<(i32, String, String)> {
    let s = std::str::from_utf8(path).ok()?;
    let comps: Vec<&str> = s.strip_prefix("/proc/")?.split('/').collect();
    let pid = comps.first()?.parse::<i32>().ok()?;
    let mut i = 1;
    if comps.get(i) == Some(&"task") {
        comps.get(i + 1)?.parse::<i32>().ok()?;
        i += 2;
    }
    let hop_len = match *comps.get(i)? {
        "cwd" | "root" | "exe" => i + 1,
        "fd" | "ns" | "map_files" if comps.get(i + 1).is_some_and(|c| !c.is_empty()) => i + 2,
        _ => return None,
    };
    let hop = format!("/proc/{}", comps[..hop_len].join("/"));
    Some((pid, hop, comps[hop_len..].join("/")))
}

impl<H: EventHandler> Notifier<H> {
    /// Whether `pid` is one of the supervisor's threads.
    pub(super) fn is_supervisor(&self, pid: i32) -> bool {
        pid == self.self_pid
            || (pid > 0 && std::path::Path::new(&format!("/proc/self/task/{pid}")).exists())
    }

    fn whom(&self, pid: i32) -> Whom {
        if pid > 0
            && let Some(t) = self.task_of(pid)
        {
            return Whom::Workload(t);
        }
        if self.is_supervisor(pid) {
            Whom::Supervisor
        } else {
            Whom::Outsider
        }
    }

    /// Refuse, in every mode and counted, a call that would reach outside the workload or that
    /// the sensor cannot describe.
    pub(super) fn refuse(&self) -> Reply {
        Counters::bump(&self.shared.counters.refused);
        Reply::Error(libc::EPERM)
    }

    /// Record the event (the model sees the attempt), then refuse the call whatever the
    /// verdict.
    pub(super) fn ask_then_refuse(&mut self, call: &mut Call, ty: EventType, cell: Cell) -> Reply {
        let _ = self.ask(call, ty, cell);
        self.refuse()
    }

    /// Whether a signal call would reach the supervisor (see the module documentation).
    pub(super) fn signal_reaches_supervisor(&self, call: &Call, to: SigTarget, sig: u32) -> bool {
        match to {
            SigTarget::Thread { tgid, tid } => self.is_supervisor(tgid) || self.is_supervisor(tid),
            SigTarget::Kill(pid) => {
                if pid > 0 {
                    return self.is_supervisor(pid);
                }
                if sig == 0 {
                    return false;
                }
                if pid == -1 {
                    return true;
                }
                let group = if pid == 0 {
                    sys::getpgid(call.status.tgid).unwrap_or(0)
                } else {
                    pid.checked_neg().unwrap_or(0)
                };
                is_stop_signal(sig) && sys::getpgid(0).is_ok_and(|own| own == group)
            }
            SigTarget::Task(pid) => self.is_supervisor(pid),
        }
    }

    /// An object under the supervisor's own `/proc/<pid>` (its memory, environment, maps...),
    /// however it was named.
    pub(super) fn is_supervisor_proc(&mut self, p: BorrowedFd<'_>, st: &libc::stat) -> bool {
        self.proc_entry(p, st)
            .is_some_and(|(n, _)| self.is_supervisor(n))
    }

    /// For an object under `/proc/<pid>`: that pid, and whether the object is the
    /// `/proc/<pid>` directory itself (which `pidfd_send_signal` takes as a pidfd).
    fn proc_entry(&mut self, p: BorrowedFd<'_>, st: &libc::stat) -> Option<(i32, bool)> {
        if self.desc.magic(p, st) != crate::describe::PROC_MAGIC {
            return None;
        }
        let abs = self.desc.fd_path(p);
        let inner = self.desc.path(p, st, &abs, None).pathname;
        let bytes = inner.as_bytes();
        let start = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
        let mut comps = bytes[start..]
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty());
        let first = comps.next()?;
        let pid = std::str::from_utf8(first).ok()?.parse::<i32>().ok()?;
        Some((pid, comps.next().is_none() && is(st, libc::S_IFDIR)))
    }

    /// A `/proc/<pid>` directory of a task outside the workload: a descriptor of it is a
    /// pidfd to `pidfd_send_signal`, and another thread could `dup2` it over a descriptor
    /// already checked there, so the workload may not hold one (refused at the open).
    pub(super) fn is_outside_pid_dir(&mut self, p: BorrowedFd<'_>, st: &libc::stat) -> bool {
        self.proc_entry(p, st)
            .is_some_and(|(n, dir)| dir && self.task_of(n).is_none())
    }

    /// The task a descriptor passed as a pidfd names, as the kernel takes it
    /// (`pidfd_to_pid`): a pidfd, or a `/proc/<tgid>` directory.
    fn signalled_pid(&mut self, f: BorrowedFd<'_>) -> Result<i32, Fail> {
        match pidfd_pid(f) {
            Err(Fail::Errno(libc::EBADF)) => {
                let st = sys::fstat(f)?;
                match self.proc_entry(f, &st) {
                    Some((pid, true)) => Ok(pid),
                    _ => Err(Fail::Errno(libc::EBADF)),
                }
            }
            r => r,
        }
    }

    /// For a path that goes through a magic link of a workload task's `/proc/<pid>` entry
    /// (`fd/N`, `cwd`, `root`, `exe`, `ns/X`, `map_files/R`, also under `task/<tid>/`): that
    /// link followed, as the one hop the kernel takes there, and the rest of the path to walk
    /// from it without magic links, so that no later component (a symlink to
    /// `/proc/<supervisor>/fd/N`, `root/proc/<supervisor>/...`) reaches the supervisor's own
    /// descriptors. `None` when the path names no such link (it is then walked without magic
    /// links at all, as are links of tasks outside the workload).
    ///
    /// The kernel lets a task reach its own process's links whatever its credentials; another
    /// task's take a ptrace access check with the caller's, which the thread wears.
    ///
    /// A magic link of the supervisor or of a task outside the workload, as the first hop or
    /// right after a workload's `root`/`cwd` hop (`/proc/<own>/root/proc/<supervisor>/fd/N`),
    /// is refused (EPERM, counted in `refused`): walked without magic links it would fail
    /// anyway, but uncounted.
    pub(super) fn magic_hop(&self, tgid: i32, path: &[u8]) -> Option<Result<Target, Fail>> {
        let (pid, hop, rest) = split_magic(path)?;
        let refused = || {
            Counters::bump(&self.shared.counters.refused);
            Some(Err(Fail::Errno(libc::EPERM)))
        };
        if self.is_supervisor(pid) || self.task_of(pid).is_none() {
            return refused();
        }
        if let Some((next, _, _)) = split_magic(format!("/{rest}").as_bytes())
            && (hop.ends_with("/root") || hop.ends_with("/cwd"))
            && (self.is_supervisor(next) || self.task_of(next).is_none())
        {
            return refused();
        }
        Some(self.after_hop(pid == tgid, &hop, &rest))
    }

    fn after_hop(&self, own: bool, hop: &str, rest: &str) -> Result<Target, Fail> {
        let base = if own {
            sys::inspecting(|| sys::open(hop, libc::O_PATH))?
        } else {
            sys::open(hop, libc::O_PATH)?
        };
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            // The object is the link's target itself: name it through our own descriptor.
            let own = format!("/proc/self/fd/{}", base.as_raw_fd());
            return Ok(Target {
                dir: Some(base),
                path: super::cstring(own.into_bytes())?,
                resolve: 0,
            });
        }
        Ok(Target {
            dir: Some(base),
            path: super::cstring(rest.as_bytes().to_vec())?,
            resolve: libc::RESOLVE_NO_MAGICLINKS,
        })
    }

    /// Whether the caller's pid numbers are ours (same pid namespace).
    pub(super) fn same_pidns(&self, call: &Call) -> bool {
        let theirs = self.task.identity(call.tid, Ident::PidNs);
        theirs.is_some() && theirs == stat_of("/proc/self/ns/pid")
    }

    /// `pidfd_open`: performed by the supervisor for a task of the workload (the pidfd names
    /// the task checked, whatever happens to the number later); refused for any other task.
    /// TSEM has no event for it: what a pidfd allows is checked when it is used.
    pub(super) fn sys_pidfd_open(
        &mut self,
        call: &mut Call,
        pid: i32,
        flags: u32,
    ) -> Result<Reply, Fail> {
        if pid <= 0 {
            return Err(Fail::Errno(libc::EINVAL));
        }
        if !self.same_pidns(call) || !matches!(self.whom(pid), Whom::Workload(_)) {
            return Ok(self.refuse());
        }
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        call.emulated = true;
        let fd = sys::pidfd_open(pid, flags)?;
        // The task may have ended and its number been reused in between.
        if self.task_of(pid).is_none() {
            return Ok(self.refuse());
        }
        Ok(Reply::AddFd(fd, true))
    }

    /// `pidfd_getfd`: ptrace_access_check on the pidfd's task (none for the caller's own
    /// process, as in the kernel), then file_receive of the descriptor. The supervisor fetches
    /// it through the caller's own pidfd and injects it.
    pub(super) fn sys_pidfd_getfd(
        &mut self,
        call: &mut Call,
        pidfd_num: i32,
        fd: i32,
        flags: u64,
    ) -> Result<Reply, Fail> {
        if flags != 0 {
            return Err(Fail::Errno(libc::EINVAL));
        }
        let pidfd = self.target_file(call, pidfd_num)?;
        let pid = pidfd_pid(pidfd.as_fd())?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let zero = Digest::zero(self.shared.alg.size());
        let caller_tgid = call.status.tgid;
        let target_tgid = self.task.status(pid).map(|s| s.tgid).unwrap_or(0);
        self.performs(call);
        if target_tgid != caller_tgid {
            let cell = |child| Cell::PtraceAccess {
                child,
                mode: ATTACH_REALCREDS,
            };
            match self.whom(pid) {
                Whom::Workload(t) => {
                    let v = self.ask(call, EventType::PtraceAccessCheck, cell(t));
                    if let Some(r) = Self::verdict_reply(v) {
                        return Ok(r);
                    }
                }
                _ => {
                    return Ok(self.ask_then_refuse(
                        call,
                        EventType::PtraceAccessCheck,
                        cell(zero),
                    ));
                }
            }
        }
        let file = sys::pidfd_getfd(pidfd.as_fd(), fd)?;
        let st = sys::fstat(file.as_fd())?;
        let flags = sys::status_flags(file.as_fd()).unwrap_or(0) as u32;
        let reader = if is(&st, libc::S_IFREG) {
            self.desc.reader_for(file.as_fd(), &st)
        } else {
            None
        };
        let desc = self
            .desc
            .file(file.as_fd(), reader.as_ref().map(|r| r.as_fd()), &st, flags);
        let (v, allowed) = self.ask_token(call, EventType::FileReceive, Cell::File(desc));
        let Some(allowed) = allowed else {
            return Ok(Reply::Error(v.errno));
        };
        // Fetched with the supervisor's credentials: with other ones the kernel must do it.
        if let Some(r) = self.gate(call, Continuation::Allowed(allowed)) {
            return Ok(r);
        }
        Ok(Reply::AddFd(file, true))
    }

    /// `pidfd_send_signal`: task_kill on the pidfd's task, like kill(2).
    pub(super) fn sys_pidfd_send_signal(
        &mut self,
        call: &mut Call,
        pidfd_num: i32,
        sig: u32,
        flags: u64,
    ) -> Result<Reply, Fail> {
        let pidfd = self.target_file(call, pidfd_num)?;
        let pid = self.signalled_pid(pidfd.as_fd())?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if sig == libc::SIGURG as u32 {
            return Ok(self.no_event("task_kill skips SIGURG (spec §1.3)"));
        }
        let zero = Digest::zero(self.shared.alg.size());
        let group = flags & PIDFD_SIGNAL_PROCESS_GROUP != 0;
        let whom = self.whom(pid);
        let (target, cross_ns) = match (&whom, group) {
            (_, true) => (zero, 0),
            (Whom::Workload(t), false) => (*t, 0),
            _ => (zero, 1),
        };
        let cell = Cell::TaskKill {
            target,
            sig,
            cross_ns,
        };
        let reaches = match whom {
            Whom::Supervisor => true,
            _ if group && sig != 0 && is_stop_signal(sig) => {
                let theirs = sys::getpgid(pid).unwrap_or(0);
                sys::getpgid(0).is_ok_and(|own| own == theirs)
            }
            _ => false,
        };
        if reaches {
            return Ok(self.ask_then_refuse(call, EventType::TaskKill, cell));
        }
        self.simple(call, EventType::TaskKill, cell)
    }

    /// `process_vm_readv`/`process_vm_writev`: ptrace_access_check on the target (none for the
    /// caller's own process, as in the kernel); the target is a number in a register, so the
    /// kernel acts on the task checked. Any task outside the workload is refused.
    pub(super) fn sys_process_vm(&mut self, call: &mut Call, pid: i32) -> Result<Reply, Fail> {
        let zero = Digest::zero(self.shared.alg.size());
        let cell = |child| Cell::PtraceAccess {
            child,
            mode: ATTACH_REALCREDS,
        };
        if !self.same_pidns(call) {
            return Ok(self.ask_then_refuse(call, EventType::PtraceAccessCheck, cell(zero)));
        }
        match self.whom(pid) {
            Whom::Workload(t) => {
                let same_process = self
                    .task
                    .status(pid)
                    .is_ok_and(|s| s.tgid == call.status.tgid);
                if same_process {
                    return Ok(self.no_event(
                        "process_vm_* within the caller's own process: no ptrace check",
                    ));
                }
                self.simple(call, EventType::PtraceAccessCheck, cell(t))
            }
            _ => Ok(self.ask_then_refuse(call, EventType::PtraceAccessCheck, cell(zero))),
        }
    }

    /// `clone` with `CLONE_UNTRACED` (the only clone the filter notifies): the child would run
    /// with no exec stop and no identity of its own, and outlive the supervisor. Refused in
    /// every mode, and the caller is marked untrusted.
    pub(super) fn sys_clone_untraced(&mut self, call: &mut Call, flags: u64) -> Reply {
        if flags & u64::from(crate::filter::CLONE_UNTRACED) == 0 {
            return self.no_event("an ordinary clone: the tracer follows the child");
        }
        call.task.untrusted = true;
        verdict::taint(&self.shared, call.tid);
        self.refuse()
    }

    /// ptrace attach or seize of `pid`: a task outside the workload (above all the
    /// supervisor, which a root workload could attach) is refused after its event.
    pub(super) fn ptrace_attach(&mut self, call: &mut Call, pid: i32) -> Result<Reply, Fail> {
        let zero = Digest::zero(self.shared.alg.size());
        // PTRACE_MODE_ATTACH | PTRACE_MODE_REALCREDS.
        let cell = |child| Cell::PtraceAccess {
            child,
            mode: ATTACH_REALCREDS,
        };
        match self.whom(pid) {
            Whom::Workload(t) if self.same_pidns(call) => {
                self.simple(call, EventType::PtraceAccessCheck, cell(t))
            }
            _ => Ok(self.ask_then_refuse(call, EventType::PtraceAccessCheck, cell(zero))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn magic_links_split_after_the_first_hop() {
        let sp = split_magic;
        assert_eq!(
            sp(b"/proc/7/fd/3"),
            Some((7, "/proc/7/fd/3".into(), String::new()))
        );
        assert_eq!(
            sp(b"/proc/7/root/proc/1/fd/3"),
            Some((7, "/proc/7/root".into(), "proc/1/fd/3".into()))
        );
        assert_eq!(
            sp(b"/proc/7/task/9/cwd/a/b"),
            Some((7, "/proc/7/task/9/cwd".into(), "a/b".into()))
        );
        assert_eq!(sp(b"/proc/7/status"), None);
        assert_eq!(sp(b"/proc/7/fd/"), None);
        assert_eq!(sp(b"/proc/self/fd/3"), None);
        assert_eq!(sp(b"/etc/passwd"), None);
    }
}
