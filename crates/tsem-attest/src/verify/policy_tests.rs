use tsem_core::namespace::{Config, Namespace};
use tsem_core::policy::Policy as Deviation;

use super::*;
use crate::{Context, Signer};

const NONCE: &[u8] = b"0123456789abcdef";

fn signed(ns: &Namespace, signer: &Signer) -> crate::Attestation {
    let cx = Context {
        nonce: NONCE.to_vec(),
        ..Context::default()
    };
    crate::attest(ns, &cx, signer).unwrap()
}

#[test]
fn the_deviation_policy_is_signed_and_can_be_required() {
    let (sk, pk) = tsem_format::model_file::generate_ed25519().unwrap();
    let signer = Signer::from_pem(&sk).unwrap();
    let key = PublicKey::from_pem(&pk).unwrap();
    let mut ns = Namespace::new(Config::default()).unwrap();
    ns.seal();
    let model =
        ExpectedModel::from_model(&ModelFile::from_namespace(&ns), HashAlg::Sha256).unwrap();
    let mut p = Policy::new(NONCE.to_vec());
    p.key = Some(key);

    ns.set_policy(Deviation::Deny);
    let att = signed(&ns, &signer);
    assert_eq!(att.claims.on_forensic.as_deref(), Some("deny"));
    verify(&att, &model, &p).unwrap();
    p.on_forensic = Some(Deviation::Deny);
    verify(&att, &model, &p).unwrap();
    p.on_forensic = Some(Deviation::Untrust);
    assert_eq!(
        verify(&att, &model, &p),
        Err(Rejection::DeviationPolicy {
            required: "untrust",
            got: "deny"
        })
    );

    // Claiming another policy than the one signed breaks the signature.
    let mut forged = att.clone();
    forged.claims.on_forensic = Some("untrust".into());
    p.on_forensic = None;
    assert_eq!(verify(&forged, &model, &p), Err(Rejection::BadSignature));

    // An attestation of before the field (signed without it) verifies and means `untrust`.
    ns.set_policy(Deviation::Untrust);
    let mut old = signed(&ns, &signer);
    old.claims.on_forensic = None;
    let old = crate::Attestation::sign(old.claims, &signer).unwrap();
    assert!(!old.to_json().contains("on_forensic"));
    p.on_forensic = Some(Deviation::Untrust);
    verify(&old, &model, &p).unwrap();
    p.on_forensic = Some(Deviation::Restart);
    assert!(matches!(
        verify(&old, &model, &p),
        Err(Rejection::DeviationPolicy { got: "untrust", .. })
    ));
}
