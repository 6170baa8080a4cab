//! What happens after a deviation: the orchestrator's policy for an out-of-model (forensic) event.
//!
//! TSEM's own answer ([`Policy::Untrust`]) makes the task untrusted for good, and an enforcing
//! namespace then refuses every later security event of it and of its descendants. That is right
//! for a batch job, but it takes a service down: one unexpected request and the worker's accept
//! loop spins on refusals. The other policies keep the model enforced while choosing what the
//! deviation costs: the one event ([`Policy::Deny`]), the workload ([`Policy::Kill`]), or the
//! workload's current incarnation ([`Policy::Restart`]).
//!
//! [`decide`] is pure: the namespace applies its verdict and trust mark, the supervisor applies
//! its [`RunAction`].

use core::fmt;
use core::str::FromStr;

use crate::namespace::{Mode, Verdict};

/// The policy after a forensic event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Policy {
    /// TSEM's semantics: the task becomes untrusted (it and its later descendants); when
    /// enforcing, the event and every later event of an untrusted task are refused.
    #[default]
    Untrust,
    /// When enforcing, only the out-of-model event is refused (and recorded); the task stays
    /// trusted. When sealed, it is recorded and allowed.
    Deny,
    /// The event is refused when enforcing, and the whole workload (every task) is killed.
    Kill,
    /// As `Kill`, then the workload is started again from its known state.
    Restart,
}

/// What the supervisor does with the run after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunAction {
    /// Nothing.
    #[default]
    Continue,
    /// Kill every task of the workload; the run ends.
    Kill,
    /// Kill every task of the workload and start it again.
    Restart,
}

/// The decision on one modeled event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allow or refuse the event.
    pub verdict: Verdict,
    /// Mark the task untrusted (sticky, inherited by its later children).
    pub untrust: bool,
    /// What happens to the run.
    pub run: RunAction,
}

/// An unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub alloc::string::String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown policy {:?}: expected untrust, deny, kill or restart",
            self.0
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PolicyError {}

impl Policy {
    /// Every policy, in the order of the documentation.
    pub const ALL: [Policy; 4] = [Policy::Untrust, Policy::Deny, Policy::Kill, Policy::Restart];

    /// The name used on the command line, in summaries and in attestations.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Untrust => "untrust",
            Policy::Deny => "deny",
            Policy::Kill => "kill",
            Policy::Restart => "restart",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| PolicyError(s.into()))
    }
}

/// Decide about one event of a task: `forensic` when it hit a point outside the model,
/// `untrusted` when the task was already untrusted before it.
///
/// A free (learning) namespace allows everything. A sealed one allows everything and only
/// records; `kill` and `restart` still act on the run, since they protect by ending the
/// workload, not by refusing. An enforcing one refuses a forensic event under every policy, and
/// the events of untrusted tasks (which only `untrust`, `kill` and `restart` create: a task
/// being killed must not act meanwhile).
pub fn decide(policy: Policy, mode: Mode, forensic: bool, untrusted: bool) -> Decision {
    let allow = Decision {
        verdict: Verdict::Allow,
        untrust: false,
        run: RunAction::Continue,
    };
    if mode == Mode::Free {
        return allow;
    }
    let run = match (forensic, policy) {
        (true, Policy::Kill) => RunAction::Kill,
        (true, Policy::Restart) => RunAction::Restart,
        _ => RunAction::Continue,
    };
    let untrust = forensic && policy != Policy::Deny;
    let refuse = mode == Mode::Enforcing && (forensic || untrusted);
    Decision {
        verdict: if refuse {
            Verdict::Deny
        } else {
            Verdict::Allow
        },
        untrust,
        run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(p.name().parse::<Policy>(), Ok(p));
        }
        assert!("Deny".parse::<Policy>().is_err());
        assert_eq!(Policy::default(), Policy::Untrust);
    }

    #[test]
    fn free_namespaces_allow_everything() {
        for p in Policy::ALL {
            let d = decide(p, Mode::Free, true, true);
            assert_eq!(d.verdict, Verdict::Allow);
            assert!(!d.untrust);
            assert_eq!(d.run, RunAction::Continue);
        }
    }

    #[test]
    fn untrust_is_tsem_semantics() {
        let d = decide(Policy::Untrust, Mode::Enforcing, true, false);
        assert_eq!((d.verdict, d.untrust), (Verdict::Deny, true));
        // An in-model event of an untrusted task is refused too.
        let d = decide(Policy::Untrust, Mode::Enforcing, false, true);
        assert_eq!(d.verdict, Verdict::Deny);
        // Sealed: recorded and marked, never refused.
        let d = decide(Policy::Untrust, Mode::Sealed, true, false);
        assert_eq!((d.verdict, d.untrust), (Verdict::Allow, true));
    }

    #[test]
    fn deny_refuses_only_the_deviation() {
        let d = decide(Policy::Deny, Mode::Enforcing, true, false);
        assert_eq!(
            (d.verdict, d.untrust, d.run),
            (Verdict::Deny, false, RunAction::Continue)
        );
        let d = decide(Policy::Deny, Mode::Enforcing, false, false);
        assert_eq!(d.verdict, Verdict::Allow);
        let d = decide(Policy::Deny, Mode::Sealed, true, false);
        assert_eq!((d.verdict, d.untrust), (Verdict::Allow, false));
    }

    #[test]
    fn kill_and_restart_end_the_workload() {
        for (p, a) in [
            (Policy::Kill, RunAction::Kill),
            (Policy::Restart, RunAction::Restart),
        ] {
            let d = decide(p, Mode::Enforcing, true, false);
            assert_eq!((d.verdict, d.untrust, d.run), (Verdict::Deny, true, a));
            let d = decide(p, Mode::Sealed, true, false);
            assert_eq!((d.verdict, d.run), (Verdict::Allow, a));
            let d = decide(p, Mode::Enforcing, false, false);
            assert_eq!((d.verdict, d.run), (Verdict::Allow, RunAction::Continue));
        }
    }
}
