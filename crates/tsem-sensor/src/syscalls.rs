//! The security-relevant syscalls the filter hands to the supervisor (x86_64 numbers).

macro_rules! syscalls {
    ($($variant:ident = $nr:ident, $name:literal;)*) => {
        /// A syscall the filter sends to the supervisor.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum Sysno {
            $($variant,)*
        }

        impl Sysno {
            /// Every notified syscall.
            pub const ALL: &'static [Sysno] = &[$(Sysno::$variant,)*];

            /// The x86_64 syscall number.
            pub const fn nr(self) -> i64 {
                match self {
                    $(Sysno::$variant => libc::$nr as i64,)*
                }
            }

            /// The syscall's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Sysno::$variant => $name,)*
                }
            }

            /// The notified syscall with number `nr`.
            pub fn from_nr(nr: i64) -> Option<Self> {
                $(if nr == libc::$nr as i64 { return Some(Sysno::$variant); })*
                None
            }
        }
    };
}

syscalls! {
    Open = SYS_open, "open";
    Openat = SYS_openat, "openat";
    Openat2 = SYS_openat2, "openat2";
    Creat = SYS_creat, "creat";
    Mmap = SYS_mmap, "mmap";
    Execve = SYS_execve, "execve";
    Execveat = SYS_execveat, "execveat";
    Socket = SYS_socket, "socket";
    Connect = SYS_connect, "connect";
    Bind = SYS_bind, "bind";
    Listen = SYS_listen, "listen";
    Accept = SYS_accept, "accept";
    Accept4 = SYS_accept4, "accept4";
    Kill = SYS_kill, "kill";
    Tkill = SYS_tkill, "tkill";
    Tgkill = SYS_tgkill, "tgkill";
    RtSigqueueinfo = SYS_rt_sigqueueinfo, "rt_sigqueueinfo";
    RtTgsigqueueinfo = SYS_rt_tgsigqueueinfo, "rt_tgsigqueueinfo";
    Ptrace = SYS_ptrace, "ptrace";
    Mkdir = SYS_mkdir, "mkdir";
    Mkdirat = SYS_mkdirat, "mkdirat";
    Unlink = SYS_unlink, "unlink";
    Unlinkat = SYS_unlinkat, "unlinkat";
    Rmdir = SYS_rmdir, "rmdir";
    Rename = SYS_rename, "rename";
    Renameat = SYS_renameat, "renameat";
    Renameat2 = SYS_renameat2, "renameat2";
    Link = SYS_link, "link";
    Linkat = SYS_linkat, "linkat";
    Symlink = SYS_symlink, "symlink";
    Symlinkat = SYS_symlinkat, "symlinkat";
    Mknod = SYS_mknod, "mknod";
    Mknodat = SYS_mknodat, "mknodat";
    Chmod = SYS_chmod, "chmod";
    Fchmod = SYS_fchmod, "fchmod";
    Fchmodat = SYS_fchmodat, "fchmodat";
    Fchmodat2 = SYS_fchmodat2, "fchmodat2";
    Chown = SYS_chown, "chown";
    Fchown = SYS_fchown, "fchown";
    Lchown = SYS_lchown, "lchown";
    Fchownat = SYS_fchownat, "fchownat";
    Truncate = SYS_truncate, "truncate";
    Ftruncate = SYS_ftruncate, "ftruncate";
    Utime = SYS_utime, "utime";
    Utimes = SYS_utimes, "utimes";
    Futimesat = SYS_futimesat, "futimesat";
    Utimensat = SYS_utimensat, "utimensat";
    Mount = SYS_mount, "mount";
    Umount2 = SYS_umount2, "umount2";
    PivotRoot = SYS_pivot_root, "pivot_root";
    MoveMount = SYS_move_mount, "move_mount";
    OpenTree = SYS_open_tree, "open_tree";
    Fsopen = SYS_fsopen, "fsopen";
    Fsmount = SYS_fsmount, "fsmount";
    MountSetattr = SYS_mount_setattr, "mount_setattr";
    InitModule = SYS_init_module, "init_module";
    FinitModule = SYS_finit_module, "finit_module";
    DeleteModule = SYS_delete_module, "delete_module";
    Capset = SYS_capset, "capset";
    Prctl = SYS_prctl, "prctl";
    Setpgid = SYS_setpgid, "setpgid";
    Setrlimit = SYS_setrlimit, "setrlimit";
    Prlimit64 = SYS_prlimit64, "prlimit64";
    SchedSetscheduler = SYS_sched_setscheduler, "sched_setscheduler";
    SchedSetparam = SYS_sched_setparam, "sched_setparam";
    SchedSetattr = SYS_sched_setattr, "sched_setattr";
    SchedSetaffinity = SYS_sched_setaffinity, "sched_setaffinity";
    SchedGetscheduler = SYS_sched_getscheduler, "sched_getscheduler";
    SchedGetparam = SYS_sched_getparam, "sched_getparam";
    SchedGetattr = SYS_sched_getattr, "sched_getattr";
    SchedGetaffinity = SYS_sched_getaffinity, "sched_getaffinity";
    SchedRrGetInterval = SYS_sched_rr_get_interval, "sched_rr_get_interval";
    Setpriority = SYS_setpriority, "setpriority";
    IoprioSet = SYS_ioprio_set, "ioprio_set";
    IoprioGet = SYS_ioprio_get, "ioprio_get";
    Getpgid = SYS_getpgid, "getpgid";
    Getsid = SYS_getsid, "getsid";
    Capget = SYS_capget, "capget";
    Socketpair = SYS_socketpair, "socketpair";
    Setxattr = SYS_setxattr, "setxattr";
    Lsetxattr = SYS_lsetxattr, "lsetxattr";
    Fsetxattr = SYS_fsetxattr, "fsetxattr";
    Getxattr = SYS_getxattr, "getxattr";
    Lgetxattr = SYS_lgetxattr, "lgetxattr";
    Fgetxattr = SYS_fgetxattr, "fgetxattr";
    Listxattr = SYS_listxattr, "listxattr";
    Llistxattr = SYS_llistxattr, "llistxattr";
    Flistxattr = SYS_flistxattr, "flistxattr";
    Removexattr = SYS_removexattr, "removexattr";
    Lremovexattr = SYS_lremovexattr, "lremovexattr";
    Fremovexattr = SYS_fremovexattr, "fremovexattr";
    // Calls that change what later events are described with (credentials, umask, root): the
    // supervisor drops its cached view of the caller's /proc status on them.
    Setuid = SYS_setuid, "setuid";
    Setgid = SYS_setgid, "setgid";
    Setreuid = SYS_setreuid, "setreuid";
    Setregid = SYS_setregid, "setregid";
    Setresuid = SYS_setresuid, "setresuid";
    Setresgid = SYS_setresgid, "setresgid";
    Setfsuid = SYS_setfsuid, "setfsuid";
    Setfsgid = SYS_setfsgid, "setfsgid";
    Setgroups = SYS_setgroups, "setgroups";
    Umask = SYS_umask, "umask";
    Chroot = SYS_chroot, "chroot";
    Unshare = SYS_unshare, "unshare";
    Setns = SYS_setns, "setns";
    // The stat family (inode_getattr): notified only when asked for ([`Observe`]), as every
    // program calls them constantly.
    Stat = SYS_stat, "stat";
    Lstat = SYS_lstat, "lstat";
    Fstat = SYS_fstat, "fstat";
    Newfstatat = SYS_newfstatat, "newfstatat";
    Statx = SYS_statx, "statx";
    // file_ioctl, file_fcntl, file_lock: likewise only on request.
    Ioctl = SYS_ioctl, "ioctl";
    Fcntl = SYS_fcntl, "fcntl";
    Flock = SYS_flock, "flock";
    // socket_getsockname, socket_getpeername, socket_setsockopt, socket_shutdown: on request.
    Getsockname = SYS_getsockname, "getsockname";
    Getpeername = SYS_getpeername, "getpeername";
    Setsockopt = SYS_setsockopt, "setsockopt";
    Shutdown = SYS_shutdown, "shutdown";
    // Sends with a destination (socket_sendmsg), and descriptors received over SCM_RIGHTS
    // (file_receive): performed by the supervisor on its copy of the arguments (notify/net.rs).
    Sendto = SYS_sendto, "sendto";
    Sendmsg = SYS_sendmsg, "sendmsg";
    Sendmmsg = SYS_sendmmsg, "sendmmsg";
    Recvmsg = SYS_recvmsg, "recvmsg";
    Recvmmsg = SYS_recvmmsg, "recvmmsg";
    // bpf and key_alloc are described; SysV IPC, request_key and keyctl reach objects the
    // sensor cannot describe and are refused (notify/ipc.rs).
    Bpf = SYS_bpf, "bpf";
    AddKey = SYS_add_key, "add_key";
    RequestKey = SYS_request_key, "request_key";
    Keyctl = SYS_keyctl, "keyctl";
    Shmget = SYS_shmget, "shmget";
    Shmat = SYS_shmat, "shmat";
    Shmctl = SYS_shmctl, "shmctl";
    Semget = SYS_semget, "semget";
    Semop = SYS_semop, "semop";
    Semtimedop = SYS_semtimedop, "semtimedop";
    Semctl = SYS_semctl, "semctl";
    Msgget = SYS_msgget, "msgget";
    Msgsnd = SYS_msgsnd, "msgsnd";
    Msgrcv = SYS_msgrcv, "msgrcv";
    Msgctl = SYS_msgctl, "msgctl";
    // Calls that reach another task's memory, descriptors or signals: task_kill and
    // ptrace_access_check, and never the supervisor (see notify/reach.rs).
    PidfdOpen = SYS_pidfd_open, "pidfd_open";
    PidfdGetfd = SYS_pidfd_getfd, "pidfd_getfd";
    PidfdSendSignal = SYS_pidfd_send_signal, "pidfd_send_signal";
    ProcessVmReadv = SYS_process_vm_readv, "process_vm_readv";
    ProcessVmWritev = SYS_process_vm_writev, "process_vm_writev";
    // Notified only with CLONE_UNTRACED (refused: the child would escape ptrace).
    Clone = SYS_clone, "clone";
}

/// Hot events, observed only on request ([`Observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hot {
    /// inode_getattr: stat, lstat, fstat, newfstatat, statx.
    Getattr,
    /// file_ioctl: ioctl.
    Ioctl,
    /// file_fcntl: fcntl.
    Fcntl,
    /// file_lock: flock, and fcntl's record locks.
    Lock,
    /// socket_getsockname, socket_getpeername, socket_setsockopt, socket_shutdown.
    Socket,
}

/// Which hot events to observe (all off by default: every program makes these calls
/// constantly, and each observed call costs a notification round trip).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observe {
    /// inode_getattr.
    pub getattr: bool,
    /// file_ioctl.
    pub ioctl: bool,
    /// file_fcntl.
    pub fcntl: bool,
    /// file_lock.
    pub lock: bool,
    /// socket_getsockname, socket_getpeername, socket_setsockopt, socket_shutdown.
    pub socket: bool,
}

impl Observe {
    /// Everything.
    pub const ALL: Observe = Observe {
        getattr: true,
        ioctl: true,
        fcntl: true,
        lock: true,
        socket: true,
    };

    /// Whether `hot` is observed.
    pub const fn wants(self, hot: Hot) -> bool {
        match hot {
            Hot::Getattr => self.getattr,
            Hot::Ioctl => self.ioctl,
            Hot::Fcntl => self.fcntl,
            Hot::Lock => self.lock,
            Hot::Socket => self.socket,
        }
    }

    /// Whether the filter must notify `s`.
    pub const fn notifies(self, s: Sysno) -> bool {
        match s {
            // fcntl carries the record locks too.
            Sysno::Fcntl => self.fcntl || self.lock,
            _ => match s.hot() {
                Some(h) => self.wants(h),
                None => true,
            },
        }
    }

    /// Parse a comma-separated list: `getattr`, `ioctl`, `fcntl`, `lock`, `socket`, `all`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut o = Observe::default();
        for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "getattr" => o.getattr = true,
                "ioctl" => o.ioctl = true,
                "fcntl" => o.fcntl = true,
                "lock" => o.lock = true,
                "socket" => o.socket = true,
                "all" => o = Observe::ALL,
                other => {
                    return Err(format!(
                        "unknown event class {other:?} (getattr, ioctl, fcntl, lock, socket, all)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// Extra in-kernel condition under which a syscall is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Always notified.
    Always,
    /// `mmap`: mappings of a file (not `MAP_ANONYMOUS`, fd != -1) whatever the protection, and
    /// anonymous executable mappings: TSEM's mmap_file skips only anonymous non-executable ones.
    MmapFile,
    /// `prlimit64`: unless it only reads the caller's own limits (pid 0, no new limit), which
    /// reaches no LSM hook (`check_prlimit_permission` returns early for the current task).
    PrlimitWrite,
    /// `sendto`: only with a destination address (argument 4 not NULL). Sends on connected
    /// sockets, the hot case, stay in the kernel; their destination was checked at connect.
    SendtoAddr,
    /// `clone`: only with `CLONE_UNTRACED` in its flags (a register argument), which the
    /// supervisor refuses: the child would run without exec stops or inherited identity.
    CloneUntraced,
}

impl Sysno {
    /// Whether the call can change the caller's credentials, umask, comm or root, so that a
    /// cached view of them must be dropped. `prctl` may rename the task or change capabilities.
    pub const fn invalidates_status(self) -> bool {
        matches!(
            self,
            Sysno::Setuid
                | Sysno::Setgid
                | Sysno::Setreuid
                | Sysno::Setregid
                | Sysno::Setresuid
                | Sysno::Setresgid
                | Sysno::Setfsuid
                | Sysno::Setfsgid
                | Sysno::Setgroups
                | Sysno::Umask
                | Sysno::Chroot
                | Sysno::Unshare
                | Sysno::Setns
                | Sysno::Capset
                | Sysno::Prctl
                | Sysno::PivotRoot
        )
    }

    /// Whether this call, given its first argument, can change what [`Sysno::invalidates_status`]
    /// guards: every call that may, except the `prctl` options that only read (busybox asks
    /// `PR_GET_NAME` at the start of every applet; dropping the cached status for it cost a
    /// `/proc/<tid>/status` read at the task's next call). The kernel takes the option as an
    /// `int`: the low 32 bits of the register.
    pub fn invalidates_status_with(self, arg0: u64) -> bool {
        if self == Sysno::Prctl {
            return !matches!(
                arg0 as u32 as i32,
                libc::PR_GET_NAME
                    | libc::PR_GET_DUMPABLE
                    | libc::PR_GET_KEEPCAPS
                    | libc::PR_CAPBSET_READ
                    | libc::PR_GET_SECUREBITS
                    | libc::PR_GET_NO_NEW_PRIVS
            );
        }
        self.invalidates_status()
    }

    /// Whether the call can change the root an `fs_struct` holds, which other tasks may share
    /// (`CLONE_FS`) and so see changed without a call of their own. (The umask, also there, is
    /// read afresh for each create instead.)
    pub const fn changes_shared_fs(self) -> bool {
        matches!(
            self,
            Sysno::Chroot | Sysno::PivotRoot | Sysno::Setns | Sysno::Unshare
        )
    }

    /// The hot event class of this call, notified only on request.
    pub const fn hot(self) -> Option<Hot> {
        match self {
            Sysno::Stat | Sysno::Lstat | Sysno::Fstat | Sysno::Newfstatat | Sysno::Statx => {
                Some(Hot::Getattr)
            }
            Sysno::Ioctl => Some(Hot::Ioctl),
            Sysno::Fcntl => Some(Hot::Fcntl),
            Sysno::Flock => Some(Hot::Lock),
            Sysno::Getsockname | Sysno::Getpeername | Sysno::Setsockopt | Sysno::Shutdown => {
                Some(Hot::Socket)
            }
            _ => None,
        }
    }

    /// When the filter notifies this syscall.
    pub const fn cond(self) -> Cond {
        match self {
            Sysno::Mmap => Cond::MmapFile,
            Sysno::Prlimit64 => Cond::PrlimitWrite,
            Sysno::Sendto => Cond::SendtoAddr,
            Sysno::Clone => Cond::CloneUntraced,
            _ => Cond::Always,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn observe_lists_parse() {
        let o = Observe::parse("getattr, lock").unwrap();
        assert!(o.getattr && o.lock && !o.ioctl && !o.fcntl);
        assert_eq!(Observe::parse("all").unwrap(), Observe::ALL);
        assert_eq!(Observe::parse("").unwrap(), Observe::default());
        assert!(
            Observe::parse("stat")
                .unwrap_err()
                .contains("unknown event class")
        );
        // Record locks come through fcntl: observing locks alone still notifies fcntl.
        let locks = Observe::parse("lock").unwrap();
        assert!(locks.notifies(Sysno::Fcntl) && locks.notifies(Sysno::Flock));
        assert!(!locks.notifies(Sysno::Ioctl) && !locks.notifies(Sysno::Stat));
        assert!(Observe::default().notifies(Sysno::Openat));
    }

    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in Sysno::ALL {
            assert!(seen.insert(s.nr()), "duplicate nr for {}", s.name());
            assert_eq!(Sysno::from_nr(s.nr()), Some(*s));
        }
        assert_eq!(Sysno::Openat.nr(), 257);
        assert_eq!(Sysno::Execve.nr(), 59);
        assert_eq!(Sysno::from_nr(libc::SYS_read), None);
        assert_eq!(Sysno::from_nr(libc::SYS_write), None);
    }
}
