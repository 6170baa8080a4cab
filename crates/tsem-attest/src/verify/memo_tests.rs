use tsem_core::namespace::{Config, Namespace};

use super::*;
use crate::{Context, Signer};

const NONCE: [u8; 16] = [0x24; 16];

fn namespace(aggregate: Digest, points: u8) -> Namespace {
    let mut ns = Namespace::new(Config::default()).unwrap();
    ns.set_aggregate(aggregate).unwrap();
    for i in 0..points {
        ns.load_point(HashAlg::Sha256.digest(&[i])).unwrap();
    }
    ns.enforce();
    ns
}

fn model_of(ns: &Namespace, alg: HashAlg) -> ExpectedModel {
    ExpectedModel::from_model(&ModelFile::from_namespace(ns), alg).unwrap()
}

fn forensic(n: u8) -> Vec<Digest> {
    let mut v: Vec<Digest> = (0..n).map(|i| HashAlg::Sha256.digest(&[b'f', i])).collect();
    v.sort_unstable();
    v
}

#[test]
fn memo_returns_the_computed_state_and_recomputes_for_any_changed_input() {
    let ns = namespace(Digest::zero(32), 20);
    let model = model_of(&ns, HashAlg::Sha256);
    let memo = StateMemo::new(64);
    let agg = Digest::zero(32);
    let other_agg = HashAlg::Sha256.digest(b"another platform");

    let first = memo.state(&model, &agg, &[]);
    assert_eq!(first, model.state_with(&agg, &[]));
    assert_eq!((memo.hits(), memo.misses()), (0, 1));
    assert_eq!(memo.state(&model, &agg, &[]), first);
    assert_eq!((memo.hits(), memo.misses()), (1, 1));

    // Each input the state depends on, changed alone: a miss, and the uncached value.
    let mut misses = 1;
    let mut check = |m: &ExpectedModel, a: &Digest, f: &[Digest]| {
        let got = memo.state(m, a, f);
        misses += 1;
        assert_eq!(memo.misses(), misses);
        assert_eq!(got, m.state_with(a, f));
        assert_ne!(got, first);
    };
    check(&model, &other_agg, &[]);
    check(&model, &agg, &forensic(1));
    check(&model, &agg, &forensic(2));
    // Same number of forensic points, other coefficients.
    let mut g = forensic(2);
    g[1] = HashAlg::Sha256.digest(b"another coefficient");
    g.sort_unstable();
    check(&model, &agg, &g);
    // Another model: one more point (another digest).
    let bigger = model_of(&namespace(Digest::zero(32), 21), HashAlg::Sha256);
    assert_ne!(bigger.digest(), model.digest());
    check(&bigger, &agg, &[]);
    // The same model file under another hash function (same model digest).
    let sm3 = model_of(&ns, HashAlg::Sm3);
    assert_eq!(sm3.digest(), model.digest());
    check(&sm3, &agg, &[]);
    assert_eq!(memo.hits(), 1);
}

#[test]
fn many_forensic_points_are_computed_and_not_stored() {
    let ns = namespace(Digest::zero(32), 5);
    let model = model_of(&ns, HashAlg::Sha256);
    let memo = StateMemo::new(8);
    let agg = Digest::zero(32);
    let many = forensic(memo::MAX_MEMO_FORENSIC as u8 + 1);
    for _ in 0..2 {
        assert_eq!(
            memo.state(&model, &agg, &many),
            model.state_with(&agg, &many)
        );
    }
    assert_eq!((memo.hits(), memo.misses(), memo.len()), (0, 2, 0));
    let most = forensic(memo::MAX_MEMO_FORENSIC as u8);
    memo.state(&model, &agg, &most);
    assert_eq!(
        memo.state(&model, &agg, &most),
        model.state_with(&agg, &most)
    );
    assert_eq!((memo.hits(), memo.len()), (1, 1));
}

#[test]
fn memo_is_bounded_and_stays_correct_when_cleared() {
    let ns = namespace(Digest::zero(32), 5);
    let model = model_of(&ns, HashAlg::Sha256);
    let memo = StateMemo::new(4);
    for i in 0u8..10 {
        let a = HashAlg::Sha256.digest(&[i]);
        assert_eq!(memo.state(&model, &a, &[]), model.state_with(&a, &[]));
        assert!(memo.len() <= 4);
    }
    let a = HashAlg::Sha256.digest(&[9]);
    assert_eq!(memo.state(&model, &a, &[]), model.state_with(&a, &[]));
    assert_eq!(memo.hits(), 1);
}

/// The memo holds expectations, never claims: a signed attestation whose state differs from the
/// memo'd expectation is refused, before and after a genuine one filled the memo, and a refused
/// claim never becomes what a later genuine attestation is compared with.
#[test]
fn a_claimed_state_other_than_the_memoised_expectation_is_refused() {
    let (sk, pk) = tsem_format::model_file::generate_ed25519().unwrap();
    let signer = Signer::from_pem(&sk).unwrap();
    let ns = namespace(Digest::zero(32), 20);
    let model = model_of(&ns, HashAlg::Sha256);
    let cx = Context {
        nonce: NONCE.to_vec(),
        ..Context::default()
    };
    let genuine = crate::attest(&ns, &cx, &signer).unwrap();
    let mut c = genuine.claims.clone();
    c.state = HashAlg::Sha256.digest(b"not the model's state").to_hex();
    let lie = Attestation::sign(c, &signer).unwrap();
    let mut p = Policy::new(NONCE.to_vec());
    p.key = Some(PublicKey::from_pem(&pk).unwrap());
    let memo = StateMemo::new(16);

    assert!(matches!(
        verify_memo(&lie, &model, &p, &memo),
        Err(Rejection::State { .. })
    ));
    assert_eq!(memo.misses(), 1);
    verify_memo(&genuine, &model, &p, &memo).unwrap();
    assert_eq!(memo.hits(), 1);
    let refused = verify_memo(&lie, &model, &p, &memo);
    assert_eq!(refused, verify(&lie, &model, &p));
    assert!(matches!(refused, Err(Rejection::State { .. })));
    assert_eq!(memo.hits(), 2);

    // The genuine attestation against another model with the same aggregate: the memo'd state
    // of the first model is not used.
    let other = model_of(&namespace(Digest::zero(32), 21), HashAlg::Sha256);
    assert!(matches!(
        verify_memo(&genuine, &other, &p, &memo),
        Err(Rejection::State { .. })
    ));
    assert_eq!(memo.misses(), 2);
}
