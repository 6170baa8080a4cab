//! Digest store text: never panics; what is accepted renders back to the same entries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_core::HashAlg;
use tsem_sensor::digest_cache::{parse_entries, render_entries};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for alg in [HashAlg::Sha256, HashAlg::Sha512, HashAlg::Sm3] {
        let entries = parse_entries(text, alg);
        let again = parse_entries(&render_entries(&entries, alg), alg);
        assert_eq!(again, entries);
    }
});
