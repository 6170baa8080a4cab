//! Starting the supervisor daemon: `tsem run --attach-fd 3 ... -- ARGS`, in a session of its
//! own with its own log, on the host, outside every namespace of the container. It checks its
//! model, key and outputs before the container is created (`v`), then seizes the init whose pid
//! we send and says so (`r`); the protocol is `tsem_sensor::attach`'s.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Errors of the supervisor daemon.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The daemon could not be started.
    #[error("cannot start the supervisor {path}: {source}")]
    Spawn {
        /// The `tsem` binary.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon refused (a bad model, key, output...) or failed: its last words.
    #[error("{0}")]
    Refused(String),
    /// The hand-over socket failed.
    #[error("hand-over with the supervisor: {0}")]
    Io(#[from] std::io::Error),
}

/// A started supervisor daemon.
pub struct Daemon {
    child: Child,
    sock: UnixStream,
    log: PathBuf,
}

/// The `tsem` binary: `--tsem`, else the one beside this program, else `tsem` in `PATH`.
pub fn tsem_binary(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("tsem")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "tsem".into())
}

impl Daemon {
    /// Start `tsem` with `args` (a `tsem run` command line without `--attach-fd` and `--`),
    /// naming the workload `names`; wait until it is ready for the container.
    pub fn start(
        tsem: &Path,
        args: &[OsString],
        names: &[OsString],
        log: &Path,
    ) -> Result<Self, SuperviseError> {
        let mut d = Self::spawn(tsem, args, names, log)?;
        d.ready()?;
        Ok(d)
    }

    /// Start it as [`Daemon::start`] does, without waiting: [`Daemon::ready`] before the
    /// hand-over.
    pub fn spawn(
        tsem: &Path,
        args: &[OsString],
        names: &[OsString],
        log: &Path,
    ) -> Result<Self, SuperviseError> {
        let (ours, theirs) = UnixStream::pair()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = Command::new(tsem);
        cmd.args(args)
            .args(["--attach-fd", "3", "--"])
            .args(names)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Never a terminal's or the caller's environment quirks: a fixed locale.
            .env("LC_ALL", "C");
        let fd = theirs.as_raw_fd();
        // SAFETY: between fork and exec the closure only makes async-signal-safe syscalls
        // (dup2, close_range, setsid) on a descriptor that stays open in the parent until after
        // the spawn.
        unsafe {
            cmd.pre_exec(move || {
                // Nothing of the caller's (conmon's pipes, descriptors for the container) stays
                // open in a daemon that outlives it.
                // Marked close-on-exec, not closed: std's own pipe that reports a failed exec
                // (a missing `tsem`) is among them and must work until the exec.
                if libc::dup2(fd, 3) < 0
                    || libc::syscall(
                        libc::SYS_close_range,
                        4u32,
                        u32::MAX,
                        libc::CLOSE_RANGE_CLOEXEC,
                    ) < 0
                    || libc::setsid() < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| SuperviseError::Spawn {
            path: tsem.display().to_string(),
            source,
        })?;
        drop(theirs);
        Ok(Self {
            child,
            sock: ours,
            log: log.to_path_buf(),
        })
    }

    /// Wait until it has checked its model, key and outputs (its refusal, if it refused).
    pub fn ready(&mut self) -> Result<(), SuperviseError> {
        self.expect(b'v')
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn expect(&mut self, want: u8) -> Result<(), SuperviseError> {
        let mut b = [0u8; 1];
        let n = loop {
            match self.sock.read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 1 && b[0] == want {
            return Ok(());
        }
        let _ = self.child.wait();
        Err(SuperviseError::Refused(last_words(&self.log)))
    }

    /// Hand the container's init over: the daemon seizes it before this returns.
    pub fn hand_over(&mut self, pid: i32) -> Result<(), SuperviseError> {
        self.sock.write_all(&pid.to_ne_bytes())?;
        self.expect(b'r')
    }

    /// Give up before a hand-over (the container could not be created): the daemon ends.
    pub fn abandon(mut self) {
        drop(self.sock);
        let _ = self.child.wait();
    }

    /// Wait for the daemon's end (after the container's): its exit status.
    pub fn wait(mut self) -> std::io::Result<std::process::ExitStatus> {
        drop(self.sock);
        self.child.wait()
    }
}

/// The last line of the daemon's log that says something, for a one-line error.
pub fn last_words(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // An error line if there is one (a usage error ends with a hint, not with the error).
    let lines = || text.lines().rev().map(str::trim);
    lines()
        .find(|l| l.starts_with("error: ") || l.starts_with("Error: "))
        .or_else(|| lines().find(|l| !l.is_empty()))
        .map(|l| {
            l.trim_start_matches("tsem: ")
                .trim_start_matches("error: ")
                .trim_start_matches("Error: ")
                .to_string()
        })
        .unwrap_or_else(|| {
            format!(
                "the supervisor ended without a word (log {})",
                log.display()
            )
        })
}

/// Wait until process `pid` (not our child) is gone.
pub fn wait_gone(pid: i32) {
    // SAFETY: pidfd_open takes integer arguments; the result is a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return;
    }
    let mut p = libc::pollfd {
        fd: fd as i32,
        events: libc::POLLIN,
        revents: 0,
    };
    // A pidfd becomes readable when the process exits.
    // SAFETY: one valid pollfd; the descriptor is ours and closed right after.
    unsafe {
        while libc::poll(&mut p, 1, -1) < 0 && *libc::__errno_location() == libc::EINTR {}
        libc::close(fd as i32);
    }
}
