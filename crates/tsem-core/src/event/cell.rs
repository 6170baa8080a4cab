//! The CELL of each event type, and its shape.

use super::*;

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
