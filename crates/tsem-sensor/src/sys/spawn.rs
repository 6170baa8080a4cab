//! Starting the workload: the fork, and the child that installs the filter and execs.
//!
//! Functions whose names start with `child_` run between `fork` and `execve` in a possibly
//! multithreaded parent's child, so they make raw syscalls only: no allocation, no locks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Everything the child needs between `fork` and `execve`, prepared before the fork so the child
/// allocates nothing.
pub struct ChildPlan {
    /// Absolute path of the program.
    pub path: CString,
    /// The arguments (the pointer array the child passes to `execve` is built from them before
    /// the fork, so the plan holds no raw pointer a caller could leave dangling).
    pub argv: Vec<CString>,
    /// The environment, `NAME=value`.
    pub envp: Vec<CString>,
    /// The seccomp program.
    pub filter: Vec<libc::sock_filter>,
    /// Filter flags (NEW_LISTENER | WAIT_KILLABLE_RECV).
    pub filter_flags: libc::c_ulong,
    /// Optional working directory.
    pub cwd: Option<CString>,
    /// The backstop: a Landlock ruleset descriptor and `landlock_restrict_self` flags, applied
    /// after `PR_SET_NO_NEW_PRIVS` and before the filter (see [`crate::backstop`]).
    pub landlock: Option<(RawFd, u32)>,
    /// Descriptors above 2 the workload inherits (sorted); every other one is closed at exec.
    pub keep_fds: Vec<RawFd>,
}

/// `CLOSE_RANGE_CLOEXEC`.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Why a child failed before `execve` (written as 8 bytes on the error pipe: stage, errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStage {
    /// The parent died before it released us.
    Orphaned = 1,
    /// `chdir` failed.
    Chdir = 2,
    /// `PR_SET_NO_NEW_PRIVS` failed.
    NoNewPrivs = 3,
    /// Installing the seccomp filter failed.
    Seccomp = 4,
    /// Sending the listener descriptor failed.
    SendFd = 5,
    /// `execve` failed.
    Exec = 6,
    /// `landlock_restrict_self` failed.
    Landlock = 7,
    /// Marking inherited descriptors close-on-exec failed.
    CloseFds = 8,
}

impl ChildStage {
    /// Decode the stage byte written by the child.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Orphaned,
            2 => Self::Chdir,
            3 => Self::NoNewPrivs,
            4 => Self::Seccomp,
            5 => Self::SendFd,
            6 => Self::Exec,
            7 => Self::Landlock,
            8 => Self::CloseFds,
            _ => return None,
        })
    }
}

/// Fork a child that makes itself dumpable and says so (`r` on `sock`), installs the filter,
/// sends the listener's number over `sock`, waits for the parent's word and executes `plan`.
/// Returns the child's pid in the parent, which seizes it before it takes the listener: right
/// away, or after the `r` when it could not (the child inherits a non-dumpable parent's state).
/// The child never waits to be seized: the listener's hand-over orders the seize before the
/// exec, and a wait would cost two wake-ups across CPUs per run.
///
/// The child dies with SIGKILL when the forking thread exits (`PR_SET_PDEATHSIG`).
pub fn fork_child(plan: &ChildPlan, sock: &OwnedFd, err: &OwnedFd) -> io::Result<i32> {
    let parent = std::process::id() as i32;
    let prog = libc::sock_fprog {
        len: plan.filter.len() as u16,
        filter: plan.filter.as_ptr() as *mut libc::sock_filter,
    };
    let (sock, err) = (sock.as_raw_fd(), err.as_raw_fd());
    // NULL-terminated arrays of pointers into `plan`'s strings, which outlive the fork.
    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let exec = Exec {
        path: &plan.path,
        argv: &argv,
        envp: &envp,
    };
    // SAFETY: fork is called with everything the child needs already allocated; the child runs
    // only raw async-signal-safe syscalls on that data and then execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // SAFETY: child side; see `child_main`.
    unsafe { child_main(plan, &exec, &prog, parent, sock, err) }
}

/// What `execve` gets: valid C strings, and NULL-terminated pointer arrays into them.
struct Exec<'a> {
    path: &'a CStr,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
}

/// # Safety
/// Must only be called in a freshly forked child; never returns.
unsafe fn child_main(
    plan: &ChildPlan,
    exec: &Exec<'_>,
    prog: &libc::sock_fprog,
    parent: i32,
    sock: RawFd,
    err: RawFd,
) -> ! {
    // SAFETY: raw syscalls on memory prepared before fork; see `fork_child`.
    unsafe {
        let fail = |stage: ChildStage| -> ! {
            let e = *libc::__errno_location();
            let msg = [stage as u32, e as u32];
            libc::write(err, msg.as_ptr().cast(), 8);
            libc::_exit(127)
        };
        // One byte from `fd`, read again after EINTR: false at EOF or on an error (errno kept
        // for `fail`).
        let read_byte = |fd: RawFd| -> bool {
            let mut b = 0u8;
            loop {
                let r = libc::read(fd, (&mut b as *mut u8).cast(), 1);
                if r == 1 {
                    return true;
                }
                if r < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                return false;
            }
        };
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            fail(ChildStage::Orphaned);
        }
        // A supervisor that already made itself non-dumpable (an earlier or a concurrent run
        // in the same process) passed that on to us; its seize needs us dumpable.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        let ready = [b'r'];
        if libc::write(sock, ready.as_ptr().cast(), 1) != 1 {
            fail(ChildStage::Orphaned);
        }
        if let Some(cwd) = &plan.cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            fail(ChildStage::Chdir);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(ChildStage::NoNewPrivs);
        }
        // Before the filter, so that this call is not notified; the ruleset was built and filled
        // before the fork, so this is one raw syscall.
        if let Some((fd, flags)) = plan.landlock {
            if libc::syscall(libc::SYS_landlock_restrict_self, fd, flags) != 0 {
                fail(ChildStage::Landlock);
            }
            libc::close(fd);
        }
        let lfd = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            plan.filter_flags,
            prog as *const _,
        );
        if lfd < 0 {
            fail(ChildStage::Seccomp);
        }
        // The filter notifies sendmsg (destinations and SCM_RIGHTS are events), so the listener
        // cannot be sent as a descriptor before the supervisor has it: the supervisor fetches
        // it with pidfd_getfd (it is our tracer) once it has read its number. write and read
        // stay in the kernel.
        let num = (lfd as i32).to_ne_bytes();
        if libc::write(sock, num.as_ptr().cast(), 4) != 4 {
            fail(ChildStage::SendFd);
        }
        if !read_byte(sock) {
            fail(ChildStage::SendFd);
        }
        // Descriptors above 2 are not the workload's to read (issue 9): mark them close-on-exec,
        // except the ones asked for. The error pipe stays usable until the exec succeeds.
        let mut lo: u32 = 3;
        for k in plan.keep_fds.iter() {
            let k = *k as u32;
            if k < lo {
                continue;
            }
            if k > lo && libc::syscall(libc::SYS_close_range, lo, k - 1, CLOSE_RANGE_CLOEXEC) != 0 {
                fail(ChildStage::CloseFds);
            }
            if libc::fcntl(k as RawFd, libc::F_SETFD, 0) != 0 {
                fail(ChildStage::CloseFds);
            }
            lo = k + 1;
        }
        if libc::syscall(libc::SYS_close_range, lo, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
            fail(ChildStage::CloseFds);
        }
        libc::close(lfd as RawFd);
        libc::close(sock);
        libc::execve(exec.path.as_ptr(), exec.argv.as_ptr(), exec.envp.as_ptr());
        fail(ChildStage::Exec)
    }
}

/// Fork a plain child running `f` and `_exit` with its return value; used by tests that must
/// install filters in a throw-away process.
///
/// # Safety
///
/// After `fork` only the calling thread exists in the child. If the process has other threads,
/// `f` must be async-signal-safe: it must not allocate, take a lock, or touch anything another
/// thread may have held at the fork (a lock held then is never released in the child). With a
/// single-threaded caller, `f` may do anything; the child never returns into the caller's
/// frames (`_exit` with `f`'s result).
pub unsafe fn fork_fn(f: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: the caller upholds the contract above; the child exits without returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = f();
        // SAFETY: terminate the child immediately.
        unsafe { libc::_exit(code) }
    }
    Ok(pid)
}

/// The kernel's Landlock ABI version (`LANDLOCK_CREATE_RULESET_VERSION`), 0 without Landlock.
pub fn landlock_abi() -> u32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a NULL attribute and size 0 only returns the
    // version; no memory is read or written.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    u32::try_from(v).unwrap_or(0)
}
