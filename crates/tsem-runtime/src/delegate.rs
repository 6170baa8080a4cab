//! The runtime that really sets containers up (`runc` by default), called with the caller's
//! global flags.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use crate::cli::Globals;

/// A failed call of the delegate runtime.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// It could not be started.
    #[error("cannot run the delegate runtime {path}: {source}")]
    Spawn {
        /// Its path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// `state` did not answer with the container's pid.
    #[error("{path} state {id}: {why}")]
    State {
        /// Its path.
        path: String,
        /// The container.
        id: String,
        /// What was wrong.
        why: String,
    },
}

/// The delegate runtime.
#[derive(Debug, Clone)]
pub struct Delegate {
    path: PathBuf,
    globals: Vec<OsString>,
}

impl Delegate {
    /// The delegate of an invocation with `g`.
    pub fn new(g: &Globals) -> Self {
        Self {
            path: g.delegate.clone().unwrap_or_else(|| "runc".into()),
            globals: g.forward.clone(),
        }
    }

    /// `DELEGATE [globals] cmd args...`, stdio inherited.
    pub fn command(&self, cmd: &str, args: &[OsString]) -> Command {
        let mut c = Command::new(&self.path);
        c.args(&self.globals).arg(cmd).args(args);
        c
    }

    /// Run `cmd args...` to its end.
    pub fn status(&self, cmd: &str, args: &[OsString]) -> Result<ExitStatus, DelegateError> {
        self.command(cmd, args)
            .status()
            .map_err(|source| self.spawn_error(source))
    }

    /// Start `cmd args...`, stdio inherited.
    pub fn spawn(
        &self,
        cmd: &str,
        args: &[OsString],
    ) -> Result<std::process::Child, DelegateError> {
        self.command(cmd, args)
            .spawn()
            .map_err(|source| self.spawn_error(source))
    }

    /// Replace this process with `cmd args...` (what an unsupervised container gets).
    pub fn exec(&self, cmd: &str, args: &[OsString]) -> DelegateError {
        use std::os::unix::process::CommandExt;
        self.spawn_error(self.command(cmd, args).exec())
    }

    fn spawn_error(&self, source: std::io::Error) -> DelegateError {
        DelegateError::Spawn {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The container's state as the delegate reports it (`status`, `pid`, ...).
    pub fn state(&self, id: &str) -> Result<serde_json::Value, DelegateError> {
        let err = |why: String| DelegateError::State {
            path: self.path.display().to_string(),
            id: id.to_string(),
            why,
        };
        let out = self
            .command("state", &[id.into()])
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|source| self.spawn_error(source))?;
        if !out.status.success() {
            return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| err(format!("not JSON: {e}")))
    }

    /// The pid of the container's init.
    pub fn pid(&self, id: &str) -> Result<i32, DelegateError> {
        let v = self.state(id)?;
        v.get("pid")
            .and_then(|p| p.as_i64())
            .filter(|p| *p > 0 && *p <= i64::from(i32::MAX))
            .map(|p| p as i32)
            .ok_or_else(|| DelegateError::State {
                path: self.path.display().to_string(),
                id: id.to_string(),
                why: "no pid".into(),
            })
    }
}
