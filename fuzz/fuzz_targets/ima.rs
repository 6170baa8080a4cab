//! Fuzz the IMA list parsers (binary and ASCII), replay, state and the snapshot format: none may
//! panic on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_core::hash::HashAlg;
use tsem_evidence::ima::{self, ImaList, ParseOptions};
use tsem_evidence::snapshot::Snapshot;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions::default();
    if let Ok(list) = ImaList::parse(data, opts) {
        for e in &list.entries {
            let _ = e.fields();
            let _ = e.file_name();
            let _ = e.file_digest().map(|d| d.alg());
        }
        let whole = ima::replay(data, opts, &HashAlg::ALL, None, None);
        // The streaming replay must agree with the in-memory one, whatever the window.
        let window = usize::from(data.first().copied().unwrap_or(1)).max(1);
        let streamed = ima::replay_read_window(
            data,
            list.format,
            list.template_alg,
            &HashAlg::ALL,
            true,
            window,
        );
        assert_eq!(streamed, whole, "streamed replay differs (window {window})");
        let _ = ima::state(data, opts, None, None);
        if let Ok(cut) = Snapshot::take(data, opts, list.entries.len() / 2, None) {
            let text = cut.snapshot.to_text();
            let back = Snapshot::parse(text.as_bytes());
            assert_eq!(
                back.as_ref().ok(),
                Some(&cut.snapshot),
                "snapshot text round trip"
            );
            let rem = data.get(cut.remainder_offset..).unwrap_or(&[]);
            let _ = cut.snapshot.replay_remainder(rem, opts, &[HashAlg::Sha256]);
        }
    }
    if let Ok(s) = Snapshot::parse(data) {
        let _ = s.to_text();
    }
});
