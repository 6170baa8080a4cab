//! TSEM JSON records, as bytes (kernel exports need not be UTF-8): never panic; anything accepted
//! survives emit → parse unchanged and re-emits byte for byte; strict JSON is a subset of the
//! kernel form; the strict writer refuses only strings that are not UTF-8.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_core::hash::HashAlg;
use tsem_core::map::{Mapper, Mapping};
use tsem_format::{
    Record, RecordKind, RecordParser, Strictness, event_to_json, parse_event, parse_record,
    write_event_json,
};

fuzz_target!(|data: &[u8]| {
    let kernel = parse_record(data);
    if let Ok(strict) = RecordParser::with_strictness(Strictness::Json).parse(data) {
        assert_eq!(kernel.as_ref().ok(), Some(&strict), "strict JSON must read the same");
    }
    if let Ok(Record::Event { kind, event }) = kernel {
        let kind = if kind == RecordKind::Log { RecordKind::Event } else { kind };
        let line = event_to_json(&event, kind);
        let back = parse_event(&line).expect("emitted line must parse");
        assert_eq!(back, event);
        assert_eq!(event_to_json(&back, kind), line, "re-emission must be byte for byte");
        for m in [Mapping::Model0, Mapping::V3, Mapping::QuixoteCompat] {
            let mut mapper = Mapper::new(HashAlg::Sha256, m);
            assert_eq!(mapper.coefficient(&back), mapper.coefficient(&event));
        }
        let mut json = Vec::new();
        match write_event_json(&mut json, &event, kind) {
            Ok(()) => {
                let strict = RecordParser::with_strictness(Strictness::Json)
                    .parse_event(&json)
                    .expect("strict output must parse strictly");
                assert_eq!(strict, event);
            }
            Err(_) => assert!(json.is_empty() && std::str::from_utf8(&line).is_err()),
        }
        // What people see is escaped: printable, and valid UTF-8 by construction.
        let shown = format!("{}", event.header.process);
        assert!(!shown.chars().any(char::is_control));
    }
});
