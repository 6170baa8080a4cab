//! Fuzz the TCG event log parser, replay and payload decoders: none may panic on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_core::hash::HashAlg;
use tsem_evidence::eventlog::{self, EventLog};
use tsem_evidence::payload;

fuzz_target!(|data: &[u8]| {
    let Ok(log) = EventLog::parse(data) else {
        return;
    };
    let r = eventlog::replay(&log);
    for alg in HashAlg::ALL {
        let _ = r.aggregate(alg);
        let _ = r.require_bank(alg);
    }
    for w in &r.warnings {
        let _ = w.to_string();
    }
    for ev in &log.events {
        let _ = eventlog::describe(ev);
        let _ = payload::decode(ev, log.spec_id.as_ref());
    }
});
