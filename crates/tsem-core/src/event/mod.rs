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

mod cell;
mod objects;

pub use cell::*;
pub use objects::*;

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
