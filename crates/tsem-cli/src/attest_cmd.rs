//! `tsem attest` and `tsem verify` (placeholder until the attestation crate lands).
use std::process::ExitCode;

/// Attest the state of a modeled trajectory.
#[derive(clap::Args)]
pub struct AttestArgs {}

/// Verify an attestation.
#[derive(clap::Args)]
pub struct VerifyArgs {}

pub fn attest(_a: AttestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tsem attest is not available in this build yet")
}

pub fn verify(_a: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tsem verify is not available in this build yet")
}
