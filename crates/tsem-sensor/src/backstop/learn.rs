//! Learning the backstop's access set from the events of a learning run.
//!
//! Each event is mapped to the Landlock rights the kernel would check if the workload made the
//! call itself (the sensor performs most of them, but a run's calls may be continued to the
//! kernel: then Landlock checks them, and a right missed here would be a false positive):
//!
//! | event | rights |
//! |---|---|
//! | `file_open` read / write / read-write | READ_FILE / WRITE_FILE + TRUNCATE / all three |
//! | `file_open` for exec (`__FMODE_EXEC`: programs, ELF and script interpreters) | EXECUTE + READ_FILE |
//! | `file_open` of a device | + IOCTL_DEV |
//! | `inode_create`, `inode_mkdir`, `inode_mknod`, `inode_symlink` | MAKE_* of the new entry's type |
//! | `inode_unlink`, `inode_rmdir` | REMOVE_FILE, REMOVE_DIR |
//! | `inode_rename`, `inode_link` | REMOVE_* / MAKE_*, + REFER when the directories differ |
//! | `inode_setattr` of the size | TRUNCATE |
//! | `socket_bind` / `socket_connect` of a TCP socket | tcp-bind / tcp-connect of its port |
//! | `socket_bind` of a Unix socket path | MAKE_SOCK |
//! | `socket_connect` to an abstract Unix socket | scope `abstract-unix-socket` lifted |
//! | `task_kill` of a task outside the workload | scope `signal` lifted |
//!
//! Rights on what existed before the run go on that file or directory. Rights on what the run
//! creates (a file whose description carries a creator, a directory entry made or removed) go on
//! the nearest directory that existed before the run, since a Landlock rule binds to an inode
//! that exists when the ruleset is built, and each run creates new ones. Pseudo filesystems
//! (procfs, devpts, ...) describe paths relative to their own root, per process: their rights go
//! on the filesystem's mount point.
//!
//! TSEM models opens of regular files only, so opens of directories, devices and FIFOs leave no
//! event to learn from: READ_DIR is not handled by the ruleset at all (listing a directory stays
//! allowed), and every learned set grants the standard devices in [`BASELINE_DEVICES`].
//!
//! Landlock forbids a sandboxed task to mount, unmount, remount, move a mount or pivot its root,
//! whatever the rules: a run with such an event learns no set at all ([`Learner::blocker`]), and
//! its model is enforced without a backstop rather than refused in the kernel.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt as _;

use tsem_core::access::{AccessSet, Scope, fs};
use tsem_core::event::{Cell, Dentry, Event, EventType, Inode, PathRef, SockAddr};

use crate::procfs::{self, Mount};

/// Devices every learned set may open (read, write, truncate, ioctl): programs open them without
/// TSEM seeing it (not regular files), and they hold nothing of anyone's.
pub const BASELINE_DEVICES: [&str; 6] = [
    "/dev/full",
    "/dev/null",
    "/dev/random",
    "/dev/tty",
    "/dev/urandom",
    "/dev/zero",
];

const S_IFMT: u32 = 0o170000;
const FMODE_EXEC: u32 = 0o40;
const ATTR_SIZE: u32 = 8;

/// Accumulates a run's access set, event by event.
#[derive(Debug)]
pub struct Learner {
    set: AccessSet,
    /// Directories the run created: rights beneath them go on an ancestor that existed before.
    created_dirs: HashSet<Vec<u8>>,
    mounts: Vec<Mount>,
    /// Events whose path could not be placed in the supervisor's view of the filesystem.
    unresolved: u64,
    /// Events naming a directory entry on a device no visible mount shows (a chroot that is
    /// not a mount: its filesystem's mount lies outside the root, so mountinfo omits it), kept
    /// until a created object seen both as a dentry and as a file tells where it is mounted.
    deferred: Vec<Event>,
    /// The first event Landlock cannot allow at all.
    blocker: Option<EventType>,
}

impl Default for Learner {
    fn default() -> Self {
        Self::new()
    }
}

impl Learner {
    /// A learner using this process's mount table (the workload shares it).
    pub fn new() -> Self {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| procfs::parse_mountinfo(&t))
            .unwrap_or_default();
        Self::with_mounts(mounts)
    }

    /// A learner using `mounts` to place filesystem-relative paths.
    pub fn with_mounts(mounts: Vec<Mount>) -> Self {
        Self {
            set: AccessSet::learned(),
            created_dirs: HashSet::new(),
            mounts,
            unresolved: 0,
            deferred: Vec::new(),
            blocker: None,
        }
    }

    /// Place paths with `mounts` from now on (a container's, crate::view), before any event.
    pub fn set_mounts(&mut self, mounts: Vec<Mount>) {
        self.mounts = mounts;
    }

    /// Events whose path could not be placed (their rights are missing from the set).
    pub fn unresolved(&self) -> u64 {
        self.unresolved + self.deferred.len() as u64
    }

    /// The first learned event that no Landlock ruleset allows (a mount operation): the run's
    /// model cannot have a backstop.
    pub fn blocker(&self) -> Option<EventType> {
        self.blocker
    }

    /// The set learned so far.
    pub fn set(&self) -> &AccessSet {
        &self.set
    }

    /// The set learned, with the [`BASELINE_DEVICES`].
    pub fn finish(mut self) -> AccessSet {
        for d in BASELINE_DEVICES {
            self.set.grant(
                d.as_bytes(),
                fs::READ_FILE | fs::WRITE_FILE | fs::TRUNCATE | fs::IOCTL_DEV,
            );
        }
        self.set
    }

    /// Learn what `ev` needs.
    pub fn observe(&mut self, ev: &Event) {
        let ty = ev.event_type();
        if self.blocker.is_none()
            && matches!(
                ty,
                EventType::SbMount
                    | EventType::SbUmount
                    | EventType::SbRemount
                    | EventType::SbPivotroot
                    | EventType::MoveMount
            )
        {
            self.blocker = Some(ty);
        }
        if dentries(&ev.cell)
            .iter()
            .any(|p| p.dev.is_some_and(|d| !self.shows(d)))
        {
            if self.deferred.len() < DEFERRED_MAX {
                self.deferred.push(ev.clone());
            } else {
                self.unresolved += 1;
            }
            return;
        }
        match (&ev.cell, ty) {
            (Cell::File(f), EventType::FileOpen) => {
                if let (Some(dev), Some(_)) = (f.path.dev, f.path.created)
                    && !self.shows(dev)
                {
                    self.learn_mount(&f.path);
                }
                let Some((path, pseudo)) = self.file_path(&f.path, &f.inode) else {
                    return;
                };
                let ty = f.inode.mode & S_IFMT;
                let mut r = match f.flags & 3 {
                    0 => fs::READ_FILE,
                    1 => fs::WRITE_FILE | fs::TRUNCATE,
                    _ => fs::READ_FILE | fs::WRITE_FILE | fs::TRUNCATE,
                };
                if f.flags & FMODE_EXEC != 0 {
                    r |= fs::EXECUTE | fs::READ_FILE;
                }
                if ty == libc::S_IFCHR || ty == libc::S_IFBLK {
                    r |= fs::IOCTL_DEV;
                }
                if pseudo {
                    self.set.grant(&path, r);
                } else if f.path.created.is_some() {
                    let anchor = self.anchor(&path);
                    self.set.grant(&anchor, r | make_right(f.inode.mode));
                } else {
                    self.set.grant(&path, r);
                }
            }
            (Cell::InodeCreate { dentry, .. }, EventType::InodeMkdir) => self.mkdir(dentry),
            (Cell::InodeCreate { dentry, mode, .. }, _) => {
                self.entry(dentry, make_right(*mode));
            }
            (Cell::InodeMknod { dentry, mode, .. }, _) => {
                // Opening a FIFO is no TSEM event (only regular files are), but Landlock checks
                // it: a FIFO the run makes gets its open rights with its making.
                let open = if *mode & S_IFMT == libc::S_IFIFO {
                    fs::READ_FILE | fs::WRITE_FILE
                } else {
                    0
                };
                self.entry(dentry, make_right(*mode) | open);
            }
            (Cell::InodeSymlink { dentry, .. }, _) => {
                self.entry(dentry, fs::MAKE_SYM);
            }
            (Cell::InodeDirEntry { dentry, .. }, EventType::InodeRmdir) => {
                self.entry(dentry, fs::REMOVE_DIR);
            }
            (Cell::InodeDirEntry { dentry, .. }, EventType::InodeUnlink) => {
                self.entry(dentry, fs::REMOVE_FILE);
            }
            (Cell::InodeRename(r), _) => {
                let mode = r.old_dentry.inode.as_ref().map_or(0, |i| i.mode);
                let remove = remove_right(mode);
                let replaced = r
                    .new_dentry
                    .inode
                    .as_ref()
                    .map_or(0, |i| remove_right(i.mode));
                self.two_entries(
                    &r.old_dentry,
                    &r.new_dentry,
                    remove,
                    make_right(mode) | replaced,
                );
            }
            (Cell::InodeLink(l), _) => {
                let mode = l.old_dentry.inode.as_ref().map_or(0, |i| i.mode);
                self.two_entries(&l.old_dentry, &l.new_dentry, 0, make_right(mode));
            }
            (Cell::InodeSetattr { dentry, valid, .. }, _) if valid & ATTR_SIZE != 0 => {
                if let Some(p) = self.dentry_path(&dentry.path) {
                    let at = if dentry.path.created.is_some() {
                        self.anchor(&p)
                    } else {
                        p
                    };
                    self.set.grant(&at, fs::TRUNCATE);
                }
            }
            (
                Cell::SockAddr { sock, addr },
                ty @ (EventType::SocketBind | EventType::SocketConnect),
            ) => {
                let bind = ty == EventType::SocketBind;
                match addr {
                    Some(SockAddr::Inet { port, .. } | SockAddr::Inet6 { port, .. })
                        if is_tcp(sock) =>
                    {
                        // The port as TSEM prints it: network order read in host order.
                        let port = u16::from_be(*port);
                        if bind {
                            self.set.tcp_bind.insert(port);
                        } else {
                            self.set.tcp_connect.insert(port);
                        }
                    }
                    Some(SockAddr::Unix { address }) if address.is_empty() && !bind => {
                        // TSEM prints an abstract name as the empty string: whose socket it is
                        // cannot be told, so the scope is lifted.
                        self.set.unscoped.insert(Scope::AbstractUnixSocket);
                    }
                    Some(SockAddr::Unix { address }) if bind && address.starts_with("/") => {
                        let anchor = self.anchor(address.as_bytes());
                        self.set.grant(&anchor, fs::MAKE_SOCK);
                    }
                    _ => {}
                }
            }
            (Cell::TaskKill { cross_ns, .. }, _) if *cross_ns != 0 => {
                self.set.unscoped.insert(Scope::Signal);
            }
            _ => {}
        }
    }

    /// Whether a visible mount shows device `dev`.
    fn shows(&self, (ma, mi): (u32, u32)) -> bool {
        self.mounts.iter().any(|m| m.major == ma && m.minor == mi)
    }

    /// The created object `file` (a FILE path) on a device no visible mount shows: its own
    /// dentry among the deferred events says where the device's filesystem is mounted (as the
    /// naming rules learn it, [`tsem_core::naming::mount_from`]); then the deferred events are
    /// learned.
    fn learn_mount(&mut self, file: &PathRef) {
        let (Some((ma, mi)), Some(c)) = (file.dev, file.created) else {
            return;
        };
        let candidates = self
            .deferred
            .iter()
            .flat_map(|e| dentries(&e.cell))
            .filter(|p| {
                p.dev == file.dev
                    && p.created
                        .is_some_and(|d| d.owner == c.owner && d.instance == c.instance)
            });
        let Some(m) = tsem_core::naming::mount_from(
            candidates.map(|p| p.pathname.as_bytes()),
            file.pathname.as_bytes(),
        ) else {
            return;
        };
        let text = |b: &[u8]| match b {
            [] => Some("/".to_string()),
            b => String::from_utf8(b.to_vec()).ok(),
        };
        let (Some(root), Some(mount_point)) = (text(m.root.as_bytes()), text(m.point.as_bytes()))
        else {
            return;
        };
        self.mounts.push(Mount {
            major: ma,
            minor: mi,
            root,
            mount_point,
            fstype: String::new(),
            source: String::new(),
        });
        for e in std::mem::take(&mut self.deferred) {
            self.observe(&e);
        }
    }

    /// Grant `rights` for a new or removed directory entry on the directory holding it (or the
    /// nearest one that existed before the run); returns the entry's path.
    fn entry(&mut self, d: &Dentry, rights: u16) -> Option<Vec<u8>> {
        let p = self.dentry_path(&d.path)?;
        let anchor = self.anchor(&p);
        self.set.grant(&anchor, rights);
        Some(p)
    }

    /// A directory the run created: every place it shows up (a bind mount shows it twice) is
    /// remembered, since opens name it by whichever path the workload took.
    fn mkdir(&mut self, d: &Dentry) {
        if self.entry(d, fs::MAKE_DIR).is_some() {
            let all = self.placements(&d.path);
            self.created_dirs.extend(all);
        }
    }

    fn two_entries(&mut self, old: &Dentry, new: &Dentry, remove: u16, make: u16) {
        let (Some(p), Some(q)) = (self.dentry_path(&old.path), self.dentry_path(&new.path)) else {
            return;
        };
        let refer = if parent(&p) == parent(&q) {
            0
        } else {
            fs::REFER
        };
        let (a, b) = (self.anchor(&p), self.anchor(&q));
        self.set.grant(&a, remove | refer);
        self.set.grant(&b, make | refer);
        if self.created_dirs.contains(&p) {
            let all = self.placements(&new.path);
            self.created_dirs.extend(all);
        }
    }

    /// The nearest ancestor of `path` that the run did not create.
    fn anchor(&self, path: &[u8]) -> Vec<u8> {
        let mut dir = parent(path);
        while dir.len() > 1 && self.created_dirs.contains(&dir) {
            dir = parent(&dir);
        }
        dir
    }

    /// The absolute path of an opened file, and whether it stands for a whole pseudo filesystem.
    /// Files on filesystems with a device are described by absolute path; pseudo filesystems by a
    /// path relative to their root, which is placed at their mount point.
    fn file_path(&mut self, p: &PathRef, inode: &Inode) -> Option<(Vec<u8>, bool)> {
        if p.dev.is_some() {
            if p.pathname.starts_with("/") {
                return Some((p.pathname.as_bytes().to_vec(), false));
            }
            self.unresolved += 1;
            return None;
        }
        // Pipes, sockets and anonymous inodes have no mount: nothing for Landlock to check.
        let m = self.mounts.iter().find(|m| inode.s_id == m.fstype)?;
        Some((m.mount_point.as_bytes().to_vec(), true))
    }

    /// The absolute path of a directory entry: dentry paths are relative to the root of the
    /// filesystem whose device the event names, so they are placed under a mount of it (the
    /// first whose directory exists, as bind mounts may show the same tree twice). The path's
    /// bytes are kept as they are: a name that is not UTF-8 (a temporary directory named by a
    /// random byte string) is placed like any other, so what the run creates beneath it is
    /// anchored on the directory that existed before the run.
    fn dentry_path(&mut self, p: &PathRef) -> Option<Vec<u8>> {
        let candidates = self.placements(p);
        let found = candidates
            .iter()
            .find(|c| {
                let par = parent(c);
                std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&par)).is_ok()
            })
            .or(candidates.first())
            .cloned();
        if found.is_none() {
            self.unresolved += 1;
        }
        found
    }

    /// Every absolute path at which a mount of the event's device shows the dentry path.
    fn placements(&self, p: &PathRef) -> Vec<Vec<u8>> {
        let Some((ma, mi)) = p.dev else {
            return Vec::new();
        };
        self.mounts
            .iter()
            .filter(|m| m.major == ma && m.minor == mi)
            .filter_map(|m| place(m, p.pathname.as_bytes()))
            .collect()
    }
}

/// Events kept at most while waiting to learn where a device is mounted.
const DEFERRED_MAX: usize = 1 << 16;

/// The directory entries an event names (DENTRY paths, relative to their filesystem's root).
fn dentries(cell: &Cell) -> Vec<&PathRef> {
    match cell {
        Cell::InodeCreate { dentry, .. }
        | Cell::InodeMknod { dentry, .. }
        | Cell::InodeSymlink { dentry, .. }
        | Cell::InodeDirEntry { dentry, .. }
        | Cell::InodeSetattr { dentry, .. } => vec![&dentry.path],
        Cell::InodeRename(r) => vec![&r.old_dentry.path, &r.new_dentry.path],
        Cell::InodeLink(l) => vec![&l.old_dentry.path, &l.new_dentry.path],
        _ => Vec::new(),
    }
}

/// `path` (relative to the filesystem root) under mount `m`, if the mount shows it.
fn place(m: &Mount, path: &[u8]) -> Option<Vec<u8>> {
    let root = m.root.as_bytes();
    let rest = if root == b"/" {
        path
    } else if path == root {
        b""
    } else {
        path.strip_prefix(root).filter(|r| r.starts_with(b"/"))?
    };
    let mut s = if m.mount_point == "/" {
        Vec::new()
    } else {
        m.mount_point.as_bytes().to_vec()
    };
    s.extend_from_slice(rest);
    if s.is_empty() {
        s.push(b'/');
    }
    Some(s)
}

fn parent(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) | None => b"/".to_vec(),
        Some(i) => path[..i].to_vec(),
    }
}

fn make_right(mode: u32) -> u16 {
    match mode & S_IFMT {
        libc::S_IFDIR => fs::MAKE_DIR,
        libc::S_IFCHR => fs::MAKE_CHAR,
        libc::S_IFBLK => fs::MAKE_BLOCK,
        libc::S_IFIFO => fs::MAKE_FIFO,
        libc::S_IFSOCK => fs::MAKE_SOCK,
        libc::S_IFLNK => fs::MAKE_SYM,
        _ => fs::MAKE_REG,
    }
}

fn remove_right(mode: u32) -> u16 {
    if mode & S_IFMT == libc::S_IFDIR {
        fs::REMOVE_DIR
    } else {
        fs::REMOVE_FILE
    }
}

fn is_tcp(sock: &tsem_core::event::Sock) -> bool {
    let inet = sock.family == libc::AF_INET as u32 || sock.family == libc::AF_INET6 as u32;
    // MPTCP (262) falls back to TCP and Landlock checks it as TCP.
    inet && sock.sock_type & 0xf == libc::SOCK_STREAM as u32 && matches!(sock.protocol, 0 | 6 | 262)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsem_core::Digest;
    use tsem_core::event::{Created, EventHeader, FileDesc, Sock};

    fn mounts() -> Vec<Mount> {
        let text = "\
1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
2 1 0:5 / /proc rw - proc proc rw\n\
3 1 0:30 / /dev/shm rw - tmpfs tmpfs rw\n\
4 1 8:1 /srv/data /data rw - ext4 /dev/sda1 rw\n";
        procfs::parse_mountinfo(text)
    }

    fn event(ty: EventType, cell: Cell) -> Event {
        let d = Digest::zero(32);
        Event {
            header: EventHeader::new("t", ty, d, d),
            coe: Default::default(),
            cell,
        }
    }

    fn inode(mode: u32, s_id: &str) -> Inode {
        Inode {
            uid: 0,
            gid: 0,
            mode,
            s_magic: 0,
            s_id: s_id.into(),
            s_uuid: [0; 16],
        }
    }

    fn open(path: &str, dev: Option<(u32, u32)>, flags: u32, mode: u32, created: bool) -> Event {
        let s_id = if dev.is_some() { "sda1" } else { "proc" };
        event(
            EventType::FileOpen,
            Cell::File(FileDesc {
                flags,
                inode: inode(mode, s_id),
                path: PathRef {
                    dev,
                    created: created.then_some(Created {
                        owner: Digest::zero(32),
                        instance: 1,
                    }),
                    path_type: None,
                    pathname: path.into(),
                },
                digest: Digest::zero(32),
            }),
        )
    }

    fn dentry(path: &str, dev: (u32, u32), mode: Option<u32>) -> Dentry {
        Dentry {
            inode: mode.map(|m| inode(m, "sda1")),
            path: PathRef {
                dev: Some(dev),
                created: None,
                path_type: None,
                pathname: path.into(),
            },
        }
    }

    fn rights(l: &Learner, path: &str) -> u16 {
        l.set().fs.get(path.as_bytes()).copied().unwrap_or(0)
    }

    #[test]
    fn opens_map_to_rights_on_the_file() {
        let mut l = Learner::with_mounts(mounts());
        l.observe(&open(
            "/usr/bin/cc",
            Some((8, 1)),
            0o100040,
            0o100755,
            false,
        ));
        l.observe(&open(
            "/etc/passwd",
            Some((8, 1)),
            0o100000,
            0o100644,
            false,
        ));
        l.observe(&open("/dev/null", Some((0, 6)), 0o100001, 0o20666, false));
        assert_eq!(rights(&l, "/usr/bin/cc"), fs::EXECUTE | fs::READ_FILE);
        assert_eq!(rights(&l, "/etc/passwd"), fs::READ_FILE);
        assert_eq!(
            rights(&l, "/dev/null"),
            fs::WRITE_FILE | fs::TRUNCATE | fs::IOCTL_DEV
        );
        let set = l.finish();
        assert_eq!(
            set.fs.get(b"/dev/urandom".as_slice()),
            Some(&(fs::READ_FILE | fs::WRITE_FILE | fs::TRUNCATE | fs::IOCTL_DEV))
        );
    }

    #[test]
    fn what_the_run_creates_is_granted_on_the_directory_that_existed() {
        let mut l = Learner::with_mounts(mounts());
        let mkdir = Cell::InodeCreate {
            dir: inode(0o40755, "sda1"),
            dentry: dentry("/w/out", (8, 1), None),
            mode: 0o755,
        };
        l.observe(&event(EventType::InodeMkdir, mkdir));
        l.observe(&open("/w/out/a.o", Some((8, 1)), 0o100001, 0o100644, true));
        l.observe(&open(
            "/w/out/hello",
            Some((8, 1)),
            0o100040,
            0o100755,
            true,
        ));
        let unlink = Cell::InodeDirEntry {
            dir: inode(0o40755, "sda1"),
            dentry: dentry("/w/out/a.o", (8, 1), Some(0o100644)),
        };
        l.observe(&event(EventType::InodeUnlink, unlink));
        assert_eq!(
            rights(&l, "/w"),
            fs::MAKE_DIR
                | fs::WRITE_FILE
                | fs::TRUNCATE
                | fs::MAKE_REG
                | fs::EXECUTE
                | fs::READ_FILE
                | fs::REMOVE_FILE
        );
        assert_eq!(l.set().fs.len(), 1);
    }

    /// In a chroot that is not a mount, mountinfo shows no mount of the root's filesystem: the
    /// run's first created file, seen as a dentry (`/var/x/w/out/a.o`) and as a file
    /// (`/w/out/a.o`), tells where that filesystem's part is mounted, and the directory entries
    /// held back until then are granted like any others.
    #[test]
    fn a_chroot_without_a_mount_is_placed_from_a_created_file() {
        let mut l = Learner::with_mounts(procfs::parse_mountinfo(
            "2 1 0:5 / /proc rw - proc proc rw\n",
        ));
        let created = |path: &str| {
            let mut d = dentry(path, (8, 1), None);
            d.path.created = Some(Created {
                owner: Digest::zero(32),
                instance: 1,
            });
            d
        };
        let mkdir = Cell::InodeCreate {
            dir: inode(0o40755, "sda1"),
            dentry: created("/var/x/w/out"),
            mode: 0o755,
        };
        let create = Cell::InodeCreate {
            dir: inode(0o40755, "sda1"),
            dentry: created("/var/x/w/out/a.o"),
            mode: 0o100644,
        };
        l.observe(&event(EventType::InodeMkdir, mkdir));
        l.observe(&event(EventType::InodeCreate, create));
        assert_eq!(l.unresolved(), 2, "held back until the mount is known");
        l.observe(&open("/w/out/a.o", Some((8, 1)), 0o100001, 0o100644, true));
        assert_eq!(l.unresolved(), 0);
        assert_eq!(
            rights(&l, "/w"),
            fs::MAKE_DIR | fs::MAKE_REG | fs::WRITE_FILE | fs::TRUNCATE
        );
        assert_eq!(l.set().fs.len(), 1, "{:?}", l.set().fs);
    }

    /// A temporary directory whose name is not UTF-8: its entries are placed by their bytes, so
    /// what the run creates beneath it is granted on the directory that existed (a rule on the
    /// random name would bind nothing in the next run, and the kernel would refuse it).
    #[test]
    fn a_created_directory_that_is_not_utf8_is_anchored_like_any_other() {
        let mut l = Learner::with_mounts(mounts());
        let raw = |path: &[u8], mode: Option<u32>| {
            let mut d = dentry("/", (8, 1), mode);
            d.path.pathname = path.into();
            d
        };
        let mkdir = Cell::InodeCreate {
            dir: inode(0o40755, "sda1"),
            dentry: raw(b"/w/tmp.\xff\x01", None),
            mode: 0o700,
        };
        l.observe(&event(EventType::InodeMkdir, mkdir));
        let mut f = open("/", Some((8, 1)), 0o100001, 0o100644, true);
        if let Cell::File(x) = &mut f.cell {
            x.path.pathname = b"/w/tmp.\xff\x01/f".into();
        }
        l.observe(&f);
        let unlink = Cell::InodeDirEntry {
            dir: inode(0o40755, "sda1"),
            dentry: raw(b"/w/tmp.\xff\x01/f", Some(0o100644)),
        };
        l.observe(&event(EventType::InodeUnlink, unlink));
        assert_eq!(l.unresolved(), 0);
        assert_eq!(
            rights(&l, "/w"),
            fs::MAKE_DIR | fs::WRITE_FILE | fs::TRUNCATE | fs::MAKE_REG | fs::REMOVE_FILE
        );
        assert_eq!(l.set().fs.len(), 1, "{:?}", l.set().fs.keys());
    }

    #[test]
    fn relative_paths_are_placed_at_their_mount() {
        let mut l = Learner::with_mounts(mounts());
        // procfs: relative to its root and per process: the whole mount.
        l.observe(&open("/1234/status", None, 0o100000, 0o100444, false));
        assert_eq!(rights(&l, "/proc"), fs::READ_FILE);
        // A dentry on a bind mount of a subtree.
        let unlink = Cell::InodeDirEntry {
            dir: inode(0o40755, "sda1"),
            dentry: dentry("/srv/data/x", (8, 1), Some(0o100644)),
        };
        l.observe(&event(EventType::InodeUnlink, unlink));
        assert_eq!(rights(&l, "/srv/data"), fs::REMOVE_FILE);
        // Pipes have no mount: nothing to grant.
        let mut pipe = open("pipe:[1]", None, 0, 0o10600, false);
        if let Cell::File(f) = &mut pipe.cell {
            f.inode.s_id = "pipefs".into();
        }
        l.observe(&pipe);
        assert_eq!(l.set().fs.len(), 2);
    }

    #[test]
    fn tcp_ports_and_scopes() {
        let mut l = Learner::with_mounts(mounts());
        let sock = Sock {
            family: libc::AF_INET as u32,
            sock_type: libc::SOCK_STREAM as u32,
            protocol: 6,
            owner: Digest::zero(32),
        };
        let connect = |port: u16| {
            event(
                EventType::SocketConnect,
                Cell::SockAddr {
                    sock,
                    addr: Some(SockAddr::Inet {
                        port: port.to_be(),
                        address: 0,
                    }),
                },
            )
        };
        l.observe(&connect(8080));
        let udp = Sock {
            sock_type: libc::SOCK_DGRAM as u32,
            protocol: 17,
            ..sock
        };
        l.observe(&event(
            EventType::SocketConnect,
            Cell::SockAddr {
                sock: udp,
                addr: Some(SockAddr::Inet {
                    port: 53u16.to_be(),
                    address: 0,
                }),
            },
        ));
        assert_eq!(
            l.set().tcp_connect.iter().copied().collect::<Vec<_>>(),
            [8080]
        );
        let kill = |cross_ns| {
            event(
                EventType::TaskKill,
                Cell::TaskKill {
                    target: Digest::zero(32),
                    sig: 15,
                    cross_ns,
                },
            )
        };
        l.observe(&kill(0));
        assert!(l.set().unscoped.is_empty());
        l.observe(&kill(1));
        assert!(l.set().unscoped.contains(&Scope::Signal));
    }

    #[test]
    fn a_mount_leaves_nothing_to_enforce() {
        let mut l = Learner::with_mounts(mounts());
        assert_eq!(l.blocker(), None);
        let umount = Cell::SbUmount {
            mnt: dentry("/", (8, 1), Some(0o40755)),
            flags: 0,
        };
        l.observe(&event(EventType::SbUmount, umount));
        assert_eq!(l.blocker(), Some(EventType::SbUmount));
    }
}
