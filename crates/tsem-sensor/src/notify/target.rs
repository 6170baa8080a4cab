//! The seam between the notification handlers and the task whose call they answer.
//!
//! Everything a handler learns about the caller beyond the notification's registers comes
//! through [`TargetTask`]: its memory, its `/proc/<tid>` links (cwd, root, descriptors), its
//! credentials, its open files, and whether the notification is still pending. [`Live`] is the
//! kernel; the tests put a fake behind the seam (`notify/tests.rs`) to make the target die
//! mid-call, flip a buffer between two reads, or change credentials, without a kernel.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::procfs::{self, Status};
use crate::sys;

/// One of the task's `/proc/<tid>` magic links, standing for an object the task holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Its working directory.
    Cwd,
    /// Its root directory.
    Root,
    /// Its descriptor.
    Fd(i32),
}

/// A `/proc/<tid>` entry whose identity says whether the task shares it with the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ident {
    /// The root directory.
    Root,
    /// The mount namespace.
    MntNs,
    /// The network namespace.
    NetNs,
    /// The pid namespace.
    PidNs,
    /// The user namespace.
    UserNs,
}

/// What the supervisor may ask of the task it answers for. Every method may fail because the
/// task is gone; callers treat that as the end of the call, never as a reason to continue it.
pub(crate) trait TargetTask: Send {
    /// Read the task's memory at `addr` into `buf`, returning the bytes read (short at the first
    /// unmapped page). Readers of strings never cross a page boundary, so that an unmapped page
    /// after a string cannot fail the part before.
    fn read_mem(&self, tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Write `buf` into the task's memory at `addr`, returning the bytes written.
    fn write_mem(&self, tid: i32, addr: u64, buf: &[u8]) -> io::Result<usize>;
    /// The task's memory at the ranges `iov` (address, length), in order, into one buffer of
    /// at most `max` bytes; a short read (an unmapped range) is EFAULT.
    fn gather(&self, tid: i32, iov: &[(u64, usize)], max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for (addr, len) in iov {
            let take = (*len).min(max - out.len());
            if take == 0 {
                continue;
            }
            let start = out.len();
            out.resize(start + take, 0);
            if self.read_mem(tid, *addr, &mut out[start..])? != take {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
        }
        Ok(out)
    }
    /// `buf` written over the task's ranges `iov`, in order; a short write is EFAULT.
    fn scatter(&self, tid: i32, buf: &[u8], iov: &[(u64, usize)]) -> io::Result<()> {
        let mut off = 0;
        for (addr, len) in iov {
            if off >= buf.len() {
                break;
            }
            let take = (*len).min(buf.len() - off);
            if self.write_mem(tid, *addr, &buf[off..off + take])? != take {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            off += take;
        }
        Ok(())
    }
    /// The task's `/proc/<tid>/status`: name, tgid, umask, credentials.
    fn status(&self, tid: i32) -> io::Result<Status>;
    /// A path handle (`O_PATH`) on what the link names: directories for `Cwd` and `Root`.
    fn open_link(&self, tid: i32, link: Link) -> io::Result<OwnedFd>;
    /// The text of the link, as the task's root would print it.
    fn read_link(&self, tid: i32, link: Link) -> io::Result<Vec<u8>>;
    /// (dev, ino) of the entry, `None` when it cannot be read.
    fn identity(&self, tid: i32, what: Ident) -> Option<(u64, u64)>;
    /// A duplicate of the process's descriptor `fd` (`pidfd_getfd`).
    fn file(&self, tgid: i32, fd: i32) -> io::Result<OwnedFd>;
    /// A pidfd of the process, to wait for its end.
    fn pidfd(&self, tgid: i32) -> io::Result<OwnedFd>;
    /// Whether notification `id` on `listener` is still pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`):
    /// false once the task died or was interrupted, or its tid may name another task.
    fn id_valid(&self, listener: BorrowedFd<'_>, id: u64) -> bool;
}

/// The kernel: `process_vm_readv`/`writev`, procfs, `pidfd_getfd`, the listener's ioctl.
///
/// It keeps the pidfds of the last few processes it took a descriptor from: every `accept`,
/// `mmap` of a file and call on a descriptor needs one, and opening it anew was ~6 % of the
/// supervisor's time on a web server. A pidfd names a process, not a number: while that process
/// lives its tgid is its own, so the cached pidfd gives what a fresh `pidfd_open` would. Once it
/// has ended (a reused tgid, a leader gone), `pidfd_getfd` on it fails, and every failure on a
/// cached pidfd drops it and asks again with a fresh one, so a reused number never reaches the
/// ended process's answer.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// (tgid, pidfd), most recently used last; one notification thread owns it.
    pidfds: std::cell::RefCell<Vec<(i32, OwnedFd)>>,
}

/// Processes whose pidfds [`Live`] keeps: a build has a few compilers at a time, a server a few
/// workers.
const PIDFD_CACHE: usize = 16;

impl Live {
    /// `pidfd_getfd` through the cached pidfd of `tgid`, if there is one; `None` when there is
    /// none or it failed (then it is dropped).
    fn cached_file(&self, tgid: i32, fd: i32) -> Option<OwnedFd> {
        let mut c = self.pidfds.borrow_mut();
        let i = c.iter().position(|(t, _)| *t == tgid)?;
        let (t, pidfd) = c.remove(i);
        let f = sys::pidfd_getfd(pidfd.as_fd(), fd).ok()?;
        c.push((t, pidfd));
        Some(f)
    }

    fn remember(&self, tgid: i32, pidfd: OwnedFd) {
        let mut c = self.pidfds.borrow_mut();
        c.retain(|(t, _)| *t != tgid);
        if c.len() >= PIDFD_CACHE {
            c.remove(0);
        }
        c.push((tgid, pidfd));
    }
}

fn link_path(tid: i32, link: Link) -> String {
    match link {
        Link::Cwd => format!("/proc/{tid}/cwd"),
        Link::Root => format!("/proc/{tid}/root"),
        Link::Fd(fd) => format!("/proc/{tid}/fd/{fd}"),
    }
}

impl TargetTask for Live {
    // Looking into the task (ptrace access checks) is the supervisor's own business, also
    // while the thread wears the task's credentials: `sys::inspecting`.
    fn read_mem(&self, tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        sys::inspecting(|| sys::process_vm_read(tid, addr, buf))
    }

    fn write_mem(&self, tid: i32, addr: u64, buf: &[u8]) -> io::Result<usize> {
        sys::inspecting(|| sys::process_vm_write(tid, addr, buf))
    }

    fn status(&self, tid: i32) -> io::Result<Status> {
        procfs::read_status(tid).map_err(|e| match e {
            procfs::ProcError::Read { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        })
    }

    fn open_link(&self, tid: i32, link: Link) -> io::Result<OwnedFd> {
        let dir = match link {
            Link::Cwd | Link::Root => libc::O_DIRECTORY,
            Link::Fd(_) => 0,
        };
        sys::inspecting(|| sys::open(&link_path(tid, link), libc::O_PATH | dir))
    }

    fn read_link(&self, tid: i32, link: Link) -> io::Result<Vec<u8>> {
        sys::inspecting(|| sys::readlink(&link_path(tid, link)))
    }

    fn identity(&self, tid: i32, what: Ident) -> Option<(u64, u64)> {
        let path = match what {
            Ident::Root => format!("/proc/{tid}/root"),
            Ident::MntNs => format!("/proc/{tid}/ns/mnt"),
            Ident::NetNs => format!("/proc/{tid}/ns/net"),
            Ident::PidNs => format!("/proc/{tid}/ns/pid"),
            Ident::UserNs => format!("/proc/{tid}/ns/user"),
        };
        sys::inspecting(|| super::stat_of(&path))
    }

    fn file(&self, tgid: i32, fd: i32) -> io::Result<OwnedFd> {
        sys::inspecting(|| {
            if let Some(f) = self.cached_file(tgid, fd) {
                return Ok(f);
            }
            let pidfd = sys::pidfd_open(tgid, 0)?;
            let f = sys::pidfd_getfd(pidfd.as_fd(), fd)?;
            self.remember(tgid, pidfd);
            Ok(f)
        })
    }

    fn pidfd(&self, tgid: i32) -> io::Result<OwnedFd> {
        sys::pidfd_open(tgid, 0)
    }

    fn id_valid(&self, listener: BorrowedFd<'_>, id: u64) -> bool {
        sys::notif_id_valid(listener, id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};

    fn ident(f: &OwnedFd) -> (u64, u64) {
        let st = sys::fstat(f.as_fd()).unwrap();
        (st.st_dev, st.st_ino)
    }

    /// A pidfd kept for a number that now names another process (pid reuse, forced here by
    /// filing an ended child's pidfd under a live child's pid) is never answered from: the
    /// descriptor comes from the live process, and the stale handle is dropped.
    #[test]
    fn a_cached_pidfd_of_an_ended_process_is_not_used_for_its_number() {
        let dir = std::env::temp_dir().join(format!("tsem-live-pidfd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let spawn = |p: &std::path::Path| {
            Command::new("sleep")
                .arg("30")
                .stdin(Stdio::from(std::fs::File::open(p).unwrap()))
                .spawn()
                .unwrap()
        };
        let mut ended = spawn(&a);
        let mut live_child = spawn(&b);
        let stale = sys::pidfd_open(ended.id() as i32, 0).unwrap();
        ended.kill().unwrap();
        ended.wait().unwrap();
        let live = Live::default();
        let pid = live_child.id() as i32;
        live.remember(pid, stale);
        let f = live.file(pid, 0).unwrap();
        let want = std::fs::metadata(&b).unwrap();
        assert_eq!(
            ident(&f),
            (want.dev(), want.ino()),
            "fd 0 of the live process"
        );
        // The stale handle was replaced by the live process's, which now answers.
        let again = live.file(pid, 0).unwrap();
        assert_eq!(ident(&again), (want.dev(), want.ino()));
        assert_eq!(live.pidfds.borrow().len(), 1);
        live_child.kill().unwrap();
        live_child.wait().unwrap();
        // Ended: the cached pidfd fails and a fresh one cannot be had either.
        assert!(live.file(pid, 0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
