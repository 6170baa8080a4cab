//! The seccomp user-notification listener: receive, answer, inject descriptors, wait.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{cvt, cvt_fd};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): wake the other side on the current CPU.
/// Not in every uapi header, so defined here.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

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
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    cvt(r as libc::c_long)?;
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

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)`: a notification wakes the
/// supervisor's thread, and its answer the task, on the waker's CPU. `EINVAL` before Linux 6.6.
///
/// The flags are the ioctl's argument itself, not a pointer to them, whatever `_IOW` in the
/// request's number suggests (`seccomp_notify_ioctl` passes `arg` straight to
/// `seccomp_notify_set_flags`). Until session 10 this passed a pointer, which the kernel refused
/// with `EINVAL`, unseen: every measurement before then ran without the same-CPU wake-up.
pub fn notif_set_sync_wakeup(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the request takes its flags by value and touches no memory of ours.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP as libc::c_ulong,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// On a kernel that has the flag (Linux 6.6), a listener takes `SYNC_WAKE_UP`. It failed
    /// with `EINVAL` for as long as the flags went by pointer, and nothing said so.
    #[test]
    fn a_listener_takes_the_same_cpu_wake_up() {
        if kernel_version().is_none_or(|v| v < (6, 6)) {
            eprintln!("skipped: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP needs Linux 6.6");
            return;
        }
        let allow = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: allow.as_ptr().cast_mut(),
        };
        // SAFETY: the child makes raw syscalls only (no allocation on the success path) and
        // leaves with _exit; its filter allows everything and dies with it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: as above; `prog` outlives the call.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(2);
                }
                let l = libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                    &prog,
                );
                if l < 0 {
                    libc::_exit(3);
                }
                let ok = notif_set_sync_wakeup(BorrowedFd::borrow_raw(l as i32)).is_ok();
                libc::_exit(if ok { 0 } else { 4 });
            }
        }
        let mut st = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert!(
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
            "the listener refused the flag (child status {st:#x}; 4: the ioctl failed)"
        );
    }
}
