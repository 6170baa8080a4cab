//! `tsem`: Trusted Security Event Modeling for Linux workloads.
//!
//! The binary is thin: every subcommand parses its arguments and calls into the library crates.
//! Errors are printed as one line `tsem: error: ...` and give exit status 1; usage errors give 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod evidence;
mod run_cmd;

/// Trusted Security Event Modeling for Linux workloads.
#[derive(Parser)]
#[command(name = "tsem", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// TCG PC Client (measured boot) event logs.
    #[command(subcommand)]
    Eventlog(evidence::EventlogCmd),
    /// IMA measurement lists.
    #[command(subcommand)]
    Ima(evidence::ImaCmd),
    /// Run a workload under a security model (learn, seal, enforce).
    Run(run_cmd::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Eventlog(c) => evidence::eventlog(c),
        Cmd::Ima(c) => evidence::ima(c),
        Cmd::Run(a) => run_cmd::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tsem: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
