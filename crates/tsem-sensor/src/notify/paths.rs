//! Reaching into the target: its memory, its descriptors, and paths resolved as it would.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::decode::PathArg;
use super::target::Link;
use super::{Call, Fail, Notifier, Reply, Target, errno_of, mem_fail};
use crate::event::{Counters, EventHandler};
use crate::sys::{self, Response};

/// Rewrite paths that name "the calling process" so the supervisor resolves them for the target.
pub(super) fn rewrite_self(raw: &[u8], tgid: i32, tid: i32) -> Vec<u8> {
    // Every open passes here: most paths name neither, and need none of the six rules built.
    if !raw.starts_with(b"/proc/") && !raw.starts_with(b"/dev/") && raw != b"/proc/self" {
        return raw.to_vec();
    }
    let rules: [(&[u8], String); 6] = [
        (b"/proc/self/", format!("/proc/{tgid}/")),
        (b"/proc/thread-self/", format!("/proc/{tgid}/task/{tid}/")),
        (b"/dev/fd/", format!("/proc/{tgid}/fd/")),
        (b"/dev/stdin", format!("/proc/{tgid}/fd/0")),
        (b"/dev/stdout", format!("/proc/{tgid}/fd/1")),
        (b"/dev/stderr", format!("/proc/{tgid}/fd/2")),
    ];
    if raw == b"/proc/self" {
        return format!("/proc/{tgid}").into_bytes();
    }
    if raw == b"/proc/thread-self" {
        return format!("/proc/{tgid}/task/{tid}").into_bytes();
    }
    for (pre, to) in rules {
        let exact_dev = !pre.ends_with(b"/");
        if (exact_dev && raw == pre) || (!exact_dev && raw.starts_with(pre)) {
            let mut v = to.into_bytes();
            if !exact_dev {
                v.extend_from_slice(&raw[pre.len()..]);
            }
            return v;
        }
    }
    raw.to_vec()
}

/// Whether `path` names a process directory in procfs other than ours (magic links there are
/// the same object whoever follows them).
pub(super) fn names_other_proc(path: &[u8], self_pid: i32) -> bool {
    let Some(rest) = path.strip_prefix(b"/proc/") else {
        return false;
    };
    let end = rest.iter().position(|c| *c == b'/').unwrap_or(rest.len());
    let digits = &rest[..end];
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
            != Some(self_pid)
}

/// Split a path into (parent, base for the description, base for the operation). `None` when the
/// last component is `.` or `..` or the path is only slashes.
pub(super) fn split_parent(path: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let trimmed = &path[..end];
    let (parent, base) = match trimmed.iter().rposition(|c| *c == b'/') {
        Some(0) => (b"/".to_vec(), &trimmed[1..]),
        Some(i) => (trimmed[..i].to_vec(), &trimmed[i + 1..]),
        None => (b".".to_vec(), trimmed),
    };
    if base == b"." || base == b".." {
        return None;
    }
    let start = end - base.len();
    Some((parent, base.to_vec(), path[start..].to_vec()))
}

/// A path handle (`O_PATH`) on the directory `path` names from `dir` (None: absolute), walked
/// under the `openat2` restrictions `resolve`.
pub(super) fn open_dir(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    resolve: u64,
) -> io::Result<OwnedFd> {
    sys::openat2(
        dir,
        path,
        (libc::O_PATH | libc::O_DIRECTORY) as u64,
        0,
        resolve,
    )
}

pub(super) fn cstring(v: Vec<u8>) -> Result<CString, Fail> {
    CString::new(v).map_err(|_| Fail::Errno(libc::EINVAL))
}

/// `dir/base`, byte for byte.
pub(super) fn join(dir: &[u8], base: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + base.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(base);
    p
}

pub(super) fn is(st: &libc::stat, kind: u32) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

impl<H: EventHandler> Notifier<H> {
    pub(super) fn read_cstr(&self, tid: i32, addr: u64) -> Result<Vec<u8>, Fail> {
        if addr == 0 {
            return Err(Fail::Undecodable(libc::EFAULT));
        }
        let mut out = Vec::new();
        let mut a = addr;
        let max = libc::PATH_MAX as usize;
        while out.len() <= max {
            // One iovec per page: process_vm_readv never splits an iovec, so a string that ends
            // just before an unmapped page must not be read across it.
            let room = 4096 - (a % 4096) as usize;
            let mut chunk = vec![0u8; room];
            let n = self
                .task
                .read_mem(tid, a, &mut chunk)
                .map_err(|e| mem_fail(&e))?;
            if n == 0 {
                return Err(Fail::Undecodable(libc::EFAULT));
            }
            if let Some(z) = chunk[..n].iter().position(|b| *b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            a += n as u64;
        }
        Err(Fail::Undecodable(libc::ENAMETOOLONG))
    }

    pub(super) fn read_mem(&self, tid: i32, addr: u64, len: usize) -> Result<Vec<u8>, Fail> {
        let mut out = vec![0u8; len];
        let mut off = 0;
        while off < len {
            let a = addr + off as u64;
            let room = (4096 - (a % 4096) as usize).min(len - off);
            let n = self
                .task
                .read_mem(tid, a, &mut out[off..off + room])
                .map_err(|e| mem_fail(&e))?;
            if n == 0 {
                return Err(Fail::Undecodable(libc::EFAULT));
            }
            off += n;
        }
        Ok(out)
    }

    pub(super) fn resolve(&mut self, call: &Call, dirfd: i64, raw: &[u8]) -> Result<Target, Fail> {
        let tgid = call.status.tgid;
        let path = rewrite_self(raw, tgid, call.tid);
        let resolve = libc::RESOLVE_NO_MAGICLINKS;
        if !self.same_root(call.tid) {
            // Only a procfs at /proc in the task's root names the task as `self`: any other
            // /proc there (a directory in a chroot the workload made) is walked as the kernel
            // walks it, its symbolic links followed in the root. Following our /proc instead
            // would describe the task's own executable while the kernel executes what the fake
            // link names.
            if path == raw || (raw.starts_with(b"/proc/") && !self.root_has_procfs(call.tid)) {
                let walk = if path == raw || raw.starts_with(b"/dev/") {
                    path
                } else {
                    raw.to_vec()
                };
                return self.resolve_in_root(call, dirfd, walk, resolve);
            }
            // The task names itself (`/proc/self/exe`, `/dev/fd/3`...) in its own root, whose
            // /proc numbers tasks in its own pid namespace (a container's): its magic links are
            // its own objects, reached through our /proc by its numbers here (an exec is checked
            // at its stop, an open gets what was described); its other files by its numbers
            // there. Walking our numbers in its /proc failed (busybox's exec of
            // /proc/self/exe, then eight execs down PATH, per command) or named another task.
            if let Some(hop) = self.magic_hop(tgid, &path) {
                return hop;
            }
            let (Some(ns_tgid), Some(ns_tid)) = (call.status.ns_tgid, call.status.ns_tid) else {
                return self.resolve_in_root(call, dirfd, path, resolve);
            };
            let inner = rewrite_self(raw, ns_tgid, ns_tid);
            return self.resolve_in_root(call, dirfd, inner, resolve);
        }
        // A magic link of a workload task's /proc entry (/proc/<pid>/fd/N, /dev/fd/N...): that
        // one hop is taken, the rest of the path is walked without magic links.
        // The supervisor's own entry included: its links are refused there, and counted.
        if names_other_proc(&path, 0)
            && let Some(hop) = self.magic_hop(tgid, &path)
        {
            return hop;
        }
        let dir = if path.first() == Some(&b'/') {
            None
        } else if dirfd as i32 == libc::AT_FDCWD {
            Some(self.task.open_link(call.tid, Link::Cwd)?)
        } else {
            match self.task.open_link(call.tid, Link::Fd(dirfd as i32)) {
                Ok(d) => Some(d),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(Fail::Errno(libc::EBADF));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Target {
            dir,
            path: cstring(path)?,
            resolve,
        })
    }

    /// Whether `/proc` in the root of task `tid` is a procfs (which the workload cannot make:
    /// mounts are refused).
    fn root_has_procfs(&self, tid: i32) -> bool {
        let Ok(root) = self.task.open_link(tid, super::target::Link::Root) else {
            return false;
        };
        sys::openat2(
            Some(root.as_fd()),
            c"proc",
            (libc::O_PATH | libc::O_DIRECTORY) as u64,
            0,
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_SYMLINKS,
        )
        .and_then(|d| sys::fstatfs(d.as_fd()))
        .is_ok_and(|st| st.f_type as u32 == crate::describe::PROC_MAGIC)
    }

    /// Resolve the parent directory of a path argument: (parent fd, its stat, description base,
    /// operation base, absolute path of the entry).
    pub(super) fn parent(&mut self, call: &Call, dirfd: i64, raw: &[u8]) -> Result<Parent, Fail> {
        let Some((p, base, base_op)) = split_parent(raw) else {
            return Err(Fail::Errno(self.dot_errno(call, dirfd, raw)));
        };
        let t = self.resolve(call, dirfd, &p)?;
        self.open_parent(t.dir(), &t.path, t.resolve, base, base_op)
    }

    /// Open the directory `path` (from `dir`; None: absolute) under the `openat2` restrictions
    /// `resolve`, as the parent of the entry `base` (`base_op`: the name operated on), and
    /// refuse it if it is the digest store's directory. Whether the entry itself may be removed,
    /// replaced or followed is the caller's to ask ([`Self::protect_entry`]): a create of an
    /// existing entry changes nothing (the kernel says EEXIST), even of one of the store's
    /// ancestors (`mkdir -p ~/.cache`).
    pub(super) fn open_parent(
        &mut self,
        dir: Option<BorrowedFd<'_>>,
        path: &CStr,
        resolve: u64,
        base: Vec<u8>,
        base_op: Vec<u8>,
    ) -> Result<Parent, Fail> {
        let fd = open_dir(dir, path, resolve)?;
        let st = sys::fstat(fd.as_fd())?;
        let abs = join(&self.desc.fd_path(fd.as_fd()), &base);
        let base_c = cstring(base)?;
        let entry = sys::fstatat_nofollow(fd.as_fd(), &base_c).ok();
        let g = &self.shared.protected;
        self.guard(g.directory(&st))?;
        Ok(Parent {
            fd,
            st,
            base_op: cstring(base_op)?,
            abs,
            entry,
        })
    }

    /// Refuse a call that would remove, replace, rename or follow `par`'s existing entry where
    /// that entry is the digest store or one of its directories.
    pub(super) fn protect_entry(&self, par: &Parent) -> Result<(), Fail> {
        let g = &self.shared.protected;
        self.guard(par.entry.as_ref().is_some_and(|e| g.entry(e)))
    }

    /// Refuse a call that would reach the digest store (`hit`), in every mode: a workload that
    /// could change it could make a changed file pass as its old contents.
    pub(super) fn guard(&self, hit: bool) -> Result<(), Fail> {
        if hit {
            Counters::bump(&self.shared.counters.protected);
            return Err(Fail::Errno(libc::EPERM));
        }
        Ok(())
    }

    /// The caller's umask now. Read afresh rather than from the cached status: it lives in an
    /// fs_struct that other threads share, and one of them may have changed it without any call
    /// of this one (only creates need it).
    pub(super) fn umask(&self, call: &Call) -> u32 {
        self.task
            .status(call.tid)
            .map_or(call.status.umask, |s| s.umask)
    }

    /// Open the object a path-based setattr call names, as an O_PATH descriptor.
    pub(super) fn object(
        &mut self,
        call: &Call,
        path: PathArg,
        flags: i32,
    ) -> Result<OwnedFd, Fail> {
        let dirfd = path.dirfd;
        let raw = self.read_cstr(call.tid, path.addr)?;
        if raw.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(Fail::Errno(libc::ENOENT));
            }
            return self
                .task
                .open_link(call.tid, Link::Fd(dirfd as i32))
                .map_err(|_| Fail::Errno(libc::EBADF));
        }
        let t = self.resolve(call, dirfd, &raw)?;
        let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
            libc::O_NOFOLLOW as u64
        } else {
            0
        };
        Ok(sys::openat2(
            t.dir(),
            &t.path,
            libc::O_PATH as u64 | nofollow,
            0,
            t.resolve,
        )?)
    }

    pub(super) fn path_ref_of(
        &mut self,
        call: &Call,
        path: PathArg,
    ) -> Result<tsem_core::event::PathRef, Fail> {
        let obj = self.object(call, path, 0)?;
        let st = sys::fstat(obj.as_fd())?;
        let abs = self.desc.fd_path(obj.as_fd());
        let created = self.desc.created(&st);
        Ok(self.desc.path(obj.as_fd(), &st, &abs, created))
    }

    pub(super) fn opt_str(
        &self,
        call: &Call,
        addr: u64,
    ) -> Result<Option<tsem_core::RawStr>, Fail> {
        if addr == 0 {
            return Ok(None);
        }
        Ok(Some(self.read_cstr(call.tid, addr)?.into()))
    }

    pub(super) fn target_file(&self, call: &Call, fd: i32) -> Result<OwnedFd, Fail> {
        match self.task.file(call.status.tgid, fd) {
            Ok(f) => Ok(f),
            Err(e) if errno_of(&e) == libc::EBADF => Err(Fail::Errno(libc::EBADF)),
            Err(e) => Err(e.into()),
        }
    }

    /// Perform a blocking emulation on a helper thread that answers the notification itself.
    pub(super) fn defer(
        &mut self,
        call: &Call,
        work: impl FnOnce() -> Response + Send + 'static,
    ) -> Reply {
        let Ok(nfd) = self.fd.try_clone() else {
            return Reply::Error(libc::ENOMEM);
        };
        let id = call.n.id;
        let wearing = sys::wearing();
        let spawned = std::thread::Builder::new()
            .name("tsem-blocking".into())
            .spawn(move || {
                sys::continue_wearing(wearing);
                // ENOENT: the target gave up meanwhile; nothing is waiting for the answer.
                let _ = sys::notif_send(nfd.as_fd(), id, work());
            });
        match spawned {
            Ok(_) => {
                Counters::bump(&self.shared.counters.emulated);
                Reply::Deferred
            }
            Err(_) => Reply::Error(libc::EAGAIN),
        }
    }
}

pub(super) struct Parent {
    pub(super) fd: OwnedFd,
    pub(super) st: libc::stat,
    pub(super) base_op: CString,
    pub(super) abs: Vec<u8>,
    pub(super) entry: Option<libc::stat>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn self_paths_are_rewritten_for_the_target() {
        assert_eq!(rewrite_self(b"/proc/self/status", 7, 9), b"/proc/7/status");
        assert_eq!(rewrite_self(b"/proc/self", 7, 9), b"/proc/7");
        assert_eq!(
            rewrite_self(b"/proc/thread-self/comm", 7, 9),
            b"/proc/7/task/9/comm"
        );
        assert_eq!(rewrite_self(b"/dev/fd/63", 7, 9), b"/proc/7/fd/63");
        assert_eq!(rewrite_self(b"/dev/stdout", 7, 9), b"/proc/7/fd/1");
        assert_eq!(rewrite_self(b"/dev/stdoutx", 7, 9), b"/dev/stdoutx");
        assert_eq!(rewrite_self(b"/etc/passwd", 7, 9), b"/etc/passwd");
        assert!(names_other_proc(b"/proc/7/fd/3", 1));
        assert!(!names_other_proc(b"/proc/1/fd/3", 1));
        assert!(!names_other_proc(b"/proc/sys/kernel", 1));
    }

    #[test]
    fn parent_split() {
        let s = |p: &[u8]| {
            split_parent(p).map(|(a, b, c)| {
                (
                    String::from_utf8(a).unwrap(),
                    String::from_utf8(b).unwrap(),
                    String::from_utf8(c).unwrap(),
                )
            })
        };
        assert_eq!(s(b"/a/b"), Some(("/a".into(), "b".into(), "b".into())));
        assert_eq!(s(b"/a"), Some(("/".into(), "a".into(), "a".into())));
        assert_eq!(s(b"a"), Some((".".into(), "a".into(), "a".into())));
        assert_eq!(
            s(b"x/dir/"),
            Some(("x".into(), "dir".into(), "dir/".into()))
        );
        assert_eq!(s(b"x/.."), None);
        assert_eq!(s(b"///"), None);
    }
}
