//! Measurement and order-invariant state arithmetic (spec §4).
//!
//! These are free functions over digests so that anything holding a set of measurements (a modeling
//! namespace, an IMA list, an attestation verifier) computes the same values.

use alloc::vec::Vec;

use crate::hash::{Digest, HashAlg, Hasher};

/// `P(x) = HF(base || x)`: every value is projected through the base before it is extended (§4.2).
pub fn project(alg: HashAlg, base: &Digest, x: &Digest) -> Digest {
    if alg == HashAlg::Sha256 {
        return crate::sha256::digest2(base.as_bytes(), x.as_bytes());
    }
    let mut h = Hasher::new(alg);
    h.update(base.as_bytes());
    h.update(x.as_bytes());
    h.finalize()
}

/// `m' = HF(m || P(x))`: one step of the time-ordered measurement (§4.3).
pub fn extend_measurement(alg: HashAlg, base: &Digest, measurement: &Digest, x: &Digest) -> Digest {
    let p = project(alg, base, x);
    if alg == HashAlg::Sha256 {
        return crate::sha256::digest2(measurement.as_bytes(), p.as_bytes());
    }
    let mut h = Hasher::new(alg);
    h.update(measurement.as_bytes());
    h.update(p.as_bytes());
    h.finalize()
}

/// The measurement right after the aggregate is injected: `HF(0^ds || P(aggregate))`.
/// This is also the seed `S0` of the state.
pub fn aggregate_seed(alg: HashAlg, base: &Digest, aggregate: &Digest) -> Digest {
    extend_measurement(alg, base, &alg.null_id(), aggregate)
}

/// The order-invariant state over `points` (§4.4): seeded with the aggregate, then every unique point
/// extended in ascending memcmp order. Duplicates in `points` are ignored, so the result depends only
/// on the *set* of points. `points` is sorted in place.
pub fn state_of(alg: HashAlg, base: &Digest, aggregate: &Digest, points: &mut [Digest]) -> Digest {
    points.sort_unstable();
    let mut s = aggregate_seed(alg, base, aggregate);
    let mut prev: Option<&Digest> = None;
    for p in points.iter() {
        if prev == Some(p) {
            continue;
        }
        s = extend_measurement(alg, base, &s, p);
        prev = Some(p);
    }
    s
}

/// [`state_of`] over borrowed points (copies them first).
pub fn state_of_iter<'a>(
    alg: HashAlg,
    base: &Digest,
    aggregate: &Digest,
    points: impl IntoIterator<Item = &'a Digest>,
) -> Digest {
    let mut v: Vec<Digest> = points.into_iter().copied().collect();
    state_of(alg, base, aggregate, &mut v)
}

/// The TSEM hardware aggregate (§4.1): one hash over the concatenation of PCR 0..7.
pub fn hardware_aggregate(alg: HashAlg, pcrs0_7: &[Digest]) -> Digest {
    let mut h = Hasher::new(alg);
    for p in pcrs0_7 {
        h.update(p.as_bytes());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_ignores_order_and_duplicates() {
        let alg = HashAlg::Sha256;
        let z = alg.null_id();
        let a = alg.digest(b"a");
        let b = alg.digest(b"b");
        let s1 = state_of(alg, &z, &z, &mut [a, b]);
        let s2 = state_of(alg, &z, &z, &mut [b, a, b]);
        assert_eq!(s1, s2);
        let s3 = state_of(alg, &z, &z, &mut [a]);
        assert_ne!(s1, s3);
    }
}
