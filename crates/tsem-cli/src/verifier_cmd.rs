//! `tsem verifier serve|enroll|status|history`, and the verifier side of `tsem attest --verifier`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use tsem_verifier::protocol::{Enrolment, Post};
use tsem_verifier::{Client, Config};

/// Exit status when the verifier's verdict is not affirming or warning.
const NOT_TRUSTED: u8 = 3;

/// The fleet verifier.
#[derive(clap::Subcommand)]
pub enum VerifierCmd {
    /// Serve the verifier's REST API (HTTPS with --tls-cert/--tls-key; plain HTTP on loopback only).
    Serve(ServeArgs),
    /// Enrol a workload: its model(s), its key and its policy (admin).
    Enroll(EnrollArgs),
    /// Every workload's verdict: affirming, warning, contraindicated, stale or none.
    Status(StatusArgs),
    /// A workload's history (JSON, oldest first).
    History(HistoryArgs),
    /// Prove to the verifier that the workload's AK lives in a TPM with a certified EK
    /// (TPM2_ActivateCredential; run on the workload's machine).
    Activate(crate::activate_cmd::ActivateArgs),
    /// Attestations appraised per second end to end over loopback HTTP (verifiers in this
    /// process; nonce, attest, post, verify, store), as JSON; `tsem bench verifier` measures
    /// `serve` processes on SQLite and PostgreSQL.
    Bench(BenchArgs),
}

/// `tsem verifier bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Database (a fresh SQLite file is best: the benchmark enrols a workload of its own).
    #[arg(long, value_name = "URL")]
    pub db: String,
    /// The model the workload runs under.
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// Attestations.
    #[arg(short, long, value_name = "N", default_value_t = 1000)]
    pub n: usize,
    /// Client threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub clients: usize,
    /// Verifier servers on the database (PostgreSQL for more than one), in this process;
    /// client threads take them in turn.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub servers: usize,
    /// Tokio worker threads per server (0: two).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
    /// Trajectories the attested workload ran (modeled under --model).
    #[arg(required = true, value_name = "TRAJECTORY")]
    pub files: Vec<PathBuf>,
}

/// `tsem verifier serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; without TLS only a loopback address (127.0.0.1:PORT, [::1]:PORT).
    /// Port 0 picks one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7415")]
    pub listen: SocketAddr,
    /// Database: sqlite://PATH (created if missing), postgres://USER@HOST/DB, or over a Unix
    /// socket postgres:///DB?host=/run/postgresql&user=USER.
    #[arg(long, value_name = "URL", default_value = "sqlite://tsem-verifier.db")]
    pub db: String,
    /// The admin token: read from F, or created there (mode 0600) if F does not exist. Without
    /// it, enrolment is refused.
    #[arg(long, value_name = "F")]
    pub admin_token_file: Option<PathBuf>,
    /// Seconds a nonce stays valid.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub nonce_ttl: u64,
    /// Seconds a workload's lease lasts unless this process renews it.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub lease_ttl: u64,
    /// Nonces issued per workload per second by this process (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub nonce_rate: u32,
    /// Refused posts per workload per second by this process before further posts are
    /// answered 429 unchecked (0: unlimited): a refused post costs a signature check.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub refusal_rate: u32,
    /// Status and history need the admin token too (by default anyone may read verdicts).
    #[arg(long, requires = "admin_token_file")]
    pub private_status: bool,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "F", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "F", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM or DER; repeat) that issue EK certificates: then a workload's TPM AK
    /// counts only once `tsem verifier activate` proved it is in a TPM whose EK they certify.
    #[arg(long, value_name = "FILE")]
    pub ek_ca: Vec<PathBuf>,
    /// Tokio worker threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
}

/// `tsem verifier enroll`.
#[derive(clap::Args)]
pub struct EnrollArgs {
    /// The verifier (http://HOST:PORT or https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The CA certificate (PEM) an https verifier's certificate must chain to.
    #[arg(long, value_name = "F")]
    pub ca_cert: Option<PathBuf>,
    /// The admin token (as `serve --admin-token-file` wrote it).
    #[arg(long, value_name = "F")]
    pub token_file: PathBuf,
    /// The workload's name.
    #[arg(long, value_name = "NAME")]
    pub workload: String,
    /// A model the workload may run under (repeat during a roll-out).
    #[arg(long, value_name = "M", required = true)]
    pub model: Vec<PathBuf>,
    /// The workload's Ed25519 public key (SPKI PEM, KEY.pub).
    #[arg(long, value_name = "PUB", required_unless_present = "ak")]
    pub key: Option<PathBuf>,
    /// The workload's TPM attestation key (SPKI PEM).
    #[arg(long, value_name = "PUB")]
    pub ak: Option<PathBuf>,
    /// Most forensic events tolerated.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_forensics: u64,
    /// Accept only attestations of runs under this deviation policy (untrust, deny, kill,
    /// restart; an attestation naming none ran under untrust), as `tsem verify` does.
    #[arg(long, value_name = "POLICY")]
    pub require_on_forensic: Option<tsem_core::policy::Policy>,
    /// Seconds between the workload's attestations; 1.5 times this without one makes it stale.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub every: u64,
}

/// `tsem verifier status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The verifier (http://HOST:PORT or https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The CA certificate (PEM) an https verifier's certificate must chain to.
    #[arg(long, value_name = "F")]
    pub ca_cert: Option<PathBuf>,
    /// The admin token (needed when the verifier serves with --private-status).
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// Only this workload.
    #[arg(long, value_name = "NAME")]
    pub workload: Option<String>,
    /// One JSON object per workload, one per line.
    #[arg(long)]
    pub json: bool,
}

/// `tsem verifier history`.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The verifier (http://HOST:PORT or https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The CA certificate (PEM) an https verifier's certificate must chain to.
    #[arg(long, value_name = "F")]
    pub ca_cert: Option<PathBuf>,
    /// The workload.
    #[arg(long, value_name = "NAME")]
    pub workload: String,
    /// The admin token (needed when the verifier serves with --private-status).
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
}

pub fn run(c: VerifierCmd) -> anyhow::Result<ExitCode> {
    match c {
        VerifierCmd::Serve(a) => serve(a),
        VerifierCmd::Enroll(a) => enroll(a),
        VerifierCmd::Status(a) => status(a),
        VerifierCmd::History(a) => {
            let token = a.token_file.as_deref().map(read_token).transpose()?;
            let h = Client::with_ca(&a.url, token, a.ca_cert.as_deref())?.history(&a.workload)?;
            println!("{h:#}");
            Ok(ExitCode::SUCCESS)
        }
        VerifierCmd::Bench(a) => bench(a),
        VerifierCmd::Activate(a) => crate::activate_cmd::run(a),
    }
}

fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    use crate::replay::{StreamStats, model_stream, namespace_for, open_input};
    let digest = tsem_core::hash::HashAlg::Sha256;
    let mut ns = namespace_for(digest, Default::default(), Some(&a.model), None)?;
    ns.enforce();
    let mut stats = StreamStats::default();
    for f in &a.files {
        let mut input = open_input(f)?;
        model_stream(&mut ns, &f.display().to_string(), &mut input, &mut stats)?;
    }
    let model = read_pem(&a.model)?;
    let r = tsem_verifier::bench::run(&a.db, &model, ns, a.n, a.clients, a.servers, a.workers)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}

fn read_token(p: &Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(p)
        .with_context(|| format!("{}: cannot read the admin token", p.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        anyhow::bail!("{}: the admin token file is empty", p.display());
    }
    Ok(t)
}

/// Read the token at `p`, or create one there (mode 0600) when there is none.
fn admin_token(p: &Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if p.exists() {
        return read_token(p);
    }
    let token = tsem_verifier::server::random_hex(32)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .with_context(|| format!("{}: cannot create the admin token", p.display()))?;
    f.write_all(format!("{token}\n").as_bytes())
        .with_context(|| format!("{}: cannot write", p.display()))?;
    eprintln!("tsem: wrote a new admin token to {}", p.display());
    Ok(token)
}

fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = a.admin_token_file.as_deref().map(admin_token).transpose()?;
    if token.is_none() {
        eprintln!("tsem: no --admin-token-file: enrolment is refused");
    }
    let mut cfg = Config::new(token);
    cfg.nonce_ttl = a.nonce_ttl.max(1);
    cfg.lease_ttl = a.lease_ttl.max(1);
    cfg.nonce_rate = a.nonce_rate;
    cfg.refusal_rate = a.refusal_rate;
    cfg.private_status = a.private_status;
    cfg.workers = a.workers;
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        cfg.tls = Some(std::sync::Arc::new(tsem_verifier::tls::server_config(
            cert, key,
        )?));
    }
    for f in &a.ek_ca {
        let data = std::fs::read(f).with_context(|| format!("{}: cannot read", f.display()))?;
        let certs = tsem_attest::credential::parse_certs(&data)
            .with_context(|| format!("{}: --ek-ca", f.display()))?;
        cfg.ek_cas.extend(certs);
    }
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let id = cfg.id.clone();
    tsem_verifier::server::serve_blocking(a.listen, &a.db, cfg, |addr| {
        use std::io::Write as _;
        // The URL alone on stdout, for scripts that asked for port 0.
        println!("{scheme}://{addr}");
        let _ = std::io::stdout().flush();
        eprintln!("tsem: verifier {id} listening on {scheme}://{addr}");
    })?;
    Ok(ExitCode::SUCCESS)
}

fn read_pem(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))
}

fn enroll(a: EnrollArgs) -> anyhow::Result<ExitCode> {
    let client = Client::with_ca(
        &a.url,
        Some(read_token(&a.token_file)?),
        a.ca_cert.as_deref(),
    )?;
    let models = a
        .model
        .iter()
        .map(|m| read_pem(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let e = Enrolment {
        workload: a.workload.clone(),
        models,
        key: a.key.as_deref().map(read_pem).transpose()?,
        ak: a.ak.as_deref().map(read_pem).transpose()?,
        max_forensics: a.max_forensics,
        on_forensic: a.require_on_forensic.map(|p| p.name().to_string()),
        every: a.every,
    };
    let r = client.enroll(&e)?;
    println!(
        "enrolled {} (enrolment {}): model(s) {}",
        a.workload,
        r["enrolment"],
        r["models"]
            .as_array()
            .map(|v| v
                .iter()
                .filter_map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let token = a.token_file.as_deref().map(read_token).transpose()?;
    let all = Client::with_ca(&a.url, token, a.ca_cert.as_deref())?.status()?;
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|s| a.workload.as_deref().is_none_or(|w| w == s.workload))
        .collect();
    if let Some(w) = &a.workload
        && chosen.is_empty()
    {
        anyhow::bail!("workload {w:?} is not enrolled");
    }
    for s in &chosen {
        if a.json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            println!("{}\t{}\t{}", s.workload, s.verdict, s.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Fetch a fresh nonce for `workload` (hex).
pub fn fetch_nonce(url: &str, ca: Option<&Path>, workload: &str) -> anyhow::Result<String> {
    Ok(Client::with_ca(url, None, ca)?.nonce(workload)?.nonce)
}

/// Post `att` with the namespace's forensic event descriptions; print the verdict. Exit 0 when
/// affirming or warning, 3 otherwise.
pub fn post(
    url: &str,
    ca: Option<&Path>,
    workload: &str,
    att: tsem_attest::Attestation,
    ns: &tsem_core::namespace::Namespace,
) -> anyhow::Result<ExitCode> {
    let a = Client::with_ca(url, None, ca)?.post(
        workload,
        &Post {
            attestation: att,
            forensics: descriptions(ns.forensics().iter()),
        },
    )?;
    Ok(print_verdict(&a))
}

/// Print `VERDICT: REASON`; exit 0 when affirming or warning, 3 otherwise.
pub fn print_verdict(a: &tsem_verifier::protocol::Appraisal) -> ExitCode {
    println!("{}: {}", a.verdict, a.reason);
    if matches!(a.verdict.as_str(), "affirming" | "warning") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_TRUSTED)
    }
}

/// The descriptions of forensic events posted with an attestation.
pub fn descriptions<'a>(
    forensics: impl IntoIterator<Item = &'a tsem_core::event::Event>,
) -> Vec<String> {
    forensics
        .into_iter()
        .map(|e| {
            // Strict JSON where the description is UTF-8; else the kernel's form in tsem's
            // one-to-one escaped rendering (docs/raw-bytes.md), so no byte is lost.
            let mut out = Vec::new();
            match tsem_format::write_event_json(&mut out, e, tsem_format::RecordKind::Trajectory) {
                Ok(()) => String::from_utf8_lossy(&out).into_owned(),
                Err(_) => {
                    let raw = tsem_format::event_to_json(e, tsem_format::RecordKind::Trajectory);
                    tsem_core::raw::escape(&raw).to_string()
                }
            }
        })
        .collect()
}
