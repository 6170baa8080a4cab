//! `tsem bench verifier`: attestations appraised per second end to end over loopback HTTP
//! (nonce, attest and sign, post, verify, store) by real `tsem verifier serve` processes: SQLite
//! with one process, PostgreSQL (when given) with one and with two processes sharing it.
//! A benchmark, never a test threshold (docs/verifier.md, "Performance").

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use serde_json::json;
use tsem_core::namespace::{Config, Namespace};

/// `tsem bench verifier`.
#[derive(clap::Args)]
pub struct VerifierBenchArgs {
    /// Attestations per configuration.
    #[arg(short, long, value_name = "N", default_value_t = 2000)]
    pub n: usize,
    /// Client threads (each: nonce, attest and sign, post, in a loop).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub clients: usize,
    /// A PostgreSQL to measure on too, with one and two verifier processes (a scratch database:
    /// the benchmark enrols workloads in it). Without it only SQLite is measured.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The model the attested workload runs under (default: a synthetic workload, 2000 events
    /// of `tsem bench model`'s mix, about 500 points), with its trajectories.
    #[arg(long, value_name = "M", requires = "files")]
    pub model: Option<PathBuf>,
    /// Trajectories the attested workload ran (modeled under --model).
    #[arg(value_name = "TRAJECTORY", requires = "model")]
    pub files: Vec<PathBuf>,
    /// Tokio worker threads of each `serve` process (its `--workers`; 0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A `tsem verifier serve` process of this binary, stopped on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(db: &str, token: &Path, workers: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("this program's path")?;
        let mut child = Command::new(exe)
            .args(["verifier", "serve", "--listen", "127.0.0.1:0", "--db", db])
            .arg("--admin-token-file")
            .arg(token)
            // One workload reporting as fast as it can.
            .args(["--nonce-rate", "0"])
            .args(["--workers", &workers.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting tsem verifier serve")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let url = line.trim().to_string();
        if !url.starts_with("http://") {
            let _ = child.kill();
            let _ = child.wait();
            bail!("tsem verifier serve --db {db} did not start");
        }
        Ok(Self { child, url })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Its leases and nonces stay in a scratch database: nothing to give up cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workload attested: `--model` and its trajectories, else a synthetic one.
fn workload(a: &VerifierBenchArgs) -> anyhow::Result<(String, Namespace)> {
    use crate::replay::{StreamStats, model_stream, namespace_for, open_input};
    let alg = tsem_core::hash::HashAlg::Sha256;
    if let Some(m) = &a.model {
        let mut ns = namespace_for(alg, Default::default(), Some(m), None)?;
        ns.enforce();
        let mut stats = StreamStats::default();
        for f in &a.files {
            let mut input = open_input(f)?;
            model_stream(&mut ns, &f.display().to_string(), &mut input, &mut stats)?;
        }
        let text = std::fs::read_to_string(m).with_context(|| format!("{}", m.display()))?;
        return Ok((text, ns));
    }
    let events = crate::bench::synthetic_events(2000, 0x7415);
    let mut learned = Namespace::new(Config::default())?;
    for e in &events {
        learned.model(1, e)?;
    }
    let model = tsem_format::ModelFile::from_namespace(&learned);
    let mut ns = Namespace::new(Config::default())?;
    model
        .load_into(&mut ns, None)
        .map_err(|e| anyhow::anyhow!("the synthetic model: {e}"))?;
    ns.enforce();
    for e in &events {
        ns.model(1, e)?;
    }
    Ok((model.to_text(), ns))
}

pub fn run(a: VerifierBenchArgs) -> anyhow::Result<ExitCode> {
    let machine = crate::bench_model::Machine::now();
    let (model, ns) = workload(&a)?;
    let dir = std::env::temp_dir().join(format!("tsem-bench-verifier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let token = dir.join("token");
    let sqlite = format!("sqlite://{}", dir.join("verifier.db").display());
    let mut plan = vec![(sqlite.as_str(), 1)];
    if let Some(pg) = &a.postgres {
        plan.push((pg, 1));
        plan.push((pg, 2));
    }
    let mut results = Vec::new();
    let mut failure = None;
    for (db, processes) in plan {
        let served = (0..processes)
            .map(|_| Served::start(db, &token, a.workers))
            .collect::<anyhow::Result<Vec<_>>>();
        let r = served.and_then(|s| {
            let urls: Vec<String> = s.iter().map(|s| s.url.clone()).collect();
            let secret = std::fs::read_to_string(&token)?.trim().to_string();
            let kind = if db.starts_with("sqlite") {
                "sqlite"
            } else {
                "postgres"
            };
            Ok(tsem_verifier::bench::drive(
                &urls,
                &secret,
                kind,
                &model,
                ns.clone(),
                a.n,
                a.clients,
            )?)
        });
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(e) = failure {
        return Err(e);
    }
    let after = crate::bench_model::Machine::now();
    if a.json {
        let v = json!({
            "bench": "verifier",
            "machine": machine.json(),
            "machine_after": after.json(),
            "client_signature": "included (the clients sign on the same cores)",
            "postgres": a.postgres.is_some(),
            "workers": a.workers,
            "results": results,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("machine: {}", machine.line());
    println!("db        processes  attestations/s  median ms  p99 ms  client sign ms");
    for r in &results {
        println!(
            "{:<9} {:>9}  {:>14.0}  {:>9.2}  {:>6.2}  {:>14.3}",
            r.db, r.servers, r.per_second, r.median_ms, r.p99_ms, r.sign_median_ms
        );
    }
    if a.postgres.is_none() {
        println!("(PostgreSQL not measured: --postgres URL)");
    }
    println!("machine after: {}", after.line());
    Ok(ExitCode::SUCCESS)
}
