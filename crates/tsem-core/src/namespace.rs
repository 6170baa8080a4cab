//! A security modeling namespace (spec §4, §4.5): the set of points with occupancy counts, valid
//! and forensic points, the trajectory and forensics descriptions, the time-ordered measurement, the
//! order-invariant state, the base, the aggregate, pseudonyms, free / sealed / enforcing modes and
//! the sticky, inherited untrusted status of tasks.
//!
//! # Memory
//! A point is one record (the coefficient and a count word carrying the valid flag) in fixed-size
//! chunks, indexed by an open-addressing table of `u32` positions keyed by the coefficient's own
//! leading bytes ([`crate::points`]): about 51–62 bytes per sha256 point at a million points.
//! Descriptions are kept only if asked for.
//!
//! # Warning
//! The kernel injects the aggregate into the measurement a second time when a model is loaded into
//! an internal namespace (spec §9 item 10). We follow Quixote's userspace TMA instead: setting the
//! aggregate re-seeds the measurement, so measurements of loaded models match `quixote-us`.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::descriptions::Descriptions;
use crate::event::Event;
use crate::hash::{Digest, HashAlg};
use crate::map::{Mapper, Mapping};
use crate::policy::{Policy, RunAction, decide};
use crate::state::{aggregate_seed, extend_measurement};

pub use crate::points::PointSet;
use crate::points::prefetch;

/// How many events ahead [`Namespace::model_batch`] asks for the descriptions' memory, in three
/// steps two events (~0.7 µs of hashing, a miss to memory) apart: the event's own fields, then
/// the file they name (its place is known once the cell's tag is in), then the pathname bytes
/// the file's path points to.
const EVENT_LAG: usize = 6;

/// Ask for the cache lines of `ev`'s header, COE and cell tag (hints: they change no value and
/// cannot fault; they read nothing of `ev`).
#[inline]
fn prefetch_event(ev: &Event) {
    let h = &ev.header;
    prefetch(&h.event_type);
    for d in [&h.task_id, &h.p_task_id] {
        prefetch(d);
        if let Some(end) = d.storage_end() {
            prefetch(end);
        }
    }
    prefetch(&ev.coe);
    prefetch(&ev.cell);
}

/// Ask for the lines of `ev`'s file description (reads the cell's tag).
#[inline]
fn prefetch_file(ev: &Event) {
    if let Some(f) = ev.file() {
        prefetch(&f.inode);
        prefetch(&f.path);
        prefetch(&f.digest);
        if let Some(end) = f.digest.storage_end() {
            prefetch(end);
        }
    }
}

/// Ask for `ev`'s pathname bytes (reads the file's path).
#[inline]
fn prefetch_pathname(ev: &Event) {
    if let Some(b) = ev.file().and_then(|f| f.path.pathname.as_bytes().first()) {
        prefetch(b);
    }
}

/// Modeling mode (spec §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// New points are learned as valid.
    #[default]
    Free,
    /// New points are forensic; their tasks become untrusted; nothing is denied.
    Sealed,
    /// Sealed, and out-of-model events and every event of an untrusted task are denied.
    Enforcing,
}

/// What the namespace decided about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it proceed.
    Allow,
    /// Refuse it (EPERM).
    Deny,
}

/// The result of modeling one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The event's coefficient.
    pub coefficient: Digest,
    /// The point was not in the namespace before.
    pub new_point: bool,
    /// The point is a valid (in-model) point.
    pub valid: bool,
    /// The event was forensic: it hit an invalid point.
    pub forensic: bool,
    /// Allow or deny.
    pub verdict: Verdict,
    /// The deviation policy marked the task untrusted (see [`crate::policy`]).
    pub untrust: bool,
    /// What the deviation policy does with the run.
    pub run: RunAction,
}

/// Configuration of a namespace.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Hash function.
    pub alg: HashAlg,
    /// Coefficient layout.
    pub mapping: Mapping,
    /// Keep the description of each new point (trajectory and forensics).
    pub keep_descriptions: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            alg: HashAlg::Sha256,
            mapping: Mapping::Model0,
            keep_descriptions: true,
        }
    }
}

/// Errors from namespace configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceError {
    /// A digest of the wrong size for the namespace's hash function.
    DigestSize {
        /// What it was for.
        what: &'static str,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The operation is only allowed before the first event.
    AfterEvents(&'static str),
    /// The operation is not allowed once the namespace is sealed.
    Sealed(&'static str),
    /// quixote-compat is defined for SHA-256 only.
    CompatNeedsSha256,
    /// More points than the index can address (2^32 - 1).
    Full,
}

impl core::fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DigestSize {
                what,
                expected,
                got,
            } => {
                write!(
                    f,
                    "{what}: expected a {expected}-byte digest, got {got} bytes"
                )
            }
            Self::AfterEvents(what) => write!(f, "{what} must be set before the first event"),
            Self::Sealed(what) => write!(f, "cannot {what}: the namespace is sealed"),
            Self::CompatNeedsSha256 => {
                f.write_str("the quixote-compat mapping is defined for sha256 only")
            }
            Self::Full => f.write_str("point table full (2^32-1 points)"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NamespaceError {}

/// Coefficients [`Namespace::model_batch`] holds in flight (its ring): more than the lag between
/// computing a coefficient and modeling its event. Callers batch events in multiples of it.
pub const BATCH: usize = 16;

/// A task's identity inside the namespace, chosen by the caller (a tid, a tnum, a pid).
pub type TaskKey = u64;

/// A security modeling namespace.
#[derive(Debug, Clone)]
pub struct Namespace {
    cfg: Config,
    mapper: Mapper,
    mode: Mode,
    base: Digest,
    aggregate: Digest,
    measurement: Digest,
    points: PointSet,
    trajectory: Descriptions,
    forensics: Descriptions,
    pseudonyms: BTreeSet<Digest>,
    untrusted: BTreeSet<TaskKey>,
    policy: Policy,
    events: u64,
    forensics_events: u64,
    denied: u64,
}

impl Namespace {
    /// A fresh namespace in free-modeling mode with a zero base and aggregate.
    pub fn new(cfg: Config) -> Result<Self, NamespaceError> {
        if cfg.mapping == Mapping::QuixoteCompat && cfg.alg != HashAlg::Sha256 {
            return Err(NamespaceError::CompatNeedsSha256);
        }
        let alg = cfg.alg;
        let zero = alg.null_id();
        Ok(Self {
            mapper: Mapper::new(alg, cfg.mapping),
            cfg,
            mode: Mode::Free,
            base: zero,
            aggregate: zero,
            measurement: aggregate_seed(alg, &zero, &zero),
            points: PointSet::new(alg.size()),
            trajectory: Descriptions::new(),
            forensics: Descriptions::new(),
            pseudonyms: BTreeSet::new(),
            untrusted: BTreeSet::new(),
            policy: Policy::Untrust,
            events: 0,
            forensics_events: 0,
            denied: 0,
        })
    }

    fn check_size(&self, what: &'static str, d: &Digest) -> Result<(), NamespaceError> {
        let expected = self.cfg.alg.size();
        if d.len() != expected {
            return Err(NamespaceError::DigestSize {
                what,
                expected,
                got: d.len(),
            });
        }
        Ok(())
    }

    fn pristine(&self) -> bool {
        self.events == 0 && self.points.is_empty()
    }

    /// Set the base (freshness nonce, §4.2). Only before any point exists.
    pub fn set_base(&mut self, base: Digest) -> Result<(), NamespaceError> {
        self.check_size("base", &base)?;
        if !self.pristine() {
            return Err(NamespaceError::AfterEvents("the base"));
        }
        self.base = base;
        self.measurement = aggregate_seed(self.cfg.alg, &self.base, &self.aggregate);
        Ok(())
    }

    /// Set the hardware aggregate (§4.1); re-seeds the measurement. Only before any point exists.
    pub fn set_aggregate(&mut self, aggregate: Digest) -> Result<(), NamespaceError> {
        self.check_size("aggregate", &aggregate)?;
        if !self.pristine() {
            return Err(NamespaceError::AfterEvents("the aggregate"));
        }
        self.aggregate = aggregate;
        self.measurement = aggregate_seed(self.cfg.alg, &self.base, &self.aggregate);
        Ok(())
    }

    /// Load a valid point (a model's `state` line); extends the measurement if new.
    pub fn load_point(&mut self, c: Digest) -> Result<bool, NamespaceError> {
        self.check_size("state", &c)?;
        if self.mode != Mode::Free {
            return Err(NamespaceError::Sealed("load a point"));
        }
        let (_, new, _) = self
            .points
            .touch(&c, true)
            .map_err(|_| NamespaceError::Full)?;
        if new {
            self.measurement = extend_measurement(self.cfg.alg, &self.base, &self.measurement, &c);
        }
        Ok(new)
    }

    /// Register a pseudonym (§3.5): files with this pathname digest get the zero digest.
    pub fn add_pseudonym(&mut self, p: Digest) -> Result<(), NamespaceError> {
        self.check_size("pseudonym", &p)?;
        self.pseudonyms.insert(p);
        Ok(())
    }

    /// Seal: from now on new points are forensic.
    pub fn seal(&mut self) {
        if self.mode == Mode::Free {
            self.mode = Mode::Sealed;
        }
    }

    /// Seal and enforce.
    pub fn enforce(&mut self) {
        self.mode = Mode::Enforcing;
    }

    /// Choose what a forensic event costs (default [`Policy::Untrust`], TSEM's semantics).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The deviation policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Mark a task untrusted (e.g. killed while waiting for a verdict).
    pub fn mark_untrusted(&mut self, task: TaskKey) {
        self.untrusted.insert(task);
    }

    /// A child inherits its parent's untrusted status at fork (§4.5: it can never be cleared).
    pub fn on_fork(&mut self, parent: TaskKey, child: TaskKey) {
        if self.untrusted.contains(&parent) {
            self.untrusted.insert(child);
        }
    }

    /// Forget an exited task.
    pub fn on_exit(&mut self, task: TaskKey) {
        self.untrusted.remove(&task);
    }

    /// Whether a task is untrusted.
    pub fn is_untrusted(&self, task: TaskKey) -> bool {
        self.untrusted.contains(&task)
    }

    /// The event with registered pseudonyms applied (its file digest replaced by the zero digest),
    /// or `None` if no pseudonym applies.
    fn pseudonymized(&mut self, ev: &Event) -> Option<Event> {
        if self.pseudonyms.is_empty() {
            return None;
        }
        let p = self.mapper.pseudonym(&ev.file()?.path.pathname);
        if !self.pseudonyms.contains(&p) {
            return None;
        }
        let mut ev = ev.clone();
        if let Some(f) = ev.file_mut() {
            f.digest = self.cfg.alg.zero_digest();
        }
        Some(ev)
    }

    /// Model one event caused by `task` (spec §4.5). The description is copied only when it
    /// creates a new point and descriptions are kept.
    pub fn model(&mut self, task: TaskKey, ev: &Event) -> Result<Outcome, NamespaceError> {
        match self.pseudonymized(ev) {
            Some(p) => {
                let c = self.mapper.coefficient(&p);
                self.model_coefficient(task, c, &p)
            }
            None => {
                let c = self.mapper.coefficient(ev);
                self.model_coefficient(task, c, ev)
            }
        }
    }

    /// Model a batch of events, in order, as [`Namespace::model`] would one by one (same
    /// outcomes, points, descriptions and verdicts), appending one outcome per event to `out`.
    /// A software pipeline over the batch: event `i`'s coefficient is computed and its table
    /// slot prefetched; event `i - RECORD_LAG`'s slot, in the cache by now, names its record,
    /// which is prefetched; event `i - TOUCH_LAG` is modeled with both in the cache. The two
    /// dependent misses of a lookup thus overlap the hashing of the events after it. Computing a
    /// coefficient reads neither the table nor the mode, so computing it early changes nothing.
    /// On an error the outcomes of the events before it are in `out` and the rest of the batch
    /// is not modeled.
    pub fn model_batch(
        &mut self,
        batch: &[(TaskKey, &Event)],
        out: &mut Vec<Outcome>,
    ) -> Result<(), NamespaceError> {
        // Four hashed events (~1.2 µs with SHA-NI) between a slot's prefetch and its use cover a
        // memory miss on a loaded machine; the ring holds every coefficient not yet modeled.
        const RECORD_LAG: usize = 4;
        const TOUCH_LAG: usize = 2 * RECORD_LAG;
        const _: () = assert!(TOUCH_LAG < BATCH);
        let mut ring = [Digest::zero(0); BATCH];
        for i in 0..batch.len() + TOUCH_LAG {
            // The descriptions ahead, so that one read for the first time (a pre-parsed
            // stream, one long-lived event after another) does not stall the hashing.
            if let Some((_, ev)) = batch.get(i + EVENT_LAG) {
                prefetch_event(ev);
            }
            if let Some((_, ev)) = batch.get(i + EVENT_LAG * 2 / 3) {
                prefetch_file(ev);
            }
            if let Some((_, ev)) = batch.get(i + EVENT_LAG / 3) {
                prefetch_pathname(ev);
            }
            if let (Some((_, ev)), Some(slot)) = (batch.get(i), ring.get_mut(i % BATCH)) {
                *slot = match self.pseudonymized(ev) {
                    Some(p) => self.mapper.coefficient(&p),
                    None => self.mapper.coefficient(ev),
                };
                self.points.prefetch_slot(slot);
            }
            if let Some(c) = i
                .checked_sub(RECORD_LAG)
                .filter(|&j| j < batch.len())
                .and_then(|j| ring.get(j % BATCH))
            {
                self.points.prefetch_record(c);
            }
            let Some((&c, &(task, ev))) = i
                .checked_sub(TOUCH_LAG)
                .and_then(|j| Some((ring.get(j % BATCH)?, batch.get(j)?)))
            else {
                continue;
            };
            // The description kept is the event as given, pseudonyms applied, as in `model`;
            // without descriptions the pseudonym (a hash and a copy) is not computed twice.
            let pseudonym = if self.cfg.keep_descriptions {
                self.pseudonymized(ev)
            } else {
                None
            };
            let o = match pseudonym {
                Some(p) => self.model_coefficient(task, c, &p)?,
                None => self.model_coefficient(task, c, ev)?,
            };
            out.push(o);
        }
        Ok(())
    }

    /// Model an event whose coefficient is already known (from a trusted mapper).
    pub fn model_coefficient(
        &mut self,
        task: TaskKey,
        c: Digest,
        ev: &Event,
    ) -> Result<Outcome, NamespaceError> {
        self.events += 1;
        let free = self.mode == Mode::Free;
        let (_, new_point, valid) = self
            .points
            .touch(&c, free)
            .map_err(|_| NamespaceError::Full)?;
        if new_point {
            self.measurement = extend_measurement(self.cfg.alg, &self.base, &self.measurement, &c);
        }
        let forensic = !valid;
        let d = decide(
            self.policy,
            self.mode,
            forensic,
            self.untrusted.contains(&task),
        );
        if forensic {
            self.forensics_events += 1;
        }
        if d.untrust {
            self.untrusted.insert(task);
        }
        if new_point && self.cfg.keep_descriptions {
            if valid {
                self.trajectory.push(ev.clone())
            } else {
                self.forensics.push(ev.clone())
            }
        }
        if d.verdict == Verdict::Deny {
            self.denied += 1;
        }
        Ok(Outcome {
            coefficient: c,
            new_point,
            valid,
            forensic,
            verdict: d.verdict,
            untrust: d.untrust,
            run: d.run,
        })
    }

    /// The order-invariant state (§4.4) over every point, valid and forensic.
    pub fn state(&self) -> Digest {
        self.points
            .state_where(self.cfg.alg, &self.base, &self.aggregate, |_| true)
    }

    /// The state the valid points alone imply (what a model file promises).
    pub fn model_state(&self) -> Digest {
        self.points
            .state_where(self.cfg.alg, &self.base, &self.aggregate, |valid| valid)
    }

    /// The time-ordered measurement (§4.3).
    pub fn measurement(&self) -> Digest {
        self.measurement
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.cfg.alg
    }
    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// The base.
    pub fn base(&self) -> Digest {
        self.base
    }
    /// The aggregate.
    pub fn aggregate(&self) -> Digest {
        self.aggregate
    }
    /// The points.
    pub fn points(&self) -> &PointSet {
        &self.points
    }
    /// Registered pseudonyms.
    pub fn pseudonyms(&self) -> impl Iterator<Item = &Digest> {
        self.pseudonyms.iter()
    }
    /// Descriptions of the valid points, in first-seen order (if kept).
    pub fn trajectory(&self) -> &Descriptions {
        &self.trajectory
    }
    /// Descriptions of the forensic points, in first-seen order (if kept).
    pub fn forensics(&self) -> &Descriptions {
        &self.forensics
    }
    /// Events modeled.
    pub fn events(&self) -> u64 {
        self.events
    }
    /// Events that hit a forensic point.
    pub fn forensics_events(&self) -> u64 {
        self.forensics_events
    }
    /// Number of forensic points.
    pub fn forensics_points(&self) -> usize {
        self.points.iter().filter(|p| !p.2).count()
    }
    /// Events denied.
    pub fn denied(&self) -> u64 {
        self.denied
    }
    /// The mapper (to compute TASK_IDs and pseudonyms with the namespace's function).
    pub fn mapper(&mut self) -> &mut Mapper {
        &mut self.mapper
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Cell, Coe, EventHeader, EventType};

    fn ev(cap: u32) -> Event {
        let z = HashAlg::Sha256.null_id();
        Event {
            header: EventHeader::new("t", EventType::Capable, z, z),
            coe: Coe::default(),
            cell: Cell::Capable { cap, opts: 0 },
        }
    }

    #[test]
    fn learn_seal_enforce() {
        let mut ns = Namespace::new(Config::default()).unwrap();
        let a = ns.model(1, &ev(1)).unwrap();
        assert!(a.new_point && a.valid && a.verdict == Verdict::Allow);
        assert!(!ns.model(1, &ev(1)).unwrap().new_point);
        assert_eq!(ns.points().count(0), 2);
        let learned = ns.state();

        let mut sealed = Namespace::new(Config::default()).unwrap();
        sealed.load_point(a.coefficient).unwrap();
        sealed.seal();
        assert_eq!(sealed.model_state(), learned);
        let o = sealed.model(7, &ev(2)).unwrap();
        assert!(o.forensic && o.verdict == Verdict::Allow);
        assert!(sealed.is_untrusted(7));
        sealed.on_fork(7, 8);
        assert!(sealed.is_untrusted(8));

        let mut enf = Namespace::new(Config::default()).unwrap();
        enf.load_point(a.coefficient).unwrap();
        enf.enforce();
        assert_eq!(enf.model(3, &ev(1)).unwrap().verdict, Verdict::Allow);
        assert_eq!(enf.model(3, &ev(2)).unwrap().verdict, Verdict::Deny);
        // Untrusted is sticky: even in-model events are now denied.
        assert_eq!(enf.model(3, &ev(1)).unwrap().verdict, Verdict::Deny);
        assert_eq!(enf.denied(), 2);
        assert_eq!(enf.forensics().len(), 1);
    }

    #[test]
    fn base_and_aggregate_only_before_events() {
        let mut ns = Namespace::new(Config::default()).unwrap();
        ns.set_aggregate(HashAlg::Sha256.digest(b"x")).unwrap();
        assert!(ns.set_base(Digest::zero(31)).is_err());
        ns.model(1, &ev(1)).unwrap();
        assert!(ns.set_aggregate(HashAlg::Sha256.null_id()).is_err());
        assert!(
            Namespace::new(Config {
                alg: HashAlg::Sha384,
                mapping: Mapping::QuixoteCompat,
                keep_descriptions: false
            })
            .is_err()
        );
    }
}
