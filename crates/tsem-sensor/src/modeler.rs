//! The model-facing handler: every event the sensor describes (notifier and tracer alike, both
//! through [`crate::notify`]'s one path into the model) is modeled by a TSEM [`Namespace`], and
//! the namespace's outcome becomes the sensor's [`Verdict`] by one rule, [`verdict_for`].
//!
//! What a front end adds around the model (naming rules, progress, a live mirror, outputs) comes
//! in through [`Extras`]; it never decides a verdict.

use std::borrow::Cow;

use tsem_core::RawStr;
use tsem_core::event::Event;
use tsem_core::namespace::{Mode, Namespace, Outcome, Verdict as NsVerdict};
use tsem_core::policy::RunAction;

use crate::backstop::learn::Learner;
use crate::event::{EventHandler, ExecEvent, RawEvent, Verdict};

/// What a front end does around the model: shape events before they are modeled (naming rules)
/// and watch what was decided. None of it changes a verdict.
pub trait Extras: Send + 'static {
    /// The event as the model sees it (e.g. with pseudonyms applied); unchanged by default.
    fn shape<'a>(&mut self, ev: &'a Event, _tid: i32) -> Cow<'a, Event> {
        Cow::Borrowed(ev)
    }
    /// The namespace's outcome for the shaped event `ev` of `tid`.
    fn outcome(&mut self, _ev: &Event, _tid: i32, _untrusted: bool, _o: &Outcome, _mode: Mode) {}
    /// The namespace could not model the event (counted in [`Modeler::errors`], lost); called
    /// before `after_event`.
    fn unmodeled(&mut self) {}
    /// After each event, decided or not.
    fn after_event(&mut self, _ns: &Namespace, _ev: &Event, _untrusted: bool) {}
    /// `tid` executed the program at `path`.
    fn executed(&mut self, _tid: i32, _path: &RawStr) {}
    /// `tid` exited.
    fn exited(&mut self, _tid: i32) {}
    /// Where the modeling agent is another process (`tsem run --tma`): its outcome for the
    /// shaped event, which the local namespace (`local`, modeled alike) checks; `None` when it
    /// gave none, or one that disagrees: the event is then refused and the workload ended.
    fn remote(&mut self, _key: u64, _ev: &Event, local: Outcome) -> Option<Outcome> {
        Some(local)
    }
}

/// No extras: the model alone.
impl Extras for () {}

/// The TSEM namespace plugged into the sensor.
pub struct Modeler<X: Extras> {
    /// The namespace that models the workload.
    pub ns: Namespace,
    /// The kernel backstop's access set being learned (learning runs only).
    pub learner: Option<Learner>,
    /// What the front end adds (see [`Extras`]).
    pub extras: X,
    /// Events the namespace could not model (counted as lost).
    pub errors: u64,
}

impl<X: Extras> Modeler<X> {
    /// A modeler of `ns` with `extras`.
    pub fn new(ns: Namespace, learner: Option<Learner>, extras: X) -> Self {
        Modeler {
            ns,
            learner,
            extras,
            errors: 0,
        }
    }
}

/// The sensor's verdict on an event the namespace modeled: what the namespace decided under its
/// deviation policy ([`tsem_core::policy::decide`]), and the tainting rule. Under TSEM's own
/// policy (`untrust`) a forensic event (out of the sealed or enforced model) marks its task, and
/// through the sensor's task tree every descendant, untrusted; when enforcing, the namespace
/// then denies every later event of those tasks. `kill` and `restart` end the workload.
///
/// This is the single place that turns what follows a deviation from the model into the
/// sensor's actions.
pub fn verdict_for(o: &Outcome) -> Verdict {
    let v = match o.verdict {
        NsVerdict::Allow => Verdict::allow(),
        NsVerdict::Deny => Verdict::deny(libc::EPERM),
    };
    let v = if o.untrust { v.tainting() } else { v };
    match o.run {
        RunAction::Continue => v,
        RunAction::Kill | RunAction::Restart => v.ending(),
    }
}

/// The verdict on an event the namespace could not model: refused when enforcing (fail
/// closed), allowed otherwise; counted as lost either way.
pub fn verdict_for_error(mode: Mode) -> Verdict {
    if mode == Mode::Enforcing {
        Verdict::deny(libc::EPERM)
    } else {
        Verdict::allow()
    }
}

impl<X: Extras> EventHandler for Modeler<X> {
    fn on_view(&mut self, view: &crate::view::View) {
        // Only a learner needs the table: read it only then (the read is ~0.15 ms on the
        // container's path at its program's exec stop).
        if let Some(l) = &mut self.learner
            && let Some(mounts) = view.mounts()
        {
            l.set_mounts(mounts);
        }
    }

    fn on_event(&mut self, ev: &RawEvent) -> Verdict {
        let key = ev.tid as u64;
        if let Some(l) = &mut self.learner {
            l.observe(&ev.event);
        }
        // The sensor's untrusted mark follows forks; the namespace keys tasks by tid.
        if ev.untrusted {
            self.ns.mark_untrusted(key);
        }
        let event = self.extras.shape(&ev.event, ev.tid);
        let v = match self.ns.model(key, &event) {
            Ok(local) => {
                let Some(o) = self.extras.remote(key, &event, local) else {
                    // No verdict from the modeling agent: refused, and the workload ends.
                    return Verdict::deny(libc::EPERM).ending();
                };
                let mode = self.ns.mode();
                self.extras.outcome(&event, ev.tid, ev.untrusted, &o, mode);
                verdict_for(&o)
            }
            Err(_) => {
                self.errors += 1;
                self.extras.unmodeled();
                verdict_for_error(self.ns.mode())
            }
        };
        self.extras.after_event(&self.ns, &event, ev.untrusted);
        v
    }

    fn on_exec(&mut self, ev: &ExecEvent) {
        self.extras.executed(ev.tid, &ev.exe.path.pathname);
    }

    fn on_exit(&mut self, tid: i32) {
        self.ns.on_exit(tid as u64);
        self.extras.exited(tid);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn outcome(verdict: NsVerdict, forensic: bool) -> Outcome {
        Outcome {
            coefficient: tsem_core::Digest::zero(32),
            new_point: forensic,
            valid: !forensic,
            forensic,
            verdict,
            untrust: forensic,
            run: RunAction::Continue,
        }
    }

    #[test]
    fn a_forensic_event_taints_and_nothing_else_does() {
        let allowed = verdict_for(&outcome(NsVerdict::Allow, false));
        assert!(allowed.allow && !allowed.taint);
        let sealed = verdict_for(&outcome(NsVerdict::Allow, true));
        assert!(
            sealed.allow && sealed.taint,
            "sealed: allowed, but the task is untrusted"
        );
        let enforced = verdict_for(&outcome(NsVerdict::Deny, true));
        assert!(!enforced.allow && enforced.taint && enforced.errno == libc::EPERM);
        let untrusted = verdict_for(&outcome(NsVerdict::Deny, false));
        assert!(!untrusted.allow && !untrusted.taint);
    }

    #[test]
    fn kill_and_restart_end_the_workload_deny_does_not_taint() {
        for run in [RunAction::Kill, RunAction::Restart] {
            let o = Outcome {
                run,
                ..outcome(NsVerdict::Deny, true)
            };
            let v = verdict_for(&o);
            assert!(!v.allow && v.end_workload);
        }
        let deny = Outcome {
            untrust: false,
            ..outcome(NsVerdict::Deny, true)
        };
        let v = verdict_for(&deny);
        assert!(!v.allow && !v.taint && !v.end_workload);
    }

    #[test]
    fn an_unmodelable_event_is_refused_only_when_enforcing() {
        assert!(!verdict_for_error(Mode::Enforcing).allow);
        assert!(verdict_for_error(Mode::Sealed).allow);
        assert!(verdict_for_error(Mode::Free).allow);
    }
}
