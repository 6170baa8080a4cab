//! Messages the kernel would act on after reading the caller's memory again (issue 9, classes
//! 5-7): sends with a destination, descriptors received over `SCM_RIGHTS`, and Unix socket
//! addresses relative to the caller's working directory.
//!
//! The supervisor performs each of these calls itself, on the caller's socket (`pidfd_getfd`)
//! and on its own copy of every argument, so a buffer flipped after the check changes nothing:
//!
//! * `sendto` with a destination (the filter lets the others through), `sendmsg` and
//!   `sendmmsg`: TSEM's socket_sendmsg when a destination is given (that includes TCP Fast Open,
//!   which connects inside the send); address-less sends produce no event (their destination
//!   was checked at connect) but are still performed from the copy, as the msghdr could gain a
//!   destination after the check. Descriptors passed along are the caller's, duplicated;
//!   `SCM_CREDENTIALS` cannot be sent on the caller's behalf and is refused. `sendmmsg` sends
//!   the first message only (a short count, as the call allows).
//! * `recvmsg` and `recvmmsg`: received into the supervisor, then every descriptor is TSEM's
//!   file_receive; the allowed ones are installed in the caller (`ADDFD`), a denied one ends
//!   the list with `MSG_CTRUNC`, as the kernel does when `security_file_receive` fails. Data,
//!   address, control and flags are written back into the caller. `recvmmsg` receives one.
//! * Relative `AF_UNIX` addresses (connect, bind, send): performed by a helper thread whose
//!   working directory is the caller's, pinned when the call was checked.
//!
//! A call that would block is performed on a helper thread, which answers the notification;
//! the caller then waits as in an uninterruptible call (only a fatal signal ends the wait).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use tsem_core::event::{Cell, EventType};

use super::target::Link;
use super::{Call, Counters, EventHandler, Fail, Notifier, Reply, errno_of, mem_fail};
use crate::sys::{self, Response, acts};

/// At most this much data is copied for one send or receive (a stream send is then short).
const DATA_MAX: usize = 4 << 20;
/// `sysctl net.core.optmem_max` is well below this.
const CONTROL_MAX: usize = 64 << 10;
/// `sizeof(struct sockaddr_storage)`.
const NAME_MAX: usize = 128;
/// `UIO_MAXIOV`.
const IOV_MAX: u64 = 1024;
/// `sizeof(struct msghdr)`; `struct mmsghdr` adds `msg_len` at this offset.
const MSGHDR: usize = 56;

/// The fields of a `struct msghdr` the supervisor uses.
#[derive(Debug, Clone, Copy)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
}

fn word(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

impl MsgHdr {
    fn parse(b: &[u8]) -> Self {
        Self {
            name: word(b, 0),
            namelen: word(b, 8) as u32,
            iov: word(b, 16),
            iovlen: word(b, 24),
            control: word(b, 32),
            controllen: word(b, 40),
        }
    }
}

/// Linux's `-ERESTARTSYS` (not in the uapi): the call restarts after the signal handler if it
/// has `SA_RESTART`, else fails with EINTR.
const ERESTARTSYS: i32 = 512;

/// How often a waiting receive looks for a signal to its caller and for the caller's end.
const WAIT_SLICE_MS: i32 = 100;

/// Whether thread `tid` of `tgid` has a caught, unblocked signal pending: a receive waiting for
/// it must end so the handler runs, as a native interruptible wait would.
fn handled_signal_pending(tgid: i32, tid: i32) -> bool {
    let Ok(t) = std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/status")) else {
        return false;
    };
    let field = |k: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (field("SigPnd:") | field("ShdPnd:")) & !field("SigBlk:") & field("SigCgt:") != 0
}

/// A receive checked and ready to run.
struct RecvJob {
    sock: OwnedFd,
    hdr: u64,
    h: MsgHdr,
    iov: Vec<(u64, usize)>,
    flags: i32,
    mmsg: bool,
    /// Performed by a helper after waiting for data (the receive itself does not block).
    waited: bool,
}

impl<H: EventHandler> Notifier<H> {
    fn msghdr(&self, call: &Call, addr: u64) -> Result<MsgHdr, Fail> {
        Ok(MsgHdr::parse(&self.read_mem(call.tid, addr, MSGHDR)?))
    }

    fn iovecs(&self, call: &Call, h: &MsgHdr) -> Result<Vec<(u64, usize)>, Fail> {
        if h.iovlen > IOV_MAX {
            return Err(Fail::Errno(libc::EMSGSIZE));
        }
        if h.iovlen == 0 {
            return Ok(Vec::new());
        }
        let b = self.read_mem(call.tid, h.iov, h.iovlen as usize * 16)?;
        let mut v = Vec::new();
        for i in 0..h.iovlen as usize {
            let len = word(&b, i * 16 + 8);
            if len > isize::MAX as u64 {
                return Err(Fail::Errno(libc::EINVAL));
            }
            v.push((word(&b, i * 16), len as usize));
        }
        Ok(v)
    }

    fn gather(&self, call: &Call, iov: &[(u64, usize)]) -> Result<Vec<u8>, Fail> {
        self.task
            .gather(call.tid, iov, DATA_MAX)
            .map_err(|e| mem_fail(&e))
    }

    pub(super) fn sys_sendto(
        &mut self,
        call: &mut Call,
        fd: i32,
        (buf, len): (u64, u64),
        flags: i32,
        (name_addr, namelen): (u64, u32),
    ) -> Result<Reply, Fail> {
        let alen = namelen as usize;
        if alen > NAME_MAX {
            return Err(Fail::Errno(libc::EINVAL));
        }
        let name = if name_addr != 0 && alen > 0 {
            self.read_mem(call.tid, name_addr, alen)?
        } else {
            Vec::new()
        };
        let data = self.gather(call, &[(buf, len as usize)])?;
        self.send(call, fd, name, data, Vec::new(), flags, None)
    }

    pub(super) fn sys_sendmsg(
        &mut self,
        call: &mut Call,
        fd: i32,
        hdr: u64,
        flags: i32,
        batch: Option<u32>,
    ) -> Result<Reply, Fail> {
        if batch == Some(0) {
            return Ok(Reply::Value(0));
        }
        let mmsg = batch.map(|_| hdr);
        let h = self.msghdr(call, hdr)?;
        let name = if h.name != 0 && h.namelen > 0 {
            if h.namelen as usize > NAME_MAX {
                return Err(Fail::Errno(libc::EINVAL));
            }
            self.read_mem(call.tid, h.name, h.namelen as usize)?
        } else {
            Vec::new()
        };
        let iov = self.iovecs(call, &h)?;
        let data = self.gather(call, &iov)?;
        let control = if h.control != 0 && h.controllen > 0 {
            if h.controllen as usize > CONTROL_MAX {
                return Err(Fail::Errno(libc::ENOBUFS));
            }
            self.read_mem(call.tid, h.control, h.controllen as usize)?
        } else {
            Vec::new()
        };
        self.send(call, fd, name, data, control, flags, mmsg)
    }

    /// The caller's control bytes with each `SCM_RIGHTS` descriptor replaced by the
    /// supervisor's duplicate (kept alive in the second element until the send).
    fn rights_out(
        &mut self,
        call: &Call,
        mut control: Vec<u8>,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), Fail> {
        let mut kept = Vec::new();
        for c in acts::cmsgs(&control) {
            if c.level != libc::SOL_SOCKET {
                continue;
            }
            if c.kind == libc::SCM_CREDENTIALS {
                // The kernel checks these against the sender, which would be the supervisor.
                Counters::bump(&self.shared.counters.refused);
                return Err(Fail::Errno(libc::EPERM));
            }
            if c.kind == libc::SCM_RIGHTS {
                let mut at = c.data.start;
                while at + 4 <= c.data.end {
                    let n = i32::from_ne_bytes([
                        control[at],
                        control[at + 1],
                        control[at + 2],
                        control[at + 3],
                    ]);
                    let f = self.target_file(call, n)?;
                    control[at..at + 4].copy_from_slice(&f.as_raw_fd().to_ne_bytes());
                    kept.push(f);
                    at += 4;
                }
            }
        }
        Ok((control, kept))
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        call: &mut Call,
        fd: i32,
        name: Vec<u8>,
        data: Vec<u8>,
        control: Vec<u8>,
        flags: i32,
        mmsg: Option<u64>,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        // Only a destination is described; without one the kernel's own send on our copy
        // tells a non-socket apart (ENOTSOCK).
        let sock = if name.is_empty() {
            None
        } else {
            Some(
                self.sock(f.as_fd())
                    .map_err(|_| Fail::Errno(libc::ENOTSOCK))?,
            )
        };
        let (control, passed) = self.rights_out(call, control)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let unix_path = sock
            .as_ref()
            .is_some_and(|s| s.family == libc::AF_UNIX as u32 && name.len() > 2 && name[2] != 0);
        if unix_path && !self.same_creds(call) {
            // The path walk would be the supervisor's, with other credentials.
            return Ok(self.refuse());
        }
        call.emulated = true;
        match sock {
            None => Counters::bump(&self.shared.counters.unmodeled),
            Some(sock) => {
                let addr = super::parse_sockaddr(self.shared.alg, &name, false);
                let v = self.ask(
                    call,
                    EventType::SocketSendmsg,
                    Cell::SockAddr { sock, addr },
                );
                if let Some(r) = Self::verdict_reply(v) {
                    return Ok(r);
                }
            }
        }
        let cwd = if unix_path && name[2] != b'/' {
            Some(self.task.open_link(call.tid, Link::Cwd)?)
        } else {
            None
        };
        let relative = cwd.is_some();
        let blocking = flags & libc::MSG_DONTWAIT == 0
            && sys::status_flags(f.as_fd())
                .map(|fl| fl & libc::O_NONBLOCK == 0)
                .unwrap_or(true);
        let (tid, tgid) = (call.tid, call.status.tgid);
        let done = move |r: Result<usize, i32>| -> Response {
            match r {
                Ok(n) => match mmsg {
                    Some(v) => {
                        let len = (n as u32).to_le_bytes();
                        match sys::process_vm_write(tid, v + MSGHDR as u64, &len) {
                            Ok(4) => Response::Value(1),
                            _ => Response::Error(libc::EFAULT),
                        }
                    }
                    None => Response::Value(n as i64),
                },
                Err(e) => {
                    if e == libc::EPIPE && flags & libc::MSG_NOSIGNAL == 0 {
                        // What the kernel sends the writer of a broken stream.
                        let _ = sys::tgkill(tgid, tid, libc::SIGPIPE);
                    }
                    Response::Error(e)
                }
            }
        };
        let reply = |r: Response| match r {
            Response::Value(v) => Reply::Value(v),
            Response::Error(e) => Reply::Error(e),
            Response::Continue => Reply::Error(libc::EIO),
        };
        let flags = flags | libc::MSG_NOSIGNAL;
        // A Fast Open connect must not be tried twice.
        let fastopen = flags & libc::MSG_FASTOPEN != 0;
        if blocking && !relative && !fastopen {
            // Usually there is room: send at once, and block on a helper only for the rest.
            let now = acts::sendmsg(
                f.as_fd(),
                &name,
                &data,
                &control,
                flags | libc::MSG_DONTWAIT,
            );
            match now {
                Ok(n) if n >= data.len() => return Ok(reply(done(Ok(n)))),
                Ok(n) => {
                    // A stream took part of it: the rest goes on the connected stream, and a
                    // later error still reports what was sent, as the kernel does.
                    let rest = data[n..].to_vec();
                    return Ok(self.defer(call, move || {
                        let r = acts::sendmsg(f.as_fd(), &[], &rest, &[], flags);
                        done(Ok(n + r.unwrap_or(0)))
                    }));
                }
                Err(libc::EAGAIN) => {}
                Err(e) => return Ok(reply(done(Err(e)))),
            }
        }
        let work = move || -> Response {
            if let Some(c) = &cwd
                && let Err(e) = acts::private_cwd(c.as_fd())
            {
                return Response::Error(errno_of(&e));
            }
            let r = acts::sendmsg(f.as_fd(), &name, &data, &control, flags);
            drop(passed);
            done(r)
        };
        if blocking || relative {
            return Ok(self.defer(call, work));
        }
        Ok(reply(work()))
    }

    pub(super) fn sys_recvmsg(
        &mut self,
        call: &mut Call,
        fd: i32,
        hdr: u64,
        flags: i32,
        batch: Option<u32>,
    ) -> Result<Reply, Fail> {
        let mmsg = batch.is_some();
        if batch == Some(0) {
            return Ok(Reply::Value(0));
        }
        let h = self.msghdr(call, hdr)?;
        let iov = self.iovecs(call, &h)?;
        let sock = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        call.emulated = true;
        let blocking = flags & libc::MSG_DONTWAIT == 0
            && sys::status_flags(sock.as_fd())
                .map(|fl| fl & libc::O_NONBLOCK == 0)
                .unwrap_or(true);
        let mut job = RecvJob {
            sock,
            hdr,
            h,
            iov,
            flags,
            mmsg,
            waited: false,
        };
        if blocking {
            // Data is usually there already: receive it now, and wait on a helper only if not.
            job.flags |= libc::MSG_DONTWAIT;
            job.waited = true;
            return Ok(match self.recv_now(call, &job) {
                Reply::Deferred => self.defer_recv(call, job),
                r => r,
            });
        }
        Ok(self.recv_now(call, &job))
    }

    fn recv_now(&mut self, call: &mut Call, j: &RecvJob) -> Reply {
        let total = j
            .iov
            .iter()
            .fold(0usize, |s, i| s.saturating_add(i.1))
            .min(DATA_MAX);
        let name_cap = if j.h.name != 0 {
            (j.h.namelen as usize).min(NAME_MAX)
        } else {
            0
        };
        let ctl_cap = if j.h.control != 0 {
            (j.h.controllen as usize).min(CONTROL_MAX)
        } else {
            0
        };
        let mut data = vec![0u8; total];
        let r = match acts::recvmsg(j.sock.as_fd(), &mut data, name_cap, ctl_cap, j.flags) {
            Ok(r) => r,
            // Another reader took the data the helper waited for: wait again.
            Err(libc::EAGAIN) if j.waited => return Reply::Deferred,
            Err(e) => return Reply::Error(e),
        };
        let (control, truncated) = self.rights_in(call, &r, j.flags & libc::MSG_CMSG_CLOEXEC != 0);
        let tid = call.tid;
        let task = &self.task;
        let put =
            |addr: u64, b: &[u8]| matches!(task.write_mem(tid, addr, b), Ok(n) if n == b.len());
        let mut ok = task
            .scatter(tid, &data[..r.len.min(data.len())], &j.iov)
            .is_ok();
        if j.h.name != 0 {
            ok &= r.name.is_empty() || put(j.h.name, &r.name);
            ok &= put(j.hdr + 8, &(r.namelen as u32).to_le_bytes());
        }
        if !control.is_empty() {
            ok &= put(j.h.control, &control);
        }
        ok &= put(j.hdr + 40, &(control.len() as u64).to_le_bytes());
        let flags = r.flags | if truncated { libc::MSG_CTRUNC } else { 0 };
        ok &= put(j.hdr + 48, &flags.to_le_bytes());
        if j.mmsg {
            ok &= put(j.hdr + MSGHDR as u64, &(r.len as u32).to_le_bytes());
        }
        if !ok {
            return Reply::Error(libc::EFAULT);
        }
        Reply::Value(if j.mmsg { 1 } else { r.len as i64 })
    }

    /// The control bytes for the caller: each received descriptor is a file_receive event;
    /// the allowed ones are installed in the caller, and the first denied one ends the list
    /// (true: `MSG_CTRUNC`). Descriptors not installed are closed with `r`.
    fn rights_in(&mut self, call: &mut Call, r: &acts::Received, cloexec: bool) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut fds = r.rights.iter();
        let mut truncated = false;
        for c in acts::cmsgs(&r.control) {
            let end = (c.data.end.div_ceil(8) * 8).min(r.control.len());
            if !(c.level == libc::SOL_SOCKET && c.kind == libc::SCM_RIGHTS) {
                out.extend_from_slice(&r.control[c.start..end]);
                continue;
            }
            let mut nums: Vec<i32> = Vec::new();
            for _ in 0..c.data.len() / 4 {
                let Some(fd) = fds.next() else { break };
                if truncated {
                    continue;
                }
                match self.receive_one(call, fd, cloexec) {
                    Some(n) => nums.push(n),
                    None => truncated = true,
                }
            }
            if nums.is_empty() {
                continue;
            }
            let len = 16 + 4 * nums.len();
            out.extend_from_slice(&(len as u64).to_le_bytes());
            out.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
            out.extend_from_slice(&libc::SCM_RIGHTS.to_le_bytes());
            for n in nums {
                out.extend_from_slice(&n.to_ne_bytes());
            }
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
        (out, truncated)
    }

    /// TSEM's file_receive for one descriptor; its number in the caller when allowed.
    fn receive_one(&mut self, call: &mut Call, fd: &OwnedFd, cloexec: bool) -> Option<i32> {
        let st = sys::fstat(fd.as_fd()).ok()?;
        let fl = sys::status_flags(fd.as_fd()).unwrap_or(0);
        if fl & libc::O_ACCMODE != libc::O_RDONLY && self.claim_write(&st).is_err() {
            return None;
        }
        let reader = if fl & libc::O_ACCMODE == libc::O_WRONLY {
            self.desc.reader_for(fd.as_fd(), &st)
        } else {
            None
        };
        let read_fd = reader.as_ref().map_or(fd.as_fd(), |r| r.as_fd());
        let mut file = self.desc.file(fd.as_fd(), Some(read_fd), &st, fl as u32);
        if !file.path.pathname.starts_with("/")
            && let Some(colon) = file.path.pathname.iter().position(|&b| b == b':')
        {
            // Pipes and sockets: the kernel prints "<d_dname prefix>:/" without a device.
            let mut name = file.path.pathname.as_bytes()[..colon].to_vec();
            name.extend_from_slice(b":/");
            file.path.pathname = name.into();
            file.path.dev = None;
        }
        let v = self.ask(call, EventType::FileReceive, Cell::File(file));
        if !v.allow {
            return None;
        }
        sys::notif_addfd(self.fd.as_fd(), call.n.id, fd.as_fd(), cloexec).ok()
    }

    /// A bind of a Unix socket to a path (absolute or relative), after its socket_bind was
    /// allowed. The kernel creates the socket's node with `vfs_mknod(S_IFSOCK)`, so TSEM sees an
    /// inode_mknod of the new entry (mode `S_IFSOCK | 0777 & ~umask`, device 0) before the node
    /// exists; described here from the parent directory the path names now, so the naming rules
    /// and the outputs tracker know the socket as a created object, as they know a FIFO.
    /// An existing entry fails with EADDRINUSE and a missing parent with the walk's error,
    /// before any inode_mknod, as in the kernel.
    pub(super) fn unix_bind(
        &mut self,
        call: &mut Call,
        sock: OwnedFd,
        addr: Vec<u8>,
    ) -> Result<Reply, Fail> {
        let path = &addr[2..];
        let path = &path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())];
        let par = self.parent(call, libc::AT_FDCWD as i64, path)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        if par.entry.is_some() {
            return Err(Fail::Errno(libc::EADDRINUSE));
        }
        let umask = self.umask(call);
        let dir = self.desc.inode(par.fd.as_fd(), &par.st, &par.abs);
        let dentry = self
            .desc
            .dentry(par.fd.as_fd(), &par.st, &par.abs, None, None);
        let cell = Cell::InodeMknod {
            dir,
            dentry,
            mode: libc::S_IFSOCK | (0o777 & !umask),
            dev: (0, 0),
        };
        if let Some(r) = self.decide(call, EventType::InodeMknod, cell, true) {
            return Ok(r);
        }
        if path.first() != Some(&b'/') {
            return self.unix_relative(call, sock, addr, true);
        }
        // The node gets the mode 0777 & ~umask of the binder: apply the caller's umask to this
        // thread (whose fs_struct is private) meanwhile.
        sys::set_umask(umask);
        let r = sys::sock_addr_call(sock.as_fd(), &addr, true);
        sys::set_umask(0);
        Ok(match r {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Error(e),
        })
    }

    /// A connect, bind or send to a relative Unix socket path, performed from the caller's
    /// working directory as it is now.
    pub(super) fn unix_relative(
        &mut self,
        call: &Call,
        sock: OwnedFd,
        addr: Vec<u8>,
        bind: bool,
    ) -> Result<Reply, Fail> {
        let cwd = self.task.open_link(call.tid, Link::Cwd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let umask = call.status.umask;
        Ok(self.defer(call, move || {
            if let Err(e) = acts::private_cwd(cwd.as_fd()) {
                return Response::Error(errno_of(&e));
            }
            if bind {
                sys::set_umask(umask);
            }
            match sys::sock_addr_call(sock.as_fd(), &addr, bind) {
                Ok(()) => Response::Value(0),
                Err(e) => Response::Error(e),
            }
        }))
    }

    /// Perform a receive that would block on a helper thread: it waits for data without
    /// holding the run's state (only a weak reference, so the run can end while it waits),
    /// then receives without blocking with a notifier of its own (it describes and asks) and
    /// answers the notification.
    fn defer_recv(&mut self, call: &Call, job: RecvJob) -> Reply {
        let Ok(nfd) = self.fd.try_clone() else {
            return Reply::Error(libc::ENOMEM);
        };
        let Ok(pidfd) = self.task.pidfd(call.status.tgid) else {
            return Reply::Error(libc::ESRCH);
        };
        let weak = Arc::downgrade(&self.shared);
        let mut owned = Call {
            n: call.n,
            seq: call.seq,
            sys: call.sys,
            req: call.req,
            tid: call.tid,
            status: call.status.clone(),
            task: call.task.clone(),
            emulated: call.emulated,
            unfaithful: call.unfaithful,
            worn: call.worn,
            injected: None,
            open_flags: None,
        };
        let wearing = sys::wearing();
        let spawned = std::thread::Builder::new()
            .name("tsem-recv".into())
            .spawn(move || {
                sys::continue_wearing(wearing);
                let id = owned.n.id;
                let (tgid, tid) = (owned.status.tgid, owned.tid);
                // SO_RCVTIMEO bounds the wait as it would bound the native one.
                let deadline =
                    acts::recv_timeout(job.sock.as_fd()).map(|t| std::time::Instant::now() + t);
                loop {
                    match acts::wait_readable(job.sock.as_fd(), pidfd.as_fd(), WAIT_SLICE_MS) {
                        Ok(acts::Ready::Readable) => {}
                        Ok(acts::Ready::Timeout) if sys::notif_id_valid(nfd.as_fd(), id) => {
                            let answer = if handled_signal_pending(tgid, tid) {
                                Some(Response::Error(ERESTARTSYS))
                            } else if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                                Some(Response::Error(libc::EAGAIN))
                            } else {
                                None
                            };
                            if let Some(a) = answer {
                                let _ = sys::notif_send(nfd.as_fd(), id, a);
                                return;
                            }
                            continue;
                        }
                        _ => return,
                    }
                    let Some(shared) = weak.upgrade() else { return };
                    let Ok(fd) = nfd.try_clone() else { return };
                    let mut n = Notifier::new(fd, shared);
                    let reply = n.recv_now(&mut owned, &job);
                    let resp = match reply {
                        Reply::Deferred => continue,
                        Reply::Value(v) => Response::Value(v),
                        Reply::Error(e) => Response::Error(e),
                        Reply::Gone => return,
                        Reply::Continue(_) | Reply::AddFd(..) => Response::Error(libc::EIO),
                    };
                    // Let go of the run's state before answering: once the answer is in, the
                    // workload may end and the supervisor take that state back.
                    drop(n);
                    // ENOENT: the target gave up meanwhile; nothing is waiting for the answer.
                    let _ = sys::notif_send(nfd.as_fd(), id, resp);
                    return;
                }
            });
        match spawned {
            Ok(_) => {
                Counters::bump(&self.shared.counters.emulated);
                Reply::Deferred
            }
            Err(_) => Reply::Error(libc::EAGAIN),
        }
    }
}
