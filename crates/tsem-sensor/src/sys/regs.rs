//! Register-level ptrace, to make a stopped task run one system call of the supervisor's
//! choosing (x86_64): how `crate::attach` installs tsem's filter in a process it did not spawn.

use std::io;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The stopped task's registers.
pub fn get(pid: i32) -> io::Result<libc::user_regs_struct> {
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
    Ok(regs)
}

/// Set the stopped task's registers.
pub fn set(pid: i32, regs: &libc::user_regs_struct) -> io::Result<()> {
    // SAFETY: the kernel reads one user_regs_struct from `regs`.
    cvt(unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            pid,
            0usize,
            regs as *const libc::user_regs_struct,
        )
    })?;
    Ok(())
}

/// One word of the task's memory at `addr`.
pub fn peek(pid: i32, addr: u64) -> io::Result<u64> {
    // SAFETY: errno is ours to clear; PEEKTEXT returns the word (-1 is also a valid word).
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: PTRACE_PEEKTEXT reads the tracee's memory; no memory of ours is passed.
    let v = unsafe { libc::ptrace(libc::PTRACE_PEEKTEXT, pid, addr as usize, 0usize) };
    // SAFETY: reading errno.
    if v == -1 && unsafe { *libc::__errno_location() } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v as u64)
}

/// Write one word of the task's memory at `addr`.
pub fn poke(pid: i32, addr: u64, word: u64) -> io::Result<()> {
    // SAFETY: PTRACE_POKETEXT writes one word of the tracee's memory; none of ours.
    cvt(unsafe { libc::ptrace(libc::PTRACE_POKETEXT, pid, addr as usize, word as usize) })?;
    Ok(())
}

/// Resume the task until its next system-call stop.
pub fn syscall_resume(pid: i32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0usize, 0usize) })?;
    Ok(())
}

/// The next stop of `pid` (its raw wait status); an error if it ended.
pub fn wait_stop(pid: i32) -> io::Result<i32> {
    loop {
        let mut st = 0;
        // SAFETY: `st` is writable.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if libc::WIFSTOPPED(st) {
            return Ok(st);
        }
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
}

/// Make the stopped `pid` run the `syscall` instruction at `at.rip` with `nr` and `args`;
/// returns its `rax`. Signals that stop it first are added to `deferred`.
pub fn call<const N: usize>(
    pid: i32,
    at: &libc::user_regs_struct,
    deferred: &mut Vec<i32>,
    nr: libc::c_long,
    args: [u64; N],
) -> io::Result<u64> {
    let mut r = *at;
    r.rax = nr as u64;
    // No syscall to restart: the kernel must not rewind rip on our behalf.
    r.orig_rax = u64::MAX;
    let slots = [
        &mut r.rdi, &mut r.rsi, &mut r.rdx, &mut r.r10, &mut r.r8, &mut r.r9,
    ];
    for (slot, v) in slots.into_iter().zip(args) {
        *slot = v;
    }
    set(pid, &r)?;
    loop {
        // SAFETY: integer arguments.
        cvt(unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, pid, 0usize, 0usize) })?;
        let st = wait_stop(pid)?;
        if libc::WSTOPSIG(st) == libc::SIGTRAP && (st >> 16) == 0 {
            break;
        }
        // A signal stop before the instruction ran (signals pending since before the exec,
        // e.g. the runtime's Go preemption SIGURG): kept for later, and step again.
        if get(pid)?.rip != at.rip {
            return Err(io::Error::other(format!("unexpected stop {st:#x}")));
        }
        if (st >> 16) == 0 {
            deferred.push(libc::WSTOPSIG(st));
        }
    }
    let after = get(pid)?;
    if after.rip != at.rip + 2 {
        return Err(io::Error::other("the injected call did not run"));
    }
    Ok(after.rax)
}
