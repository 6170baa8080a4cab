//! `tsem bench run` and `tsem bench service` end to end, at their smallest sizes: every variant
//! runs the real workload (the sample C build, under tsem and under the reference supervisor; a
//! real HTTP server answering real requests), the
//! machine is named beside the figures, and a variant that fails shows as a failure, not as a
//! fast time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{have, json, run};

/// Every timed variant of the C build has a positive time and its ratio to bare in the same
/// run, the two floors included, and the machine it ran on is named before and after.
#[test]
fn bench_run_times_every_variant_of_the_build_and_names_the_machine() {
    if !(have("make") && have("cc")) {
        eprintln!("skipped: the sample C build needs make and cc");
        return;
    }
    let r = json(&run(&["bench", "run", "--runs", "2", "--json"]));
    for m in ["machine", "machine_after"] {
        assert!(!r[m]["cpu"].as_str().unwrap().is_empty(), "{r}");
        assert!(r[m]["cores"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r[m]["load_1_5_15"].as_array().unwrap().len(), 3, "{r}");
    }
    assert_eq!(r["runs"], 2);
    let bare = r["bare_ms"].as_f64().unwrap();
    assert!(bare > 0.0, "{r}");
    for v in [
        "learn",
        "enforce",
        "enforce_no_backstop",
        "enforce_no_digest_cache",
        "mechanism_floor",
        "emulation_floor",
    ] {
        let ms = r[format!("{v}_ms")].as_f64().unwrap();
        let ratio = r[format!("{v}_ratio")].as_f64().unwrap();
        assert!(ms > 0.0, "{v}: {r}");
        // The ratio is the variant's time over bare's in the same run (rounded to 0.01).
        assert!((ratio - ms / bare).abs() < 0.02, "{v}: {r}");
    }
    // The reference supervisor (samples/refsup) ran the same build, its opens emulated.
    assert!(
        r["reference"]["opens_emulated"].as_u64().unwrap() > 100,
        "{r}"
    );
    for v in ["reference_continue", "reference_emulate"] {
        assert!(r[format!("{v}_ms")].as_f64().unwrap() > 0.0, "{v}: {r}");
    }
    assert!(
        r["enforce_over_reference_emulation"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    let over = r["enforce_over_mechanism_floor"].as_f64().unwrap();
    let want = r["enforce_ms"].as_f64().unwrap() / r["mechanism_floor_ms"].as_f64().unwrap();
    assert!((over - want).abs() < 0.02, "{r}");
}

/// Under every variant the server answered every request with the whole file (the client
/// checks status and body), the figures are positive and the machine is named.
#[test]
fn bench_service_serves_every_request_under_every_variant() {
    if !(have("nginx") || have("python3")) {
        eprintln!("skipped: neither nginx nor python3 is installed");
        return;
    }
    let r = json(&run(&[
        "bench",
        "service",
        "--requests",
        "300",
        "--clients",
        "2",
        "--per-connection",
        "10",
        "--runs",
        "1",
        "--json",
    ]));
    for m in ["machine", "machine_after"] {
        assert!(!r[m]["cpu"].as_str().unwrap().is_empty(), "{r}");
    }
    assert_eq!(r["requests"], 300);
    for v in ["bare", "learn", "enforce", "mechanism", "emulation"] {
        let x = &r[v];
        assert_eq!(x["failed_requests"], 0, "{v}: {r}");
        assert!(x["requests_per_s"].as_f64().unwrap() > 0.0, "{v}: {r}");
        assert!(x["time_ratio_to_bare"].as_f64().unwrap() > 0.0, "{v}: {r}");
    }
    assert_eq!(r["bare"]["time_ratio_to_bare"], 1.0);
    // The reference supervisor served the same requests, emulating the server's opens.
    if have("cc") {
        for v in ["reference-continue", "reference-emulate"] {
            assert_eq!(r[v]["failed_requests"], 0, "{v}: {r}");
        }
        assert_eq!(
            r["reference-emulate"]["time_ratio_to_reference_emulation"],
            1.0
        );
    }
}
