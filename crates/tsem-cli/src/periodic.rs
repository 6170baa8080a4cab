//! `tsem run --verifier URL --workload NAME --every SECONDS`: attestations while the workload
//! runs, so the verifier's verdict follows the run and turns `stale` when it stops reporting.
//!
//! The namespace belongs to the sensor's notification threads; an attestation must neither hold
//! it while a nonce is fetched and a signature made nor model anything itself. So the attesting
//! thread reads the run's live mirror (tsem-control's [`Mirror`], the copy `tsem ctl` reads),
//! which the modeling handler publishes after every event, and the lost-event counters the
//! sensor and the handler bump as they go: the sensor's [`Counters`] of each incarnation of the
//! workload (shared through `SensorConfig::counters`) and the events the namespace could not
//! model ([`tsem_sensor::Extras::unmodeled`]).
//!
//! Order matters for honesty: the counters are read *after* the snapshot of the state. An event
//! lost before the snapshot was taken is always counted; one lost while the attestation is made
//! may be counted too (an over-count by events the state does not cover yet, never an
//! under-count): an attestation never claims fewer events lost than were lost before its state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tsem_control::mirror::Mirror;
use tsem_core::event::Event;
use tsem_core::hash::Digest;
use tsem_core::namespace::Namespace;
use tsem_sensor::Counters;

use crate::attest_cmd::{Prepared, RunAttestArgs};

/// Events lost so far by a run, readable from any thread.
#[derive(Debug, Default)]
pub struct Loss {
    /// The sensor's counters of each incarnation of the workload (`--on-forensic restart`
    /// starts it again with fresh ones).
    incarnations: Mutex<Vec<Arc<Counters>>>,
    /// Events the namespace could not model.
    unmodeled: AtomicU64,
}

impl Loss {
    /// Fresh counters for the next incarnation of the workload (`SensorConfig::counters`).
    pub fn incarnation(&self) -> Arc<Counters> {
        let c = Arc::new(Counters::default());
        self.lock().push(c.clone());
        c
    }

    /// The namespace could not model an event.
    pub fn unmodeled(&self) {
        self.unmodeled.fetch_add(1, Ordering::SeqCst);
    }

    /// Every event lost so far: the sensor's in every incarnation, and the namespace's.
    pub fn now(&self) -> u64 {
        let sensor: u64 = self
            .lock()
            .iter()
            .map(|c| c.lost.load(Ordering::SeqCst))
            .sum();
        sensor + self.unmodeled.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Counters>>> {
        // The list is only ever pushed to: a panic elsewhere cannot leave it inconsistent.
        self.incarnations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What one attestation of the live run says.
pub struct Live {
    /// The namespace at one moment.
    pub observed: tsem_attest::Observed,
    /// Its forensic descriptions (posted with the attestation).
    pub forensics: Vec<Event>,
    /// Events lost up to that moment (at least).
    pub lost_events: u64,
}

/// The run's state now, from its mirror, with the lost events read after it.
pub fn observe(mirror: &Mirror, loss: &Loss) -> anyhow::Result<Live> {
    let s = mirror
        .snapshot()
        .map_err(|e| anyhow::anyhow!("the run's live state: {e}"))?;
    let lost_events = loss.now();
    Ok(Live {
        observed: tsem_attest::Observed {
            config: s.config,
            mode: s.mode,
            policy: s.policy,
            state: s.state,
            measurement: s.measurement,
            aggregate: s.aggregate,
            base: s.base,
            events: s.events,
            points: s.points.len() as u64,
            forensics_events: s.forensics_events,
            forensic_points: s.points.iter().filter(|p| !p.1).map(|p| p.0).collect(),
            denied: s.denied,
        },
        forensics: s.forensics,
        lost_events,
    })
}

/// A run's attester: idle until the end, or attesting every SECONDS on its own thread.
pub struct Attesting {
    idle: Option<Prepared>,
    running: Option<(mpsc::Sender<()>, std::thread::JoinHandle<Prepared>)>,
    /// The run's lost events, when attesting while it runs.
    pub loss: Option<Arc<Loss>>,
}

impl Attesting {
    /// Start attesting every `--every` seconds (with `--verifier`), reading `live`'s mirror of
    /// `ns` (started here if `--name` did not); otherwise keep `p` for the end.
    pub fn start(
        p: Option<Prepared>,
        a: &RunAttestArgs,
        model: Option<&tsem_format::ModelFile>,
        live: &mut crate::live::Live,
        ns: &Namespace,
    ) -> Self {
        let (p, secs) = match (p, a.every) {
            (Some(p), Some(secs)) => (p, secs),
            (p, _) => return Self::idle(p),
        };
        let loss = Arc::new(Loss::default());
        let mirror = live.mirror(ns);
        let model = model.map(tsem_attest::model_digest);
        let (tx, rx) = mpsc::channel();
        let l = loss.clone();
        let every = Duration::from_secs(secs);
        let thread = std::thread::spawn(move || attest_every(p, every, &mirror, &l, model, &rx));
        Self {
            idle: None,
            running: Some((tx, thread)),
            loss: Some(loss),
        }
    }

    /// Keep `p` for the end (no attestation while the workload runs).
    pub fn idle(p: Option<Prepared>) -> Self {
        Self {
            idle: p,
            running: None,
            loss: None,
        }
    }

    /// Fresh sensor counters for the next incarnation of the workload, when they are read live.
    pub fn counters(&self) -> Option<Arc<Counters>> {
        self.loss.as_ref().map(|l| l.incarnation())
    }

    /// The workload has ended: stop attesting (an attestation under way is finished first) and
    /// hand the attester back for the final attestation.
    pub fn finish(self) -> anyhow::Result<Option<Prepared>> {
        match self.running {
            None => Ok(self.idle),
            Some((tx, thread)) => {
                drop(tx);
                thread
                    .join()
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("the attesting thread panicked"))
            }
        }
    }
}

/// Attest every `every` until `stop` is dropped; the verdicts go to stderr (the final one, at the
/// end of the run, decides its exit status). A failed attestation is reported and the next one
/// tried: the verifier turns the workload `stale` if they keep failing.
fn attest_every(
    mut p: Prepared,
    every: Duration,
    mirror: &Mirror,
    loss: &Loss,
    model: Option<Digest>,
    stop: &mpsc::Receiver<()>,
) -> Prepared {
    let mut n = 0u64;
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return p,
        }
        n += 1;
        match crate::attest_cmd::attest_live(&mut p, model, || observe(mirror, loss)) {
            Ok(a) => eprintln!(
                "tsem: attestation {n} (running): {}: {}",
                a.verdict, a.reason
            ),
            Err(e) => eprintln!("tsem: warning: attestation {n} (running) failed: {e:#}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tsem_core::event::{Cell, Coe, EventHeader, EventType};
    use tsem_core::hash::HashAlg;
    use tsem_core::namespace::Config;

    fn ev(cap: u32) -> Event {
        let z = HashAlg::Sha256.null_id();
        Event {
            header: EventHeader::new("t", EventType::Capable, z, z),
            coe: Coe::default(),
            cell: Cell::Capable { cap, opts: 0 },
        }
    }

    /// The claims of a live attestation are the namespace's own, and their lost-event count is
    /// the sensor's counters (every incarnation) plus the events the namespace could not model,
    /// as they stand when the snapshot is taken.
    #[test]
    fn a_live_attestation_claims_every_event_lost() {
        let mut ns = Namespace::new(Config::default()).unwrap();
        let mirror = Mirror::new(&ns, Arc::default());
        let loss = Loss::default();
        for cap in [1, 2] {
            ns.model(1, &ev(cap)).unwrap();
            mirror.publish(&ns);
        }
        ns.enforce();
        ns.model(1, &ev(3)).unwrap();
        mirror.publish(&ns);
        let first = loss.incarnation();
        assert_eq!(observe(&mirror, &loss).unwrap().lost_events, 0);
        // The sensor loses events in two incarnations; the namespace fails to model one.
        Counters::bump(&first.lost);
        Counters::bump(&first.lost);
        Counters::bump(&loss.incarnation().lost);
        loss.unmodeled();
        let live = observe(&mirror, &loss).unwrap();
        assert_eq!(live.lost_events, 4);
        assert_eq!(live.forensics, ns.forensics().to_vec());

        let cx = tsem_attest::Context {
            nonce: vec![7; 32],
            lost_events: live.lost_events,
            identity: tsem_attest::Identity {
                host: "h".into(),
                workload: "w".into(),
            },
            model: None,
            time: 1,
        };
        let from_live = tsem_attest::Claims::from_observed(&live.observed, &cx).unwrap();
        let from_ns = tsem_attest::Claims::from_namespace(&ns, &cx).unwrap();
        assert_eq!(from_live, from_ns);
        assert_eq!(from_live.lost_events, 4);
        assert_eq!(from_live.forensic_points.len(), 1);
        assert_eq!(from_live.mode, "enforcing");
    }
}
