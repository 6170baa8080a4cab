//! `tsem attest` and `tsem verify`: attestations of a modeled trajectory and their verification.
//!
//! Exit status of `verify`: 0 verified (one-line verdict on stdout), 3 rejected (one line
//! `rejected: <reason>` on stdout), 1 for errors that prevent a verdict (unreadable model or key).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use tsem_attest::{
    AkKey, Attestation, Context, ExpectedModel, Identity, Policy, PublicKey, Rejection, Signer,
};
use tsem_core::hash::{Digest, HashAlg};

use crate::replay::{StreamStats, model_stream, namespace_for, open_input, read_model};

/// Exit status for a rejected attestation.
const REJECTED: u8 = 3;

/// Attest the state of a modeled trajectory.
#[derive(clap::Args)]
pub struct AttestArgs {
    /// The verifier's fresh nonce (hex, 8 to 64 bytes).
    #[arg(long, value_name = "HEX", value_parser = crate::nonce_arg,
          required_unless_present = "verifier", conflicts_with = "verifier")]
    pub nonce: Option<String>,
    /// Fetch the nonce from this verifier (http[s]://HOST:PORT) and post the attestation to it, as
    /// the enrolled --workload; exit 3 unless its verdict is affirming or warning.
    #[arg(long, value_name = "URL", requires = "workload")]
    pub verifier: Option<String>,
    /// The CA certificate (PEM) an https --verifier's certificate must chain to.
    #[arg(long, value_name = "F", requires = "verifier")]
    pub verifier_ca: Option<PathBuf>,
    /// Ed25519 private key (PKCS#8 PEM, from `tsem keygen`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Also quote with a TPM at this TCTI (e.g. `swtpm:host=127.0.0.1,port=2321`,
    /// `device:/dev/tpmrm0`); the aggregate then comes from the TPM's PCRs 0-7.
    #[arg(long, value_name = "TCTI")]
    pub tpm: Option<String>,
    /// How the TPM quotes, with --tpm.
    #[command(flatten)]
    pub quote: QuoteArgs,
    /// Load this model, seal and enforce it before modeling the trajectory.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// The namespace's hash function and coefficient layout.
    #[command(flatten)]
    pub ns: crate::replay::NsArgs,
    /// Hardware aggregate (hex); default: the model's, or zero. Not with --tpm.
    #[arg(long, value_name = "HEX", conflicts_with = "tpm")]
    pub aggregate: Option<String>,
    /// Workload identity; default: the trajectory file names.
    #[arg(long, value_name = "NAME")]
    pub workload: Option<String>,
    /// Events the sensor lost (for testing verifiers; a trajectory replay loses nothing).
    #[arg(long, value_name = "N", default_value_t = 0, hide = true)]
    pub lost_events: u64,
    /// Where to write the attestation (JSON); optional with --verifier.
    #[arg(short, long, value_name = "OUT", required_unless_present = "verifier")]
    pub output: Option<PathBuf>,
    /// Trajectory or export files, one JSON record per line (`-` for stdin).
    #[arg(required = true, value_name = "TRAJECTORY")]
    pub files: Vec<PathBuf>,
}

/// Verify an attestation.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The model the workload must be in.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// This verifier's nonce (hex), as given to the attester.
    #[arg(long, value_name = "HEX", value_parser = crate::nonce_arg)]
    pub nonce: String,
    /// TCG event log: the attested aggregate must be its PCR 0-7 aggregate.
    #[arg(long, value_name = "FILE")]
    pub eventlog: Option<PathBuf>,
    /// Trusted Ed25519 public key (SPKI PEM, KEY.pub): check the signature.
    #[arg(long, value_name = "PUB", required_unless_present = "ak")]
    pub key: Option<PathBuf>,
    /// Trusted TPM attestation key (P-256 SPKI PEM): check the quote.
    #[arg(long, value_name = "PUB")]
    pub ak: Option<PathBuf>,
    /// PCR the state must be quoted in.
    #[arg(long, value_name = "N", default_value_t = tsem_attest::DEFAULT_PCR)]
    pub pcr: u32,
    /// Most forensic events tolerated.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_forensics: u64,
    /// Require the workload to have run with this deviation policy (`tsem run --on-forensic`;
    /// an attestation that names none ran under `untrust`).
    #[arg(long, value_name = "POLICY")]
    pub require_on_forensic: Option<tsem_core::policy::Policy>,
    /// Reject attestations older than this many seconds.
    #[arg(long, value_name = "SECS")]
    pub max_age: Option<u64>,
    /// Hash function the namespace must use.
    #[arg(long, value_name = "NAME", default_value = "sha256")]
    pub digest: HashAlg,
    /// Also write the result as an IETF RATS EAR (EAT JSON) here.
    #[arg(long, value_name = "OUT")]
    pub ear: Option<PathBuf>,
    /// Also write the EAR as a JWT (compact JWS, EdDSA) here, signed with --ear-key.
    #[arg(long, value_name = "OUT", requires = "ear_key")]
    pub ear_jwt: Option<PathBuf>,
    /// The verifier's Ed25519 private key (PKCS#8 PEM) for --ear-jwt.
    #[arg(long, value_name = "KEY", requires = "ear_jwt")]
    pub ear_key: Option<PathBuf>,
    /// After verifying, verify the attestation N more times and print the rate as JSON.
    #[arg(long, value_name = "N", hide = true)]
    pub bench: Option<usize>,
    /// The attestation (JSON).
    #[arg(value_name = "ATTESTATION")]
    pub attestation: PathBuf,
}

fn read_text(p: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("{}: cannot read {what}", p.display()))
}

/// `tsem run --attest OUT --nonce HEX --key KEY [--tpm TCTI] [--pcr N]`: attest the live run's
/// namespace when the workload ends.
#[derive(clap::Args)]
pub struct RunAttestArgs {
    /// Attest the run's namespace to OUT (JSON) when the workload ends.
    #[arg(long, value_name = "OUT", requires_all = ["nonce", "key"])]
    pub attest: Option<PathBuf>,
    /// The verifier's fresh nonce (hex, 8 to 64 bytes), with --attest.
    #[arg(long, value_name = "HEX", requires = "attest", value_parser = crate::nonce_arg)]
    pub nonce: Option<String>,
    /// Ed25519 private key (from `tsem keygen`), with --attest or --verifier.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Attest to a fleet verifier when the workload ends (with --workload and --key): a nonce
    /// from it, the attestation and the forensic descriptions posted; its verdict printed.
    #[arg(long, value_name = "URL", requires_all = ["workload", "key"], conflicts_with = "attest")]
    pub verifier: Option<String>,
    /// The CA certificate (PEM) an https verifier's certificate must chain to.
    #[arg(long, value_name = "F", requires = "verifier")]
    pub verifier_ca: Option<PathBuf>,
    /// The workload's name at the verifier (as enrolled), with --verifier.
    #[arg(long, value_name = "NAME", requires = "verifier")]
    pub workload: Option<String>,
    /// With --verifier, also attest every SECONDS while the workload runs (each time the live
    /// state and lost-event count and the forensics so far, for the nonce the verifier's previous
    /// answer carried, else a fresh one), not only at the end.
    #[arg(
        long,
        value_name = "SECONDS",
        requires = "verifier",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub every: Option<u64>,
    /// The TPM (TCTI), with --attest (also quote; the aggregate then comes from its PCRs 0-7)
    /// or --unseal.
    #[arg(long, value_name = "TCTI")]
    pub tpm: Option<String>,
    /// How the TPM quotes, with --tpm.
    #[command(flatten)]
    pub quote: QuoteArgs,
}

/// The TPM quote options of `tsem attest` and `tsem run --attest`, with --tpm.
#[derive(clap::Args)]
pub struct QuoteArgs {
    /// PCR to extend the state into (SHA-256 bank), with --tpm.
    #[arg(long, value_name = "N", default_value_t = tsem_attest::DEFAULT_PCR, requires = "tpm")]
    pub pcr: u32,
    /// Kind of TPM attestation key: ecc (P-256, ECDSA) or rsa (2048, RSASSA).
    #[arg(long, value_name = "ALG", default_value = "ecc", requires = "tpm")]
    pub ak_alg: tsem_attest::AkAlg,
    /// Write the TPM attestation key's public key (SPKI PEM) here, for the verifier's `--ak`.
    #[arg(long, value_name = "FILE", requires = "tpm")]
    pub ak_out: Option<PathBuf>,
}

/// What an attestation needs, opened before the workload starts so that a bad key, nonce or TPM
/// fails before anything runs, and so that the TPM's aggregate seeds the namespace.
pub struct Prepared {
    signer: Signer,
    nonce: Vec<u8>,
    tpm: Option<HelperTpm>,
    pcr: u32,
    out: Option<PathBuf>,
    ak_out: Option<PathBuf>,
    /// The hardware aggregate read from the TPM (hex), to seed the namespace with.
    pub aggregate: Option<String>,
    /// Post to a fleet verifier instead of writing a file.
    fleet: Option<Fleet>,
}

/// Open the key, nonce and TPM for `tsem run --attest`; `None` without `--attest`.
pub fn prepare(a: &RunAttestArgs, digest: HashAlg) -> anyhow::Result<Option<Prepared>> {
    if let (Some(url), Some(workload), Some(key)) = (&a.verifier, &a.workload, &a.key) {
        return prepare_fleet(a, url, workload, key, digest).map(Some);
    }
    if a.key.is_some() && a.attest.is_none() {
        return crate::usage("--key needs --attest or --verifier");
    }
    let (Some(out), Some(nonce), Some(key)) = (&a.attest, &a.nonce, &a.key) else {
        return Ok(None);
    };
    let parts = Parts {
        out: Some(out),
        nonce,
        key,
        tpm: a.tpm.as_deref(),
        quote: &a.quote,
    };
    open_attester(&parts, digest).map(Some)
}

/// `tsem run --verifier`: check now that the verifier answers and knows the workload, so a typo
/// fails before anything runs; the first nonce is fetched when the first attestation is made (a
/// run may outlast a nonce's lifetime), the later ones come with the verifier's answers.
fn prepare_fleet(
    a: &RunAttestArgs,
    url: &str,
    workload: &str,
    key: &Path,
    digest: HashAlg,
) -> anyhow::Result<Prepared> {
    let client = tsem_verifier::Client::with_ca(url, None, a.verifier_ca.as_deref())?;
    client
        .call::<(), tsem_verifier::protocol::Status>(
            "GET",
            &format!("/v1/workloads/{workload}"),
            None,
        )
        .with_context(|| format!("--verifier {url} --workload {workload}"))?;
    // Replaced by the verifier's nonce in each attestation.
    let placeholder = "00".repeat(32);
    let parts = Parts {
        out: None,
        nonce: &placeholder,
        key,
        tpm: a.tpm.as_deref(),
        quote: &a.quote,
    };
    let mut p = open_attester(&parts, digest)?;
    p.fleet = Some(Fleet {
        session: tsem_verifier::Session::new(client, workload),
    });
    Ok(p)
}

/// Where `tsem run --verifier` posts: one connection, and the nonce the last answer carried.
pub struct Fleet {
    session: tsem_verifier::Session,
}

/// The attestation options shared by `tsem attest` and `tsem run --attest`.
struct Parts<'a> {
    out: Option<&'a Path>,
    nonce: &'a str,
    key: &'a Path,
    tpm: Option<&'a str>,
    quote: &'a QuoteArgs,
}

fn open_attester(p: &Parts<'_>, digest: HashAlg) -> anyhow::Result<Prepared> {
    let nonce = tsem_attest::parse_nonce(p.nonce).context("--nonce")?;
    let signer = Signer::from_pem(&read_text(p.key, "key")?)
        .with_context(|| format!("{}", p.key.display()))?;
    let mut tpm = p
        .tpm
        .map(|tcti| HelperTpm::new(tcti, p.quote.ak_alg))
        .transpose()?;
    let aggregate = tpm
        .as_mut()
        .map(|t| tsem_attest::hardware_aggregate(t, digest))
        .transpose()?
        .map(|d| d.to_hex());
    Ok(Prepared {
        signer,
        nonce,
        tpm,
        pcr: p.quote.pcr,
        out: p.out.map(Path::to_path_buf),
        ak_out: p.quote.ak_out.clone(),
        aggregate,
        fleet: None,
    })
}

/// A TPM reached through the `tsem-tpm` helper, so that `tsem` need not load tpm2-tss and
/// libcrypto (see `src/bin/tsem-tpm.rs`).
pub(crate) struct HelperTpm {
    exe: PathBuf,
    pub(crate) tcti: String,
    pub(crate) ak_alg: tsem_attest::AkAlg,
}

impl HelperTpm {
    pub(crate) fn new(tcti: &str, ak_alg: tsem_attest::AkAlg) -> anyhow::Result<Self> {
        let beside = std::env::current_exe()
            .ok()
            .map(|e| e.with_file_name("tsem-tpm"))
            .filter(|p| p.is_file());
        let exe = beside
            .or_else(|| tsem_sensor::supervisor::find_program(std::ffi::OsStr::new("tsem-tpm")))
            .ok_or_else(|| {
                anyhow::anyhow!("--tpm needs the tsem-tpm helper, next to tsem or in PATH")
            })?;
        Ok(Self {
            exe,
            tcti: tcti.to_string(),
            ak_alg,
        })
    }

    pub(crate) fn call(&self, args: &[String]) -> Result<String, tsem_attest::AttestationError> {
        self.call_with_input(args, None)
    }

    /// [`HelperTpm::call`] with `input` on the helper's standard input (secrets never go on a
    /// command line, which every user can read in /proc).
    pub(crate) fn call_with_input(
        &self,
        args: &[String],
        input: Option<&[u8]>,
    ) -> Result<String, tsem_attest::AttestationError> {
        use std::io::Write as _;
        let device = |m: String| tsem_attest::AttestationError::Device(m);
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(args)
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if std::env::var_os("TSS2_LOG").is_none() {
            // tpm2-tss logs its own view of every failure on stderr; the helper's one-line error
            // says it. TSS2_LOG set by the user is passed through, and so are the logs.
            cmd.env("TSS2_LOG", "all+none");
        }
        let cannot = |e: std::io::Error| device(format!("cannot run {}: {e}", self.exe.display()));
        let mut child = cmd.spawn().map_err(cannot)?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).map_err(cannot)?;
        }
        let out = child.wait_with_output().map_err(cannot)?;
        let err = String::from_utf8_lossy(&out.stderr);
        // tpm2-tss logs go to stderr as they would in-process; the helper's own error is its
        // last line.
        let mut message = None;
        for line in err.lines() {
            match line.strip_prefix("tsem-tpm: ") {
                Some(m) => message = Some(m.to_string()),
                None => eprintln!("{line}"),
            }
        }
        if !out.status.success() {
            return Err(device(
                message.unwrap_or_else(|| format!("tsem-tpm failed ({})", out.status)),
            ));
        }
        String::from_utf8(out.stdout).map_err(|_| device("tsem-tpm wrote non-UTF-8".into()))
    }
}

impl tsem_attest::QuoteDevice for HelperTpm {
    fn read_pcrs(
        &mut self,
        pcrs: &[u32],
    ) -> Result<Vec<(u32, [u8; 32])>, tsem_attest::AttestationError> {
        let list: Vec<String> = pcrs.iter().map(u32::to_string).collect();
        let out = self.call(&[
            "pcrs".into(),
            "--tcti".into(),
            self.tcti.clone(),
            "--pcr".into(),
            list.join(","),
        ])?;
        let device = |m: String| tsem_attest::AttestationError::Device(m);
        let v: Vec<(u32, String)> =
            serde_json::from_str(&out).map_err(|e| device(format!("tsem-tpm pcrs output: {e}")))?;
        v.into_iter()
            .map(|(i, h)| {
                let b =
                    tsem_attest::claims::from_hex("pcr", &h).map_err(|e| device(e.to_string()))?;
                let a: [u8; 32] = b
                    .try_into()
                    .map_err(|_| device(format!("PCR {i}: not a SHA-256 value")))?;
                Ok((i, a))
            })
            .collect()
    }

    fn extend_and_quote(
        &mut self,
        pcr: u32,
        value: &[u8; 32],
        qualifying: &[u8],
    ) -> Result<tsem_attest::TpmQuote, tsem_attest::AttestationError> {
        let alg = match self.ak_alg {
            tsem_attest::AkAlg::Ecc => "ecc",
            tsem_attest::AkAlg::Rsa => "rsa",
        };
        let out = self.call(&[
            "extend-quote".into(),
            "--tcti".into(),
            self.tcti.clone(),
            "--ak-alg".into(),
            alg.into(),
            "--pcr".into(),
            pcr.to_string(),
            "--value".into(),
            tsem_attest::claims::to_hex(value),
            "--qualifying".into(),
            tsem_attest::claims::to_hex(qualifying),
        ])?;
        serde_json::from_str(&out).map_err(|e| {
            tsem_attest::AttestationError::Device(format!("tsem-tpm quote output: {e}"))
        })
    }
}

/// Attest a finished run's namespace and write the attestation (if an output was given), or
/// post it to the fleet verifier (`tsem run --verifier`) and print its verdict.
pub fn finish(
    mut p: Prepared,
    ns: &tsem_core::namespace::Namespace,
    model: Option<&tsem_format::ModelFile>,
    lost_events: u64,
    workload: String,
) -> anyhow::Result<Attestation> {
    let model = model.map(tsem_attest::model_digest);
    let Some(mut fleet) = p.fleet.take() else {
        let nonce = std::mem::take(&mut p.nonce);
        let att = attest_finished(&mut p, ns, model, lost_events, workload, nonce)?;
        report_attested(&p, ns, &att);
        return Ok(att);
    };
    let workload = fleet.session.workload().to_string();
    let mut made = None;
    let a = fleet.session.attest(|nonce| {
        let att = attest_finished(
            &mut p,
            ns,
            model,
            lost_events,
            workload.clone(),
            nonce.to_vec(),
        )?;
        made = Some(att.clone());
        Ok::<_, anyhow::Error>(tsem_verifier::protocol::Post {
            attestation: att,
            forensics: crate::verifier_cmd::descriptions(ns.forensics().iter()),
        })
    })?;
    let att = made.context("no attestation was made")?;
    report_attested(&p, ns, &att);
    if crate::verifier_cmd::print_verdict(&a) != ExitCode::SUCCESS {
        anyhow::bail!("the verifier did not affirm workload {workload:?} (its verdict is above)");
    }
    Ok(att)
}

/// The attestation of a finished run for `nonce`, its AK written where asked, and the
/// attestation written to the output file if there is one.
fn attest_finished(
    p: &mut Prepared,
    ns: &tsem_core::namespace::Namespace,
    model: Option<Digest>,
    lost_events: u64,
    workload: String,
    nonce: Vec<u8>,
) -> anyhow::Result<Attestation> {
    let cx = Context {
        nonce,
        lost_events,
        identity: Identity {
            host: tsem_attest::host_identity(),
            workload,
        },
        model,
        time: tsem_attest::now_unix(),
    };
    let att = match p.tpm.as_mut() {
        Some(t) => tsem_attest::attest_with_tpm(ns, &cx, &p.signer, t, p.pcr)?,
        None => tsem_attest::attest(ns, &cx, &p.signer)?,
    };
    if let (Some(path), Some(q)) = (&p.ak_out, &att.tpm) {
        std::fs::write(path, &q.ak_public)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    if let Some(out) = &p.out {
        std::fs::write(out, att.to_json())
            .with_context(|| format!("{}: cannot write", out.display()))?;
    }
    Ok(att)
}

fn report_attested(p: &Prepared, ns: &tsem_core::namespace::Namespace, att: &Attestation) {
    let dest = match &p.out {
        Some(out) => out.display().to_string(),
        None => "the verifier".to_string(),
    };
    eprintln!(
        "tsem: attested state {} ({} events, {} forensic, {}) to {}",
        ns.state(),
        ns.events(),
        ns.forensics_events(),
        if att.tpm.is_some() {
            format!("signed and quoted in PCR {}", p.pcr)
        } else {
            "signed".to_string()
        },
        dest
    );
}

/// One attestation of a live run to its fleet verifier (`tsem run --every`): a nonce (the one
/// the previous answer carried, else a fresh one), then what `observe` gives — taken after the
/// nonce was issued, so the state is never older than the challenge — attested and posted with
/// its forensic descriptions. The verifier's answer.
pub(crate) fn attest_live(
    p: &mut Prepared,
    model: Option<Digest>,
    mut observe: impl FnMut() -> anyhow::Result<crate::periodic::Live>,
) -> anyhow::Result<tsem_verifier::protocol::Appraisal> {
    let Prepared {
        fleet,
        tpm,
        signer,
        pcr,
        ..
    } = p;
    let Some(f) = fleet else {
        bail!("attesting while the workload runs needs --verifier");
    };
    let workload = f.session.workload().to_string();
    f.session.attest(|nonce| {
        let live = observe()?;
        let cx = Context {
            nonce: nonce.to_vec(),
            lost_events: live.lost_events,
            identity: Identity {
                host: tsem_attest::host_identity(),
                workload: workload.clone(),
            },
            model,
            time: tsem_attest::now_unix(),
        };
        let att = match tpm.as_mut() {
            Some(t) => tsem_attest::attest_observed_with_tpm(&live.observed, &cx, signer, t, *pcr)?,
            None => tsem_attest::attest_observed(&live.observed, &cx, signer)?,
        };
        Ok::<_, anyhow::Error>(tsem_verifier::protocol::Post {
            attestation: att,
            forensics: crate::verifier_cmd::descriptions(&live.forensics),
        })
    })
}

pub fn attest(a: AttestArgs) -> anyhow::Result<ExitCode> {
    let nonce = match (&a.verifier, &a.workload, &a.nonce) {
        (Some(url), Some(w), _) => {
            crate::verifier_cmd::fetch_nonce(url, a.verifier_ca.as_deref(), w)?
        }
        (_, _, Some(n)) => n.clone(),
        _ => return crate::usage("--nonce or --verifier with --workload is required"),
    };
    let parts = Parts {
        out: a.output.as_deref(),
        nonce: &nonce,
        key: &a.key,
        tpm: a.tpm.as_deref(),
        quote: &a.quote,
    };
    let prepared = open_attester(&parts, a.ns.digest)?;
    let aggregate = prepared.aggregate.clone().or(a.aggregate.clone());
    let mut ns = namespace_for(
        a.ns.digest,
        a.ns.mapping,
        a.model.as_deref(),
        aggregate.as_deref(),
    )?;
    let model = a.model.as_deref().map(read_model).transpose()?;
    if model.is_some() {
        ns.enforce();
    }
    let mut stats = StreamStats {
        namer: tsem_core::naming::Namer::new(
            crate::replay::rules_for(a.model.as_deref(), None)?,
            a.ns.digest,
            a.ns.mapping,
        ),
        ..StreamStats::default()
    };
    for f in &a.files {
        let mut input = open_input(f)?;
        model_stream(&mut ns, &f.display().to_string(), &mut input, &mut stats)?;
    }
    let workload = a.workload.clone().unwrap_or_else(|| {
        a.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let att = finish(
        prepared,
        &ns,
        model.as_ref(),
        a.lost_events,
        workload.clone(),
    )?;
    match &a.verifier {
        Some(url) => crate::verifier_cmd::post(url, a.verifier_ca.as_deref(), &workload, att, &ns),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The TSEM aggregate of a TCG event log: the namespace's hash over the SHA-256 PCRs 0-7 (SHA-1
/// for a TPM 1.2 log), as the kernel computes it (spec §4.1).
fn eventlog_aggregate(p: &Path, alg: HashAlg) -> anyhow::Result<Digest> {
    let bytes = std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
    let log = tsem_evidence::EventLog::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    let r = tsem_evidence::eventlog::replay(&log);
    // Where the log breaks the TCG spec, the aggregate rests on how it was replayed: say so.
    crate::evidence::warn_eventlog(p, &r.warnings);
    let bank = if r.banks.contains(&HashAlg::Sha256) {
        HashAlg::Sha256
    } else if r.banks.contains(&HashAlg::Sha1) {
        HashAlg::Sha1
    } else {
        bail!(
            "{}: the log has neither a sha256 nor a sha1 bank",
            p.display()
        );
    };
    Ok(tsem_core::state::hardware_aggregate(
        alg,
        &r.pcr_values(bank, 8),
    ))
}

fn verdict_line(v: &tsem_attest::Verified, model: &Path, quoted_pcr: u32) -> String {
    let mut s = format!(
        "verified: state {} is {}'s; {} events, {} forensic, 0 lost; {}",
        v.state,
        model.display(),
        v.events,
        v.forensics_events,
        match (v.signed, v.quoted) {
            (true, Some(_)) => format!("Ed25519 signature and TPM quote (PCR {quoted_pcr}) valid"),
            (false, Some(_)) => format!("TPM quote (PCR {quoted_pcr}) valid"),
            _ => "Ed25519 signature valid".to_string(),
        }
    );
    // Name exactly the aggregate checks made, never one that was not.
    if v.aggregate_eventlog {
        s.push_str("; aggregate matches the event log");
    }
    if v.quoted.is_some() {
        s.push_str("; aggregate matches the quoted PCRs 0-7");
    }
    for w in &v.warnings {
        s.push_str("; warning: ");
        s.push_str(w);
    }
    s
}

pub fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let nonce = tsem_attest::parse_nonce(&a.nonce).context("--nonce")?;
    let model_file = read_model(&a.model)?;
    let model = ExpectedModel::from_model(&model_file, a.digest)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.model.display()))?;
    let mut policy = Policy::new(nonce);
    policy.pcr = a.pcr;
    policy.max_forensics = a.max_forensics;
    policy.on_forensic = a.require_on_forensic;
    policy.max_age = a.max_age;
    policy.now = tsem_attest::now_unix();
    if let Some(p) = &a.key {
        policy.key = Some(
            PublicKey::from_pem(&read_text(p, "public key")?)
                .with_context(|| format!("{}", p.display()))?,
        );
    }
    if let Some(p) = &a.ak {
        policy.ak = Some(
            AkKey::from_pem(&read_text(p, "AK public key")?)
                .with_context(|| format!("{}", p.display()))?,
        );
    }
    if let Some(p) = &a.eventlog {
        policy.aggregate = Some(eventlog_aggregate(p, a.digest)?);
    }
    let text = read_text(&a.attestation, "attestation")?;
    let parsed = Attestation::from_json(&text).map_err(|e| Rejection::Malformed(e.to_string()));
    let outcome = parsed
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|att| tsem_attest::verify(att, &model, &policy));
    let line = match &outcome {
        Ok(v) => verdict_line(v, &a.model, a.pcr),
        Err(r) => format!("rejected: {r}"),
    };
    let ear = tsem_attest::ear::ear(
        &outcome,
        &policy.nonce,
        tsem_attest::now_unix(),
        &format!("tsem/model/sha256:{}", model.digest()),
        &line,
    );
    if let Some(p) = &a.ear {
        std::fs::write(p, format!("{ear:#}\n"))
            .with_context(|| format!("{}: cannot write", p.display()))?;
    }
    if let (Some(p), Some(k)) = (&a.ear_jwt, &a.ear_key) {
        let signer = Signer::from_pem(&read_text(k, "EAR signing key")?)
            .with_context(|| format!("{}", k.display()))?;
        std::fs::write(p, format!("{}\n", tsem_attest::ear::to_jwt(&ear, &signer)))
            .with_context(|| format!("{}: cannot write", p.display()))?;
    }
    println!("{line}");
    if outcome.is_err() {
        return Ok(ExitCode::from(REJECTED));
    }
    if let (Some(n), Ok(att)) = (a.bench, &parsed) {
        let t = std::time::Instant::now();
        for _ in 0..n {
            // Parse too: a verifier receives bytes, not a parsed attestation.
            let att2 = Attestation::from_json(&text)?;
            tsem_attest::verify(&att2, &model, &policy)?;
        }
        let s = t.elapsed().as_secs_f64();
        let _ = att;
        println!(
            "{}",
            serde_json::json!({
                "bench": "verify",
                "n": n,
                "seconds": s,
                "verifications_per_second": if s > 0.0 { n as f64 / s } else { 0.0 },
                "model_points": model.len(),
                "ed25519": policy.key.is_some(),
                "tpm_quote": policy.ak.is_some(),
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
