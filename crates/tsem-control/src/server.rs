//! The control socket of a named run.
//!
//! One Unix stream socket per run, `DIR/NAME.sock` in the user's runtime directory
//! ([`crate::paths`]), mode 0600 in a 0700 directory: the file system already keeps other users
//! out. Each connection is checked again with `SO_PEERCRED` before anything is read from it:
//!
//! - the peer's uid must be ours (a directory opened up by mistake, or a descriptor passed on,
//!   does not let another user in);
//! - the peer must not be a task of the workload. The workload runs with our uid, so the file
//!   system cannot tell it apart; but every workload task descends from us (the sensor makes this
//!   process the child subreaper, so even orphans are re-parented to us), so a peer whose parent
//!   chain reaches our pid is refused. A peer whose chain cannot be read is refused too.
//!
//! What remains (docs/control.md): a workload task can still *ask another process* of the same
//! user that does not descend from us to connect for it, and, having our uid, it can remove or
//! replace the socket file in the directory (denial of service, or a fake server for the next
//! `tsem ctl`) unless the model or the kernel backstop keeps it out of the directory.

use std::io::{BufRead as _, BufReader, BufWriter, Write};
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use tsem_core::event::Event;
use tsem_format::{RecordKind, write_event, write_event_json};

use crate::mirror::Mirror;
use crate::paths::PathError;
use crate::protocol::{Query, Request, error_line, ok_line};

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The runtime directory or the name.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Another live run has this name.
    #[error("{}: a running tsem already has this name (tsem ctl list)", .0.display())]
    InUse(PathBuf),
    /// Binding or setting up the socket failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Who a run is (the `info` answer).
#[derive(Debug, Clone)]
pub struct Info {
    /// The run's name.
    pub name: String,
    /// The command line of the workload.
    pub command: Vec<String>,
    /// Where it exports, if anywhere.
    pub export: Option<String>,
    /// Start time, seconds since the epoch.
    pub started: u64,
}

/// A running control server; dropping it stops it and removes the socket.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    listener: Option<Arc<UnixListener>>,
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    active: Arc<(Mutex<usize>, Condvar)>,
}

/// Descriptions sent per lock of the mirror.
const CHUNK: usize = 256;
/// How long a follower waits before checking whether its client is still there.
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// A client that does not read for this long is dropped (it cannot hold a thread forever).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long stopping waits for connections still sending the end of a follow.
const DRAIN: Duration = Duration::from_secs(2);

impl Server {
    /// Serve `mirror` as run `name` in the user's runtime directory.
    pub fn start(mirror: Mirror, info: Info) -> Result<Self, ServerError> {
        let dir = crate::paths::runtime_dir()?;
        let path = crate::paths::socket_path(&dir, &info.name)?;
        let io = |source| ServerError::Io {
            path: path.clone(),
            source,
        };
        if std::fs::symlink_metadata(&path).is_ok() {
            // A socket nobody answers on is what a run killed before it could clean up leaves.
            if UnixStream::connect(&path).is_ok() {
                return Err(ServerError::InUse(path));
            }
            std::fs::remove_file(&path).map_err(io)?;
        }
        let listener = UnixListener::bind(&path).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let listener = Arc::new(listener);
        let stopping = Arc::new(AtomicBool::new(false));
        let active = Arc::new((Mutex::new(0usize), Condvar::new()));
        let ctx = Arc::new(Ctx {
            mirror,
            info,
            // SAFETY: getpid and geteuid have no preconditions and cannot fail.
            pid: unsafe { libc::getpid() },
            // SAFETY: as above.
            uid: unsafe { libc::geteuid() },
        });
        let accept = {
            let (l, s, a) = (listener.clone(), stopping.clone(), active.clone());
            std::thread::Builder::new()
                .name("tsem-control".into())
                .spawn(move || accept_loop(&l, &s, &a, &ctx))
                .map_err(io)?
        };
        Ok(Self {
            path,
            listener: Some(listener),
            stopping,
            accept: Some(accept),
            active,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting, let connections finish sending (bounded), remove the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(l) = self.listener.take() {
            // SAFETY: shutting down the listening socket we own makes a blocked accept() return
            // (EINVAL on Linux); the descriptor stays open until the last Arc is dropped.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let (m, cv) = &*self.active;
        let n = m.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cv.wait_timeout_while(n, DRAIN, |n| *n > 0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Ctx {
    mirror: Mirror,
    info: Info,
    pid: libc::pid_t,
    uid: libc::uid_t,
}

fn accept_loop(
    l: &UnixListener,
    stopping: &AtomicBool,
    active: &Arc<(Mutex<usize>, Condvar)>,
    ctx: &Arc<Ctx>,
) {
    for conn in l.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else {
            // E.g. out of descriptors: do not spin while it lasts.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let (ctx, conn_active) = (ctx.clone(), active.clone());
        *active.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let spawned = std::thread::Builder::new()
            .name("tsem-control-conn".into())
            .spawn(move || {
                serve(stream, &ctx);
                let (m, cv) = &*conn_active;
                *m.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                cv.notify_all();
            });
        if spawned.is_err() {
            *active.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        }
    }
}

/// The peer's credentials (`SO_PEERCRED`: as they were at connect time).
fn peer_cred(fd: RawFd) -> std::io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: fd is a socket we own; cred and len point to writable memory of the given size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(cred)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The parent of `pid`, from `/proc/PID/stat` (the field after the parenthesized comm, which
/// may itself contain parentheses and spaces).
fn parent_of(pid: libc::pid_t) -> std::io::Result<libc::pid_t> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable stat line");
    let close = stat.iter().rposition(|&b| b == b')').ok_or_else(bad)?;
    let rest = std::str::from_utf8(stat.get(close + 1..).ok_or_else(bad)?).map_err(|_| bad())?;
    rest.split_ascii_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(bad)
}

/// Why a peer may not talk to us, or `None` if it may.
fn refusal(cred: &libc::ucred, uid: libc::uid_t, us: libc::pid_t) -> Option<String> {
    if cred.uid != uid {
        return Some(format!(
            "refused: uid {} is not the owner of this run (uid {uid})",
            cred.uid
        ));
    }
    if cred.pid <= 0 {
        return Some("refused: the peer's pid is not visible here".into());
    }
    let mut p = cred.pid;
    for _ in 0..65536 {
        if p == us {
            return Some(format!(
                "refused: pid {} is a task of the workload under this run",
                cred.pid
            ));
        }
        if p <= 1 {
            return None;
        }
        p = match parent_of(p) {
            Ok(pp) => pp,
            Err(e) => {
                return Some(format!(
                    "refused: cannot tell whether pid {} is a task of the workload ({e})",
                    cred.pid
                ));
            }
        };
    }
    Some("refused: the peer's parent chain does not end".into())
}

/// Answer one connection; errors end it (the client sees the connection close).
fn serve(stream: UnixStream, ctx: &Ctx) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let fd = stream.as_raw_fd();
    let mut out = BufWriter::new(stream);
    let why = match peer_cred(fd) {
        Ok(c) => refusal(&c, ctx.uid, ctx.pid),
        Err(e) => Some(format!("refused: SO_PEERCRED: {e}")),
    };
    if let Some(why) = why {
        let _ = writeln!(out, "{}", error_line(&why));
        let _ = out.flush();
        return;
    }
    let mut line = Vec::new();
    let mut reader = BufReader::new(std::io::Read::take(read_half, 64 * 1024));
    if reader.read_until(b'\n', &mut line).is_err() {
        return;
    }
    let req = match Request::parse(&line) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "{}", error_line(&e.to_string()));
            let _ = out.flush();
            return;
        }
    };
    let _ = answer(&mut out, req, ctx, fd);
}

type W = BufWriter<UnixStream>;

fn answer(out: &mut W, req: Request, ctx: &Ctx, fd: RawFd) -> std::io::Result<()> {
    let m = &ctx.mirror;
    match req.query {
        Query::Info => {
            let s = m.summary().map_err(other)?;
            writeln!(out, "{}", ok_line())?;
            let v = json!({
                "name": ctx.info.name,
                "pid": ctx.pid,
                "command": ctx.info.command,
                "started": ctx.info.started,
                "export": ctx.info.export,
                "mode": s.json["mode"],
                "events": s.json["events"],
                "points": s.json["points"],
                "forensics_events": s.json["forensics_events"],
            });
            writeln!(out, "{v}")?;
        }
        Query::Model { with_forensics } => {
            let model = m.model(with_forensics).map_err(other)?;
            writeln!(out, "{}", ok_line())?;
            out.write_all(model.to_text().as_bytes())?;
        }
        Query::State => {
            writeln!(out, "{}", ok_line())?;
            let mut last_events = None;
            loop {
                let s = m.summary().map_err(other)?;
                if last_events != Some(s.events) {
                    writeln!(out, "{}", s.json)?;
                    out.flush()?;
                    last_events = Some(s.events);
                }
                if !req.follow || s.closed {
                    break;
                }
                let _ = wait(m, s.generation, fd)?;
                // At most a few summaries a second: each one sorts every point.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Query::Points => {
            writeln!(out, "{}", ok_line())?;
            let mut at = 0;
            follow(out, m, req.follow, fd, |out| {
                let pts = m.points(at);
                at += pts.len();
                for (d, valid) in &pts {
                    writeln!(
                        out,
                        "{}",
                        json!({"coefficient": d.to_hex(), "valid": valid})
                    )?;
                }
                Ok(!pts.is_empty())
            })?;
        }
        Query::Trajectory | Query::Forensics => {
            writeln!(out, "{}", ok_line())?;
            let forensic = req.query == Query::Forensics;
            let mut at = 0;
            follow(out, m, req.follow, fd, |out| {
                let mut any = false;
                loop {
                    let evs = if forensic {
                        m.forensics(at, CHUNK)
                    } else {
                        m.trajectory(at, CHUNK)
                    };
                    if evs.is_empty() {
                        return Ok(any);
                    }
                    any = true;
                    at += evs.len();
                    write_lines(out, &evs)?;
                }
            })?;
        }
    }
    out.flush()
}

/// Send what `send` finds new; with `follow`, again after each change until the run ends.
fn follow(
    out: &mut W,
    m: &Mirror,
    follow: bool,
    fd: RawFd,
    mut send: impl FnMut(&mut W) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    // Read before sending: a publication during the send shows as a new generation.
    let (mut generation, _) = m.generation();
    loop {
        send(out)?;
        out.flush()?;
        if !follow {
            return Ok(());
        }
        let (g, closed) = wait(m, generation, fd)?;
        generation = g;
        if closed {
            // One last pass so that nothing published before the end is missed.
            send(out)?;
            return out.flush();
        }
    }
}

/// Wait for a change or the end, checking now and then that the client is still there.
fn wait(m: &Mirror, seen: u64, fd: RawFd) -> std::io::Result<(u64, bool)> {
    loop {
        let (g, closed) = m.wait_change(seen, FOLLOW_POLL);
        if g != seen || closed {
            return Ok((g, closed));
        }
        if client_gone(fd) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
    }
}

fn client_gone(fd: RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: fd is our connected socket; the buffer is one writable byte. MSG_PEEK leaves any
    // data in place; MSG_DONTWAIT never blocks.
    let r = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    r == 0
}

/// Descriptions as the trajectory and forensics files have them.
fn write_lines(out: &mut W, evs: &[Event]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024 * evs.len());
    for e in evs {
        if write_event_json(&mut buf, e, RecordKind::Trajectory).is_err() {
            write_event(&mut buf, e, RecordKind::Trajectory);
        }
        buf.push(b'\n');
    }
    out.write_all(&buf)
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_chain_through_us_is_the_workload() {
        // SAFETY: no preconditions.
        let (us, uid) = unsafe { (libc::getpid(), libc::geteuid()) };
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let cred = |pid: u32, uid| libc::ucred {
            pid: pid as i32,
            uid,
            gid: 0,
        };
        let r = refusal(&cred(child.id(), uid), uid, us).unwrap();
        assert!(r.contains("task of the workload"), "{r}");
        // Our own parent (the test harness) does not descend from us.
        let parent = parent_of(us).unwrap();
        assert_eq!(refusal(&cred(parent as u32, uid), uid, us), None);
        let r = refusal(&cred(parent as u32, uid + 1), uid, us).unwrap();
        assert!(r.contains("not the owner"), "{r}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
