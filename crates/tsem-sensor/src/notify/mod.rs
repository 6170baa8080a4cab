//! The notification loop: receive, read the target's arguments, re-validate, describe the object
//! as TSEM would, ask the modeling layer, then perform the operation ourselves (ADDFD or an
//! emulated result) or let the kernel continue.
//!
//! Paths resolve in the target's own root (`/proc/<tid>/root`, `RESOLVE_IN_ROOT`) when it is not
//! ours. For each call the notification thread wears the target's credentials when it can
//! (`decide.rs`, `sys::wear`), so that its permission checks are the target's; it performs a
//! call only when it wears them. Otherwise the call is described and decided like any other,
//! then refused when enforcing, or continued, counted in `unfaithful`.

mod attr;
mod contents;
mod decide;
mod decode;
mod dispatch;
mod exec;
mod inode;
mod ipc;
mod links;
mod memory;
mod mount;
mod names;
mod net;
mod open;
mod paths;
mod reach;
mod roots;
mod socket;
mod target;
mod task;
#[cfg(test)]
mod tests;
mod verdict;

pub use exec::mmap_flags_field;
pub use open::{EXEC_FLAGS, FMODE_EXEC_FLAG, KERNEL_O_LARGEFILE, open_f_flags};
pub use socket::parse_sockaddr;

use attr::SetAttr;
use paths::{Parent, cstring, is, names_other_proc, open_dir, rewrite_self, split_parent};
pub(crate) use verdict::submit;
use verdict::{Allowed, Continuation};

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use tsem_core::HashAlg;
use tsem_core::event::FileDesc;

use crate::describe::Describer;
use crate::event::{Counters, EventHandler};
use crate::procfs::Status;
use crate::sys::{self, Notif, Response};
use crate::syscalls::Sysno;
use crate::tree::{Task, Tree};

/// Errors that stop the notification loop (the workload is then killed: fail closed).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// RECV or SEND failed for a reason other than the target going away.
    #[error("seccomp listener: {0}")]
    Listener(#[source] io::Error),
    /// A notification thread could not take its own credentials back after wearing a task's.
    #[error("notification thread: {0}")]
    Credentials(#[source] sys::WearError),
}

/// State shared by the notification thread and the tracer thread.
pub(crate) struct Shared<H> {
    pub tree: Mutex<Tree>,
    pub handler: Mutex<H>,
    pub counters: std::sync::Arc<Counters>,
    pub alg: HashAlg,
    pub mapping: tsem_core::map::Mapping,
    pub digests: crate::describe::DigestCache,
    /// The supervisor's user namespace: a task's credentials mean the same only in it.
    pub own_userns: u64,
    pub own_root: (u64, u64),
    pub own_netns: u64,
    /// Where pathnames are named from (crate::view).
    pub view: crate::view::View,
    /// The digest store's inodes, which the workload may not touch.
    pub protected: crate::digest_cache::Protected,
    /// What the workload created, seen alike by every describer.
    pub objects: crate::describe::SharedObjects,
    /// Per thread: (task serial, its /proc status, whether its root and user namespace are
    /// ours). Valid until the
    /// task calls something that changes them, execs, or its tid is reused. Shared by the
    /// notification threads: the call that invalidates an entry may be answered by another
    /// thread than the next one of the same task.
    pub status: Mutex<HashMap<i32, CachedStatus>>,
    /// Per thread: the capabilities its continued capset's event claimed, and those it had
    /// before (see `Notifier::check_capset`).
    pub capset_claims: Mutex<HashMap<i32, CapsetClaim>>,
    /// Paths known to be their own pathname ([`names`]).
    pub names: Mutex<names::Names>,
    /// Regular files recently opened by the supervisor and injected, see [`Injected`].
    pub injected: Mutex<std::collections::VecDeque<Injected>>,
    /// Written once when the workload is gone, to wake every notification thread.
    pub stop: OwnedFd,
    /// See [`SensorConfig::mechanism_only`](crate::SensorConfig::mechanism_only).
    pub mechanism_only: bool,
    /// See [`SensorConfig::mechanism_emulates_opens`](crate::SensorConfig::mechanism_emulates_opens):
    /// in a mechanism-only run, opens are performed (and only they reach the handlers).
    pub floor_emulates_opens: bool,
    /// See [`SensorConfig::observe`](crate::SensorConfig::observe).
    pub observe: crate::syscalls::Observe,
    /// See [`SensorConfig::hash_pseudo_exec`](crate::SensorConfig::hash_pseudo_exec).
    pub hash_pseudo_exec: bool,
    /// Notification threads block in RECV rather than epoll ([`sys::recv_returns_on_hangup`]).
    pub recv_blocks: bool,
    /// See [`SensorConfig::enforcing`](crate::SensorConfig::enforcing).
    pub enforcing: bool,
    /// The supervisor's mount namespace: a task in another one resolves paths in its own root.
    pub own_mntns: u64,
    /// Set once a task may have changed the root an `fs_struct` shared with other tasks holds
    /// (chroot, pivot_root, setns, unshare): from then on no task's status or root is cached,
    /// since the change reaches tasks that made no call.
    pub fs_varies: std::sync::atomic::AtomicBool,
    /// Set when a verdict ended the workload ([`crate::Verdict::ending`]): every task is
    /// killed, and the tracer kills any task that still stops (one forked meanwhile).
    pub ending: std::sync::atomic::AtomicBool,
}

impl<H> Shared<H> {
    /// Apply a verdict's effect on the workload as a whole.
    pub fn after_verdict(&self, v: &crate::Verdict) {
        if v.end_workload {
            self.ending.store(true, std::sync::atomic::Ordering::SeqCst);
            for t in lock(&self.tree).tids() {
                let _ = sys::kill(t, libc::SIGKILL);
            }
        }
    }
}

/// The description of a regular file the supervisor opened for a task and injected, kept so
/// the task's next `mmap`s of it (the loader maps every library just opened, several times)
/// reuse it instead of describing the file again. The file itself is not kept open (an open
/// descriptor in the supervisor would make an exec of a file written through it fail with
/// ETXTBSY, and keep the filesystem busy): the task's descriptor is fetched at the mmap and
/// must still be that mount, inode, size, mtime and ctime (a rename or link moves ctime).
pub(crate) struct Injected {
    tgid: i32,
    target_fd: i32,
    key: crate::digest_cache::DigestKey,
    mnt_id: u64,
    desc: FileDesc,
}

/// How many injected descriptions are kept.
const INJECTED_KEPT: usize = 32;

/// (task serial, its /proc status, whether its root is ours, whether its user namespace is
/// ours), see [`Shared::status`].
pub(crate) type CachedStatus = (u64, Status, Option<bool>, Option<bool>);

/// A continued capset: the calling thread's serial (a reused tid is another thread), the
/// capabilities (effective, permitted, inheritable) its event claimed, and those it had.
pub(crate) type CapsetClaim = (u64, [u64; 3], [u64; 3]);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a handler panicked while holding it; the data is still the best
    // information we have, and stopping would leave notifications unanswered.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why an argument could not be turned into something the supervisor can act on.
enum Fail {
    /// Answer with this errno (what the kernel would have returned).
    Errno(i32),
    /// The caller's arguments cannot be read or decoded: answer with this errno (the kernel's
    /// for such an argument), counted in `undecodable`.
    Undecodable(i32),
    /// The supervisor cannot act for the target here: refused, counted in `unfaithful`.
    Fallback,
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// How a notification is answered.
enum Reply {
    /// The kernel runs the call: only with a verdict, or the reason there is none (see
    /// [`verdict`]).
    Continue(Continuation),
    Value(i64),
    Error(i32),
    AddFd(OwnedFd, bool),
    /// Answered by another thread (blocking emulation).
    Deferred,
    /// The target is gone (ID_VALID failed); nothing to answer.
    Gone,
}

struct Call {
    n: Notif,
    seq: u64,
    sys: Sysno,
    /// The arguments, decoded (`decode.rs`).
    req: decode::Request,
    tid: i32,
    status: Status,
    task: Task,
    emulated: bool,
    /// The supervisor's credentials differ from the task's, so it cannot perform the call as
    /// the task would: see [`Notifier::decide`].
    unfaithful: bool,
    /// The notification thread wears the task's credentials for this call
    /// ([`Notifier::wear`]).
    worn: bool,
    /// Set by an emulated open of a regular file: its description, identity and mount.
    injected: Option<(FileDesc, crate::digest_cache::DigestKey, u64)>,
    /// The flags of an open the supervisor performs: every descriptor it hands back for the
    /// call was opened with their access mode, so [`Notifier::answer`] needs no `F_GETFL`.
    open_flags: Option<u64>,
}

/// A path resolved for the supervisor: a directory descriptor standing for the target's
/// (None for absolute paths) and the path bytes after `/proc/self`-style rewriting.
struct Target {
    dir: Option<OwnedFd>,
    path: CString,
    resolve: u64,
}

impl Target {
    fn dir(&self) -> Option<BorrowedFd<'_>> {
        self.dir.as_ref().map(|d| d.as_fd())
    }
}

pub(crate) struct Notifier<H> {
    fd: OwnedFd,
    shared: Arc<Shared<H>>,
    desc: Describer,
    self_pid: i32,
    /// The task answered for: the kernel, or a fake in the unit tests.
    task: Box<dyn target::TargetTask>,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn stat_of(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    })
}
impl<H: EventHandler> Notifier<H> {
    pub(crate) fn new(fd: OwnedFd, shared: Arc<Shared<H>>) -> Self {
        Self::with_task(fd, shared, Box::new(target::Live::default()))
    }

    /// A notifier answering for the tasks behind `task` (the kernel, or a fake in tests).
    fn with_task(fd: OwnedFd, shared: Arc<Shared<H>>, task: Box<dyn target::TargetTask>) -> Self {
        // The mount table is read on the first lookup that needs it.
        let mut desc = Describer::sharing(
            shared.alg,
            Arc::clone(&shared.digests),
            Arc::clone(&shared.objects),
        );
        desc.set_measure_exec(shared.hash_pseudo_exec);
        desc.set_view(shared.view.clone());
        Self {
            fd,
            shared,
            desc,
            self_pid: std::process::id() as i32,
            task,
        }
    }

    /// Receive and answer notifications until every task using the filter is gone.
    pub(crate) fn run(mut self) -> Result<(), NotifyError> {
        // A private umask of 0 lets the supervisor apply each target's own umask to the modes
        // it creates files with, without touching the rest of the process.
        sys::thread_private_fs_umask0().map_err(NotifyError::Listener)?;
        let sizes = sys::notif_sizes().map_err(NotifyError::Listener)?;
        let mut buf = sys::RecvBuf::new(sizes);
        // Block in RECV itself where the kernel ends it when the last task exits: SYNC_WAKE_UP
        // then runs this thread on the notifying task's CPU (measured: 10% faster on the C
        // build, 20% on a single task's opens, than waking through epoll, which loses it).
        // Older kernels wait in epoll (EPOLLEXCLUSIVE) to see the hang-up.
        let blocking = self.shared.recv_blocks;
        let wait = if blocking {
            None
        } else {
            Some(
                sys::NotifyWait::new(self.fd.as_fd(), self.shared.stop.as_fd())
                    .map_err(NotifyError::Listener)?,
            )
        };
        loop {
            if let Some(wait) = &wait {
                match wait.wait().map_err(NotifyError::Listener)? {
                    sys::Woken::Readable => {}
                    sys::Woken::Stop => return Ok(()),
                    sys::Woken::HungUp => {
                        // Only one exclusive waiter hears the hang-up: tell the others.
                        sys::eventfd_signal(self.shared.stop.as_fd());
                        return Ok(());
                    }
                }
            }
            let n = match sys::notif_recv(self.fd.as_fd(), &mut buf) {
                Ok(n) => n,
                // The last task is gone (every blocked RECV returns then), or a target was
                // interrupted before we received its notification.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => {
                    if blocking && sys::hung_up(self.fd.as_fd()) {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(NotifyError::Listener(e)),
            };
            self.handle(n)?;
        }
    }

    fn handle(&mut self, n: Notif) -> Result<(), NotifyError> {
        let mut call = match self.begin(n) {
            Ok(call) => call,
            Err(r) => return self.respond(n.id, r),
        };
        self.wear(&mut call)?;
        let changes_names = names::changes_names(call.sys);
        if changes_names {
            lock(&self.shared.names).before(call.sys);
        }
        let reply = self.dispatch(&mut call);
        let sys = call.sys;
        let answered = self.answer(call, reply);
        if changes_names {
            lock(&self.shared.names).before(sys);
        }
        answered
    }

    /// The call `n` as the handlers see it: the caller's syscall, credentials and task, or the
    /// answer when there is nothing to describe (mechanism-only runs, unknown syscalls, a
    /// caller whose credentials cannot be read).
    fn begin(&mut self, n: Notif) -> Result<Call, Response> {
        let c = &self.shared.counters;
        Counters::bump(&c.notifications);
        let seq = c.notifications.load(std::sync::atomic::Ordering::Relaxed);
        let sys = Sysno::from_nr(i64::from(n.nr));
        if self.shared.mechanism_only && !(self.shared.floor_emulates_opens && is_open(sys)) {
            Counters::bump(&self.shared.counters.continued);
            return Err(Response::Continue);
        }
        let Some(sys) = sys else {
            Counters::bump(&self.shared.counters.unmodeled);
            return Err(Response::Continue);
        };
        let tid = n.pid as i32;
        let known = if tid > 0 {
            lock(&self.shared.tree).get(tid).cloned()
        } else {
            None
        };
        let fs_varies = self
            .shared
            .fs_varies
            .load(std::sync::atomic::Ordering::Relaxed);
        let serial = if fs_varies {
            0
        } else {
            known.as_ref().map_or(0, |t| t.serial)
        };
        let cached = lock(&self.shared.status)
            .get(&tid)
            .filter(|c| c.0 == serial && serial != 0)
            .map(|c| c.1.clone());
        let status = match cached {
            Some(s) => Some(s),
            None if tid > 0 => {
                let s = self.task.status(tid).ok();
                if let Some(s) = &s
                    && serial != 0
                {
                    lock(&self.shared.status).insert(tid, (serial, s.clone(), None, None));
                }
                s
            }
            None => None,
        };
        let Some(status) = status else {
            // Without the caller's credentials nothing can be described: deny, count as lost.
            Counters::bump(&self.shared.counters.lost);
            return Err(Response::Error(libc::EPERM));
        };
        let mut known = known;
        if let Some(t) = &mut known
            && self.check_capset(tid, t.serial, &status)
        {
            t.untrusted = true;
        }
        if sys.invalidates_status_with(n.args[0]) {
            // The call may change credentials, umask or root: describe later events afresh.
            lock(&self.shared.status).remove(&tid);
        }
        if sys.changes_shared_fs() {
            // The root lives in an fs_struct that other tasks may share (CLONE_FS): the
            // change reaches them without a call of theirs, so stop caching for everyone.
            self.shared
                .fs_varies
                .store(true, std::sync::atomic::Ordering::Relaxed);
            lock(&self.shared.status).clear();
        }
        let task = match known {
            Some(t) => Some(t),
            None => lock(&self.shared.tree).process(status.tgid).cloned(),
        };
        let task = task.unwrap_or_else(|| Task::unknown(status.tgid, self.shared.alg.size(), 0));
        Ok(Call {
            n,
            seq,
            sys,
            req: decode::decode(sys, &n.args),
            tid,
            status,
            task,
            emulated: false,
            unfaithful: false,
            worn: false,
            injected: None,
            open_flags: None,
        })
    }

    /// Answer the call with `reply`.
    fn answer(&mut self, call: Call, reply: Reply) -> Result<(), NotifyError> {
        let n = call.n;
        match reply {
            Reply::Continue(_) => {
                Counters::bump(&self.shared.counters.continued);
                self.respond(n.id, Response::Continue)
            }
            Reply::Value(v) => {
                Counters::bump(&self.shared.counters.emulated);
                self.respond(n.id, Response::Value(v))
            }
            Reply::Error(e) => self.respond(n.id, Response::Error(e)),
            Reply::AddFd(fd, cloexec) => {
                Counters::bump(&self.shared.counters.emulated);
                // A file open for writing must be closed here before the task runs again: an
                // exec of it right after would fail with ETXTBSY while we still hold it. Such a
                // descriptor is installed first and the call answered once ours is closed.
                let writable = match call.open_flags {
                    Some(fl) => fl as i32 & libc::O_ACCMODE != libc::O_RDONLY,
                    None => sys::status_flags(fd.as_fd())
                        .is_ok_and(|fl| fl & libc::O_ACCMODE != libc::O_RDONLY),
                };
                let installed = if writable {
                    sys::notif_addfd(self.fd.as_fd(), n.id, fd.as_fd(), cloexec)
                } else {
                    sys::notif_addfd_send(self.fd.as_fd(), n.id, fd.as_fd(), cloexec)
                };
                match installed {
                    Ok(target_fd) => {
                        // The task holds the only descriptor from now on.
                        drop(fd);
                        if let Some((desc, key, mnt_id)) = call.injected {
                            let mut kept = lock(&self.shared.injected);
                            // The number may have been ours before for another file.
                            kept.retain(|i| i.tgid != call.status.tgid || i.target_fd != target_fd);
                            if kept.len() >= INJECTED_KEPT {
                                kept.pop_front();
                            }
                            kept.push_back(Injected {
                                tgid: call.status.tgid,
                                target_fd,
                                key,
                                mnt_id,
                                desc,
                            });
                        }
                        if writable {
                            return self.respond(n.id, Response::Value(i64::from(target_fd)));
                        }
                        Ok(())
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        Counters::bump(&self.shared.counters.abandoned);
                        Ok(())
                    }
                    Err(e) => {
                        // The fd could not be installed (e.g. the target hit RLIMIT_NOFILE):
                        // answer with that error rather than leave the call hanging.
                        let r = self.respond(n.id, Response::Error(errno_of(&e)));
                        r.map(|_| ())
                    }
                }
            }
            Reply::Deferred => Ok(()),
            Reply::Gone => {
                Counters::bump(&self.shared.counters.abandoned);
                Ok(())
            }
        }
    }

    fn respond(&self, id: u64, r: Response) -> Result<(), NotifyError> {
        match sys::notif_send(self.fd.as_fd(), id, r) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Counters::bump(&self.shared.counters.abandoned);
                Ok(())
            }
            Err(e) => Err(NotifyError::Listener(e)),
        }
    }
}

/// Whether `sys` opens a file by path (what the emulation floor performs).
fn is_open(sys: Option<Sysno>) -> bool {
    matches!(
        sys,
        Some(Sysno::Open | Sysno::Openat | Sysno::Openat2 | Sysno::Creat)
    )
}

fn op_reply(r: sys::OpResult) -> Reply {
    match r {
        Ok(v) => Reply::Value(v),
        Err(e) => Reply::Error(e),
    }
}

/// The failure of a read of the caller's memory: the target gone (ESRCH, then checked against
/// the notification's validity), or an argument that cannot be read.
fn mem_fail(e: &io::Error) -> Fail {
    match map_mem_err(e) {
        libc::ESRCH => Fail::Errno(libc::ESRCH),
        errno => Fail::Undecodable(errno),
    }
}

fn map_mem_err(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::ESRCH) => libc::ESRCH,
        Some(libc::EPERM) => libc::EPERM,
        _ => libc::EFAULT,
    }
}
