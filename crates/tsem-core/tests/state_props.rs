//! Properties of the namespace: the state depends only on the set of points; the measurement
//! follows first-seen order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use tsem_core::event::{Cell, Coe, Event, EventHeader, EventType};
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::{Mapper, Mapping};
use tsem_core::namespace::{Config, Namespace};
use tsem_core::state::{extend_measurement, state_of};

fn event(kind: u8, v: u32, uid: u32) -> Event {
    let z = HashAlg::Sha256.null_id();
    let (event_type, cell) = match kind % 3 {
        0 => (EventType::Capable, Cell::Capable { cap: v, opts: 0 }),
        1 => (
            EventType::TaskKill,
            Cell::TaskKill {
                target: z,
                sig: v,
                cross_ns: 0,
            },
        ),
        _ => (
            EventType::SocketCreate,
            Cell::SocketCreate {
                family: v,
                sock_type: 1,
                protocol: 0,
                kern: 0,
            },
        ),
    };
    Event {
        header: EventHeader::new("p", event_type, z, z),
        coe: Coe {
            uid,
            ..Coe::default()
        },
        cell,
    }
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (any::<u8>(), 0u32..20, 0u32..3).prop_map(|(k, v, u)| event(k, v, u)),
        1..60,
    )
}

fn alg() -> impl Strategy<Value = HashAlg> {
    prop_oneof![
        Just(HashAlg::Sha256),
        Just(HashAlg::Sha384),
        Just(HashAlg::Sha512),
        Just(HashAlg::Sm3)
    ]
}

fn model_all(alg: HashAlg, evs: &[Event]) -> Namespace {
    let mut ns = Namespace::new(Config {
        alg,
        mapping: Mapping::Model0,
        keep_descriptions: false,
    })
    .unwrap();
    ns.set_aggregate(alg.digest(b"platform")).unwrap();
    for e in evs {
        ns.model(1, e).unwrap();
    }
    ns
}

proptest! {
    #[test]
    fn state_is_invariant_under_permutation_and_duplication(
        alg in alg(),
        evs in events(),
        perm_seed in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut shuffled = evs.clone();
        for d in &dups {
            shuffled.push(evs[d.index(evs.len())].clone());
        }
        // Fisher-Yates with a seeded xorshift.
        let mut x = perm_seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = model_all(alg, &evs);
        let b = model_all(alg, &shuffled);
        prop_assert_eq!(a.state(), b.state());
        prop_assert_eq!(a.points().len(), b.points().len());
        // And it is the sorted-set state of the spec over those coefficients.
        let mut mapper = Mapper::new(alg, Mapping::Model0);
        let mut pts: Vec<Digest> = evs.iter().map(|e| mapper.coefficient(e)).collect();
        prop_assert_eq!(a.state(), state_of(alg, &alg.null_id(), &alg.digest(b"platform"), &mut pts));
    }

    #[test]
    fn measurement_follows_first_seen_order(alg in alg(), evs in events()) {
        let ns = model_all(alg, &evs);
        let mut mapper = Mapper::new(alg, Mapping::Model0);
        let base = alg.null_id();
        let mut m = extend_measurement(alg, &base, &alg.null_id(), &alg.digest(b"platform"));
        let mut seen = std::collections::HashSet::new();
        for e in &evs {
            let c = mapper.coefficient(e);
            if seen.insert(c) {
                m = extend_measurement(alg, &base, &m, &c);
            }
        }
        prop_assert_eq!(ns.measurement(), m);
        // Reversing the first-seen order changes the measurement whenever two points exist.
        let mut rev = evs.clone();
        rev.reverse();
        let distinct: std::collections::HashSet<Digest> = evs.iter().map(|e| mapper.coefficient(e)).collect();
        if distinct.len() >= 2 {
            let first = |v: &[Event], m: &mut Mapper| -> Vec<Digest> {
                let mut s = std::collections::HashSet::new();
                v.iter().map(|e| m.coefficient(e)).filter(|c| s.insert(*c)).collect()
            };
            if first(&evs, &mut mapper) != first(&rev, &mut mapper) {
                prop_assert_ne!(model_all(alg, &rev).measurement(), ns.measurement());
            }
        }
    }
}
