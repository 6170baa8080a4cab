//! `tsem seal` and `tsem run --unseal`: a secret released only to a run that ended in exactly its
//! model's state on this platform (local attestation, [`tsem_attest::sealed`]).
//!
//! The TPM work runs in the `tsem-tpm` helper; the secret travels to it on a pipe, never on a
//! command line.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tsem_attest::claims::{from_hex, to_hex};
use tsem_attest::sealed::{self, Sealed};
use tsem_core::hash::HashAlg;

use crate::attest_cmd::HelperTpm;

/// `tsem seal`.
#[derive(clap::Args)]
pub struct SealArgs {
    /// The model a run must end in exactly.
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// The TPM (TCTI, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`).
    #[arg(long, value_name = "TCTI")]
    pub tpm: String,
    /// The PCR a run extends its state into: 23 or 16 (reset before each sealed run), or another
    /// that still holds its boot value of zero when the run starts (one sealed run per boot).
    #[arg(long, value_name = "N", default_value_t = sealed::DEFAULT_SEAL_PCR)]
    pub pcr: u32,
    /// The namespace's hash function (as `tsem run --digest`).
    #[arg(long, value_name = "NAME", default_value = "sha256")]
    pub digest: HashAlg,
    /// Write the sealed blob (JSON) here.
    #[arg(short = 'o', long = "output", value_name = "BLOB")]
    pub output: PathBuf,
    /// The secret (1 to 128 bytes; seal a key that encrypts anything larger).
    #[arg(value_name = "SECRET_FILE")]
    pub secret: PathBuf,
}

/// `tsem run --unseal`: flattened into `tsem run`'s arguments.
#[derive(clap::Args)]
pub struct UnsealArgs {
    /// Unseal this blob (from `tsem seal`) when the run ends, if it ended in exactly the sealed
    /// model's state on this platform; needs --enforce, --model, --tpm and --secret-out.
    #[arg(
        long,
        value_name = "BLOB",
        requires_all = ["enforce", "tpm", "secret_out"],
        conflicts_with = "attest"
    )]
    pub unseal: Option<PathBuf>,
    /// Write the unsealed secret here (mode 0600, a new file); nothing is written when the run
    /// cannot unseal.
    #[arg(long, value_name = "FILE", requires = "unseal")]
    pub secret_out: Option<PathBuf>,
}

/// A sealed run, prepared before the workload starts.
pub struct Unsealer {
    tpm: HelperTpm,
    blob: Sealed,
    blob_path: PathBuf,
    out: PathBuf,
    /// The platform's hardware aggregate (hex), to seed the namespace with.
    pub aggregate: String,
}

fn pcr_values(tpm: &mut HelperTpm, pcrs: &[u32]) -> anyhow::Result<Vec<(u32, [u8; 32])>> {
    Ok(tsem_attest::QuoteDevice::read_pcrs(tpm, pcrs)?)
}

pub fn seal(a: SealArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.pcr > 23 {
        return crate::usage(format!("--pcr {}: PCRs are 0 to 23", a.pcr));
    }
    if a.pcr < 8 {
        return crate::usage(format!(
            "--pcr {}: PCRs 0-7 are the platform's boot chain; use 23, 16 or 8-15",
            a.pcr
        ));
    }
    let secret =
        std::fs::read(&a.secret).with_context(|| format!("{}: cannot read", a.secret.display()))?;
    if secret.is_empty() || secret.len() > 128 {
        anyhow::bail!(
            "{}: {} bytes; a TPM seals 1 to 128 (seal a key that encrypts a larger secret)",
            a.secret.display(),
            secret.len()
        );
    }
    let model = crate::replay::read_model(&a.model)?;
    let expected = tsem_attest::ExpectedModel::from_model(&model, a.digest)
        .with_context(|| format!("{}", a.model.display()))?;
    let mut tpm = HelperTpm::new(&a.tpm, tsem_attest::AkAlg::default())?;
    let platform = pcr_values(&mut tpm, &[0, 1, 2, 3, 4, 5, 6, 7])?;
    let aggregate = tsem_attest::hardware_aggregate(&mut tpm, a.digest)?;
    let state = expected.state_with(&aggregate, &[]);
    let predicted = sealed::predict_pcr(&state);
    let list = |v: &[(u32, [u8; 32])]| v.iter().map(|p| to_hex(&p.1)).collect::<Vec<_>>();
    let out = tpm.call_with_input(
        &[
            "seal".into(),
            "--tcti".into(),
            a.tpm.clone(),
            "--pcr".into(),
            a.pcr.to_string(),
            "--platform".into(),
            list(&platform).join(","),
            "--value".into(),
            to_hex(&predicted),
        ],
        Some(&secret),
    )?;
    #[derive(serde::Deserialize)]
    struct Object {
        public: String,
        private: String,
    }
    let o: Object = serde_json::from_str(&out).context("tsem-tpm seal output")?;
    let blob = Sealed {
        format: sealed::FORMAT.into(),
        model: tsem_attest::model_digest(&model).to_hex(),
        hash: a.digest.to_string(),
        state: state.to_hex(),
        pcr: a.pcr,
        pcr_value: to_hex(&predicted),
        platform: platform.iter().map(|p| (p.0, to_hex(&p.1))).collect(),
        public: o.public,
        private: o.private,
    };
    let text = serde_json::to_string_pretty(&blob)? + "\n";
    std::fs::write(&a.output, text)
        .with_context(|| format!("{}: cannot write", a.output.display()))?;
    eprintln!(
        "tsem: sealed {} byte(s) to model sha256:{} on this platform: PCR {} must read {} after the \
         run (state {})",
        secret.len(),
        blob.model,
        a.pcr,
        blob.pcr_value,
        blob.state
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Before the workload starts: read the blob, check the platform is the one sealed to, and
/// start the PCR from zero. Any failure stops the run before the workload runs.
pub fn prepare(
    u: &UnsealArgs,
    attest: &crate::attest_cmd::RunAttestArgs,
    model: Option<&Path>,
    digest: HashAlg,
) -> anyhow::Result<Option<Unsealer>> {
    if attest.tpm.is_some() && attest.attest.is_none() && u.unseal.is_none() {
        return crate::usage("--tpm needs --attest or --unseal");
    }
    let (Some(path), Some(out), Some(tcti), Some(model)) =
        (&u.unseal, &u.secret_out, attest.tpm.as_deref(), model)
    else {
        return Ok(None);
    };
    let text = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let blob = Sealed::from_json(&path.display().to_string(), &text)?;
    let m = crate::replay::read_model(model)?;
    let digest_hex = tsem_attest::model_digest(&m).to_hex();
    if !digest_hex.eq_ignore_ascii_case(&blob.model) {
        anyhow::bail!(
            "{}: sealed to model sha256:{}, but --model {} is sha256:{digest_hex}",
            path.display(),
            blob.model,
            model.display()
        );
    }
    if blob.hash != digest.to_string() {
        anyhow::bail!(
            "{}: sealed for --digest {}, the run uses {digest}",
            path.display(),
            blob.hash
        );
    }
    if out.exists() {
        anyhow::bail!(
            "{}: --secret-out exists; refusing to overwrite it",
            out.display()
        );
    }
    let mut tpm = HelperTpm::new(tcti, tsem_attest::AkAlg::default())?;
    let platform = pcr_values(&mut tpm, &[0, 1, 2, 3, 4, 5, 6, 7])?;
    let sealed_platform = blob.platform_values().map_err(anyhow::Error::msg)?;
    if platform != sealed_platform {
        anyhow::bail!(
            "{}: this platform's PCRs 0-7 are not the ones sealed to (another machine, or another \
             boot chain): the run could not unseal",
            path.display()
        );
    }
    let aggregate = tsem_attest::hardware_aggregate(&mut tpm, digest)?.to_hex();
    let pcr = blob.pcr;
    if sealed::resettable(pcr) {
        tpm.call(&[
            "reset".into(),
            "--tcti".into(),
            tcti.into(),
            "--pcr".into(),
            pcr.to_string(),
        ])?;
    } else if pcr_values(&mut tpm, &[pcr])?.first().map(|p| p.1) != Some([0u8; 32]) {
        anyhow::bail!(
            "PCR {pcr} was extended since boot: a sealed run needs it at zero when it starts (seal \
             to PCR 23, which tsem resets for each run)"
        );
    }
    Ok(Some(Unsealer {
        tpm,
        blob,
        blob_path: path.clone(),
        out: out.clone(),
        aggregate,
    }))
}

/// When the workload has ended: extend its state, ask the TPM to unseal, close the PCR. The
/// secret is written only if the TPM released it; otherwise the reason is the error.
pub fn finish(
    mut u: Unsealer,
    ns: &tsem_core::namespace::Namespace,
    lost: u64,
) -> anyhow::Result<()> {
    let tcti = u.tpm.tcti.clone();
    let pcr = u.blob.pcr.to_string();
    let state = ns.state();
    let extend = |tpm: &HelperTpm, value: &[u8; 32]| {
        tpm.call(&[
            "extend".into(),
            "--tcti".into(),
            tcti.clone(),
            "--pcr".into(),
            pcr.clone(),
            "--value".into(),
            to_hex(value),
        ])
    };
    if lost > 0 {
        // The state of a run whose sensor lost events is not the state of what ran.
        let closed = extend(&u.tpm, &sealed::close_value());
        closed?;
        anyhow::bail!(
            "cannot unseal {}: the sensor lost {lost} event(s), so the run's state does not \
             describe it",
            u.blob_path.display()
        );
    }
    extend(&u.tpm, &tsem_attest::pcr_value_of_state(&state))?;
    let now = pcr_values(&mut u.tpm, &[u.blob.pcr])?
        .first()
        .map(|p| to_hex(&p.1))
        .unwrap_or_default();
    let res = u.tpm.call(&[
        "unseal".into(),
        "--tcti".into(),
        tcti.clone(),
        "--pcr".into(),
        pcr.clone(),
        "--public".into(),
        u.blob.public.clone(),
        "--private".into(),
        u.blob.private.clone(),
    ]);
    // Whatever happened, the policy must not hold after the run.
    let closed = extend(&u.tpm, &sealed::close_value());
    let secret = match res {
        Ok(out) => out,
        Err(e) => {
            anyhow::bail!(
                "cannot unseal {}: the run ended in state {state} ({} forensic event(s)), PCR {} \
                 reads {now}; sealed to state {} (PCR {}); the TPM said: {e}",
                u.blob_path.display(),
                ns.forensics_events(),
                u.blob.pcr,
                u.blob.state,
                u.blob.pcr_value
            );
        }
    };
    closed?;
    #[derive(serde::Deserialize)]
    struct Released {
        secret: String,
    }
    let r: Released = serde_json::from_str(&secret).context("tsem-tpm unseal output")?;
    let bytes = from_hex("secret", &r.secret)?;
    write_secret(&u.out, &bytes)?;
    eprintln!(
        "tsem: unsealed {} to {}: the run ended in the sealed model's state {state} (PCR {} reads \
         {now})",
        u.blob_path.display(),
        u.out.display(),
        u.blob.pcr
    );
    Ok(())
}

fn write_secret(p: &Path, b: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .with_context(|| format!("{}: cannot create", p.display()))?;
    f.write_all(b)
        .with_context(|| format!("{}: cannot write", p.display()))
}
