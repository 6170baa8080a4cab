//! Socket creation and the calls on a socket's address: create, bind, connect, listen, accept,
//! and the queries (getsockname, getpeername, setsockopt, shutdown).

use std::os::fd::{AsFd, BorrowedFd};

use tsem_core::event::{Cell, EventType, Sock, SockAddr};
use tsem_core::{Digest, HashAlg};

use super::decode::SockQuery;
use super::target::Ident;
use super::{Call, Fail, Notifier, Reply};
use crate::event::EventHandler;
use crate::sys::{self, Response};

impl<H: EventHandler> Notifier<H> {
    pub(super) fn sock(&mut self, fd: BorrowedFd<'_>) -> Result<Sock, Fail> {
        let family = sys::getsockopt_int(fd, libc::SO_DOMAIN)?;
        let ty = sys::getsockopt_int(fd, libc::SO_TYPE)?;
        let protocol = sys::getsockopt_int(fd, libc::SO_PROTOCOL)?;
        let st = sys::fstat(fd)?;
        let owner = self
            .desc
            .sock_owner(&st)
            .unwrap_or_else(|| Digest::zero(self.shared.alg.size()));
        Ok(Sock {
            family: family as u32,
            sock_type: ty as u32,
            protocol: protocol as u32,
            owner,
        })
    }

    pub(super) fn sys_socket(
        &mut self,
        call: &mut Call,
        family: i32,
        ty: i32,
        proto: i32,
    ) -> Result<Reply, Fail> {
        let cell = Cell::SocketCreate {
            family: family as u32,
            sock_type: (ty & 0xf) as u32,
            protocol: proto as u32,
            kern: 0,
        };
        let netns = self.task.identity(call.tid, Ident::NetNs);
        if netns.is_none() && !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let same_ns = netns.map(|s| s.1) == Some(self.shared.own_netns);
        if !same_ns || !self.same_creds(call) {
            return self.simple(call, EventType::SocketCreate, cell);
        }
        call.emulated = true;
        let v = self.ask(call, EventType::SocketCreate, cell);
        if let Some(r) = Self::verdict_reply(v) {
            return Ok(r);
        }
        // The supervisor creates the socket so it knows its inode and can record its owner
        // (socket_post_create), which later socket events carry.
        match sys::socket(family, ty & !libc::SOCK_CLOEXEC, proto) {
            Ok(fd) => {
                if let Ok(st) = sys::fstat(fd.as_fd()) {
                    self.desc.set_sock_owner(&st, call.task.ident.task_id);
                }
                Ok(Reply::AddFd(fd, ty & libc::SOCK_CLOEXEC != 0))
            }
            Err(e) => Err(Fail::Errno(e)),
        }
    }

    pub(super) fn sys_addr(
        &mut self,
        call: &mut Call,
        fd: i32,
        addr_ptr: u64,
        len: u64,
        bind: bool,
    ) -> Result<Reply, Fail> {
        let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        let addr = self.read_mem(call.tid, addr_ptr, len)?;
        let f = self.target_file(call, fd)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let sock = match self.sock(f.as_fd()) {
            Ok(s) => s,
            Err(_) => return Err(Fail::Errno(libc::ENOTSOCK)),
        };
        let parsed = parse_sockaddr(self.shared.alg, &addr, false);
        let family = sock.family;
        let ty = if bind {
            EventType::SocketBind
        } else {
            EventType::SocketConnect
        };
        // Relative AF_UNIX paths resolve against the caller's cwd: the supervisor performs
        // those too, from the cwd pinned now (notify/net.rs), never on a re-read address.
        let relative_unix = sock.family == libc::AF_UNIX as u32
            && addr.len() > 2
            && addr[2] != 0
            && addr[2] != b'/';
        let blocking = sys::status_flags(f.as_fd())
            .map(|fl| fl & libc::O_NONBLOCK == 0)
            .unwrap_or(true);
        let emulate = self.performs(call);
        if let Some(r) = self.decide(call, ty, Cell::SockAddr { sock, addr: parsed }, emulate) {
            return Ok(r);
        }
        if bind && family == libc::AF_UNIX as u32 && addr.len() > 2 && addr[2] != 0 {
            // The node it creates is an event of its own (notify/net.rs).
            return self.unix_bind(call, f, addr);
        }
        if relative_unix {
            return self.unix_relative(call, f, addr, bind);
        }
        // The address checked is the address used: the operation runs on the target's own
        // socket (a duplicate of its descriptor) with our copy of the argument.
        if !bind && blocking {
            // A blocking connect may take long; answer it from a helper thread so the other
            // notifications keep flowing.
            return Ok(self.defer(call, move || {
                match sys::sock_addr_call(f.as_fd(), &addr, false) {
                    Ok(()) => Response::Value(0),
                    Err(e) => Response::Error(e),
                }
            }));
        }
        // Binding a Unix socket to a path creates a node with the mode 0777 & ~umask of the
        // binder: apply the caller's umask to this thread (whose fs_struct is private) meanwhile.
        let unix_path = bind && family == libc::AF_UNIX as u32 && addr.len() > 2 && addr[2] != 0;
        if unix_path {
            sys::set_umask(self.umask(call));
        }
        let r = sys::sock_addr_call(f.as_fd(), &addr, bind);
        if unix_path {
            sys::set_umask(0);
        }
        Ok(match r {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Error(e),
        })
    }

    pub(super) fn sys_listen(
        &mut self,
        call: &mut Call,
        fd: i32,
        backlog: u32,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        let sock = self
            .sock(f.as_fd())
            .map_err(|_| Fail::Errno(libc::ENOTSOCK))?;
        // Performed on the socket described (the caller's, duplicated): continued, the kernel
        // would listen on whatever another thread `dup2`ed onto the number meanwhile. listen
        // checks no credential, so the supervisor's do.
        call.emulated = true;
        let cell = Cell::SockValue {
            sock,
            value: backlog,
        };
        if let Some(r) = self.decide(call, EventType::SocketListen, cell, true) {
            return Ok(r);
        }
        Ok(super::op_reply(sys::listen(f.as_fd(), backlog)))
    }

    /// getsockname, getpeername (SOCK), setsockopt (level, optname), shutdown (how): described
    /// on the caller's socket and continued.
    pub(super) fn sys_sock_query(
        &mut self,
        call: &mut Call,
        fd: i32,
        query: SockQuery,
    ) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        let Ok(sock) = self.sock(f.as_fd()) else {
            return Ok(
                self.no_event("not a socket: the kernel fails it (ENOTSOCK) before any hook")
            );
        };
        let (ty, cell) = match query {
            SockQuery::Name => (EventType::SocketGetsockname, Cell::Sock(sock)),
            SockQuery::Peer => (EventType::SocketGetpeername, Cell::Sock(sock)),
            SockQuery::Setsockopt { level, optname } => (
                EventType::SocketSetsockopt,
                Cell::SockOpt {
                    sock,
                    level,
                    optname,
                },
            ),
            SockQuery::Shutdown(how) => (
                EventType::SocketShutdown,
                Cell::SockValue { sock, value: how },
            ),
        };
        self.simple(call, ty, cell)
    }

    pub(super) fn sys_accept(&mut self, call: &mut Call, fd: i32) -> Result<Reply, Fail> {
        let f = self.target_file(call, fd)?;
        let sock = self
            .sock(f.as_fd())
            .map_err(|_| Fail::Errno(libc::ENOTSOCK))?;
        let local = sys::getsockname(f.as_fd()).unwrap_or_default();
        let addr = parse_sockaddr(self.shared.alg, &local, true);
        self.simple(call, EventType::SocketAccept, Cell::SockAddr { sock, addr })
    }

    pub(super) fn sys_socketpair(
        &mut self,
        call: &mut Call,
        family: u32,
        ty: u32,
        proto: u32,
    ) -> Result<Reply, Fail> {
        // Both sockets are created by the caller (socket_post_create) before the hook.
        let sock = Sock {
            family,
            sock_type: ty & 0xf,
            protocol: proto,
            owner: call.task.ident.task_id,
        };
        self.simple(
            call,
            EventType::SocketSocketpair,
            Cell::SockPair { a: sock, b: sock },
        )
    }
}

/// A socket address as TSEM describes it (spec §1.4). `accept` describes the listening socket's
/// own address, where the kernel hashes the host-order port.
pub fn parse_sockaddr(alg: HashAlg, b: &[u8], accept: bool) -> Option<SockAddr> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_le_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET if b.len() >= 8 => {
            let raw_port = u16::from_le_bytes([b[2], b[3]]);
            let port = if accept {
                u16::from_be_bytes([b[2], b[3]])
            } else {
                raw_port
            };
            Some(SockAddr::Inet {
                port,
                address: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            })
        }
        libc::AF_INET6 if b.len() >= 28 => {
            let mut address = [0u8; 16];
            address.copy_from_slice(&b[8..24]);
            let raw_port = u16::from_le_bytes([b[2], b[3]]);
            if accept {
                Some(SockAddr::Inet6 {
                    port: u16::from_be_bytes([b[2], b[3]]),
                    flow: None,
                    scope: None,
                    address,
                })
            } else {
                Some(SockAddr::Inet6 {
                    port: raw_port,
                    flow: Some(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
                    scope: Some(u32::from_le_bytes([b[24], b[25], b[26], b[27]])),
                    address,
                })
            }
        }
        libc::AF_UNIX => {
            // The kernel prints and hashes sun_path as a C string, so an abstract name (leading
            // NUL) is the empty string.
            let p = &b[2..];
            let end = p.iter().position(|c| *c == 0).unwrap_or(p.len());
            Some(SockAddr::Unix {
                address: tsem_core::RawStr::from(&p[..end]),
            })
        }
        _ => {
            let address = if accept {
                alg.zero_digest()
            } else {
                alg.digest(&b[2..])
            };
            Some(SockAddr::Other { address })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn sockaddr_parsing() {
        let mut sin = vec![0u8; 16];
        sin[0..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
        sin[2..4].copy_from_slice(&8080u16.to_be_bytes());
        sin[4..8].copy_from_slice(&[127, 0, 0, 1]);
        let Some(SockAddr::Inet { port, address }) = parse_sockaddr(HashAlg::Sha256, &sin, false)
        else {
            panic!()
        };
        assert_eq!(port, u16::from_le_bytes(8080u16.to_be_bytes()));
        assert_eq!(address, u32::from_le_bytes([127, 0, 0, 1]));
        let Some(SockAddr::Inet { port, .. }) = parse_sockaddr(HashAlg::Sha256, &sin, true) else {
            panic!()
        };
        assert_eq!(port, 8080);
        let mut sun = vec![0u8; 2];
        sun[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_le_bytes());
        sun.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(
            parse_sockaddr(HashAlg::Sha256, &sun, false),
            Some(SockAddr::Unix {
                address: "/run/x.sock".into()
            })
        );
        let mut abs = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        abs.extend_from_slice(b"\0abstract");
        assert_eq!(
            parse_sockaddr(HashAlg::Sha256, &abs, false),
            Some(SockAddr::Unix {
                address: tsem_core::RawStr::new()
            }),
            "abstract names print as the empty C string"
        );
    }
}
