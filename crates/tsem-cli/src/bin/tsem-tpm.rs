//! `tsem-tpm`: the TPM side of `tsem attest --tpm`, `tsem run --attest --tpm` and
//! `tsem verifier activate`.
//!
//! It runs in a process of its own so that `tsem` does not link tpm2-tss and libcrypto: loading
//! and relocating them cost every `tsem run` about a millisecond before the workload started
//! (docs/sensor.md, "Performance"), and a machine without tpm2-tss can still run `tsem`. `tsem`
//! finds it next to itself (else in `PATH`), passes plain arguments and reads JSON on stdout;
//! errors go to stderr with exit status 1.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tsem_attest::AkAlg;
use tsem_attest::credential::EkAlg;
use tsem_attest::tpm::Tpm;

#[derive(Parser)]
#[command(
    name = "tsem-tpm",
    version,
    about = "TPM operations for tsem (run by tsem; JSON on stdout)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the SHA-256 values of PCRs as JSON: [[index, "hex"], ...].
    Pcrs {
        /// TCTI, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
        #[arg(long)]
        tcti: String,
        /// PCR indices (comma separated).
        #[arg(long, value_delimiter = ',', required = true)]
        pcr: Vec<u32>,
    },
    /// Extend VALUE into PCR (SHA-256 bank), then quote PCRs 0-7 and PCR with QUALIFYING as
    /// extraData; print the quote as JSON.
    ExtendQuote {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// Attestation key: ecc or rsa.
        #[arg(long, default_value = "ecc")]
        ak_alg: AkAlg,
        /// PCR to extend and quote.
        #[arg(long)]
        pcr: u32,
        /// 32 bytes (hex) to extend.
        #[arg(long)]
        value: String,
        /// Qualifying data (hex).
        #[arg(long)]
        qualifying: String,
    },
    /// Print the EK certificate and the AK's public area as JSON:
    /// {"ek_cert": hex DER, "ak_public": hex TPMT_PUBLIC}.
    Identity {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// Attestation key: ecc or rsa.
        #[arg(long, default_value = "ecc")]
        ak_alg: AkAlg,
        /// Endorsement key: rsa (2048) or ecc (P-256).
        #[arg(long, default_value = "rsa")]
        ek_alg: EkAlg,
        /// Do not read the EK certificate (the caller has it): "ek_cert" is empty.
        #[arg(long)]
        no_ek_cert: bool,
    },
    /// Seal the bytes on standard input (never on the command line) under PolicyPCR on PCRs 0-7
    /// (PLATFORM) and PCR (VALUE); print {"public": hex, "private": hex}.
    Seal {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// The PCR the run extends its state into.
        #[arg(long)]
        pcr: u32,
        /// The values of PCRs 0-7 (hex, comma separated, in order).
        #[arg(long, value_delimiter = ',', required = true)]
        platform: Vec<String>,
        /// The value PCR must hold (hex).
        #[arg(long)]
        value: String,
    },
    /// Unseal an object sealed by `seal`; print {"secret": hex}.
    Unseal {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// The PCR it was sealed to.
        #[arg(long)]
        pcr: u32,
        /// The object's TPMT_PUBLIC (hex).
        #[arg(long)]
        public: String,
        /// The object's TPM2B_PRIVATE buffer (hex).
        #[arg(long)]
        private: String,
    },
    /// Reset PCR (16 or 23) to zero; print {}.
    Reset {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// The PCR.
        #[arg(long)]
        pcr: u32,
    },
    /// Extend VALUE into PCR (SHA-256 bank); print {}.
    Extend {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// The PCR.
        #[arg(long)]
        pcr: u32,
        /// 32 bytes (hex).
        #[arg(long)]
        value: String,
    },
    /// TPM2_ActivateCredential with the AK and the EK; print {"credential": hex}.
    Activate {
        /// TCTI.
        #[arg(long)]
        tcti: String,
        /// Attestation key: ecc or rsa.
        #[arg(long, default_value = "ecc")]
        ak_alg: AkAlg,
        /// Endorsement key: rsa (2048) or ecc (P-256).
        #[arg(long, default_value = "rsa")]
        ek_alg: EkAlg,
        /// The credential blob (hex).
        #[arg(long)]
        blob: String,
        /// The encrypted secret (hex).
        #[arg(long)]
        secret: String,
    },
}

fn hex(field: &'static str, s: &str) -> anyhow::Result<Vec<u8>> {
    Ok(tsem_attest::claims::from_hex(field, s)?)
}

fn hex32(field: &'static str, s: &str) -> anyhow::Result<[u8; 32]> {
    hex(field, s)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("--{field}: not 32 bytes"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Pcrs { tcti, pcr } => {
            let mut t = Tpm::open(&tcti)?;
            let v: Vec<(u32, String)> = t
                .read_pcrs(&pcr)?
                .into_iter()
                .map(|(i, d)| (i, tsem_attest::claims::to_hex(&d)))
                .collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        Cmd::ExtendQuote {
            tcti,
            ak_alg,
            pcr,
            value,
            qualifying,
        } => {
            let value: [u8; 32] = hex("value", &value)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("--value: not 32 bytes"))?;
            let qualifying = hex("qualifying", &qualifying)?;
            let mut t = Tpm::open(&tcti)?;
            t.set_ak_alg(ak_alg);
            t.extend(pcr, &value)?;
            let q = t.quote(pcr, &qualifying).context("quote")?;
            println!("{}", serde_json::to_string(&q)?);
        }
        Cmd::Seal {
            tcti,
            pcr,
            platform,
            value,
        } => {
            use std::io::Read as _;
            if platform.len() != 8 {
                anyhow::bail!("--platform: {} values, expected PCRs 0-7", platform.len());
            }
            let mut values = platform
                .iter()
                .enumerate()
                .map(|(i, h)| Ok((i as u32, hex32("platform", h)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if pcr > 7 {
                values.push((pcr, hex32("value", &value)?));
            }
            let mut secret = Vec::new();
            std::io::stdin()
                .take(tsem_attest::tpm_seal::MAX_SECRET as u64 + 1)
                .read_to_end(&mut secret)
                .context("reading the secret from standard input")?;
            let mut t = Tpm::open(&tcti)?;
            let (public, private) = t.seal(pcr, &values, &secret)?;
            let v = serde_json::json!({
                "public": tsem_attest::claims::to_hex(&public),
                "private": tsem_attest::claims::to_hex(&private),
            });
            println!("{v}");
        }
        Cmd::Unseal {
            tcti,
            pcr,
            public,
            private,
        } => {
            let mut t = Tpm::open(&tcti)?;
            let s = t.unseal(pcr, &hex("public", &public)?, &hex("private", &private)?)?;
            println!(
                "{}",
                serde_json::json!({ "secret": tsem_attest::claims::to_hex(&s) })
            );
        }
        Cmd::Reset { tcti, pcr } => {
            Tpm::open(&tcti)?.reset_pcr(pcr)?;
            println!("{{}}");
        }
        Cmd::Extend { tcti, pcr, value } => {
            Tpm::open(&tcti)?.extend(pcr, &hex32("value", &value)?)?;
            println!("{{}}");
        }
        Cmd::Identity {
            tcti,
            ak_alg,
            ek_alg,
            no_ek_cert,
        } => {
            let mut t = Tpm::open(&tcti)?;
            t.set_ak_alg(ak_alg);
            let (cert, ak) = t.identity((!no_ek_cert).then_some(ek_alg))?;
            let v = serde_json::json!({
                "ek_cert": tsem_attest::claims::to_hex(&cert),
                "ak_public": tsem_attest::claims::to_hex(&ak),
            });
            println!("{v}");
        }
        Cmd::Activate {
            tcti,
            ak_alg,
            ek_alg,
            blob,
            secret,
        } => {
            let blob = hex("blob", &blob)?;
            let secret = hex("secret", &secret)?;
            let mut t = Tpm::open(&tcti)?;
            t.set_ak_alg(ak_alg);
            let c = t.activate(ek_alg, &blob, &secret)?;
            let v = serde_json::json!({ "credential": tsem_attest::claims::to_hex(&c) });
            println!("{v}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsem-tpm: {e:#}");
            ExitCode::from(1)
        }
    }
}
