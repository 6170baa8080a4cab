//! A live copy of a modeling namespace for readers on other threads.
//!
//! The namespace belongs to the sensor's modeling handler, which runs on the notification
//! threads; readers (the control socket) must neither take it away nor make a verdict wait while
//! they compute a state or serialize a trajectory. So after each event the handler calls
//! [`Mirror::publish`], which copies under a mutex only what changed: a few counters and the
//! measurement, plus the coefficient and a clone of the description of each *new* point (new
//! points are rare next to events). Readers take the mutex briefly to copy what they need and do
//! the work (state sorting, JSON) outside it.
//!
//! The state over the points is recomputed on demand in a scratch namespace fed the mirrored
//! points: the state (§4.4) depends only on the set of points, base and aggregate, so it is the
//! namespace's own, bit for bit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use tsem_core::event::Event;
use tsem_core::hash::Digest;
use tsem_core::namespace::{Config, Mode, Namespace, NamespaceError};
use tsem_format::ModelFile;

/// The copied parts of a namespace.
#[derive(Debug, Clone)]
struct Copy {
    cfg: Config,
    mode: Mode,
    /// The deviation policy (fixed for the run).
    policy: tsem_core::policy::Policy,
    events: u64,
    forensics_events: u64,
    denied: u64,
    measurement: Digest,
    aggregate: Digest,
    base: Digest,
    /// Every point in first-seen order with its validity (a point never changes validity).
    points: Vec<(Digest, bool)>,
    pseudonyms: Vec<Digest>,
    trajectory: Vec<Event>,
    forensics: Vec<Event>,
    /// Bumped by every publication, so followers see that something changed.
    generation: u64,
    /// The run has ended: nothing more will come.
    closed: bool,
}

/// Counters kept by others (the exporter) that belong in the summary.
#[derive(Debug, Default)]
pub struct ExtraCounters {
    /// Export records written to the consumer.
    pub exported: AtomicU64,
    /// Export records lost (queue full, consumer gone).
    pub lost_exports: AtomicU64,
    /// An export is configured (so the counters mean something).
    pub exporting: AtomicU64,
    /// Times the workload was killed by the deviation policy (`kill`, or `restart` each time).
    pub policy_kills: AtomicU64,
    /// Times the workload was started again (`restart`).
    pub restarts: AtomicU64,
}

/// The shared mirror: cheap to clone, one per run.
#[derive(Debug, Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    copy: Mutex<Copy>,
    changed: Condvar,
    /// Readers waiting on `changed`; the publisher wakes them only if there are any (a futex
    /// wake is a system call, too dear for every event).
    waiting: AtomicUsize,
    extra: Arc<ExtraCounters>,
}

/// A consistent view of the counters and digests (for `state`).
#[derive(Debug, Clone)]
pub struct Summary {
    /// The JSON summary, the same object as `tsem replay --json` and `tsem run --summary-json`
    /// give (without their run-only fields).
    pub json: serde_json::Value,
    /// Events modeled so far.
    pub events: u64,
    /// Generation it was taken at.
    pub generation: u64,
    /// The run has ended.
    pub closed: bool,
}

/// Everything an attestation of the run says, taken under one lock so the counts, the points,
/// the state and the forensic descriptions belong to one moment (`tsem run --every`).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Hash function and coefficient layout.
    pub config: Config,
    /// Free, sealed or enforcing.
    pub mode: Mode,
    /// The deviation policy.
    pub policy: tsem_core::policy::Policy,
    /// Events modeled.
    pub events: u64,
    /// Events out of the model.
    pub forensics_events: u64,
    /// Events denied.
    pub denied: u64,
    /// The state over every point (the namespace's own, see the module's comment).
    pub state: Digest,
    /// The measurement.
    pub measurement: Digest,
    /// The aggregate.
    pub aggregate: Digest,
    /// The base.
    pub base: Digest,
    /// Every point in first-seen order with its validity.
    pub points: Vec<(Digest, bool)>,
    /// The forensic descriptions.
    pub forensics: Vec<Event>,
    /// Generation it was taken at.
    pub generation: u64,
}

impl Mirror {
    /// A mirror of `ns` as it is now.
    pub fn new(ns: &Namespace, extra: Arc<ExtraCounters>) -> Self {
        let copy = Copy {
            cfg: *ns.config(),
            mode: ns.mode(),
            policy: ns.policy(),
            events: 0,
            forensics_events: 0,
            denied: 0,
            measurement: ns.measurement(),
            aggregate: ns.aggregate(),
            base: ns.base(),
            points: Vec::new(),
            pseudonyms: ns.pseudonyms().copied().collect(),
            trajectory: Vec::new(),
            forensics: Vec::new(),
            generation: 0,
            closed: false,
        };
        let m = Self {
            inner: Arc::new(Inner {
                copy: Mutex::new(copy),
                changed: Condvar::new(),
                waiting: AtomicUsize::new(0),
                extra,
            }),
        };
        m.publish(ns);
        m
    }

    fn lock(&self) -> MutexGuard<'_, Copy> {
        // A reader that panicked cannot leave the copy half-written in a way that matters more
        // than losing the control socket would: keep serving.
        self.inner
            .copy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bring the copy up to date with `ns` (called by the modeling handler after each event).
    pub fn publish(&self, ns: &Namespace) {
        let mut c = self.lock();
        c.mode = ns.mode();
        c.events = ns.events();
        c.forensics_events = ns.forensics_events();
        c.denied = ns.denied();
        c.measurement = ns.measurement();
        c.aggregate = ns.aggregate();
        c.base = ns.base();
        let pts = ns.points();
        for i in c.points.len()..pts.len() {
            if let Some(d) = pts.get(i) {
                c.points.push((d, pts.is_valid(i)));
            }
        }
        let from = c.trajectory.len();
        c.trajectory
            .extend(ns.trajectory().iter_from(from).cloned());
        let from = c.forensics.len();
        c.forensics.extend(ns.forensics().iter_from(from).cloned());
        c.generation += 1;
        drop(c);
        if self.inner.waiting.load(Ordering::Acquire) > 0 {
            self.inner.changed.notify_all();
        }
    }

    /// The run has ended: followers finish once they have sent everything.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.changed.notify_all();
    }

    /// Wait until the generation differs from `seen`, the run ends, or `timeout` passes.
    /// Returns the current generation and whether the run has ended.
    pub fn wait_change(&self, seen: u64, timeout: Duration) -> (u64, bool) {
        self.inner.waiting.fetch_add(1, Ordering::AcqRel);
        let c = self.lock();
        let (c, _) = self
            .inner
            .changed
            .wait_timeout_while(c, timeout, |c| c.generation == seen && !c.closed)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let r = (c.generation, c.closed);
        drop(c);
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        r
    }

    /// The current generation and whether the run has ended.
    pub fn generation(&self) -> (u64, bool) {
        let c = self.lock();
        (c.generation, c.closed)
    }

    /// The summary now.
    pub fn summary(&self) -> Result<Summary, NamespaceError> {
        let c = self.lock().clone_counters();
        let all = scratch(&c, true)?;
        let valid = scratch(&c, false)?;
        let mut json = json!({
            "events": c.events,
            "points": c.points.len(),
            "forensics_events": c.forensics_events,
            "forensics_points": c.points.iter().filter(|p| !p.1).count(),
            "state": all.state().to_hex(),
            "model_state": valid.state().to_hex(),
            "measurement": c.measurement.to_hex(),
            "aggregate": c.aggregate.to_hex(),
            "base": c.base.to_hex(),
            "digest": c.cfg.alg.name(),
            "mapping": c.cfg.mapping.name(),
            "mode": format!("{:?}", c.mode).to_lowercase(),
            "denied": c.denied,
            "on_forensic": c.policy.name(),
        });
        let x = &self.inner.extra;
        json["policy_kills"] = json!(x.policy_kills.load(Ordering::Relaxed));
        json["restarts"] = json!(x.restarts.load(Ordering::Relaxed));
        if x.exporting.load(Ordering::Relaxed) > 0 {
            json["exported"] = json!(x.exported.load(Ordering::Relaxed));
            json["lost_exports"] = json!(x.lost_exports.load(Ordering::Relaxed));
        }
        Ok(Summary {
            json,
            events: c.events,
            generation: c.generation,
            closed: c.closed,
        })
    }

    /// The whole attestable view now (the forensic descriptions included, which `summary`
    /// leaves out).
    pub fn snapshot(&self) -> Result<Snapshot, NamespaceError> {
        let (c, forensics) = {
            let c = self.lock();
            (c.clone_counters(), c.forensics.clone())
        };
        Ok(Snapshot {
            state: scratch(&c, true)?.state(),
            config: c.cfg,
            mode: c.mode,
            policy: c.policy,
            events: c.events,
            forensics_events: c.forensics_events,
            denied: c.denied,
            measurement: c.measurement,
            aggregate: c.aggregate,
            base: c.base,
            points: c.points,
            forensics,
            generation: c.generation,
        })
    }

    /// Points from position `from` on: (coefficient, valid).
    pub fn points(&self, from: usize) -> Vec<(Digest, bool)> {
        self.lock().points.get(from..).unwrap_or(&[]).to_vec()
    }

    /// Up to `max` trajectory descriptions from position `from` on.
    pub fn trajectory(&self, from: usize, max: usize) -> Vec<Event> {
        let c = self.lock();
        let end = c.trajectory.len().min(from.saturating_add(max));
        c.trajectory.get(from..end).unwrap_or(&[]).to_vec()
    }

    /// Up to `max` forensic descriptions from position `from` on.
    pub fn forensics(&self, from: usize, max: usize) -> Vec<Event> {
        let c = self.lock();
        let end = c.forensics.len().min(from.saturating_add(max));
        c.forensics.get(from..end).unwrap_or(&[]).to_vec()
    }

    /// The model so far: base, aggregate, the valid points (and, `with_forensics`, the forensic
    /// ones too, as `quixote-console -M -u` folds them in), pseudonyms, `seal`, `end`.
    pub fn model(&self, with_forensics: bool) -> Result<ModelFile, NamespaceError> {
        let c = self.lock().clone_counters();
        Ok(ModelFile::from_namespace(&scratch(&c, with_forensics)?))
    }

    /// The mode of the namespace.
    pub fn mode(&self) -> Mode {
        self.lock().mode
    }
}

impl Copy {
    /// Everything but the descriptions (which readers copy in bounded pieces).
    fn clone_counters(&self) -> Copy {
        Copy {
            cfg: self.cfg,
            mode: self.mode,
            policy: self.policy,
            events: self.events,
            forensics_events: self.forensics_events,
            denied: self.denied,
            measurement: self.measurement,
            aggregate: self.aggregate,
            base: self.base,
            points: self.points.clone(),
            pseudonyms: self.pseudonyms.clone(),
            trajectory: Vec::new(),
            forensics: Vec::new(),
            generation: self.generation,
            closed: self.closed,
        }
    }
}

/// A namespace holding the copy's valid points, and its forensic ones if `forensic` (all loaded
/// as valid: validity does not enter the state).
fn scratch(c: &Copy, forensic: bool) -> Result<Namespace, NamespaceError> {
    let mut ns = Namespace::new(Config {
        keep_descriptions: false,
        ..c.cfg
    })?;
    if !c.base.is_zero() {
        ns.set_base(c.base)?;
    }
    ns.set_aggregate(c.aggregate)?;
    for (d, valid) in &c.points {
        if *valid || forensic {
            ns.load_point(*d)?;
        }
    }
    for p in &c.pseudonyms {
        ns.add_pseudonym(*p)?;
    }
    Ok(ns)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tsem_core::event::{Cell, Coe, EventHeader, EventType};
    use tsem_core::hash::HashAlg;

    fn ev(cap: u32) -> Event {
        let z = HashAlg::Sha256.null_id();
        Event {
            header: EventHeader::new("t", EventType::Capable, z, z),
            coe: Coe::default(),
            cell: Cell::Capable { cap, opts: 0 },
        }
    }

    fn ns_summary(ns: &Namespace) -> (String, String, usize, u64) {
        (
            ns.state().to_hex(),
            ns.model_state().to_hex(),
            ns.points().len(),
            ns.events(),
        )
    }

    #[test]
    fn the_mirror_gives_the_namespace_s_own_state_and_model() {
        let mut ns = Namespace::new(Config::default()).unwrap();
        let m = Mirror::new(&ns, Arc::default());
        for cap in [1, 2, 2, 3] {
            ns.model(7, &ev(cap)).unwrap();
            m.publish(&ns);
        }
        ns.seal();
        ns.model(7, &ev(9)).unwrap();
        m.publish(&ns);
        let s = m.summary().unwrap().json;
        let (state, model_state, points, events) = ns_summary(&ns);
        assert_eq!(s["state"], state);
        assert_eq!(s["model_state"], model_state);
        assert_eq!(s["points"], points);
        assert_eq!(s["events"], events);
        assert_eq!(s["forensics_points"], 1);
        assert_eq!(s["mode"], "sealed");
        assert_eq!(m.trajectory(0, 100).len(), 3);
        assert_eq!(m.trajectory(1, 1), vec![ns.trajectory()[1].clone()]);
        assert_eq!(m.forensics(0, 100), ns.forensics().to_vec());
        assert_eq!(
            m.model(false).unwrap().to_text(),
            ModelFile::from_namespace(&ns).to_text()
        );
        // Folding the forensics in gives the model a learning run of the same events makes.
        let with = m.model(true).unwrap();
        let mut learned = Namespace::new(Config::default()).unwrap();
        for cap in [1, 2, 3, 9] {
            learned.model(1, &ev(cap)).unwrap();
        }
        assert_eq!(
            with.to_text(),
            ModelFile::from_namespace(&learned).to_text()
        );
    }

    #[test]
    fn a_snapshot_is_the_namespace_at_one_moment() {
        let mut ns = Namespace::new(Config::default()).unwrap();
        let m = Mirror::new(&ns, Arc::default());
        for cap in [1, 2, 2] {
            ns.model(7, &ev(cap)).unwrap();
            m.publish(&ns);
        }
        ns.seal();
        ns.model(7, &ev(9)).unwrap();
        m.publish(&ns);
        let s = m.snapshot().unwrap();
        assert_eq!(s.state, ns.state());
        assert_eq!(s.measurement, ns.measurement());
        assert_eq!((s.events, s.forensics_events, s.denied), (4, 1, 0));
        assert_eq!(s.mode, Mode::Sealed);
        assert_eq!(s.points.iter().filter(|p| !p.1).count(), 1);
        assert_eq!(s.forensics, ns.forensics().to_vec());
        // Later events are not in a snapshot already taken.
        ns.model(7, &ev(10)).unwrap();
        m.publish(&ns);
        assert_ne!(m.snapshot().unwrap().state, s.state);
    }

    #[test]
    fn a_follower_wakes_on_publication_and_on_close() {
        let mut ns = Namespace::new(Config::default()).unwrap();
        let m = Mirror::new(&ns, Arc::default());
        let g0 = m.summary().unwrap().generation;
        let m2 = m.clone();
        let t = std::thread::spawn(move || m2.wait_change(g0, Duration::from_secs(3600)));
        // The follower may or may not be waiting yet: either way it must see the change.
        ns.model(1, &ev(1)).unwrap();
        m.publish(&ns);
        let (g, closed) = t.join().unwrap();
        assert!(g > g0 && !closed);
        let m3 = m.clone();
        let t = std::thread::spawn(move || m3.wait_change(g, Duration::from_secs(3600)));
        m.close();
        assert!(t.join().unwrap().1);
    }
}

/// What publishing costs the modeling thread, measured once (docs/control.md):
/// `cargo test -p tsem-control --release --lib -- --ignored --nocapture publish_cost`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cost {
    use super::*;
    use std::time::Instant;
    use tsem_core::event::{Cell, Coe, EventHeader, EventType};
    use tsem_core::hash::HashAlg;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn publish_cost() {
        let z = HashAlg::Sha256.null_id();
        let evs: Vec<Event> = (0..200u32)
            .map(|cap| Event {
                header: EventHeader::new("t", EventType::Capable, z, z),
                coe: Coe::default(),
                cell: Cell::Capable { cap, opts: 0 },
            })
            .collect();
        let n = 200_000;
        // The best of three rounds of each, interleaved, so warm-up and noise do not decide.
        let (mut bare, mut with, mut exported) = (f64::MAX, f64::MAX, f64::MAX);
        let mut lost = 0;
        for _ in 0..3 {
            let mut ns = Namespace::new(Config::default()).unwrap();
            let t = Instant::now();
            for i in 0..n {
                std::hint::black_box(ns.model(1, &evs[i % evs.len()]).unwrap());
            }
            bare = bare.min(t.elapsed().as_nanos() as f64 / n as f64);
            let mut ns = Namespace::new(Config::default()).unwrap();
            let m = Mirror::new(&ns, Arc::default());
            let t = Instant::now();
            for i in 0..n {
                std::hint::black_box(ns.model(1, &evs[i % evs.len()]).unwrap());
                m.publish(&ns);
            }
            with = with.min(t.elapsed().as_nanos() as f64 / n as f64);
            let mut ns = Namespace::new(Config::default()).unwrap();
            let path = std::env::temp_dir().join(format!("tsem-cost-{}", std::process::id()));
            let dest = crate::export::Dest::File(path.clone());
            let mut x =
                crate::export::Exporter::start(&dest, 1 << 20, ns.aggregate(), Arc::default())
                    .unwrap();
            let t = Instant::now();
            for i in 0..n {
                let ev = &evs[i % evs.len()];
                std::hint::black_box(ns.model(1, ev).unwrap());
                x.event(ev, false);
            }
            exported = exported.min(t.elapsed().as_nanos() as f64 / n as f64);
            lost += x.finish().lost;
            let _ = std::fs::remove_file(path);
        }
        println!(
            "per event: model {bare:.0} ns, + mirror {:.0} ns, + export enqueue {:.0} ns \
             (lost {})",
            with - bare,
            exported - bare,
            lost
        );
    }
}
