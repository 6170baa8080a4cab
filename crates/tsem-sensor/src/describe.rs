//! Describing objects the way the TSEM kernel does (spec §1.4, §1.5, §3.4), from descriptors the
//! supervisor holds on the very objects the workload uses.
//!
//! * `Inode`: `fstat` of the object (uid, gid, mode), `fstatfs` (s_magic), and per device the
//!   superblock id (`s_id`: the block device name from `/sys/dev/block/M:m/uevent`, otherwise the
//!   filesystem type name) and UUID (`FS_IOC_GETFSUUID` on the mount's root directory).
//! * `PathRef`: `readlink("/proc/self/fd/N")` gives the absolute path of the object actually opened
//!   (TSEM's `d_absolute_path`; an open may pass what provably equals it instead, see
//!   `notify/names.rs`), with the device when the filesystem has a block device or can
//!   rename; on the other pseudo filesystems the kernel prints the path inside the filesystem
//!   (`dentry_path_raw`), taken from `/proc/self/mountinfo`.
//! * file digests: the whole contents, read through the supervisor's descriptor, cached per
//!   (device, inode, ctime, mtime, size); `zero_digest` for pseudo filesystems, non-regular files,
//!   empty files and files created inside the namespace.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};

use tsem_core::event::{Created, Dentry, FileDesc, Inode, PathRef};
use tsem_core::{Digest, HashAlg, Hasher};

use crate::procfs::{self, Mount};
use crate::sys;
use crate::view::View;

/// `PROC_SUPER_MAGIC`.
pub const PROC_MAGIC: u32 = 0x9fa0;

/// Superblock magics TSEM treats as pseudo filesystems (spec §1.3): file digests are zero.
pub const PSEUDO_MAGICS: &[u32] = &[
    PROC_MAGIC,
    0x6265_6572, // SYSFS
    0x6462_6720, // DEBUGFS
    0x0102_1994, // TMPFS
    0x1cd1,      // DEVPTS
    0x4249_4e4d, // BINFMTFS
    0x7363_6673, // SECURITYFS
    0xf97c_ff8c, // SELINUX
    0x4341_5d53, // SMACK
    0x0027_e0eb, // CGROUP
    0x6367_7270, // CGROUP2
    0x6e73_6673, // NSFS
    0xde5e_81e4, // EFIVARFS
];

/// Filesystems without a block device whose root inode has no `rename` operation: TSEM prints
/// their paths relative to the filesystem root and without a device.
const NO_RENAME_MAGICS: &[u32] = &[
    PROC_MAGIC,
    0x1cd1,      // DEVPTS
    0x7363_6673, // SECURITYFS
    0x6462_6720, // DEBUGFS
    0x4249_4e4d, // BINFMTFS
    0x6e73_6673, // NSFS
    0x7472_6163, // TRACEFS
    0x1980_0202, // MQUEUE
];

/// `major()` of a Linux `dev_t`.
pub fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

/// `minor()` of a Linux `dev_t`.
pub fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

#[derive(Debug, Clone)]
struct FsInfo {
    magic: u32,
    s_id: String,
    uuid: [u8; 16],
}

pub use crate::digest_cache::{DigestCache, DigestKey};

/// Statistics of the describer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescribeStats {
    /// File digests computed by reading the file.
    pub digests_computed: u64,
    /// File digests served from the cache.
    pub digest_cache_hits: u64,
    /// Files that could not be read for hashing (digest reported as all-ones).
    pub digest_failures: u64,
    /// Filesystems this describer read the facts of (magic, name, UUID) itself, none of the
    /// run's other describers having read them before.
    pub filesystems_read: u64,
}

/// A file created by the workload inside its namespace (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedFile {
    /// TASK_ID of the creator.
    pub owner: Digest,
    /// Per (directory, creator) instance number, from 1.
    pub instance: u64,
}

/// What the workload created, which every supervisor thread must see alike: a file created
/// through one thread may be opened or executed through another.
#[derive(Debug, Default)]
pub struct Objects {
    created: HashMap<(u64, u64), CreatedFile>,
    instances: HashMap<(u64, u64, Vec<u8>), u64>,
    sock_owners: HashMap<(u64, u64), Digest>,
    /// Inodes the workload opened for writing, mapped shared-writable or received writable
    /// during the run. A store through an already-dirty shared mapping changes the contents
    /// without moving ctime or mtime, so their digests are never cached nor persisted.
    written: std::collections::HashSet<(u64, u64)>,
    /// Inodes the workload mapped executable with `mmap` during the run.
    exec_mapped: std::collections::HashSet<(u64, u64)>,
    /// Filesystem facts by device, and the latest mount table read, in the run's view: the
    /// same for every describer, so the first to need them reads them for all (each read is
    /// a `/proc` mount table, a `/sys` file, a `statfs` and a directory opened for its UUID;
    /// a container's first commands would otherwise pay them once per supervisor thread).
    /// They are cached exactly as a describer caches them for itself.
    fs: HashMap<u64, FsInfo>,
    mounts: Arc<Vec<Mount>>,
}

impl Objects {
    /// Whether the inode (dev, ino) was opened for writing during the run.
    pub fn is_written(&self, id: (u64, u64)) -> bool {
        self.written.contains(&id)
    }

    /// Whether the inode (dev, ino) was mapped executable during the run.
    pub fn is_exec_mapped(&self, id: (u64, u64)) -> bool {
        self.exec_mapped.contains(&id)
    }
}

/// [`Objects`] shared by the describers of one run.
pub type SharedObjects = Arc<Mutex<Objects>>;

/// Builds TSEM object descriptions; one per supervisor thread (it caches filesystem facts; the
/// digests and the workload's objects are shared).
pub struct Describer {
    alg: HashAlg,
    fs: HashMap<u64, FsInfo>,
    mounts: Arc<Vec<Mount>>,
    digests: DigestCache,
    objects: SharedObjects,
    stats: DescribeStats,
    /// Hash tmpfs/memfd contents that are executed or mapped executable (tsem's extension to
    /// the pseudo-filesystem rule; off = kernel-exact zero digests).
    measure_exec: bool,
    /// Where pathnames are named from (a container's root for tsem-runtime).
    view: View,
}

/// `TMPFS_MAGIC` (also memfd and `/dev/shm`).
pub const TMPFS_MAGIC: u32 = 0x0102_1994;

impl Describer {
    /// A describer hashing with `alg`, with its own digest cache.
    pub fn new(alg: HashAlg) -> Self {
        Self::with_cache(alg, DigestCache::default())
    }

    /// A describer hashing with `alg` and sharing `digests` with other describers.
    pub fn with_cache(alg: HashAlg, digests: DigestCache) -> Self {
        Self::sharing(alg, digests, SharedObjects::default())
    }

    /// A describer sharing `digests` and the workload's `objects` with other describers.
    pub fn sharing(alg: HashAlg, digests: DigestCache, objects: SharedObjects) -> Self {
        Self {
            alg,
            fs: HashMap::new(),
            mounts: Arc::default(),
            digests,
            objects,
            stats: DescribeStats::default(),
            measure_exec: true,
            view: View::host(),
        }
    }

    /// Name paths in `view` from now on (crate::view).
    pub fn set_view(&mut self, view: View) {
        self.view = view;
        self.mounts = Arc::default();
        self.fs.clear();
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Hash (on) or zero (off, kernel-exact) the contents of tmpfs and memfd files executed or
    /// mapped executable.
    pub fn set_measure_exec(&mut self, on: bool) {
        self.measure_exec = on;
    }

    /// Record that the workload may write the inode `st` (see [`Objects`]); true if it was
    /// mapped executable during the run. One lock for both, so of a racing write-open and
    /// executable mapping of the same inode at least one sees the other.
    pub fn mark_written(&mut self, st: &libc::stat) -> bool {
        let id = (st.st_dev, st.st_ino);
        let mut o = self.objects();
        o.written.insert(id);
        o.exec_mapped.contains(&id)
    }

    /// Record that the workload maps the inode `st` executable; true if it was opened for
    /// writing during the run (see [`Describer::mark_written`]).
    pub fn mark_exec_mapped(&mut self, st: &libc::stat) -> bool {
        let id = (st.st_dev, st.st_ino);
        let mut o = self.objects();
        o.exec_mapped.insert(id);
        o.written.contains(&id)
    }

    /// Whether the workload may have written the inode `st` during the run.
    pub fn is_written(&self, st: &libc::stat) -> bool {
        self.objects().is_written((st.st_dev, st.st_ino))
    }

    /// Whether the workload mapped the inode `st` executable during the run.
    pub fn is_exec_mapped(&self, st: &libc::stat) -> bool {
        self.objects().is_exec_mapped((st.st_dev, st.st_ino))
    }

    /// Whether the digest of the file `st` is known, so describing it needs no readable
    /// descriptor (the supervisor then skips reopening it).
    pub fn knows_digest(&self, st: &libc::stat) -> bool {
        !self.is_written(st)
            && self
                .digests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&DigestKey::of(st))
    }

    /// A readable descriptor for the object behind the `O_PATH` descriptor `p`, when its
    /// digest must be computed.
    pub fn reader_for(&self, p: BorrowedFd<'_>, st: &libc::stat) -> Option<std::os::fd::OwnedFd> {
        if self.knows_digest(st) {
            return None;
        }
        sys::open(&format!("/proc/self/fd/{}", p.as_raw_fd()), libc::O_RDONLY).ok()
    }

    /// Counters.
    pub fn stats(&self) -> DescribeStats {
        self.stats
    }

    /// Re-read the mount table (after the workload mounted or unmounted something).
    pub fn reload_mounts(&mut self) {
        if let Some(m) = self.view.mounts() {
            self.mounts = Arc::new(m);
            self.objects().mounts = Arc::clone(&self.mounts);
        }
    }

    fn mount(&mut self, dev: u64, path: &[u8]) -> Option<Mount> {
        let (ma, mi) = (major(dev), minor(dev));
        if procfs::mount_for(&self.mounts, ma, mi, path).is_none() {
            // The table another describer read last may have it; else read the table now
            // (the workload may have mounted something since).
            let latest = Arc::clone(&self.objects().mounts);
            if procfs::mount_for(&latest, ma, mi, path).is_some() {
                self.mounts = latest;
            } else {
                self.reload_mounts();
            }
        }
        procfs::mount_for(&self.mounts, ma, mi, path).cloned()
    }

    fn fs_info(&mut self, fd: BorrowedFd<'_>, dev: u64, path: &[u8]) -> FsInfo {
        if let Some(f) = self.fs.get(&dev) {
            return f.clone();
        }
        let known = self.objects().fs.get(&dev).cloned();
        if let Some(f) = known {
            self.fs.insert(dev, f.clone());
            return f;
        }
        self.stats.filesystems_read += 1;
        let magic = sys::fstatfs(fd).map(|s| s.f_type as u32).unwrap_or(0);
        let m = self.mount(dev, path);
        let (ma, mi) = (major(dev), minor(dev));
        let block = std::fs::read_to_string(format!("/sys/dev/block/{ma}:{mi}/uevent"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
            });
        let s_id = block.unwrap_or_else(|| {
            m.as_ref()
                .map(|m| m.fstype.split('.').next().unwrap_or("").to_string())
                .unwrap_or_default()
        });
        let uuid = m
            .as_ref()
            .and_then(|m| self.view.open_dir(&m.mount_point))
            .and_then(|d| sys::fs_uuid(d.as_fd()))
            .unwrap_or([0; 16]);
        let info = FsInfo { magic, s_id, uuid };
        self.fs.insert(dev, info.clone());
        self.objects().fs.insert(dev, info.clone());
        info
    }

    /// The absolute path of the object `fd` refers to, in this describer's view (`readlink`
    /// of the supervisor's descriptor, below a container's root for a container): the bytes the
    /// kernel holds, UTF-8 or not (TSEM hashes those very bytes).
    pub fn fd_path(&self, fd: BorrowedFd<'_>) -> Vec<u8> {
        self.view
            .name(sys::readlink(&format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default())
    }

    /// The superblock magic of the filesystem holding `fd`.
    pub fn magic(&mut self, fd: BorrowedFd<'_>, st: &libc::stat) -> u32 {
        if let Some(f) = self.fs.get(&st.st_dev) {
            return f.magic;
        }
        let path = self.fd_path(fd);
        self.fs_info(fd, st.st_dev, &path).magic
    }

    /// INODE of the object behind `fd` (whose `fstat` is `st`).
    pub fn inode(&mut self, fd: BorrowedFd<'_>, st: &libc::stat, path: &[u8]) -> Inode {
        let f = self.fs_info(fd, st.st_dev, path);
        Inode {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
            s_magic: f.magic,
            s_id: f.s_id.into(),
            s_uuid: f.uuid,
        }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        // Poisoning only means another thread panicked mid-update; the maps stay usable.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The created-file record of an inode, if the workload created it.
    pub fn created(&self, st: &libc::stat) -> Option<CreatedFile> {
        self.objects().created.get(&(st.st_dev, st.st_ino)).copied()
    }

    /// Assign the next instance for a file the task `owner` creates in directory `dir`.
    pub fn next_instance(&mut self, dir: &libc::stat, owner: &Digest) -> CreatedFile {
        let mut o = self.objects();
        let n = o
            .instances
            .entry((dir.st_dev, dir.st_ino, owner.as_bytes().to_vec()))
            .or_insert(0);
        *n += 1;
        CreatedFile {
            owner: *owner,
            instance: *n,
        }
    }

    /// Record that the inode `st` was created by the workload.
    pub fn mark_created(&mut self, st: &libc::stat, c: CreatedFile) {
        self.objects().created.insert((st.st_dev, st.st_ino), c);
    }

    /// Record the TASK_ID that created the socket `st` (TSEM's socket_post_create).
    pub fn set_sock_owner(&mut self, st: &libc::stat, owner: Digest) {
        self.objects()
            .sock_owners
            .insert((st.st_dev, st.st_ino), owner);
    }

    /// The TASK_ID that created the socket `st`, if the sensor saw it being created.
    pub fn sock_owner(&self, st: &libc::stat) -> Option<Digest> {
        self.objects()
            .sock_owners
            .get(&(st.st_dev, st.st_ino))
            .copied()
    }

    /// Forget a removed inode (its number may be reused).
    pub fn forget(&mut self, st: &libc::stat) {
        if st.st_nlink <= 1 {
            self.objects().created.remove(&(st.st_dev, st.st_ino));
        }
    }

    /// PATH of an object opened by the workload (file events).
    pub fn path(
        &mut self,
        fd: BorrowedFd<'_>,
        st: &libc::stat,
        abs: &[u8],
        created: Option<CreatedFile>,
    ) -> PathRef {
        let f = self.fs_info(fd, st.st_dev, abs);
        let block = major(st.st_dev) != 0;
        let (dev, pathname) = if block || !NO_RENAME_MAGICS.contains(&f.magic) {
            (Some((major(st.st_dev), minor(st.st_dev))), abs.to_vec())
        } else {
            let m = self.mount(st.st_dev, abs);
            (
                None,
                m.map_or_else(|| abs.to_vec(), |m| procfs::dentry_path(&m, abs)),
            )
        };
        PathRef {
            dev,
            created: created.map(|c| Created {
                owner: c.owner,
                instance: c.instance,
            }),
            path_type: Some("root".into()),
            pathname: pathname.into(),
        }
    }

    /// DENTRY of the object behind `fd` itself (whose `fstat` is `st`), as the inode hooks on
    /// an existing object (setattr, getattr, xattr) describe it.
    pub fn object_dentry(&mut self, fd: BorrowedFd<'_>, st: &libc::stat) -> Dentry {
        let abs = self.fd_path(fd);
        let created = self.created(st);
        self.dentry(fd, st, &abs, Some(st), created)
    }

    /// DENTRY of `abs` on device `dev` (the device of its parent directory), with the inode when
    /// the entry exists. Dentry paths are relative to the filesystem root (`dentry_path_raw`).
    pub fn dentry(
        &mut self,
        dirfd: BorrowedFd<'_>,
        dir: &libc::stat,
        abs: &[u8],
        entry: Option<&libc::stat>,
        created: Option<CreatedFile>,
    ) -> Dentry {
        let inode = entry.map(|st| {
            let f = self.fs_info(dirfd, dir.st_dev, abs);
            Inode {
                uid: st.st_uid,
                gid: st.st_gid,
                mode: st.st_mode,
                s_magic: f.magic,
                s_id: f.s_id.into(),
                s_uuid: f.uuid,
            }
        });
        let m = self.mount(dir.st_dev, abs);
        let pathname = m.map_or_else(|| abs.to_vec(), |m| procfs::dentry_path(&m, abs));
        let dev = (dir.st_dev != 0).then(|| (major(dir.st_dev), minor(dir.st_dev)));
        Dentry {
            inode,
            path: PathRef {
                dev,
                created: created.map(|c| Created {
                    owner: c.owner,
                    instance: c.instance,
                }),
                // Printed in post-v4 JSON, never hashed for dentries (spec §12).
                path_type: Some("root".into()),
                pathname: pathname.into(),
            },
        }
    }

    /// The CELL digest of a file: `zero_digest` where TSEM uses it, otherwise the contents hash,
    /// read through `read_fd` (a readable descriptor on the same inode).
    pub fn digest(
        &mut self,
        read_fd: Option<BorrowedFd<'_>>,
        st: &libc::stat,
        magic: u32,
        created: bool,
    ) -> Digest {
        self.digest_of(read_fd, st, magic, created, false)
    }

    /// [`Describer::digest`]; `exec`: the contents are executed or mapped executable, so tmpfs
    /// and memfd files are hashed too when [`Describer::set_measure_exec`] is on.
    pub fn digest_of(
        &mut self,
        read_fd: Option<BorrowedFd<'_>>,
        st: &libc::stat,
        magic: u32,
        created: bool,
        exec: bool,
    ) -> Digest {
        let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
        let measured_pseudo = exec && self.measure_exec && magic == TMPFS_MAGIC;
        if created
            || !regular
            || st.st_size == 0
            || (PSEUDO_MAGICS.contains(&magic) && !measured_pseudo)
        {
            return self.alg.zero_digest();
        }
        let key = DigestKey::of(st);
        // A written inode may have changed without its key moving: always hash it afresh.
        let written = self.is_written(st);
        let cached = (!written)
            .then(|| {
                self.digests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
            })
            .flatten();
        if let Some(d) = cached {
            self.stats.digest_cache_hits += 1;
            return d;
        }
        let Some(fd) = read_fd else {
            self.stats.digest_failures += 1;
            return Digest::ones(self.alg.size());
        };
        match hash_fd(self.alg, fd, st.st_size as u64) {
            Ok(d) => {
                self.stats.digests_computed += 1;
                // Hashed outside the lock: a large executable must not stall the other thread.
                if !written {
                    self.digests
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, d);
                }
                d
            }
            Err(_) => {
                self.stats.digest_failures += 1;
                Digest::ones(self.alg.size())
            }
        }
    }

    /// FILE of an object the workload opens, maps or executes.
    pub fn file(
        &mut self,
        fd: BorrowedFd<'_>,
        read_fd: Option<BorrowedFd<'_>>,
        st: &libc::stat,
        flags: u32,
    ) -> FileDesc {
        let exec = flags & crate::notify::FMODE_EXEC_FLAG != 0;
        self.file_as(fd, read_fd, st, flags, exec)
    }

    /// [`Describer::file`] of contents about to run (`exec`: executed or mapped executable),
    /// see [`Describer::digest_of`].
    pub fn file_as(
        &mut self,
        fd: BorrowedFd<'_>,
        read_fd: Option<BorrowedFd<'_>>,
        st: &libc::stat,
        flags: u32,
        exec: bool,
    ) -> FileDesc {
        let abs = self.fd_path(fd);
        self.file_named(fd, read_fd, st, flags, exec, abs)
    }

    /// [`Describer::file_as`] of the object whose absolute path (`readlink` of `fd`, or what
    /// provably equals it) is `abs`.
    pub fn file_named(
        &mut self,
        fd: BorrowedFd<'_>,
        read_fd: Option<BorrowedFd<'_>>,
        st: &libc::stat,
        flags: u32,
        exec: bool,
        abs: Vec<u8>,
    ) -> FileDesc {
        let created = self.created(st);
        let inode = self.inode(fd, st, &abs);
        let digest = self.digest_of(read_fd, st, inode.s_magic, created.is_some(), exec);
        let path = self.path(fd, st, &abs, created);
        FileDesc {
            flags,
            inode,
            path,
            digest,
        }
    }
}

/// Hash the first `size` bytes of `fd` (TSEM reads up to `i_size`).
pub fn hash_fd(alg: HashAlg, fd: BorrowedFd<'_>, size: u64) -> std::io::Result<Digest> {
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 1 << 16];
    let mut off = 0u64;
    while off < size {
        let want = ((size - off) as usize).min(buf.len());
        let n = sys::pread(fd, &mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(h.finalize())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A file holding `contents` in a fresh directory `tag`-pid: (directory, path, open file,
    /// its stat).
    fn one_file(
        tag: &str,
        contents: &[u8],
    ) -> (
        std::path::PathBuf,
        std::path::PathBuf,
        std::fs::File,
        libc::stat,
    ) {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, contents).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let st = sys::fstat(f.as_fd()).unwrap();
        (dir, p, f, st)
    }

    #[test]
    fn dev_split_matches_libc() {
        for (ma, mi) in [
            (8u32, 3u32),
            (0, 27),
            (254, 0),
            (259, 65537),
            (4095, 1_048_575),
        ] {
            let d = libc::makedev(ma, mi);
            assert_eq!((major(d), minor(d)), (ma, mi));
        }
    }

    #[test]
    fn digest_cache_shared_and_stale_after_a_change() {
        let (dir, p, f, st) = one_file("tsem-dcache", b"one");
        let cache = DigestCache::default();
        let mut d = Describer::with_cache(HashAlg::Sha256, Arc::clone(&cache));
        let a = d.digest(Some(f.as_fd()), &st, 0xef53, false);
        let mut d2 = Describer::with_cache(HashAlg::Sha256, Arc::clone(&cache));
        assert_eq!(d2.digest(Some(f.as_fd()), &st, 0xef53, false), a);
        assert_eq!(d2.stats().digest_cache_hits, 1);
        // New contents: the entry no longer matches and the file is hashed again.
        std::fs::write(&p, b"two!").unwrap();
        let st2 = sys::fstat(f.as_fd()).unwrap();
        assert_eq!(
            d2.digest(Some(f.as_fd()), &st2, 0xef53, false),
            HashAlg::Sha256.digest(b"two!")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn filesystem_facts_are_read_once_for_the_describers_of_a_run() {
        let (dir, p, f, st) = one_file("tsem-fsfacts", b"one");
        let path = p.to_str().unwrap().as_bytes().to_vec();
        let objects = SharedObjects::default();
        let describer = |objects: &SharedObjects| {
            Describer::sharing(HashAlg::Sha256, DigestCache::default(), Arc::clone(objects))
        };
        let (mut d1, mut d2) = (describer(&objects), describer(&objects));
        let a = d1.inode(f.as_fd(), &st, &path);
        assert_eq!(d1.stats().filesystems_read, 1);
        assert_eq!(
            format!("{:?}", d2.inode(f.as_fd(), &st, &path)),
            format!("{a:?}")
        );
        assert_eq!(
            d2.stats().filesystems_read,
            0,
            "read again by a describer of the run"
        );
        // Another run's describer reads them itself, and finds the same.
        let mut d3 = describer(&SharedObjects::default());
        assert_eq!(
            format!("{:?}", d3.inode(f.as_fd(), &st, &path)),
            format!("{a:?}")
        );
        assert_eq!(d3.stats().filesystems_read, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn written_inodes_are_never_cached_and_exec_tmpfs_is_measured() {
        let (dir, _, f, st) = one_file("tsem-written", b"one");
        let cache = DigestCache::default();
        let mut d = Describer::with_cache(HashAlg::Sha256, Arc::clone(&cache));
        assert!(!d.mark_written(&st));
        assert!(d.mark_exec_mapped(&st), "mapping a written inode is seen");
        assert_eq!(
            d.digest(Some(f.as_fd()), &st, 0xef53, false),
            HashAlg::Sha256.digest(b"one")
        );
        assert!(
            cache.lock().unwrap().is_empty(),
            "a written inode is not cached"
        );
        assert!(!d.knows_digest(&st));
        // tmpfs contents: zero for reads, hashed when executed, zero again in kernel-exact mode.
        let zero = HashAlg::Sha256.zero_digest();
        assert_eq!(
            d.digest_of(Some(f.as_fd()), &st, TMPFS_MAGIC, false, false),
            zero
        );
        assert_eq!(
            d.digest_of(Some(f.as_fd()), &st, TMPFS_MAGIC, false, true),
            HashAlg::Sha256.digest(b"one")
        );
        d.set_measure_exec(false);
        assert_eq!(
            d.digest_of(Some(f.as_fd()), &st, TMPFS_MAGIC, false, true),
            zero
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn digest_cache_and_zero_rules() {
        let (dir, p, f, st) = one_file("tsem-describe", b"hello");
        let mut d = Describer::new(HashAlg::Sha256);
        let ext = 0xef53;
        let a = d.digest(Some(f.as_fd()), &st, ext, false);
        assert_eq!(a, HashAlg::Sha256.digest(b"hello"));
        let b = d.digest(Some(f.as_fd()), &st, ext, false);
        assert_eq!(a, b);
        assert_eq!(d.stats().digests_computed, 1);
        assert_eq!(d.stats().digest_cache_hits, 1);
        assert_eq!(
            d.digest(Some(f.as_fd()), &st, 0x0102_1994, false),
            HashAlg::Sha256.zero_digest()
        );
        assert_eq!(
            d.digest(Some(f.as_fd()), &st, ext, true),
            HashAlg::Sha256.zero_digest()
        );
        // New contents change ctime/mtime/size, so the cache must not serve the old digest.
        std::fs::write(&p, b"other contents").unwrap();
        let st2 = sys::fstat(f.as_fd()).unwrap();
        assert_eq!(
            d.digest(Some(f.as_fd()), &st2, ext, false),
            HashAlg::Sha256.digest(b"other contents")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
