//! Which requests' events are read from the caller's memory (`Request::reads_memory`): the
//! classification `Notifier::simple` enforces, so that no call whose event the kernel would
//! read again after the verdict is continued under `--enforce`.

use super::decode::Request;

impl Request {
    /// Whether the call's event is described from the caller's memory (a path, a name, a
    /// value, a structure), which the kernel would read again if the call were continued: a
    /// thread of the caller can change it between the verdict and the kernel's read. Such a
    /// call is performed by the supervisor on its own copy, or refused under enforcement:
    /// [`Notifier::simple`](super::Notifier) continues only calls for which this is false.
    /// The match is exhaustive so that a new request must be classified.
    pub(super) fn reads_memory(&self) -> bool {
        use Request as R;
        match self {
            R::Open { .. }
            | R::Openat2 { .. }
            | R::Exec { .. }
            | R::Addr { .. }
            | R::Sendto { .. }
            | R::Sendmsg { .. }
            | R::Recvmsg { .. }
            | R::Setrlimit { .. }
            | R::Capget { .. }
            | R::Create { .. }
            | R::Unlink { .. }
            | R::Rename { .. }
            | R::Link { .. }
            | R::Symlink { .. }
            | R::SetAttr { .. }
            | R::Utimens { .. }
            | R::UtimesOld { .. }
            | R::Stat { .. }
            | R::Xattr { .. }
            | R::Mount { .. }
            | R::Umount { .. }
            | R::TwoPaths { .. } => true,
            R::Prlimit { new, .. } => *new != 0,
            // struct flock's l_type is the lock's event.
            R::Fcntl { cmd, .. } => matches!(
                *cmd,
                libc::F_SETLK | libc::F_SETLKW | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
            ),
            // The capabilities a capset applies are what every later event of the task carries
            // (its COE is read afresh after the call, `Sysno::invalidates_status`), whatever its
            // buffer held when the kernel read it again: the model decides on the result from
            // the next event on. No task can set another's capabilities, so refusing it would
            // refuse every privilege drop (setpriv, su, libcap) under enforcement.
            R::Capset { .. } => false,
            // Their events are registers and descriptors only (what the kernel then reads from
            // memory, a module image, bpf attributes, a key payload, iovecs, siginfo, is not
            // part of the event).
            R::Mmap { .. }
            | R::Socket { .. }
            | R::Listen { .. }
            | R::Accept { .. }
            | R::SockQuery { .. }
            | R::Socketpair { .. }
            | R::Signal { .. }
            | R::Ptrace { .. }
            | R::Setpgid { .. }
            | R::TaskCell { .. }
            | R::Setpriority { .. }
            | R::Ioprio { .. }
            | R::Prctl { .. }
            | R::SetAttrFd { .. }
            | R::Fstat { .. }
            | R::Ioctl { .. }
            | R::Flock { .. }
            | R::InitModule
            | R::FinitModule { .. }
            | R::Bpf { .. }
            | R::AddKey
            | R::PidfdOpen { .. }
            | R::PidfdGetfd { .. }
            | R::PidfdSendSignal { .. }
            | R::ProcessVm { .. }
            | R::Clone { .. }
            | R::Refused
            | R::NoEvent(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::decode;
    use crate::syscalls::Sysno;

    /// The calls whose event is read from the caller's memory are marked, so that
    /// `Notifier::simple` refuses them under enforcement instead of letting the kernel re-read.
    #[test]
    fn memory_dependent_requests_are_marked() {
        let marked = |s: Sysno, a: [u64; 6]| decode(s, &a).reads_memory();
        for s in [
            Sysno::Mount,
            Sysno::Umount2,
            Sysno::PivotRoot,
            Sysno::Utime,
            Sysno::Utimes,
            Sysno::Setxattr,
            Sysno::Fsetxattr,
            Sysno::Setrlimit,
            Sysno::Capget,
        ] {
            assert!(marked(s, [1, 2, 3, 4, 5, 6]), "{s:?}");
        }
        // prlimit64 reads memory only when it sets a limit.
        assert!(marked(Sysno::Prlimit64, [1, 2, 3, 0, 0, 0]));
        assert!(!marked(Sysno::Prlimit64, [1, 2, 0, 4, 0, 0]));
        // fcntl only for record locks (struct flock's l_type).
        assert!(marked(Sysno::Fcntl, [1, libc::F_SETLK as u64, 3, 0, 0, 0]));
        assert!(!marked(Sysno::Fcntl, [1, libc::F_GETFL as u64, 3, 0, 0, 0]));
        for s in [
            Sysno::Kill,
            Sysno::Listen,
            Sysno::Ioctl,
            Sysno::Mmap,
            Sysno::Prctl,
            Sysno::Setpgid,
            Sysno::FinitModule,
        ] {
            assert!(!marked(s, [1, 2, 3, 4, 5, 6]), "{s:?}");
        }
    }
}
