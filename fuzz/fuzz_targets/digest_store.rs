//! Digest store files (version 2 records or version 1 text): never panics; what is read writes
//! back to the same digests, and every digest of a written store is found by a lookup.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tsem_core::HashAlg;
use tsem_sensor::digest_cache::{store_bytes, store_entries, store_lookup};

fuzz_target!(|data: &[u8]| {
    for alg in [HashAlg::Sha256, HashAlg::Sha512, HashAlg::Sm3] {
        let entries = store_entries(data.to_vec(), alg);
        // A key read twice keeps its last digest, as a write of them does.
        let read: HashMap<_, _> = entries.iter().copied().collect();
        let written = store_bytes(entries, alg);
        let again: HashMap<_, _> = store_entries(written.clone(), alg).into_iter().collect();
        assert_eq!(again, read);
        for (k, d) in &read {
            assert_eq!(store_lookup(written.clone(), alg, k), Some(*d));
        }
    }
});
