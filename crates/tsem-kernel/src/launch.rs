//! Starting a workload in a new TSEM namespace, as Quixote does (spec §7.3): the child writes
//! the namespace-creation command to `control` itself (a namespace is the writer's), says so,
//! and waits until the orchestrator has loaded the model and releases it.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;

use crate::{Command, SecurityFs};

const NOT_CREATED: &str = "the workload could not create its TSEM namespace";

/// Why a workload did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Its namespace was not created or set up, or the process could not be made.
    #[error("{0}")]
    Start(std::io::Error),
    /// The namespace was set up and the workload released, but its command could not be
    /// executed (not found, not executable): the shell's 127 or 126, as the sensor gives.
    #[error("cannot execute {prog}: {source}")]
    Exec {
        /// The command, as given.
        prog: String,
        /// What `execve` said.
        source: std::io::Error,
    },
}

impl From<std::io::Error> for LaunchError {
    fn from(e: std::io::Error) -> Self {
        Self::Start(e)
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start `argv` (its own process group): it creates its namespace with `create` and waits
/// while `setup` runs (read the id, load the model, seal, enforce, open the export file); it is
/// released if `setup` succeeds and ends without running otherwise.
pub fn launch<T: Send>(
    argv: &[OsString],
    fs: &SecurityFs,
    create: &Command,
    setup: impl FnOnce() -> Result<T, String> + Send,
) -> Result<(std::process::Child, T), LaunchError> {
    let Some(prog) = argv.first() else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL).into());
    };
    let control = CString::new(fs.path("control").as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let line = create.line().into_bytes();
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (rw, gr) = (ready_w.as_raw_fd(), go_r.as_raw_fd());
    let mut cmd = std::process::Command::new(prog);
    cmd.args(&argv[1..]).process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only makes system calls
    // on memory prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(control.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, line.as_ptr().cast(), line.len());
            libc::close(fd);
            if n != line.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
            // Created: say so, then wait for the model and the release.
            libc::write(rw, [1u8].as_ptr().cast(), 1);
            let mut go = [0u8; 1];
            if libc::read(gr, go.as_mut_ptr().cast(), 1) != 1 || go[0] != 1 {
                return Err(std::io::Error::from_raw_os_error(libc::ECANCELED));
            }
            Ok(())
        });
    }
    // `spawn` returns only once the child has executed (or failed), so the set-up runs on
    // another thread meanwhile.
    std::thread::scope(|s| {
        let helper = s.spawn(move || {
            let mut b = [0u8; 1];
            // SAFETY: reading one byte into a local buffer from an owned descriptor.
            if unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
                return Err(NOT_CREATED.to_string());
            }
            let r = setup();
            let go = [u8::from(r.is_ok())];
            // SAFETY: writing one byte from a local buffer to an owned descriptor.
            unsafe { libc::write(go_w.as_raw_fd(), go.as_ptr().cast(), 1) };
            r
        });
        let spawned = cmd.spawn();
        // The child holds its own copies; ours must go so that a child that failed before
        // saying anything gives the helper end of file.
        drop((ready_w, go_r));
        let set_up = helper
            .join()
            .unwrap_or_else(|_| Err("the set-up thread panicked".into()));
        match (spawned, set_up) {
            (Ok(child), Ok(t)) => Ok((child, t)),
            (Ok(mut child), Err(e)) => {
                let _ = child.wait();
                Err(std::io::Error::other(e).into())
            }
            // Set up and released: only the exec itself can have failed.
            (Err(source), Ok(_)) => Err(LaunchError::Exec {
                prog: prog.to_string_lossy().into_owned(),
                source,
            }),
            // The child gave up because the set-up failed: that is the reason to give.
            (Err(_), Err(e)) if e != NOT_CREATED => Err(std::io::Error::other(e).into()),
            (Err(e), Err(_)) => Err(e.into()),
        }
    })
}

/// Kill the workload's process group (it leads its own).
pub fn kill_tree(child: &std::process::Child) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
}
