//! The hand-over hook's state reader (`tsem_runtime::hookstate`, compiled into a program without
//! libc): never panics; what it accepts is JSON that serde_json reads to the same `id`, `status`
//! and `pid` (where serde_json can read it: UTF-8, numbers within f64); its one-line error always
//! fits the hook's buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tsem_runtime::hookstate::parse;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(s) => {
            assert!(s.pid > 0);
            // serde_json reads only UTF-8; the scanner passes other bytes through strings.
            if std::str::from_utf8(data).is_ok() {
                let v: serde_json::Value = match serde_json::from_slice(data) {
                    Ok(v) => v,
                    // JSON's grammar allows any exponent; serde_json's f64 refuses 1e400.
                    Err(e) if e.to_string().starts_with("number out of range") => return,
                    Err(e) => panic!("accepted, but serde_json says {e}"),
                };
                assert_eq!(v["id"].as_str().map(str::as_bytes), Some(s.id));
                assert_eq!(v["status"].as_str().map(str::as_bytes), Some(s.status));
                assert_eq!(v["pid"].as_i64(), Some(i64::from(s.pid)));
            }
        }
        Err(e) => {
            let mut line = [0u8; 256];
            let n = e.describe(&mut line);
            assert!(n > 0 && n <= line.len());
        }
    }
});
