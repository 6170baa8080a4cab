//! The system calls of a serial line: open a tty device without it becoming our controlling
//! terminal, lock it, set raw mode at a baud rate and check the driver kept it, flush it, and
//! write to it without ever blocking past a deadline.

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::{Duration, Instant};

/// The termios speed for `baud`.
pub fn speed(baud: u32) -> Result<libc::speed_t, String> {
    Ok(match baud {
        1200 => libc::B1200,
        2400 => libc::B2400,
        4800 => libc::B4800,
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115_200 => libc::B115200,
        230_400 => libc::B230400,
        460_800 => libc::B460800,
        500_000 => libc::B500000,
        576_000 => libc::B576000,
        921_600 => libc::B921600,
        1_000_000 => libc::B1000000,
        1_152_000 => libc::B1152000,
        1_500_000 => libc::B1500000,
        2_000_000 => libc::B2000000,
        2_500_000 => libc::B2500000,
        3_000_000 => libc::B3000000,
        3_500_000 => libc::B3500000,
        4_000_000 => libc::B4000000,
        b => {
            return Err(format!(
                "{b} is not a baud rate termios knows (1200 to 4000000, e.g. 9600, 115200)"
            ));
        }
    })
}

fn os(what: &str, r: libc::c_int) -> std::io::Result<()> {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

fn configure(f: &std::fs::File, baud: u32) -> std::io::Result<()> {
    let fd = f.as_raw_fd();
    let sp = speed(baud).map_err(std::io::Error::other)?;
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is valid for writes for the duration of the call.
    os("not a terminal (tcgetattr)", unsafe {
        libc::tcgetattr(fd, &mut t)
    })?;
    // SAFETY: `t` is a valid termios.
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_iflag &= !(libc::IXON | libc::IXOFF | libc::IXANY);
    t.c_cflag |= libc::CLOCAL | libc::CREAD;
    t.c_cflag &= !libc::CRTSCTS;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: `t` is a valid termios.
    os("cfsetspeed", unsafe { libc::cfsetispeed(&mut t, sp) })?;
    // SAFETY: as above.
    os("cfsetspeed", unsafe { libc::cfsetospeed(&mut t, sp) })?;
    // SAFETY: `t` is valid for reads for the duration of the call.
    os("tcsetattr", unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &t)
    })?;
    // tcsetattr succeeds when any one change took: read back what the driver kept.
    // SAFETY: termios is plain data, filled by tcgetattr.
    let mut got: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `got` is valid for writes for the duration of the call.
    os("tcgetattr", unsafe { libc::tcgetattr(fd, &mut got) })?;
    // SAFETY: `got` is a valid termios.
    let kept = unsafe { libc::cfgetospeed(&got) };
    if kept != sp || got.c_lflag & libc::ECHO != 0 || got.c_lflag & libc::ICANON != 0 {
        return Err(std::io::Error::other(format!(
            "the driver did not keep raw mode at {baud} baud"
        )));
    }
    // Whatever waited on the line before us is not ours.
    // SAFETY: no pointers.
    os("tcflush", unsafe { libc::tcflush(fd, libc::TCIOFLUSH) })?;
    Ok(())
}

pub(crate) fn open_device(path: &std::path::Path, baud: u32) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        // A tty opened by a process without one would become its controlling terminal.
        .custom_flags(libc::O_NOCTTY)
        .open(path)?;
    // SAFETY: no pointers.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
        return Err(std::io::Error::other(
            "in use: another tsem holds the line (one client at a time)",
        ));
    }
    configure(&f, baud)?;
    // Non-blocking, so that a line that takes no more bytes (a stalled pseudo-terminal, a
    // device whose far end stopped reading) fails a client's write at its deadline instead of
    // hanging it; reads wait in poll.
    // SAFETY: fcntl on our descriptor, no pointers.
    let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
    os("fcntl", flags)?;
    // SAFETY: as above.
    os("fcntl", unsafe {
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    })?;
    Ok(f)
}

/// Write all of `b` to the (non-blocking) line, by `deadline` if one is given.
pub(crate) fn write_all(
    f: &mut std::fs::File,
    mut b: &[u8],
    deadline: Option<Instant>,
) -> std::io::Result<()> {
    while !b.is_empty() {
        match f.write(b) {
            Ok(0) => return Err(std::io::Error::other("the line takes no bytes")),
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let wait = match deadline {
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "the line took no more bytes in time",
                            ));
                        }
                        left.min(Duration::from_millis(200))
                    }
                    None => Duration::from_millis(200),
                };
                let mut p = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
