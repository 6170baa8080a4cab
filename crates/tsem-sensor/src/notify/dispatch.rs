//! The dispatch of each decoded request (`decode.rs`) to the handler of its family, and the
//! answer to a handler's failure.

use tsem_core::event::{Cell, EventType};

use super::decode::Request;
use super::{Call, Fail, Notifier, Reply};
use crate::event::{Counters, EventHandler};

impl<H: EventHandler> Notifier<H> {
    /// Answer `call` by the handler of its request.
    pub(super) fn dispatch(&mut self, call: &mut Call) -> Reply {
        use Request as R;
        let r = match call.req {
            R::Open { path, flags, mode } => self.sys_open(call, path, flags, mode, 0),
            R::Openat2 { path, how, size } => self.sys_openat2(call, path, how, size),
            R::Exec { path, flags } => self.sys_exec(call, path, flags),
            R::Mmap { prot, flags, fd } => self.sys_mmap(call, prot, flags, fd),
            R::Socket { family, ty, proto } => self.sys_socket(call, family, ty, proto),
            R::Addr {
                fd,
                addr,
                len,
                bind,
            } => self.sys_addr(call, fd, addr, len, bind),
            R::Listen { fd, backlog } => self.sys_listen(call, fd, backlog),
            R::Accept { fd } => self.sys_accept(call, fd),
            R::SockQuery { fd, query } => self.sys_sock_query(call, fd, query),
            R::Socketpair { family, ty, proto } => self.sys_socketpair(call, family, ty, proto),
            R::Sendto {
                fd,
                buf,
                len,
                flags,
                name,
                namelen,
            } => self.sys_sendto(call, fd, (buf, len), flags, (name, namelen)),
            R::Sendmsg {
                fd,
                hdr,
                flags,
                batch,
            } => self.sys_sendmsg(call, fd, hdr, flags, batch),
            R::Recvmsg {
                fd,
                hdr,
                flags,
                batch,
            } => self.sys_recvmsg(call, fd, hdr, flags, batch),
            R::Signal { to, sig } => self.sys_kill(call, to, sig),
            R::Ptrace { req, pid } => self.sys_ptrace(call, req, pid),
            R::Setpgid { pid, pgid } => self.sys_setpgid(call, pid, pgid),
            R::Setrlimit { resource, new } => self.sys_rlimit(call, 0, resource, new, 0),
            R::Prlimit {
                pid,
                resource,
                new,
                old,
            } => self.sys_prlimit(call, pid, resource, new, old),
            R::TaskCell { ty, pid } => self.task_cell(call, ty, pid),
            R::Setpriority { which, who, nice } => self.sys_setpriority(call, which, who, nice),
            R::Ioprio {
                set,
                which,
                who,
                prio,
            } => self.sys_ioprio(call, set, which, who, prio),
            R::Capget { hdr, data } => self.sys_capget(call, hdr, data),
            R::Capset { hdr, data } => self.sys_capset(call, hdr, data),
            R::Prctl { option, args } => self.sys_prctl(call, option, args),
            R::Create { path, mode, dev } => self.sys_create(call, path, mode, dev),
            R::Unlink { path, flags } => self.sys_unlink(call, path, flags),
            R::Rename { old, new, flags } => self.sys_rename(call, old, new, flags),
            R::Link { old, new, flags } => self.sys_link(call, old, new, flags),
            R::Symlink { target, new } => self.sys_symlink(call, target, new),
            R::SetAttr { path, flags, what } => self.sys_setattr(call, path, flags, what),
            R::SetAttrFd { fd, what } => self.sys_setattr_fd(call, fd, what),
            R::Utimens { path, times, flags } => self.sys_utimens(call, path, times, flags),
            R::UtimesOld {
                path,
                times,
                utimbuf,
            } => self.sys_utimes_old(call, path, times, utimbuf),
            R::Stat {
                path,
                buf,
                flags,
                statx_mask,
            } => self.sys_getattr(call, path, buf, flags, statx_mask),
            R::Fstat { fd, buf } => self.sys_fstat(call, fd, buf),
            R::Ioctl { fd, cmd } => self.sys_file_cmd(call, fd, EventType::FileIoctl, cmd),
            R::Fcntl { fd, cmd, arg } => self.sys_fcntl(call, fd, cmd, arg),
            R::Flock { fd, op } => self.sys_flock(call, fd, op),
            R::Xattr { obj, name, op } => self.sys_xattr(call, obj, name, op),
            R::Mount {
                dev_name,
                path,
                fs_type,
                flags,
            } => self.sys_mount(call, dev_name, path, fs_type, flags),
            R::Umount { path, flags } => self.sys_umount(call, path, flags),
            R::TwoPaths { ty, a, b } => self.sys_two_paths(call, ty, a, b),
            R::InitModule => self.simple(
                call,
                EventType::KernelLoadData,
                Cell::KernelLoadData { id: 2, contents: 1 },
            ),
            R::FinitModule { fd, params, flags } => self.sys_finit_module(call, fd, params, flags),
            R::Bpf { cmd, size } => self.sys_bpf(call, cmd, size),
            R::AddKey => self.sys_add_key(call),
            R::Refused => Ok(self.refuse()),
            R::NoEvent(why) => Ok(self.no_event(why)),
            R::PidfdOpen { pid, flags } => self.sys_pidfd_open(call, pid, flags),
            R::PidfdGetfd { pidfd, fd, flags } => self.sys_pidfd_getfd(call, pidfd, fd, flags),
            R::PidfdSendSignal { pidfd, sig, flags } => {
                self.sys_pidfd_send_signal(call, pidfd, sig, flags)
            }
            R::ProcessVm { pid } => self.sys_process_vm(call, pid),
            R::Clone { flags } => Ok(self.sys_clone_untraced(call, flags)),
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
