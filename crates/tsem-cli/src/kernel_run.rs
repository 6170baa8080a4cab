//! `tsem run` on a TSEM kernel (docs/kernel.md): the workload runs in a kernel modeling
//! namespace created through securityfs, modeled by the kernel (`--backend kernel`, the internal
//! TMA) or by tsem as the namespace's external modeling agent (`--backend kernel-external`).
//! The launch follows Quixote (spec §7.3): the child writes the namespace-creation command and
//! waits; tsem reads the namespace id, loads the model, seals or enforces, then releases it.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;
use tsem_core::namespace::{Config, Mode};
use tsem_core::policy::Policy;
use tsem_kernel::external::{ExportFile, ExternalTma, Setup, Step};
use tsem_kernel::launch::LaunchError;
use tsem_kernel::{Command, NsOptions, NsRef, SecurityFs};

use crate::run_cmd::RunArgs;

/// Where a run is modeled.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// The TSEM kernel when its securityfs exists and the run needs nothing only the sensor
    /// has; the userspace sensor otherwise.
    #[default]
    Auto,
    /// The userspace sensor (seccomp user notification and ptrace).
    Sensor,
    /// A TSEM kernel namespace modeled by the kernel (internal TMA).
    Kernel,
    /// A TSEM kernel namespace modeled by tsem as its external modeling agent.
    KernelExternal,
}

/// `nsref=` of the kernel namespace (spec §5.2): the user namespace its uids and gids are
/// translated into.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsRefArg {
    /// The initial user namespace (the kernel's default).
    Initial,
    /// The creator's (`quixote -u`).
    Current,
}

/// Options of the kernel namespace's creation command (docs/kernel.md); only the kernel
/// backends take them.
#[derive(clap::Args, Debug, Default)]
pub struct KernelArgs {
    /// Kernel backend: `nsref=` of the namespace, the user namespace its uids and gids are
    /// translated into (default: the kernel's, initial).
    #[arg(long, value_name = "WHOSE")]
    pub kernel_nsref: Option<NsRefArg>,
    /// Kernel backend: `cache=` of the namespace, the size of its magazines for atomic-context
    /// events (default: the kernel's, 32 internal, 128 external).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub kernel_cache: Option<u32>,
}

impl KernelArgs {
    /// The first kernel-only option given, if any.
    fn given(&self) -> Option<&'static str> {
        if self.kernel_nsref.is_some() {
            Some("--kernel-nsref")
        } else if self.kernel_cache.is_some() {
            Some("--kernel-cache")
        } else {
            None
        }
    }

    /// The creation command's options for a namespace hashing with `digest`.
    fn options(&self, digest: tsem_core::hash::HashAlg) -> NsOptions {
        NsOptions {
            nsref: self.kernel_nsref.map(|r| match r {
                NsRefArg::Initial => NsRef::Initial,
                NsRefArg::Current => NsRef::Current,
            }),
            digest: Some(digest),
            cache: self.kernel_cache,
        }
    }
}

/// What the kernel backend (`external`: tsem as its modeling agent) cannot do of the deviation
/// policy, or None.
fn policy_refused(policy: Policy, external: bool) -> Option<&'static str> {
    match (policy, external) {
        (Policy::Untrust, _) | (Policy::Kill | Policy::Restart, true) => None,
        (Policy::Deny, _) => Some(
            "--on-forensic deny (a TSEM kernel refuses an event only by making its task \
             untrusted for good)",
        ),
        (Policy::Kill, false) => Some(
            "--on-forensic kill with the kernel's own modeling agent (it answers every event \
             itself: tsem would learn of a deviation only after it; --backend kernel-external \
             can)",
        ),
        (Policy::Restart, false) => Some(
            "--on-forensic restart with the kernel's own modeling agent (it answers every \
             event itself: tsem would learn of a deviation only after it; --backend \
             kernel-external can)",
        ),
    }
}

/// What only the sensor does, or None when the kernel backend can run `a`.
fn sensor_only(a: &RunArgs, external: bool) -> Option<&'static str> {
    if let Some(why) = policy_refused(a.deviation.on_forensic, external) {
        return Some(why);
    }
    let l = &a.live;
    [
        (l.name.is_some(), "--name"),
        (l.export.is_some(), "--export"),
        (a.attestation.attest.is_some(), "--attest"),
        (a.attestation.verifier.is_some(), "--verifier"),
        (a.unseal.unseal.is_some(), "--unseal"),
        (a.learn && a.model.is_some(), "--learn --model"),
        (a.rules.is_some(), "--rules"),
        (a.observe.is_some(), "--observe"),
        (!a.keep_fd.is_empty(), "--keep-fd"),
        (
            a.mechanism_only.is_some() || a.backstop_only,
            "--mechanism-only",
        ),
        (a.digest_cache.is_some(), "--digest-cache"),
        (a.tma.tma.is_some(), "--tma"),
        (
            a.ns.mapping != tsem_core::map::Mapping::Model0,
            "--mapping other than model0",
        ),
    ]
    .into_iter()
    .find_map(|(used, what)| used.then_some(what))
}

/// Why a model made under naming rules (its `# tsem-rules:` line) needs the sensor: the kernel
/// hashes raw descriptions, and only the sensor applies the rules its points were made with.
fn model_with_rules(a: &RunArgs) -> anyhow::Result<Option<&'static str>> {
    let Some(p) = a.model.as_deref() else {
        return Ok(None);
    };
    let rules = crate::replay::rules_for(Some(p), None)?;
    Ok((!rules.is_empty()).then_some("a --model with naming rules (# tsem-rules:)"))
}

/// The kernel backend to use for `a`, if any.
pub fn select(a: &RunArgs) -> anyhow::Result<Option<(SecurityFs, bool)>> {
    let kernel_only = a.kernel.given();
    let external = match a.backend {
        Backend::Sensor => {
            if let Some(what) = kernel_only {
                return crate::usage(format!(
                    "{what} is an option of the kernel namespace: not with --backend sensor"
                ));
            }
            return Ok(None);
        }
        Backend::Auto => false,
        Backend::Kernel => false,
        Backend::KernelExternal => true,
    };
    let Some(fs) = SecurityFs::locate() else {
        // A kernel option asks for the kernel: never dropped in silence for the sensor.
        if a.backend == Backend::Auto && kernel_only.is_none() {
            return Ok(None);
        }
        bail!(
            "{}: no TSEM securityfs ({} or ${} does not hold a control file)",
            match (a.backend, kernel_only) {
                (Backend::Auto, Some(what)) => what,
                (_, _) if external => "--backend kernel-external",
                _ => "--backend kernel",
            },
            tsem_kernel::DEFAULT_ROOT,
            tsem_kernel::ROOT_ENV
        );
    };
    if let Some(what) = sensor_only(a, external).or(model_with_rules(a)?) {
        if a.backend == Backend::Auto && kernel_only.is_none() {
            eprintln!("tsem: note: a TSEM kernel is present but {what} needs the userspace sensor");
            return Ok(None);
        }
        bail!("{what} is not available with the kernel backend (docs/kernel.md)");
    }
    Ok(Some((fs, external)))
}

/// The command could not be executed: said as the sensor says it, with the shell's status (126
/// when it is not executable, 127 otherwise).
fn exec_failed(prog: &str, e: &std::io::Error) -> ExitCode {
    eprintln!("tsem: cannot execute {prog}: {e}");
    // EACCES and EPERM: found but not executable.
    let denied = e.kind() == std::io::ErrorKind::PermissionDenied;
    ExitCode::from(if denied { 126 } else { 127 })
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Run `a` on the kernel backend.
pub fn run(a: &RunArgs, fs: SecurityFs, external: bool) -> anyhow::Result<ExitCode> {
    // Looked up in PATH as the sensor does (execvp would say EACCES for a directory of PATH it
    // cannot search), before any namespace is made for it.
    if tsem_sensor::supervisor::find_program(&a.cmd[0]).is_none() {
        eprintln!("tsem: command not found: {}", a.cmd[0].to_string_lossy());
        return Ok(ExitCode::from(127));
    }
    let model = a
        .model
        .as_deref()
        .map(crate::replay::read_model)
        .transpose()?;
    let mode = match (&model, a.enforce, a.seal || a.model.is_some()) {
        (None, _, _) => Mode::Free,
        (Some(_), true, _) => Mode::Enforcing,
        (Some(_), false, _) => Mode::Sealed,
    };
    let opts = a.kernel.options(a.ns.digest);
    let create = if external {
        Command::External(opts)
    } else {
        Command::Internal(opts)
    };
    let before = fs.id().ok();
    let setup = || -> Result<(u64, Option<(ExportFile, ExternalTma)>), String> {
        let id = fs
            .new_id(before, std::time::Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let agent = if external {
            let export = ExportFile::open(&fs, id).map_err(|e| e.to_string())?;
            let tma = ExternalTma::with_setup(Setup {
                config: Config {
                    alg: a.ns.digest,
                    ..Config::default()
                },
                model: model.clone(),
                mode,
                policy: a.deviation.on_forensic,
            })
            .map_err(|e| format!("the model: {e}"))?;
            Some((export, tma))
        } else {
            if let Some(m) = &model {
                fs.load_model(m).map_err(|e| e.to_string())?;
                if !m
                    .lines
                    .iter()
                    .any(|l| matches!(l, tsem_format::model_file::Line::Seal))
                {
                    fs.command(&Command::Seal).map_err(|e| e.to_string())?;
                }
            }
            None
        };
        if mode == Mode::Enforcing {
            fs.command(&Command::Enforce).map_err(|e| e.to_string())?;
        }
        Ok((id, agent))
    };
    let (mut child, (mut id, agent)) =
        match tsem_kernel::launch::launch(&a.cmd, &fs, &create, setup) {
            Ok(started) => started,
            Err(LaunchError::Exec { prog, source }) => return Ok(exec_failed(&prog, &source)),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot run {}", a.cmd[0].to_string_lossy()));
            }
        };
    let mut v = match agent {
        Some((mut export, mut tma)) => {
            let (mut restarts, mut kills) = (0u32, 0u64);
            let status = loop {
                let (status, ended) = serve(&fs, &mut export, &mut tma, &mut child)?;
                match ended {
                    Some(Step::Restart) if restarts < a.deviation.max_restarts => {}
                    Some(Step::Restart) => {
                        kills += 1;
                        eprintln!(
                            "tsem: a forensic event after {restarts} restart(s): the workload \
                             stays killed (--max-restarts {})",
                            a.deviation.max_restarts
                        );
                        break status;
                    }
                    Some(Step::Kill) => {
                        kills += 1;
                        break status;
                    }
                    _ => break status,
                }
                kills += 1;
                restarts += 1;
                eprintln!(
                    "tsem: a forensic event killed the workload; starting it again in a new \
                     kernel namespace ({restarts} of at most {})",
                    a.deviation.max_restarts
                );
                tma.restarted();
                let (c, (nid, e)) = relaunch(a, &fs, &create, mode)?;
                (child, id, export) = (c, nid, e);
            };
            let mut v = crate::replay::summary(&tma.ns);
            v["backend"] = json!("kernel-external");
            v["on_forensic"] = json!(tma.ns.policy().name());
            v["restarts"] = json!(restarts);
            v["policy_kills"] = json!(kills);
            v["exit_status"] = json!(exit_code(status));
            v["tma"] = json!({
                "records": tma.counts.records,
                "trusted": tma.counts.trusted,
                "untrusted": tma.counts.untrusted,
                "async_events": tma.counts.async_events,
                "logs": tma.counts.logs,
            });
            outputs(a, &tma.ns)?;
            v
        }
        None => {
            let status = child.wait().context("waiting for the workload")?;
            let mut v = internal_summary(a, &fs, mode)?;
            v["exit_status"] = json!(exit_code(status));
            v
        }
    };
    v["namespace_id"] = json!(id);
    // What was asked of the kernel (nsref=, digest=, cache=), as written to `control`.
    v["create_command"] = json!(create.line().trim_end());
    if let Some(p) = &a.summary_json {
        crate::model_cmd::write_atomic(p, &(serde_json::to_string_pretty(&v)? + "\n"))?;
    }
    let code = v["exit_status"].as_i64().unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Start the workload again (`--on-forensic restart`) in a new external namespace, modeled by
/// the same agent.
fn relaunch(
    a: &RunArgs,
    fs: &SecurityFs,
    create: &Command,
    mode: Mode,
) -> anyhow::Result<(std::process::Child, (u64, ExportFile))> {
    let before = fs.id().ok();
    let setup = || -> Result<(u64, ExportFile), String> {
        let id = fs
            .new_id(before, std::time::Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let export = ExportFile::open(fs, id).map_err(|e| e.to_string())?;
        if mode == Mode::Enforcing {
            fs.command(&Command::Enforce).map_err(|e| e.to_string())?;
        }
        Ok((id, export))
    };
    tsem_kernel::launch::launch(&a.cmd, fs, create, setup)
        .with_context(|| format!("cannot run {} again", a.cmd[0].to_string_lossy()))
}

/// Model the export records until the workload has ended and nothing more is queued. Also
/// says whether the deviation policy ended it (`Step::Kill` or `Step::Restart`).
fn serve(
    fs: &SecurityFs,
    export: &mut ExportFile,
    tma: &mut ExternalTma,
    child: &mut std::process::Child,
) -> anyhow::Result<(std::process::ExitStatus, Option<Step>)> {
    let mut ended = None;
    let mut policy = None;
    loop {
        match export.next(50)? {
            Some(line) => {
                let step = match tma.handle(fs, export, &line) {
                    Ok(s) => s,
                    Err(e) => {
                        // A record the agent cannot model leaves its task unanswered: end
                        // the workload rather than let it run unmodeled (fail closed).
                        tsem_kernel::launch::kill_tree(child);
                        return Err(e.into());
                    }
                };
                match step {
                    Step::Done => {}
                    Step::EndWorkload => {
                        eprintln!(
                            "tsem: an out-of-model event nobody could refuse: ending the workload"
                        );
                        tsem_kernel::launch::kill_tree(child);
                    }
                    // The event was answered `untrusted` (refused when enforcing), and so is
                    // every later one of the dying workload.
                    Step::Kill | Step::Restart if policy.is_none() => {
                        eprintln!(
                            "tsem: --on-forensic {}: an out-of-model event: ending the workload",
                            tma.ns.policy().name()
                        );
                        tsem_kernel::launch::kill_tree(child);
                        policy = Some(step);
                    }
                    Step::Kill | Step::Restart => {}
                }
            }
            None => {
                if let Some(st) = ended {
                    return Ok((st, policy));
                }
                ended = child.try_wait()?;
            }
        }
    }
}

fn outputs(a: &RunArgs, ns: &tsem_core::namespace::Namespace) -> anyhow::Result<()> {
    if let Some(p) = &a.output {
        let m = tsem_format::ModelFile::from_namespace(ns);
        crate::model_cmd::write_atomic(p, &m.to_text())?;
    }
    if let Some(p) = &a.trajectory {
        crate::run_cmd::write_events(p, ns.trajectory().iter())?;
    }
    if let Some(p) = &a.forensics {
        crate::run_cmd::write_events(p, ns.forensics().iter())?;
    }
    Ok(())
}

/// The run as the kernel's internal TMA saw it, from its securityfs files.
fn internal_summary(a: &RunArgs, fs: &SecurityFs, mode: Mode) -> anyhow::Result<serde_json::Value> {
    let valid = fs.points(true)?;
    let forensic = fs.points(false)?;
    let count = |v: &[(tsem_core::Digest, u64)]| v.iter().map(|p| p.1).sum::<u64>();
    let aggregate = fs.aggregate()?;
    if let Some(p) = &a.output {
        let mut lines = vec![tsem_format::model_file::Line::Aggregate(aggregate)];
        lines.extend(
            valid
                .iter()
                .map(|(d, _)| tsem_format::model_file::Line::State(*d)),
        );
        lines.push(tsem_format::model_file::Line::Seal);
        lines.push(tsem_format::model_file::Line::End);
        let m = tsem_format::ModelFile { lines };
        crate::model_cmd::write_atomic(p, &m.to_text())?;
    }
    if let Some(p) = &a.trajectory {
        crate::run_cmd::write_events(p, &fs.trajectory()?)?;
    }
    if let Some(p) = &a.forensics {
        crate::run_cmd::write_events(p, &fs.forensics()?)?;
    }
    // No "events": the kernel exposes no event count (a loaded point's count does not say how
    // often the workload hit it); forensic points are never loaded, so theirs is exact.
    Ok(json!({
        "backend": "kernel",
        "points": valid.len() + forensic.len(),
        "forensics_events": count(&forensic),
        "forensics_points": forensic.len(),
        "state": fs.state()?.to_hex(),
        "measurement": fs.measurement()?.to_hex(),
        "aggregate": aggregate.to_hex(),
        "digest": a.ns.digest.name(),
        "mapping": "model0",
        "mode": format!("{mode:?}").to_lowercase(),
        "on_forensic": "untrust",
    }))
}
