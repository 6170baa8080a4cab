//! AF_VSOCK stream sockets (a VM and its host, or two VMs through it): the system calls, each
//! at its boundary. No crate is needed for four calls, and std has no AF_VSOCK.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::Duration;

fn check(r: libc::c_int) -> std::io::Result<libc::c_int> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn addr(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data; all-zero is a valid value (svm_zero must be zero).
    let mut a: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    a.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    a.svm_cid = cid;
    a.svm_port = port;
    a
}

const ADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;

fn socket() -> std::io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked before it is owned.
    let fd =
        check(unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connected AF_VSOCK stream.
pub struct Stream(OwnedFd);

impl Stream {
    /// Connect to `cid:port`.
    pub fn connect(cid: u32, port: u32) -> std::io::Result<Self> {
        let fd = socket()?;
        let a = addr(cid, port);
        // SAFETY: `a` is a valid sockaddr_vm of ADDR_LEN bytes for the duration of the call.
        check(unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&raw const a).cast::<libc::sockaddr>(),
                ADDR_LEN,
            )
        })?;
        Ok(Self(fd))
    }

    /// A read waiting longer than `t` fails (a dead agent).
    pub fn set_read_timeout(&self, t: Duration) -> std::io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(t.subsec_micros() as i32),
        };
        // SAFETY: `tv` is a valid timeval of the given size for the duration of the call.
        check(unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast::<libc::c_void>(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// The socket (to watch for a hang-up).
    pub fn fd(&self) -> &OwnedFd {
        &self.0
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for reads of its length; MSG_NOSIGNAL: a peer gone is an
        // error here, not a SIGPIPE.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A listening AF_VSOCK socket.
pub struct Listener(OwnedFd);

impl Listener {
    /// Listen on `port` of `cid` (None: any of ours).
    pub fn bind(cid: Option<u32>, port: u32) -> std::io::Result<Self> {
        let fd = socket()?;
        let a = addr(cid.unwrap_or(libc::VMADDR_CID_ANY), port);
        // SAFETY: `a` is a valid sockaddr_vm of ADDR_LEN bytes for the duration of the call.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const a).cast::<libc::sockaddr>(),
                ADDR_LEN,
            )
        })?;
        // SAFETY: no pointers.
        check(unsafe { libc::listen(fd.as_raw_fd(), 16) })?;
        Ok(Self(fd))
    }

    /// The port bound (the kernel's choice when bound to port VMADDR_PORT_ANY).
    pub fn port(&self) -> std::io::Result<u32> {
        let mut a = addr(0, 0);
        let mut len = ADDR_LEN;
        // SAFETY: `a` and `len` are valid for writes for the duration of the call.
        check(unsafe {
            libc::getsockname(
                self.0.as_raw_fd(),
                (&raw mut a).cast::<libc::sockaddr>(),
                &mut len,
            )
        })?;
        Ok(a.svm_port)
    }

    /// The next connection.
    pub fn accept(&self) -> std::io::Result<Stream> {
        loop {
            // SAFETY: null address pointers are allowed (the peer's address is not wanted).
            let r = unsafe {
                libc::accept4(
                    self.0.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            match check(r) {
                // SAFETY: a fresh descriptor that nothing else owns.
                Ok(fd) => return Ok(Stream(unsafe { OwnedFd::from_raw_fd(fd) })),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a connection to ourselves works here (a `vsock_loopback` transport), probed with a
/// listener on a free port: `Err` says why not.
pub fn loopback_works() -> std::io::Result<()> {
    let l = Listener::bind(None, libc::VMADDR_PORT_ANY)?;
    let port = l.port()?;
    Stream::connect(libc::VMADDR_CID_LOCAL, port).map(|_| ())
}
