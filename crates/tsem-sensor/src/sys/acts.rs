//! Syscalls the supervisor performs for the workload on its copy of the arguments: messages
//! (`sendmsg`, `recvmsg` with descriptors), links read or followed, and the calling thread's
//! working directory. Part of the syscall boundary (`sys`).

use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// `sendmsg` of one buffer with a raw destination (`name`, may be empty) and raw control bytes
/// (may be empty); returns the bytes sent or the errno.
pub fn sendmsg(
    fd: BorrowedFd<'_>,
    name: &[u8],
    data: &[u8],
    control: &[u8],
    flags: i32,
) -> Result<usize, i32> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // The kernel wants the control buffer aligned like a cmsghdr.
    let mut ctl = vec![0u64; control.len().div_ceil(8)];
    // SAFETY: `ctl` has at least `control.len()` bytes; plain byte copy.
    unsafe {
        std::ptr::copy_nonoverlapping(control.as_ptr(), ctl.as_mut_ptr().cast(), control.len())
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    if !name.is_empty() {
        msg.msg_name = name.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = name.len() as u32;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
    }
    loop {
        // SAFETY: every pointer in `msg` refers to live local buffers of the lengths given.
        let r = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// What one `recvmsg` returned.
pub struct Received {
    /// The call's result (for `MSG_TRUNC`, the real length, which may exceed the buffer).
    pub len: usize,
    /// The source address as the kernel wrote it (truncated to the room given).
    pub name: Vec<u8>,
    /// The full length of the source address.
    pub namelen: usize,
    /// The control bytes, with each `SCM_RIGHTS` payload left as received (our numbers).
    pub control: Vec<u8>,
    /// The descriptors received, in order, owned by the supervisor.
    pub rights: Vec<OwnedFd>,
    /// `msg_flags`.
    pub flags: i32,
}

/// `recvmsg` into `data`, with room for `name_cap` address and `control_cap` control bytes.
/// Received descriptors are close-on-exec in the supervisor.
pub fn recvmsg(
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    name_cap: usize,
    control_cap: usize,
    flags: i32,
) -> Result<Received, i32> {
    let mut name = vec![0u8; name_cap];
    let mut ctl = vec![0u64; control_cap.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    if name_cap > 0 {
        msg.msg_name = name.as_mut_ptr().cast();
        msg.msg_namelen = name_cap as u32;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if control_cap > 0 {
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = control_cap;
    }
    let r = loop {
        // SAFETY: every pointer in `msg` refers to live local buffers of the lengths given.
        let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(e);
        }
    };
    let clen = msg.msg_controllen.min(control_cap);
    let mut control = vec![0u8; clen];
    // SAFETY: `ctl` holds at least `clen` bytes written by the kernel.
    unsafe { std::ptr::copy_nonoverlapping(ctl.as_ptr().cast::<u8>(), control.as_mut_ptr(), clen) };
    let mut rights = Vec::new();
    for c in cmsgs(&control) {
        if c.level == libc::SOL_SOCKET && c.kind == libc::SCM_RIGHTS {
            for ch in control[c.data.clone()].chunks_exact(size_of::<RawFd>()) {
                let raw = RawFd::from_ne_bytes([ch[0], ch[1], ch[2], ch[3]]);
                // SAFETY: the kernel just installed `raw` in our table for this message.
                rights.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    let namelen = msg.msg_namelen as usize;
    name.truncate(namelen.min(name_cap));
    Ok(Received {
        len: r,
        name,
        namelen,
        control,
        rights,
        flags: msg.msg_flags,
    })
}

/// One control message inside a control buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmsg {
    /// Where the header starts.
    pub start: usize,
    /// `cmsg_level`.
    pub level: i32,
    /// `cmsg_type`.
    pub kind: i32,
    /// The payload's byte range.
    pub data: std::ops::Range<usize>,
}

/// The control messages of `buf` (x86_64 layout: `size_t len, int level, int type`, payloads
/// aligned to 8). A malformed tail ends the list.
pub fn cmsgs(buf: &[u8]) -> Vec<Cmsg> {
    const HDR: usize = 16;
    let mut out = Vec::new();
    let mut off = 0;
    while off + HDR <= buf.len() {
        let word = |o: usize, n: usize| {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&buf[o..o + n]);
            u64::from_le_bytes(b)
        };
        let len = word(off, 8) as usize;
        if len < HDR || off + len > buf.len() {
            break;
        }
        out.push(Cmsg {
            start: off,
            level: word(off + 8, 4) as i32,
            kind: word(off + 12, 4) as i32,
            data: off + HDR..off + len,
        });
        off += len.div_ceil(8) * 8;
    }
    out
}

/// `readlinkat(dir, name)`.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for its length; `name` is NUL-terminated.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = cvt(n as libc::c_long)? as usize;
    buf.truncate(n);
    Ok(buf)
}

/// What [`wait_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The socket has data (or an error, or its peer is gone): a receive will not block.
    Readable,
    /// The process behind the pidfd ended.
    Exited,
    /// Neither, within the time given.
    Timeout,
}

/// Wait until `sock` is readable or the process of `pidfd` exits, at most `ms` milliseconds.
pub fn wait_readable(sock: BorrowedFd<'_>, pidfd: BorrowedFd<'_>, ms: i32) -> io::Result<Ready> {
    let mut p = [
        libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `p` is a valid array of two pollfd structures.
    let r = unsafe { libc::poll(p.as_mut_ptr(), 2, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(Ready::Timeout);
        }
        return Err(e);
    }
    Ok(if p[1].revents != 0 {
        Ready::Exited
    } else if p[0].revents != 0 {
        Ready::Readable
    } else {
        Ready::Timeout
    })
}

/// The socket's `SO_RCVTIMEO`, if set.
pub fn recv_timeout(fd: BorrowedFd<'_>) -> Option<std::time::Duration> {
    // SAFETY: all-zero is a valid timeval.
    let mut tv: libc::timeval = unsafe { zeroed() };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` is writable for `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(std::time::Duration::new(
        tv.tv_sec.max(0) as u64,
        (tv.tv_usec.max(0) as u32) * 1000,
    ))
}

/// The seals of a memfd (`F_GET_SEALS`), `None` if it has none to tell.
pub fn seals(fd: BorrowedFd<'_>) -> Option<i32> {
    // SAFETY: F_GET_SEALS only reads the file's seals.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    (r >= 0).then_some(r)
}

/// Give the calling thread its own copy of the process's cwd and root (`unshare(CLONE_FS)`),
/// then make `dir` its working directory. For helper threads that act relative to a target's
/// working directory.
pub fn private_cwd(dir: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain integer argument; affects only the calling thread's fs_struct.
    cvt(unsafe { libc::unshare(libc::CLONE_FS) } as libc::c_long)?;
    // SAFETY: `dir` is an open descriptor.
    cvt(unsafe { libc::fchdir(dir.as_raw_fd()) } as libc::c_long)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn control_messages_are_split_at_their_aligned_lengths() {
        let mut b = Vec::new();
        // SCM_RIGHTS with two descriptors: len 24.
        b.extend_from_slice(&24u64.to_le_bytes());
        b.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
        b.extend_from_slice(&libc::SCM_RIGHTS.to_le_bytes());
        b.extend_from_slice(&[3, 0, 0, 0, 4, 0, 0, 0]);
        // One with a 4-byte payload: len 20, padded to 24.
        b.extend_from_slice(&20u64.to_le_bytes());
        b.extend_from_slice(&1i32.to_le_bytes());
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&[9, 9, 9, 9, 0, 0, 0, 0]);
        let c = cmsgs(&b);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].level, c[0].kind, c[0].data.clone()), (1, 1, 16..24));
        assert_eq!((c[1].start, c[1].data.clone()), (24, 40..44));
        // A length running past the buffer ends the list.
        b[24] = 200;
        assert_eq!(cmsgs(&b).len(), 1);
    }
}
