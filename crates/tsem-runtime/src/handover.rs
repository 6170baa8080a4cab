//! The hand-over of a supervised `run`'s init: one `runc run` on a private copy of the bundle's
//! config whose first `createRuntime` hook is `tsem-runtime tsem-handover SOCKET ID`.
//!
//! runc runs `createRuntime` hooks in the runtime's namespaces while the container's init (runc's
//! own `runc init`, a Go program) is blocked on runc's sync pipe: its namespaces and mounts are
//! set up, the pivot to the container's root and the exec of the program are not done. The hook
//! gets the container's state, with the init's host pid, on its stdin; it sends the pid to the
//! `run` that started runc ([`Listener`]), which hands it to the supervisor
//! (`Daemon::hand_over`: `PTRACE_SEIZE` of every thread, `EXITKILL`), and answers `r` once the
//! supervisor holds it. The hook exits 0 only then: any other outcome (no answer, the supervisor
//! gone, a refused pid) is a failed hook, on which runc kills the init and fails the `run`, so the
//! container's program never runs unsupervised.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::supervise::Daemon;

/// The hidden command runc calls as the hook.
pub const COMMAND: &str = "tsem-handover";

/// The most of the state runc writes to a hook that is read.
const MAX_STATE: u64 = 1 << 20;

/// Errors of the hand-over.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The socket could not be made or used.
    #[error("hand-over socket {path}: {source}")]
    Socket {
        /// Its path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The state runc gave the hook is not the container's.
    #[error("the hook's state: {0}")]
    State(String),
    /// The supervisor did not take the init.
    #[error("the supervisor did not take the container's init: {0}")]
    Refused(String),
}

/// Call `f` with `path`, or, when `path` is longer than a socket address holds, with the same
/// name reached through a descriptor of its directory (`/proc/self/fd/N/NAME`).
fn short_path<T>(path: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let d = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    f(&short)
}

/// The `run` side: the socket the hook connects to, in the container's private record.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Listen on `path` (in a directory only root can enter).
    pub fn bind(path: &Path) -> Result<Self, HandoverError> {
        let listener =
            short_path(path, |p| UnixListener::bind(p)).map_err(|source| socket(path, source))?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The listening descriptor (to poll).
    pub fn fd(&self) -> i32 {
        self.listener.as_raw_fd()
    }

    /// Take the hook's connection (the socket is readable), hand the pid it sends to `daemon`
    /// once it is ready (started with `Daemon::spawn`) and answer the hook. Only one hook is ever served: the socket is closed afterwards.
    pub fn serve(self, daemon: &mut Daemon) -> Result<i32, HandoverError> {
        let (mut conn, _) = self
            .listener
            .accept()
            .map_err(|source| socket(&self.path, source))?;
        let _ = std::fs::remove_file(&self.path);
        let mut num = [0u8; 4];
        conn.read_exact(&mut num)
            .map_err(|source| socket(&self.path, source))?;
        let pid = i32::from_ne_bytes(num);
        if pid <= 0 {
            return Err(HandoverError::State(format!("pid {pid}")));
        }
        daemon
            .ready()
            .and_then(|()| daemon.hand_over(pid))
            .map_err(|e| HandoverError::Refused(e.to_string()))?;
        // The hook's success is what lets runc go on: written only now.
        conn.write_all(b"r")
            .map_err(|source| socket(&self.path, source))?;
        Ok(pid)
    }
}

fn socket(path: &Path, source: std::io::Error) -> HandoverError {
    HandoverError::Socket {
        path: path.display().to_string(),
        source,
    }
}

/// The hook: `tsem-handover SOCKET ID`, runc's state of container ID on stdin. Exit status 0
/// only when the supervisor holds the init.
pub fn hook(args: &[std::ffi::OsString]) -> i32 {
    match hand_over(args) {
        Ok(()) => 0,
        Err(e) => {
            // runc puts the hook's stderr in its error.
            eprintln!("tsem-runtime: {e}");
            1
        }
    }
}

fn hand_over(args: &[std::ffi::OsString]) -> Result<(), HandoverError> {
    let [sock, id] = args else {
        return Err(HandoverError::State(format!(
            "usage: {COMMAND} SOCKET ID (a hook of tsem-runtime run)"
        )));
    };
    let mut text = Vec::new();
    std::io::stdin()
        .take(MAX_STATE)
        .read_to_end(&mut text)
        .map_err(|e| HandoverError::State(format!("stdin: {e}")))?;
    let state: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| HandoverError::State(format!("not JSON: {e}")))?;
    let field = |name: &str| state.get(name).and_then(|v| v.as_str());
    if field("id") != id.to_str() {
        return Err(HandoverError::State(format!(
            "container {:?}, expected {}",
            field("id"),
            id.to_string_lossy()
        )));
    }
    if field("status") != Some("creating") {
        return Err(HandoverError::State(format!(
            "status {:?}, expected creating",
            field("status")
        )));
    }
    let pid = state
        .get("pid")
        .and_then(|p| p.as_i64())
        .filter(|p| *p > 0 && *p <= i64::from(i32::MAX))
        .ok_or_else(|| HandoverError::State("no pid".into()))? as i32;
    let path = Path::new(sock);
    let mut conn =
        short_path(path, |p| UnixStream::connect(p)).map_err(|source| socket(path, source))?;
    conn.write_all(&pid.to_ne_bytes())
        .map_err(|source| socket(path, source))?;
    let mut b = [0u8; 1];
    match conn.read(&mut b) {
        Ok(1) if b[0] == b'r' => Ok(()),
        Ok(_) => Err(HandoverError::Refused(
            "no answer (the supervisor's log has why)".into(),
        )),
        Err(e) => Err(HandoverError::Refused(e.to_string())),
    }
}
