//! Creates and links that follow a link the kernel would otherwise follow after the verdict
//! (issue 9, class 5): an `O_CREAT` open through a dangling symlink, and `linkat` of an open
//! file (`AT_EMPTY_PATH`) or through a followed path (`AT_SYMLINK_FOLLOW`, e.g.
//! `/proc/self/fd/N`). The supervisor reads or follows the link itself, describes the object it
//! reached and performs the operation on that very object, so nothing the workload changes
//! afterwards (the link, the path buffer) reaches the kernel.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use tsem_core::event::{Cell, EventType};

use super::decode::PathArg;
use super::{
    Call, EventHandler, Fail, Notifier, Parent, Reply, cstring, is, names_other_proc, op_reply,
    rewrite_self, split_parent,
};
use crate::sys::{self, PathOp};

/// Symlinks followed at most, as the kernel (`MAXSYMLINKS`).
const MAX_HOPS: u32 = 40;

/// `fs.protected_symlinks`: following a symlink in a sticky world-writable directory is
/// refused unless the follower or the directory owns it.
fn protected_symlinks() -> bool {
    std::fs::read_to_string("/proc/sys/fs/protected_symlinks")
        .map(|s| s.trim() != "0")
        .unwrap_or(true)
}

impl<H: EventHandler> Notifier<H> {
    /// The parent of `raw` resolved from the supervisor's directory `dir` (None: absolute),
    /// as [`Notifier::parent`] does from the target's.
    fn parent_at(&mut self, dir: Option<BorrowedFd<'_>>, raw: &[u8]) -> Result<Parent, Fail> {
        // "." or ".." last, or only slashes: O_CREAT cannot create a directory.
        let Some((p, base, base_op)) = split_parent(raw) else {
            return Err(Fail::Errno(libc::EISDIR));
        };
        let resolve = if names_other_proc(&p, self.self_pid) {
            0
        } else {
            libc::RESOLVE_NO_MAGICLINKS
        };
        self.open_parent(dir, &cstring(p)?, resolve, base, base_op)
    }

    /// `par.entry` is a dangling symlink an `O_CREAT` open follows: the parent of its target,
    /// read once by the supervisor (`hops`: links followed so far; `resolve`: the caller's
    /// `openat2` restrictions).
    pub(super) fn follow_dangling(
        &mut self,
        call: &Call,
        par: &Parent,
        hops: u32,
        resolve: u64,
    ) -> Result<Parent, Fail> {
        if hops > MAX_HOPS || resolve & libc::RESOLVE_NO_SYMLINKS != 0 {
            return Err(Fail::Errno(libc::ELOOP));
        }
        // The kernel would confine the walk to the directory; refusing is the strict side of
        // that (a link that stays inside is refused too).
        if resolve & (libc::RESOLVE_BENEATH | libc::RESOLVE_IN_ROOT) != 0 {
            return Err(Fail::Errno(libc::EXDEV));
        }
        if par.base_op.as_bytes().ends_with(b"/") {
            return Err(Fail::Errno(libc::EISDIR));
        }
        let Some(link) = par.entry.as_ref() else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        let sticky_open =
            par.st.st_mode & (libc::S_ISVTX | libc::S_IWOTH) == (libc::S_ISVTX | libc::S_IWOTH);
        if sticky_open
            && link.st_uid != call.status.coe.fsuid
            && link.st_uid != par.st.st_uid
            && protected_symlinks()
        {
            return Err(Fail::Errno(libc::EACCES));
        }
        let target = sys::acts::readlinkat(par.fd.as_fd(), &par.base_op)?;
        if target.is_empty() {
            return Err(Fail::Errno(libc::ENOENT));
        }
        // A link to /proc/self names the caller, never the supervisor.
        let target = rewrite_self(&target, call.status.tgid, call.tid);
        let dir = (target.first() != Some(&b'/')).then(|| par.fd.as_fd());
        self.parent_at(dir, &target)
    }

    /// `linkat` of the object an open descriptor (`AT_EMPTY_PATH`) or a followed path
    /// (`AT_SYMLINK_FOLLOW`) names: TSEM's inode_link with that object as `old_dentry`.
    pub(super) fn sys_link_object(
        &mut self,
        call: &mut Call,
        old: PathArg,
        new: PathArg,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let (od, op_, nd, np) = (old.dirfd, old.addr, new.dirfd, new.addr);
        let oraw = self.read_cstr(call.tid, op_)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let by_fd = oraw.is_empty();
        if by_fd && flags & libc::AT_EMPTY_PATH == 0 {
            return Err(Fail::Errno(libc::ENOENT));
        }
        // Linking an open file needs CAP_DAC_READ_SEARCH (the rule of the kernels before 6.10;
        // later ones also accept a file opened with the caller's very credentials, which under
        // the sensor is never the case: the supervisor opened it).
        const CAP_DAC_READ_SEARCH: u32 = 2;
        if by_fd && call.status.coe.capeff & (1 << CAP_DAC_READ_SEARCH) == 0 {
            return Err(Fail::Errno(libc::ENOENT));
        }
        let obj = if by_fd {
            self.target_file(call, od as i32)?
        } else {
            // AT_EMPTY_PATH with a path is a plain link: a final symlink is linked itself.
            let nofollow = if flags & libc::AT_SYMLINK_FOLLOW == 0 {
                libc::O_NOFOLLOW as u64
            } else {
                0
            };
            let t = self.resolve(call, od, &oraw)?;
            sys::openat2(
                t.dir(),
                &t.path,
                libc::O_PATH as u64 | nofollow,
                0,
                t.resolve,
            )?
        };
        let n = self.parent(call, nd, &nraw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if n.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let ost = sys::fstat(obj.as_fd())?;
        if is(&ost, libc::S_IFDIR) {
            return Err(Fail::Errno(libc::EPERM));
        }
        let g = &self.shared.protected;
        self.guard(g.object(&ost) || g.entry(&ost))?;
        let emulate = self.performs(call);
        let old_dentry = self.desc.object_dentry(obj.as_fd(), &ost);
        let dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let new_dentry = self.desc.dentry(n.fd.as_fd(), &n.st, &n.abs, None, None);
        let cell = Cell::InodeLink(Box::new(tsem_core::event::Link {
            old_dentry,
            dir,
            new_dentry,
        }));
        if let Some(r) = self.decide(call, EventType::InodeLink, cell, emulate) {
            return Ok(r);
        }
        let r = if by_fd {
            sys::path_op(&PathOp::Link {
                odir: obj.as_fd(),
                old: c"",
                ndir: n.fd.as_fd(),
                new: &n.base_op,
                flags: libc::AT_EMPTY_PATH,
            })
        } else {
            // Our own descriptor on the object, followed as the workload's path was.
            let fds = sys::open("/proc/self/fd", libc::O_PATH | libc::O_DIRECTORY)?;
            let name =
                CString::new(obj.as_raw_fd().to_string()).map_err(|_| Fail::Errno(libc::EINVAL))?;
            sys::path_op(&PathOp::Link {
                odir: fds.as_fd(),
                old: &name,
                ndir: n.fd.as_fd(),
                new: &n.base_op,
                flags: libc::AT_SYMLINK_FOLLOW,
            })
        };
        Ok(op_reply(r))
    }
}
