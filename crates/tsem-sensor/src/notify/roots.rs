//! Paths of tasks whose root is not the supervisor's (chroot, pivot_root, another mount
//! namespace), the errors of paths that name no entry, and `O_TMPFILE` opens.
//!
//! A task's root is reached through `/proc/<tid>/root`, which is the task's own root directory
//! in its own mount namespace, and walked with `RESOLVE_IN_ROOT`, under which `..` and absolute
//! symlinks stop at that directory as they do for the task. A relative path starts where the
//! task's cwd (or dirfd) is inside that root; one that is not inside it (a chroot without
//! chdir) cannot be walked as the task would, and is refused when enforcing.

use std::os::fd::AsFd;

use tsem_core::event::{Cell, EventType};

use super::decode::Request;
use super::target::Link;
use super::{
    Call, Continuation, Fail, Notifier, Reply, Target, cstring, is, open_dir, open_f_flags,
};
use crate::event::EventHandler;
use crate::sys;
use crate::syscalls::Sysno;

/// The part of `inner` below `root`, both absolute paths as `readlink` prints them: `None`
/// when `inner` is not inside `root`.
fn below(root: &[u8], inner: &[u8]) -> Option<Vec<u8>> {
    if root == b"/" {
        return Some(inner.to_vec());
    }
    let rest = inner.strip_prefix(root)?;
    match rest.first() {
        None => Some(b"/".to_vec()),
        Some(b'/') => Some(rest.to_vec()),
        Some(_) => None,
    }
}

/// The error the kernel returns for a call whose last path component is `.` or `..` (or a
/// path of slashes): it fails them before any security hook.
fn dot_errno(sys: Sysno, req: Request, raw: &[u8]) -> i32 {
    let trimmed = {
        let mut end = raw.len();
        while end > 0 && raw[end - 1] == b'/' {
            end -= 1;
        }
        &raw[..end]
    };
    let last = trimmed.rsplit(|c| *c == b'/').next().unwrap_or(b"");
    let rmdir = matches!(req, Request::Unlink { flags, .. } if flags & libc::AT_REMOVEDIR != 0);
    match sys {
        _ if rmdir => match last {
            b"." => libc::EINVAL,
            b".." => libc::ENOTEMPTY,
            _ => libc::EBUSY,
        },
        Sysno::Unlink | Sysno::Unlinkat => libc::EISDIR,
        Sysno::Rename | Sysno::Renameat | Sysno::Renameat2 => libc::EBUSY,
        // O_CREAT of a missing "x/..": a component is missing.
        Sysno::Open | Sysno::Openat | Sysno::Openat2 | Sysno::Creat => libc::ENOENT,
        _ => libc::EEXIST,
    }
}

impl<H: EventHandler> Notifier<H> {
    /// Resolve `path` (already rewritten for "self" names) for a task whose root or mount
    /// namespace is not ours: from its own root, with `RESOLVE_IN_ROOT`.
    pub(super) fn resolve_in_root(
        &mut self,
        call: &Call,
        dirfd: i64,
        path: Vec<u8>,
        resolve: u64,
    ) -> Result<Target, Fail> {
        let tid = call.tid;
        let root = self.task.open_link(tid, Link::Root)?;
        let resolve = resolve | libc::RESOLVE_IN_ROOT;
        if path.first() == Some(&b'/') {
            return Ok(Target {
                dir: Some(root),
                path: cstring(path)?,
                resolve,
            });
        }
        let start_link = if dirfd as i32 == libc::AT_FDCWD {
            Link::Cwd
        } else {
            Link::Fd(dirfd as i32)
        };
        let start = match self.task.open_link(tid, start_link) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Fail::Errno(libc::EBADF));
            }
            Err(e) => return Err(e.into()),
        };
        let start_st = sys::fstat(start.as_fd())?;
        let root_txt = self.task.read_link(tid, Link::Root)?;
        let start_txt = self.task.read_link(tid, start_link)?;
        // A start outside the task's root (chroot without chdir) cannot be walked as the task
        // walks it: `..` would climb above the root.
        let Some(mut full) = below(&root_txt, &start_txt) else {
            return Err(Fail::Fallback);
        };
        // The text names the start only if it still leads there from the root.
        let check = sys::openat2(
            Some(root.as_fd()),
            &cstring(full.clone())?,
            libc::O_PATH as u64,
            0,
            resolve,
        );
        match check.and_then(|c| sys::fstat(c.as_fd())) {
            Ok(st) if (st.st_dev, st.st_ino) == (start_st.st_dev, start_st.st_ino) => {}
            _ => return Err(Fail::Fallback),
        }
        if !is(&start_st, libc::S_IFDIR) {
            return Err(Fail::Errno(libc::ENOTDIR));
        }
        if full.last() != Some(&b'/') {
            full.push(b'/');
        }
        full.extend_from_slice(&path);
        Ok(Target {
            dir: Some(root),
            path: cstring(full)?,
            resolve,
        })
    }

    /// The errno for a path whose last component names no entry to create or remove (`.`,
    /// `..`, `/`): the kernel's error for a missing component first, else the call's own.
    pub(super) fn dot_errno(&mut self, call: &Call, dirfd: i64, raw: &[u8]) -> i32 {
        let t = match self.resolve(call, dirfd, raw) {
            Ok(t) => t,
            Err(Fail::Errno(e) | Fail::Undecodable(e)) => return e,
            Err(Fail::Fallback) => return libc::EPERM,
        };
        match sys::openat2(t.dir(), &t.path, libc::O_PATH as u64, 0, t.resolve) {
            Ok(_) => dot_errno(call.sys, call.req, raw),
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// `O_TMPFILE`: an unnamed file in the directory `t` names. Its path would carry the inode
    /// number (`/dir/#1234 (deleted)`), different in every run, so it is described as a file
    /// the task created there (TSEM's created-file rule: the directory, the creator's TASK_ID
    /// and a per-directory instance, and the zero digest) and models stay reproducible.
    pub(super) fn open_tmpfile(
        &mut self,
        call: &mut Call,
        t: &Target,
        flags: u64,
        mode: u64,
        cloexec: bool,
    ) -> Result<Reply, Fail> {
        let dir = open_dir(t.dir(), &t.path, t.resolve)?;
        let dir_st = sys::fstat(dir.as_fd())?;
        self.guard(self.shared.protected.directory(&dir_st))?;
        let m = mode & !u64::from(self.umask(call)) & 0o7777;
        let fd = sys::openat2(
            Some(dir.as_fd()),
            c".",
            flags & !(libc::O_CLOEXEC as u64),
            m,
            0,
        )?;
        let st = sys::fstat(fd.as_fd())?;
        self.claim_write(&st)?;
        if self.shared.mechanism_only {
            // The emulation floor: performed, nothing described or modeled.
            if let Some(r) = self.floor_gate(call) {
                return Ok(r);
            }
            return Ok(Reply::AddFd(fd, cloexec));
        }
        let created = self.desc.next_instance(&dir_st, &call.task.ident.task_id);
        self.desc.mark_created(&st, created);
        let file = self.desc.file(fd.as_fd(), None, &st, open_f_flags(flags));
        let (v, allowed) = self.ask_token(call, EventType::FileOpen, Cell::File(file));
        let Some(allowed) = allowed else {
            return Ok(Reply::Error(v.errno));
        };
        if let Some(r) = self.gate(call, Continuation::Allowed(allowed)) {
            return Ok(r);
        }
        Ok(Reply::AddFd(fd, cloexec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::decode::decode;

    #[test]
    fn start_below_the_root() {
        assert_eq!(below(b"/", b"/a/b"), Some(b"/a/b".to_vec()));
        assert_eq!(below(b"/jail", b"/jail/a"), Some(b"/a".to_vec()));
        assert_eq!(below(b"/jail", b"/jail"), Some(b"/".to_vec()));
        assert_eq!(below(b"/jail", b"/jailbreak/a"), None);
        assert_eq!(below(b"/jail", b"/etc"), None);
    }

    #[test]
    fn dot_components_fail_like_the_kernel() {
        let dot_errno = |s: Sysno, a: &[u64; 6], p: &[u8]| super::dot_errno(s, decode(s, a), p);
        let no = [0u64; 6];
        assert_eq!(dot_errno(Sysno::Mkdir, &no, b"a/."), libc::EEXIST);
        assert_eq!(dot_errno(Sysno::Rmdir, &no, b"a/."), libc::EINVAL);
        assert_eq!(dot_errno(Sysno::Rmdir, &no, b"a/.."), libc::ENOTEMPTY);
        assert_eq!(dot_errno(Sysno::Rmdir, &no, b"/"), libc::EBUSY);
        let rm = [0, 0, libc::AT_REMOVEDIR as u64, 0, 0, 0];
        assert_eq!(dot_errno(Sysno::Unlinkat, &rm, b".."), libc::ENOTEMPTY);
        assert_eq!(dot_errno(Sysno::Unlinkat, &no, b".."), libc::EISDIR);
        assert_eq!(dot_errno(Sysno::Renameat2, &no, b"x/.."), libc::EBUSY);
    }
}
