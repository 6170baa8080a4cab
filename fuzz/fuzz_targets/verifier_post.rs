//! What a client posts to the verifier (attestations with forensics, enrolments, credential
//! activation: the request, the AK public area and EK certificate in it, the answer): never
//! panic, and every error is one line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match tsem_verifier::protocol::parse_post(data) {
        Ok(p) => {
            let _ = p.attestation.claims.canonical();
            let _ = p.attestation.claims.nonce_bytes();
            let _ = p.attestation.claims.forensic_digests();
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
    if let Err(e) = tsem_verifier::protocol::parse_enrolment(data) {
        assert!(!e.to_string().contains('\n'));
    }
    if let Err(e) = tsem_verifier::protocol::parse_activation_answer(data) {
        assert!(!e.to_string().contains('\n'));
    }
    let (cert, ak, chain) = match tsem_verifier::protocol::parse_activation_request(data) {
        Ok(x) => (x.ek_cert, x.ak_public, x.ek_chain),
        Err(e) => {
            assert!(!e.to_string().contains('\n'));
            // The raw bytes as either structure, too.
            (data.to_vec(), data.to_vec(), vec![data.to_vec()])
        }
    };
    if let Err(e) = tsem_attest::credential::AkPublic::parse(&ak) {
        assert!(!e.to_string().contains('\n'));
    }
    let _ = tsem_attest::credential::check_ek_cert(&cert, &chain, &[cert.clone()], 1_800_000_000);
    let _ = tsem_attest::credential::parse_certs(data);
});
