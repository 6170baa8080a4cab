//! The notification loop: receive, read the target's arguments, re-validate, describe the object
//! as TSEM would, ask the modeling layer, then perform the operation ourselves (ADDFD or an
//! emulated result) or let the kernel continue.
//!
//! Paths resolve in the target's own root (`/proc/<tid>/root`, `RESOLVE_IN_ROOT`) when it is not
//! ours. The supervisor performs a call only when the target's credentials equal its own, so
//! that its permission checks are the target's; otherwise the call is described and decided
//! like any other, then refused when enforcing, or continued, counted in `unfaithful`.

mod reach;
mod roots;
mod verdict;

use verdict::{Allowed, Continuation};

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use tsem_core::event::{Cell, Coe, Event, EventHeader, EventType, FileDesc, Sock, SockAddr};
use tsem_core::map::Mapper;
use tsem_core::{Digest, HashAlg};

use crate::describe::Describer;
use crate::event::{Counters, EventHandler, RawEvent, Verdict};
use crate::procfs::{self, Status};
use crate::sys::{self, Notif, PathOp, Response};
use crate::syscalls::Sysno;
use crate::tree::{ApprovedExec, Task, Tree};

mod contents;
mod ipc;
mod links;
mod net;

/// Errors that stop the notification loop (the workload is then killed: fail closed).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// RECV or SEND failed for a reason other than the target going away.
    #[error("seccomp listener: {0}")]
    Listener(#[source] io::Error),
}

/// The kernel's `O_LARGEFILE` (glibc defines it as 0 on 64-bit).
pub const KERNEL_O_LARGEFILE: u32 = 0o100000;
/// `__FMODE_EXEC`, set in `f_flags` of files opened for exec.
pub const FMODE_EXEC_FLAG: u32 = 0o40;
/// `f_flags` of an executable opened by `execve` (`O_LARGEFILE | O_RDONLY | __FMODE_EXEC`).
pub const EXEC_FLAGS: u32 = KERNEL_O_LARGEFILE | FMODE_EXEC_FLAG;

const ATTR_MODE: u32 = 1;
const ATTR_UID: u32 = 2;
const ATTR_GID: u32 = 4;
const ATTR_SIZE: u32 = 8;
const ATTR_ATIME: u32 = 0x10;
const ATTR_MTIME: u32 = 0x20;
const ATTR_CTIME: u32 = 0x40;
const ATTR_ATIME_SET: u32 = 0x80;
const ATTR_MTIME_SET: u32 = 0x100;
const ATTR_FILE: u32 = 0x2000;
const ATTR_OPEN: u32 = 0x8000;

/// `f_flags` as the kernel holds them when `security_file_open` runs: `O_CLOEXEC` stripped,
/// `O_LARGEFILE` forced, `__O_SYNC` implying `O_DSYNC`.
pub fn open_f_flags(flags: u64) -> u32 {
    let mut f = (flags as u32) & !(libc::O_CLOEXEC as u32);
    f |= KERNEL_O_LARGEFILE;
    if f & (libc::O_SYNC as u32) != 0 {
        f |= libc::O_DSYNC as u32;
    }
    f
}

/// State shared by the notification thread and the tracer thread.
pub(crate) struct Shared<H> {
    pub tree: Mutex<Tree>,
    pub handler: Mutex<H>,
    pub counters: Counters,
    pub alg: HashAlg,
    pub mapping: tsem_core::map::Mapping,
    pub digests: crate::describe::DigestCache,
    /// The supervisor's own credentials, to decide whether it may act for a target.
    pub own: Status,
    pub own_root: (u64, u64),
    pub own_netns: u64,
    /// The digest store's inodes, which the workload may not touch.
    pub protected: crate::digest_cache::Protected,
    /// What the workload created, seen alike by every describer.
    pub objects: crate::describe::SharedObjects,
    /// Per thread: (task serial, its /proc status, whether its root is ours). Valid until the
    /// task calls something that changes them, execs, or its tid is reused. Shared by the
    /// notification threads: the call that invalidates an entry may be answered by another
    /// thread than the next one of the same task.
    pub status: Mutex<HashMap<i32, CachedStatus>>,
    /// Regular files recently opened by the supervisor and injected, see [`Injected`].
    pub injected: Mutex<std::collections::VecDeque<Injected>>,
    /// Written once when the workload is gone, to wake every notification thread.
    pub stop: OwnedFd,
    /// See [`SensorConfig::mechanism_only`](crate::SensorConfig::mechanism_only).
    pub mechanism_only: bool,
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
    pub fn after_verdict(&self, v: &Verdict) {
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

/// (task serial, its /proc status, whether its root is ours), see [`Shared::status`].
pub(crate) type CachedStatus = (u64, Status, Option<bool>);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a handler panicked while holding it; the data is still the best
    // information we have, and stopping would leave notifications unanswered.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why an argument could not be turned into something the supervisor can act on.
enum Fail {
    /// Answer with this errno (what the kernel would have returned).
    Errno(i32),
    /// The supervisor cannot act for the target here; let the kernel run the syscall.
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
    tid: i32,
    status: Status,
    task: Task,
    emulated: bool,
    /// The supervisor's credentials differ from the task's, so it cannot perform the call as
    /// the task would: see [`Notifier::decide`].
    unfaithful: bool,
    /// Set by an emulated open of a regular file: its description, identity and mount.
    injected: Option<(FileDesc, crate::digest_cache::DigestKey, u64)>,
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

/// Rewrite paths that name "the calling process" so the supervisor resolves them for the target.
fn rewrite_self(raw: &[u8], tgid: i32, tid: i32) -> Vec<u8> {
    let rules: [(&[u8], String); 6] = [
        (b"/proc/self/", format!("/proc/{tgid}/")),
        (b"/proc/thread-self/", format!("/proc/{tgid}/task/{tid}/")),
        (b"/dev/fd/", format!("/proc/{tgid}/fd/")),
        (b"/dev/stdin", format!("/proc/{tgid}/fd/0")),
        (b"/dev/stdout", format!("/proc/{tgid}/fd/1")),
        (b"/dev/stderr", format!("/proc/{tgid}/fd/2")),
    ];
    if raw == b"/proc/self" {
        return format!("/proc/{tgid}").into_bytes();
    }
    if raw == b"/proc/thread-self" {
        return format!("/proc/{tgid}/task/{tid}").into_bytes();
    }
    for (pre, to) in rules {
        let exact_dev = !pre.ends_with(b"/");
        if (exact_dev && raw == pre) || (!exact_dev && raw.starts_with(pre)) {
            let mut v = to.into_bytes();
            if !exact_dev {
                v.extend_from_slice(&raw[pre.len()..]);
            }
            return v;
        }
    }
    raw.to_vec()
}

/// Whether `path` names a process directory in procfs other than ours (magic links there are
/// the same object whoever follows them).
fn names_other_proc(path: &[u8], self_pid: i32) -> bool {
    let Some(rest) = path.strip_prefix(b"/proc/") else {
        return false;
    };
    let end = rest.iter().position(|c| *c == b'/').unwrap_or(rest.len());
    let digits = &rest[..end];
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
            != Some(self_pid)
}

/// Split a path into (parent, base for the description, base for the operation). `None` when the
/// last component is `.` or `..` or the path is only slashes.
fn split_parent(path: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let trimmed = &path[..end];
    let (parent, base) = match trimmed.iter().rposition(|c| *c == b'/') {
        Some(0) => (b"/".to_vec(), &trimmed[1..]),
        Some(i) => (trimmed[..i].to_vec(), &trimmed[i + 1..]),
        None => (b".".to_vec(), trimmed),
    };
    if base == b"." || base == b".." {
        return None;
    }
    let start = end - base.len();
    Some((parent, base.to_vec(), path[start..].to_vec()))
}

/// A path handle (`O_PATH`) on the directory `path` names from `dir` (None: absolute), walked
/// under the `openat2` restrictions `resolve`.
fn open_dir(dir: Option<BorrowedFd<'_>>, path: &CStr, resolve: u64) -> io::Result<OwnedFd> {
    sys::openat2(
        dir,
        path,
        (libc::O_PATH | libc::O_DIRECTORY) as u64,
        0,
        resolve,
    )
}

fn cstring(v: Vec<u8>) -> Result<CString, Fail> {
    CString::new(v).map_err(|_| Fail::Errno(libc::EINVAL))
}

/// `dir/base`, byte for byte.
fn join(dir: &[u8], base: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + base.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(base);
    p
}

fn is(st: &libc::stat, kind: u32) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

impl<H: EventHandler> Notifier<H> {
    pub(crate) fn new(fd: OwnedFd, shared: Arc<Shared<H>>) -> Self {
        // The mount table is read on the first lookup that needs it.
        let mut desc = Describer::sharing(
            shared.alg,
            Arc::clone(&shared.digests),
            Arc::clone(&shared.objects),
        );
        desc.set_measure_exec(shared.hash_pseudo_exec);
        Self {
            fd,
            shared,
            desc,
            self_pid: std::process::id() as i32,
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
        let c = &self.shared.counters;
        Counters::bump(&c.notifications);
        let seq = c.notifications.load(std::sync::atomic::Ordering::Relaxed);
        if self.shared.mechanism_only {
            Counters::bump(&self.shared.counters.continued);
            return self.respond(n.id, Response::Continue);
        }
        let Some(sys) = Sysno::from_nr(i64::from(n.nr)) else {
            Counters::bump(&self.shared.counters.unmodeled);
            return self.respond(n.id, Response::Continue);
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
                let s = procfs::read_status(tid).ok();
                if let Some(s) = &s
                    && serial != 0
                {
                    lock(&self.shared.status).insert(tid, (serial, s.clone(), None));
                }
                s
            }
            None => None,
        };
        let Some(status) = status else {
            // Without the caller's credentials nothing can be described: deny, count as lost.
            Counters::bump(&self.shared.counters.lost);
            return self.respond(n.id, Response::Error(libc::EPERM));
        };
        if sys.invalidates_status() {
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
        let mut call = Call {
            n,
            seq,
            sys,
            tid,
            status,
            task,
            emulated: false,
            unfaithful: false,
            injected: None,
        };
        let reply = self.dispatch(&mut call);
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
                let writable = sys::status_flags(fd.as_fd())
                    .is_ok_and(|fl| fl & libc::O_ACCMODE != libc::O_RDONLY);
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

    fn valid(&self, call: &Call) -> bool {
        sys::notif_id_valid(self.fd.as_fd(), call.n.id)
    }

    /// May the supervisor perform operations with its own credentials on behalf of `call`?
    fn same_creds(&self, call: &Call) -> bool {
        let (a, b) = (&call.status, &self.shared.own);
        a.coe.fsuid == b.coe.fsuid
            && a.coe.fsgid == b.coe.fsgid
            && a.coe.euid == b.coe.euid
            && a.coe.egid == b.coe.egid
            && a.coe.capeff == b.coe.capeff
            && a.groups == b.groups
    }

    fn same_root(&mut self, tid: i32) -> bool {
        if let Some(Some(r)) = lock(&self.shared.status).get(&tid).map(|c| c.2) {
            return r;
        }
        // The same root directory in another mount namespace is another tree of mounts.
        let r = stat_of(&format!("/proc/{tid}/root")) == Some(self.shared.own_root)
            && stat_of(&format!("/proc/{tid}/ns/mnt")).map(|s| s.1) == Some(self.shared.own_mntns);
        if let Some(c) = lock(&self.shared.status).get_mut(&tid) {
            c.2 = Some(r);
        }
        r
    }

    fn header(&self, call: &Call, ty: EventType) -> EventHeader {
        EventHeader {
            pid: Some(call.status.tgid as u64),
            tnum: None,
            context: None,
            number: None,
            process: call.status.name.clone().into(),
            event_type: ty,
            ttd: call.task.ident.ttd,
            p_ttd: call.task.ident.p_ttd,
            task_id: call.task.ident.task_id,
            p_task_id: call.task.ident.p_task_id,
            ts: sys::boottime_ns(),
        }
    }

    /// Hand one event to the modeling layer.
    fn ask(&mut self, call: &mut Call, ty: EventType, cell: Cell) -> Verdict {
        self.ask_token(call, ty, cell).0
    }

    /// [`Self::ask`], with the proof of an allowing verdict, which a continued call needs.
    fn ask_token(
        &mut self,
        call: &mut Call,
        ty: EventType,
        cell: Cell,
    ) -> (Verdict, Option<Allowed>) {
        let event = Event {
            header: self.header(call, ty),
            coe: call.status.coe,
            cell,
        };
        let raw = RawEvent {
            seq: call.seq,
            tid: call.tid,
            tgid: call.status.tgid,
            syscall: call.sys,
            args: call.n.args,
            untrusted: call.task.untrusted,
            emulated: call.emulated,
            event,
        };
        Counters::bump(&self.shared.counters.events);
        let (v, allowed) = verdict::model(&self.shared.handler, &raw);
        if v.taint && !call.task.untrusted {
            call.task.untrusted = true;
            lock(&self.shared.tree).taint(call.tid);
        }
        if !v.allow {
            Counters::bump(&self.shared.counters.denied);
        }
        self.shared.after_verdict(&v);
        (v, allowed)
    }

    /// Continue a call that reaches no TSEM hook the sensor models (`why`), counted in
    /// `unmodeled`.
    fn no_event(&self, why: &'static str) -> Reply {
        Counters::bump(&self.shared.counters.unmodeled);
        Reply::Continue(Continuation::NoEvent(why))
    }

    fn read_cstr(&self, tid: i32, addr: u64) -> Result<Vec<u8>, Fail> {
        if addr == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        let mut out = Vec::new();
        let mut a = addr;
        let max = libc::PATH_MAX as usize;
        while out.len() <= max {
            // One iovec per page: process_vm_readv never splits an iovec, so a string that ends
            // just before an unmapped page must not be read across it.
            let room = 4096 - (a % 4096) as usize;
            let mut chunk = vec![0u8; room];
            let n = sys::process_vm_read(tid, a, &mut chunk)
                .map_err(|e| Fail::Errno(map_mem_err(&e)))?;
            if n == 0 {
                return Err(Fail::Errno(libc::EFAULT));
            }
            if let Some(z) = chunk[..n].iter().position(|b| *b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            a += n as u64;
        }
        Err(Fail::Errno(libc::ENAMETOOLONG))
    }

    fn read_mem(&self, tid: i32, addr: u64, len: usize) -> Result<Vec<u8>, Fail> {
        let mut out = vec![0u8; len];
        let mut off = 0;
        while off < len {
            let a = addr + off as u64;
            let room = (4096 - (a % 4096) as usize).min(len - off);
            let n = sys::process_vm_read(tid, a, &mut out[off..off + room])
                .map_err(|e| Fail::Errno(map_mem_err(&e)))?;
            if n == 0 {
                return Err(Fail::Errno(libc::EFAULT));
            }
            off += n;
        }
        Ok(out)
    }

    fn resolve(&mut self, call: &Call, dirfd: i64, raw: &[u8]) -> Result<Target, Fail> {
        let tgid = call.status.tgid;
        let path = rewrite_self(raw, tgid, call.tid);
        let resolve = libc::RESOLVE_NO_MAGICLINKS;
        if !self.same_root(call.tid) {
            return self.resolve_in_root(call, dirfd, path, resolve);
        }
        // A magic link of a workload task's /proc entry (/proc/<pid>/fd/N, /dev/fd/N...): that
        // one hop is taken, the rest of the path is walked without magic links.
        if names_other_proc(&path, self.self_pid)
            && let Some(hop) = self.magic_hop(&path)
        {
            return hop;
        }
        let dir = if path.first() == Some(&b'/') {
            None
        } else if dirfd as i32 == libc::AT_FDCWD {
            Some(sys::open(
                &format!("/proc/{}/cwd", call.tid),
                libc::O_PATH | libc::O_DIRECTORY,
            )?)
        } else {
            match sys::open(
                &format!("/proc/{}/fd/{}", call.tid, dirfd as i32),
                libc::O_PATH,
            ) {
                Ok(d) => Some(d),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(Fail::Errno(libc::EBADF));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Target {
            dir,
            path: cstring(path)?,
            resolve,
        })
    }

    /// Resolve the parent directory of a path argument: (parent fd, its stat, description base,
    /// operation base, absolute path of the entry).
    fn parent(&mut self, call: &Call, dirfd: i64, raw: &[u8]) -> Result<Parent, Fail> {
        let Some((p, base, base_op)) = split_parent(raw) else {
            return Err(Fail::Errno(self.dot_errno(call, dirfd, raw)));
        };
        let t = self.resolve(call, dirfd, &p)?;
        self.open_parent(t.dir(), &t.path, t.resolve, base, base_op)
    }

    /// Open the directory `path` (from `dir`; None: absolute) under the `openat2` restrictions
    /// `resolve`, as the parent of the entry `base` (`base_op`: the name operated on), and
    /// refuse it if it reaches the digest store.
    fn open_parent(
        &mut self,
        dir: Option<BorrowedFd<'_>>,
        path: &CStr,
        resolve: u64,
        base: Vec<u8>,
        base_op: Vec<u8>,
    ) -> Result<Parent, Fail> {
        let fd = open_dir(dir, path, resolve)?;
        let st = sys::fstat(fd.as_fd())?;
        let abs = join(&Describer::fd_path(fd.as_fd()), &base);
        let base_c = cstring(base)?;
        let entry = sys::fstatat_nofollow(fd.as_fd(), &base_c).ok();
        let g = &self.shared.protected;
        self.guard(g.directory(&st) || entry.as_ref().is_some_and(|e| g.entry(e)))?;
        Ok(Parent {
            fd,
            st,
            base_op: cstring(base_op)?,
            abs,
            entry,
        })
    }

    /// Refuse a call that would reach the digest store (`hit`), in every mode: a workload that
    /// could change it could make a changed file pass as its old contents.
    fn guard(&self, hit: bool) -> Result<(), Fail> {
        if hit {
            Counters::bump(&self.shared.counters.protected);
            return Err(Fail::Errno(libc::EPERM));
        }
        Ok(())
    }

    /// The caller's umask now. Read afresh rather than from the cached status: it lives in an
    /// fs_struct that other threads share, and one of them may have changed it without any call
    /// of this one (only creates need it).
    fn umask(&self, call: &Call) -> u32 {
        procfs::read_status(call.tid).map_or(call.status.umask, |s| s.umask)
    }

    fn dispatch(&mut self, call: &mut Call) -> Reply {
        let a = call.n.args;
        let r = match call.sys {
            Sysno::Open => self.sys_open(call, libc::AT_FDCWD as i64, a[0], a[1], a[2], 0),
            Sysno::Openat => self.sys_open(call, a[0] as i64, a[1], a[2], a[3], 0),
            Sysno::Creat => self.sys_open(
                call,
                libc::AT_FDCWD as i64,
                a[0],
                (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
                a[1],
                0,
            ),
            Sysno::Openat2 => self.sys_openat2(call),
            Sysno::Execve => self.sys_exec(call, libc::AT_FDCWD as i64, a[0], 0),
            Sysno::Execveat => self.sys_exec(call, a[0] as i64, a[1], a[4] as i32),
            Sysno::Mmap => self.sys_mmap(call),
            Sysno::Socket => self.sys_socket(call),
            Sysno::Connect | Sysno::Bind => self.sys_addr(call),
            Sysno::Listen => self.sys_listen(call),
            Sysno::Accept | Sysno::Accept4 => self.sys_accept(call),
            Sysno::Kill
            | Sysno::Tkill
            | Sysno::Tgkill
            | Sysno::RtSigqueueinfo
            | Sysno::RtTgsigqueueinfo => self.sys_kill(call),
            Sysno::Ptrace => self.sys_ptrace(call),
            Sysno::Mkdir => self.sys_create(call, libc::AT_FDCWD as i64, a[0], a[1] as u32, None),
            Sysno::Mkdirat => self.sys_create(call, a[0] as i64, a[1], a[2] as u32, None),
            Sysno::Mknod => {
                self.sys_create(call, libc::AT_FDCWD as i64, a[0], a[1] as u32, Some(a[2]))
            }
            Sysno::Mknodat => self.sys_create(call, a[0] as i64, a[1], a[2] as u32, Some(a[3])),
            Sysno::Unlink => self.sys_unlink(call, libc::AT_FDCWD as i64, a[0], 0),
            Sysno::Rmdir => self.sys_unlink(call, libc::AT_FDCWD as i64, a[0], libc::AT_REMOVEDIR),
            Sysno::Unlinkat => self.sys_unlink(call, a[0] as i64, a[1], a[2] as i32),
            Sysno::Rename => self.sys_rename(
                call,
                libc::AT_FDCWD as i64,
                a[0],
                libc::AT_FDCWD as i64,
                a[1],
                0,
            ),
            Sysno::Renameat => self.sys_rename(call, a[0] as i64, a[1], a[2] as i64, a[3], 0),
            Sysno::Renameat2 => {
                self.sys_rename(call, a[0] as i64, a[1], a[2] as i64, a[3], a[4] as u32)
            }
            Sysno::Link => self.sys_link(
                call,
                libc::AT_FDCWD as i64,
                a[0],
                libc::AT_FDCWD as i64,
                a[1],
                0,
            ),
            Sysno::Linkat => self.sys_link(call, a[0] as i64, a[1], a[2] as i64, a[3], a[4] as i32),
            Sysno::Symlink => self.sys_symlink(call, a[0], libc::AT_FDCWD as i64, a[1]),
            Sysno::Symlinkat => self.sys_symlink(call, a[0], a[1] as i64, a[2]),
            Sysno::Chmod => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                0,
                SetAttr::Mode(a[1] as u32),
            ),
            Sysno::Fchmod => self.sys_setattr_fd(call, a[0] as i32, SetAttr::Mode(a[1] as u32)),
            Sysno::Fchmodat => {
                self.sys_setattr(call, a[0] as i64, Some(a[1]), 0, SetAttr::Mode(a[2] as u32))
            }
            Sysno::Fchmodat2 => self.sys_setattr(
                call,
                a[0] as i64,
                Some(a[1]),
                a[3] as i32,
                SetAttr::Mode(a[2] as u32),
            ),
            Sysno::Chown => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                0,
                SetAttr::Owner(a[1] as u32, a[2] as u32),
            ),
            Sysno::Lchown => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                libc::AT_SYMLINK_NOFOLLOW,
                SetAttr::Owner(a[1] as u32, a[2] as u32),
            ),
            Sysno::Fchown => {
                self.sys_setattr_fd(call, a[0] as i32, SetAttr::Owner(a[1] as u32, a[2] as u32))
            }
            Sysno::Fchownat => self.sys_setattr(
                call,
                a[0] as i64,
                Some(a[1]),
                a[4] as i32,
                SetAttr::Owner(a[2] as u32, a[3] as u32),
            ),
            Sysno::Truncate => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                0,
                SetAttr::Size(a[1] as i64),
            ),
            Sysno::Ftruncate => self.sys_setattr_fd(call, a[0] as i32, SetAttr::Size(a[1] as i64)),
            Sysno::Utimensat => self.sys_utimens(call),
            Sysno::Utime | Sysno::Utimes | Sysno::Futimesat => self.sys_utimes_old(call),
            Sysno::Mount => self.sys_mount(call),
            Sysno::Umount2 => self.sys_umount(call),
            Sysno::PivotRoot => self.sys_two_paths(
                call,
                EventType::SbPivotroot,
                libc::AT_FDCWD as i64,
                a[0],
                libc::AT_FDCWD as i64,
                a[1],
            ),
            Sysno::MoveMount => self.sys_two_paths(
                call,
                EventType::MoveMount,
                a[0] as i64,
                a[1],
                a[2] as i64,
                a[3],
            ),
            Sysno::InitModule => self.simple(
                call,
                EventType::KernelLoadData,
                Cell::KernelLoadData { id: 2, contents: 1 },
            ),
            Sysno::FinitModule => self.sys_finit_module(call),
            Sysno::Capset => self.sys_capset(call),
            Sysno::Prctl => self.sys_prctl(call),
            Sysno::Setpgid => self.sys_setpgid(call),
            Sysno::Setrlimit => self.sys_rlimit(call, 0, a[0], a[1]),
            Sysno::Prlimit64 => self.sys_prlimit(call),
            Sysno::SchedSetscheduler
            | Sysno::SchedSetparam
            | Sysno::SchedSetattr
            | Sysno::SchedSetaffinity => {
                self.task_cell(call, EventType::TaskSetscheduler, a[0] as i32)
            }
            Sysno::SchedGetscheduler
            | Sysno::SchedGetparam
            | Sysno::SchedGetattr
            | Sysno::SchedGetaffinity
            | Sysno::SchedRrGetInterval => {
                self.task_cell(call, EventType::TaskGetscheduler, a[0] as i32)
            }
            Sysno::Getpgid | Sysno::Getsid if a[0] as i32 == 0 => {
                Ok(self
                    .no_event("getpgid/getsid of the caller: the kernel checks other tasks only"))
            }
            Sysno::Getpgid => self.task_cell(call, EventType::TaskGetpgid, a[0] as i32),
            Sysno::Getsid => self.task_cell(call, EventType::TaskGetsid, a[0] as i32),
            Sysno::Setpriority => self.sys_setpriority(call),
            Sysno::IoprioSet => self.sys_ioprio(call, true),
            Sysno::IoprioGet => self.sys_ioprio(call, false),
            Sysno::Capget => self.sys_capget(call),
            Sysno::Stat => self.sys_getattr(call, i64::from(libc::AT_FDCWD), a[0], a[1], 0, None),
            Sysno::Lstat => self.sys_getattr(
                call,
                i64::from(libc::AT_FDCWD),
                a[0],
                a[1],
                libc::AT_SYMLINK_NOFOLLOW,
                None,
            ),
            Sysno::Newfstatat => self.sys_getattr(call, a[0] as i64, a[1], a[2], a[3] as i32, None),
            Sysno::Statx => self.sys_getattr(
                call,
                a[0] as i64,
                a[1],
                a[4],
                a[2] as i32,
                Some(a[3] as u32),
            ),
            Sysno::Ioctl => self.sys_file_cmd(call, a[0] as i32, EventType::FileIoctl, a[1] as u32),
            Sysno::Fcntl => self.sys_fcntl(call),
            Sysno::Flock => self.sys_flock(call),
            Sysno::Getsockname | Sysno::Getpeername | Sysno::Setsockopt | Sysno::Shutdown => {
                self.sys_sock_query(call)
            }
            Sysno::Fstat => match self.target_file(call, a[0] as i32) {
                // The caller holds the descriptor: no permission is checked on it.
                Ok(f) => self.getattr_of(call, f, a[1], 0, None, true),
                Err(e) => Err(e),
            },
            Sysno::Socketpair => self.sys_socketpair(call),
            Sysno::Setxattr
            | Sysno::Lsetxattr
            | Sysno::Fsetxattr
            | Sysno::Getxattr
            | Sysno::Lgetxattr
            | Sysno::Fgetxattr
            | Sysno::Listxattr
            | Sysno::Llistxattr
            | Sysno::Flistxattr
            | Sysno::Removexattr
            | Sysno::Lremovexattr
            | Sysno::Fremovexattr => self.sys_xattr(call),
            Sysno::Sendto => self.sys_sendto(call),
            Sysno::Sendmsg | Sysno::Sendmmsg => self.sys_sendmsg(call),
            Sysno::Recvmsg | Sysno::Recvmmsg => self.sys_recvmsg(call),
            Sysno::Bpf => self.sys_bpf(call),
            Sysno::AddKey => self.sys_add_key(call),
            Sysno::RequestKey
            | Sysno::Keyctl
            | Sysno::Shmget
            | Sysno::Shmat
            | Sysno::Shmctl
            | Sysno::Semget
            | Sysno::Semop
            | Sysno::Semtimedop
            | Sysno::Semctl
            | Sysno::Msgget
            | Sysno::Msgsnd
            | Sysno::Msgrcv
            | Sysno::Msgctl => Ok(self.refuse()),
            // Listed one by one (not `invalidates_status()`), so a syscall added without a
            // handler fails to compile. These only drop the cached status (above); no event.
            Sysno::Setuid
            | Sysno::Setgid
            | Sysno::Setreuid
            | Sysno::Setregid
            | Sysno::Setresuid
            | Sysno::Setresgid
            | Sysno::Setfsuid
            | Sysno::Setfsgid
            | Sysno::Setgroups
            | Sysno::Umask
            | Sysno::Chroot
            | Sysno::Unshare
            | Sysno::Setns
            | Sysno::OpenTree
            | Sysno::Fsopen
            | Sysno::Fsmount
            | Sysno::MountSetattr
            | Sysno::DeleteModule => Ok(self.no_event(
                "no TSEM event: credential and root changes reach later events through the COE \
                 and the task's root; the mount API and delete_module map to none",
            )),
            Sysno::PidfdOpen => self.sys_pidfd_open(call),
            Sysno::PidfdGetfd => self.sys_pidfd_getfd(call),
            Sysno::PidfdSendSignal => self.sys_pidfd_send_signal(call),
            Sysno::ProcessVmReadv | Sysno::ProcessVmWritev => self.sys_process_vm(call),
            Sysno::Clone => Ok(self.sys_clone_untraced(call)),
        };
        match r {
            Ok(r) => r,
            Err(Fail::Errno(e)) => {
                if e == libc::ESRCH && !self.valid(call) {
                    Reply::Gone
                } else {
                    Reply::Error(e)
                }
            }
            Err(Fail::Fallback) => {
                // The supervisor can neither describe nor perform the call as the task would:
                // refused in every mode (there is no verdict to continue it with).
                Counters::bump(&self.shared.counters.unfaithful);
                Reply::Error(libc::EPERM)
            }
        }
    }

    /// The answer to a call the supervisor cannot perform as the task would: EPERM when
    /// enforcing (the kernel would re-read what was decided, with other credentials), else
    /// CONTINUE after its verdict. Counted in `unfaithful` either way.
    fn unfaithful_reply(&self, why: Continuation) -> Reply {
        Counters::bump(&self.shared.counters.unfaithful);
        if self.shared.enforcing {
            Reply::Error(libc::EPERM)
        } else {
            Reply::Continue(why)
        }
    }

    /// Whether the supervisor may perform `call` itself (its credentials are the task's),
    /// recorded in the call: an allowed call it may not perform gets [`Self::unfaithful_reply`]
    /// (see [`Self::decide`] and [`Self::gate`]).
    fn performs(&self, call: &mut Call) -> bool {
        call.unfaithful = !self.same_creds(call);
        call.emulated = !call.unfaithful;
        call.emulated
    }

    /// After an allowing verdict (`why`) and before the supervisor performs anything: the
    /// answer for a call it cannot perform faithfully, if this is one.
    fn gate(&self, call: &Call, why: Continuation) -> Option<Reply> {
        call.unfaithful.then(|| self.unfaithful_reply(why))
    }

    /// Ask about an event the kernel then runs (continued) unless it is denied.
    fn simple(&mut self, call: &mut Call, ty: EventType, cell: Cell) -> Result<Reply, Fail> {
        let (v, allowed) = self.ask_token(call, ty, cell);
        Ok(match allowed {
            Some(a) => Reply::Continue(Continuation::Allowed(a)),
            None => Reply::Error(v.errno),
        })
    }

    /// Ask about an event; when it is allowed, either the supervisor performs the operation
    /// (`emulate`: `None`, go on) or the kernel runs it (`Some(Continue)`). `Some` ends the call.
    fn decide(
        &mut self,
        call: &mut Call,
        ty: EventType,
        cell: Cell,
        emulate: bool,
    ) -> Option<Reply> {
        let (v, allowed) = self.ask_token(call, ty, cell);
        let Some(a) = allowed else {
            return Some(Reply::Error(v.errno));
        };
        if call.unfaithful {
            return Some(self.unfaithful_reply(Continuation::Allowed(a)));
        }
        (!emulate).then_some(Reply::Continue(Continuation::Allowed(a)))
    }

    fn verdict_reply(v: Verdict) -> Option<Reply> {
        (!v.allow).then_some(Reply::Error(v.errno))
    }

    // ---- opens -------------------------------------------------------------------------------

    fn sys_openat2(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let size = a[3] as usize;
        if size < 24 {
            return Err(Fail::Errno(libc::EINVAL));
        }
        if size > 4096 {
            return Err(Fail::Errno(libc::E2BIG));
        }
        let how = self.read_mem(call.tid, a[2], size)?;
        if how[24..].iter().any(|b| *b != 0) {
            return Err(Fail::Errno(libc::E2BIG));
        }
        let word = |i: usize| {
            u64::from_le_bytes([
                how[i],
                how[i + 1],
                how[i + 2],
                how[i + 3],
                how[i + 4],
                how[i + 5],
                how[i + 6],
                how[i + 7],
            ])
        };
        self.sys_open(call, a[0] as i64, a[1], word(0), word(8), word(16))
    }

    fn sys_open(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        path: u64,
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> Result<Reply, Fail> {
        let raw = self.read_cstr(call.tid, path)?;
        if raw.is_empty() {
            return Err(Fail::Errno(libc::ENOENT));
        }
        let mut t = self.resolve(call, dirfd, &raw)?;
        t.resolve |= resolve;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        self.performs(call);
        let fl = flags as i32;
        let cloexec = fl & libc::O_CLOEXEC != 0;
        if fl & libc::O_PATH != 0 {
            // O_PATH opens never reach security_file_open: no event.
            let why = Continuation::NoEvent("O_PATH opens reach no security_file_open");
            if let Some(r) = self.gate(call, why) {
                return Ok(r);
            }
            let keep = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY) as u64;
            let fd = sys::openat2(t.dir(), &t.path, flags & keep, 0, t.resolve)?;
            Counters::bump(&self.shared.counters.unmodeled);
            return Ok(Reply::AddFd(fd, cloexec));
        }
        if fl & libc::O_TMPFILE == libc::O_TMPFILE {
            return self.open_tmpfile(call, &t, flags, mode, cloexec);
        }
        let creat = fl & libc::O_CREAT != 0;
        let excl = creat && fl & libc::O_EXCL != 0;
        let mut probe_flags =
            (libc::O_PATH as u64) | (flags & (libc::O_NOFOLLOW | libc::O_DIRECTORY) as u64);
        if excl {
            probe_flags |= libc::O_NOFOLLOW as u64;
        }
        for _ in 0..4 {
            match sys::openat2(t.dir(), &t.path, probe_flags, 0, t.resolve) {
                Ok(p) => {
                    if excl {
                        return Err(Fail::Errno(libc::EEXIST));
                    }
                    return self.reopen(call, p, flags, cloexec);
                }
                Err(e) if errno_of(&e) == libc::ENOENT && creat => {
                    match self.create_file(call, dirfd, &raw, flags, mode, resolve)? {
                        Some(r) => return Ok(r),
                        // Someone created the entry after our probe: look again.
                        None => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Fail::Errno(libc::EAGAIN))
    }

    /// Open an existing object through the supervisor's O_PATH descriptor on it.
    fn reopen(
        &mut self,
        call: &mut Call,
        p: OwnedFd,
        flags: u64,
        cloexec: bool,
    ) -> Result<Reply, Fail> {
        let st = sys::fstat(p.as_fd())?;
        if is(&st, libc::S_IFLNK) {
            return Err(Fail::Errno(libc::ELOOP));
        }
        self.guard(self.shared.protected.object(&st))?;
        // The supervisor's own /proc/<pid> (its memory above all): refused in every mode,
        // after the event for regular files, so the attempt is recorded.
        if self.is_supervisor_proc(p.as_fd(), &st) {
            if is(&st, libc::S_IFREG) {
                // Nothing is read: files on proc have the zero digest.
                let file = self.desc.file(p.as_fd(), None, &st, open_f_flags(flags));
                let _ = self.ask(call, EventType::FileOpen, Cell::File(file));
            }
            return Ok(self.refuse());
        }
        if flags as i32 & libc::O_ACCMODE != libc::O_RDONLY || flags as i32 & libc::O_TRUNC != 0 {
            self.claim_write(&st)?;
        }
        let link = CString::new(format!("/proc/self/fd/{}", p.as_raw_fd()))
            .map_err(|_| Fail::Errno(libc::EINVAL))?;
        let strip = (libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
        let real_flags = (flags & !strip) | libc::O_NOCTTY as u64;
        if !is(&st, libc::S_IFREG)
            && let Some(r) = self.gate(
                call,
                Continuation::NoEvent("TSEM models opens of regular files only"),
            )
        {
            // No event (TSEM models opens of regular files only), but still not performed
            // with other credentials than the task's.
            return Ok(r);
        }
        if is(&st, libc::S_IFIFO) {
            // Opening a FIFO blocks until the other end shows up, which may be another
            // supervised task: do it on a helper thread and answer from there.
            return Ok(self.defer_fifo(call, p, real_flags, cloexec));
        }
        if !is(&st, libc::S_IFREG) {
            // TSEM models opens of regular files only.
            Counters::bump(&self.shared.counters.unmodeled);
            let fd = sys::openat2(None, &link, real_flags, 0, 0)?;
            return Ok(Reply::AddFd(fd, cloexec));
        }
        let acc = flags as i32 & libc::O_ACCMODE;
        let plain_read = acc == libc::O_RDONLY && flags as i32 & libc::O_TRUNC == 0;
        // Hash what the file holds when security_file_open runs, i.e. before any O_TRUNC.
        let reader = if plain_read {
            Some(sys::openat2(None, &link, real_flags, 0, 0)?)
        } else {
            sys::openat2(
                None,
                &link,
                libc::O_RDONLY as u64 | libc::O_NOCTTY as u64,
                0,
                0,
            )
            .ok()
        };
        let file = self.desc.file(
            p.as_fd(),
            reader.as_ref().map(|r| r.as_fd()),
            &st,
            open_f_flags(flags),
        );
        // Files on pseudo filesystems produce no mmap_file event: the mmap of one must take
        // the path that finds that out, whichever thread answers it first.
        if !crate::describe::PSEUDO_MAGICS.contains(&file.inode.s_magic)
            && let Ok(mnt_id) = sys::mount_id(p.as_fd())
        {
            call.injected = Some((
                file.clone(),
                crate::digest_cache::DigestKey::of(&st),
                mnt_id,
            ));
        }
        let (v, allowed) = self.ask_token(call, EventType::FileOpen, Cell::File(file));
        let Some(allowed) = allowed else {
            return Ok(Reply::Error(v.errno));
        };
        if let Some(r) = self.gate(call, Continuation::Allowed(allowed)) {
            return Ok(r);
        }
        let fd = match reader {
            Some(r) if plain_read => r,
            _ => sys::openat2(None, &link, real_flags, 0, 0)?,
        };
        if flags as i32 & libc::O_TRUNC != 0 {
            // The kernel truncates after the open (handle_truncate → notify_change), which TSEM
            // sees as inode_setattr with ATTR_SIZE|ATTR_MTIME|ATTR_CTIME|ATTR_OPEN|ATTR_FILE.
            // The file is already open, so a denial can only fail the call now.
            let mut cell = self.setattr_cell(p.as_fd(), &st, &SetAttr::Size(0));
            if let Cell::InodeSetattr { valid, .. } = &mut cell {
                *valid |= ATTR_FILE | ATTR_OPEN;
            }
            let v = self.ask(call, EventType::InodeSetattr, cell);
            if let Some(r) = Self::verdict_reply(v) {
                return Ok(r);
            }
        }
        Ok(Reply::AddFd(fd, cloexec))
    }

    fn defer_fifo(&mut self, call: &Call, p: OwnedFd, flags: u64, cloexec: bool) -> Reply {
        Counters::bump(&self.shared.counters.unmodeled);
        let Ok(nfd) = self.fd.try_clone() else {
            return Reply::Error(libc::ENOMEM);
        };
        let id = call.n.id;
        // The helper owns the O_PATH descriptor, so the magic link it opens keeps naming the
        // FIFO checked here (a closed number could be reused by an unrelated open).
        let spawned = std::thread::Builder::new()
            .name("tsem-fifo".into())
            .spawn(move || {
                let link = format!("/proc/self/fd/{}", p.as_raw_fd());
                let r = sys::open(&link, flags as i32 & !libc::O_CLOEXEC);
                match r {
                    Ok(fd) => {
                        if let Err(e) = sys::notif_addfd_send(nfd.as_fd(), id, fd.as_fd(), cloexec)
                            && e.raw_os_error() != Some(libc::ENOENT)
                        {
                            let _ = sys::notif_send(nfd.as_fd(), id, Response::Error(errno_of(&e)));
                        }
                    }
                    Err(e) => {
                        let _ = sys::notif_send(nfd.as_fd(), id, Response::Error(errno_of(&e)));
                    }
                }
            });
        match spawned {
            Ok(_) => Reply::Deferred,
            Err(_) => Reply::Error(libc::EAGAIN),
        }
    }

    /// Create a regular file for an `O_CREAT` open of a missing entry. `Ok(None)` when the entry
    /// appeared meanwhile.
    fn create_file(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        raw: &[u8],
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> Result<Option<Reply>, Fail> {
        let mut par = self.parent(call, dirfd, raw)?;
        let mut hops = 0;
        while let Some(e) = &par.entry {
            if !is(e, libc::S_IFLNK) {
                // A racing creator: look again.
                return Ok(None);
            }
            // A dangling symlink: O_CREAT follows it, and the supervisor does so itself on the
            // link it read, so the entry described is the one created (notify/links.rs).
            hops += 1;
            par = self.follow_dangling(call, &par, hops, resolve)?;
        }
        let m = (mode as u32) & !self.umask(call) & 0o7777;
        let created = self.desc.next_instance(&par.st, &call.task.ident.task_id);
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let dentry = self
            .desc
            .dentry(par.fd.as_fd(), &par.st, &par.abs, None, Some(created));
        let (v, allowed) = self.ask_token(
            call,
            EventType::InodeCreate,
            Cell::InodeCreate {
                dir,
                dentry,
                mode: libc::S_IFREG | m,
            },
        );
        let Some(allowed) = allowed else {
            return Ok(Some(Reply::Error(v.errno)));
        };
        if let Some(r) = self.gate(call, Continuation::Allowed(allowed)) {
            return Ok(Some(r));
        }
        let cf = (flags | (libc::O_CREAT | libc::O_EXCL) as u64) & !(libc::O_CLOEXEC as u64);
        let fd = match sys::openat2(Some(par.fd.as_fd()), &par.base_op, cf, u64::from(m), 0) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == libc::EEXIST => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let st = sys::fstat(fd.as_fd())?;
        self.desc.mark_created(&st, created);
        self.claim_write(&st)?;
        let file = self.desc.file(fd.as_fd(), None, &st, open_f_flags(flags));
        let v = self.ask(call, EventType::FileOpen, Cell::File(file));
        if let Some(r) = Self::verdict_reply(v) {
            return Ok(Some(r));
        }
        Ok(Some(Reply::AddFd(fd, flags as i32 & libc::O_CLOEXEC != 0)))
    }

    // ---- exec and mmap -----------------------------------------------------------------------

    fn sys_exec(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        path: u64,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let raw = self.read_cstr(call.tid, path)?;
        let p = if raw.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(Fail::Errno(libc::ENOENT));
            }
            sys::open(
                &format!("/proc/{}/fd/{}", call.tid, dirfd as i32),
                libc::O_PATH,
            )
            .map_err(|_| Fail::Errno(libc::EBADF))?
        } else {
            let t = self.resolve(call, dirfd, &raw)?;
            let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
                libc::O_NOFOLLOW as u64
            } else {
                0
            };
            sys::openat2(
                t.dir(),
                &t.path,
                libc::O_PATH as u64 | nofollow,
                0,
                t.resolve,
            )?
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(p.as_fd())?;
        if !is(&st, libc::S_IFREG) {
            return Err(Fail::Errno(libc::EACCES));
        }
        let link = format!("/proc/self/fd/{}", p.as_raw_fd());
        let reader = sys::open(&link, libc::O_RDONLY).ok();
        if let Some(r) = &reader {
            self.claim_exec_memfd(r.as_fd())?;
        }
        let file = self.desc.file(
            p.as_fd(),
            reader.as_ref().map(|r| r.as_fd()),
            &st,
            EXEC_FLAGS,
        );
        let digest = file.digest;
        let (v, allowed) = self.ask_token(call, EventType::FileOpen, Cell::File(file));
        let Some(allowed) = allowed else {
            return Ok(Reply::Error(v.errno));
        };
        lock(&self.shared.tree).approve_exec(
            call.tid,
            ApprovedExec {
                dev: st.st_dev,
                ino: st.st_ino,
                digest,
                comm: Some(call.status.name.clone()),
            },
        );
        // The kernel resolves the path again: the exec stop checks what it loaded.
        Ok(Reply::Continue(Continuation::Allowed(allowed)))
    }

    fn target_file(&self, call: &Call, fd: i32) -> Result<OwnedFd, Fail> {
        let pidfd = sys::pidfd_open(call.status.tgid, 0)?;
        match sys::pidfd_getfd(pidfd.as_fd(), fd) {
            Ok(f) => Ok(f),
            Err(e) if errno_of(&e) == libc::EBADF => Err(Fail::Errno(libc::EBADF)),
            Err(e) => Err(e.into()),
        }
    }

    /// The description of the task's descriptor `fd` when it is a file the supervisor injected
    /// and which has not changed since (see [`Injected`]).
    /// `f` is the task's descriptor `fd`, fetched now, and `st` its `fstat`.
    fn injected_file(
        &self,
        call: &Call,
        fd: i32,
        f: BorrowedFd<'_>,
        st: &libc::stat,
    ) -> Option<FileDesc> {
        let (key, mnt_id, desc) = {
            let kept = lock(&self.shared.injected);
            let i = kept
                .iter()
                .rev()
                .find(|i| i.tgid == call.status.tgid && i.target_fd == fd)?;
            (i.key, i.mnt_id, i.desc.clone())
        };
        // Another name of the same inode would be described with its own path.
        // A file the workload writes may change without its key moving: described afresh.
        if st.st_nlink != 1
            || crate::digest_cache::DigestKey::of(st) != key
            || sys::mount_id(f).ok()? != mnt_id
            || self.desc.is_written(st)
        {
            return None;
        }
        let mut desc = desc;
        // The file's flags now (fcntl F_SETFL may have changed them since the open).
        desc.flags = sys::status_flags(f).ok()? as u32;
        Some(desc)
    }

    fn sys_mmap(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        if a[3] & libc::MAP_ANONYMOUS as u64 != 0 {
            let flags = mmap_flags_field(self.shared.mapping, a[2], a[3]);
            let cell = Cell::MmapFile {
                file: None,
                prot: a[2] as u32,
                flags,
            };
            return self.simple(call, EventType::MmapFile, cell);
        }
        let exec = a[2] & libc::PROT_EXEC as u64 != 0;
        let shared_write =
            a[3] & libc::MAP_SHARED as u64 != 0 && a[2] & libc::PROT_WRITE as u64 != 0;
        let f = self.target_file(call, a[4] as i32)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        if let Some(file) = self.injected_file(call, a[4] as i32, f.as_fd(), &st)
            && !(exec && file.path.pathname.starts_with("/memfd:"))
        {
            self.claim_mapping(&st, exec, shared_write)?;
            let cell = Cell::MmapFile {
                file: Some(file),
                prot: a[2] as u32,
                flags: a[3] as u32,
            };
            return self.simple(call, EventType::MmapFile, cell);
        }
        let magic = self.desc.magic(f.as_fd(), &st);
        if is(&st, libc::S_IFREG) {
            self.claim_mapping(&st, exec, shared_write)?;
        }
        // tmpfs/memfd code is measured (tsem's extension, docs/sensor.md); other pseudo files
        // are skipped as the kernel does (§1.3).
        let measured =
            exec && self.shared.hash_pseudo_exec && magic == crate::describe::TMPFS_MAGIC;
        if measured && self.unsealed_memfd(f.as_fd()) {
            // Code in a memfd that can still change: unmeasurable, so described as what it is
            // to the model, anonymous executable memory (notify/contents.rs).
            let cell = Cell::MmapFile {
                file: None,
                prot: a[2] as u32,
                flags: mmap_flags_field(self.shared.mapping, a[2], a[3]),
            };
            return self.simple(call, EventType::MmapFile, cell);
        }
        if !is(&st, libc::S_IFREG) || (crate::describe::PSEUDO_MAGICS.contains(&magic) && !measured)
        {
            return Ok(self
                .no_event("mmap_file skips non-regular files and pseudo filesystems (spec §1.3)"));
        }
        let flags = sys::status_flags(f.as_fd()).unwrap_or(0) as u32;
        let file = self
            .desc
            .file_as(f.as_fd(), Some(f.as_fd()), &st, flags, exec);
        let cell = Cell::MmapFile {
            file: Some(file),
            prot: a[2] as u32,
            flags: a[3] as u32,
        };
        self.simple(call, EventType::MmapFile, cell)
    }

    // ---- sockets -----------------------------------------------------------------------------

    fn sock(&mut self, fd: BorrowedFd<'_>) -> Result<Sock, Fail> {
        let family = sys::getsockopt_int(fd, libc::SO_DOMAIN)?;
        let ty = sys::getsockopt_int(fd, libc::SO_TYPE)?;
        let protocol = sys::getsockopt_int(fd, libc::SO_PROTOCOL)?;
        let st = sys::fstat(fd)?;
        let owner = self
            .desc
            .sock_owner(&st)
            .unwrap_or_else(|| Digest::zero(self.shared.alg.size()));
        Ok(Sock {
            family: family as u32,
            sock_type: ty as u32,
            protocol: protocol as u32,
            owner,
        })
    }

    fn sys_socket(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let (family, ty, proto) = (a[0] as i32, a[1] as i32, a[2] as i32);
        let cell = Cell::SocketCreate {
            family: family as u32,
            sock_type: (ty & 0xf) as u32,
            protocol: proto as u32,
            kern: 0,
        };
        let same_ns = stat_of(&format!("/proc/{}/ns/net", call.tid)).map(|s| s.1)
            == Some(self.shared.own_netns);
        if !same_ns || !self.same_creds(call) {
            return self.simple(call, EventType::SocketCreate, cell);
        }
        call.emulated = true;
        let v = self.ask(call, EventType::SocketCreate, cell);
        if let Some(r) = Self::verdict_reply(v) {
            return Ok(r);
        }
        // The supervisor creates the socket so it knows its inode and can record its owner
        // (socket_post_create), which later socket events carry.
        match sys::socket(family, ty & !libc::SOCK_CLOEXEC, proto) {
            Ok(fd) => {
                if let Ok(st) = sys::fstat(fd.as_fd()) {
                    self.desc.set_sock_owner(&st, call.task.ident.task_id);
                }
                Ok(Reply::AddFd(fd, ty & libc::SOCK_CLOEXEC != 0))
            }
            Err(e) => Err(Fail::Errno(e)),
        }
    }

    fn sys_addr(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let bind = call.sys == Sysno::Bind;
        let len = (a[2] as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        let addr = self.read_mem(call.tid, a[1], len)?;
        let f = self.target_file(call, a[0] as i32)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let sock = match self.sock(f.as_fd()) {
            Ok(s) => s,
            Err(_) => return Err(Fail::Errno(libc::ENOTSOCK)),
        };
        let parsed = parse_sockaddr(self.shared.alg, &addr, false);
        let family = sock.family;
        let ty = if bind {
            EventType::SocketBind
        } else {
            EventType::SocketConnect
        };
        // Relative AF_UNIX paths resolve against the caller's cwd: the supervisor performs
        // those too, from the cwd pinned now (notify/net.rs), never on a re-read address.
        let relative_unix = sock.family == libc::AF_UNIX as u32
            && addr.len() > 2
            && addr[2] != 0
            && addr[2] != b'/';
        let blocking = sys::status_flags(f.as_fd())
            .map(|fl| fl & libc::O_NONBLOCK == 0)
            .unwrap_or(true);
        let emulate = self.performs(call);
        if let Some(r) = self.decide(call, ty, Cell::SockAddr { sock, addr: parsed }, emulate) {
            return Ok(r);
        }
        if relative_unix {
            return self.unix_relative(call, f, addr, bind);
        }
        // The address checked is the address used: the operation runs on the target's own
        // socket (a duplicate of its descriptor) with our copy of the argument.
        if !bind && blocking {
            // A blocking connect may take long; answer it from a helper thread so the other
            // notifications keep flowing.
            return Ok(self.defer(call, move || {
                match sys::sock_addr_call(f.as_fd(), &addr, false) {
                    Ok(()) => Response::Value(0),
                    Err(e) => Response::Error(e),
                }
            }));
        }
        // Binding a Unix socket to a path creates a node with the mode 0777 & ~umask of the
        // binder: apply the caller's umask to this thread (whose fs_struct is private) meanwhile.
        let unix_path = bind && family == libc::AF_UNIX as u32 && addr.len() > 2 && addr[2] != 0;
        if unix_path {
            sys::set_umask(self.umask(call));
        }
        let r = sys::sock_addr_call(f.as_fd(), &addr, bind);
        if unix_path {
            sys::set_umask(0);
        }
        Ok(match r {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Error(e),
        })
    }

    /// Perform a blocking emulation on a helper thread that answers the notification itself.
    fn defer(&mut self, call: &Call, work: impl FnOnce() -> Response + Send + 'static) -> Reply {
        let Ok(nfd) = self.fd.try_clone() else {
            return Reply::Error(libc::ENOMEM);
        };
        let id = call.n.id;
        let spawned = std::thread::Builder::new()
            .name("tsem-blocking".into())
            .spawn(move || {
                // ENOENT: the target gave up meanwhile; nothing is waiting for the answer.
                let _ = sys::notif_send(nfd.as_fd(), id, work());
            });
        match spawned {
            Ok(_) => {
                Counters::bump(&self.shared.counters.emulated);
                Reply::Deferred
            }
            Err(_) => Reply::Error(libc::EAGAIN),
        }
    }

    fn sys_listen(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let f = self.target_file(call, a[0] as i32)?;
        let sock = self
            .sock(f.as_fd())
            .map_err(|_| Fail::Errno(libc::ENOTSOCK))?;
        self.simple(
            call,
            EventType::SocketListen,
            Cell::SockValue {
                sock,
                value: a[1] as u32,
            },
        )
    }

    /// getsockname, getpeername (SOCK), setsockopt (level, optname), shutdown (how): described
    /// on the caller's socket and continued.
    fn sys_sock_query(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let f = self.target_file(call, a[0] as i32)?;
        let Ok(sock) = self.sock(f.as_fd()) else {
            return Ok(
                self.no_event("not a socket: the kernel fails it (ENOTSOCK) before any hook")
            );
        };
        let (ty, cell) = match call.sys {
            Sysno::Getsockname => (EventType::SocketGetsockname, Cell::Sock(sock)),
            Sysno::Getpeername => (EventType::SocketGetpeername, Cell::Sock(sock)),
            Sysno::Setsockopt => (
                EventType::SocketSetsockopt,
                Cell::SockOpt {
                    sock,
                    level: a[1] as u32,
                    optname: a[2] as u32,
                },
            ),
            _ => (
                EventType::SocketShutdown,
                Cell::SockValue {
                    sock,
                    value: a[1] as u32,
                },
            ),
        };
        self.simple(call, ty, cell)
    }

    fn sys_accept(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let f = self.target_file(call, a[0] as i32)?;
        let sock = self
            .sock(f.as_fd())
            .map_err(|_| Fail::Errno(libc::ENOTSOCK))?;
        let local = sys::getsockname(f.as_fd()).unwrap_or_default();
        let addr = parse_sockaddr(self.shared.alg, &local, true);
        self.simple(call, EventType::SocketAccept, Cell::SockAddr { sock, addr })
    }

    // ---- tasks -------------------------------------------------------------------------------

    fn task_of(&self, pid: i32) -> Option<Digest> {
        let tree = lock(&self.shared.tree);
        tree.get(pid)
            .or_else(|| tree.process(pid))
            .map(|t| t.ident.task_id)
    }

    fn sys_kill(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let (pid, sig) = match call.sys {
            Sysno::Kill | Sysno::Tkill | Sysno::RtSigqueueinfo => (a[0] as i32, a[1] as u32),
            _ => (a[1] as i32, a[2] as u32),
        };
        if sig == libc::SIGURG as u32 {
            return Ok(self.no_event("task_kill skips SIGURG (spec §1.3)"));
        }
        let zero = Digest::zero(self.shared.alg.size());
        let (target, cross_ns) = if pid > 0 {
            match self.task_of(pid) {
                Some(t) => (t, 0),
                None => (zero, 1),
            }
        } else {
            // Process-group and broadcast signals: one event for the group as a whole.
            (zero, 0)
        };
        let cell = Cell::TaskKill {
            target,
            sig,
            cross_ns,
        };
        if self.signal_reaches_supervisor(call, sig) {
            return Ok(self.ask_then_refuse(call, EventType::TaskKill, cell));
        }
        self.simple(call, EventType::TaskKill, cell)
    }

    fn sys_ptrace(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let req = a[0] as u32;
        let zero = Digest::zero(self.shared.alg.size());
        if req == libc::PTRACE_TRACEME {
            let parent = lock(&self.shared.tree)
                .get(call.tid)
                .map(|t| t.creator)
                .unwrap_or(0);
            let source = self.task_of(parent).unwrap_or(zero);
            return self.simple(
                call,
                EventType::PtraceTraceme,
                Cell::PtraceTraceme { source },
            );
        }
        if req == libc::PTRACE_ATTACH || req == libc::PTRACE_SEIZE {
            return self.ptrace_attach(call, a[1] as i32);
        }
        Ok(self
            .no_event("ptrace requests other than attach, seize and traceme act on tracees only"))
    }

    fn sys_setpgid(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let zero = Digest::zero(self.shared.alg.size());
        let pid = if a[0] as i32 == 0 {
            call.status.tgid
        } else {
            a[0] as i32
        };
        let pgid = if a[1] as i32 == 0 { pid } else { a[1] as i32 };
        let task = self.task_of(pid).unwrap_or(zero);
        let source = self.task_of(pgid).unwrap_or(zero);
        self.simple(
            call,
            EventType::TaskSetpgid,
            Cell::TaskSetpgid { task, source },
        )
    }

    /// TASK_ID of `pid` as the caller names it (0 = the caller itself).
    fn task_arg(&self, call: &Call, pid: i32) -> Digest {
        if pid == 0 {
            return call.task.ident.task_id;
        }
        self.task_of(pid)
            .unwrap_or_else(|| Digest::zero(self.shared.alg.size()))
    }

    /// Events whose CELL is just the target task.
    fn task_cell(&mut self, call: &mut Call, ty: EventType, pid: i32) -> Result<Reply, Fail> {
        let task = self.task_arg(call, pid);
        self.simple(call, ty, Cell::Task { task })
    }

    /// task_setrlimit for `setrlimit` and for `prlimit64` with a new limit.
    fn sys_rlimit(
        &mut self,
        call: &mut Call,
        pid: i32,
        resource: u64,
        new: u64,
    ) -> Result<Reply, Fail> {
        let b = self.read_mem(call.tid, new, 16)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let q = |i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let task = self.task_arg(call, pid);
        let cell = Cell::TaskSetrlimit {
            task,
            resource: resource as u32,
            current: q(0),
            max: q(8),
        };
        self.simple(call, EventType::TaskSetrlimit, cell)
    }

    fn sys_prlimit(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let pid = a[0] as i32;
        if pid != 0 && pid != call.status.tgid {
            // Another task's limits: task_prlimit with both credentials (LSM_PRLIMIT_READ = 1,
            // LSM_PRLIMIT_WRITE = 2). securebits are not in /proc and are reported as 0.
            let target = procfs::read_status(pid).map_err(|_| Fail::Errno(libc::ESRCH))?;
            if a[2] != 0 && self.is_supervisor(pid) {
                // New limits for the supervisor (too few descriptors, too little memory).
                return Ok(self.refuse());
            }
            let flags = u32::from(a[3] != 0) | (u32::from(a[2] != 0) << 1);
            let cell = Cell::TaskPrlimit {
                cred: tsem_core::event::Creds {
                    ids: call.status.coe,
                    securebits: 0,
                },
                tcred: tsem_core::event::Creds {
                    ids: target.coe,
                    securebits: 0,
                },
                flags,
            };
            let (v, allowed) = self.ask_token(call, EventType::TaskPrlimit, cell);
            let Some(allowed) = allowed else {
                return Ok(Reply::Error(v.errno));
            };
            if a[2] == 0 {
                return Ok(Reply::Continue(Continuation::Allowed(allowed)));
            }
        }
        if a[2] == 0 {
            return Ok(self.no_event("prlimit64 reading the caller's own limits reaches no hook"));
        }
        self.sys_rlimit(call, pid, a[1], a[2])
    }

    fn sys_setpriority(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let (which, who) = (a[0] as i32, a[1] as i32);
        let nice = (a[2] as i32).clamp(-20, 19);
        // PRIO_PGRP and PRIO_USER reach several tasks: one event with a zero target.
        let task = if which == libc::PRIO_PROCESS as i32 {
            self.task_arg(call, who)
        } else {
            Digest::zero(self.shared.alg.size())
        };
        self.simple(
            call,
            EventType::TaskSetnice,
            Cell::TaskValue {
                task,
                value: nice as u32,
            },
        )
    }

    fn sys_ioprio(&mut self, call: &mut Call, set: bool) -> Result<Reply, Fail> {
        let a = call.n.args;
        // IOPRIO_WHO_PROCESS = 1; groups and users reach several tasks.
        let task = if a[0] == 1 {
            self.task_arg(call, a[1] as i32)
        } else {
            Digest::zero(self.shared.alg.size())
        };
        if set {
            self.simple(
                call,
                EventType::TaskSetioprio,
                Cell::TaskValue {
                    task,
                    value: a[2] as u32,
                },
            )
        } else {
            self.simple(call, EventType::TaskGetioprio, Cell::Task { task })
        }
    }

    fn sys_capget(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let hdr = self.read_mem(call.tid, a[0], 8)?;
        let pid = i32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if a[1] == 0 {
            return Ok(self.no_event("capget version probe: no capability is read"));
        }
        let st = if pid == 0 {
            call.status.clone()
        } else {
            procfs::read_status(pid).map_err(|_| Fail::Errno(libc::ESRCH))?
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let cell = Cell::Capget {
            target: self.task_arg(call, pid),
            effective: st.coe.capeff,
            inheritable: st.capinh,
            permitted: st.capprm,
        };
        self.simple(call, EventType::Capget, cell)
    }

    fn sys_socketpair(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        // Both sockets are created by the caller (socket_post_create) before the hook.
        let sock = Sock {
            family: a[0] as u32,
            sock_type: (a[1] & 0xf) as u32,
            protocol: a[2] as u32,
            owner: call.task.ident.task_id,
        };
        self.simple(
            call,
            EventType::SocketSocketpair,
            Cell::SockPair { a: sock, b: sock },
        )
    }

    /// The xattr family: described from the object itself (path, honoring the `l*` no-follow
    /// variants, or the target's descriptor), then continued: get and list return data into the
    /// caller's memory, which the supervisor never writes.
    fn sys_xattr(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        use Sysno::*;
        let a = call.n.args;
        let obj = match call.sys {
            Fsetxattr | Fgetxattr | Flistxattr | Fremovexattr => {
                self.target_file(call, a[0] as i32)?
            }
            Lsetxattr | Lgetxattr | Llistxattr | Lremovexattr => {
                self.object(call, libc::AT_FDCWD as i64, a[0], libc::AT_SYMLINK_NOFOLLOW)?
            }
            _ => self.object(call, libc::AT_FDCWD as i64, a[0], 0)?,
        };
        let name = match call.sys {
            Listxattr | Llistxattr | Flistxattr => None,
            _ => Some(tsem_core::RawStr::from(self.read_cstr(call.tid, a[1])?)),
        };
        let value = match call.sys {
            Setxattr | Lsetxattr | Fsetxattr => {
                self.read_mem(call.tid, a[2], (a[3] as usize).min(65536))?
            }
            _ => Vec::new(),
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let dentry = self.desc.object_dentry(obj.as_fd(), &st);
        let (ty, cell) = match (call.sys, name) {
            (Setxattr | Lsetxattr | Fsetxattr, Some(name)) => (
                EventType::InodeSetxattr,
                Cell::InodeSetxattr {
                    dentry,
                    name,
                    value,
                    flags: a[4] as u32,
                },
            ),
            (Getxattr | Lgetxattr | Fgetxattr, Some(name)) => {
                (EventType::InodeGetxattr, Cell::InodeXattr { dentry, name })
            }
            (Removexattr | Lremovexattr | Fremovexattr, Some(name)) => (
                EventType::InodeRemovexattr,
                Cell::InodeXattr { dentry, name },
            ),
            _ => (EventType::InodeListxattr, Cell::Dentry(dentry)),
        };
        self.simple(call, ty, cell)
    }

    fn sys_prctl(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let option = a[0] as u32;
        let mut arg2 = a[1];
        if option == libc::PR_SET_NAME as u32 || option == libc::PR_GET_NAME as u32 {
            arg2 = 0;
        }
        self.simple(
            call,
            EventType::TaskPrctl,
            Cell::TaskPrctl {
                option,
                args: [arg2, a[2], a[3], a[4]],
            },
        )
    }

    fn sys_capset(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let hdr = self.read_mem(call.tid, a[0], 8)?;
        let version = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let words = if version == 0x1998_0330 { 1 } else { 2 };
        let data = self.read_mem(call.tid, a[1], 12 * words)?;
        let w = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let mut caps = [0u64; 3];
        for k in 0..words {
            for (j, c) in caps.iter_mut().enumerate() {
                *c |= u64::from(w(12 * k + 4 * j)) << (32 * k);
            }
        }
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        // cap_user_data_t order: effective, permitted, inheritable.
        let cell = Cell::Capset {
            effective: caps[0],
            inheritable: caps[2],
            permitted: caps[1],
        };
        self.simple(call, EventType::Capset, cell)
    }

    // ---- inode operations --------------------------------------------------------------------

    fn sys_create(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        path: u64,
        mode: u32,
        dev: Option<u64>,
    ) -> Result<Reply, Fail> {
        let raw = self.read_cstr(call.tid, path)?;
        let par = self.parent(call, dirfd, &raw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if par.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let emulate = self.performs(call);
        let m = mode & !self.umask(call) & 0o7777;
        let fmt = mode & libc::S_IFMT;
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let (ty, cell, created) = match dev {
            None => {
                let c = self.desc.next_instance(&par.st, &call.task.ident.task_id);
                let dentry = self
                    .desc
                    .dentry(par.fd.as_fd(), &par.st, &par.abs, None, Some(c));
                (
                    EventType::InodeMkdir,
                    Cell::InodeCreate {
                        dir,
                        dentry,
                        mode: m,
                    },
                    Some(c),
                )
            }
            Some(_) if fmt == 0 || fmt == libc::S_IFREG => {
                let c = self.desc.next_instance(&par.st, &call.task.ident.task_id);
                let dentry = self
                    .desc
                    .dentry(par.fd.as_fd(), &par.st, &par.abs, None, Some(c));
                (
                    EventType::InodeCreate,
                    Cell::InodeCreate {
                        dir,
                        dentry,
                        mode: libc::S_IFREG | m,
                    },
                    Some(c),
                )
            }
            Some(d) => {
                let dentry = self
                    .desc
                    .dentry(par.fd.as_fd(), &par.st, &par.abs, None, None);
                let (ma, mi) = (libc::major(d as libc::dev_t), libc::minor(d as libc::dev_t));
                (
                    EventType::InodeMknod,
                    Cell::InodeMknod {
                        dir,
                        dentry,
                        mode: fmt | m,
                        dev: (ma, mi),
                    },
                    None,
                )
            }
        };
        if let Some(r) = self.decide(call, ty, cell, emulate) {
            return Ok(r);
        }
        let d = par.fd.as_fd();
        let r = match dev {
            None => sys::path_op(&PathOp::Mkdir {
                dir: d,
                path: &par.base_op,
                mode: m,
            }),
            Some(dv) => sys::path_op(&PathOp::Mknod {
                dir: d,
                path: &par.base_op,
                mode: fmt | m,
                dev: dv,
            }),
        };
        if r.is_ok()
            && let Some(c) = created
            && let Ok(st) = sys::fstatat_nofollow(d, &par.base_op)
        {
            self.desc.mark_created(&st, c);
        }
        Ok(op_reply(r))
    }

    fn sys_unlink(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        path: u64,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let raw = self.read_cstr(call.tid, path)?;
        let par = self.parent(call, dirfd, &raw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let Some(entry) = par.entry else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        let emulate = self.performs(call);
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let created = self.desc.created(&entry);
        let dentry = self
            .desc
            .dentry(par.fd.as_fd(), &par.st, &par.abs, Some(&entry), created);
        let ty = if flags & libc::AT_REMOVEDIR != 0 {
            EventType::InodeRmdir
        } else {
            EventType::InodeUnlink
        };
        if let Some(r) = self.decide(call, ty, Cell::InodeDirEntry { dir, dentry }, emulate) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Unlink {
            dir: par.fd.as_fd(),
            path: &par.base_op,
            flags,
        });
        if r.is_ok() {
            self.desc.forget(&entry);
        }
        Ok(op_reply(r))
    }

    fn sys_rename(
        &mut self,
        call: &mut Call,
        od: i64,
        op_: u64,
        nd: i64,
        np: u64,
        flags: u32,
    ) -> Result<Reply, Fail> {
        let oraw = self.read_cstr(call.tid, op_)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let o = self.parent(call, od, &oraw)?;
        let n = self.parent(call, nd, &nraw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let Some(oe) = o.entry else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        let emulate = self.performs(call);
        let old_dir = self.desc.inode(o.fd.as_fd(), &o.st, &o.abs);
        let oc = self.desc.created(&oe);
        let old_dentry = self.desc.dentry(o.fd.as_fd(), &o.st, &o.abs, Some(&oe), oc);
        let new_dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let nc = n.entry.as_ref().and_then(|e| self.desc.created(e));
        let new_dentry = self
            .desc
            .dentry(n.fd.as_fd(), &n.st, &n.abs, n.entry.as_ref(), nc);
        if let Some(r) = self.decide(
            call,
            EventType::InodeRename,
            Cell::InodeRename(Box::new(tsem_core::event::Rename {
                old_dir,
                old_dentry,
                new_dir,
                new_dentry,
            })),
            emulate,
        ) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Rename {
            odir: o.fd.as_fd(),
            old: &o.base_op,
            ndir: n.fd.as_fd(),
            new: &n.base_op,
            flags,
        });
        Ok(op_reply(r))
    }

    fn sys_link(
        &mut self,
        call: &mut Call,
        od: i64,
        op_: u64,
        nd: i64,
        np: u64,
        flags: i32,
    ) -> Result<Reply, Fail> {
        if flags & (libc::AT_EMPTY_PATH | libc::AT_SYMLINK_FOLLOW) != 0 {
            return self.sys_link_object(call, od, op_, nd, np, flags);
        }
        let oraw = self.read_cstr(call.tid, op_)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let o = self.parent(call, od, &oraw)?;
        let n = self.parent(call, nd, &nraw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let Some(oe) = o.entry else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        if n.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let emulate = self.performs(call);
        let oc = self.desc.created(&oe);
        let old_dentry = self.desc.dentry(o.fd.as_fd(), &o.st, &o.abs, Some(&oe), oc);
        let dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let new_dentry = self.desc.dentry(n.fd.as_fd(), &n.st, &n.abs, None, None);
        if let Some(r) = self.decide(
            call,
            EventType::InodeLink,
            Cell::InodeLink(Box::new(tsem_core::event::Link {
                old_dentry,
                dir,
                new_dentry,
            })),
            emulate,
        ) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Link {
            odir: o.fd.as_fd(),
            old: &o.base_op,
            ndir: n.fd.as_fd(),
            new: &n.base_op,
            flags,
        });
        Ok(op_reply(r))
    }

    fn sys_symlink(
        &mut self,
        call: &mut Call,
        target: u64,
        nd: i64,
        np: u64,
    ) -> Result<Reply, Fail> {
        let traw = self.read_cstr(call.tid, target)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let n = self.parent(call, nd, &nraw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if n.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let emulate = self.performs(call);
        let dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let dentry = self.desc.dentry(n.fd.as_fd(), &n.st, &n.abs, None, None);
        let old_name = tsem_core::RawStr::from(&traw[..]);
        if let Some(r) = self.decide(
            call,
            EventType::InodeSymlink,
            Cell::InodeSymlink {
                dir,
                dentry,
                old_name,
            },
            emulate,
        ) {
            return Ok(r);
        }
        let t = cstring(traw)?;
        Ok(op_reply(sys::path_op(&PathOp::Symlink {
            target: &t,
            dir: n.fd.as_fd(),
            path: &n.base_op,
        })))
    }

    /// Open the object a path-based setattr call names, as an O_PATH descriptor.
    fn object(&mut self, call: &Call, dirfd: i64, path: u64, flags: i32) -> Result<OwnedFd, Fail> {
        let raw = self.read_cstr(call.tid, path)?;
        if raw.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(Fail::Errno(libc::ENOENT));
            }
            return sys::open(
                &format!("/proc/{}/fd/{}", call.tid, dirfd as i32),
                libc::O_PATH,
            )
            .map_err(|_| Fail::Errno(libc::EBADF));
        }
        let t = self.resolve(call, dirfd, &raw)?;
        let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
            libc::O_NOFOLLOW as u64
        } else {
            0
        };
        Ok(sys::openat2(
            t.dir(),
            &t.path,
            libc::O_PATH as u64 | nofollow,
            0,
            t.resolve,
        )?)
    }

    fn setattr_cell(&mut self, fd: BorrowedFd<'_>, st: &libc::stat, what: &SetAttr) -> Cell {
        let dentry = self.desc.object_dentry(fd, st);
        let (valid, mode, uid, gid, size) = match *what {
            SetAttr::Mode(m) => (
                ATTR_MODE | ATTR_CTIME,
                (m & 0o7777) | (st.st_mode & libc::S_IFMT),
                0,
                0,
                0,
            ),
            SetAttr::Owner(u, g) => {
                let mut v = ATTR_CTIME;
                if u != u32::MAX {
                    v |= ATTR_UID;
                }
                if g != u32::MAX {
                    v |= ATTR_GID;
                }
                (
                    v,
                    0,
                    if u != u32::MAX { u } else { 0 },
                    if g != u32::MAX { g } else { 0 },
                    0,
                )
            }
            SetAttr::Size(s) => (ATTR_SIZE | ATTR_MTIME | ATTR_CTIME, 0, 0, 0, s as u64),
            SetAttr::Times(set) => {
                let mut v = ATTR_ATIME | ATTR_MTIME | ATTR_CTIME;
                if set {
                    v |= ATTR_ATIME_SET | ATTR_MTIME_SET;
                }
                (v, 0, 0, 0, 0)
            }
        };
        Cell::InodeSetattr {
            dentry,
            valid,
            mode,
            uid,
            gid,
            size,
        }
    }

    fn sys_setattr(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        path: Option<u64>,
        flags: i32,
        what: SetAttr,
    ) -> Result<Reply, Fail> {
        let obj = self.object(call, dirfd, path.unwrap_or(0), flags)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        self.guard(self.shared.protected.object(&st))?;
        if let SetAttr::Size(_) = what {
            self.claim_write(&st)?;
        }
        let emulate = self.performs(call);
        let cell = self.setattr_cell(obj.as_fd(), &st, &what);
        if let Some(r) = self.decide(call, EventType::InodeSetattr, cell, emulate) {
            return Ok(r);
        }
        let empty = c"";
        let d = obj.as_fd();
        let r = match what {
            SetAttr::Mode(m) => sys::path_op(&PathOp::Chmod {
                dir: d,
                path: empty,
                mode: m,
                flags: libc::AT_EMPTY_PATH,
            }),
            SetAttr::Owner(u, g) => sys::path_op(&PathOp::Chown {
                dir: d,
                path: empty,
                uid: u,
                gid: g,
                flags: libc::AT_EMPTY_PATH,
            }),
            SetAttr::Size(s) => {
                let link = format!("/proc/self/fd/{}", d.as_raw_fd());
                match sys::open(&link, libc::O_WRONLY | libc::O_NOCTTY) {
                    Ok(w) => sys::path_op(&PathOp::Truncate {
                        fd: w.as_fd(),
                        len: s,
                    }),
                    Err(e) => Err(errno_of(&e)),
                }
            }
            // Times go through sys_utimens and sys_utimes_old, never here.
            SetAttr::Times(_) => Err(libc::EINVAL),
        };
        Ok(op_reply(r))
    }

    /// file_ioctl, file_fcntl, file_lock: the caller's open file and the command, then the
    /// kernel runs the call (continued: another thread could swap the descriptor in between,
    /// see "What remains racy").
    fn sys_file_cmd(
        &mut self,
        call: &mut Call,
        fd: i32,
        ty: EventType,
        cmd: u32,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        let flags = sys::status_flags(f.as_fd()).unwrap_or(0) as u32;
        let file = self.desc.file(f.as_fd(), Some(f.as_fd()), &st, flags);
        self.simple(call, ty, Cell::FileCmd { file, cmd })
    }

    /// fcntl: file_fcntl for every command; a record-lock command also passes file_lock with
    /// the lock's type (`security_file_lock(file, fl_type)`).
    fn sys_fcntl(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let (fd, cmd) = (a[0] as i32, a[1] as i32);
        let mut fcntl_allowed = None;
        if self.shared.observe.fcntl {
            match self.sys_file_cmd(call, fd, EventType::FileFcntl, cmd as u32)? {
                Reply::Continue(c) => fcntl_allowed = Some(c),
                other => return Ok(other),
            }
        }
        let locks = [
            libc::F_SETLK,
            libc::F_SETLKW,
            libc::F_OFD_SETLK,
            libc::F_OFD_SETLKW,
        ];
        if self.shared.observe.lock && locks.contains(&cmd) {
            // struct flock starts with `short l_type`.
            let b = self.read_mem(call.tid, a[2], 2)?;
            let l_type = i16::from_ne_bytes([b[0], b[1]]);
            return self.sys_file_cmd(call, fd, EventType::FileLock, l_type as u32);
        }
        Ok(match fcntl_allowed {
            Some(c) => Reply::Continue(c),
            None => self.no_event("fcntl without file_fcntl observed: only record locks are"),
        })
    }

    /// flock: file_lock with the lock type the kernel translates the operation to.
    fn sys_flock(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let op = a[1] as i32;
        const LOCK_MAND: i32 = 32;
        let ty = match op & !libc::LOCK_NB {
            _ if op & LOCK_MAND != 0 => None,
            libc::LOCK_SH => Some(libc::F_RDLCK),
            libc::LOCK_EX => Some(libc::F_WRLCK),
            libc::LOCK_UN => Some(libc::F_UNLCK),
            _ => None,
        };
        match ty {
            Some(t) => self.sys_file_cmd(call, a[0] as i32, EventType::FileLock, t as u32),
            None => {
                Ok(self.no_event("flock operation the kernel rejects or ignores before the hook"))
            }
        }
    }

    /// The stat family: inode_getattr of the object, then the supervisor stats that very
    /// object and writes the result into the caller's buffer, so what is described is what the
    /// caller learns about.
    fn sys_getattr(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        path: u64,
        buf: u64,
        flags: i32,
        statx_mask: Option<u32>,
    ) -> Result<Reply, Fail> {
        let obj = self.object(call, dirfd, path, flags)?;
        // The supervisor's own credentials must not find what the caller's would not (search
        // permission on the path): otherwise see `performs`.
        let emulate = self.performs(call);
        self.getattr_of(call, obj, buf, flags, statx_mask, emulate)
    }

    fn getattr_of(
        &mut self,
        call: &mut Call,
        obj: OwnedFd,
        buf: u64,
        flags: i32,
        statx_mask: Option<u32>,
        emulate: bool,
    ) -> Result<Reply, Fail> {
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let dentry = self.desc.object_dentry(obj.as_fd(), &st);
        call.emulated = emulate;
        if let Some(r) = self.decide(
            call,
            EventType::InodeGetattr,
            Cell::InodeGetattr(dentry),
            emulate,
        ) {
            return Ok(r);
        }
        let bytes = match statx_mask {
            None => sys::stat_bytes(&st),
            Some(mask) => sys::statx_bytes(obj.as_fd(), flags & libc::AT_STATX_SYNC_TYPE, mask)?,
        };
        if buf == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        match sys::process_vm_write(call.tid, buf, &bytes) {
            Ok(n) if n == bytes.len() => Ok(Reply::Value(0)),
            Ok(_) => Err(Fail::Errno(libc::EFAULT)),
            Err(e) => Err(Fail::Errno(map_mem_err(&e))),
        }
    }

    fn sys_setattr_fd(&mut self, call: &mut Call, fd: i32, what: SetAttr) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        self.guard(self.shared.protected.object(&st))?;
        let emulate = self.performs(call);
        let mut cell = self.setattr_cell(f.as_fd(), &st, &what);
        if let (SetAttr::Size(_), Cell::InodeSetattr { valid, .. }) = (&what, &mut cell) {
            *valid |= ATTR_FILE;
        }
        if let Some(r) = self.decide(call, EventType::InodeSetattr, cell, emulate) {
            return Ok(r);
        }
        // Performed on the target's own open file, so a concurrent dup2 cannot redirect it.
        let r = match what {
            SetAttr::Mode(m) => sys::fchmod(f.as_fd(), m),
            SetAttr::Owner(u, g) => sys::fchown(f.as_fd(), u, g),
            SetAttr::Size(s) => sys::path_op(&PathOp::Truncate {
                fd: f.as_fd(),
                len: s,
            }),
            // Times go through sys_utimens and sys_utimes_old, never here.
            SetAttr::Times(_) => Err(libc::EINVAL),
        };
        Ok(op_reply(r))
    }

    fn sys_utimens(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let flags = a[3] as i32;
        let times = if a[2] == 0 {
            None
        } else {
            let b = self.read_mem(call.tid, a[2], 32)?;
            let q = |i: usize| {
                i64::from_le_bytes([
                    b[i],
                    b[i + 1],
                    b[i + 2],
                    b[i + 3],
                    b[i + 4],
                    b[i + 5],
                    b[i + 6],
                    b[i + 7],
                ])
            };
            Some([
                libc::timespec {
                    tv_sec: q(0),
                    tv_nsec: q(8),
                },
                libc::timespec {
                    tv_sec: q(16),
                    tv_nsec: q(24),
                },
            ])
        };
        let obj = if a[1] == 0 {
            // utimensat(fd, NULL, ...) acts on the descriptor itself.
            self.target_file(call, a[0] as i32)?
        } else {
            self.object(call, a[0] as i64, a[1], flags)?
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let set = times.is_some_and(|t| t.iter().any(|x| x.tv_nsec != libc::UTIME_NOW));
        let emulate = self.performs(call);
        let cell = self.setattr_cell(obj.as_fd(), &st, &SetAttr::Times(set));
        if let Some(r) = self.decide(call, EventType::InodeSetattr, cell, emulate) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Utimens {
            dir: obj.as_fd(),
            path: Some(c""),
            times,
            flags: libc::AT_EMPTY_PATH,
        });
        Ok(op_reply(r))
    }

    fn sys_utimes_old(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let (dirfd, path, tp) = match call.sys {
            Sysno::Futimesat => (a[0] as i64, a[1], a[2]),
            _ => (libc::AT_FDCWD as i64, a[0], a[1]),
        };
        let obj = self.object(call, dirfd, path, 0)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let cell = self.setattr_cell(obj.as_fd(), &st, &SetAttr::Times(tp != 0));
        self.simple(call, EventType::InodeSetattr, cell)
    }

    // ---- mounts and modules ------------------------------------------------------------------

    fn path_ref_of(
        &mut self,
        call: &Call,
        dirfd: i64,
        path: u64,
    ) -> Result<tsem_core::event::PathRef, Fail> {
        let obj = self.object(call, dirfd, path, 0)?;
        let st = sys::fstat(obj.as_fd())?;
        let abs = Describer::fd_path(obj.as_fd());
        let created = self.desc.created(&st);
        Ok(self.desc.path(obj.as_fd(), &st, &abs, created))
    }

    fn opt_str(&self, call: &Call, addr: u64) -> Result<Option<tsem_core::RawStr>, Fail> {
        if addr == 0 {
            return Ok(None);
        }
        Ok(Some(self.read_cstr(call.tid, addr)?.into()))
    }

    fn sys_mount(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let dev_name = self.opt_str(call, a[0])?;
        let fs_type = self.opt_str(call, a[2])?;
        let path = self.path_ref_of(call, libc::AT_FDCWD as i64, a[1])?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let r = self.simple(
            call,
            EventType::SbMount,
            Cell::SbMount {
                dev_name,
                path,
                fs_type,
                flags: a[3],
            },
        );
        self.desc.reload_mounts();
        r
    }

    fn sys_umount(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let obj = self.object(call, libc::AT_FDCWD as i64, a[0], 0)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let abs = Describer::fd_path(obj.as_fd());
        let mnt = self.desc.dentry(obj.as_fd(), &st, &abs, Some(&st), None);
        let r = self.simple(
            call,
            EventType::SbUmount,
            Cell::SbUmount {
                mnt,
                flags: a[1] as u32,
            },
        );
        self.desc.reload_mounts();
        r
    }

    fn sys_two_paths(
        &mut self,
        call: &mut Call,
        ty: EventType,
        d1: i64,
        p1: u64,
        d2: i64,
        p2: u64,
    ) -> Result<Reply, Fail> {
        let a = self.path_ref_of(call, d1, p1)?;
        let b = self.path_ref_of(call, d2, p2)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let r = self.simple(
            call,
            ty,
            Cell::TwoPaths(Box::new(tsem_core::event::PathPair { a, b })),
        );
        self.desc.reload_mounts();
        r
    }

    fn sys_finit_module(&mut self, call: &mut Call) -> Result<Reply, Fail> {
        let a = call.n.args;
        let f = self.target_file(call, a[0] as i32)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        let flags = sys::status_flags(f.as_fd()).unwrap_or(0) as u32;
        let file = self.desc.file(f.as_fd(), Some(f.as_fd()), &st, flags);
        // READING_MODULE, whole file.
        self.simple(
            call,
            EventType::KernelReadFile,
            Cell::KernelReadFile {
                file,
                id: 2,
                contents: 1,
            },
        )
    }

    /// Describe the executable loaded at an exec stop (called from the tracer thread).
    pub(crate) fn describe_exe(
        desc: &mut Describer,
        pid: i32,
    ) -> io::Result<(FileDesc, libc::stat)> {
        let p = sys::open(&format!("/proc/{pid}/exe"), libc::O_PATH)?;
        let st = sys::fstat(p.as_fd())?;
        let reader = desc.reader_for(p.as_fd(), &st);
        let file = desc.file(
            p.as_fd(),
            reader.as_ref().map(|r| r.as_fd()),
            &st,
            EXEC_FLAGS,
        );
        Ok((file, st))
    }

    /// TASK_ID for a task that executed `exe` with credentials `coe` (spec §3.3).
    pub(crate) fn task_id(
        mapper: &mut Mapper,
        p_task_id: &Digest,
        coe: &Coe,
        exe: &FileDesc,
    ) -> Digest {
        mapper.task_id(p_task_id, coe, exe)
    }
}

struct Parent {
    fd: OwnedFd,
    st: libc::stat,
    base_op: CString,
    abs: Vec<u8>,
    entry: Option<libc::stat>,
}

#[derive(Debug, Clone, Copy)]
enum SetAttr {
    Mode(u32),
    Owner(u32, u32),
    Size(i64),
    Times(bool),
}

/// The value TSEM exports as mmap_file's `flags`. Post-v4 kernels export the protection there
/// (every mmap_file of the real captures in conformance/tsem has `flags == prot`); the v3 layout
/// carries the MAP_* flags.
pub fn mmap_flags_field(mapping: tsem_core::map::Mapping, prot: u64, flags: u64) -> u32 {
    if mapping == tsem_core::map::Mapping::V3 {
        flags as u32
    } else {
        prot as u32
    }
}

fn op_reply(r: sys::OpResult) -> Reply {
    match r {
        Ok(v) => Reply::Value(v),
        Err(e) => Reply::Error(e),
    }
}

fn map_mem_err(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::ESRCH) => libc::ESRCH,
        Some(libc::EPERM) => libc::EPERM,
        _ => libc::EFAULT,
    }
}

/// A socket address as TSEM describes it (spec §1.4). `accept` describes the listening socket's
/// own address, where the kernel hashes the host-order port.
pub fn parse_sockaddr(alg: HashAlg, b: &[u8], accept: bool) -> Option<SockAddr> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_le_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET if b.len() >= 8 => {
            let raw_port = u16::from_le_bytes([b[2], b[3]]);
            let port = if accept {
                u16::from_be_bytes([b[2], b[3]])
            } else {
                raw_port
            };
            Some(SockAddr::Inet {
                port,
                address: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            })
        }
        libc::AF_INET6 if b.len() >= 28 => {
            let mut address = [0u8; 16];
            address.copy_from_slice(&b[8..24]);
            let raw_port = u16::from_le_bytes([b[2], b[3]]);
            if accept {
                Some(SockAddr::Inet6 {
                    port: u16::from_be_bytes([b[2], b[3]]),
                    flow: None,
                    scope: None,
                    address,
                })
            } else {
                Some(SockAddr::Inet6 {
                    port: raw_port,
                    flow: Some(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
                    scope: Some(u32::from_le_bytes([b[24], b[25], b[26], b[27]])),
                    address,
                })
            }
        }
        libc::AF_UNIX => {
            // The kernel prints and hashes sun_path as a C string, so an abstract name (leading
            // NUL) is the empty string.
            let p = &b[2..];
            let end = p.iter().position(|c| *c == 0).unwrap_or(p.len());
            Some(SockAddr::Unix {
                address: tsem_core::RawStr::from(&p[..end]),
            })
        }
        _ => {
            let address = if accept {
                alg.zero_digest()
            } else {
                alg.digest(&b[2..])
            };
            Some(SockAddr::Other { address })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn self_paths_are_rewritten_for_the_target() {
        assert_eq!(rewrite_self(b"/proc/self/status", 7, 9), b"/proc/7/status");
        assert_eq!(rewrite_self(b"/proc/self", 7, 9), b"/proc/7");
        assert_eq!(
            rewrite_self(b"/proc/thread-self/comm", 7, 9),
            b"/proc/7/task/9/comm"
        );
        assert_eq!(rewrite_self(b"/dev/fd/63", 7, 9), b"/proc/7/fd/63");
        assert_eq!(rewrite_self(b"/dev/stdout", 7, 9), b"/proc/7/fd/1");
        assert_eq!(rewrite_self(b"/dev/stdoutx", 7, 9), b"/dev/stdoutx");
        assert_eq!(rewrite_self(b"/etc/passwd", 7, 9), b"/etc/passwd");
        assert!(names_other_proc(b"/proc/7/fd/3", 1));
        assert!(!names_other_proc(b"/proc/1/fd/3", 1));
        assert!(!names_other_proc(b"/proc/sys/kernel", 1));
    }

    #[test]
    fn parent_split() {
        let s = |p: &[u8]| {
            split_parent(p).map(|(a, b, c)| {
                (
                    String::from_utf8(a).unwrap(),
                    String::from_utf8(b).unwrap(),
                    String::from_utf8(c).unwrap(),
                )
            })
        };
        assert_eq!(s(b"/a/b"), Some(("/a".into(), "b".into(), "b".into())));
        assert_eq!(s(b"/a"), Some(("/".into(), "a".into(), "a".into())));
        assert_eq!(s(b"a"), Some((".".into(), "a".into(), "a".into())));
        assert_eq!(
            s(b"x/dir/"),
            Some(("x".into(), "dir".into(), "dir/".into()))
        );
        assert_eq!(s(b"x/.."), None);
        assert_eq!(s(b"///"), None);
    }

    #[test]
    fn f_flags_as_kernel() {
        assert_eq!(
            open_f_flags((libc::O_RDONLY | libc::O_CLOEXEC) as u64),
            32768
        );
        assert_eq!(
            open_f_flags((libc::O_RDONLY | libc::O_NOCTTY) as u64),
            33024
        );
        assert_eq!(EXEC_FLAGS, 32800);
    }

    #[test]
    fn sockaddr_parsing() {
        let mut sin = vec![0u8; 16];
        sin[0..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
        sin[2..4].copy_from_slice(&8080u16.to_be_bytes());
        sin[4..8].copy_from_slice(&[127, 0, 0, 1]);
        let Some(SockAddr::Inet { port, address }) = parse_sockaddr(HashAlg::Sha256, &sin, false)
        else {
            panic!()
        };
        assert_eq!(port, u16::from_le_bytes(8080u16.to_be_bytes()));
        assert_eq!(address, u32::from_le_bytes([127, 0, 0, 1]));
        let Some(SockAddr::Inet { port, .. }) = parse_sockaddr(HashAlg::Sha256, &sin, true) else {
            panic!()
        };
        assert_eq!(port, 8080);
        let mut sun = vec![0u8; 2];
        sun[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_le_bytes());
        sun.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(
            parse_sockaddr(HashAlg::Sha256, &sun, false),
            Some(SockAddr::Unix {
                address: "/run/x.sock".into()
            })
        );
        let mut abs = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        abs.extend_from_slice(b"\0abstract");
        assert_eq!(
            parse_sockaddr(HashAlg::Sha256, &abs, false),
            Some(SockAddr::Unix {
                address: tsem_core::RawStr::new()
            }),
            "abstract names print as the empty C string"
        );
    }
}
