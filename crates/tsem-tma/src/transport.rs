//! Where an agent listens and a client connects: `unix:PATH`, `tcp:HOST:PORT`,
//! `vsock:CID:PORT` (AF_VSOCK, listen on `vsock:any:PORT`) and `serial:DEVICE[,BAUD]`. A socket
//! is one session per connection with Sancho's framing; a serial line is one byte stream that
//! carries one session after another ([`crate::serial`]).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::serial::{self, Line, Role};
use crate::vsock;
use crate::{Sancho, TmaError, Transport};

type R<T> = Result<T, TmaError>;

/// A transport address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A Unix stream socket.
    Unix(std::path::PathBuf),
    /// A TCP address.
    Tcp(String),
    /// An AF_VSOCK stream socket: `cid` None is any (VMADDR_CID_ANY, for listening).
    Vsock {
        /// The context id (2 is the host).
        cid: Option<u32>,
        /// The port.
        port: u32,
    },
    /// A serial line (a tty device) at a baud rate.
    Serial {
        /// The device.
        path: std::path::PathBuf,
        /// Bits per second.
        baud: u32,
    },
}

const FORMS: &str = "unix:PATH, tcp:HOST:PORT, vsock:CID:PORT (vsock:any:PORT to listen) \
                     or serial:DEVICE[,BAUD]";

fn vsock_addr(s: &str, rest: &str) -> Result<Addr, String> {
    let (cid, port) = rest
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected vsock:CID:PORT"))?;
    let cid =
        match cid {
            "any" => None,
            c => Some(c.parse::<u32>().map_err(|_| {
                format!("{s:?}: the CID {c:?} is not a number (or `any`, to listen)")
            })?),
        };
    if cid == Some(u32::MAX) {
        return Err(format!("{s:?}: write CID 4294967295 as `any`"));
    }
    let port = port
        .parse::<u32>()
        .map_err(|_| format!("{s:?}: the port {port:?} is not a number"))?;
    if port == u32::MAX {
        return Err(format!(
            "{s:?}: port 4294967295 is VMADDR_PORT_ANY, not a port"
        ));
    }
    Ok(Addr::Vsock { cid, port })
}

fn serial_addr(s: &str, rest: &str) -> Result<Addr, String> {
    // A trailing `,DIGITS` is the baud rate; a comma elsewhere belongs to the device's name.
    let (path, baud) = match rest.rsplit_once(',') {
        Some((p, b)) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => (
            p,
            b.parse::<u32>()
                .map_err(|_| format!("{s:?}: baud rate {b} is out of range"))?,
        ),
        Some((_, "")) => return Err(format!("{s:?}: empty baud rate")),
        _ => (rest, serial::DEFAULT_BAUD),
    };
    if path.is_empty() {
        return Err(format!("{s:?}: expected serial:DEVICE[,BAUD]"));
    }
    serial::speed(baud).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(Addr::Serial {
        path: path.into(),
        baud,
    })
}

impl std::str::FromStr for Addr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            return Ok(Addr::Unix(p.into()));
        }
        if let Some(a) = s.strip_prefix("tcp:").filter(|a| a.contains(':')) {
            return Ok(Addr::Tcp(a.into()));
        }
        if let Some(r) = s.strip_prefix("vsock:") {
            return vsock_addr(s, r);
        }
        if let Some(r) = s.strip_prefix("serial:") {
            return serial_addr(s, r);
        }
        Err(format!("{s:?}: expected {FORMS}"))
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Tcp(a) => write!(f, "tcp:{a}"),
            Addr::Vsock { cid: None, port } => write!(f, "vsock:any:{port}"),
            Addr::Vsock { cid: Some(c), port } => write!(f, "vsock:{c}:{port}"),
            Addr::Serial { path, baud } => write!(f, "serial:{},{baud}", path.display()),
        }
    }
}

/// How the client learns that its agent went away while nothing is asked of it.
pub enum Liveness {
    /// The connection reports a hang-up (sockets).
    Hangup(OwnedFd),
    /// The agent's keepalives stop (a serial line has no hang-up).
    Heartbeat(Line),
}

/// Connect to an agent (a reply slower than `timeout` is a dead agent). Also returns how to
/// watch it ([`watch`]).
pub fn connect(addr: &Addr, timeout: Duration) -> R<(Box<dyn Transport>, Liveness)> {
    Ok(match addr {
        Addr::Unix(p) => {
            let s = std::os::unix::net::UnixStream::connect(p)?;
            s.set_read_timeout(Some(timeout))?;
            let dup = OwnedFd::from(s.try_clone()?);
            (Box::new(Sancho(s)), Liveness::Hangup(dup))
        }
        Addr::Tcp(a) => {
            let s = std::net::TcpStream::connect(a)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(timeout))?;
            let dup = OwnedFd::from(s.try_clone()?);
            (Box::new(Sancho(s)), Liveness::Hangup(dup))
        }
        Addr::Vsock { cid, port } => {
            let cid = cid.ok_or_else(|| {
                TmaError::Io(std::io::Error::other(
                    "vsock:any names no agent: give the agent's CID",
                ))
            })?;
            let s = vsock::Stream::connect(cid, *port)?;
            s.set_read_timeout(timeout)?;
            let dup = s.fd().try_clone()?;
            (Box::new(Sancho(s)), Liveness::Hangup(dup))
        }
        Addr::Serial { path, baud } => {
            let line = Line::open(path, *baud, Role::Client, Some(timeout))?;
            (Box::new(line.clone()), Liveness::Heartbeat(line))
        }
    })
}

/// An agent's listening end: each [`Listener::accept`] gives the next session's transport.
pub enum Listener {
    /// A Unix stream socket.
    Unix(std::os::unix::net::UnixListener),
    /// A TCP socket.
    Tcp(std::net::TcpListener),
    /// An AF_VSOCK socket.
    Vsock(vsock::Listener),
    /// A serial line: sessions follow one another on it.
    Serial(Line),
}

impl Listener {
    /// Listen on `addr`.
    pub fn bind(addr: &Addr) -> R<Self> {
        Ok(match addr {
            Addr::Unix(p) => Listener::Unix(std::os::unix::net::UnixListener::bind(p)?),
            Addr::Tcp(t) => Listener::Tcp(std::net::TcpListener::bind(t)?),
            Addr::Vsock { cid, port } => Listener::Vsock(vsock::Listener::bind(*cid, *port)?),
            Addr::Serial { path, baud } => {
                Listener::Serial(Line::open(path, *baud, Role::Agent, None)?)
            }
        })
    }

    /// The address bound, as a client would connect to it: a TCP listener asked for port 0
    /// names the port the kernel chose (so a caller never has to guess a free port and race
    /// another process for it).
    pub fn local_addr(&self, asked: &Addr) -> Addr {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| asked.clone(), |a| Addr::Tcp(a.to_string())),
            _ => asked.clone(),
        }
    }

    /// The next session's transport.
    pub fn accept(&self) -> R<Box<dyn Transport>> {
        Ok(match self {
            Listener::Unix(l) => Box::new(Sancho(l.accept()?.0)),
            Listener::Tcp(l) => {
                let s = l.accept()?.0;
                s.set_nodelay(true)?;
                Box::new(Sancho(s))
            }
            Listener::Vsock(l) => Box::new(Sancho(l.accept()?)),
            Listener::Serial(line) => Box::new(line.clone()),
        })
    }
}

/// Call `gone` (once, on a thread of its own) when the agent closes the connection or it fails,
/// or its keepalives stop, unless `done` is set first (the session ended normally). So a
/// workload does not outlive its agent even while it makes no call that would ask for a verdict.
pub fn watch(l: Liveness, done: Arc<AtomicBool>, gone: impl FnOnce() + Send + 'static) {
    use std::os::fd::AsRawFd as _;
    std::thread::spawn(move || {
        loop {
            let lost = match &l {
                Liveness::Hangup(fd) => {
                    let mut p = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLRDHUP,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    let n = unsafe { libc::poll(&mut p, 1, 500) };
                    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
                }
                Liveness::Heartbeat(line) => {
                    std::thread::sleep(Duration::from_millis(200));
                    line.agent_lost()
                }
            };
            if done.load(Ordering::SeqCst) {
                return;
            }
            if lost {
                gone();
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for (s, want) in [
            ("vsock:any:7000", "vsock:any:7000"),
            ("vsock:2:7000", "vsock:2:7000"),
            ("serial:/dev/ttyS0", "serial:/dev/ttyS0,115200"),
            ("serial:/dev/ttyUSB0,9600", "serial:/dev/ttyUSB0,9600"),
            ("serial:/dev/odd,name", "serial:/dev/odd,name,115200"),
            ("unix:/run/a.sock", "unix:/run/a.sock"),
        ] {
            assert_eq!(s.parse::<Addr>().unwrap().to_string(), want, "{s}");
        }
    }

    #[test]
    fn malformed_addresses_say_what_is_wrong() {
        for (s, want) in [
            ("vsock:3", "expected vsock:CID:PORT"),
            ("vsock:host:7000", "the CID \"host\" is not a number"),
            ("vsock:2:x", "the port \"x\" is not a number"),
            ("vsock:2:4294967295", "VMADDR_PORT_ANY"),
            ("serial:", "expected serial:DEVICE[,BAUD]"),
            ("serial:/dev/ttyS0,", "empty baud rate"),
            ("serial:/dev/ttyS0,12345", "12345 is not a baud rate"),
            ("serial:/dev/ttyS0,99999999999", "out of range"),
            ("udp:1.2.3.4:5", "expected unix:PATH"),
        ] {
            let e = s.parse::<Addr>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
