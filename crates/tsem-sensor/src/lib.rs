//! # tsem-sensor
//!
//! A userspace TSEM sensor for stock Linux kernels, unprivileged: the workload runs under a
//! seccomp filter that hands only the security-relevant syscalls to the supervisor
//! (`SECCOMP_RET_USER_NOTIF`) and allows everything else in the kernel; event-only ptrace follows
//! its exec/fork/clone/exit lifecycle so TASK_IDs are computed from the program actually loaded.
//!
//! For each notified syscall the supervisor reads the arguments (page-wise `process_vm_readv`,
//! then `SECCOMP_IOCTL_NOTIF_ID_VALID`), opens or resolves the object itself, describes it as the
//! TSEM kernel would (a [`tsem_core::event::Event`]), asks the [`EventHandler`] for a
//! [`Verdict`], and then performs the operation itself and injects the result (`ADDFD|SEND` for
//! opens), so the object measured is the object the workload gets. See `docs/sensor.md` for the
//! event table and what remains racy.
//!
//! Fail closed: the workload dies with the supervisor (`PTRACE_O_EXITKILL`, `PR_SET_PDEATHSIG`),
//! and a listener failure kills it.
#![warn(missing_docs)]
// `unsafe` lives at the syscall boundary (`sys`) only, each block with its `// SAFETY:` reason.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod backstop;
pub mod describe;
pub mod digest_cache;
pub mod event;
pub mod filter;
pub mod modeler;
pub mod notify;
pub mod procfs;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod syscalls;
pub mod tree;
pub mod view;

pub use event::{Counters, EventHandler, ExecEvent, RawEvent, Stats, Verdict};
pub use modeler::{Extras, Modeler};
pub use supervisor::{Exit, Report, SensorConfig, WaitMode, run};
pub use syscalls::{Hot, Observe, Sysno};

/// Any error of the sensor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting or supervising the workload.
    #[error(transparent)]
    Spawn(#[from] supervisor::SpawnError),
    /// Reading procfs.
    #[error(transparent)]
    Proc(#[from] procfs::ProcError),
    /// The notification loop.
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
}
