//! Start-to-exit time of a short busybox container under plain `runc` and under `tsem-runtime`
//! (unsupervised, learning, enforcing), runs of the modes alternating, medians and their ratios
//! to plain runc. A benchmark, not a test: run it by hand, as root, with runc and busybox-static:
//!
//! ```text
//! cargo build --release -p tsem-cli -p tsem-runtime --bins --examples
//! target/release/examples/bench_container --json [--runs N]
//! ```
//!
//! `tsem-runtime` and `tsem` are taken from the directory above this example's (the same
//! profile's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SCRIPT: &str = "cat /etc/app.conf > /dev/null; ls / > /dev/null; echo x > /tmp/x; rm /tmp/x";
const MODES: &[&str] = &["runc", "unsupervised", "learn", "enforce"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--runs N"))
        .unwrap_or(15);
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let runtime = bin.join("tsem-runtime");
    assert!(
        runtime.is_file() && bin.join("tsem").is_file(),
        "build tsem and tsem-runtime first"
    );
    let dir = std::env::temp_dir().join(format!("tsem-bench-container-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = make_bundle(&dir);
    let root = dir.join("runc-root");
    let model = dir.join("model");

    // The model enforcing runs load, learned once.
    set_annotations(
        &bundle,
        &[
            ("org.tsem.mode", "learn"),
            ("org.tsem.model-out", model.to_str().unwrap()),
        ],
    );
    assert!(run(&runtime, &root, &bundle, "learn-model"));
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    // One unmeasured round first: page cache, digest cache.
    for round in 0..=runs {
        for (m, mode) in MODES.iter().enumerate() {
            let scratch = dir.join("learned");
            let ann: Vec<(&str, &str)> = match *mode {
                "learn" => vec![
                    ("org.tsem.mode", "learn"),
                    ("org.tsem.model-out", scratch.to_str().unwrap()),
                ],
                "enforce" => vec![
                    ("org.tsem.mode", "enforce"),
                    ("org.tsem.model", model.to_str().unwrap()),
                ],
                _ => vec![],
            };
            set_annotations(&bundle, &ann);
            let id = format!("bench-{mode}-{round}");
            let t = Instant::now();
            let ok = if *mode == "runc" {
                run(Path::new("runc"), &root, &bundle, &id)
            } else {
                run(&runtime, &root, &bundle, &id)
            };
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert!(ok, "{mode} run {round} failed");
            if round > 0 {
                times[m].push(ms);
            }
        }
    }
    let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    let base = medians[0];
    if json {
        let mut med = serde_json::Map::new();
        let mut ratio = serde_json::Map::new();
        for (m, mode) in MODES.iter().enumerate() {
            med.insert(mode.to_string(), round3(medians[m]).into());
            ratio.insert(mode.to_string(), round3(medians[m] / base).into());
        }
        let v = serde_json::json!({
            "benchmark": "container start-to-exit",
            "script": SCRIPT,
            "runs_per_mode": runs,
            "median_ms": med,
            "ratio_to_runc": ratio,
            "aim_ratio": 1.3,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
    } else {
        for (m, mode) in MODES.iter().enumerate() {
            println!(
                "{mode:>13}: {:8.2} ms  {:5.2}x runc",
                medians[m],
                medians[m] / base
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run(prog: &Path, root: &Path, bundle: &Path, id: &str) -> bool {
    Command::new(prog)
        .arg("--root")
        .arg(root)
        .args(["run", "-b"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn make_bundle(dir: &Path) -> PathBuf {
    let b = dir.join("bundle");
    let r = b.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    for a in ["sh", "cat", "ls", "echo", "rm"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    std::fs::write(r.join("etc/app.conf"), "greeting=hello\n").unwrap();
    assert!(
        Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&b)
            .status()
            .unwrap()
            .success()
    );
    let path = b.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["sh", "-c", SCRIPT]);
    c["root"]["readonly"] = false.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    b
}

fn set_annotations(bundle: &Path, ann: &[(&str, &str)]) {
    let path = bundle.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut a = serde_json::Map::new();
    for (k, v) in ann {
        a.insert(k.to_string(), v.to_string().into());
    }
    c["annotations"] = a.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}
