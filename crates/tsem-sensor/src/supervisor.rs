//! Launching a workload under the filter and following its lifecycle with event-only ptrace.
//!
//! The calling thread forks the workload, seizes it (`PTRACE_SEIZE` with TRACEEXEC, TRACEFORK,
//! TRACEVFORK, TRACECLONE and EXITKILL) and then runs the tracer loop; a second thread answers
//! the seccomp notifications. Every tracee is resumed with `PTRACE_CONT` (signals re-injected,
//! group-stops parked with `PTRACE_LISTEN`), so ptrace costs nothing per syscall.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tsem_core::HashAlg;
use tsem_core::event::{Cell, Event, EventHeader, EventType};
use tsem_core::map::{Mapper, Mapping};

use crate::describe::Describer;
use crate::event::{Counters, EventHandler, ExecEvent, RawEvent, Stats};
use crate::filter;
use crate::notify::{self, Notifier, Shared, lock};
use crate::procfs;
use crate::sys::{self, ChildPlan, ChildStage};
use crate::syscalls::Sysno;
use crate::tree::Tree;

/// Errors starting or supervising a workload.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The command line was empty.
    #[error("empty command")]
    EmptyCommand,
    /// The program was not found in `PATH`.
    #[error("command not found: {0}")]
    NotFound(String),
    /// An argument or environment entry contains a NUL byte.
    #[error("argument contains a NUL byte")]
    Nul,
    /// A setup syscall failed in the supervisor.
    #[error("{what}: {source}")]
    Setup {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The child failed before it could execute the program.
    #[error("workload setup failed at {stage:?}: {source}")]
    Child {
        /// Where it failed.
        stage: ChildStage,
        /// The errno.
        source: std::io::Error,
    },
    /// A descriptor to keep for the workload is not open.
    #[error("descriptor {0} to keep for the workload is not open")]
    KeepFd(i32),
    /// The notification thread died.
    #[error("notification thread panicked")]
    NotifierPanic,
    /// The kernel backstop could not be built.
    #[error(transparent)]
    Backstop(#[from] crate::backstop::BackstopError),
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> SpawnError {
    move |source| SpawnError::Setup { what, source }
}

/// How the workload's first process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Settings of a supervised run.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Hash function of the modeling namespace (file digests, TASK_IDs).
    pub alg: HashAlg,
    /// Coefficient layout used for TASK_IDs.
    pub mapping: Mapping,
    /// Working directory of the workload (default: ours).
    pub cwd: Option<PathBuf>,
    /// Environment variables set (or replaced) for the workload on top of ours.
    pub env: Vec<(OsString, OsString)>,
    /// Keep file digests across runs in this store (see [`crate::digest_cache`] for what this
    /// trusts and how the workload is kept away from it).
    pub digest_cache: Option<crate::digest_cache::Store>,
    /// Measurement only, never for security: run the workload under the same filter, threads
    /// and ptrace, but answer every notification with CONTINUE and describe nothing (no events
    /// reach the handler). `tsem bench run` uses it to measure what interception alone costs.
    pub mechanism_only: bool,
    /// With [`SensorConfig::mechanism_only`]: perform opens as enforcing does (the `O_PATH`
    /// probe, the reopen, the descriptor handed back with `ADDFD`), still describing and
    /// modeling nothing, so benchmarks show the floor of emulation beside that of interception.
    pub mechanism_emulates_opens: bool,
    /// How the notification threads wait (default: the best the kernel allows).
    pub wait: WaitMode,
    /// Hot events to observe as well, as the kernel TSEM does (none by default: every program
    /// makes these calls constantly, and each observed call costs a notification round trip).
    pub observe: crate::syscalls::Observe,
    /// End the run when the first process exits, killing whatever it left running (default:
    /// follow every descendant to its end, like `strace -f`).
    pub end_with_leader: bool,
    /// Apply this access set to the workload as a Landlock ruleset before it runs (the kernel
    /// backstop, [`crate::backstop`]).
    pub backstop: Option<tsem_core::access::AccessSet>,
    /// Descriptors above 2 the workload inherits (`tsem run --keep-fd N`); every other one is
    /// closed at its exec, so nothing opened outside the model is readable inside it.
    pub keep_fds: Vec<i32>,
    /// Hash the contents of tmpfs and memfd files that are executed or mapped executable (a
    /// tsem extension to TSEM's pseudo-filesystem rule, docs/sensor.md). Off: kernel-exact
    /// zero digests for them.
    pub hash_pseudo_exec: bool,
    /// The run enforces a model: a call the supervisor cannot perform as the task would
    /// (other credentials) is refused with EPERM after its verdict instead of continued.
    pub enforcing: bool,
    /// Count into these, so that another thread can read them while the run goes on (`tsem run
    /// --every` attests the live lost-event count); fresh ones when `None`. The report's stats
    /// are these counters at the end: give fresh ones to every run.
    pub counters: Option<std::sync::Arc<Counters>>,
}

/// How notification threads wait for notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitMode {
    /// [`WaitMode::Recv`] where the kernel ends a blocked RECV when the last task exits
    /// ([`sys::recv_returns_on_hangup`]), else [`WaitMode::Epoll`].
    #[default]
    Auto,
    /// In an epoll set each (`EPOLLEXCLUSIVE`), which sees the hang-up on any kernel.
    Epoll,
    /// In `SECCOMP_IOCTL_NOTIF_RECV` itself, so `SYNC_WAKE_UP` runs the thread on the
    /// notifying task's CPU. Hangs at the end on kernels before 6.11.
    Recv,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            alg: HashAlg::Sha256,
            mapping: Mapping::default(),
            cwd: None,
            env: Vec::new(),
            digest_cache: None,
            mechanism_only: false,
            mechanism_emulates_opens: false,
            wait: WaitMode::Auto,
            observe: Default::default(),
            end_with_leader: false,
            backstop: None,
            keep_fds: Vec::new(),
            hash_pseudo_exec: true,
            enforcing: false,
            counters: None,
        }
    }
}

/// The result of a supervised run.
#[derive(Debug)]
pub struct Report<H> {
    /// How the first process ended.
    pub exit: Exit,
    /// errno of the workload's first `execve` if it failed (the exit is then 127).
    pub exec_error: Option<i32>,
    /// Counters.
    pub stats: Stats,
    /// Set when the listener failed and the workload was killed (fail closed).
    pub listener_error: Option<String>,
    /// Set when the digest store could not be written back (the run itself is unaffected).
    pub digest_cache_error: Option<String>,
    /// The kernel backstop applied to the workload (`None`: none was asked for).
    pub backstop: Option<crate::backstop::BackstopReport>,
    /// The handler, handed back.
    pub handler: H,
}

/// Find `prog` like `execvp` would.
pub fn find_program(prog: &OsStr) -> Option<PathBuf> {
    let p = Path::new(prog);
    if prog.as_bytes().contains(&b'/') {
        return Some(p.to_path_buf());
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(&path).map(|d| d.join(p)).find(|c| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(c)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

fn cstring(s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul)
}

/// Run `argv` under the sensor, deciding every event with `handler`.
pub fn run<H: EventHandler + 'static>(
    argv: &[OsString],
    config: &SensorConfig,
    handler: H,
) -> Result<Report<H>, SpawnError> {
    let Some(prog) = argv.first() else {
        return Err(SpawnError::EmptyCommand);
    };
    let path = find_program(prog)
        .ok_or_else(|| SpawnError::NotFound(prog.to_string_lossy().into_owned()))?;

    // Everything the child touches is allocated before the fork.
    let path_c = cstring(path.as_os_str())?;
    let args: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !config.env.iter().any(|(o, _)| o == k))
        .collect();
    vars.extend(config.env.iter().cloned());
    let env: Vec<CString> = vars
        .into_iter()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).map_err(|_| SpawnError::Nul)
        })
        .collect::<Result<_, _>>()?;
    let backstop = config
        .backstop
        .as_ref()
        .map(crate::backstop::prepare)
        .transpose()?;
    let plan = ChildPlan {
        path: path_c,
        argv: args,
        envp: env,
        filter: filter_program(config),
        filter_flags: libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        cwd: config
            .cwd
            .as_ref()
            .map(|c| cstring(c.as_os_str()))
            .transpose()?,
        landlock: backstop.as_ref().and_then(|b| b.child_args()),
        keep_fds: {
            let mut k = config.keep_fds.clone();
            k.sort_unstable();
            k.dedup();
            if let Some(bad) = k.iter().find(|f| **f < 0 || !sys::fd_is_open(**f)) {
                return Err(SpawnError::KeepFd(*bad));
            }
            k
        },
    };

    // Orphans of the workload must come back to us, not to init outside the tree.
    sys::set_child_subreaper().map_err(setup("PR_SET_CHILD_SUBREAPER"))?;
    let (sock_parent, sock_child) = sys::socketpair().map_err(setup("socketpair"))?;
    let (err_r, err_w) = sys::pipe().map_err(setup("pipe"))?;

    let pid = sys::fork_child(&plan, &sock_child, &err_w).map_err(setup("fork"))?;
    drop((sock_child, err_w));
    // The child holds its own copy of the ruleset descriptor until it restricts itself.
    let backstop = backstop.map(|b| b.report);

    // The child's `r`: it is dumpable (EOF: it failed, and said why on the error pipe).
    let ready = || {
        let mut r = [0u8; 1];
        matches!(sys::read(sock_parent.as_fd(), &mut r), Ok(1))
    };
    let failed = |what: &'static str, source: std::io::Error| {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid);
        child_error(&err_r).unwrap_or(SpawnError::Setup { what, source })
    };
    // Seized at once when the child inherited a dumpable state; else after it made itself
    // dumpable (see `sys::fork_child`). Either way before it can exec.
    let mut ready_read = false;
    if let Err(e) = sys::ptrace_seize(pid, SEIZE_OPTIONS) {
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(failed("PTRACE_SEIZE", e));
        }
        if !ready() {
            return Err(failed(
                "waiting for the child",
                std::io::Error::from_raw_os_error(libc::EPIPE),
            ));
        }
        ready_read = true;
        if let Err(e) = sys::ptrace_seize(pid, SEIZE_OPTIONS) {
            return Err(failed("PTRACE_SEIZE", e));
        }
    }
    // Out of the workload's reach from now on: same-uid processes without CAP_SYS_PTRACE can
    // no longer read or write our memory, take our descriptors (the listener) or trace us.
    // Only after the seize: the child, forked before, must stay dumpable until its execve.
    sys::set_undumpable().map_err(setup("PR_SET_DUMPABLE"))?;
    if !ready_read && !ready() {
        return Err(failed(
            "waiting for the child",
            std::io::Error::from_raw_os_error(libc::EPIPE),
        ));
    }

    let listener = match sys::fetch_listener(sock_parent.as_fd(), pid)
        .map_err(setup("receiving the listener"))?
    {
        Some(fd) => fd,
        None => {
            let _ = sys::waitpid(pid);
            return Err(child_error(&err_r).unwrap_or(SpawnError::Setup {
                what: "receiving the listener",
                source: std::io::Error::from_raw_os_error(libc::EPIPE),
            }));
        }
    };
    drop(sock_parent);

    let shared = new_shared(pid, config, handler, crate::view::View::host())?;
    take_sync_wakeup(listener.as_fd(), &shared.counters);
    let (notifiers, listener_error) = start_notifiers(listener, &shared)?;

    let exit = trace_loop(pid, &shared, config, None);
    let exit = exit.map_err(setup("waitpid"))?;
    join_notifiers(notifiers)?;
    let mut exec_error = None;
    if let Some(e) = child_error(&err_r) {
        match e {
            SpawnError::Child {
                stage: ChildStage::Exec,
                source,
            } => exec_error = source.raw_os_error(),
            other => return Err(other),
        }
    }
    finish(shared, &listener_error, config, exit, exec_error, backstop)
}

/// The seccomp program of a run with `config`.
pub(crate) fn filter_program(config: &SensorConfig) -> Vec<libc::sock_filter> {
    filter::build(
        &Sysno::ALL
            .iter()
            .copied()
            .filter(|s| config.observe.notifies(*s))
            .collect::<Vec<_>>(),
    )
}

/// `PTRACE_SEIZE` options of every supervised workload: follow exec, fork, vfork and clone,
/// and kill the tracees when the supervisor dies (fail closed).
pub(crate) const SEIZE_OPTIONS: u32 = (libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_EXITKILL) as u32;

/// The state the tracer and the notification threads share, for a workload whose first task is
/// `pid`, whose paths are named in `view`.
pub(crate) fn new_shared<H: EventHandler>(
    pid: i32,
    config: &SensorConfig,
    handler: H,
    view: crate::view::View,
) -> Result<Arc<Shared<H>>, SpawnError> {
    let meta = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| (m.dev(), m.ino()))
    };
    let own_root = meta("/proc/self/root").map_err(setup("stat /"))?;
    let own_netns = meta("/proc/self/ns/net").map_err(setup("stat netns"))?.1;
    let own_mntns = meta("/proc/self/ns/mnt").map_err(setup("stat mntns"))?.1;
    let own_userns = meta("/proc/self/ns/user").map_err(setup("stat userns"))?.1;

    Ok(Arc::new(Shared {
        tree: Mutex::new(Tree::new(pid, config.alg.size())),
        handler: Mutex::new(handler),
        counters: config.counters.clone().unwrap_or_default(),
        alg: config.alg,
        mapping: config.mapping,
        digests: config
            .digest_cache
            .as_ref()
            .map(crate::digest_cache::Store::cache)
            .unwrap_or_default(),
        protected: config
            .digest_cache
            .as_ref()
            .map(|s| s.protected.clone())
            .unwrap_or_default(),
        objects: Default::default(),
        status: Default::default(),
        capset_claims: Default::default(),
        names: Default::default(),
        injected: Default::default(),
        mechanism_only: config.mechanism_only,
        floor_emulates_opens: config.mechanism_only && config.mechanism_emulates_opens,
        observe: config.observe,
        hash_pseudo_exec: config.hash_pseudo_exec,
        recv_blocks: match config.wait {
            WaitMode::Auto => sys::recv_returns_on_hangup(),
            WaitMode::Epoll => false,
            WaitMode::Recv => true,
        },
        stop: sys::eventfd().map_err(setup("eventfd"))?,
        own_userns,
        own_root,
        own_netns,
        view,
        own_mntns,
        enforcing: config.enforcing,
        fs_varies: Default::default(),
        ending: Default::default(),
    }))
}

/// Notification threads answering `listener`, and where the first of them to fail says why.
pub(crate) type Notifiers = (Vec<std::thread::JoinHandle<()>>, Arc<Mutex<Option<String>>>);

/// Ask for the same-CPU wake-up on `listener` and count it when the kernel grants it. Kernels
/// before 6.6 lack the flag: the sensor works without it, only slower, and the run's summary
/// says so (`sensor.sync_wakeup` 0).
pub(crate) fn take_sync_wakeup(listener: BorrowedFd<'_>, counters: &Counters) {
    if sys::notif_set_sync_wakeup(listener).is_ok() {
        Counters::bump(&counters.sync_wakeup);
    }
}

/// Start the notification threads on `listener`.
pub(crate) fn start_notifiers<H: EventHandler + 'static>(
    listener: std::os::fd::OwnedFd,
    shared: &Arc<Shared<H>>,
) -> Result<Notifiers, SpawnError> {
    let listener_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    // One notification thread per CPU (at most four): with SYNC_WAKE_UP a notification is
    // answered on the CPU of the task that raised it, so tasks on different CPUs are not
    // serialized behind one supervisor thread. A task has one syscall at a time, so two
    // threads never handle the same task at once.
    // The CPUs we may run on: `available_parallelism` also reads the cgroup's quota files,
    // about 0.1 ms of every run's start, and a quota does not bound how many CPUs the
    // workload's tasks run on at once.
    let threads = sys::cpus_allowed().clamp(1, 4);
    let mut fds = Vec::with_capacity(threads);
    for _ in 1..threads {
        fds.push(
            listener
                .try_clone()
                .map_err(setup("duplicating the listener"))?,
        );
    }
    fds.push(listener);
    let notifiers = fds
        .into_iter()
        .map(|fd| spawn_notifier(fd, shared, &listener_error))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((notifiers, listener_error))
}

/// Wait for the notification threads (they end when every task using the filter is gone).
pub(crate) fn join_notifiers(
    notifiers: Vec<std::thread::JoinHandle<()>>,
) -> Result<(), SpawnError> {
    for n in notifiers {
        n.join().map_err(|_| SpawnError::NotifierPanic)?;
    }
    Ok(())
}

/// The report of a run whose tracer and notification threads are done: write the digest store
/// back and hand the handler over.
pub(crate) fn finish<H: EventHandler>(
    shared: Arc<Shared<H>>,
    listener_error: &Arc<Mutex<Option<String>>>,
    config: &SensorConfig,
    exit: Exit,
    exec_error: Option<i32>,
    backstop: Option<crate::backstop::BackstopReport>,
) -> Result<Report<H>, SpawnError> {
    let shared = Arc::try_unwrap(shared).map_err(|_| SpawnError::NotifierPanic)?;
    // A continued call the supervisor could not perform as the task (other credentials) was
    // re-read by the kernel, which the digest-store guard cannot see: keep only what this
    // run read at its start and hashed itself.
    let reread = !config.enforcing
        && shared
            .counters
            .unfaithful
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0;
    let digest_cache_error = config.digest_cache.as_ref().and_then(|store| {
        // Never persist a digest of an inode the workload could write (docs/sensor.md).
        let objects = lock(&shared.objects);
        let keep = |k: &crate::digest_cache::DigestKey| !objects.is_written((k.dev, k.ino));
        let saved = if reread {
            store.save_own(&keep)
        } else {
            store.save(&keep)
        };
        drop(objects);
        saved.err().map(|e| e.to_string())
    });
    let mut stats = shared.counters.snapshot();
    let tree = shared.tree.into_inner().unwrap_or_else(|e| e.into_inner());
    stats.tasks = tree.tasks_seen;
    stats.execs = tree.execs;
    stats.outlived = tree.outlived;
    let listener_error = lock(listener_error).take();
    Ok(Report {
        exit,
        exec_error,
        stats,
        listener_error,
        digest_cache_error,
        backstop,
        handler: shared
            .handler
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
    })
}

/// Start a thread answering notifications from `fd` until every task using the filter is gone.
fn spawn_notifier<H: EventHandler + 'static>(
    fd: std::os::fd::OwnedFd,
    shared: &Arc<Shared<H>>,
    listener_error: &Arc<Mutex<Option<String>>>,
) -> Result<std::thread::JoinHandle<()>, SpawnError> {
    let shared = Arc::clone(shared);
    let lerr = Arc::clone(listener_error);
    std::thread::Builder::new()
        .name("tsem-notify".into())
        .spawn(move || {
            if let Err(e) = Notifier::new(fd, Arc::clone(&shared)).run() {
                // Fail closed: nobody can answer the workload's monitored syscalls any more
                // (the listener is closed, so they fail with ENOSYS); end it.
                *lock(&lerr) = Some(e.to_string());
                for tid in lock(&shared.tree).tids() {
                    let _ = sys::kill(tid, libc::SIGKILL);
                }
            }
        })
        .map_err(setup("spawning the notification thread"))
}

fn child_error(err_r: &std::os::fd::OwnedFd) -> Option<SpawnError> {
    let mut b = [0u8; 8];
    match sys::read(err_r.as_fd(), &mut b) {
        Ok(8) => {
            let stage = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let errno = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]) as i32;
            Some(SpawnError::Child {
                stage: ChildStage::from_u32(stage).unwrap_or(ChildStage::Exec),
                source: std::io::Error::from_raw_os_error(errno),
            })
        }
        _ => None,
    }
}

fn is_group_stop_sig(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// Linux's `-ERESTARTSYS` and `-ERESTARTNOINTR` (include/linux/errno.h; not in the uapi).
const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;

/// Whether `nr` is a notified syscall that never returns `-ERESTARTSYS` on its own as the
/// sensor runs it (performed by the supervisor, or never blocking in the kernel), so an
/// `-ERESTARTSYS` can only come from the notification wait.
fn restart_transparently(nr: i64) -> bool {
    match Sysno::from_nr(nr) {
        // Calls that may block interruptibly in the kernel when continued: their EINTR is the
        // kernel's, and a restarted connect would fail with EALREADY instead.
        Some(
            Sysno::Accept
            | Sysno::Accept4
            | Sysno::Connect
            | Sysno::InitModule
            | Sysno::FinitModule
            // A receive the supervisor waits for answers -ERESTARTSYS itself when a handled
            // signal arrives (notify/net.rs): SA_RESTART then decides, as natively.
            | Sysno::Recvmsg
            | Sysno::Recvmmsg,
        ) => false,
        Some(_) => true,
        None => false,
    }
}

/// A signal that arrives before the supervisor has received a notification abandons it, and
/// the kernel returns `-ERESTARTSYS`: with a handler lacking `SA_RESTART` (dash's SIGCHLD
/// handler) the call would fail with EINTR, which `kill`, `chmod` or an `open` of a regular
/// file never do natively. `WAIT_KILLABLE_RECV` only covers signals after the receive. At the
/// signal-delivery stop, before the kernel decides, turn it into `-ERESTARTNOINTR`: the call
/// is restarted after the handler (and notified again), as if the signal had come first.
fn restart_abandoned_notification(tid: i32) {
    #[cfg(target_arch = "x86_64")]
    if let Ok((nr, ret)) = sys::ptrace_syscall_state(tid)
        && ret == ERESTARTSYS
        && restart_transparently(nr)
    {
        let _ = sys::ptrace_set_syscall_return(tid, ERESTARTNOINTR);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (tid, ERESTARTSYS, ERESTARTNOINTR, restart_transparently);
}

/// The tracer loop: runs until no traced task and no child is left. `held_exec`: an exec stop
/// (tid, former tid) the caller already waited for, described first and then resumed.
pub(crate) fn trace_loop<H: EventHandler>(
    root: i32,
    shared: &Shared<H>,
    config: &SensorConfig,
    held_exec: Option<HeldExec>,
) -> std::io::Result<Exit> {
    let mut exit = Exit::Code(0);
    let mut leader_gone = false;
    let mut pending = std::collections::HashSet::new();
    let (mut desc, mut mapper) = match held_exec {
        // Described already (`describe_held_exec`): the tracer goes on with the same
        // describer, its caches filled, and lets the task run.
        Some(held) => {
            let _ = sys::ptrace_cont(held.tid, 0);
            held.tools
        }
        None => tracer_tools(shared, config),
    };
    while let Some((tid, status)) = sys::wait_any()? {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            lock(&shared.tree).exit_counting_orphans(tid);
            // A task that reuses the id has its own serial; the entry is only memory now.
            lock(&shared.status).remove(&tid);
            lock(&shared.handler).on_exit(tid);
            if tid == root {
                exit = if libc::WIFEXITED(status) {
                    Exit::Code(libc::WEXITSTATUS(status))
                } else {
                    Exit::Signal(libc::WTERMSIG(status))
                };
                if config.end_with_leader {
                    leader_gone = true;
                    for t in lock(&shared.tree).tids() {
                        let _ = sys::kill(t, libc::SIGKILL);
                    }
                }
            }
            continue;
        }
        if leader_gone || shared.ending.load(std::sync::atomic::Ordering::SeqCst) {
            // Anything still stopping after the leader's end or a verdict that ended the
            // workload (a child forked meanwhile) goes.
            let _ = sys::kill(tid, libc::SIGKILL);
            let _ = sys::ptrace_cont(tid, 0);
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        match event {
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                if let Ok(new) = sys::ptrace_geteventmsg(tid) {
                    let new = new as i32;
                    let tgid = if event == libc::PTRACE_EVENT_CLONE {
                        procfs::read_status(new).map(|s| s.tgid).unwrap_or(new)
                    } else {
                        new
                    };
                    lock(&shared.tree).clone_task(tid, new, tgid);
                    // The child's own first stop may have come first; it waited for this.
                    if pending.remove(&new) {
                        let _ = sys::ptrace_cont(new, 0);
                    }
                }
                let _ = sys::ptrace_cont(tid, 0);
            }
            libc::PTRACE_EVENT_EXEC => {
                let former = sys::ptrace_geteventmsg(tid)
                    .map(|f| f as i32)
                    .unwrap_or(tid);
                if !shared.mechanism_only {
                    on_exec(tid, former, shared, &mut desc, &mut mapper);
                }
                let _ = sys::ptrace_cont(tid, 0);
            }
            libc::PTRACE_EVENT_STOP => {
                if is_group_stop_sig(sig) {
                    // Stay stopped like an untraced task would, but let SIGCONT through.
                    let _ = sys::ptrace_listen(tid);
                } else if lock(&shared.tree).get(tid).is_none() && tid != root {
                    // A new task's first stop before its creator's event: hold it until we
                    // know whose child it is, so its identity is right from its first syscall.
                    pending.insert(tid);
                } else {
                    let _ = sys::ptrace_cont(tid, 0);
                }
            }
            _ => {
                // Signal-delivery stop: deliver the signal unchanged.
                restart_abandoned_notification(tid);
                let _ = sys::ptrace_cont(tid, sig);
            }
        }
    }
    Ok(exit)
}

/// Hand an event synthesized by the tracer (at an exec stop) to the handler.
#[allow(clippy::too_many_arguments)]
fn deliver<H: EventHandler>(
    shared: &Shared<H>,
    tid: i32,
    status: &procfs::Status,
    ident: &crate::tree::Identity,
    untrusted: bool,
    ty: EventType,
    cell: Cell,
) -> crate::event::Verdict {
    let raw = RawEvent {
        seq: 0,
        tid,
        tgid: tid,
        syscall: Sysno::Execve,
        args: [0; 6],
        untrusted,
        emulated: false,
        event: Event {
            header: EventHeader {
                pid: Some(tid as u64),
                tnum: None,
                context: None,
                number: None,
                process: status.name.clone().into(),
                event_type: ty,
                ttd: ident.ttd,
                p_ttd: ident.p_ttd,
                task_id: ident.task_id,
                p_task_id: ident.p_task_id,
                ts: sys::boottime_ns(),
            },
            coe: status.coe,
            cell,
        },
    };
    crate::notify::submit(shared, &raw)
}

/// The file-backed mappings of a new image and the files behind them.
type ExecObjects = (
    Vec<tsem_core::event::FileDesc>,
    Vec<(tsem_core::event::FileDesc, u32)>,
);

/// The object mapped at `m` in task `pid`: the file its path names if that is still the mapped
/// inode, else the mapping's own file through `/proc/<pid>/map_files/` (which needs
/// `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN`). `None` when neither is possible.
fn mapped_object(pid: i32, m: &procfs::MapEntry) -> Option<(std::os::fd::OwnedFd, libc::stat)> {
    let dev = libc::makedev(m.major, m.minor);
    let names = |p: &str| {
        let f = sys::open(p, libc::O_PATH).ok()?;
        let st = sys::fstat(f.as_fd()).ok()?;
        (st.st_dev == dev && st.st_ino == m.ino).then_some((f, st))
    };
    names(&m.path).or_else(|| names(&format!("/proc/{pid}/map_files/{}", m.range)))
}

/// What the kernel opens and maps itself during an exec, read back at the exec stop from
/// `/proc/<pid>/maps` before the program's first instruction: the ELF interpreter (file_open)
/// and every segment of the executable and the interpreter (mmap_file). Every file-backed
/// mapping is verified against the mapped inode: `Err` when one cannot be (its path names
/// another file or none, "(deleted)", and `map_files` is out of reach), and the task must not
/// run.
fn exec_objects(
    desc: &mut Describer,
    pid: i32,
    exe: &libc::stat,
    exe_desc: &tsem_core::event::FileDesc,
) -> Result<ExecObjects, ()> {
    let mut interps = Vec::new();
    let mut maps = Vec::new();
    let text = procfs::read_proc_text(&format!("/proc/{pid}/maps")).map_err(|_| ())?;
    // The executable was described from /proc/<pid>/exe, the very file loaded.
    let mut files: Vec<(u64, u64, tsem_core::event::FileDesc)> =
        vec![(exe.st_dev, exe.st_ino, exe_desc.clone())];
    for m in procfs::parse_maps(&text) {
        let dev = libc::makedev(m.major, m.minor);
        let known = files
            .iter()
            .find(|(d, i, _)| *d == dev && *i == m.ino)
            .map(|f| f.2.clone());
        let file = match known {
            Some(f) => f,
            None => {
                let Some((p, st)) = mapped_object(pid, &m) else {
                    return Err(());
                };
                let reader = desc.reader_for(p.as_fd(), &st);
                let f = desc.file(
                    p.as_fd(),
                    reader.as_ref().map(|r| r.as_fd()),
                    &st,
                    notify::EXEC_FLAGS,
                );
                if (st.st_dev, st.st_ino) != (exe.st_dev, exe.st_ino) {
                    interps.push(f.clone());
                    // The interpreter's code may not be rewritten under the running task
                    // (notify/contents.rs); the kernel keeps writers off the executable itself
                    // only. The exec already happened, so nothing to refuse here.
                    let _ = desc.mark_exec_mapped(&st);
                }
                files.push((dev, m.ino, f.clone()));
                f
            }
        };
        maps.push((file, m.prot));
    }
    Ok((interps, maps))
}

/// An attached process's first exec, held at its stop and described (`describe_held_exec`):
/// [`trace_loop`] resumes it and goes on with the describer and mapper that described it.
pub(crate) struct HeldExec {
    /// The task held.
    pub tid: i32,
    /// The tracer's describer and mapper.
    pub tools: (Describer, Mapper),
}

/// The describer and mapper of the tracer thread.
pub(crate) fn tracer_tools<H: EventHandler>(
    shared: &Shared<H>,
    config: &SensorConfig,
) -> (Describer, Mapper) {
    let mut desc = Describer::sharing(
        config.alg,
        Arc::clone(&shared.digests),
        Arc::clone(&shared.objects),
    );
    desc.set_measure_exec(config.hash_pseudo_exec);
    desc.set_view(shared.view.clone());
    // Kept descriptors open for writing: the workload may change those files unseen.
    for fd in &config.keep_fds {
        if let Some(st) = sys::writable_file(*fd) {
            desc.mark_written(&st);
        }
    }
    (desc, Mapper::new(config.alg, config.mapping))
}

/// Describe the exec `tid` is held at (its former tid `former`) and decide on it, as the tracer
/// does at every exec stop: no ptrace request and no wait, so another thread than the tracer
/// may do it while the tracer works on the held task. A refused exec kills the task.
pub(crate) fn describe_held_exec<H: EventHandler>(
    tid: i32,
    former: i32,
    shared: &Shared<H>,
    tools: &mut (Describer, Mapper),
) {
    if !shared.mechanism_only {
        on_exec(tid, former, shared, &mut tools.0, &mut tools.1);
    }
}

fn on_exec<H: EventHandler>(
    tid: i32,
    former: i32,
    shared: &Shared<H>,
    desc: &mut Describer,
    mapper: &mut Mapper,
) {
    let status = procfs::read_status(tid).ok();
    let exe = Notifier::<H>::describe_exe(desc, tid).ok();
    let (Some(status), Some((exe, st))) = (status, exe) else {
        // The task vanished during the stop, or the program it loaded cannot be read back (a
        // non-dumpable image, e.g. an unreadable binary, hides /proc/<pid>/exe from an
        // unprivileged supervisor): nothing may run without an identity.
        if sys::kill(tid, libc::SIGKILL).is_ok() {
            Counters::bump(&shared.counters.exec_mismatch);
        }
        lock(&shared.tree).exit(former);
        return;
    };
    let (old, approved, ident, serial) = {
        let mut tree = lock(&shared.tree);
        let old = tree.get(former).or_else(|| tree.get(tid)).cloned();
        let approved = tree
            .take_approved(former)
            .or_else(|| tree.take_approved(tid));
        let Some(task) = tree.exec(tid, former) else {
            return;
        };
        let task_id = Notifier::<H>::task_id(mapper, &task.ident.p_task_id, &status.coe, &exe);
        task.ident.task_id = task_id;
        (old, approved, task.ident, task.serial)
    };
    // The status was read at the stop, after the exec committed its credentials and name, and
    // the task makes no call before it is resumed: it is the one its next calls would read, so
    // the notification threads start from it (keyed by the serial the exec gave the task).
    if !shared.fs_varies.load(std::sync::atomic::Ordering::Relaxed) {
        lock(&shared.status).insert(tid, (serial, status.clone(), None, None));
    }
    let untrusted = old.as_ref().is_some_and(|o| o.untrusted);
    let old_ident = old.map(|o| o.ident).unwrap_or(crate::tree::Identity {
        task_id: ident.p_task_id,
        ..ident
    });
    let kill = || {
        Counters::bump(&shared.counters.exec_mismatch);
        let _ = sys::kill(tid, libc::SIGKILL);
    };
    let matches = approved
        .as_ref()
        .is_some_and(|a| a.dev == st.st_dev && a.ino == st.st_ino && a.digest == exe.digest);
    // Events before bprm_committed_creds carry the old identity and comm.
    let mut old_status = status.clone();
    if let Some(a) = &approved
        && a.comm.is_some()
    {
        old_status.name = a.comm.clone().unwrap_or_default();
    }
    let Ok((interps, maps)) = exec_objects(desc, tid, &st, &exe) else {
        // A mapping of the new image that cannot be tied to its file would run undescribed.
        kill();
        return;
    };
    // The kernel's own opens at exec: the program when it is not the file checked at execve (a
    // script's interpreter, or a swap in between), then the ELF interpreter.
    let unapproved = (!matches).then(|| exe.clone());
    for f in unapproved.into_iter().chain(interps) {
        let v = deliver(
            shared,
            tid,
            &old_status,
            &old_ident,
            untrusted,
            EventType::FileOpen,
            Cell::File(f),
        );
        if !v.allow {
            kill();
            return;
        }
    }
    let untrusted = lock(&shared.tree).get(tid).is_some_and(|t| t.untrusted);
    for (f, prot) in maps {
        let flags = notify::mmap_flags_field(shared.mapping, u64::from(prot), 0x802);
        let cell = Cell::MmapFile {
            file: Some(f),
            prot,
            flags,
        };
        let v = deliver(
            shared,
            tid,
            &status,
            &ident,
            untrusted,
            EventType::MmapFile,
            cell,
        );
        if !v.allow {
            kill();
            return;
        }
    }
    let ev = ExecEvent {
        tid,
        comm: status.name,
        coe: status.coe,
        exe,
        task_id: ident.task_id,
        p_task_id: ident.p_task_id,
        ttd: ident.ttd,
    };
    lock(&shared.handler).on_exec(&ev);
}
