//! Supervising a process the sensor did not spawn: a container's init, created by an OCI
//! runtime (`runc create`) and blocked in the runtime's own code until `start`.
//!
//! The supervisor seizes that process with the options `tsem run` uses (`EXITKILL` included:
//! if the supervisor dies, the container dies), lets the runtime finish its set-up, and stops it
//! at the exec of the container's program, before the program's first instruction. There it
//! installs tsem's own seccomp program *in* the task, by making it call `prctl(NO_NEW_PRIVS)`
//! and `seccomp(SET_MODE_FILTER, NEW_LISTENER | WAIT_KILLABLE_RECV)` from the tracer
//! (registers and one `syscall` instruction written at the entry point, then restored), takes the
//! listener with `pidfd_getfd` and closes the task's copy. Nothing runs in the container before
//! the filter but the runtime's code, and nothing of tsem ever runs inside it (docs/containers.md
//! says why this route and not the OCI seccomp agent's `listenerPath`).
//!
//! From then on the run is `tsem run`'s: the same notification threads, tracer loop and
//! descriptions; only the first exec is described at its exec stop (it was not notified).
//!
//! The hand-over with the caller goes over a socket ([`attach`]): we write `v` when everything
//! that can be checked before the container exists was checked, read the init's pid (4 bytes,
//! native endian), seize it and write `r`. An EOF instead of the pid ends the run with
//! [`AttachError::Abandoned`]; a failed seize closes the socket without `r`.

mod backstop;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::event::EventHandler;
use crate::supervisor::{self, Exit, Report, SensorConfig, SpawnError};
use crate::sys;
use crate::view::View;

/// Errors of an attached run.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The caller closed the hand-over socket before sending a pid (the container was never
    /// created).
    #[error("the runtime gave no process to supervise")]
    Abandoned,
    /// The hand-over socket failed.
    #[error("hand-over with the runtime: {0}")]
    Handover(std::io::Error),
    /// `PTRACE_SEIZE` of the init failed.
    #[error("cannot trace process {pid}: {source}")]
    Seize {
        /// The init's pid.
        pid: i32,
        /// The error.
        source: std::io::Error,
    },
    /// Waiting for or controlling the traced process failed.
    #[error("{what}: {source}")]
    Trace {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The filter could not be installed in the container's program; it was killed.
    #[error("cannot install the filter in process {pid} (killed): {why}")]
    Inject {
        /// The init's pid.
        pid: i32,
        /// Why.
        why: String,
    },
    /// The shared sensor machinery.
    #[error(transparent)]
    Sensor(#[from] SpawnError),
}

fn trace(what: &'static str) -> impl FnOnce(std::io::Error) -> AttachError {
    move |source| AttachError::Trace { what, source }
}

/// Supervise the process whose pid arrives on `sock` (protocol in the module documentation),
/// deciding every event with `handler`, until it and every descendant are gone.
pub fn attach<H: EventHandler + 'static>(
    sock: OwnedFd,
    config: &SensorConfig,
    handler: H,
) -> Result<Report<H>, AttachError> {
    sys::write_all(sock.as_fd(), b"v").map_err(AttachError::Handover)?;
    let mut num = [0u8; 4];
    let n = read_full(sock.as_fd(), &mut num).map_err(AttachError::Handover)?;
    if n != 4 {
        return Err(AttachError::Abandoned);
    }
    let pid = i32::from_ne_bytes(num);
    if pid <= 0 {
        return Err(AttachError::Abandoned);
    }
    seize_all(pid).map_err(|source| AttachError::Seize { pid, source })?;
    // Out of the workload's reach from now on (as in `tsem run`).
    sys::set_undumpable().map_err(trace("PR_SET_DUMPABLE"))?;
    sys::write_all(sock.as_fd(), b"r").map_err(AttachError::Handover)?;
    drop(sock);

    let former = match wait_first_exec(pid)? {
        First::Exec(former) => former,
        // Ended (killed, or the runtime failed) before its program ran: nothing to model.
        First::Ended(exit) => {
            let shared = supervisor::new_shared(pid, config, handler, View::host())?;
            let none = std::sync::Arc::new(std::sync::Mutex::new(None));
            return Ok(supervisor::finish(shared, &none, config, exit, None, None)?);
        }
    };
    // The runtime has pivoted into the container's root: paths are named from there.
    let view = match View::container(pid) {
        Ok(v) => v,
        Err(e) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            return Err(AttachError::Inject {
                pid,
                why: format!("reading the container's root: {e}"),
            });
        }
    };
    let mut handler = handler;
    handler.on_view(&view);
    let shared = match supervisor::new_shared(pid, config, handler, view) {
        Ok(s) => s,
        Err(e) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            return Err(e.into());
        }
    };
    let filter = supervisor::filter_program(config);
    // The first exec's description and verdict (reading the program, its mappings, the
    // container's mount table: ~0.45 ms) need no ptrace request: made on a second thread while
    // this one, the tracer, installs the backstop and the filter in the held task (~0.6 ms,
    // mostly round trips to the task and the kernel's preparation of the filter). The task runs
    // its program only after both.
    let refused_before = exec_refusals(&shared);
    let describe = || {
        let mut tools = supervisor::tracer_tools(&shared, config);
        supervisor::describe_held_exec(pid, former, &shared, &mut tools);
        tools
    };
    let (described, installed) = std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("tsem-first-exec".into())
            .spawn_scoped(s, describe)
        {
            Ok(describing) => {
                let installed = install_filter(pid, &filter, config.backstop.as_ref());
                (describing.join(), installed)
            }
            // No second thread (a limit): one after the other, as the tracer alone.
            Err(_) => (
                Ok(describe()),
                install_filter(pid, &filter, config.backstop.as_ref()),
            ),
        }
    });
    let Ok(tools) = described else {
        let _ = sys::kill(pid, libc::SIGKILL);
        return Err(AttachError::Inject {
            pid,
            why: "describing the program failed".into(),
        });
    };
    let held = supervisor::HeldExec { tid: pid, tools };
    let (listener, backstop) = match installed {
        Ok(l) => l,
        // The exec was refused and the task killed meanwhile, which also ended the
        // installation: the run ends as any run whose first exec is refused (its report, the
        // refusal in the forensics), with no filter to listen to.
        Err(_) if exec_refusals(&shared) != refused_before => {
            let _ = sys::kill(pid, libc::SIGKILL);
            let exit = supervisor::trace_loop(pid, &shared, config, Some(held))
                .map_err(trace("waitpid"))?;
            let none = std::sync::Arc::new(std::sync::Mutex::new(None));
            return Ok(supervisor::finish(shared, &none, config, exit, None, None)?);
        }
        Err(why) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            return Err(AttachError::Inject { pid, why });
        }
    };
    supervisor::take_sync_wakeup(listener.as_fd(), &shared.counters);
    // The notification threads wear the container's credentials call by call (sys::wear).
    let (notifiers, listener_error) = supervisor::start_notifiers(listener, &shared)?;
    let exit =
        supervisor::trace_loop(pid, &shared, config, Some(held)).map_err(trace("waitpid"))?;
    supervisor::join_notifiers(notifiers)?;
    Ok(supervisor::finish(
        shared,
        &listener_error,
        config,
        exit,
        None,
        backstop,
    )?)
}

/// How many execs the sensor has refused (killed) so far.
fn exec_refusals<H: EventHandler>(shared: &crate::notify::Shared<H>) -> u64 {
    shared
        .counters
        .exec_mismatch
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// Seize every thread of `pid` (the runtime's init is a Go program: whichever thread executes
/// the container's program must be traced), also those started while we seize.
fn seize_all(pid: i32) -> std::io::Result<()> {
    let own = format!("TracerPid:\t{}", std::process::id());
    let mut seized = std::collections::HashSet::new();
    loop {
        let mut found = false;
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let Some(tid) = entry?
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<i32>().ok())
            else {
                continue;
            };
            if !seized.insert(tid) {
                continue;
            }
            found = true;
            if let Err(e) = sys::ptrace_seize(tid, supervisor::SEIZE_OPTIONS) {
                // A thread started by one already seized is traced by us already.
                let ours = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
                    .is_ok_and(|st| st.lines().any(|l| l == own));
                if !ours && (tid == pid || e.raw_os_error() != Some(libc::ESRCH)) {
                    return Err(e);
                }
            }
        }
        if !found {
            return Ok(());
        }
    }
}

/// How the wait for the container's program ended.
enum First {
    /// The init is held at the exec stop; the former tid of the exec'ing thread.
    Exec(i32),
    /// The init ended first.
    Ended(Exit),
}

fn read_full(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = sys::read(fd, &mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Let the runtime's code run until `pid` execs the container's program; the stop is held.
/// Threads the runtime starts meanwhile are traced too (they die at the exec).
fn wait_first_exec(pid: i32) -> Result<First, AttachError> {
    loop {
        let Some((tid, status)) = sys::wait_any().map_err(trace("waitpid"))? else {
            return Ok(First::Ended(Exit::Signal(libc::SIGKILL)));
        };
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if tid == pid {
                // The leader is also reported gone when another thread, not traced, executed a
                // program and took its pid: then that program runs, and must not.
                if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && !st
                        .lines()
                        .any(|l| l.starts_with("State:\tZ") || l.starts_with("State:\tX"))
                    && !st
                        .lines()
                        .any(|l| l == format!("TracerPid:\t{}", std::process::id()))
                {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    return Err(AttachError::Inject {
                        pid,
                        why: "a thread the supervisor did not trace executed the program".into(),
                    });
                }
                let exit = if libc::WIFEXITED(status) {
                    Exit::Code(libc::WEXITSTATUS(status))
                } else {
                    Exit::Signal(libc::WTERMSIG(status))
                };
                return Ok(First::Ended(exit));
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        match (status >> 16) & 0xff {
            libc::PTRACE_EVENT_EXEC => {
                let former = sys::ptrace_geteventmsg(tid).map_or(tid, |f| f as i32);
                if tid == pid {
                    return Ok(First::Exec(former));
                }
                // An exec in another thread group: the runtime forked, which its init does
                // not do. Nothing undescribed may run.
                let _ = sys::kill(tid, libc::SIGKILL);
                let _ = sys::kill(pid, libc::SIGKILL);
                return Err(AttachError::Inject {
                    pid,
                    why: format!("process {tid} executed a program before the container's"),
                });
            }
            libc::PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    let _ = sys::ptrace_listen(tid);
                } else {
                    let _ = sys::ptrace_cont(tid, 0);
                }
            }
            0 => {
                let _ = sys::ptrace_cont(tid, sig);
            }
            _ => {
                let _ = sys::ptrace_cont(tid, 0);
            }
        }
    }
}

/// The listener and the backstop's report (`None`: none was asked for) of [`install_filter`].
type Installed = (OwnedFd, Option<crate::backstop::BackstopReport>);

/// Install `filter` in the traced `pid`, held at the exec stop of its new program, and return
/// the listener; before it, when `backstop` is given, make the task restrict itself to that
/// Landlock access set ([`backstop`]). The task's registers, code and stack contents below its
/// stack pointer are as the kernel left them afterwards, except that it has `NO_NEW_PRIVS` (as
/// under `tsem run`) and its Landlock domain.
#[cfg(target_arch = "x86_64")]
fn install_filter(
    pid: i32,
    filter: &[libc::sock_filter],
    backstop: Option<&tsem_core::access::AccessSet>,
) -> Result<Installed, String> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    // Leave the execve: registers set at its exit stop are the ones user space resumes with.
    sys::regs::syscall_resume(pid).map_err(io("PTRACE_SYSCALL"))?;
    let st = sys::regs::wait_stop(pid).map_err(io("waiting for the exec's end"))?;
    if !libc::WIFSTOPPED(st) || libc::WSTOPSIG(st) != libc::SIGTRAP || (st >> 16) != 0 {
        return Err(format!("unexpected stop {st:#x} at the exec's end"));
    }
    let saved = sys::regs::get(pid).map_err(io("PTRACE_GETREGS"))?;
    if saved.orig_rax != libc::SYS_execve as u64 && saved.orig_rax != libc::SYS_execveat as u64 {
        return Err(format!("not at an exec's end (syscall {})", saved.orig_rax));
    }
    // 0x33: the 64-bit user code segment. A 32-bit program would be killed by the filter's
    // architecture check at its first call anyway.
    if saved.cs != 0x33 {
        return Err("not a 64-bit program".into());
    }
    // The program (a sock_fprog, then the instructions) goes below the stack pointer, in stack
    // memory the new program has not used yet (the kernel maps 128 KiB below it at exec).
    let code: Vec<u8> = filter
        .iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[0..2].copy_from_slice(&i.code.to_ne_bytes());
            b[2] = i.jt;
            b[3] = i.jf;
            b[4..8].copy_from_slice(&i.k.to_ne_bytes());
            b
        })
        .collect();
    let base = (saved.rsp - 16384 - code.len() as u64) & !15;
    let mut prog = Vec::with_capacity(16 + code.len());
    prog.extend_from_slice(&(filter.len() as u16).to_ne_bytes());
    prog.extend_from_slice(&[0u8; 6]);
    prog.extend_from_slice(&(base + 16).to_ne_bytes());
    prog.extend_from_slice(&code);
    let n = sys::process_vm_write(pid, base, &prog).map_err(io("writing the filter"))?;
    if n != prog.len() {
        return Err("short write of the filter".into());
    }
    let text = sys::regs::peek(pid, saved.rip).map_err(io("PTRACE_PEEKTEXT"))?;
    // `syscall` (0f 05) at the entry point, restored below whatever happens.
    sys::regs::poke(pid, saved.rip, (text & !0xffff) | 0x050f).map_err(io("PTRACE_POKETEXT"))?;
    let mut deferred = Vec::new();
    let mut result = (|| {
        let nnp = crate::procfs::read_proc_text(&format!("/proc/{pid}/status"))
            .map_err(io("reading the task's status"))?
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]);
        if !nnp {
            let r = sys::regs::call(
                pid,
                &saved,
                &mut deferred,
                libc::SYS_prctl,
                [libc::PR_SET_NO_NEW_PRIVS as u64, 1],
            )
            .map_err(io("prctl"))?;
            if r != 0 {
                return Err(format!("prctl(PR_SET_NO_NEW_PRIVS): errno {}", -(r as i64)));
            }
        }
        // The backstop before the filter, as in `tsem run`: its calls are not notified.
        let report = match backstop {
            Some(set) => Some(backstop::apply(
                pid,
                &saved,
                &mut deferred,
                (base - backstop::SCRATCH) & !15,
                set,
            )?),
            None => None,
        };
        let flags =
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        let r = sys::regs::call(
            pid,
            &saved,
            &mut deferred,
            libc::SYS_seccomp,
            [libc::SECCOMP_SET_MODE_FILTER as u64, flags, base],
        )
        .map_err(io("seccomp"))? as i64;
        if r < 0 {
            return Err(format!("seccomp(SET_MODE_FILTER): errno {}", -r));
        }
        let pidfd = sys::pidfd_open(pid, 0).map_err(io("pidfd_open"))?;
        let got = sys::pidfd_getfd(pidfd.as_fd(), r as i32).map_err(io("pidfd_getfd"));
        // The task's copy goes whatever happened (close is not notified).
        let c = sys::regs::call(pid, &saved, &mut deferred, libc::SYS_close, [r as u64])
            .map_err(io("close"))?;
        let listener = got?;
        if c != 0 {
            return Err(format!(
                "close of the task's listener: errno {}",
                -(c as i64)
            ));
        }
        sys::set_cloexec(listener.as_fd()).map_err(io("F_SETFD"))?;
        Ok((listener, report))
    })();
    sys::regs::poke(pid, saved.rip, text).map_err(io("restoring the entry point"))?;
    sys::regs::set(pid, &saved).map_err(io("restoring the registers"))?;
    // Pending again, delivered (through the tracer loop) once the program runs.
    for sig in deferred {
        if let Err(e) = sys::tgkill(pid, pid, sig) {
            result = Err(format!("re-sending signal {sig}: {e}"));
        }
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn install_filter(
    _pid: i32,
    _filter: &[libc::sock_filter],
    _backstop: Option<&tsem_core::access::AccessSet>,
) -> Result<Installed, String> {
    Err("attaching is implemented for x86_64 only".into())
}
