//! End-to-end throughput of a verifier over loopback HTTP: per attestation, the attestation
//! signed by the client for the nonce the previous answer carried (the first one asks for it, as
//! a [`crate::Session`] does), the post, the verification and the database statement that
//! consumes the nonce and appends the result. A benchmark, never a test threshold.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tsem_attest::{Context, Identity, Signer};
use tsem_core::namespace::Namespace;

use crate::protocol::{Enrolment, Post};
use crate::server::{Config, ServerError, spawn};
use crate::{Client, ClientError};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The verifier failed to start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Making an attestation failed.
    #[error("attest: {0}")]
    Attest(String),
    /// An attestation was not affirmed: the benchmark would measure the wrong path.
    #[error("attestation {0} was appraised {1}: {2}")]
    NotAffirming(usize, String, String),
    /// A client thread died.
    #[error("client thread panicked")]
    Thread,
    /// No server was asked for.
    #[error("no verifier server")]
    NoServer,
}

/// The measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `verifier`.
    pub bench: &'static str,
    /// `sqlite` or `postgres`.
    pub db: String,
    /// Attestations appraised and recorded.
    pub n: usize,
    /// Client threads.
    pub clients: usize,
    /// Verifier servers sharing the database (each with its own runtime and connection pool;
    /// clients take them in turn).
    pub servers: usize,
    /// Wall time (s).
    pub seconds: f64,
    /// Attestations per second, end to end.
    pub per_second: f64,
    /// Median latency of one attestation (sign + post; the first also asks for a nonce), ms.
    pub median_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Median time the client spent making and signing one attestation (claims from the observed
    /// namespace, taken once per run, and the Ed25519 signature),
    /// ms: included in the latency and the rate, on the same cores as the verifier.
    pub sign_median_ms: f64,
    /// Points in the model each verification hashes.
    pub model_points: usize,
}

/// Serve `db_url` from `servers` verifier servers in this process, enrol one workload under
/// `model` (text) with a fresh key, and push `n` attestations of `ns` through them from
/// `clients` threads; each server runs `workers` tokio workers (0: two).
pub fn run(
    db_url: &str,
    model: &str,
    ns: Namespace,
    n: usize,
    clients: usize,
    servers: usize,
    workers: usize,
) -> Result<BenchReport, BenchError> {
    let token = crate::server::random_hex(16)?;
    let mut cfg = Config::new(Some(token.clone()));
    cfg.workers = workers;
    // The benchmark is one workload reporting as fast as it can.
    cfg.nonce_rate = 0;
    cfg.refusal_rate = 0;
    let servers = (0..servers.max(1))
        .map(|_| {
            let mut c = cfg.clone();
            c.id = crate::server::process_id();
            spawn(([127, 0, 0, 1], 0).into(), db_url, c)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let db = if db_url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let r = drive(&urls, &token, db, model, ns, n, clients);
    for s in servers {
        s.stop()?;
    }
    r
}

/// Enrol one workload under `model` (text) with a fresh key at the first of `urls` (verifiers
/// sharing one database `db`, `token` their admin token), and push `n` attestations of `ns`
/// through them from `clients` threads, which take the verifiers in turn.
pub fn drive(
    urls: &[String],
    token: &str,
    db: &str,
    model: &str,
    ns: Namespace,
    n: usize,
    clients: usize,
) -> Result<BenchReport, BenchError> {
    let first = urls.first().ok_or(BenchError::NoServer)?;
    let (sk, pk) = tsem_format::model_file::generate_ed25519()
        .map_err(|e| BenchError::Attest(e.to_string()))?;
    let workload = format!("bench-{}", crate::server::random_hex(4)?);
    Client::new(first, Some(token.to_string()))?.enroll(&Enrolment {
        workload: workload.clone(),
        models: vec![model.to_string()],
        key: Some(pk),
        ak: None,
        max_forensics: 0,
        on_forensic: None,
        every: 3600,
    })?;
    let model_points = ns.points().len();
    let model_digest = tsem_format::ModelFile::parse_bytes(model.as_bytes())
        .ok()
        .map(|m| tsem_attest::model_digest(&m));
    // What a live run publishes of its namespace (state, counters), taken once: the namespace
    // does not change during the benchmark, and recomputing its state per attestation (a hash
    // over every point) is the attester's cost, on another machine in a fleet, not the
    // verifier's. Each attestation still makes its claims and signs them.
    let ns = Arc::new(tsem_attest::Observed::of(&ns));
    let clients = clients.max(1);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let url = urls[t % urls.len()].clone();
            let (ns, workload, sk) = (ns.clone(), workload.clone(), sk.clone());
            std::thread::spawn(move || -> Result<(Vec<f64>, Vec<f64>), BenchError> {
                let signer =
                    Signer::from_pem(&sk).map_err(|e| BenchError::Attest(e.to_string()))?;
                let mut session = crate::Session::new(Client::new(&url, None)?, workload.clone());
                let mut lat = Vec::new();
                let mut sign = Vec::new();
                for i in (t..n).step_by(clients) {
                    let t0 = Instant::now();
                    let a = session.attest(|nonce| {
                        let cx = Context {
                            nonce: nonce.to_vec(),
                            lost_events: 0,
                            identity: Identity {
                                host: "bench".into(),
                                workload: workload.clone(),
                            },
                            model: model_digest,
                            time: tsem_attest::now_unix(),
                        };
                        let t1 = Instant::now();
                        let att = tsem_attest::attest_observed(&ns, &cx, &signer)
                            .map_err(|e| BenchError::Attest(e.to_string()))?;
                        sign.push(t1.elapsed().as_secs_f64() * 1000.0);
                        Ok::<_, BenchError>(Post {
                            attestation: att,
                            forensics: Vec::new(),
                        })
                    })?;
                    if a.verdict != "affirming" {
                        return Err(BenchError::NotAffirming(i, a.verdict, a.reason));
                    }
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                Ok((lat, sign))
            })
        })
        .collect();
    let (mut lat, mut sign) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for t in threads {
        let (l, s) = t.join().map_err(|_| BenchError::Thread)??;
        lat.extend(l);
        sign.extend(s);
    }
    let seconds = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    sign.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(BenchReport {
        bench: "verifier",
        db: db.to_string(),
        n: lat.len(),
        clients,
        servers: urls.len(),
        seconds,
        per_second: if seconds > 0.0 {
            lat.len() as f64 / seconds
        } else {
            0.0
        },
        median_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        sign_median_ms: pct(&sign, 0.5),
        model_points,
    })
}
