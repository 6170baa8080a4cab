//! What a client posts to the verifier (attestations with forensics, enrolments): never panic,
//! and every error is one line.
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
});
