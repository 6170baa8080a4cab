//! `tsem run --on-forensic`: what a deviation costs the workload (docs/control.md, "Deviation
//! policies"). The decision itself is [`tsem_core::policy::decide`], applied by the namespace;
//! this module turns its outcome into the sensor's verdict and restarts the workload.

use tsem_core::namespace::{Outcome, Verdict as NsVerdict};
use tsem_core::policy::{Policy, RunAction};
use tsem_sensor::{Stats, Verdict};

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

/// The sensor's verdict for a modeled event.
pub fn verdict(o: &Outcome, errno: i32) -> Verdict {
    let v = match o.verdict {
        NsVerdict::Allow => Verdict::allow(),
        NsVerdict::Deny => Verdict::deny(errno),
    };
    let v = if o.untrust { v.tainting() } else { v };
    match o.run {
        RunAction::Continue => v,
        RunAction::Kill | RunAction::Restart => v.ending(),
    }
}

/// Counters of several incarnations of a workload, added up.
pub fn add_stats(a: Stats, b: Stats) -> Stats {
    Stats {
        notifications: a.notifications + b.notifications,
        events: a.events + b.events,
        denied: a.denied + b.denied,
        emulated: a.emulated + b.emulated,
        continued: a.continued + b.continued,
        unmodeled: a.unmodeled + b.unmodeled,
        abandoned: a.abandoned + b.abandoned,
        lost: a.lost + b.lost,
        exec_mismatch: a.exec_mismatch + b.exec_mismatch,
        protected: a.protected + b.protected,
        refused: a.refused + b.refused,
        unfaithful: a.unfaithful + b.unfaithful,
        tasks: a.tasks + b.tasks,
        execs: a.execs + b.execs,
    }
}
