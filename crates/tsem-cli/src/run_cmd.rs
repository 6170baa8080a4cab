//! `tsem run` (placeholder until the sensor crate lands).
use std::process::ExitCode;

/// Run a workload under a security model.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The command to run.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

pub fn run(_a: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tsem run is not available in this build yet")
}
