//! `tsem eventlog` and `tsem ima` (placeholder until the evidence crate lands).
use std::process::ExitCode;

use clap::Subcommand;

/// Event log subcommands.
#[derive(Subcommand)]
pub enum EventlogCmd {}

/// IMA subcommands.
#[derive(Subcommand)]
pub enum ImaCmd {}

pub fn eventlog(c: EventlogCmd) -> anyhow::Result<ExitCode> {
    match c {}
}

pub fn ima(c: ImaCmd) -> anyhow::Result<ExitCode> {
    match c {}
}
