//! `tsem bench container`: start-to-exit time of a short busybox container under plain
//! `runc run` and under `tsem-runtime run` (unsupervised, learning, enforcing), runs of the modes
//! alternating, medians and their ratios to plain runc. A benchmark, not a test: it needs root,
//! runc and a static busybox (`/bin/busybox`, Debian's busybox-static), and builds its bundle
//! from scratch under `$TMPDIR` (and waits ~3 s for the digest store to accept its files).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What the container does: read a config, list a directory, write and remove a file.
pub const SCRIPT: &str =
    "cat /etc/app.conf > /dev/null; ls / > /dev/null; echo x > /tmp/x; rm /tmp/x";

/// The modes, in the order they alternate.
pub const MODES: [&str; 4] = ["runc", "unsupervised", "learn", "enforce"];

/// The aim: supervised at most this many times plain runc.
pub const AIM: f64 = 1.3;

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something it needs is missing.
    #[error("{0}")]
    Missing(String),
    /// Building the bundle.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A run failed.
    #[error("{mode} run {round} failed: {why}")]
    Run {
        /// The mode.
        mode: &'static str,
        /// The round (0: the unmeasured one).
        round: usize,
        /// runc's or tsem-runtime's exit status.
        why: String,
    },
}

/// The binaries measured.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Measured runs of each mode.
    pub runs: usize,
    /// `tsem-runtime`.
    pub runtime: PathBuf,
    /// `tsem`, the supervisor.
    pub tsem: PathBuf,
}

/// Medians in milliseconds, by mode (in [`MODES`] order).
#[derive(Debug, Clone)]
pub struct Report {
    /// Measured runs of each mode.
    pub runs: usize,
    /// Median start-to-exit time of each mode.
    pub median_ms: [f64; 4],
}

impl Report {
    /// The ratio of each mode's median to plain runc's.
    pub fn ratios(&self) -> [f64; 4] {
        self.median_ms.map(|m| m / self.median_ms[0])
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        let mut med = serde_json::Map::new();
        let mut ratio = serde_json::Map::new();
        for (m, mode) in MODES.iter().enumerate() {
            med.insert(mode.to_string(), round3(self.median_ms[m]).into());
            ratio.insert(mode.to_string(), round3(self.ratios()[m]).into());
        }
        serde_json::json!({
            "benchmark": "container start-to-exit",
            "script": SCRIPT,
            "runs_per_mode": self.runs,
            "median_ms": med,
            "ratio_to_runc": ratio,
            "aim_ratio": AIM,
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Run the benchmark in a scratch directory under `$TMPDIR` (removed afterwards).
pub fn container(opts: &Opts) -> Result<Report, BenchError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::Missing(
            "tsem bench container needs root (runc, and a supervisor that seizes runc's init)"
                .into(),
        ));
    }
    for p in [&opts.runtime, &opts.tsem] {
        if !p.is_file() {
            return Err(BenchError::Missing(format!(
                "{} not found (build tsem and tsem-runtime)",
                p.display()
            )));
        }
    }
    let dir = std::env::temp_dir().join(format!("tsem-bench-container-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let result = measure(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(opts: &Opts, dir: &Path) -> Result<Report, BenchError> {
    let bundle = make_bundle(dir)?;
    // The digest store does not keep digests of files changed in the last two seconds (their
    // ctime may not have moved yet, `tsem_sensor::digest_cache`): learning the model right
    // after building the bundle kept none, and every supervised run of the next ~3 s hashed the
    // container's busybox again (2 MB of SHA-256 before its first instruction), which is not a
    // container's steady state. Learning waits until the bundle's files can be kept.
    settle(SETTLED_AFTER);
    let root = dir.join("runc-root");
    let model = dir.join("model");
    let scratch = dir.join("learned");
    let (model_s, scratch_s) = (model.display().to_string(), scratch.display().to_string());
    let run = |mode: &'static str, round: usize, id: &str| -> Result<f64, BenchError> {
        let ann: Vec<(&str, &str)> = match mode {
            "learn" => vec![
                ("org.tsem.mode", "learn"),
                ("org.tsem.model-out", &scratch_s),
            ],
            "enforce" => vec![("org.tsem.mode", "enforce"), ("org.tsem.model", &model_s)],
            _ => vec![],
        };
        set_annotations(&bundle, &ann)?;
        let mut c = if mode == "runc" {
            Command::new("runc")
        } else {
            let mut c = Command::new(&opts.runtime);
            c.arg("--tsem").arg(&opts.tsem);
            c
        };
        c.arg("--root")
            .arg(&root)
            .args(["run", "-b"])
            .arg(&bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        let st = c.status().map_err(|e| BenchError::Run {
            mode,
            round,
            why: e.to_string(),
        })?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if !st.success() {
            return Err(BenchError::Run {
                mode,
                round,
                why: st.to_string(),
            });
        }
        Ok(ms)
    };
    // The model enforcing runs load, learned once (as `learn` with its own output).
    set_annotations(
        &bundle,
        &[("org.tsem.mode", "learn"), ("org.tsem.model-out", &model_s)],
    )?;
    let mut c = Command::new(&opts.runtime);
    c.arg("--tsem")
        .arg(&opts.tsem)
        .arg("--root")
        .arg(&root)
        .args(["run", "-b"])
        .arg(&bundle)
        .arg("learn-model")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let st = c.status().map_err(io(&opts.runtime))?;
    if !st.success() {
        return Err(BenchError::Run {
            mode: "learn",
            round: 0,
            why: format!("learning the model: {st}"),
        });
    }
    let mut times: [Vec<f64>; 4] = Default::default();
    // One unmeasured round first: page cache, digest cache. The rounds' orders are the rows of
    // a balanced Latin square, so that within rounds every mode follows every other equally
    // often: a run right after a supervised one was measured ~25 % slower than the same run
    // after plain runc (caches, the other run's tail), which with a fixed order made
    // `unsupervised` read 0.8x runc. (Shifting one order by a mode per round, as before, kept
    // each mode after the same one within a round: `enforce` ran after `learn`, whose model
    // write, a rename over the old file on ext4, starts writeback, three times in four.)
    for round in 0..=opts.runs {
        for m in balanced_order(MODES.len(), round) {
            let mode = MODES[m];
            let ms = run(mode, round, &format!("bench-{mode}-{round}"))?;
            if round > 0 {
                times[m].push(ms);
            }
        }
    }
    Ok(Report {
        runs: opts.runs,
        median_ms: times.map(|mut t| median(&mut t)),
    })
}

/// The order in which `n` variants of a benchmark run in round `round`: the rows of a balanced
/// Latin square (a Williams design), so that over `n` rounds (`2n` when `n` is odd) every
/// variant runs immediately after every other one equally often and each takes every position
/// equally often. A fixed order makes a variant pay for what the one before it leaves behind
/// (writeback of a model just written, caches, a server's tail): with one, `enforce` ran after
/// `learn` in every round.
pub fn balanced_order(n: usize, round: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    // First row 0, 1, n-1, 2, n-2, ...; row r adds r to each (mod n).
    let first = (0..n).map(|i| match i {
        0 => 0,
        i if i % 2 == 1 => i.div_ceil(2),
        i => n - i / 2,
    });
    let shift = round % n;
    let row: Vec<usize> = first.map(|x| (x + shift) % n).collect();
    // With an odd n the square's rows alone do not balance the pairs; their reverses do.
    if n % 2 == 1 && (round / n) % 2 == 1 {
        row.into_iter().rev().collect()
    } else {
        row
    }
}

/// Whole seconds past a file's ctime after which the digest store keeps its digest (it keeps
/// ctimes strictly older than two seconds before the current one).
const SETTLED_AFTER: u64 = 3;

/// Sleep until the wall clock's second is `secs` past the current one.
fn settle(secs: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let target = std::time::Duration::from_secs(now.as_secs() + secs);
    std::thread::sleep(target.saturating_sub(now));
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn make_bundle(dir: &Path) -> Result<PathBuf, BenchError> {
    let b = dir.join("bundle");
    let r = b.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        let p = r.join(d);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(BenchError::Missing(
            "no /bin/busybox (Debian: busybox-static)".into(),
        ));
    }
    std::fs::copy(busybox, r.join("bin/busybox")).map_err(io(busybox))?;
    for a in ["sh", "cat", "ls", "echo", "rm"] {
        let p = r.join("bin").join(a);
        std::os::unix::fs::symlink("busybox", &p).map_err(io(&p))?;
    }
    let conf = r.join("etc/app.conf");
    std::fs::write(&conf, "greeting=hello\n").map_err(io(&conf))?;
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&b)
        .status()
        .map_err(|e| BenchError::Missing(format!("runc (Debian: runc): {e}")))?;
    if !st.success() {
        return Err(BenchError::Missing(format!("runc spec: {st}")));
    }
    let path = b.join("config.json");
    let mut c = read_json(&path)?;
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["sh", "-c", SCRIPT]);
    c["root"]["readonly"] = false.into();
    write_json(&path, &c)?;
    Ok(b)
}

fn read_json(path: &Path) -> Result<serde_json::Value, BenchError> {
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| BenchError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), BenchError> {
    std::fs::write(path, v.to_string()).map_err(io(path))
}

fn set_annotations(bundle: &Path, ann: &[(&str, &str)]) -> Result<(), BenchError> {
    let path = bundle.join("config.json");
    let mut c = read_json(&path)?;
    let a: serde_json::Map<String, serde_json::Value> = ann
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string().into()))
        .collect();
    c["annotations"] = a.into();
    write_json(&path, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the rounds of a cycle of four, each mode comes right after each other mode
    /// exactly once.
    #[test]
    fn every_mode_follows_every_other_once_in_four_rounds() {
        assert_eq!(balanced_order(4, 0), [0, 1, 3, 2]);
        let mut after = [[0; 4]; 4];
        for round in 0..4 {
            let row = balanced_order(4, round);
            for w in row.windows(2) {
                after[w[1]][w[0]] += 1;
            }
        }
        for (m, prev) in after.iter().enumerate() {
            for (p, n) in prev.iter().enumerate() {
                assert_eq!(*n, usize::from(m != p), "{} after {}", MODES[m], MODES[p]);
            }
        }
    }

    #[test]
    fn every_variant_follows_every_other_equally_often_for_any_count() {
        for n in 1..=12 {
            let rows = if n % 2 == 0 { n } else { 2 * n };
            let mut after = vec![vec![0usize; n]; n];
            let mut at = vec![vec![0usize; n]; n];
            for round in 0..rows {
                let row = balanced_order(n, round);
                let mut seen = row.clone();
                seen.sort_unstable();
                assert_eq!(
                    seen,
                    (0..n).collect::<Vec<_>>(),
                    "n {n} round {round}: a permutation"
                );
                for (pos, &v) in row.iter().enumerate() {
                    at[v][pos] += 1;
                }
                for w in row.windows(2) {
                    after[w[1]][w[0]] += 1;
                }
            }
            let per_pair = rows / n;
            for a in 0..n {
                for b in 0..n {
                    let want = if a == b { 0 } else { per_pair };
                    assert_eq!(after[a][b], want, "n {n}: {a} after {b}");
                    assert_eq!(at[a][b], rows / n, "n {n}: {a} at position {b}");
                }
            }
        }
    }
}
