//! Our own record of a supervised container, beside the delegate's: the supervisor daemon's pid
//! and its log. Kept out of the delegate's `--root`, whose every entry it takes for a container.

use std::path::{Path, PathBuf};

use crate::cli::Globals;

/// Errors of the record.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A container of that id is already recorded.
    #[error("container {0} exists")]
    Exists(String),
    /// The id is not a plain name.
    #[error("container id {0:?} is not a plain name")]
    BadId(String),
    /// Reading or writing the record.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The directory holding the records: `<root>.tsem` beside the delegate's `--root`, else
/// `/run/tsem-runtime` (root) or `$XDG_RUNTIME_DIR/tsem-runtime`.
pub fn base(g: &Globals) -> PathBuf {
    if let Some(r) = &g.root {
        let mut s = r.clone().into_os_string();
        s.push(".tsem");
        return s.into();
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return "/run/tsem-runtime".into();
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("tsem-runtime")
}

/// The record of one container.
#[derive(Debug, Clone)]
pub struct Record {
    dir: PathBuf,
}

impl Record {
    /// The record of `id` under `base` (it may not exist).
    pub fn of(base: &Path, id: &str) -> Result<Self, StateError> {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(StateError::BadId(id.to_string()));
        }
        Ok(Self { dir: base.join(id) })
    }

    /// Create it, private to us; an error if it exists.
    pub fn create(&self) -> Result<(), StateError> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(p) = self.dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(p)
                .map_err(io(p))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StateError::Exists(
                self.dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )),
            Err(e) => Err(io(&self.dir)(e)),
        }
    }

    /// Whether the container is supervised (its record exists).
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The supervisor's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }

    /// Where the delegate writes the init's pid when the caller asked for no pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("init.pid")
    }

    /// The private bundle of a supervised `run` (the caller's config with the hand-over hook):
    /// the record itself, which holds its `config.json` (one directory fewer to make and remove
    /// on the container's path).
    pub fn bundle(&self) -> PathBuf {
        self.dir.clone()
    }

    /// The socket the hand-over hook of a supervised `run` connects to.
    pub fn handover_socket(&self) -> PathBuf {
        self.dir.join("handover.sock")
    }

    /// Record the supervisor's pid and start time (to tell it from a later process of the pid).
    pub fn set_supervisor(&self, pid: i32) -> Result<(), StateError> {
        let p = self.dir.join("supervisor");
        let start = start_time(pid).unwrap_or_default();
        std::fs::write(&p, format!("{pid} {start}\n")).map_err(io(&p))
    }

    /// The supervisor's pid while it runs.
    pub fn supervisor(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("supervisor")).ok()?;
        let mut it = text.split_whitespace();
        let pid: i32 = it.next()?.parse().ok()?;
        let start: u64 = it.next()?.parse().ok()?;
        (start_time(pid) == Some(start)).then_some(pid)
    }

    /// Remove the record.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.dir)(e)),
            _ => Ok(()),
        }
    }
}

/// Field 22 of `/proc/<pid>/stat` (after the parenthesized comm).
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}
