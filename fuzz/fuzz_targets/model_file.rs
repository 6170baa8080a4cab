//! Model files: never panic; anything accepted renders back to an equal model.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_format::ModelFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ModelFile::parse_bytes(data) {
        let again = ModelFile::parse(&m.to_text()).expect("rendered model must parse");
        assert_eq!(again, m);
        let _ = m.verify(None);
    }
});
