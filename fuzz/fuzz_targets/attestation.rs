//! Attestation files and TPM quote structures from an untrusted attester: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a TPMS_ATTEST, and as the attestation JSON.
    let _ = tsem_attest::quote::parse_attest(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(a) = tsem_attest::Attestation::from_json(text)
    {
        let _ = a.claims.canonical();
        let _ = a.to_json();
    }
});
