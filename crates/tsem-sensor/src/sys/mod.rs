//! The syscall boundary: every `unsafe` block of the crate lives here, behind safe wrappers that
//! take and return owned descriptors and plain values. One module per concern; everything is
//! re-exported here, so callers name `sys::open`, `sys::notif_recv`...
//!
//! Each `unsafe` block carries a `// SAFETY:` comment (`clippy::undocumented_unsafe_blocks` is
//! denied), and the rest of the crate may not use `unsafe` at all (`#![deny(unsafe_code)]`).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub mod acts;
mod creds;
mod fs;
mod notif;
mod perform;
#[cfg(target_arch = "x86_64")]
pub mod regs;
mod sock;
mod spawn;
mod task;

pub use creds::*;
pub use fs::*;
pub use notif::*;
pub use perform::*;
pub use sock::*;
pub use spawn::*;
pub use task::*;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt(r)?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Set `FD_CLOEXEC` on `fd`.
pub fn set_cloexec(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: F_SETFD on a descriptor the caller holds; integer arguments.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take over descriptor `fd`, which this process inherited from its parent for this purpose
/// (the one number named on the command line, e.g. `tsem run --attach-fd N`).
///
/// # Warning
/// Call it once per inherited descriptor, before anything else in the process could have opened
/// or closed that number: the returned descriptor owns it and closes it when dropped. Numbers
/// 0-2 and descriptors that are not open are refused.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is open (checked above) and was inherited for this caller alone, which takes
    // it once (documented above), so nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { libc::gettid() }
}

/// Whether `fd` refers to a terminal.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: integer argument.
    unsafe { libc::isatty(fd) == 1 }
}

/// `CLOCK_BOOTTIME` in nanoseconds (TSEM's `ts`).
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is writable.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}
