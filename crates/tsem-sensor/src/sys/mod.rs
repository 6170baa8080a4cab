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
mod map;
mod notif;
mod perform;
#[cfg(target_arch = "x86_64")]
pub mod regs;
mod sock;
mod spawn;
mod task;

pub use creds::*;
pub use fs::*;
pub use map::*;
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
/// (the one number named on the command line, e.g. `tsem run --attach-fd N`). Numbers 0-2,
/// descriptors that are not open, and descriptors with `FD_CLOEXEC` set (so not inherited
/// through exec: opened by this process, which opens everything close-on-exec) are refused.
/// The descriptor returned is close-on-exec.
///
/// # Safety
/// Nothing else in the process may own `fd`, now or later: call it once per inherited
/// descriptor, before anything else could have taken that number (the returned descriptor
/// closes it when dropped). [`take_attach_fd`] is the safe, single-use form.
pub unsafe fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd < 3 || fl < 0 || fl & libc::FD_CLOEXEC != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is open (checked above), and by the caller's contract nothing else in the
    // process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(std::os::fd::AsFd::as_fd(&owned))?;
    Ok(owned)
}

/// Set once the descriptor handed over for `--attach-fd` was taken.
static ATTACH_FD_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The descriptor handed over to `tsem run --attach-fd N` (the container's init socket), taken
/// at most once per process: a second call fails with `EBUSY`, so no two owners of the number
/// can be made through it. The number must have been inherited (see [`take_inherited_fd`]: it
/// is refused when close-on-exec, as every descriptor this process opens is).
pub fn take_attach_fd(fd: RawFd) -> io::Result<OwnedFd> {
    use std::sync::atomic::Ordering;
    if ATTACH_FD_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    // SAFETY: this is the only call that takes the attach descriptor (ATTACH_FD_TAKEN), its
    // number was inherited through exec (not close-on-exec, which take_inherited_fd checks;
    // everything this process opens is close-on-exec), so nothing else in the process owns it.
    unsafe { take_inherited_fd(fd) }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::fd::AsRawFd;

    /// A descriptor this process opened (close-on-exec) is never taken as the inherited one,
    /// and the attach descriptor is taken at most once whatever the outcome.
    #[test]
    fn the_attach_descriptor_is_taken_once_and_only_if_inherited() {
        let (r, _w) = std::io::pipe().unwrap();
        let e = super::take_attach_fd(r.as_raw_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        let e = super::take_attach_fd(r.as_raw_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
        // Still ours, still open.
        assert!(super::fd_is_open(r.as_raw_fd()));
    }
}
