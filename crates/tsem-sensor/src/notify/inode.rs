//! Directory entries: mkdir, mknod, unlink, rmdir, rename, link, symlink.

use std::os::fd::AsFd;

use tsem_core::event::{Cell, EventType};

use super::decode::PathArg;
use super::{Call, Fail, Notifier, Reply, cstring, op_reply};
use crate::event::EventHandler;
use crate::sys::{self, PathOp};

impl<H: EventHandler> Notifier<H> {
    pub(super) fn sys_create(
        &mut self,
        call: &mut Call,
        path: PathArg,
        mode: u32,
        dev: Option<u64>,
    ) -> Result<Reply, Fail> {
        let (dirfd, path) = (path.dirfd, path.addr);
        let raw = self.read_cstr(call.tid, path)?;
        let par = self.parent(call, dirfd, &raw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if par.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let emulate = self.performs(call);
        let m = mode & !self.umask(call) & 0o7777;
        let fmt = mode & libc::S_IFMT;
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let (ty, cell, created) = match dev {
            None => {
                let c = self.desc.next_instance(&par.st, &call.task.ident.task_id);
                let dentry = self
                    .desc
                    .dentry(par.fd.as_fd(), &par.st, &par.abs, None, Some(c));
                (
                    EventType::InodeMkdir,
                    Cell::InodeCreate {
                        dir,
                        dentry,
                        mode: m,
                    },
                    Some(c),
                )
            }
            Some(_) if fmt == 0 || fmt == libc::S_IFREG => {
                let c = self.desc.next_instance(&par.st, &call.task.ident.task_id);
                let dentry = self
                    .desc
                    .dentry(par.fd.as_fd(), &par.st, &par.abs, None, Some(c));
                (
                    EventType::InodeCreate,
                    Cell::InodeCreate {
                        dir,
                        dentry,
                        mode: libc::S_IFREG | m,
                    },
                    Some(c),
                )
            }
            Some(d) => {
                let dentry = self
                    .desc
                    .dentry(par.fd.as_fd(), &par.st, &par.abs, None, None);
                let (ma, mi) = (libc::major(d as libc::dev_t), libc::minor(d as libc::dev_t));
                (
                    EventType::InodeMknod,
                    Cell::InodeMknod {
                        dir,
                        dentry,
                        mode: fmt | m,
                        dev: (ma, mi),
                    },
                    None,
                )
            }
        };
        if let Some(r) = self.decide(call, ty, cell, emulate) {
            return Ok(r);
        }
        let d = par.fd.as_fd();
        let r = match dev {
            None => sys::path_op(&PathOp::Mkdir {
                dir: d,
                path: &par.base_op,
                mode: m,
            }),
            Some(dv) => sys::path_op(&PathOp::Mknod {
                dir: d,
                path: &par.base_op,
                mode: fmt | m,
                dev: dv,
            }),
        };
        if r.is_ok()
            && let Some(c) = created
            && let Ok(st) = sys::fstatat_nofollow(d, &par.base_op)
        {
            self.desc.mark_created(&st, c);
        }
        Ok(op_reply(r))
    }

    pub(super) fn sys_unlink(
        &mut self,
        call: &mut Call,
        path: PathArg,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let (dirfd, path) = (path.dirfd, path.addr);
        let raw = self.read_cstr(call.tid, path)?;
        let par = self.parent(call, dirfd, &raw)?;
        self.protect_entry(&par)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let Some(entry) = par.entry else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        let emulate = self.performs(call);
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let created = self.desc.created(&entry);
        let dentry = self
            .desc
            .dentry(par.fd.as_fd(), &par.st, &par.abs, Some(&entry), created);
        let ty = if flags & libc::AT_REMOVEDIR != 0 {
            EventType::InodeRmdir
        } else {
            EventType::InodeUnlink
        };
        if let Some(r) = self.decide(call, ty, Cell::InodeDirEntry { dir, dentry }, emulate) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Unlink {
            dir: par.fd.as_fd(),
            path: &par.base_op,
            flags,
        });
        if r.is_ok() {
            self.desc.forget(&entry);
        }
        Ok(op_reply(r))
    }

    pub(super) fn sys_rename(
        &mut self,
        call: &mut Call,
        old: PathArg,
        new: PathArg,
        flags: u32,
    ) -> Result<Reply, Fail> {
        let (od, op_, nd, np) = (old.dirfd, old.addr, new.dirfd, new.addr);
        let oraw = self.read_cstr(call.tid, op_)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let o = self.parent(call, od, &oraw)?;
        let n = self.parent(call, nd, &nraw)?;
        self.protect_entry(&o)?;
        self.protect_entry(&n)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let Some(oe) = o.entry else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        let emulate = self.performs(call);
        let old_dir = self.desc.inode(o.fd.as_fd(), &o.st, &o.abs);
        let oc = self.desc.created(&oe);
        let old_dentry = self.desc.dentry(o.fd.as_fd(), &o.st, &o.abs, Some(&oe), oc);
        let new_dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let nc = n.entry.as_ref().and_then(|e| self.desc.created(e));
        let new_dentry = self
            .desc
            .dentry(n.fd.as_fd(), &n.st, &n.abs, n.entry.as_ref(), nc);
        if let Some(r) = self.decide(
            call,
            EventType::InodeRename,
            Cell::InodeRename(Box::new(tsem_core::event::Rename {
                old_dir,
                old_dentry,
                new_dir,
                new_dentry,
            })),
            emulate,
        ) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Rename {
            odir: o.fd.as_fd(),
            old: &o.base_op,
            ndir: n.fd.as_fd(),
            new: &n.base_op,
            flags,
        });
        Ok(op_reply(r))
    }

    pub(super) fn sys_link(
        &mut self,
        call: &mut Call,
        old: PathArg,
        new: PathArg,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let (od, op_, nd, np) = (old.dirfd, old.addr, new.dirfd, new.addr);
        if flags & (libc::AT_EMPTY_PATH | libc::AT_SYMLINK_FOLLOW) != 0 {
            return self.sys_link_object(call, old, new, flags);
        }
        let oraw = self.read_cstr(call.tid, op_)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let o = self.parent(call, od, &oraw)?;
        let n = self.parent(call, nd, &nraw)?;
        self.protect_entry(&o)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let Some(oe) = o.entry else {
            return Err(Fail::Errno(libc::ENOENT));
        };
        if n.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let emulate = self.performs(call);
        let oc = self.desc.created(&oe);
        let old_dentry = self.desc.dentry(o.fd.as_fd(), &o.st, &o.abs, Some(&oe), oc);
        let dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let new_dentry = self.desc.dentry(n.fd.as_fd(), &n.st, &n.abs, None, None);
        if let Some(r) = self.decide(
            call,
            EventType::InodeLink,
            Cell::InodeLink(Box::new(tsem_core::event::Link {
                old_dentry,
                dir,
                new_dentry,
            })),
            emulate,
        ) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Link {
            odir: o.fd.as_fd(),
            old: &o.base_op,
            ndir: n.fd.as_fd(),
            new: &n.base_op,
            flags,
        });
        Ok(op_reply(r))
    }

    pub(super) fn sys_symlink(
        &mut self,
        call: &mut Call,
        target: u64,
        new: PathArg,
    ) -> Result<Reply, Fail> {
        let (nd, np) = (new.dirfd, new.addr);
        let traw = self.read_cstr(call.tid, target)?;
        let nraw = self.read_cstr(call.tid, np)?;
        let n = self.parent(call, nd, &nraw)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if n.entry.is_some() {
            return Err(Fail::Errno(libc::EEXIST));
        }
        let emulate = self.performs(call);
        let dir = self.desc.inode(n.fd.as_fd(), &n.st, &n.abs);
        let dentry = self.desc.dentry(n.fd.as_fd(), &n.st, &n.abs, None, None);
        let old_name = tsem_core::RawStr::from(&traw[..]);
        if let Some(r) = self.decide(
            call,
            EventType::InodeSymlink,
            Cell::InodeSymlink {
                dir,
                dentry,
                old_name,
            },
            emulate,
        ) {
            return Ok(r);
        }
        let t = cstring(traw)?;
        Ok(op_reply(sys::path_op(&PathOp::Symlink {
            target: &t,
            dir: n.fd.as_fd(),
            path: &n.base_op,
        })))
    }
}
