//! Files and paths: opens, stats, links, the path operations performed for the workload.

use std::ffi::CStr;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{cstr, cvt, cvt_fd};

/// `FS_IOC_GETFSUUID` = `_IOR(0x15, 0, struct fsuuid2)` (Linux 6.5), where `fsuuid2` is
/// `{ u8 len; u8 uuid[16]; }` (17 bytes).
const FS_IOC_GETFSUUID: libc::c_ulong = (2 << 30) | (17 << 16) | (0x15 << 8);

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

/// `fstat` and the mount id (`STATX_MNT_ID`; None where the kernel gives none) of `fd` from one
/// `statx`, for the hot path of opens. The same `vfs_getattr` fills both calls' fields.
pub fn fstat_mnt(fd: BorrowedFd<'_>) -> io::Result<(libc::stat, Option<u64>)> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `sx` is writable and the path is a NUL-terminated empty string.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
            &mut sx,
        )
    } as libc::c_long)?;
    if sx.stx_mask & libc::STATX_BASIC_STATS != libc::STATX_BASIC_STATS {
        // A filesystem that leaves some field out: what fstat says of it.
        return Ok((fstat(fd)?, mount_id(fd).ok()));
    }
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_dev = libc::makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st.st_ino = sx.stx_ino;
    st.st_nlink = u64::from(sx.stx_nlink);
    st.st_mode = u32::from(sx.stx_mode);
    st.st_uid = sx.stx_uid;
    st.st_gid = sx.stx_gid;
    st.st_rdev = libc::makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st.st_size = sx.stx_size as i64;
    st.st_blksize = i64::from(sx.stx_blksize);
    st.st_blocks = sx.stx_blocks as i64;
    st.st_atime = sx.stx_atime.tv_sec;
    st.st_atime_nsec = i64::from(sx.stx_atime.tv_nsec);
    st.st_mtime = sx.stx_mtime.tv_sec;
    st.st_mtime_nsec = i64::from(sx.stx_mtime.tv_nsec);
    st.st_ctime = sx.stx_ctime.tv_sec;
    st.st_ctime_nsec = i64::from(sx.stx_ctime.tv_nsec);
    let mnt = (sx.stx_mask & libc::STATX_MNT_ID != 0).then_some(sx.stx_mnt_id);
    Ok((st, mnt))
}

/// (device, inode, mount id) of the object behind `fd`, from one `statx`: what tells a second
/// open of a path from the object a first one found.
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64, u64)> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `sx` is writable and the path is a NUL-terminated empty string.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut sx,
        )
    } as libc::c_long)?;
    let want = libc::STATX_INO | libc::STATX_MNT_ID;
    if sx.stx_mask & want != want {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    let dev = libc::makedev(sx.stx_dev_major, sx.stx_dev_minor);
    Ok((dev, sx.stx_ino, sx.stx_mnt_id))
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
    // On the stack, and only what the link holds is copied out: a zeroed page from the heap
    // for every description was a calloc and a memset per event.
    let mut buf = [MaybeUninit::<u8>::uninit(); libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for its length; readlink never NUL-terminates.
    let r = unsafe { libc::readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote the first `r` bytes (r <= buf.len()).
    let text = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), r as usize) };
    Ok(text.to_vec())
}

/// `fcntl(F_GETFL)` / `fcntl(F_SETFL)`.
pub fn set_status_flags(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) } as libc::c_long)?;
    Ok(())
}

/// The result of a path operation performed on behalf of the target: `Err(errno)` on failure.
pub type OpResult = Result<i64, i32>;

pub(super) fn op(r: libc::c_long) -> OpResult {
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
    // SAFETY: (all arms) every pointer is a NUL-terminated CStr or a valid local array; the
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

/// `fcntl(F_GETFL)`.
pub fn status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    Ok(cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) } as libc::c_long)? as i32)
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
