//! The syscall boundary: every `unsafe` block of the crate lives here, behind safe wrappers that
//! take and return owned descriptors and plain values.
//!
//! Functions whose names start with `child_` run between `fork` and `execve` in a possibly
//! multithreaded parent's child, so they make raw syscalls only: no allocation, no locks.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub mod acts;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): wake the other side on the current CPU.
/// Not in every uapi header, so defined here.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `FS_IOC_GETFSUUID` = `_IOR(0x15, 0, struct fsuuid2)` (Linux 6.5), where `fsuuid2` is
/// `{ u8 len; u8 uuid[16]; }` (17 bytes).
const FS_IOC_GETFSUUID: libc::c_ulong = (2 << 30) | (17 << 16) | (0x15 << 8);

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

/// The sizes the running kernel uses for the notification structures.
#[derive(Debug, Clone, Copy)]
pub struct NotifSizes {
    /// `sizeof(struct seccomp_notif)`.
    pub notif: usize,
    /// `sizeof(struct seccomp_notif_resp)`.
    pub resp: usize,
}

/// `seccomp(SECCOMP_GET_NOTIF_SIZES)`.
pub fn notif_sizes() -> io::Result<NotifSizes> {
    let mut s = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: the kernel writes exactly one `seccomp_notif_sizes` into `s`.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut s as *mut libc::seccomp_notif_sizes,
        )
    })?;
    Ok(NotifSizes {
        notif: usize::from(s.seccomp_notif),
        resp: usize::from(s.seccomp_notif_resp),
    })
}

/// One received notification: the fields of `struct seccomp_notif` the supervisor uses.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    /// Cookie for ID_VALID, ADDFD and SEND.
    pub id: u64,
    /// Thread id of the caller in our pid namespace (0 if invisible).
    pub pid: u32,
    /// Syscall number.
    pub nr: i32,
    /// AUDIT_ARCH of the call.
    pub arch: u32,
    /// Raw syscall arguments.
    pub args: [u64; 6],
}

/// A receive buffer sized by [`notif_sizes`] (never smaller than our struct).
pub struct RecvBuf {
    words: Vec<u64>,
}

impl RecvBuf {
    /// A buffer large enough for the kernel's `seccomp_notif`.
    pub fn new(sizes: NotifSizes) -> Self {
        let bytes = sizes.notif.max(size_of::<libc::seccomp_notif>());
        Self {
            words: vec![0; bytes.div_ceil(8)],
        }
    }
}

/// `SECCOMP_IOCTL_NOTIF_RECV` into a zeroed buffer (the kernel rejects a dirty one with EINVAL).
pub fn notif_recv(fd: BorrowedFd<'_>, buf: &mut RecvBuf) -> io::Result<Notif> {
    buf.words.fill(0);
    let p = buf.words.as_mut_ptr();
    // SAFETY: `p` points to a zeroed, 8-byte aligned buffer at least as large as the kernel's
    // `seccomp_notif` (sized from GET_NOTIF_SIZES), which the kernel fills.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, p) } as libc::c_long)?;
    // SAFETY: the buffer is at least `size_of::<seccomp_notif>()` bytes, suitably aligned, and
    // every bit pattern is a valid `seccomp_notif` (plain integers).
    let n: libc::seccomp_notif = unsafe { std::ptr::read(p as *const libc::seccomp_notif) };
    Ok(Notif {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// How to answer a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Let the kernel run the syscall (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
    /// Fail the syscall with this errno.
    Error(i32),
    /// Return this value as if the syscall had run.
    Value(i64),
}

/// `SECCOMP_IOCTL_NOTIF_SEND`.
pub fn notif_send(fd: BorrowedFd<'_>, id: u64, r: Response) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match r {
        Response::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Response::Error(e) => resp.error = -e.abs(),
        Response::Value(v) => resp.val = v,
    }
    // SAFETY: `resp` is a valid, initialised `seccomp_notif_resp` the kernel only reads.
    cvt(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) }
            as libc::c_long,
    )?;
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: is the target still blocked in notification `id`?
pub fn notif_id_valid(fd: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the kernel reads one u64.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SEND`: install `src` into the target
/// and answer the notification with the new descriptor number, atomically.
pub fn notif_addfd_send(
    fd: BorrowedFd<'_>,
    id: u64,
    src: BorrowedFd<'_>,
    cloexec: bool,
) -> io::Result<i32> {
    addfd(fd, id, src, cloexec, libc::SECCOMP_ADDFD_FLAG_SEND as u32)
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` without `SEND`: install `src` into the target and return its
/// number there; the notification is still to be answered.
pub fn notif_addfd(
    fd: BorrowedFd<'_>,
    id: u64,
    src: BorrowedFd<'_>,
    cloexec: bool,
) -> io::Result<i32> {
    addfd(fd, id, src, cloexec, 0)
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with the addfd `flags` given.
fn addfd(
    fd: BorrowedFd<'_>,
    id: u64,
    src: BorrowedFd<'_>,
    cloexec: bool,
    flags: u32,
) -> io::Result<i32> {
    let mut a = libc::seccomp_notif_addfd {
        id,
        flags,
        srcfd: src.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: `a` is a valid `seccomp_notif_addfd` the kernel only reads.
    let r = cvt(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut a) }
            as libc::c_long,
    )?;
    Ok(r as i32)
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)`.
pub fn notif_set_sync_wakeup(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    // SAFETY: the kernel reads one u64 flag word.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            &mut flags,
        )
    } as libc::c_long)?;
    Ok(())
}

/// An epoll set for one notification thread: the listener, registered `EPOLLEXCLUSIVE` so a
/// notification wakes one thread rather than all of them, and a stop eventfd shared by all
/// threads, registered normally so one write wakes every thread.
pub struct NotifyWait {
    ep: OwnedFd,
}

/// What [`NotifyWait::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// A notification may be waiting.
    Readable,
    /// Every task using the filter is gone.
    HungUp,
    /// Another thread asked everyone to stop.
    Stop,
}

const TOKEN_LISTENER: u64 = 1;
const TOKEN_STOP: u64 = 2;

impl NotifyWait {
    /// Watch `listener` and `stop` (an eventfd).
    pub fn new(listener: BorrowedFd<'_>, stop: BorrowedFd<'_>) -> io::Result<Self> {
        // SAFETY: plain flag argument; the result is checked.
        let ep = cvt_fd(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) } as libc::c_long)?;
        let add = |fd: BorrowedFd<'_>, events: u32, token: u64| -> io::Result<()> {
            let mut ev = libc::epoll_event { events, u64: token };
            // SAFETY: `ev` is a valid epoll_event the kernel only reads.
            cvt(unsafe {
                libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev)
            } as libc::c_long)?;
            Ok(())
        };
        add(
            listener,
            (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
            TOKEN_LISTENER,
        )?;
        add(stop, libc::EPOLLIN as u32, TOKEN_STOP)?;
        Ok(Self { ep })
    }

    /// Block until something happens.
    pub fn wait(&self) -> io::Result<Woken> {
        loop {
            let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 2];
            // SAFETY: `evs` has room for the 2 events asked for.
            let r = unsafe { libc::epoll_wait(self.ep.as_raw_fd(), evs.as_mut_ptr(), 2, -1) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            let evs = &evs[..r as usize];
            if evs.iter().any(|e| e.u64 == TOKEN_STOP) {
                return Ok(Woken::Stop);
            }
            let hup = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
            if let Some(e) = evs.iter().find(|e| e.u64 == TOKEN_LISTENER) {
                let ev = e.events;
                if ev & libc::EPOLLIN as u32 == 0 && ev & hup != 0 {
                    return Ok(Woken::HungUp);
                }
                return Ok(Woken::Readable);
            }
        }
    }
}

/// Whether `fd` reports a hang-up right now (non-blocking `poll`).
pub fn hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// The running kernel's (major, minor) version, from `uname`.
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let rel: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let rel = String::from_utf8_lossy(&rel);
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Whether `SECCOMP_IOCTL_NOTIF_RECV` returns once every task using the filter has exited
/// ("seccomp: interrupt SECCOMP_IOCTL_NOTIF_RECV when all users have exited", Linux 6.11; 6.12
/// is asked for to stay clear of the merge window). Only then may a thread block in RECV
/// itself, where `SYNC_WAKE_UP` wakes it on the notifying task's CPU; epoll would lose that.
pub fn recv_returns_on_hangup() -> bool {
    kernel_version().is_some_and(|v| v >= (6, 12))
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain arguments; the result is checked.
    cvt_fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) } as libc::c_long)
}

/// Make an eventfd readable for every waiter.
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

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

/// The bytes of a `struct stat`, as `stat(2)` writes them.
pub fn stat_bytes(st: &libc::stat) -> Vec<u8> {
    let n = std::mem::size_of::<libc::stat>();
    // SAFETY: `libc::stat` is plain old data of `n` bytes; the slice lives as long as `st`.
    unsafe { std::slice::from_raw_parts((st as *const libc::stat).cast::<u8>(), n) }.to_vec()
}

/// `statx(fd, "", AT_EMPTY_PATH | flags, mask)`: the bytes of the `struct statx` filled in.
pub fn statx_bytes(fd: BorrowedFd<'_>, flags: i32, mask: u32) -> io::Result<Vec<u8>> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `sx` is writable and the path is a NUL-terminated empty string.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | flags,
            mask,
            &mut sx,
        )
    } as libc::c_long)?;
    let n = std::mem::size_of::<libc::statx>();
    // SAFETY: `sx` is plain old data of `n` bytes.
    Ok(unsafe { std::slice::from_raw_parts((&sx as *const libc::statx).cast::<u8>(), n) }.to_vec())
}

/// The mount id of the object behind `fd` (`statx` `STATX_MNT_ID`): tells two opens of one
/// inode through different mounts apart.
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `sx` is writable and the path is a NUL-terminated empty string.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut sx,
        )
    } as libc::c_long)?;
    if sx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(sx.stx_mnt_id)
}

/// `openat2(dirfd, path, how)` with `O_CLOEXEC` added.
pub fn openat2(
    dirfd: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: u64,
    mode: u64,
    resolve: u64,
) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: flags | libc::O_CLOEXEC as u64,
        mode,
        resolve,
    };
    let d = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is NUL-terminated, `how` is a valid `open_how` of the size passed.
    cvt_fd(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            d,
            path.as_ptr(),
            &how as *const OpenHow,
            size_of::<OpenHow>(),
        )
    })
}

/// `open(path, flags | O_CLOEXEC)`.
pub fn open(path: &str, flags: i32) -> io::Result<OwnedFd> {
    let p = cstr(path.as_bytes())?;
    // SAFETY: `p` is NUL-terminated.
    cvt_fd(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) } as libc::c_long)
}

/// `fstat`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the kernel fills the whole struct on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: initialised by the successful fstat.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(dirfd, path, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)`.
pub fn fstatat_nofollow(dirfd: BorrowedFd<'_>, path: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated; the kernel fills the struct on success.
    cvt(unsafe {
        libc::fstatat(
            dirfd.as_raw_fd(),
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH,
        )
    } as libc::c_long)?;
    // SAFETY: initialised by the successful fstatat.
    Ok(unsafe { st.assume_init() })
}

/// `fstatfs`.
pub fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    let mut st = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the kernel fills the whole struct on success.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: initialised by the successful fstatfs.
    Ok(unsafe { st.assume_init() })
}

/// `FS_IOC_GETFSUUID`: the filesystem UUID as the kernel's `s_uuid`, if the filesystem exports it.
pub fn fs_uuid(fd: BorrowedFd<'_>) -> Option<[u8; 16]> {
    let mut buf = [0u8; 17];
    // SAFETY: the ioctl writes at most `sizeof(struct fsuuid2)` = 17 bytes into `buf`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETFSUUID, buf.as_mut_ptr()) };
    if r != 0 || buf[0] as usize > 16 {
        return None;
    }
    let mut out = [0u8; 16];
    out[..buf[0] as usize].copy_from_slice(&buf[1..1 + buf[0] as usize]);
    Some(out)
}

/// `pread` at `off`.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    let r = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            off as libc::off_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `readlink` of a path (used on `/proc/self/fd/N` magic links).
pub fn readlink(path: &str) -> io::Result<Vec<u8>> {
    let p = cstr(path.as_bytes())?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for its length; readlink never NUL-terminates.
    let r = unsafe { libc::readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
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

/// `fcntl(F_GETFL)` / `fcntl(F_SETFL)`.
pub fn set_status_flags(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) } as libc::c_long)?;
    Ok(())
}

/// The result of a path operation performed on behalf of the target: `Err(errno)` on failure.
pub type OpResult = Result<i64, i32>;

fn op(r: libc::c_long) -> OpResult {
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

/// A path operation the supervisor performs for the target, relative to supervisor-side
/// descriptors standing for the target's directories.
// The fields mirror the arguments of the syscall each variant names.
#[derive(Debug)]
#[allow(missing_docs)]
pub enum PathOp<'a> {
    /// `mkdirat(dir, path, mode)`.
    Mkdir {
        dir: BorrowedFd<'a>,
        path: &'a CStr,
        mode: u32,
    },
    /// `unlinkat(dir, path, flags)`.
    Unlink {
        dir: BorrowedFd<'a>,
        path: &'a CStr,
        flags: i32,
    },
    /// `renameat2(olddir, old, newdir, new, flags)`.
    Rename {
        odir: BorrowedFd<'a>,
        old: &'a CStr,
        ndir: BorrowedFd<'a>,
        new: &'a CStr,
        flags: u32,
    },
    /// `linkat(olddir, old, newdir, new, flags)`.
    Link {
        odir: BorrowedFd<'a>,
        old: &'a CStr,
        ndir: BorrowedFd<'a>,
        new: &'a CStr,
        flags: i32,
    },
    /// `symlinkat(target, dir, path)`.
    Symlink {
        target: &'a CStr,
        dir: BorrowedFd<'a>,
        path: &'a CStr,
    },
    /// `mknodat(dir, path, mode, dev)`.
    Mknod {
        dir: BorrowedFd<'a>,
        path: &'a CStr,
        mode: u32,
        dev: u64,
    },
    /// `fchmodat2(dir, path, mode, flags)`.
    Chmod {
        dir: BorrowedFd<'a>,
        path: &'a CStr,
        mode: u32,
        flags: i32,
    },
    /// `fchownat(dir, path, uid, gid, flags)`.
    Chown {
        dir: BorrowedFd<'a>,
        path: &'a CStr,
        uid: u32,
        gid: u32,
        flags: i32,
    },
    /// `truncate` through an opened descriptor.
    Truncate { fd: BorrowedFd<'a>, len: i64 },
    /// `utimensat(dir, path, times, flags)`; `times` None means "now".
    Utimens {
        dir: BorrowedFd<'a>,
        path: Option<&'a CStr>,
        times: Option<[libc::timespec; 2]>,
        flags: i32,
    },
}

/// Perform `o` with the supervisor thread's credentials.
pub fn path_op(o: &PathOp<'_>) -> OpResult {
    // SAFETY (all arms): every pointer is a NUL-terminated CStr or a valid local array; the
    // descriptors are borrowed for the duration of the call.
    unsafe {
        match *o {
            PathOp::Mkdir { dir, path, mode } => {
                op(libc::mkdirat(dir.as_raw_fd(), path.as_ptr(), mode) as libc::c_long)
            }
            PathOp::Unlink { dir, path, flags } => {
                op(libc::unlinkat(dir.as_raw_fd(), path.as_ptr(), flags) as libc::c_long)
            }
            PathOp::Rename {
                odir,
                old,
                ndir,
                new,
                flags,
            } => op(libc::syscall(
                libc::SYS_renameat2,
                odir.as_raw_fd(),
                old.as_ptr(),
                ndir.as_raw_fd(),
                new.as_ptr(),
                flags,
            )),
            PathOp::Link {
                odir,
                old,
                ndir,
                new,
                flags,
            } => op(libc::linkat(
                odir.as_raw_fd(),
                old.as_ptr(),
                ndir.as_raw_fd(),
                new.as_ptr(),
                flags,
            ) as libc::c_long),
            PathOp::Symlink { target, dir, path } => op(libc::symlinkat(
                target.as_ptr(),
                dir.as_raw_fd(),
                path.as_ptr(),
            ) as libc::c_long),
            PathOp::Mknod {
                dir,
                path,
                mode,
                dev,
            } => op(
                libc::mknodat(dir.as_raw_fd(), path.as_ptr(), mode, dev as libc::dev_t)
                    as libc::c_long,
            ),
            PathOp::Chmod {
                dir,
                path,
                mode,
                flags,
            } => op(libc::syscall(
                libc::SYS_fchmodat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                mode,
                flags,
            )),
            PathOp::Chown {
                dir,
                path,
                uid,
                gid,
                flags,
            } => {
                op(libc::fchownat(dir.as_raw_fd(), path.as_ptr(), uid, gid, flags) as libc::c_long)
            }
            PathOp::Truncate { fd, len } => {
                op(libc::ftruncate(fd.as_raw_fd(), len) as libc::c_long)
            }
            PathOp::Utimens {
                dir,
                path,
                times,
                flags,
            } => {
                let tp = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
                let pp = path.map_or(std::ptr::null(), |p| p.as_ptr());
                op(libc::syscall(
                    libc::SYS_utimensat,
                    dir.as_raw_fd(),
                    pp,
                    tp,
                    flags,
                ))
            }
        }
    }
}

/// Give the calling thread its own `fs_struct` (cwd, root, umask) and set its umask to 0, so the
/// supervisor can apply each target's umask itself without affecting the rest of the process.
pub fn thread_private_fs_umask0() -> io::Result<()> {
    // SAFETY: plain integer argument; affects only the calling thread's fs_struct.
    cvt(unsafe { libc::unshare(libc::CLONE_FS) } as libc::c_long)?;
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    Ok(())
}

/// `umask(mask)` of the calling thread's fs_struct (private after [`thread_private_fs_umask0`]).
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) };
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

/// The `fstat` of `fd` when it is a regular file open for writing in this process.
pub fn writable_file(fd: RawFd) -> Option<libc::stat> {
    // SAFETY: F_GETFL only reads the descriptor's status flags.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 || fl & libc::O_ACCMODE == libc::O_RDONLY {
        return None;
    }
    // SAFETY: `fd` is open (F_GETFL succeeded) and stays open for the duration of this call.
    let st = fstat(unsafe { BorrowedFd::borrow_raw(fd) }).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st)
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
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

/// Everything the child needs between `fork` and `execve`, prepared before the fork so the child
/// allocates nothing.
pub struct ChildPlan {
    /// Absolute path of the program.
    pub path: CString,
    /// argv, NULL-terminated.
    pub argv: Vec<*const libc::c_char>,
    /// envp, NULL-terminated.
    pub envp: Vec<*const libc::c_char>,
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

/// Fork a child that waits for `go`, installs the filter, sends the listener over `sock` and
/// executes `plan`. Returns the child's pid in the parent.
///
/// The child dies with SIGKILL when the forking thread exits (`PR_SET_PDEATHSIG`).
pub fn fork_child(
    plan: &ChildPlan,
    go: &OwnedFd,
    sock: &OwnedFd,
    err: &OwnedFd,
) -> io::Result<i32> {
    let parent = std::process::id() as i32;
    let prog = libc::sock_fprog {
        len: plan.filter.len() as u16,
        filter: plan.filter.as_ptr() as *mut libc::sock_filter,
    };
    let (go, sock, err) = (go.as_raw_fd(), sock.as_raw_fd(), err.as_raw_fd());
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
    unsafe { child_main(plan, &prog, parent, go, sock, err) }
}

/// # Safety
/// Must only be called in a freshly forked child; never returns.
unsafe fn child_main(
    plan: &ChildPlan,
    prog: &libc::sock_fprog,
    parent: i32,
    go: RawFd,
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
        // A supervisor that already made itself non-dumpable (an earlier run in the same
        // process) passed that on to us; the seize needs us dumpable. The parent waits for
        // this byte before it seizes.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        let ready = [b'r'];
        if libc::write(sock, ready.as_ptr().cast(), 1) != 1 {
            fail(ChildStage::Orphaned);
        }
        // The parent seizes us with ptrace before it writes; EOF means it is gone.
        if !read_byte(go) {
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
        libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
        fail(ChildStage::Exec)
    }
}

/// Fork a plain child running `f` and `_exit` with its return value; used by tests that must
/// install filters in a throw-away process.
pub fn fork_fn(f: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: the child runs `f` and exits without returning into the caller's stack frames. It
    // may allocate, which is acceptable only when the caller is single-threaded or accepts the
    // usual fork caveats (test helpers).
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

/// `fcntl(F_GETFL)`.
pub fn status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    Ok(cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) } as libc::c_long)? as i32)
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

/// `fchmod`, `fchown` on a descriptor (the target's open file, duplicated).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> OpResult {
    // SAFETY: plain integer arguments.
    op(unsafe { libc::fchmod(fd.as_raw_fd(), mode) } as libc::c_long)
}

/// `fchown`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> OpResult {
    // SAFETY: plain integer arguments.
    op(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } as libc::c_long)
}
