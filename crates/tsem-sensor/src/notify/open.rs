//! Opens: `open`, `openat`, `creat`, `openat2`, performed by the supervisor and injected.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use tsem_core::event::{Cell, EventType};

use super::attr::{ATTR_FILE, ATTR_OPEN};
use super::decode::PathArg;
use super::{
    Call, Continuation, Fail, Notifier, Reply, SetAttr, Target, errno_of, is, lock, names,
};
use crate::event::{Counters, EventHandler};
use crate::sys::{self, Response};

/// The kernel's `O_LARGEFILE` (glibc defines it as 0 on 64-bit).
pub const KERNEL_O_LARGEFILE: u32 = 0o100000;
/// `__FMODE_EXEC`, set in `f_flags` of files opened for exec.
pub const FMODE_EXEC_FLAG: u32 = 0o40;
/// `f_flags` of an executable opened by `execve` (`O_LARGEFILE | O_RDONLY | __FMODE_EXEC`).
pub const EXEC_FLAGS: u32 = KERNEL_O_LARGEFILE | FMODE_EXEC_FLAG;

/// `f_flags` as the kernel holds them when `security_file_open` runs: `O_CLOEXEC` stripped,
/// `O_LARGEFILE` forced, `__O_SYNC` implying `O_DSYNC`.
pub fn open_f_flags(flags: u64) -> u32 {
    let mut f = (flags as u32) & !(libc::O_CLOEXEC as u32);
    f |= KERNEL_O_LARGEFILE;
    if f & (libc::O_SYNC as u32) != 0 {
        f |= libc::O_DSYNC as u32;
    }
    f
}

/// A descriptor, opened with `flags`, on the regular file `st` that the `O_PATH` probe `p`
/// (on mount `mnt_id`) holds.
///
/// A read-only open without `O_TRUNC` walks the probe's path `via` again, from the same
/// directory descriptor under the same `openat2` restrictions: cheaper than the magic link
/// `/proc/self/fd/N`, whose walk looks up and revalidates three procfs entries. The second walk
/// may meet another object than the probe did (the workload renames something in between), so
/// its result is kept only when it is the probe's device, inode and mount (a bind mount of the
/// same inode may be `noexec` or read-only); until that check it is open `O_NONBLOCK|O_NOCTTY`,
/// so a FIFO swapped in cannot block the supervisor, and a file whose lease must first be broken
/// (`EWOULDBLOCK`) is left to the magic link, which waits as the task's own open would. Anything
/// else is closed unread and the object reopened through the magic link. Opens that write or
/// truncate always take the magic link: they must not touch an object swapped in.
pub(super) fn open_probed(
    p: BorrowedFd<'_>,
    st: &libc::stat,
    mnt_id: Option<u64>,
    via: Option<&Target>,
    flags: u64,
) -> io::Result<OwnedFd> {
    let read_only = flags as i32 & (libc::O_ACCMODE | libc::O_TRUNC | libc::O_CREAT) == 0;
    if let (Some(t), Some(mnt), true) = (via, mnt_id, read_only) {
        let nb = (libc::O_NONBLOCK | libc::O_NOCTTY) as u64;
        if let Ok(fd) = sys::openat2(t.dir(), &t.path, flags | nb, 0, t.resolve)
            && sys::identity(fd.as_fd()).is_ok_and(|id| id == (st.st_dev, st.st_ino, mnt))
        {
            if flags as i32 & libc::O_NONBLOCK == 0 {
                // F_SETFL sets O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME and O_NONBLOCK; open
                // ignores O_ASYNC, so it must not be set here either.
                let keep = flags as i32 & !(libc::O_NONBLOCK | libc::O_ASYNC);
                sys::set_status_flags(fd.as_fd(), keep)?;
            }
            return Ok(fd);
        }
    }
    let link = CString::new(format!("/proc/self/fd/{}", p.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    sys::openat2(None, &link, flags, 0, 0)
}

/// An open's path that may be its own pathname (notify/names.rs).
#[derive(Debug, Clone, Copy)]
pub(super) struct Named {
    /// Of the names table, read before the probe.
    generation: u64,
    /// The probe walked it with `RESOLVE_NO_SYMLINKS`.
    proven: bool,
}

impl<H: EventHandler> Notifier<H> {
    pub(super) fn sys_openat2(
        &mut self,
        call: &mut Call,
        path: PathArg,
        how_addr: u64,
        size: u64,
    ) -> Result<Reply, Fail> {
        let size = size as usize;
        if size < 24 {
            return Err(Fail::Undecodable(libc::EINVAL));
        }
        if size > 4096 {
            return Err(Fail::Undecodable(libc::E2BIG));
        }
        let how = self.read_mem(call.tid, how_addr, size)?;
        if how[24..].iter().any(|b| *b != 0) {
            return Err(Fail::Undecodable(libc::E2BIG));
        }
        let word = |i: usize| {
            u64::from_le_bytes([
                how[i],
                how[i + 1],
                how[i + 2],
                how[i + 3],
                how[i + 4],
                how[i + 5],
                how[i + 6],
                how[i + 7],
            ])
        };
        self.sys_open(call, path, word(0), word(8), word(16))
    }

    pub(super) fn sys_open(
        &mut self,
        call: &mut Call,
        path: PathArg,
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> Result<Reply, Fail> {
        // Whatever descriptor this call hands back (reopened, created, a FIFO's or a
        // device's) is opened with these flags' access mode.
        call.open_flags = Some(flags);
        let dirfd = path.dirfd;
        let raw = self.read_cstr(call.tid, path.addr)?;
        if raw.is_empty() {
            return Err(Fail::Errno(libc::ENOENT));
        }
        let mut t = self.resolve(call, dirfd, &raw)?;
        t.resolve |= resolve;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        self.performs(call);
        let fl = flags as i32;
        let cloexec = fl & libc::O_CLOEXEC != 0;
        if fl & libc::O_PATH != 0 {
            // O_PATH opens never reach security_file_open: no event, and a handle that gives
            // no access (every use of it, a reopen through /proc/self/fd, an exec, an *at()
            // call from it, is a notified call of its own, described then). They are continued:
            // seccomp's ADDFD cannot hand over an O_PATH file (the kernel takes the source
            // with fget(), which refuses them), so performing them failed every O_PATH open
            // with EBADF (glibc's fchmodat(AT_SYMLINK_NOFOLLOW) among them). The path was
            // resolved above, so a path through the supervisor's /proc was refused; the
            // kernel reads it again, and a path swapped in meanwhile gets a handle only.
            const WHY: &str = "O_PATH opens reach no security_file_open";
            if let Some(r) = self.gate(call, Continuation::NoEvent(WHY)) {
                return Ok(r);
            }
            Counters::bump(&self.shared.counters.unmodeled);
            return Ok(Reply::Continue(Continuation::NoEvent(WHY)));
        }
        if fl & libc::O_TMPFILE == libc::O_TMPFILE {
            return self.open_tmpfile(call, &t, flags, mode, cloexec);
        }
        let creat = fl & libc::O_CREAT != 0;
        let excl = creat && fl & libc::O_EXCL != 0;
        let mut probe_flags =
            (libc::O_PATH as u64) | (flags & (libc::O_NOFOLLOW | libc::O_DIRECTORY) as u64);
        if excl {
            probe_flags |= libc::O_NOFOLLOW as u64;
        }
        // A path that may be its own pathname (notify/names.rs) and whether it was seen to be.
        let named = t.dir.is_none()
            && t.resolve & libc::RESOLVE_IN_ROOT == 0
            && names::canonical(t.path.to_bytes());
        let (mut nosym, generation) = if named {
            let n = lock(&self.shared.names);
            (n.has(t.path.to_bytes()), n.generation())
        } else {
            (false, 0)
        };
        for _ in 0..4 {
            let no_symlinks = if nosym { libc::RESOLVE_NO_SYMLINKS } else { 0 };
            match sys::openat2(t.dir(), &t.path, probe_flags, 0, t.resolve | no_symlinks) {
                Ok(p) => {
                    if excl {
                        return Err(Fail::Errno(libc::EEXIST));
                    }
                    let name = named.then_some(Named {
                        generation,
                        proven: nosym,
                    });
                    return self.reopen(call, p, flags, cloexec, Some(&t), name);
                }
                Err(e) if errno_of(&e) == libc::ELOOP && nosym => {
                    // A symlink stands in the path now: walk it as the task would.
                    lock(&self.shared.names).forget(t.path.to_bytes());
                    nosym = false;
                }
                Err(e) if errno_of(&e) == libc::ENOENT && creat => {
                    match self.create_file(call, dirfd, &raw, flags, mode, resolve)? {
                        Some(r) => return Ok(r),
                        // Someone created the entry after our probe: look again.
                        None => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Fail::Errno(libc::EAGAIN))
    }

    /// Open an existing object through the supervisor's O_PATH descriptor on it, which the
    /// path `via` led to (see [`open_probed`]); `name`: that path may be the pathname.
    pub(super) fn reopen(
        &mut self,
        call: &mut Call,
        p: OwnedFd,
        flags: u64,
        cloexec: bool,
        via: Option<&Target>,
        name: Option<Named>,
    ) -> Result<Reply, Fail> {
        let (st, mnt_id) = sys::fstat_mnt(p.as_fd())?;
        if is(&st, libc::S_IFLNK) {
            return Err(Fail::Errno(libc::ELOOP));
        }
        self.guard(self.shared.protected.object(&st))?;
        // The supervisor's own /proc/<pid> (its memory above all): refused in every mode,
        // after the event for regular files, so the attempt is recorded.
        if self.is_supervisor_proc(p.as_fd(), &st) {
            if is(&st, libc::S_IFREG) {
                // Nothing is read: files on proc have the zero digest.
                let file = self.desc.file(p.as_fd(), None, &st, open_f_flags(flags));
                let _ = self.ask(call, EventType::FileOpen, Cell::File(file));
            }
            return Ok(self.refuse());
        }
        if self.is_outside_pid_dir(p.as_fd(), &st) {
            return Ok(self.refuse());
        }
        if flags as i32 & libc::O_ACCMODE != libc::O_RDONLY || flags as i32 & libc::O_TRUNC != 0 {
            self.claim_write(&st)?;
        }
        let link = CString::new(format!("/proc/self/fd/{}", p.as_raw_fd()))
            .map_err(|_| Fail::Errno(libc::EINVAL))?;
        let strip = (libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
        let real_flags = (flags & !strip) | libc::O_NOCTTY as u64;
        if !is(&st, libc::S_IFREG)
            && let Some(r) = self.gate(
                call,
                Continuation::NoEvent("TSEM models opens of regular files only"),
            )
        {
            // No event (TSEM models opens of regular files only), but still not performed
            // with other credentials than the task's.
            return Ok(r);
        }
        if is(&st, libc::S_IFIFO) {
            // Opening a FIFO blocks until the other end shows up, which may be another
            // supervised task: do it on a helper thread and answer from there.
            return Ok(self.defer_fifo(call, p, real_flags, cloexec));
        }
        if !is(&st, libc::S_IFREG) {
            // TSEM models opens of regular files only.
            Counters::bump(&self.shared.counters.unmodeled);
            let fd = sys::openat2(None, &link, real_flags, 0, 0)?;
            return Ok(Reply::AddFd(fd, cloexec));
        }
        if self.shared.mechanism_only {
            // The emulation floor: performed as below, nothing described or modeled.
            if let Some(r) = self.floor_gate(call) {
                return Ok(r);
            }
            let fd = open_probed(p.as_fd(), &st, mnt_id, via, real_flags)?;
            return Ok(Reply::AddFd(fd, cloexec));
        }
        let acc = flags as i32 & libc::O_ACCMODE;
        let plain_read = acc == libc::O_RDONLY && flags as i32 & libc::O_TRUNC == 0;
        // Hash what the file holds when security_file_open runs, i.e. before any O_TRUNC.
        let reader = if plain_read {
            Some(open_probed(p.as_fd(), &st, mnt_id, via, real_flags)?)
        } else {
            // Only hashed, never handed over: read with the supervisor's own capabilities, as
            // the kernel reads the contents whatever the caller may read (a write-only file).
            let ro = libc::O_RDONLY as u64 | libc::O_NOCTTY as u64;
            sys::inspecting(|| sys::openat2(None, &link, ro, 0, 0)).ok()
        };
        let abs = self.pathname(p.as_fd(), &st, mnt_id, via, name);
        let f_flags = open_f_flags(flags);
        let file = self.desc.file_named(
            p.as_fd(),
            reader.as_ref().map(|r| r.as_fd()),
            &st,
            f_flags,
            f_flags & FMODE_EXEC_FLAG != 0,
            abs,
        );
        // Files on pseudo filesystems produce no mmap_file event: the mmap of one must take
        // the path that finds that out, whichever thread answers it first.
        if !crate::describe::PSEUDO_MAGICS.contains(&file.inode.s_magic)
            && let Some(mnt_id) = mnt_id
        {
            call.injected = Some((
                file.clone(),
                crate::digest_cache::DigestKey::of(&st),
                mnt_id,
            ));
        }
        let (v, allowed) = self.ask_token(call, EventType::FileOpen, Cell::File(file));
        let Some(allowed) = allowed else {
            return Ok(Reply::Error(v.errno));
        };
        if let Some(r) = self.gate(call, Continuation::Allowed(allowed)) {
            return Ok(r);
        }
        let fd = match reader {
            Some(r) if plain_read => r,
            _ => sys::openat2(None, &link, real_flags, 0, 0)?,
        };
        if flags as i32 & libc::O_TRUNC != 0 {
            // The kernel truncates after the open (handle_truncate → notify_change), which TSEM
            // sees as inode_setattr with ATTR_SIZE|ATTR_MTIME|ATTR_CTIME|ATTR_OPEN|ATTR_FILE.
            // The file is already open, so a denial can only fail the call now.
            let mut cell = self.setattr_cell(p.as_fd(), &st, &SetAttr::Size(0));
            if let Cell::InodeSetattr { valid, .. } = &mut cell {
                *valid |= ATTR_FILE | ATTR_OPEN;
            }
            let v = self.ask(call, EventType::InodeSetattr, cell);
            if let Some(r) = Self::verdict_reply(v) {
                return Ok(r);
            }
        }
        Ok(Reply::AddFd(fd, cloexec))
    }

    pub(super) fn defer_fifo(
        &mut self,
        call: &Call,
        p: OwnedFd,
        flags: u64,
        cloexec: bool,
    ) -> Reply {
        Counters::bump(&self.shared.counters.unmodeled);
        let Ok(nfd) = self.fd.try_clone() else {
            return Reply::Error(libc::ENOMEM);
        };
        let id = call.n.id;
        // The helper owns the O_PATH descriptor, so the magic link it opens keeps naming the
        // FIFO checked here (a closed number could be reused by an unrelated open).
        let spawned = std::thread::Builder::new()
            .name("tsem-fifo".into())
            .spawn(move || {
                let link = format!("/proc/self/fd/{}", p.as_raw_fd());
                let r = sys::open(&link, flags as i32 & !libc::O_CLOEXEC);
                match r {
                    Ok(fd) => {
                        if let Err(e) = sys::notif_addfd_send(nfd.as_fd(), id, fd.as_fd(), cloexec)
                            && e.raw_os_error() != Some(libc::ENOENT)
                        {
                            let _ = sys::notif_send(nfd.as_fd(), id, Response::Error(errno_of(&e)));
                        }
                    }
                    Err(e) => {
                        let _ = sys::notif_send(nfd.as_fd(), id, Response::Error(errno_of(&e)));
                    }
                }
            });
        match spawned {
            Ok(_) => Reply::Deferred,
            Err(_) => Reply::Error(libc::EAGAIN),
        }
    }

    /// Create a regular file for an `O_CREAT` open of a missing entry. `Ok(None)` when the entry
    /// appeared meanwhile.
    pub(super) fn create_file(
        &mut self,
        call: &mut Call,
        dirfd: i64,
        raw: &[u8],
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> Result<Option<Reply>, Fail> {
        let mut par = self.parent(call, dirfd, raw)?;
        let mut hops = 0;
        while let Some(e) = &par.entry {
            if !is(e, libc::S_IFLNK) {
                // A racing creator: look again.
                return Ok(None);
            }
            // A dangling symlink: O_CREAT follows it, and the supervisor does so itself on the
            // link it read, so the entry described is the one created (notify/links.rs).
            hops += 1;
            par = self.follow_dangling(call, &par, hops, resolve)?;
        }
        let m = (mode as u32) & !self.umask(call) & 0o7777;
        if self.shared.mechanism_only {
            return self.floor_create(call, &par, flags, m);
        }
        let created = self.desc.next_instance(&par.st, &call.task.ident.task_id);
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let dentry = self
            .desc
            .dentry(par.fd.as_fd(), &par.st, &par.abs, None, Some(created));
        let (v, allowed) = self.ask_token(
            call,
            EventType::InodeCreate,
            Cell::InodeCreate {
                dir,
                dentry,
                mode: libc::S_IFREG | m,
            },
        );
        let Some(allowed) = allowed else {
            return Ok(Some(Reply::Error(v.errno)));
        };
        if let Some(r) = self.gate(call, Continuation::Allowed(allowed)) {
            return Ok(Some(r));
        }
        let cf = (flags | (libc::O_CREAT | libc::O_EXCL) as u64) & !(libc::O_CLOEXEC as u64);
        let fd = match sys::openat2(Some(par.fd.as_fd()), &par.base_op, cf, u64::from(m), 0) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == libc::EEXIST => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let st = sys::fstat(fd.as_fd())?;
        self.desc.mark_created(&st, created);
        self.claim_write(&st)?;
        let file = self.desc.file(fd.as_fd(), None, &st, open_f_flags(flags));
        let v = self.ask(call, EventType::FileOpen, Cell::File(file));
        if let Some(r) = Self::verdict_reply(v) {
            return Ok(Some(r));
        }
        Ok(Some(Reply::AddFd(fd, flags as i32 & libc::O_CLOEXEC != 0)))
    }

    /// The absolute path of the object the probe `p` holds (on mount `mnt_id`), found by the
    /// path `via`: that path itself when `name` says it was walked without symlinks and the
    /// names table knows it for this very object, else `readlink`, recorded for next time
    /// (notify/names.rs).
    fn pathname(
        &self,
        p: BorrowedFd<'_>,
        st: &libc::stat,
        mnt_id: Option<u64>,
        via: Option<&Target>,
        name: Option<Named>,
    ) -> Vec<u8> {
        let (Some(t), Some(n), Some(mnt)) = (via, name, mnt_id) else {
            return self.desc.fd_path(p);
        };
        let path = t.path.to_bytes();
        let id = (st.st_dev, st.st_ino, mnt);
        if n.proven && lock(&self.shared.names).names(path, id) {
            return path.to_vec();
        }
        let abs = self.desc.fd_path(p);
        lock(&self.shared.names).record(n.generation, path, &abs, id);
        abs
    }

    /// The emulation floor's create (`--mechanism-only=emulate`): performed as
    /// [`Self::create_file`] does, with nothing described or modeled.
    fn floor_create(
        &mut self,
        call: &Call,
        par: &super::Parent,
        flags: u64,
        m: u32,
    ) -> Result<Option<Reply>, Fail> {
        if let Some(r) = self.floor_gate(call) {
            return Ok(Some(r));
        }
        let cf = (flags | (libc::O_CREAT | libc::O_EXCL) as u64) & !(libc::O_CLOEXEC as u64);
        let fd = match sys::openat2(Some(par.fd.as_fd()), &par.base_op, cf, u64::from(m), 0) {
            Ok(fd) => fd,
            Err(e) if errno_of(&e) == libc::EEXIST => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.claim_write(&sys::fstat(fd.as_fd())?)?;
        Ok(Some(Reply::AddFd(fd, flags as i32 & libc::O_CLOEXEC != 0)))
    }

    /// In the emulation floor, a call the supervisor may not perform with its own credentials
    /// is continued, as the interception floor continues every call: nothing is modeled there
    /// (`--mechanism-only` refuses any model), so there is no verdict to keep.
    pub(super) fn floor_gate(&self, call: &Call) -> Option<Reply> {
        call.unfaithful
            .then_some(Reply::Continue(Continuation::NoEvent(
                "mechanism-only: nothing is modeled",
            )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The reopen by path keeps only the probe's object: with a FIFO swapped in for the file
    /// between the probe and the reopen it neither blocks (no writer ever comes) nor hands the
    /// FIFO over, but reopens the probed file through the magic link; unswapped, the path's
    /// open is kept, without the O_NONBLOCK it was made with.
    #[test]
    fn a_fifo_swapped_in_after_the_probe_is_neither_waited_for_nor_returned() {
        use std::io::Read as _;
        let dir = std::env::temp_dir().join(format!("tsem-probed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, b"probed bytes").unwrap();
        let path = CString::new(f.to_str().unwrap()).unwrap();
        let probe = || {
            let p = sys::openat2(None, &path, libc::O_PATH as u64, 0, 0).unwrap();
            let st = sys::fstat(p.as_fd()).unwrap();
            let mnt = sys::mount_id(p.as_fd()).unwrap();
            (p, st, mnt)
        };
        let t = Target {
            dir: None,
            path: path.clone(),
            resolve: libc::RESOLVE_NO_MAGICLINKS,
        };
        let read_all = |fd: OwnedFd| {
            let mut s = String::new();
            std::fs::File::from(fd).read_to_string(&mut s).unwrap();
            s
        };
        // Unswapped: the path's open, blocking as asked.
        let (p, st, mnt) = probe();
        let fd = open_probed(p.as_fd(), &st, Some(mnt), Some(&t), libc::O_RDONLY as u64).unwrap();
        assert_eq!(sys::status_flags(fd.as_fd()).unwrap() & libc::O_NONBLOCK, 0);
        assert_eq!(sys::fstat(fd.as_fd()).unwrap().st_ino, st.st_ino);
        assert_eq!(read_all(fd), "probed bytes");
        // Swapped: the file renamed away, a FIFO in its place.
        let (p, st, mnt) = probe();
        std::fs::rename(&f, dir.join("moved")).unwrap();
        // (coreutils' mkfifo: this crate allows unsafe code in `sys` only.)
        let made = std::process::Command::new("mkfifo")
            .arg(&f)
            .status()
            .unwrap();
        assert!(made.success());
        let fd = open_probed(p.as_fd(), &st, Some(mnt), Some(&t), libc::O_RDONLY as u64).unwrap();
        let got = sys::fstat(fd.as_fd()).unwrap();
        assert_eq!(
            (got.st_mode & libc::S_IFMT, got.st_ino),
            (libc::S_IFREG, st.st_ino)
        );
        assert_eq!(read_all(fd), "probed bytes");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The one `statx` of the open path says what `fstat` and `STATX_MNT_ID` say, field by
    /// field, for a regular file, a directory and a device.
    #[test]
    fn one_statx_is_fstat_and_the_mount_id() {
        for path in [c"/etc/hostname", c"/", c"/dev/null"] {
            let fd = sys::openat2(None, path, libc::O_PATH as u64, 0, 0).unwrap();
            let (a, mnt) = sys::fstat_mnt(fd.as_fd()).unwrap();
            let b = sys::fstat(fd.as_fd()).unwrap();
            assert_eq!(mnt, sys::mount_id(fd.as_fd()).ok(), "{path:?}");
            assert_eq!(sys::stat_bytes(&a), sys::stat_bytes(&b), "{path:?}");
        }
    }

    #[test]
    fn f_flags_as_kernel() {
        assert_eq!(
            open_f_flags((libc::O_RDONLY | libc::O_CLOEXEC) as u64),
            32768
        );
        assert_eq!(
            open_f_flags((libc::O_RDONLY | libc::O_NOCTTY) as u64),
            33024
        );
        assert_eq!(EXEC_FLAGS, 32800);
    }
}
