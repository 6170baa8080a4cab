//! Other tasks: their memory (`process_vm_*`), pidfds, ptrace, signals, waiting.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{cvt, cvt_fd};

/// `process_vm_readv` of `buf.len()` bytes at `addr`, as one iovec (no partial transfer inside it).
pub fn process_vm_read(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own writable buffer; the remote range is only read by the
    // kernel, which validates it against the target's address space.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `process_vm_writev` of `buf` to `addr` in `pid`, as one iovec; returns the bytes written.
pub fn process_vm_write(pid: i32, addr: u64, buf: &[u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own buffer, only read; the kernel validates the remote range
    // against the target's address space.
    let r = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `pidfd_open(pid, flags)`.
pub fn pidfd_open(pid: i32, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    cvt_fd(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) })
}

/// `pidfd_getfd(pidfd, fd)`: a duplicate of the target's descriptor (same open file description).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    cvt_fd(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })
}

/// Restore `SIGPIPE`'s default action (the Rust runtime ignores it), so a command whose reader
/// went away (`tsem ... | head`) ends quietly like any Unix filter instead of failing on EPIPE.
/// Not for `tsem run`: the supervisor must outlive its own stdout.
pub fn default_sigpipe() {
    // SAFETY: installs SIG_DFL, no handler code; called before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphans of the workload are reparented to us.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

/// `prctl(PR_SET_DUMPABLE, 0)`: the supervisor's memory, descriptors and `/proc/<pid>`
/// entries are then out of reach of same-uid processes without `CAP_SYS_PTRACE`
/// (process_vm_*, pidfd_getfd, ptrace, `/proc/<pid>/mem` all check `ptrace_may_access`). The
/// supervisor still reaches its own `/proc/self` (same thread group).
pub fn set_undumpable() -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

/// How many CPUs this thread may run on (`sched_getaffinity`), at least 1.
pub fn cpus_allowed() -> usize {
    // SAFETY: an all-zero cpu_set_t is valid; the kernel writes at most its size.
    let n = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        libc::CPU_COUNT(&set)
    };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// `getpgid(pid)` (0: the caller's process group).
pub fn getpgid(pid: i32) -> io::Result<i32> {
    // SAFETY: plain integer argument.
    Ok(cvt(unsafe { libc::getpgid(pid) } as libc::c_long)? as i32)
}

/// `ptrace(PTRACE_SEIZE, pid, 0, options)`.
pub fn ptrace_seize(pid: i32, options: u32) -> io::Result<()> {
    // SAFETY: integer arguments; no memory is passed.
    cvt(unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, options as usize) })?;
    Ok(())
}

/// `ptrace(PTRACE_CONT, pid, 0, sig)`.
pub fn ptrace_cont(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0usize, sig as usize) })?;
    Ok(())
}

/// `ptrace(PTRACE_LISTEN, pid)`: leave a group-stopped tracee stopped but let it see SIGCONT.
pub fn ptrace_listen(pid: i32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::ptrace(libc::PTRACE_LISTEN, pid, 0usize, 0usize) })?;
    Ok(())
}

/// The syscall a tracee in a stop was in (`orig_rax`) and the value it is about to return
/// (`rax`), from `PTRACE_GETREGS` (x86_64).
#[cfg(target_arch = "x86_64")]
pub fn ptrace_syscall_state(pid: i32) -> io::Result<(i64, i64)> {
    // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one user_regs_struct into `regs`.
    cvt(unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid,
            0usize,
            &mut regs as *mut libc::user_regs_struct,
        )
    })?;
    Ok((regs.orig_rax as i64, regs.rax as i64))
}

/// Set the value a stopped tracee's interrupted syscall returns (`rax`, x86_64).
#[cfg(target_arch = "x86_64")]
pub fn ptrace_set_syscall_return(pid: i32, value: i64) -> io::Result<()> {
    // Offset of `rax` in struct user (user_regs_struct comes first).
    let off = std::mem::offset_of!(libc::user_regs_struct, rax);
    // SAFETY: PTRACE_POKEUSER writes one word of the tracee's saved registers; no memory of
    // ours is passed.
    cvt(unsafe { libc::ptrace(libc::PTRACE_POKEUSER, pid, off, value as usize) })?;
    Ok(())
}

/// `ptrace(PTRACE_GETEVENTMSG, pid)`.
pub fn ptrace_geteventmsg(pid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: the kernel writes one unsigned long into `msg`.
    cvt(unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid,
            0usize,
            &mut msg as *mut libc::c_ulong,
        )
    })?;
    Ok(msg as u64)
}

/// `waitpid(-1, &status, __WALL | __WNOTHREAD)`, restarting on EINTR. `Ok(None)` on ECHILD.
///
/// `__WNOTHREAD` keeps the wait to this thread's own children and tracees, so several
/// supervisors (or other threads' children) in one process do not steal each other's events.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is writable.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(e),
            }
        }
        return Ok(Some((r, status)));
    }
}

/// `kill(pid, sig)`; errors are reported, not fatal.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::kill(pid, sig) } as libc::c_long)?;
    Ok(())
}

/// `tgkill(tgid, tid, sig)`.
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) })?;
    Ok(())
}

/// `waitpid(pid, 0)` returning the raw status.
pub fn waitpid(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(status);
    }
}
