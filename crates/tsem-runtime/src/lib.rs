//! # tsem-runtime
//!
//! An OCI runtime with runc's command line (`create`, `start`, `state`, `kill`, `delete`, `run`,
//! `exec`, `features`) that delegates container set-up to a real runtime (`runc`, or
//! `--delegate PATH`) and adds tsem's supervision when the bundle's annotations ask for it
//! (`org.tsem.mode`, [`annotations`]). The supervisor is `tsem run --attach-fd` started as a
//! daemon on the host ([`supervise`]), outside every namespace of the container; it seizes the
//! container's init before `start` and installs tsem's filter at the exec of the container's
//! program (`tsem_sensor::attach`). docs/containers.md has the whole story.

// Every `unsafe` block says why it is sound (`// SAFETY:`).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod annotations;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod delegate;
pub mod handover;
pub mod hookbin;
pub mod hookstate;
pub mod run;
pub mod state;
pub mod supervise;

/// Any error of the runtime: one line for the caller.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The command line.
    #[error(transparent)]
    Cli(#[from] cli::CliError),
    /// The annotations.
    #[error(transparent)]
    Annotation(#[from] annotations::AnnotationError),
    /// The delegate runtime.
    #[error(transparent)]
    Delegate(#[from] delegate::DelegateError),
    /// The hand-over of a `run`'s init.
    #[error(transparent)]
    Handover(#[from] handover::HandoverError),
    /// Our record of the container.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The supervisor daemon.
    #[error(transparent)]
    Supervise(#[from] supervise::SuperviseError),
    /// The bundle's config.json.
    #[error("{path}: {why}")]
    Bundle {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A supervised container must not share a namespace the supervisor lives in.
    #[error("org.tsem.mode needs the container in its own {0} namespace (linux.namespaces)")]
    SharedNamespace(&'static str),
    /// `exec` into a supervised container.
    #[error(
        "exec into supervised container {0} is refused: the new process would run outside its \
         model (docs/containers.md)"
    )]
    ExecRefused(String),
    /// The supervisor of a created container is gone (the container was killed with it).
    #[error("the supervisor of container {0} is gone; the container was killed with it")]
    SupervisorGone(String),
    /// Waiting for the container.
    #[error("waiting for container {0}: {1}")]
    Wait(String, std::io::Error),
}
