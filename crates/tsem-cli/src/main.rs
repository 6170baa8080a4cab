//! `tsem`: Trusted Security Event Modeling for Linux workloads.
//!
//! The binary is thin: every subcommand parses its arguments and calls into the library crates.
//! Errors are printed as one line `tsem: error: ...` and give exit status 1; usage errors give 2.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lazy_args::Lazy;

mod activate_cmd;
mod attach;
mod attest_cmd;
mod backstop;
mod bench;
mod bench_container;
mod bench_model;
mod bench_peer;
mod bench_reference;
mod bench_service;
mod bench_verifier;
mod console_cmd;
mod ctl_cmd;
mod describe;
mod deviation;
mod evidence;
mod kernel_run;
mod lazy_args;
mod learn_cmd;
mod learning;
mod live;
mod model_cmd;
mod model_learn;
mod periodic;
mod replay;
mod replay_par;
mod run_cmd;
mod seal_cmd;
mod spill;
mod tma_cmd;
mod verifier_cmd;

/// Trusted Security Event Modeling for Linux workloads.
#[derive(Parser)]
#[command(name = "tsem", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Model event descriptions (TSEM JSON) in a fresh namespace and print its state.
    Replay(Lazy<replay::ReplayArgs>),
    /// Build, inspect, compare, merge, sign and verify security models.
    #[command(subcommand)]
    Model(Lazy<model_cmd::ModelCmd>),
    /// Write a new Ed25519 key pair: KEY (private, PKCS#8 PEM, mode 0600) and KEY.pub.
    Keygen {
        /// Path of the private key; the public key goes to KEY.pub.
        #[arg(short, long, value_name = "KEY")]
        output: std::path::PathBuf,
    },
    /// Attest the state of a workload's modeling namespace (signed, optionally TPM-quoted).
    Attest(Lazy<attest_cmd::AttestArgs>),
    /// Verify an attestation against the model it should be in.
    Verify(Lazy<attest_cmd::VerifyArgs>),
    /// Seal a secret to a model's state on this platform's TPM: only `tsem run --enforce
    /// --unseal` of a run that ends in exactly that state gets it back.
    Seal(Lazy<seal_cmd::SealArgs>),
    /// Benchmarks that report ratios against the physical limit.
    #[command(subcommand)]
    Bench(Lazy<bench::BenchCmd>),
    /// TCG PC Client (measured boot) event logs.
    #[command(subcommand)]
    Eventlog(Lazy<evidence::EventlogCmd>),
    /// IMA measurement lists.
    #[command(subcommand)]
    Ima(Lazy<evidence::ImaCmd>),
    /// Run a workload under a security model (learn, seal, enforce).
    Run(Lazy<Box<run_cmd::RunArgs>>),
    /// Learn a model by running a workload until more runs teach it nothing new.
    Learn(Lazy<learn_cmd::LearnArgs>),
    /// The fleet verifier: serve, enrol workloads, their verdicts.
    #[command(subcommand)]
    Verifier(Lazy<verifier_cmd::VerifierCmd>),
    /// Ask a named run (`tsem run --name`) for its state, trajectory, forensics or model.
    #[command(subcommand)]
    Ctl(Lazy<ctl_cmd::CtlCmd>),
    /// Watch a named run in a terminal: counters, state, trajectory, forensics (q quits).
    Console(Lazy<console_cmd::ConsoleArgs>),
    /// The modeling agent as its own process (`tsem run --tma` models through it).
    #[command(subcommand)]
    Tma(Lazy<tma_cmd::TmaCmd>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Run(_) | Cmd::Learn(_)) {
        tsem_sensor::sys::default_sigpipe();
    }
    let result = match cli.cmd {
        Cmd::Replay(Lazy(a)) => replay::run(a),
        Cmd::Model(Lazy(c)) => model_cmd::run(c),
        Cmd::Keygen { output } => keygen(&output),
        Cmd::Bench(Lazy(c)) => bench::run(c),
        Cmd::Attest(Lazy(a)) => attest_cmd::attest(a),
        Cmd::Verify(Lazy(a)) => attest_cmd::verify(a),
        Cmd::Seal(Lazy(a)) => seal_cmd::seal(a),
        Cmd::Eventlog(Lazy(c)) => evidence::eventlog(c),
        Cmd::Ima(Lazy(c)) => evidence::ima(c),
        Cmd::Run(Lazy(a)) => run_cmd::run(*a),
        Cmd::Learn(Lazy(a)) => learn_cmd::run(a),
        Cmd::Verifier(Lazy(c)) => verifier_cmd::run(c),
        Cmd::Ctl(Lazy(c)) => ctl_cmd::run(c),
        Cmd::Console(Lazy(a)) => console_cmd::run(a),
        Cmd::Tma(Lazy(c)) => tma_cmd::run(c),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`tsem ... | head`): that is not an error of ours.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsem: error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A usage error found after argument parsing: exit status 2, like clap's own.
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `Err(Usage)` as an `anyhow` error.
pub(crate) fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(Usage(msg.into()).into())
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A clap value parser for a nonce: hex, 8 to 64 bytes.
pub(crate) fn nonce_arg(s: &str) -> Result<String, String> {
    match tsem_attest::parse_nonce(s) {
        Ok(_) => Ok(s.to_string()),
        Err(tsem_attest::ClaimsError::Hex { msg, .. }) => Err(format!(
            "not hex ({msg}): a nonce is 16 to 128 hex digits (8 to 64 bytes)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn keygen(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (private, public) =
        tsem_format::model_file::generate_ed25519().map_err(|e| anyhow::anyhow!("{e}"))?;
    let pub_path = std::path::PathBuf::from(format!("{}.pub", out.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (refusing to overwrite an existing key)",
                out.display()
            )
        })?;
    f.write_all(private.as_bytes())?;
    std::fs::write(&pub_path, public)?;
    eprintln!("tsem: wrote {} and {}", out.display(), pub_path.display());
    Ok(ExitCode::SUCCESS)
}
