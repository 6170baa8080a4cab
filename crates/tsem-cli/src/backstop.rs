//! `tsem run`'s side of the kernel backstop (`tsem_sensor::backstop`): which access set a run
//! applies or learns, the test-only switch that leaves the backstop alone, and its summary.

use std::path::PathBuf;

use anyhow::bail;
use serde_json::{Value, json};
use tsem_core::access::AccessSet;
use tsem_format::{ModelFile, Record, RecordParser};
use tsem_sensor::backstop::{self, BackstopReport, learn::Learner};

use crate::run_cmd::RunArgs;

/// The environment variable that must hold [`BACKSTOP_ONLY_CONSENT`] for `--backstop-only`.
pub const BACKSTOP_ONLY_ENV: &str = "TSEM_TEST_BACKSTOP_ONLY";
/// Its value: the switch turns the sensor's decisions off, so it must not be set by accident.
pub const BACKSTOP_ONLY_CONSENT: &str = "sensor-decides-nothing";

/// What a run does about the backstop.
pub enum Plan {
    /// Nothing (sealing, `--no-backstop`, `--mechanism-only`).
    Off,
    /// Enforcing a model that carries no access set: the run goes on without (reported).
    NotRecorded,
    /// Apply this set.
    Apply(AccessSet),
    /// Learn a set; `base` is the extended model's (None: it had none, so nothing is written).
    Learn { base: Option<AccessSet> },
}

/// Decide from the arguments and the loaded model (if any).
pub fn plan(a: &RunArgs, model: Option<&ModelFile>) -> anyhow::Result<Plan> {
    if a.backstop_only {
        if std::env::var(BACKSTOP_ONLY_ENV).as_deref() != Ok(BACKSTOP_ONLY_CONSENT) {
            bail!(
                "--backstop-only is a test switch that lets every call through the sensor \
                 undecided; it needs {BACKSTOP_ONLY_ENV}={BACKSTOP_ONLY_CONSENT}"
            );
        }
        if a.no_backstop {
            bail!("--backstop-only with --no-backstop would confine nothing");
        }
    }
    if a.no_backstop || a.mechanism_only.is_some() || a.seal {
        return Ok(Plan::Off);
    }
    match model {
        Some(m) if a.enforce || a.backstop_only => {
            let set = m.access_set();
            if set.is_recorded() {
                Ok(Plan::Apply(set))
            } else if a.backstop_only {
                bail!("--backstop-only: the model has no landlock lines");
            } else {
                Ok(Plan::NotRecorded)
            }
        }
        Some(m) if a.learn => Ok(Plan::Learn {
            base: Some(m.access_set()).filter(AccessSet::is_recorded),
        }),
        Some(_) => Ok(Plan::Off),
        None => Ok(Plan::Learn {
            base: Some(AccessSet::learned()),
        }),
    }
}

/// The learner for a learning run.
pub fn learner(p: &Plan) -> Option<Learner> {
    matches!(p, Plan::Learn { base: Some(_) }).then(Learner::new)
}

/// The set to write into the output model: the learned one united with the extended model's;
/// none when the extended model had none (a set covering only this run would deny the rest).
/// Also the number of events whose path could not be placed.
pub fn learned_set(p: &Plan, learner: Option<Learner>) -> Option<(AccessSet, u64)> {
    let (Plan::Learn { base: Some(base) }, Some(l)) = (p, learner) else {
        return None;
    };
    if let Some(ty) = l.blocker() {
        eprintln!(
            "tsem: warning: the model gets no kernel backstop: the workload made {} events, \
             which Landlock forbids in a sandbox",
            ty.name()
        );
        return None;
    }
    let unresolved = l.unresolved();
    let mut set = l.finish();
    set.union(base);
    Some((set, unresolved))
}

/// The summary's `landlock` object.
pub fn summary(
    p: &Plan,
    report: Option<&BackstopReport>,
    learned: Option<&(AccessSet, u64)>,
) -> Value {
    let off = backstop::disabled();
    let r = report.unwrap_or(&off);
    let mut v = json!({
        "abi": r.abi,
        "status": r.status.name(),
        "rules": r.rules,
        "missing": r.missing,
        "scoped": r.scoped,
    });
    let reason = match p {
        Plan::Off => Some("not requested"),
        Plan::NotRecorded => Some("the model has no landlock lines"),
        Plan::Learn { .. } => Some("learning"),
        Plan::Apply(_) if r.status == backstop::Status::NotEnforced => {
            Some("the kernel has no Landlock")
        }
        Plan::Apply(_) => None,
    };
    if let Some(reason) = reason {
        v["reason"] = json!(reason);
    }
    if let Some((s, unresolved)) = learned {
        v["learned"] = json!({
            "unresolved_events": unresolved,
            "paths": s.fs.len(),
            "tcp_bind": s.tcp_bind.len(),
            "tcp_connect": s.tcp_connect.len(),
            "unscoped": s.unscoped.iter().map(|s| s.name()).collect::<Vec<_>>(),
        });
    }
    v
}

/// `model build --backstop`: learn the access set from the trajectories' event descriptions
/// (paths placed in this machine's mount table). None when an event forbids a backstop.
pub fn learn_from_trajectories(files: &[PathBuf]) -> anyhow::Result<Option<AccessSet>> {
    let mut learner = Learner::new();
    for f in files {
        if f.as_os_str() == "-" {
            bail!("--backstop reads the trajectories a second time: give files, not `-`");
        }
        // Lines are bytes: a trajectory line with a name that is not UTF-8 is in the kernel's
        // form (docs/raw-bytes.md).
        let name = f.display().to_string();
        let mut parser = RecordParser::new();
        crate::replay::for_each_record(
            &name,
            &mut *crate::replay::open_input(f)?,
            &mut parser,
            |_, rec| {
                if let Record::Event { event, .. } = rec {
                    learner.observe(&event);
                }
                Ok(())
            },
        )?;
    }
    Ok(learned_set(
        &Plan::Learn {
            base: Some(AccessSet::learned()),
        },
        Some(learner),
    )
    .map(|(set, _)| set))
}
