//! Attributes of an inode or open file: setattr (chmod, chown, truncate, utimes), getattr
//! (the stat family), xattrs, and the commands on an open file (ioctl, fcntl, flock).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use tsem_core::event::{Cell, EventType};

use super::decode::{PathArg, XattrObj, XattrOp};
use super::{Call, Fail, Notifier, Reply, errno_of, is, map_mem_err, op_reply};
use crate::event::EventHandler;
use crate::sys::{self, PathOp};

pub(super) const ATTR_MODE: u32 = 1;
pub(super) const ATTR_UID: u32 = 2;
pub(super) const ATTR_GID: u32 = 4;
pub(super) const ATTR_SIZE: u32 = 8;
pub(super) const ATTR_ATIME: u32 = 0x10;
pub(super) const ATTR_MTIME: u32 = 0x20;
pub(super) const ATTR_CTIME: u32 = 0x40;
pub(super) const ATTR_ATIME_SET: u32 = 0x80;
pub(super) const ATTR_MTIME_SET: u32 = 0x100;
pub(super) const ATTR_FILE: u32 = 0x2000;
pub(super) const ATTR_OPEN: u32 = 0x8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SetAttr {
    Mode(u32),
    Owner(u32, u32),
    Size(i64),
    Times(bool),
}

impl<H: EventHandler> Notifier<H> {
    pub(super) fn setattr_cell(
        &mut self,
        fd: BorrowedFd<'_>,
        st: &libc::stat,
        what: &SetAttr,
    ) -> Cell {
        let dentry = self.desc.object_dentry(fd, st);
        let (valid, mode, uid, gid, size) = match *what {
            SetAttr::Mode(m) => (
                ATTR_MODE | ATTR_CTIME,
                (m & 0o7777) | (st.st_mode & libc::S_IFMT),
                0,
                0,
                0,
            ),
            SetAttr::Owner(u, g) => {
                let mut v = ATTR_CTIME;
                if u != u32::MAX {
                    v |= ATTR_UID;
                }
                if g != u32::MAX {
                    v |= ATTR_GID;
                }
                (
                    v,
                    0,
                    if u != u32::MAX { u } else { 0 },
                    if g != u32::MAX { g } else { 0 },
                    0,
                )
            }
            SetAttr::Size(s) => (ATTR_SIZE | ATTR_MTIME | ATTR_CTIME, 0, 0, 0, s as u64),
            SetAttr::Times(set) => {
                let mut v = ATTR_ATIME | ATTR_MTIME | ATTR_CTIME;
                if set {
                    v |= ATTR_ATIME_SET | ATTR_MTIME_SET;
                }
                (v, 0, 0, 0, 0)
            }
        };
        Cell::InodeSetattr {
            dentry,
            valid,
            mode,
            uid,
            gid,
            size,
        }
    }

    pub(super) fn sys_setattr(
        &mut self,
        call: &mut Call,
        path: PathArg,
        flags: i32,
        what: SetAttr,
    ) -> Result<Reply, Fail> {
        let obj = self.object(call, path, flags)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        // notify_change() refuses a symbolic link's mode before security_inode_setattr (only
        // fchmodat2's AT_SYMLINK_NOFOLLOW can name one): no event, as in the kernel.
        if matches!(what, SetAttr::Mode(_)) && is(&st, libc::S_IFLNK) {
            return Err(Fail::Errno(libc::EOPNOTSUPP));
        }
        self.guard(self.shared.protected.object(&st))?;
        if let SetAttr::Size(_) = what {
            self.claim_write(&st)?;
        }
        let emulate = self.performs(call);
        let cell = self.setattr_cell(obj.as_fd(), &st, &what);
        if let Some(r) = self.decide(call, EventType::InodeSetattr, cell, emulate) {
            return Ok(r);
        }
        let empty = c"";
        let d = obj.as_fd();
        let r = match what {
            SetAttr::Mode(m) => sys::path_op(&PathOp::Chmod {
                dir: d,
                path: empty,
                mode: m,
                flags: libc::AT_EMPTY_PATH,
            }),
            SetAttr::Owner(u, g) => sys::path_op(&PathOp::Chown {
                dir: d,
                path: empty,
                uid: u,
                gid: g,
                flags: libc::AT_EMPTY_PATH,
            }),
            SetAttr::Size(s) => {
                let link = format!("/proc/self/fd/{}", d.as_raw_fd());
                match sys::open(&link, libc::O_WRONLY | libc::O_NOCTTY) {
                    Ok(w) => sys::path_op(&PathOp::Truncate {
                        fd: w.as_fd(),
                        len: s,
                    }),
                    Err(e) => Err(errno_of(&e)),
                }
            }
            // Times go through sys_utimens and sys_utimes_old, never here.
            SetAttr::Times(_) => Err(libc::EINVAL),
        };
        Ok(op_reply(r))
    }

    pub(super) fn sys_setattr_fd(
        &mut self,
        call: &mut Call,
        fd: i32,
        what: SetAttr,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        self.guard(self.shared.protected.object(&st))?;
        let emulate = self.performs(call);
        let mut cell = self.setattr_cell(f.as_fd(), &st, &what);
        if let (SetAttr::Size(_), Cell::InodeSetattr { valid, .. }) = (&what, &mut cell) {
            *valid |= ATTR_FILE;
        }
        if let Some(r) = self.decide(call, EventType::InodeSetattr, cell, emulate) {
            return Ok(r);
        }
        // Performed on the target's own open file, so a concurrent dup2 cannot redirect it.
        let r = match what {
            SetAttr::Mode(m) => sys::fchmod(f.as_fd(), m),
            SetAttr::Owner(u, g) => sys::fchown(f.as_fd(), u, g),
            SetAttr::Size(s) => sys::path_op(&PathOp::Truncate {
                fd: f.as_fd(),
                len: s,
            }),
            // Times go through sys_utimens and sys_utimes_old, never here.
            SetAttr::Times(_) => Err(libc::EINVAL),
        };
        Ok(op_reply(r))
    }

    pub(super) fn sys_utimens(
        &mut self,
        call: &mut Call,
        path: PathArg,
        times_addr: u64,
        flags: i32,
    ) -> Result<Reply, Fail> {
        let times = if times_addr == 0 {
            None
        } else {
            let b = self.read_mem(call.tid, times_addr, 32)?;
            Some([
                libc::timespec {
                    tv_sec: le_i64(&b, 0),
                    tv_nsec: le_i64(&b, 8),
                },
                libc::timespec {
                    tv_sec: le_i64(&b, 16),
                    tv_nsec: le_i64(&b, 24),
                },
            ])
        };
        let obj = if path.addr == 0 {
            // utimensat(fd, NULL, ...) acts on the descriptor itself.
            self.target_file(call, path.dirfd as i32)?
        } else {
            self.object(call, path, flags)?
        };
        let set = times.is_some_and(|t| t.iter().any(|x| x.tv_nsec != libc::UTIME_NOW));
        self.utimens_on(call, obj, times, set)
    }

    /// `utime`, `utimes`, `futimesat`: the caller's times (a `struct utimbuf` of seconds, or
    /// two `struct timeval`) copied and converted, then performed like `utimensat` on the
    /// object described, so a thread that rewrites the path or the times after the check
    /// changes nothing.
    pub(super) fn sys_utimes_old(
        &mut self,
        call: &mut Call,
        path: PathArg,
        times_addr: u64,
        utimbuf: bool,
    ) -> Result<Reply, Fail> {
        let times = if times_addr == 0 {
            None
        } else if utimbuf {
            let b = self.read_mem(call.tid, times_addr, 16)?;
            let at = |i| libc::timespec {
                tv_sec: le_i64(&b, i),
                tv_nsec: 0,
            };
            Some([at(0), at(8)])
        } else {
            let b = self.read_mem(call.tid, times_addr, 32)?;
            let tv = |i| {
                let usec = le_i64(&b, i + 8);
                // do_futimesat's check, before any hook.
                if !(0..1_000_000).contains(&usec) {
                    return Err(Fail::Errno(libc::EINVAL));
                }
                Ok(libc::timespec {
                    tv_sec: le_i64(&b, i),
                    tv_nsec: usec * 1000,
                })
            };
            Some([tv(0)?, tv(16)?])
        };
        let obj = self.object(call, path, 0)?;
        self.utimens_on(call, obj, times, times.is_some())
    }

    /// inode_setattr for new times of `obj`, then `utimensat` on `obj` itself with the
    /// supervisor's copy of the times.
    fn utimens_on(
        &mut self,
        call: &mut Call,
        obj: OwnedFd,
        times: Option<[libc::timespec; 2]>,
        set: bool,
    ) -> Result<Reply, Fail> {
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        self.guard(self.shared.protected.object(&st))?;
        let emulate = self.performs(call);
        let cell = self.setattr_cell(obj.as_fd(), &st, &SetAttr::Times(set));
        if let Some(r) = self.decide(call, EventType::InodeSetattr, cell, emulate) {
            return Ok(r);
        }
        let r = sys::path_op(&PathOp::Utimens {
            dir: obj.as_fd(),
            path: Some(c""),
            times,
            flags: libc::AT_EMPTY_PATH,
        });
        Ok(op_reply(r))
    }

    /// The stat family: inode_getattr of the object, then the supervisor stats that very
    /// object and writes the result into the caller's buffer, so what is described is what the
    /// caller learns about.
    pub(super) fn sys_getattr(
        &mut self,
        call: &mut Call,
        path: PathArg,
        buf: u64,
        flags: i32,
        statx_mask: Option<u32>,
    ) -> Result<Reply, Fail> {
        let obj = self.object(call, path, flags)?;
        // The supervisor's own credentials must not find what the caller's would not (search
        // permission on the path): otherwise see `performs`.
        let emulate = self.performs(call);
        self.getattr_of(call, obj, buf, flags, statx_mask, emulate)
    }

    /// fstat: the caller holds the descriptor, so no permission is checked on it.
    pub(super) fn sys_fstat(&mut self, call: &mut Call, fd: i32, buf: u64) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        self.getattr_of(call, f, buf, 0, None, true)
    }

    pub(super) fn getattr_of(
        &mut self,
        call: &mut Call,
        obj: OwnedFd,
        buf: u64,
        flags: i32,
        statx_mask: Option<u32>,
        emulate: bool,
    ) -> Result<Reply, Fail> {
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        let dentry = self.desc.object_dentry(obj.as_fd(), &st);
        call.emulated = emulate;
        if let Some(r) = self.decide(
            call,
            EventType::InodeGetattr,
            Cell::InodeGetattr(dentry),
            emulate,
        ) {
            return Ok(r);
        }
        let bytes = match statx_mask {
            None => sys::stat_bytes(&st),
            Some(mask) => sys::statx_bytes(obj.as_fd(), flags & libc::AT_STATX_SYNC_TYPE, mask)?,
        };
        if buf == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        match self.task.write_mem(call.tid, buf, &bytes) {
            Ok(n) if n == bytes.len() => Ok(Reply::Value(0)),
            Ok(_) => Err(Fail::Errno(libc::EFAULT)),
            Err(e) => Err(Fail::Errno(map_mem_err(&e))),
        }
    }

    /// The xattr family: described from the object itself (path, honoring the `l*` no-follow
    /// variants, or the target's descriptor), then performed by the supervisor on that object
    /// with its own copy of the name and value: a get or list writes what it read into the
    /// caller's buffer. The kernel never reads the caller's memory again.
    pub(super) fn sys_xattr(
        &mut self,
        call: &mut Call,
        obj: XattrObj,
        name_addr: u64,
        op: XattrOp,
    ) -> Result<Reply, Fail> {
        let (obj, file) = match obj {
            XattrObj::Fd(fd) => (self.target_file(call, fd)?, true),
            XattrObj::Path { addr, follow } => {
                let nofollow = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
                (self.object(call, PathArg::cwd(addr), nofollow)?, false)
            }
        };
        let name = match op {
            XattrOp::List { .. } => None,
            _ => Some(self.read_cstr(call.tid, name_addr)?),
        };
        let value = match op {
            // setxattr_copy's check, before any hook.
            XattrOp::Set { size, .. } if size > sys::XATTR_MAX => {
                return Err(Fail::Errno(libc::E2BIG));
            }
            XattrOp::Set { value, size, .. } => self.read_mem(call.tid, value, size)?,
            _ => Vec::new(),
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(obj.as_fd())?;
        if matches!(op, XattrOp::Set { .. } | XattrOp::Remove) {
            self.guard(self.shared.protected.object(&st))?;
        }
        let dentry = self.desc.object_dentry(obj.as_fd(), &st);
        let raw_name = name.clone().map(tsem_core::RawStr::from);
        let (ty, cell) = match (op, raw_name) {
            (XattrOp::Set { flags, .. }, Some(name)) => (
                EventType::InodeSetxattr,
                Cell::InodeSetxattr {
                    dentry,
                    name,
                    value: value.clone(),
                    flags,
                },
            ),
            (XattrOp::Get { .. }, Some(name)) => {
                (EventType::InodeGetxattr, Cell::InodeXattr { dentry, name })
            }
            (XattrOp::Remove, Some(name)) => (
                EventType::InodeRemovexattr,
                Cell::InodeXattr { dentry, name },
            ),
            _ => (EventType::InodeListxattr, Cell::Dentry(dentry)),
        };
        let emulate = self.performs(call);
        if let Some(r) = self.decide(call, ty, cell, emulate) {
            return Ok(r);
        }
        let on = if file {
            sys::XattrOn::File(obj.as_fd())
        } else {
            sys::XattrOn::Pinned(obj.as_fd())
        };
        let name = super::cstring(name.unwrap_or_default())?;
        let (n, bytes, to) = match op {
            XattrOp::Set { flags, .. } => {
                return Ok(op_reply(sys::set_xattr(on, &name, &value, flags as i32)));
            }
            XattrOp::Remove => return Ok(op_reply(sys::remove_xattr(on, &name))),
            XattrOp::Get { value, size } => match sys::get_xattr(on, &name, size) {
                Ok((n, b)) => (n, b, value),
                Err(e) => return Ok(Reply::Error(e)),
            },
            XattrOp::List { list, size } => match sys::list_xattr(on, size) {
                Ok((n, b)) => (n, b, list),
                Err(e) => return Ok(Reply::Error(e)),
            },
        };
        if !bytes.is_empty() {
            self.write_all(call, to, &bytes)?;
        }
        Ok(Reply::Value(n))
    }

    /// file_ioctl, file_fcntl, file_lock: the caller's open file and the command, then the
    /// kernel runs the call (continued: another thread could swap the descriptor in between,
    /// see "What remains racy").
    pub(super) fn sys_file_cmd(
        &mut self,
        call: &mut Call,
        fd: i32,
        ty: EventType,
        cmd: u32,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let st = sys::fstat(f.as_fd())?;
        let flags = sys::status_flags(f.as_fd()).unwrap_or(0) as u32;
        let file = self.desc.file(f.as_fd(), Some(f.as_fd()), &st, flags);
        self.simple(call, ty, Cell::FileCmd { file, cmd })
    }

    /// fcntl: file_fcntl for every command; a record-lock command also passes file_lock with
    /// the lock's type (`security_file_lock(file, fl_type)`).
    pub(super) fn sys_fcntl(
        &mut self,
        call: &mut Call,
        fd: i32,
        cmd: i32,
        arg: u64,
    ) -> Result<Reply, Fail> {
        let mut fcntl_allowed = None;
        if self.shared.observe.fcntl {
            match self.sys_file_cmd(call, fd, EventType::FileFcntl, cmd as u32)? {
                Reply::Continue(c) => fcntl_allowed = Some(c),
                other => return Ok(other),
            }
        }
        let locks = [
            libc::F_SETLK,
            libc::F_SETLKW,
            libc::F_OFD_SETLK,
            libc::F_OFD_SETLKW,
        ];
        if self.shared.observe.lock && locks.contains(&cmd) {
            // struct flock starts with `short l_type`.
            let b = self.read_mem(call.tid, arg, 2)?;
            let l_type = i16::from_ne_bytes([b[0], b[1]]);
            return self.sys_file_cmd(call, fd, EventType::FileLock, l_type as u32);
        }
        Ok(match fcntl_allowed {
            Some(c) => Reply::Continue(c),
            None => self.no_event("fcntl without file_fcntl observed: only record locks are"),
        })
    }

    /// flock: file_lock with the lock type the kernel translates the operation to.
    pub(super) fn sys_flock(&mut self, call: &mut Call, fd: i32, op: i32) -> Result<Reply, Fail> {
        const LOCK_MAND: i32 = 32;
        let ty = match op & !libc::LOCK_NB {
            _ if op & LOCK_MAND != 0 => None,
            libc::LOCK_SH => Some(libc::F_RDLCK),
            libc::LOCK_EX => Some(libc::F_WRLCK),
            libc::LOCK_UN => Some(libc::F_UNLCK),
            _ => None,
        };
        match ty {
            Some(t) => self.sys_file_cmd(call, fd, EventType::FileLock, t as u32),
            None => {
                Ok(self.no_event("flock operation the kernel rejects or ignores before the hook"))
            }
        }
    }
}

/// The little-endian i64 at `b[i..i + 8]` (the caller's `time_t`, `long`).
fn le_i64(b: &[u8], i: usize) -> i64 {
    let mut q = [0u8; 8];
    q.copy_from_slice(&b[i..i + 8]);
    i64::from_le_bytes(q)
}
