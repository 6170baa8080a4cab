//! Typed TSEM security event descriptions (spec §1): the event header, the context of execution
//! (COE) and one CELL shape per event.
//!
//! Values are kept as the kernel holds them (numbers, digests, byte strings), not as JSON text, so
//! they can be mapped to coefficients without re-parsing and emitted again in the kernel's format.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::hash::Digest;
use crate::raw::RawStr;

macro_rules! event_types {
    ($($variant:ident = $name:literal,)*) => {
        /// A TSEM event type. The name string (not the ordinal) is what TSEM hashes and exports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType { $(#[doc = $name] $variant,)* }

        impl EventType {
            /// Every event type, in kernel ordinal order (v3 `tsem_names[]`, from 1), followed by
            /// the post-v4 `file_ioctl_compat`.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The name TSEM hashes and exports (the LSM hook name).
            pub const fn name(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// The event type named `name`.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(EventType::$variant),)* _ => None }
            }
        }
    };
}

event_types! {
    BprmCommittedCreds = "bprm_committed_creds",
    TaskKill = "task_kill",
    TaskSetpgid = "task_setpgid",
    TaskGetpgid = "task_getpgid",
    TaskGetsid = "task_getsid",
    TaskSetnice = "task_setnice",
    TaskSetioprio = "task_setioprio",
    TaskGetioprio = "task_getioprio",
    TaskPrlimit = "task_prlimit",
    TaskSetrlimit = "task_setrlimit",
    TaskSetscheduler = "task_setscheduler",
    TaskGetscheduler = "task_getscheduler",
    TaskPrctl = "task_prctl",
    FileOpen = "file_open",
    MmapFile = "mmap_file",
    FileIoctl = "file_ioctl",
    FileLock = "file_lock",
    FileFcntl = "file_fcntl",
    FileReceive = "file_receive",
    UnixStreamConnect = "unix_stream_connect",
    UnixMaySend = "unix_may_send",
    SocketCreate = "socket_create",
    SocketConnect = "socket_connect",
    SocketBind = "socket_bind",
    SocketAccept = "socket_accept",
    SocketListen = "socket_listen",
    SocketSocketpair = "socket_socketpair",
    SocketSendmsg = "socket_sendmsg",
    SocketRecvmsg = "socket_recvmsg",
    SocketGetsockname = "socket_getsockname",
    SocketGetpeername = "socket_getpeername",
    SocketSetsockopt = "socket_setsockopt",
    SocketShutdown = "socket_shutdown",
    PtraceTraceme = "ptrace_traceme",
    KernelModuleRequest = "kernel_module_request",
    KernelLoadData = "kernel_load_data",
    KernelReadFile = "kernel_read_file",
    SbMount = "sb_mount",
    SbUmount = "sb_umount",
    SbRemount = "sb_remount",
    SbPivotroot = "sb_pivotroot",
    SbStatfs = "sb_statfs",
    MoveMount = "move_mount",
    ShmAssociate = "shm_associate",
    ShmShmctl = "shm_shmctl",
    ShmShmat = "shm_shmat",
    SemAssociate = "sem_associate",
    SemSemctl = "sem_semctl",
    SemSemop = "sem_semop",
    Syslog = "syslog",
    Settime = "settime",
    Quotactl = "quotactl",
    QuotaOn = "quota_on",
    MsgQueueAssociate = "msg_queue_associate",
    MsgQueueMsgctl = "msg_queue_msgctl",
    MsgQueueMsgsnd = "msg_queue_msgsnd",
    MsgQueueMsgrcv = "msg_queue_msgrcv",
    IpcPermission = "ipc_permission",
    KeyAlloc = "key_alloc",
    KeyPermission = "key_permission",
    NetlinkSend = "netlink_send",
    InodeCreate = "inode_create",
    InodeLink = "inode_link",
    InodeUnlink = "inode_unlink",
    InodeSymlink = "inode_symlink",
    InodeMkdir = "inode_mkdir",
    InodeRmdir = "inode_rmdir",
    InodeMknod = "inode_mknod",
    InodeRename = "inode_rename",
    InodeSetattr = "inode_setattr",
    InodeGetattr = "inode_getattr",
    InodeSetxattr = "inode_setxattr",
    InodeGetxattr = "inode_getxattr",
    InodeListxattr = "inode_listxattr",
    InodeRemovexattr = "inode_removexattr",
    InodeKillpriv = "inode_killpriv",
    TunDevCreate = "tun_dev_create",
    TunDevAttachQueue = "tun_dev_attach_queue",
    TunDevAttach = "tun_dev_attach",
    TunDevOpen = "tun_dev_open",
    Bpf = "bpf",
    BpfMap = "bpf_map",
    BpfProg = "bpf_prog",
    PtraceAccessCheck = "ptrace_access_check",
    Capable = "capable",
    Capget = "capget",
    Capset = "capset",
    FileIoctlCompat = "file_ioctl_compat",
}

/// The `event` object: who caused the event and where it sits in the namespace's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Global pid (export records only; zeroed and omitted in trajectories).
    pub pid: Option<u64>,
    /// Post-v4 never-wrapping task number.
    pub tnum: Option<u64>,
    /// Post-v4 namespace (context) id.
    pub context: Option<u64>,
    /// Post-v4 per-namespace event sequence number.
    pub number: Option<u64>,
    /// The task's `comm`.
    pub process: RawStr,
    /// Event type.
    pub event_type: EventType,
    /// Task instance ("trust transition domain").
    pub ttd: u64,
    /// The parent's instance at fork.
    pub p_ttd: u64,
    /// TASK_ID of the task (spec §3.3).
    pub task_id: Digest,
    /// TASK_ID of the parent at fork (PTASK_ID).
    pub p_task_id: Digest,
    /// Boot-time nanoseconds.
    pub ts: u64,
}

impl EventHeader {
    /// A header for a task's event with no export bookkeeping: no pid, tnum, context or number,
    /// instance 0 and time 0 (none of which enters a coefficient).
    pub fn new(
        process: impl Into<RawStr>,
        event_type: EventType,
        task_id: Digest,
        p_task_id: Digest,
    ) -> Self {
        Self {
            pid: None,
            tnum: None,
            context: None,
            number: None,
            process: process.into(),
            event_type,
            ttd: 0,
            p_ttd: 0,
            task_id,
            p_task_id,
            ts: 0,
        }
    }
}

/// The context of execution: the task's credentials at the moment of the event (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Coe {
    /// Real uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// Effective capability set.
    pub capeff: u64,
}

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

/// The CELL: the parameters of one event. One variant per distinct shape; the event type in the
/// header says which hook it came from (and so which JSON key names are used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// file_open, file_receive: `file`.
    File(FileDesc),
    /// mmap_file: optional file (absent for anonymous executable maps), `prot`, `flags`.
    MmapFile {
        /// The mapped file.
        file: Option<FileDesc>,
        /// Protection.
        prot: u32,
        /// Map flags.
        flags: u32,
    },
    /// file_ioctl, file_ioctl_compat, file_lock, file_fcntl: `file`, `cmd`.
    FileCmd {
        /// The file.
        file: FileDesc,
        /// The command.
        cmd: u32,
    },
    /// unix_stream_connect, unix_may_send (`sock`, `other`); socket_socketpair (`socka`, `sockb`).
    SockPair {
        /// First socket.
        a: Sock,
        /// Second socket.
        b: Sock,
    },
    /// socket_create.
    SocketCreate {
        /// Family.
        family: u32,
        /// Type.
        sock_type: u32,
        /// Protocol.
        protocol: u32,
        /// Kernel socket flag.
        kern: u32,
    },
    /// socket_connect, socket_bind, socket_accept, socket_sendmsg/recvmsg (address optional).
    SockAddr {
        /// The socket.
        sock: Sock,
        /// The address.
        addr: Option<SockAddr>,
    },
    /// socket_getsockname, socket_getpeername, tun_dev_attach_queue: `sock`.
    Sock(Sock),
    /// socket_listen (`backlog`), socket_shutdown (`how`).
    SockValue {
        /// The socket.
        sock: Sock,
        /// Backlog or how.
        value: u32,
    },
    /// socket_setsockopt.
    SockOpt {
        /// The socket.
        sock: Sock,
        /// Level.
        level: u32,
        /// Option name.
        optname: u32,
    },
    /// task_kill.
    TaskKill {
        /// TASK_ID of the target.
        target: Digest,
        /// Signal.
        sig: u32,
        /// Crosses namespaces.
        cross_ns: u32,
    },
    /// ptrace_access_check.
    PtraceAccess {
        /// TASK_ID of the child.
        child: Digest,
        /// Access mode.
        mode: u32,
    },
    /// ptrace_traceme.
    PtraceTraceme {
        /// TASK_ID of the tracer (the parent).
        source: Digest,
    },
    /// capget.
    Capget {
        /// TASK_ID of the target.
        target: Digest,
        /// Effective.
        effective: u64,
        /// Inheritable.
        inheritable: u64,
        /// Permitted.
        permitted: u64,
    },
    /// capset.
    Capset {
        /// Effective.
        effective: u64,
        /// Inheritable.
        inheritable: u64,
        /// Permitted.
        permitted: u64,
    },
    /// capable.
    Capable {
        /// Capability number.
        cap: u32,
        /// `CAP_OPT_*` flags.
        opts: u32,
    },
    /// task_setpgid: `task`, `source`.
    TaskSetpgid {
        /// TASK_ID of the task whose group changes.
        task: Digest,
        /// TASK_ID of the group leader source.
        source: Digest,
    },
    /// task_getpgid, task_getsid, task_getioprio, task_setscheduler, task_getscheduler: `task`.
    Task {
        /// TASK_ID of the target.
        task: Digest,
    },
    /// task_setnice (`nice`), task_setioprio (`ioprio`).
    TaskValue {
        /// TASK_ID of the target.
        task: Digest,
        /// The value (signed for nice, stored as its 32-bit pattern).
        value: u32,
    },
    /// task_prlimit.
    TaskPrlimit {
        /// Caller credentials.
        cred: Creds,
        /// Target credentials.
        tcred: Creds,
        /// Flags.
        flags: u32,
    },
    /// task_setrlimit.
    TaskSetrlimit {
        /// TASK_ID of the target.
        task: Digest,
        /// Resource.
        resource: u32,
        /// Soft limit.
        current: u64,
        /// Hard limit.
        max: u64,
    },
    /// task_prctl.
    TaskPrctl {
        /// Option.
        option: u32,
        /// arg2..arg5.
        args: [u64; 4],
    },
    /// kernel_module_request.
    KernelModuleRequest {
        /// Module name.
        kmod_name: RawStr,
    },
    /// kernel_load_data.
    KernelLoadData {
        /// Data id.
        id: u32,
        /// Contents flag.
        contents: u32,
    },
    /// kernel_read_file.
    KernelReadFile {
        /// The file.
        file: FileDesc,
        /// Read id.
        id: u32,
        /// Contents flag.
        contents: u32,
    },
    /// sb_mount.
    SbMount {
        /// Device name.
        dev_name: Option<RawStr>,
        /// Mount point.
        path: PathRef,
        /// Filesystem type.
        fs_type: Option<RawStr>,
        /// Mount flags.
        flags: u64,
    },
    /// sb_umount.
    SbUmount {
        /// Mount root dentry.
        mnt: Dentry,
        /// Flags.
        flags: u32,
    },
    /// sb_remount.
    SbRemount(SuperBlock),
    /// sb_statfs, quota_on, inode_listxattr, inode_killpriv: `dentry`.
    Dentry(Dentry),
    /// sb_pivotroot (`old_path`, `new_path`), move_mount (`from_path`, `to_path`).
    TwoPaths(Box<PathPair>),
    /// quotactl.
    Quotactl {
        /// Commands.
        cmds: u32,
        /// Quota type.
        qtype: u32,
        /// Id.
        id: u32,
        /// The superblock.
        sb: SuperBlock,
    },
    /// shm_associate/shmat/shmctl, sem_associate/semctl, msg_queue_associate/msgctl/msgsnd.
    IpcValue {
        /// Permissions.
        perm: IpcPerm,
        /// The flag or command (as exported; see spec §9 item 7).
        value: u32,
    },
    /// sem_semop.
    SemSemop {
        /// Permissions.
        perm: IpcPerm,
        /// Number of operations.
        nsops: u32,
        /// Alters.
        alter: u32,
    },
    /// msg_queue_msgrcv.
    MsgRcv {
        /// Permissions.
        perm: IpcPerm,
        /// TASK_ID of the receiver.
        target: Digest,
        /// Message type.
        msg_type: u64,
        /// Mode.
        mode: u32,
    },
    /// ipc_permission.
    IpcPermission {
        /// Permissions.
        perm: IpcPerm,
        /// Flag.
        flag: u32,
    },
    /// key_alloc.
    KeyAlloc {
        /// Credentials.
        cred: Creds,
        /// Flags.
        flags: u64,
    },
    /// key_permission.
    KeyPermission {
        /// Key is possessed.
        possessed: u32,
        /// Key uid.
        uid: u32,
        /// Key gid.
        gid: u32,
        /// Key flags.
        flags: u64,
        /// Credentials.
        cred: Creds,
        /// Permission requested.
        perm: u32,
    },
    /// netlink_send.
    NetlinkSend {
        /// The socket.
        sock: Sock,
        /// Sender uid.
        uid: u32,
        /// Sender gid.
        gid: u32,
        /// Port id.
        portid: u32,
        /// Destination group.
        dst_group: u32,
        /// Flags.
        flags: u32,
        /// nsid set.
        nsid_set: u32,
        /// nsid.
        nsid: u32,
    },
    /// inode_create, inode_mkdir: `dir`, `dentry`, `mode`.
    InodeCreate {
        /// Parent directory.
        dir: Inode,
        /// New entry.
        dentry: Dentry,
        /// Mode.
        mode: u32,
    },
    /// inode_unlink, inode_rmdir: `dir`, `dentry`.
    InodeDirEntry {
        /// Parent directory.
        dir: Inode,
        /// Entry.
        dentry: Dentry,
    },
    /// inode_link.
    InodeLink(Box<Link>),
    /// inode_symlink.
    InodeSymlink {
        /// Parent directory.
        dir: Inode,
        /// New entry.
        dentry: Dentry,
        /// Link target.
        old_name: RawStr,
    },
    /// inode_mknod.
    InodeMknod {
        /// Parent directory.
        dir: Inode,
        /// New entry.
        dentry: Dentry,
        /// Mode.
        mode: u32,
        /// Device (major, minor).
        dev: (u32, u32),
    },
    /// inode_rename.
    InodeRename(Box<Rename>),
    /// inode_setattr.
    InodeSetattr {
        /// The entry.
        dentry: Dentry,
        /// `ia_valid`.
        valid: u32,
        /// New mode.
        mode: u32,
        /// New uid.
        uid: u32,
        /// New gid.
        gid: u32,
        /// New size.
        size: u64,
    },
    /// inode_getattr: `path` in dentry shape.
    InodeGetattr(Dentry),
    /// inode_setxattr.
    InodeSetxattr {
        /// The entry.
        dentry: Dentry,
        /// Attribute name.
        name: RawStr,
        /// Raw value.
        value: Vec<u8>,
        /// Flags.
        flags: u32,
    },
    /// inode_getxattr, inode_removexattr.
    InodeXattr {
        /// The entry.
        dentry: Dentry,
        /// Attribute name.
        name: RawStr,
    },
    /// syslog.
    Syslog {
        /// Action type.
        action: u32,
    },
    /// settime.
    Settime {
        /// (seconds, nanoseconds).
        ts: Option<(u64, u64)>,
        /// (minuteswest, dsttime).
        tz: Option<(u32, u32)>,
    },
    /// bpf.
    Bpf {
        /// Command.
        cmd: u32,
        /// Attribute size.
        size: u32,
    },
    /// bpf_map.
    BpfMap {
        /// Map type.
        map_type: u32,
        /// File mode.
        fmode: u32,
    },
    /// bpf_prog.
    BpfProg {
        /// Program type.
        prog_type: u32,
        /// Attach type.
        attach_type: u32,
    },
    /// tun_dev_create, tun_dev_attach, tun_dev_open: no parameters.
    Empty,
}

/// One security event description: header, COE and CELL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` object.
    pub header: EventHeader,
    /// The `COE` object.
    pub coe: Coe,
    /// The CELL, under the event type's name.
    pub cell: Cell,
}

impl Event {
    /// The event type.
    pub fn event_type(&self) -> EventType {
        self.header.event_type
    }

    /// Every file pathname in the CELL whose digest a pseudonym can replace (spec §3.5).
    pub fn file_mut(&mut self) -> Option<&mut FileDesc> {
        match &mut self.cell {
            Cell::File(f) => Some(f),
            Cell::MmapFile { file: Some(f), .. } => Some(f),
            Cell::FileCmd { file, .. } => Some(file),
            Cell::KernelReadFile { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The file of the CELL, if any.
    pub fn file(&self) -> Option<&FileDesc> {
        match &self.cell {
            Cell::File(f) => Some(f),
            Cell::MmapFile { file: Some(f), .. } => Some(f),
            Cell::FileCmd { file, .. } => Some(file),
            Cell::KernelReadFile { file, .. } => Some(file),
            _ => None,
        }
    }
}

/// The CELL shape each event type carries (used by parsers to pick the variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellShape {
    /// [`Cell::File`]
    File,
    /// [`Cell::MmapFile`]
    MmapFile,
    /// [`Cell::FileCmd`]
    FileCmd,
    /// [`Cell::SockPair`]
    SockPair,
    /// [`Cell::SocketCreate`]
    SocketCreate,
    /// [`Cell::SockAddr`]
    SockAddr,
    /// [`Cell::Sock`]
    Sock,
    /// [`Cell::SockValue`]
    SockValue,
    /// [`Cell::SockOpt`]
    SockOpt,
    /// [`Cell::TaskKill`]
    TaskKill,
    /// [`Cell::PtraceAccess`]
    PtraceAccess,
    /// [`Cell::PtraceTraceme`]
    PtraceTraceme,
    /// [`Cell::Capget`]
    Capget,
    /// [`Cell::Capset`]
    Capset,
    /// [`Cell::Capable`]
    Capable,
    /// [`Cell::TaskSetpgid`]
    TaskSetpgid,
    /// [`Cell::Task`]
    Task,
    /// [`Cell::TaskValue`]
    TaskValue,
    /// [`Cell::TaskPrlimit`]
    TaskPrlimit,
    /// [`Cell::TaskSetrlimit`]
    TaskSetrlimit,
    /// [`Cell::TaskPrctl`]
    TaskPrctl,
    /// [`Cell::KernelModuleRequest`]
    KernelModuleRequest,
    /// [`Cell::KernelLoadData`]
    KernelLoadData,
    /// [`Cell::KernelReadFile`]
    KernelReadFile,
    /// [`Cell::SbMount`]
    SbMount,
    /// [`Cell::SbUmount`]
    SbUmount,
    /// [`Cell::SbRemount`]
    SbRemount,
    /// [`Cell::Dentry`]
    Dentry,
    /// [`Cell::TwoPaths`]
    TwoPaths,
    /// [`Cell::Quotactl`]
    Quotactl,
    /// [`Cell::IpcValue`]
    IpcValue,
    /// [`Cell::SemSemop`]
    SemSemop,
    /// [`Cell::MsgRcv`]
    MsgRcv,
    /// [`Cell::IpcPermission`]
    IpcPermission,
    /// [`Cell::KeyAlloc`]
    KeyAlloc,
    /// [`Cell::KeyPermission`]
    KeyPermission,
    /// [`Cell::NetlinkSend`]
    NetlinkSend,
    /// [`Cell::InodeCreate`]
    InodeCreate,
    /// [`Cell::InodeDirEntry`]
    InodeDirEntry,
    /// [`Cell::InodeLink`]
    InodeLink,
    /// [`Cell::InodeSymlink`]
    InodeSymlink,
    /// [`Cell::InodeMknod`]
    InodeMknod,
    /// [`Cell::InodeRename`]
    InodeRename,
    /// [`Cell::InodeSetattr`]
    InodeSetattr,
    /// [`Cell::InodeGetattr`]
    InodeGetattr,
    /// [`Cell::InodeSetxattr`]
    InodeSetxattr,
    /// [`Cell::InodeXattr`]
    InodeXattr,
    /// [`Cell::Syslog`]
    Syslog,
    /// [`Cell::Settime`]
    Settime,
    /// [`Cell::Bpf`]
    Bpf,
    /// [`Cell::BpfMap`]
    BpfMap,
    /// [`Cell::BpfProg`]
    BpfProg,
    /// [`Cell::Empty`]
    Empty,
}

impl EventType {
    /// The CELL shape of this event.
    pub const fn shape(self) -> CellShape {
        use EventType as E;
        match self {
            E::FileOpen | E::FileReceive | E::BprmCommittedCreds => CellShape::File,
            E::MmapFile => CellShape::MmapFile,
            E::FileIoctl | E::FileIoctlCompat | E::FileLock | E::FileFcntl => CellShape::FileCmd,
            E::UnixStreamConnect | E::UnixMaySend | E::SocketSocketpair => CellShape::SockPair,
            E::SocketCreate => CellShape::SocketCreate,
            E::SocketConnect
            | E::SocketBind
            | E::SocketAccept
            | E::SocketSendmsg
            | E::SocketRecvmsg => CellShape::SockAddr,
            E::SocketGetsockname | E::SocketGetpeername | E::TunDevAttachQueue => CellShape::Sock,
            E::SocketListen | E::SocketShutdown => CellShape::SockValue,
            E::SocketSetsockopt => CellShape::SockOpt,
            E::TaskKill => CellShape::TaskKill,
            E::PtraceAccessCheck => CellShape::PtraceAccess,
            E::PtraceTraceme => CellShape::PtraceTraceme,
            E::Capget => CellShape::Capget,
            E::Capset => CellShape::Capset,
            E::Capable => CellShape::Capable,
            E::TaskSetpgid => CellShape::TaskSetpgid,
            E::TaskGetpgid
            | E::TaskGetsid
            | E::TaskGetioprio
            | E::TaskSetscheduler
            | E::TaskGetscheduler => CellShape::Task,
            E::TaskSetnice | E::TaskSetioprio => CellShape::TaskValue,
            E::TaskPrlimit => CellShape::TaskPrlimit,
            E::TaskSetrlimit => CellShape::TaskSetrlimit,
            E::TaskPrctl => CellShape::TaskPrctl,
            E::KernelModuleRequest => CellShape::KernelModuleRequest,
            E::KernelLoadData => CellShape::KernelLoadData,
            E::KernelReadFile => CellShape::KernelReadFile,
            E::SbMount => CellShape::SbMount,
            E::SbUmount => CellShape::SbUmount,
            E::SbRemount => CellShape::SbRemount,
            E::SbStatfs | E::QuotaOn | E::InodeListxattr | E::InodeKillpriv => CellShape::Dentry,
            E::SbPivotroot | E::MoveMount => CellShape::TwoPaths,
            E::Quotactl => CellShape::Quotactl,
            E::ShmAssociate
            | E::ShmShmctl
            | E::ShmShmat
            | E::SemAssociate
            | E::SemSemctl
            | E::MsgQueueAssociate
            | E::MsgQueueMsgctl
            | E::MsgQueueMsgsnd => CellShape::IpcValue,
            E::SemSemop => CellShape::SemSemop,
            E::MsgQueueMsgrcv => CellShape::MsgRcv,
            E::IpcPermission => CellShape::IpcPermission,
            E::KeyAlloc => CellShape::KeyAlloc,
            E::KeyPermission => CellShape::KeyPermission,
            E::NetlinkSend => CellShape::NetlinkSend,
            E::InodeCreate | E::InodeMkdir => CellShape::InodeCreate,
            E::InodeUnlink | E::InodeRmdir => CellShape::InodeDirEntry,
            E::InodeLink => CellShape::InodeLink,
            E::InodeSymlink => CellShape::InodeSymlink,
            E::InodeMknod => CellShape::InodeMknod,
            E::InodeRename => CellShape::InodeRename,
            E::InodeSetattr => CellShape::InodeSetattr,
            E::InodeGetattr => CellShape::InodeGetattr,
            E::InodeSetxattr => CellShape::InodeSetxattr,
            E::InodeGetxattr | E::InodeRemovexattr => CellShape::InodeXattr,
            E::Syslog => CellShape::Syslog,
            E::Settime => CellShape::Settime,
            E::Bpf => CellShape::Bpf,
            E::BpfMap => CellShape::BpfMap,
            E::BpfProg => CellShape::BpfProg,
            E::TunDevCreate | E::TunDevAttach | E::TunDevOpen => CellShape::Empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_count() {
        // 87 kernel names (bprm_committed_creds .. capset) plus file_ioctl_compat.
        assert_eq!(EventType::ALL.len(), 88);
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.name()), Some(*t));
        }
        assert_eq!(EventType::from_name("nope"), None);
    }
}
