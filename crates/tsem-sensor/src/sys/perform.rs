//! Calls the supervisor performs for a task on its own copy of the task's arguments, where the
//! kernel would otherwise read the task's memory again after the verdict: the xattr family on a
//! pinned object, resource limits, capability reads.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{OpResult, op};

/// `XATTR_SIZE_MAX`, `XATTR_LIST_MAX`: the kernel clamps buffers to it and refuses larger values.
pub const XATTR_MAX: usize = 65536;

/// The object an xattr call acts on: an open file (the task's own, duplicated), or an object
/// the supervisor pinned (any descriptor, `O_PATH` included), reached through its magic link
/// `/proc/self/fd/N`, which lands on the object itself (a symlink too) without walking a path.
#[derive(Clone, Copy)]
pub enum XattrOn<'a> {
    /// `f*xattr` on this descriptor (the kernel's `EBADF` for `O_PATH` files holds).
    File(BorrowedFd<'a>),
    /// The pinned object.
    Pinned(BorrowedFd<'a>),
}

fn proc_link(fd: BorrowedFd<'_>) -> std::ffi::CString {
    let s = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // A decimal number has no NUL.
    std::ffi::CString::new(s).unwrap_or_default()
}

/// `setxattr(on, name, value, flags)`.
pub fn set_xattr(on: XattrOn<'_>, name: &CStr, value: &[u8], flags: i32) -> OpResult {
    let ptr = value.as_ptr().cast::<libc::c_void>();
    let len = value.len();
    let r = match on {
        XattrOn::File(fd) => {
            // SAFETY: `name` is NUL-terminated, `value` is readable for `len` bytes; the
            // descriptor is borrowed for the call.
            unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, len, flags) }
        }
        XattrOn::Pinned(fd) => {
            let p = proc_link(fd);
            // SAFETY: as above; `p` is NUL-terminated.
            unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), ptr, len, flags) }
        }
    };
    op(r as libc::c_long)
}

/// `removexattr(on, name)`.
pub fn remove_xattr(on: XattrOn<'_>, name: &CStr) -> OpResult {
    match on {
        XattrOn::File(fd) => {
            // SAFETY: `name` is NUL-terminated; the descriptor is borrowed for the call.
            op(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) } as libc::c_long)
        }
        XattrOn::Pinned(fd) => {
            let p = proc_link(fd);
            // SAFETY: both strings are NUL-terminated.
            op(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) } as libc::c_long)
        }
    }
}

/// `getxattr(on, name, buf, size)` with a buffer of `size` bytes (at most [`XATTR_MAX`]; 0
/// asks for the value's size): the kernel's answer (a length) and the bytes read.
pub fn get_xattr(on: XattrOn<'_>, name: &CStr, size: usize) -> Result<(i64, Vec<u8>), i32> {
    let mut buf = vec![0u8; size.min(XATTR_MAX)];
    let ptr = if buf.is_empty() {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast::<libc::c_void>()
    };
    let len = buf.len();
    let r = match on {
        XattrOn::File(fd) => {
            // SAFETY: `buf` is writable for `len` bytes (or null with length 0, the size
            // query); `name` is NUL-terminated.
            unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, len) }
        }
        XattrOn::Pinned(fd) => {
            let p = proc_link(fd);
            // SAFETY: as above; `p` is NUL-terminated.
            unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), ptr, len) }
        }
    };
    let n = op(r as libc::c_long)?;
    sized(buf, n)
}

/// `listxattr(on, buf, size)`, as [`get_xattr`].
pub fn list_xattr(on: XattrOn<'_>, size: usize) -> Result<(i64, Vec<u8>), i32> {
    let mut buf = vec![0u8; size.min(XATTR_MAX)];
    let ptr = if buf.is_empty() {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast::<libc::c_char>()
    };
    let n = match on {
        XattrOn::File(fd) => {
            // SAFETY: `buf` is writable for its length, or null with length 0.
            op(unsafe { libc::flistxattr(fd.as_raw_fd(), ptr, buf.len()) } as libc::c_long)?
        }
        XattrOn::Pinned(fd) => {
            let p = proc_link(fd);
            // SAFETY: as above; `p` is NUL-terminated.
            op(unsafe { libc::listxattr(p.as_ptr(), ptr, buf.len()) } as libc::c_long)?
        }
    };
    sized(buf, n)
}

/// The kernel's answer and the bytes it wrote (none for a size query).
fn sized(mut buf: Vec<u8>, n: i64) -> Result<(i64, Vec<u8>), i32> {
    buf.truncate(n.max(0) as usize);
    Ok((n, buf))
}

/// `prlimit(pid, resource, new, old)` with the supervisor's copies: the old limits when asked.
pub fn prlimit(
    pid: i32,
    resource: u32,
    new: Option<[u64; 2]>,
    want_old: bool,
) -> Result<Option<[u64; 2]>, i32> {
    let new = new.map(|n| libc::rlimit64 {
        rlim_cur: n[0],
        rlim_max: n[1],
    });
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let newp = new
        .as_ref()
        .map_or(std::ptr::null(), |n| n as *const libc::rlimit64);
    let oldp = if want_old {
        &mut old as *mut libc::rlimit64
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: `newp` is null or a local rlimit64, `oldp` null or a writable local rlimit64.
    op(unsafe { libc::syscall(libc::SYS_prlimit64, pid, resource, newp, oldp) })?;
    Ok(want_old.then_some([old.rlim_cur, old.rlim_max]))
}

/// `capget` with the caller's header (version, pid) copied: the header as the kernel leaves it
/// (it writes its preferred version back on a version it does not know), and the records of
/// `pid`'s capabilities (all three words of both records; the caller copies what its version
/// holds), or the errno with the header.
pub fn capget_of(hdr: [u8; 8]) -> ([u8; 8], Result<[u8; 24], i32>) {
    let mut h = hdr;
    let mut d = [0u8; 24];
    // SAFETY: `h` is the 8-byte header, `d` room for two 12-byte records (version 2 and 3;
    // version 1 writes one).
    let r = op(unsafe {
        libc::syscall(
            libc::SYS_capget,
            h.as_mut_ptr().cast::<libc::c_void>(),
            d.as_mut_ptr().cast::<libc::c_void>(),
        )
    });
    (h, r.map(|_| d))
}

/// `finit_module(fd, params, flags)`.
pub fn finit_module(fd: BorrowedFd<'_>, params: &CStr, flags: u32) -> OpResult {
    // SAFETY: `params` is NUL-terminated; the descriptor is borrowed for the call.
    op(unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            fd.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    })
}

/// `listen(fd, backlog)` on a socket (the caller's, duplicated: the same socket).
pub fn listen(fd: BorrowedFd<'_>, backlog: u32) -> OpResult {
    // The kernel takes the backlog as an int and clamps it to somaxconn.
    let backlog = backlog as i32;
    // SAFETY: integer arguments; the descriptor is borrowed for the call.
    op(unsafe { libc::listen(fd.as_raw_fd(), backlog) } as libc::c_long)
}
