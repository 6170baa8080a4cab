//! Sockets, pipes and descriptors passed between processes.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{cvt, cvt_fd, pidfd_getfd, pidfd_open};

/// `getsockopt(fd, SOL_SOCKET, opt)` for an int option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, opt: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes of the sizes given.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    } as libc::c_long)?;
    Ok(v)
}

/// `getsockname` into raw bytes.
pub fn getsockname(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` is writable for `len` bytes.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } as libc::c_long)?;
    // SAFETY: `ss` is plain bytes of the reported length (clamped to its size).
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&ss as *const libc::sockaddr_storage).cast::<u8>(),
            (len as usize).min(size_of::<libc::sockaddr_storage>()),
        )
    };
    Ok(bytes.to_vec())
}

/// `connect` or `bind` with a raw sockaddr; returns the errno on failure.
pub fn sock_addr_call(fd: BorrowedFd<'_>, addr: &[u8], bind: bool) -> Result<(), i32> {
    let p = addr.as_ptr().cast::<libc::sockaddr>();
    let l = addr.len() as libc::socklen_t;
    // SAFETY: `addr` is readable for `l` bytes; the kernel copies it in and validates it.
    let r = unsafe {
        if bind {
            libc::bind(fd.as_raw_fd(), p, l)
        } else {
            libc::connect(fd.as_raw_fd(), p, l)
        }
    };
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(())
    }
}

/// A connected `AF_UNIX` `SOCK_SEQPACKET` pair, close-on-exec.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } as libc::c_long)?;
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec pipe `(read, write)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `read` into `buf`, restarting on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for its length.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(r as usize);
    }
}

/// `write` all of `buf`.
pub fn write_all(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: `buf[off..]` is readable.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf[off..].as_ptr().cast(), buf.len() - off) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        off += r as usize;
    }
    Ok(())
}

/// Fetch the listener the child `pid` announced on `sock` (its descriptor number, 4 bytes) with
/// `pidfd_getfd`, then let the child go on; `Ok(None)` if the child ended first.
pub fn fetch_listener(sock: BorrowedFd<'_>, pid: i32) -> io::Result<Option<OwnedFd>> {
    let mut num = [0u8; 4];
    let n = read(sock, &mut num)?;
    if n != 4 {
        return Ok(None);
    }
    let pidfd = pidfd_open(pid, 0)?;
    let fd = pidfd_getfd(pidfd.as_fd(), i32::from_ne_bytes(num))?;
    // SAFETY: F_SETFD on a descriptor we own.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long)?;
    write_all(sock, b"k")?;
    Ok(Some(fd))
}

/// Receive one descriptor sent with `SCM_RIGHTS`; `Ok(None)` at EOF.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut data = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>();
    loop {
        // SAFETY: `msg` points to valid local buffers for the data and control parts.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(None);
        }
        break;
    }
    // SAFETY: the control buffer was filled by recvmsg and `msg` describes it.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Ok(None);
    }
    // SAFETY: `cmsg` points into `cbuf`, inside the length the kernel reported.
    unsafe {
        if (*cmsg).cmsg_level != libc::SOL_SOCKET || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// `kcmp(getpid(), pid, KCMP_FILE, ours, theirs)`: whether our descriptor `ours` and the task
/// `pid`'s descriptor `theirs` refer to the same open file description.
pub fn same_open_file(ours: BorrowedFd<'_>, pid: i32, theirs: i32) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: integer arguments only; the kernel compares two file pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::getpid(),
            pid,
            KCMP_FILE,
            ours.as_raw_fd(),
            theirs,
        )
    };
    r == 0
}

/// `socket(domain, type, protocol)`.
pub fn socket(domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, i32> {
    // SAFETY: plain integer arguments.
    cvt_fd(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) } as libc::c_long)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}
