//! TSEM JSON records: never panic; anything accepted survives emit → parse unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_core::hash::HashAlg;
use tsem_core::map::{Mapper, Mapping};
use tsem_format::{Record, RecordKind, event_to_json, parse_event, parse_record};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(Record::Event { kind, event }) = parse_record(text) {
        let kind = if kind == RecordKind::Log { RecordKind::Event } else { kind };
        let line = event_to_json(&event, kind);
        let back = parse_event(&line).expect("emitted line must parse");
        assert_eq!(back, event);
        for m in [Mapping::Model0, Mapping::V3, Mapping::QuixoteCompat] {
            let mut mapper = Mapper::new(HashAlg::Sha256, m);
            assert_eq!(mapper.coefficient(&back), mapper.coefficient(&event));
        }
    }
});
