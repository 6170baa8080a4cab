//! The namespace's own point table and chunked descriptions behave like the plainest possible
//! implementation (a vector of points searched linearly, vectors of descriptions): same points in
//! the same order, same counts and validity, same state, measurement, forensics and verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use tsem_core::event::{Cell, Coe, Event, EventHeader, EventType};
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::Mapping;
use tsem_core::namespace::{Config, Namespace, Verdict};
use tsem_core::state::{aggregate_seed, extend_measurement, state_of};

/// What the namespace should do, computed the slow, obvious way.
#[derive(Default)]
struct Reference {
    points: Vec<(Digest, u64, bool)>,
    trajectory: Vec<Event>,
    forensics: Vec<Event>,
    untrusted: std::collections::HashSet<u64>,
}

impl Reference {
    fn model(
        &mut self,
        free: bool,
        enforcing: bool,
        task: u64,
        c: Digest,
        ev: &Event,
    ) -> (bool, bool, Verdict) {
        let (new, valid) = match self.points.iter_mut().find(|p| p.0 == c) {
            Some(p) => {
                p.1 += 1;
                (false, p.2)
            }
            None => {
                self.points.push((c, 1, free));
                if free {
                    self.trajectory.push(ev.clone());
                } else {
                    self.forensics.push(ev.clone());
                }
                (true, free)
            }
        };
        if !valid {
            self.untrusted.insert(task);
        }
        let deny = enforcing && (!valid || self.untrusted.contains(&task));
        (
            new,
            valid,
            if deny { Verdict::Deny } else { Verdict::Allow },
        )
    }
}

fn event(n: u32) -> Event {
    let z = HashAlg::Sha256.null_id();
    Event {
        header: EventHeader::new("p", EventType::Capable, z, z),
        coe: Coe::default(),
        cell: Cell::Capable { cap: n, opts: 0 },
    }
}

/// A coefficient from a small seed space, so that repeats are common; every fourth shares its
/// leading eight bytes (the table's hash and tag) with others and differs only at the end.
fn coefficient(alg: HashAlg, seed: u16) -> Digest {
    let mut b = alg.digest(&seed.to_le_bytes()).as_bytes().to_vec();
    if seed.is_multiple_of(4) {
        b[..8].copy_from_slice(&[0x5a; 8]);
    }
    Digest::from_slice(&b).unwrap()
}

fn kill(target: u32, sig: u32) -> Event {
    let z = HashAlg::Sha256.null_id();
    Event {
        header: EventHeader::new("k", EventType::TaskKill, z, z),
        coe: Coe::default(),
        cell: Cell::TaskKill {
            target: HashAlg::Sha256.digest(&target.to_le_bytes()),
            sig,
            cross_ns: 0,
        },
    }
}

fn alg() -> impl Strategy<Value = HashAlg> {
    prop_oneof![
        Just(HashAlg::Sha256),
        Just(HashAlg::Sha1),
        Just(HashAlg::Sha384),
        Just(HashAlg::Sha512)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn namespace_matches_the_reference(
        alg in alg(),
        learned in prop::collection::vec(0u16..3000, 0..400),
        later in prop::collection::vec((0u16..3000, 0u64..5), 0..1500),
        enforce in any::<bool>(),
    ) {
        let mut ns = Namespace::new(Config { alg, mapping: Mapping::Model0, keep_descriptions: true }).unwrap();
        let mut r = Reference::default();
        for (k, &s) in learned.iter().enumerate() {
            let c = coefficient(alg, s);
            let ev = event(k as u32);
            let o = ns.model_coefficient(0, c, &ev).unwrap();
            let (new, valid, verdict) = r.model(true, false, 0, c, &ev);
            prop_assert_eq!((o.new_point, o.valid, o.verdict), (new, valid, verdict));
        }
        if enforce { ns.enforce() } else { ns.seal() }
        for (k, &(s, task)) in later.iter().enumerate() {
            let c = coefficient(alg, s);
            let ev = event(100_000 + k as u32);
            let o = ns.model_coefficient(task, c, &ev).unwrap();
            let (new, valid, verdict) = r.model(false, enforce, task, c, &ev);
            prop_assert_eq!((o.new_point, o.valid, o.forensic, o.verdict), (new, valid, !valid, verdict));
        }
        let got: Vec<(Digest, u64, bool)> = ns.points().iter().collect();
        prop_assert_eq!(&got, &r.points);
        for (i, p) in r.points.iter().enumerate() {
            prop_assert_eq!(ns.points().find(&p.0), Some(i));
            prop_assert_eq!(ns.points().get(i), Some(p.0));
        }
        prop_assert_eq!(ns.points().find(&coefficient(alg, 4000)), None);
        prop_assert_eq!(ns.trajectory().to_vec(), r.trajectory);
        prop_assert_eq!(ns.forensics().to_vec(), r.forensics);

        let zero = alg.null_id();
        let mut all: Vec<Digest> = r.points.iter().map(|p| p.0).collect();
        prop_assert_eq!(ns.state(), state_of(alg, &zero, &zero, &mut all));
        let mut valid: Vec<Digest> = r.points.iter().filter(|p| p.2).map(|p| p.0).collect();
        prop_assert_eq!(ns.model_state(), state_of(alg, &zero, &zero, &mut valid));
        let m = r.points.iter().fold(aggregate_seed(alg, &zero, &zero), |m, p| extend_measurement(alg, &zero, &m, &p.0));
        prop_assert_eq!(ns.measurement(), m);
    }

    #[test]
    fn batches_model_like_single_events(
        learned in prop::collection::vec((0u32..40, 0u32..3), 0..120),
        later in prop::collection::vec((0u32..60, 0u32..3, 0u64..4), 0..300),
        split in 1usize..40,
        enforce in any::<bool>(),
    ) {
        let cfg = Config { keep_descriptions: true, ..Config::default() };
        let (mut one, mut many) = (Namespace::new(cfg).unwrap(), Namespace::new(cfg).unwrap());
        let learned: Vec<Event> = learned.iter().map(|&(t, s)| kill(t, s)).collect();
        let later: Vec<(u64, Event)> = later.iter().map(|&(t, s, task)| (task, kill(t, s))).collect();
        let mut singles = Vec::new();
        for ev in &learned {
            singles.push(one.model(0, ev).unwrap());
        }
        if enforce { one.enforce() } else { one.seal() }
        for (task, ev) in &later {
            singles.push(one.model(*task, ev).unwrap());
        }
        let mut batched = Vec::new();
        let first: Vec<(u64, &Event)> = learned.iter().map(|e| (0, e)).collect();
        for part in first.chunks(split) {
            many.model_batch(part, &mut batched).unwrap();
        }
        if enforce { many.enforce() } else { many.seal() }
        let rest: Vec<(u64, &Event)> = later.iter().map(|(t, e)| (*t, e)).collect();
        for part in rest.chunks(split) {
            many.model_batch(part, &mut batched).unwrap();
        }
        prop_assert_eq!(singles, batched);
        prop_assert_eq!(one.points().iter().collect::<Vec<_>>(), many.points().iter().collect::<Vec<_>>());
        prop_assert_eq!(one.trajectory(), many.trajectory());
        prop_assert_eq!(one.trajectory(), many.trajectory());
        prop_assert_eq!((one.state(), one.measurement(), one.denied()), (many.state(), many.measurement(), many.denied()));
    }

    #[test]
    fn batches_with_pseudonyms_model_like_single_events(
        opens in prop::collection::vec((0u8..12, 0u8..4, 0u64..3), 0..200),
        pseudonyms in prop::collection::vec(0u8..12, 0..4),
        split in 1usize..40,
        keep in any::<bool>(),
    ) {
        // Pseudonymized files in batches: the same outcomes, points and descriptions whether or
        // not descriptions are kept (without them, a batch skips the second pseudonym lookup).
        let cfg = Config { keep_descriptions: keep, ..Config::default() };
        let (mut one, mut many) = (Namespace::new(cfg).unwrap(), Namespace::new(cfg).unwrap());
        for &p in &pseudonyms {
            let d = one.mapper().pseudonym(path_of(p));
            one.add_pseudonym(d).unwrap();
            many.add_pseudonym(d).unwrap();
        }
        let evs: Vec<(u64, Event)> = opens.iter().map(|&(p, c, task)| (task, open(p, c))).collect();
        let singles: Vec<_> = evs.iter().map(|(t, e)| one.model(*t, e).unwrap()).collect();
        let mut batched = Vec::new();
        let all: Vec<(u64, &Event)> = evs.iter().map(|(t, e)| (*t, e)).collect();
        for part in all.chunks(split) {
            many.model_batch(part, &mut batched).unwrap();
        }
        prop_assert_eq!(singles, batched);
        prop_assert_eq!(one.points().iter().collect::<Vec<_>>(), many.points().iter().collect::<Vec<_>>());
        prop_assert_eq!(one.trajectory(), many.trajectory());
        prop_assert_eq!(one.state(), many.state());
    }
}

fn path_of(p: u8) -> tsem_core::raw::RawStr {
    // Short and long names: inline and boxed byte strings alike.
    if p.is_multiple_of(2) {
        format!("/etc/f{p}").into()
    } else {
        format!("/usr/share/a/rather/long/directory/name/file-{p}.txt").into()
    }
}

fn open(p: u8, contents: u8) -> Event {
    use tsem_core::event::{FileDesc, Inode, PathRef};
    let alg = HashAlg::Sha256;
    let t = alg.digest(b"task");
    Event {
        header: EventHeader::new("cat", EventType::FileOpen, t, t),
        coe: Coe::default(),
        cell: Cell::File(FileDesc {
            flags: 32768,
            inode: Inode {
                uid: 0,
                gid: 0,
                mode: 0o100644,
                s_magic: 0xef53,
                s_id: "sda3".into(),
                s_uuid: [0x5a; 16],
            },
            path: PathRef {
                dev: Some((8, 3)),
                created: None,
                path_type: Some("root".into()),
                pathname: path_of(p),
            },
            digest: alg.digest(&[contents]),
        }),
    }
}

/// `model_batch` prefetches a coefficient's slot and record events before it models it; when the
/// table grows in between (thousands of new points inside one batch), the prefetched addresses
/// are stale. The outcomes, points and state must still be the one-at-a-time ones, in a batch
/// larger than the pipeline, for each batch length around the pipeline's lags.
#[test]
fn prefetching_across_table_growth_models_like_single_events() {
    let evs: Vec<(u64, Event)> = (0..6000u32)
        .map(|i| ((i % 5) as u64, kill(i % 2500, i % 2)))
        .collect();
    let all: Vec<(u64, &Event)> = evs.iter().map(|(t, e)| (*t, e)).collect();
    let cfg = Config {
        keep_descriptions: true,
        ..Config::default()
    };
    let mut one = Namespace::new(cfg).unwrap();
    let singles: Vec<_> = all.iter().map(|&(t, e)| one.model(t, e).unwrap()).collect();
    for split in [1, 3, 4, 5, 8, 9, 16, 17, 64, 6000] {
        let mut many = Namespace::new(cfg).unwrap();
        let mut batched = Vec::new();
        for part in all.chunks(split) {
            many.model_batch(part, &mut batched).unwrap();
        }
        assert_eq!(singles, batched, "batches of {split}");
        assert!(one.points().iter().eq(many.points().iter()));
        assert_eq!(one.trajectory(), many.trajectory());
        assert_eq!((one.state(), one.points().len()), (many.state(), 2500));
    }
}
