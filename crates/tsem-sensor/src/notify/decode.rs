//! Raw seccomp arguments, decoded and dispatched to the handler of each family.

use tsem_core::event::{Cell, EventType};

use super::{Call, Fail, Notifier, Reply, SetAttr};
use crate::event::{Counters, EventHandler};
use crate::syscalls::Sysno;

impl<H: EventHandler> Notifier<H> {
    pub(super) fn dispatch(&mut self, call: &mut Call) -> Reply {
        let a = call.n.args;
        let r = match call.sys {
            Sysno::Open => self.sys_open(call, libc::AT_FDCWD as i64, a[0], a[1], a[2], 0),
            Sysno::Openat => self.sys_open(call, a[0] as i64, a[1], a[2], a[3], 0),
            Sysno::Creat => self.sys_open(
                call,
                libc::AT_FDCWD as i64,
                a[0],
                (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
                a[1],
                0,
            ),
            Sysno::Openat2 => self.sys_openat2(call),
            Sysno::Execve => self.sys_exec(call, libc::AT_FDCWD as i64, a[0], 0),
            Sysno::Execveat => self.sys_exec(call, a[0] as i64, a[1], a[4] as i32),
            Sysno::Mmap => self.sys_mmap(call),
            Sysno::Socket => self.sys_socket(call),
            Sysno::Connect | Sysno::Bind => self.sys_addr(call),
            Sysno::Listen => self.sys_listen(call),
            Sysno::Accept | Sysno::Accept4 => self.sys_accept(call),
            Sysno::Kill
            | Sysno::Tkill
            | Sysno::Tgkill
            | Sysno::RtSigqueueinfo
            | Sysno::RtTgsigqueueinfo => self.sys_kill(call),
            Sysno::Ptrace => self.sys_ptrace(call),
            Sysno::Mkdir => self.sys_create(call, libc::AT_FDCWD as i64, a[0], a[1] as u32, None),
            Sysno::Mkdirat => self.sys_create(call, a[0] as i64, a[1], a[2] as u32, None),
            Sysno::Mknod => {
                self.sys_create(call, libc::AT_FDCWD as i64, a[0], a[1] as u32, Some(a[2]))
            }
            Sysno::Mknodat => self.sys_create(call, a[0] as i64, a[1], a[2] as u32, Some(a[3])),
            Sysno::Unlink => self.sys_unlink(call, libc::AT_FDCWD as i64, a[0], 0),
            Sysno::Rmdir => self.sys_unlink(call, libc::AT_FDCWD as i64, a[0], libc::AT_REMOVEDIR),
            Sysno::Unlinkat => self.sys_unlink(call, a[0] as i64, a[1], a[2] as i32),
            Sysno::Rename => self.sys_rename(
                call,
                libc::AT_FDCWD as i64,
                a[0],
                libc::AT_FDCWD as i64,
                a[1],
                0,
            ),
            Sysno::Renameat => self.sys_rename(call, a[0] as i64, a[1], a[2] as i64, a[3], 0),
            Sysno::Renameat2 => {
                self.sys_rename(call, a[0] as i64, a[1], a[2] as i64, a[3], a[4] as u32)
            }
            Sysno::Link => self.sys_link(
                call,
                libc::AT_FDCWD as i64,
                a[0],
                libc::AT_FDCWD as i64,
                a[1],
                0,
            ),
            Sysno::Linkat => self.sys_link(call, a[0] as i64, a[1], a[2] as i64, a[3], a[4] as i32),
            Sysno::Symlink => self.sys_symlink(call, a[0], libc::AT_FDCWD as i64, a[1]),
            Sysno::Symlinkat => self.sys_symlink(call, a[0], a[1] as i64, a[2]),
            Sysno::Chmod => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                0,
                SetAttr::Mode(a[1] as u32),
            ),
            Sysno::Fchmod => self.sys_setattr_fd(call, a[0] as i32, SetAttr::Mode(a[1] as u32)),
            Sysno::Fchmodat => {
                self.sys_setattr(call, a[0] as i64, Some(a[1]), 0, SetAttr::Mode(a[2] as u32))
            }
            Sysno::Fchmodat2 => self.sys_setattr(
                call,
                a[0] as i64,
                Some(a[1]),
                a[3] as i32,
                SetAttr::Mode(a[2] as u32),
            ),
            Sysno::Chown => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                0,
                SetAttr::Owner(a[1] as u32, a[2] as u32),
            ),
            Sysno::Lchown => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                libc::AT_SYMLINK_NOFOLLOW,
                SetAttr::Owner(a[1] as u32, a[2] as u32),
            ),
            Sysno::Fchown => {
                self.sys_setattr_fd(call, a[0] as i32, SetAttr::Owner(a[1] as u32, a[2] as u32))
            }
            Sysno::Fchownat => self.sys_setattr(
                call,
                a[0] as i64,
                Some(a[1]),
                a[4] as i32,
                SetAttr::Owner(a[2] as u32, a[3] as u32),
            ),
            Sysno::Truncate => self.sys_setattr(
                call,
                libc::AT_FDCWD as i64,
                Some(a[0]),
                0,
                SetAttr::Size(a[1] as i64),
            ),
            Sysno::Ftruncate => self.sys_setattr_fd(call, a[0] as i32, SetAttr::Size(a[1] as i64)),
            Sysno::Utimensat => self.sys_utimens(call),
            Sysno::Utime | Sysno::Utimes | Sysno::Futimesat => self.sys_utimes_old(call),
            Sysno::Mount => self.sys_mount(call),
            Sysno::Umount2 => self.sys_umount(call),
            Sysno::PivotRoot => self.sys_two_paths(
                call,
                EventType::SbPivotroot,
                libc::AT_FDCWD as i64,
                a[0],
                libc::AT_FDCWD as i64,
                a[1],
            ),
            Sysno::MoveMount => self.sys_two_paths(
                call,
                EventType::MoveMount,
                a[0] as i64,
                a[1],
                a[2] as i64,
                a[3],
            ),
            Sysno::InitModule => self.simple(
                call,
                EventType::KernelLoadData,
                Cell::KernelLoadData { id: 2, contents: 1 },
            ),
            Sysno::FinitModule => self.sys_finit_module(call),
            Sysno::Capset => self.sys_capset(call),
            Sysno::Prctl => self.sys_prctl(call),
            Sysno::Setpgid => self.sys_setpgid(call),
            Sysno::Setrlimit => self.sys_rlimit(call, 0, a[0], a[1]),
            Sysno::Prlimit64 => self.sys_prlimit(call),
            Sysno::SchedSetscheduler
            | Sysno::SchedSetparam
            | Sysno::SchedSetattr
            | Sysno::SchedSetaffinity => {
                self.task_cell(call, EventType::TaskSetscheduler, a[0] as i32)
            }
            Sysno::SchedGetscheduler
            | Sysno::SchedGetparam
            | Sysno::SchedGetattr
            | Sysno::SchedGetaffinity
            | Sysno::SchedRrGetInterval => {
                self.task_cell(call, EventType::TaskGetscheduler, a[0] as i32)
            }
            Sysno::Getpgid | Sysno::Getsid if a[0] as i32 == 0 => {
                Ok(self
                    .no_event("getpgid/getsid of the caller: the kernel checks other tasks only"))
            }
            Sysno::Getpgid => self.task_cell(call, EventType::TaskGetpgid, a[0] as i32),
            Sysno::Getsid => self.task_cell(call, EventType::TaskGetsid, a[0] as i32),
            Sysno::Setpriority => self.sys_setpriority(call),
            Sysno::IoprioSet => self.sys_ioprio(call, true),
            Sysno::IoprioGet => self.sys_ioprio(call, false),
            Sysno::Capget => self.sys_capget(call),
            Sysno::Stat => self.sys_getattr(call, i64::from(libc::AT_FDCWD), a[0], a[1], 0, None),
            Sysno::Lstat => self.sys_getattr(
                call,
                i64::from(libc::AT_FDCWD),
                a[0],
                a[1],
                libc::AT_SYMLINK_NOFOLLOW,
                None,
            ),
            Sysno::Newfstatat => self.sys_getattr(call, a[0] as i64, a[1], a[2], a[3] as i32, None),
            Sysno::Statx => self.sys_getattr(
                call,
                a[0] as i64,
                a[1],
                a[4],
                a[2] as i32,
                Some(a[3] as u32),
            ),
            Sysno::Ioctl => self.sys_file_cmd(call, a[0] as i32, EventType::FileIoctl, a[1] as u32),
            Sysno::Fcntl => self.sys_fcntl(call),
            Sysno::Flock => self.sys_flock(call),
            Sysno::Getsockname | Sysno::Getpeername | Sysno::Setsockopt | Sysno::Shutdown => {
                self.sys_sock_query(call)
            }
            Sysno::Fstat => match self.target_file(call, a[0] as i32) {
                // The caller holds the descriptor: no permission is checked on it.
                Ok(f) => self.getattr_of(call, f, a[1], 0, None, true),
                Err(e) => Err(e),
            },
            Sysno::Socketpair => self.sys_socketpair(call),
            Sysno::Setxattr
            | Sysno::Lsetxattr
            | Sysno::Fsetxattr
            | Sysno::Getxattr
            | Sysno::Lgetxattr
            | Sysno::Fgetxattr
            | Sysno::Listxattr
            | Sysno::Llistxattr
            | Sysno::Flistxattr
            | Sysno::Removexattr
            | Sysno::Lremovexattr
            | Sysno::Fremovexattr => self.sys_xattr(call),
            Sysno::Sendto => self.sys_sendto(call),
            Sysno::Sendmsg | Sysno::Sendmmsg => self.sys_sendmsg(call),
            Sysno::Recvmsg | Sysno::Recvmmsg => self.sys_recvmsg(call),
            Sysno::Bpf => self.sys_bpf(call),
            Sysno::AddKey => self.sys_add_key(call),
            Sysno::RequestKey
            | Sysno::Keyctl
            | Sysno::Shmget
            | Sysno::Shmat
            | Sysno::Shmctl
            | Sysno::Semget
            | Sysno::Semop
            | Sysno::Semtimedop
            | Sysno::Semctl
            | Sysno::Msgget
            | Sysno::Msgsnd
            | Sysno::Msgrcv
            | Sysno::Msgctl => Ok(self.refuse()),
            // Listed one by one (not `invalidates_status()`), so a syscall added without a
            // handler fails to compile. These only drop the cached status (above); no event.
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
            | Sysno::OpenTree
            | Sysno::Fsopen
            | Sysno::Fsmount
            | Sysno::MountSetattr
            | Sysno::DeleteModule => Ok(self.no_event(
                "no TSEM event: credential and root changes reach later events through the COE \
                 and the task's root; the mount API and delete_module map to none",
            )),
            Sysno::PidfdOpen => self.sys_pidfd_open(call),
            Sysno::PidfdGetfd => self.sys_pidfd_getfd(call),
            Sysno::PidfdSendSignal => self.sys_pidfd_send_signal(call),
            Sysno::ProcessVmReadv | Sysno::ProcessVmWritev => self.sys_process_vm(call),
            Sysno::Clone => Ok(self.sys_clone_untraced(call)),
        };
        match r {
            Ok(r) => r,
            Err(Fail::Errno(e)) => {
                if e == libc::ESRCH && !self.valid(call) {
                    Reply::Gone
                } else {
                    Reply::Error(e)
                }
            }
            Err(Fail::Undecodable(e)) => {
                Counters::bump(&self.shared.counters.undecodable);
                Reply::Error(e)
            }
            Err(Fail::Fallback) => {
                // The supervisor can neither describe nor perform the call as the task would:
                // refused in every mode (there is no verdict to continue it with).
                Counters::bump(&self.shared.counters.unfaithful);
                Reply::Error(libc::EPERM)
            }
        }
    }
}
