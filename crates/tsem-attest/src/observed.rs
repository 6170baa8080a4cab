//! What an attestation says about a namespace, taken apart from the namespace itself.
//!
//! A finished run is attested from its [`Namespace`]; a run still going on is attested from a
//! copy its modeling thread publishes (`tsem run --every`: the namespace belongs to the sensor's
//! notification threads and must not be held while a nonce is fetched and a signature made).
//! Both produce an [`Observed`], and [`crate::Claims`] are made from that alone, so the two paths
//! cannot disagree on what a field means.

use tsem_core::hash::Digest;
use tsem_core::namespace::{Config, Mode, Namespace};
use tsem_core::policy::Policy;

/// The attested facts of a namespace at one moment.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Hash function and coefficient layout.
    pub config: Config,
    /// Free, sealed or enforcing.
    pub mode: Mode,
    /// The deviation policy.
    pub policy: Policy,
    /// The state over every point (forensic ones included).
    pub state: Digest,
    /// The measurement (the extend chain of the points in first-seen order).
    pub measurement: Digest,
    /// The hardware aggregate.
    pub aggregate: Digest,
    /// The namespace's base.
    pub base: Digest,
    /// Events modeled.
    pub events: u64,
    /// Points, valid and forensic.
    pub points: u64,
    /// Events that were out of the model.
    pub forensics_events: u64,
    /// The forensic points' coefficients (any order).
    pub forensic_points: Vec<Digest>,
    /// Events the namespace denied.
    pub denied: u64,
}

impl Observed {
    /// What `ns` says now.
    pub fn of(ns: &Namespace) -> Self {
        Self {
            config: *ns.config(),
            mode: ns.mode(),
            policy: ns.policy(),
            state: ns.state(),
            measurement: ns.measurement(),
            aggregate: ns.aggregate(),
            base: ns.base(),
            events: ns.events(),
            points: ns.points().len() as u64,
            forensics_events: ns.forensics_events(),
            forensic_points: ns
                .points()
                .iter()
                .filter(|p| !p.2)
                .map(|(d, _, _)| d)
                .collect(),
            denied: ns.denied(),
        }
    }
}
