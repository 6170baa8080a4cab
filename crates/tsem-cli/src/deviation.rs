//! `tsem run --on-forensic`: what a deviation costs the workload (docs/control.md, "Deviation
//! policies"). The decision itself is [`tsem_core::policy::decide`], applied by the namespace;
//! [`tsem_sensor::modeler::verdict_for`] turns its outcome into the sensor's verdict, and
//! `tsem run` restarts the workload.

use tsem_core::policy::Policy;

/// The deviation policy of a run.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviationArgs {
    /// After an out-of-model event: `untrust` (TSEM: the task and its later children become
    /// untrusted; enforcing refuses all their events), `deny` (enforcing refuses only that
    /// event), `kill` (the workload is killed) or `restart` (killed and started again).
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "untrust",
        requires = "model"
    )]
    pub on_forensic: Policy,
    /// With `--on-forensic restart`: start the workload again at most N times; the next
    /// deviation ends the run as `kill` does.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_restarts: u32,
}
