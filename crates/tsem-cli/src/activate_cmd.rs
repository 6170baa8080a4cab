//! `tsem verifier activate`: the attester's half of TPM-rooted enrolment. It shows the verifier
//! the TPM's EK certificate and the AK's public area, lets the TPM recover the credential the
//! verifier made for them (TPM2_ActivateCredential, through the `tsem-tpm` helper), and returns it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tsem_verifier::Client;
use tsem_verifier::protocol::{ActivationAnswer, ActivationRequest};

use crate::attest_cmd::HelperTpm;

/// `tsem verifier activate`.
#[derive(clap::Args)]
pub struct ActivateArgs {
    /// The verifier (http://HOST:PORT or https://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The CA certificate (PEM) an https verifier's certificate must chain to.
    #[arg(long, value_name = "F")]
    pub ca_cert: Option<PathBuf>,
    /// The workload whose enrolled AK this TPM holds.
    #[arg(long, value_name = "NAME")]
    pub workload: String,
    /// The TPM (TCTI, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`).
    #[arg(long, value_name = "TCTI")]
    pub tpm: String,
    /// The AK: ecc (default) or rsa, as enrolled.
    #[arg(long, value_name = "ALG", default_value = "ecc")]
    pub ak_alg: tsem_attest::AkAlg,
    /// The endorsement key to activate with: rsa (2048, certificate in NV index 0x01c00002) or
    /// ecc (P-256, 0x01c0000a).
    #[arg(long, value_name = "ALG", default_value = "rsa")]
    pub ek_alg: tsem_attest::credential::EkAlg,
    /// Present this EK certificate (PEM or DER) instead of the one in the TPM's NV index
    /// (for TPMs whose vendor ships it separately).
    #[arg(long, value_name = "F")]
    pub ek_cert: Option<PathBuf>,
    /// Intermediate CA certificates (PEM, several in one file, or DER) between the EK
    /// certificate and the CA the verifier trusts, as the TPM's vendor ships them.
    #[arg(long, value_name = "F")]
    pub ek_chain: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct Identity {
    ek_cert: String,
    ak_public: String,
}

#[derive(serde::Deserialize)]
struct Recovered {
    credential: String,
}

fn alg_name(a: tsem_attest::AkAlg) -> &'static str {
    match a {
        tsem_attest::AkAlg::Ecc => "ecc",
        tsem_attest::AkAlg::Rsa => "rsa",
    }
}

pub fn run(a: ActivateArgs) -> anyhow::Result<ExitCode> {
    let tpm = HelperTpm::new(&a.tpm, a.ak_alg)?;
    let alg = alg_name(a.ak_alg).to_string();
    let ek_alg = match a.ek_alg {
        tsem_attest::credential::EkAlg::Rsa => "rsa",
        tsem_attest::credential::EkAlg::Ecc => "ecc",
    }
    .to_string();
    let mut args: Vec<String> = vec![
        "identity".into(),
        "--tcti".into(),
        a.tpm.clone(),
        "--ak-alg".into(),
        alg.clone(),
        "--ek-alg".into(),
        ek_alg.clone(),
    ];
    if a.ek_cert.is_some() {
        // A certificate from the vendor: the TPM's NV index may hold none.
        args.push("--no-ek-cert".into());
    }
    let out = tpm.call(&args)?;
    let mut id: Identity = serde_json::from_str(&out).context("tsem-tpm identity output")?;
    if let Some(f) = &a.ek_cert {
        let data = std::fs::read(f).with_context(|| format!("{}: cannot read", f.display()))?;
        let certs = tsem_attest::credential::parse_certs(&data)
            .with_context(|| format!("{}: --ek-cert", f.display()))?;
        let [cert] = certs.as_slice() else {
            anyhow::bail!(
                "{}: --ek-cert holds {} certificates, not one",
                f.display(),
                certs.len()
            );
        };
        id.ek_cert = tsem_attest::claims::to_hex(cert);
    }
    let ek_chain = match &a.ek_chain {
        None => Vec::new(),
        Some(f) => {
            let data = std::fs::read(f).with_context(|| format!("{}: cannot read", f.display()))?;
            tsem_attest::credential::parse_certs(&data)
                .with_context(|| format!("{}: --ek-chain", f.display()))?
                .iter()
                .map(|c| tsem_attest::claims::to_hex(c))
                .collect()
        }
    };
    let client = Client::with_ca(&a.url, None, a.ca_cert.as_deref())?;
    let ch = client.activation_challenge(
        &a.workload,
        &ActivationRequest {
            ek_cert: id.ek_cert,
            ak_public: id.ak_public,
            ek_chain,
        },
    )?;
    let out = tpm.call(&[
        "activate".into(),
        "--tcti".into(),
        a.tpm.clone(),
        "--ak-alg".into(),
        alg,
        "--ek-alg".into(),
        ek_alg,
        "--blob".into(),
        ch.credential_blob,
        "--secret".into(),
        ch.secret,
    ])?;
    let got: Recovered = serde_json::from_str(&out).context("tsem-tpm activate output")?;
    let r = client.activation_answer(
        &a.workload,
        &ch.challenge,
        &ActivationAnswer {
            credential: got.credential,
        },
    )?;
    println!(
        "activated {}: AK of enrolment {} is in the TPM whose EK certificate sha256:{} was issued by {}",
        a.workload,
        r["enrolment"],
        r["ek"].as_str().unwrap_or("?"),
        r["issuer"].as_str().unwrap_or("?"),
    );
    Ok(ExitCode::SUCCESS)
}
