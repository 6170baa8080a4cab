//! The objects an event names: inodes, paths, dentries, files, sockets, credentials, IPC
//! permissions, superblocks.

use super::*;

/// Inode identity (the INODE layout of spec §1.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inode {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// `i_mode` (type and permission bits).
    pub mode: u32,
    /// Superblock magic.
    pub s_magic: u32,
    /// Superblock id (`s_id`, at most 32 bytes are hashed).
    pub s_id: RawStr,
    /// Filesystem UUID.
    pub s_uuid: [u8; 16],
}

/// TMPFS superblock magic: its UUID is levelled to zero before hashing.
pub const TMPFS_MAGIC: u32 = 0x0102_1994;

/// A path as TSEM describes it (`path` object).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathRef {
    /// Device (major, minor), present when the superblock has a device.
    pub dev: Option<(u32, u32)>,
    /// Created-file invariance: the creator's TASK_ID and the per-directory instance.
    pub created: Option<Created>,
    /// Post-v4 path type (`root`, `namespace`, `chroot`).
    pub path_type: Option<RawStr>,
    /// Absolute pathname (or `pipe:/`-style pseudo names).
    pub pathname: RawStr,
}

/// The owner and instance of a file created inside the namespace (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// TASK_ID of the creating task.
    pub owner: Digest,
    /// Per (directory, creator, namespace) counter, from 1.
    pub instance: u64,
}

/// A dentry: an optional inode and its path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dentry {
    /// The inode, if the dentry has one.
    pub inode: Option<Inode>,
    /// Its path.
    pub path: PathRef,
}

/// An open file (the FILE layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDesc {
    /// `f_flags`.
    pub flags: u32,
    /// The inode.
    pub inode: Inode,
    /// Its path.
    pub path: PathRef,
    /// Digest of the contents (zero digest for pseudo filesystems, created or empty files).
    pub digest: Digest,
}

/// A socket (the SOCK layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sock {
    /// Address family.
    pub family: u32,
    /// Socket type.
    pub sock_type: u32,
    /// Protocol.
    pub protocol: u32,
    /// TASK_ID of the socket's creator.
    pub owner: Digest,
}

/// A socket address as TSEM exports it. Ports and IPv4 addresses are the raw network-order
/// integers (read in host order), exactly as the kernel prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// AF_INET.
    Inet {
        /// `sin_port`, raw.
        port: u16,
        /// `s_addr`, raw.
        address: u32,
    },
    /// AF_INET6.
    Inet6 {
        /// `sin6_port`, raw.
        port: u16,
        /// Flow info (absent for accept).
        flow: Option<u32>,
        /// Scope id (absent for accept).
        scope: Option<u32>,
        /// The 16 address bytes.
        address: [u8; 16],
    },
    /// AF_UNIX: the path (abstract names as the kernel prints them).
    Unix {
        /// The socket path.
        address: RawStr,
    },
    /// Any other family: a digest of the address bytes.
    Other {
        /// `HF(sa_data[..addr_len-2])` (zero digest on accept).
        address: Digest,
    },
}

/// Task credentials (`creds` object in task_prlimit and key events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Creds {
    /// uid..fsgid and capeff, as in the COE.
    pub ids: Coe,
    /// Securebits.
    pub securebits: u32,
}

/// System V IPC permission (`perm` object, the IPC layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcPerm {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Mode bits.
    pub mode: u32,
    /// TASK_ID of the creator.
    pub owner: Digest,
}

/// A superblock as seen by remount and quotactl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperBlock {
    /// Dentry of the superblock root.
    pub dentry: Dentry,
    /// Filesystem type name.
    pub fstype: RawStr,
    /// `s_flags`.
    pub s_flags: u64,
}

/// sb_pivotroot (`old_path`, `new_path`) and move_mount (`from_path`, `to_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPair {
    /// First path.
    pub a: PathRef,
    /// Second path.
    pub b: PathRef,
}

/// inode_link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Existing entry.
    pub old_dentry: Dentry,
    /// New parent.
    pub dir: Inode,
    /// New entry.
    pub new_dentry: Dentry,
}

/// inode_rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// Old parent.
    pub old_dir: Inode,
    /// Old entry.
    pub old_dentry: Dentry,
    /// New parent.
    pub new_dir: Inode,
    /// New entry.
    pub new_dentry: Dentry,
}
