//! The kernel backstop: a Landlock ruleset compiled from the model's access set
//! ([`tsem_core::access`]) and applied to the workload at start, so that a call the sensor lets
//! through (continued to the kernel) still meets the kernel's own check.
//!
//! What Landlock sees: only what the workload's tasks do in the kernel themselves: execs (the
//! kernel opens the program and its ELF or script interpreter, needing EXECUTE and READ_FILE),
//! every call the sensor continues (credential changes, relative Unix addresses, fallbacks) and
//! calls the filter never notifies. Opens, creates, binds and connects the supervisor performs
//! itself (ADDFD) are the supervisor's, which Landlock does not restrict; `mmap` is never checked.
//! The rules must cover all of it, or a benign run fails: the learner grants what each learned
//! event needs (see [`learn`]), and everything a run creates is granted on the nearest directory
//! that existed before it (rules bind to inodes that exist when the ruleset is built).
//!
//! The ruleset is created and filled before the fork with the `landlock` crate (pinned to
//! [`ABI::V7`], best effort: an older kernel enforces what it can, reported as
//! `partially_enforced`). The crate's `restrict_self` is not async-signal-safe by contract, so
//! the child takes the ruleset's descriptor and calls `landlock_restrict_self(2)` itself, one raw
//! syscall after `PR_SET_NO_NEW_PRIVS` and before the seccomp filter ([`crate::sys::fork_child`]).

pub mod learn;

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, Scope,
};
use tsem_core::access::{self, AccessSet};

/// The ABI whose rights tsem requests (tested on this ABI; never more, whatever the kernel has).
pub const TESTED_ABI: ABI = ABI::V7;

/// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` (ABI 7): denials of the workload, which runs after
/// an exec, reach the audit log like those of the program that sandboxed itself would.
const LOG_NEW_EXEC_ON: u32 = 1 << 1;

/// Errors building the backstop.
#[derive(Debug, thiserror::Error)]
pub enum BackstopError {
    /// The model carries no access set (learned before the backstop existed, or merged with such
    /// a model).
    #[error("the model has no landlock lines (learn it again, or run with --no-backstop)")]
    NotRecorded,
    /// The `landlock` crate refused the ruleset.
    #[error("building the Landlock ruleset: {0}")]
    Ruleset(#[from] RulesetError),
}

/// How much of the requested ruleset the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every right and scope of [`TESTED_ABI`].
    FullyEnforced,
    /// The kernel's older ABI enforces a subset.
    PartiallyEnforced,
    /// No Landlock (not built, not enabled, or not requested).
    NotEnforced,
}

impl Status {
    /// The name in `--summary-json`.
    pub const fn name(self) -> &'static str {
        match self {
            Status::FullyEnforced => "fully_enforced",
            Status::PartiallyEnforced => "partially_enforced",
            Status::NotEnforced => "not_enforced",
        }
    }
}

/// What the backstop of a run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackstopReport {
    /// The kernel's Landlock ABI (0: none).
    pub abi: u32,
    /// How much is enforced.
    pub status: Status,
    /// Rules added (paths and ports).
    pub rules: usize,
    /// Paths of the access set that do not exist now (no rule could name them), escaped.
    pub missing: Vec<String>,
    /// Scopes applied (`signal`, `abstract-unix-socket`).
    pub scoped: Vec<&'static str>,
}

/// A ruleset ready for the child, built before the fork.
#[derive(Debug)]
pub struct Prepared {
    fd: Option<OwnedFd>,
    flags: u32,
    /// What will be enforced.
    pub report: BackstopReport,
}

impl Prepared {
    /// The descriptor and flags for `landlock_restrict_self` in the child; `None` when the
    /// kernel has no Landlock.
    pub fn child_args(&self) -> Option<(RawFd, u32)> {
        self.fd.as_ref().map(|f| (f.as_raw_fd(), self.flags))
    }
}

/// The kernel's Landlock ABI version, 0 without Landlock. For reporting only: the rights
/// requested are always [`TESTED_ABI`]'s.
pub fn kernel_abi() -> u32 {
    crate::sys::landlock_abi()
}

fn scopes(set: &AccessSet) -> BitFlags<Scope> {
    let mut s = Scope::from_all(TESTED_ABI);
    if set.unscoped.contains(&access::Scope::Signal) {
        s.remove(Scope::Signal);
    }
    if set.unscoped.contains(&access::Scope::AbstractUnixSocket) {
        s.remove(Scope::AbstractUnixSocket);
    }
    s
}

/// Compile `set` into a Landlock ruleset (best effort on older kernels).
pub fn prepare(set: &AccessSet) -> Result<Prepared, BackstopError> {
    if !set.is_recorded() {
        return Err(BackstopError::NotRecorded);
    }
    let abi = kernel_abi();
    let scoped = scopes(set);
    // READ_DIR is left unhandled: TSEM has no event for opening a directory, so no learned set
    // could grant it (see `learn`).
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TESTED_ABI) & !AccessFs::ReadDir)?
        .handle_access(AccessNet::from_all(TESTED_ABI))?;
    if !scoped.is_empty() {
        ruleset = ruleset.scope(scoped)?;
    }
    let mut created = ruleset.create()?;
    let mut rules = 0;
    let mut missing = Vec::new();
    for (path, rights) in &set.fs {
        let Ok(fd) = PathFd::new(OsStr::from_bytes(path)) else {
            missing.push(access::escape_path(path));
            continue;
        };
        let dir = crate::sys::fstat(fd.as_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .unwrap_or(false);
        // Rights that only directories have are invalid on a file's rule.
        let rights = if dir {
            *rights
        } else {
            *rights & access::fs::FILE
        };
        if rights == 0 {
            continue;
        }
        let flags = BitFlags::<AccessFs>::from_bits_truncate(u64::from(rights));
        created = created.add_rule(PathBeneath::new(fd, flags))?;
        rules += 1;
    }
    for (ports, right) in [
        (&set.tcp_bind, AccessNet::BindTcp),
        (&set.tcp_connect, AccessNet::ConnectTcp),
    ] {
        for p in ports {
            created = created.add_rule(NetPort::new(*p, right))?;
            rules += 1;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    let status = match (&fd, abi) {
        (None, _) | (_, 0) => Status::NotEnforced,
        (Some(_), a) if a >= TESTED_ABI as u32 => Status::FullyEnforced,
        _ => Status::PartiallyEnforced,
    };
    let flags = if abi >= 7 { LOG_NEW_EXEC_ON } else { 0 };
    let mut scope_names = Vec::new();
    if abi >= 6 {
        if scoped.contains(Scope::Signal) {
            scope_names.push(access::Scope::Signal.name());
        }
        if scoped.contains(Scope::AbstractUnixSocket) {
            scope_names.push(access::Scope::AbstractUnixSocket.name());
        }
    }
    Ok(Prepared {
        fd,
        flags,
        report: BackstopReport {
            abi,
            status,
            rules: if status == Status::NotEnforced {
                0
            } else {
                rules
            },
            missing,
            scoped: scope_names,
        },
    })
}

/// The report of a run without a backstop (`--no-backstop`, learning, sealing).
pub fn disabled() -> BackstopReport {
    BackstopReport {
        abi: kernel_abi(),
        status: Status::NotEnforced,
        rules: 0,
        missing: Vec::new(),
        scoped: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrecorded_set_is_refused() {
        assert!(matches!(
            prepare(&AccessSet::default()),
            Err(BackstopError::NotRecorded)
        ));
    }

    #[test]
    fn missing_paths_are_reported_not_ruled() {
        let mut set = AccessSet::learned();
        set.grant(b"/nonexistent/tsem backstop", access::fs::READ_FILE);
        set.grant(b"/usr", access::fs::READ_FILE | access::fs::EXECUTE);
        set.tcp_connect.insert(80);
        let p = prepare(&set).unwrap();
        assert_eq!(p.report.missing, ["/nonexistent/tsem\\x20backstop"]);
        if kernel_abi() == 0 {
            assert_eq!(p.report.status, Status::NotEnforced);
            assert!(p.child_args().is_none());
        } else {
            assert_eq!(p.report.rules, 2);
            assert!(p.child_args().is_some());
        }
    }

    #[test]
    fn lifted_scopes_are_not_applied() {
        let mut set = AccessSet::learned();
        set.unscoped.insert(access::Scope::Signal);
        let s = scopes(&set);
        assert!(!s.contains(Scope::Signal));
        assert!(s.contains(Scope::AbstractUnixSocket));
    }
}
