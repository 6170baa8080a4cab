//! `tsem run`: run a workload under the userspace sensor inside its own modeling namespace, and
//! learn, seal or enforce a security model.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use tsem_core::namespace::{Mode, Namespace, Verdict as NsVerdict};
use tsem_format::model_file::Line;
use tsem_format::{RecordKind, write_event, write_event_json};
use tsem_sensor::supervisor::SpawnError;
use tsem_sensor::{EventHandler, RawEvent, SensorConfig, Verdict};

use crate::model_cmd::write_atomic;
use crate::replay::{namespace_for, summary};

/// Run a workload under a security model (learn, seal, enforce).
///
/// Without `--model` the workload's events are learned (free modeling); `-o` writes the model.
/// With `--model`, the model is loaded and sealed (`--seal`, the default): out-of-model events
/// are recorded as forensics and their tasks marked untrusted, but allowed. `--enforce` also
/// fails them with EPERM before they take effect, and denies every later security event of an
/// untrusted task and its descendants. The exit status is the workload's.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Learn a model (the default without --model; with --model, extend that model).
    #[arg(long, conflicts_with_all = ["seal", "enforce"])]
    pub learn: bool,
    /// Seal the loaded model: out-of-model events become forensics but are allowed.
    #[arg(long, conflicts_with = "enforce", requires = "model")]
    pub seal: bool,
    /// Enforce the loaded model: out-of-model events fail with EPERM.
    #[arg(long, requires = "model")]
    pub enforce: bool,
    /// The model to load.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Write the resulting model here.
    #[arg(short = 'o', long = "output", value_name = "MODEL_OUT")]
    pub output: Option<PathBuf>,
    /// Write the trajectory (descriptions of the valid points, one JSON line each).
    #[arg(long, value_name = "FILE")]
    pub trajectory: Option<PathBuf>,
    /// Write the forensics (descriptions of the out-of-model points).
    #[arg(long, value_name = "FILE")]
    pub forensics: Option<PathBuf>,
    /// Write a JSON summary (events, points, forensics_events, denied, lost_events, state, ...).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// The namespace's hash function and coefficient layout.
    #[command(flatten)]
    pub ns: crate::replay::NsArgs,
    /// Keep file digests across runs in FILE [default: $XDG_CACHE_HOME/tsem/digests-ALG or
    /// ~/.cache/tsem/digests-ALG], so unchanged executables and libraries are not hashed again.
    /// FILE and its directory must be writable by you alone; the workload is refused any access
    /// to them (docs/sensor.md, "Digest cache").
    #[arg(long, value_name = "FILE", conflicts_with = "no_digest_cache")]
    pub digest_cache: Option<PathBuf>,
    /// Hash every file afresh in every run (no digest cache).
    #[arg(long)]
    pub no_digest_cache: bool,
    /// Naming rules for learning without --model (`none` for plain TSEM model0); with --model,
    /// the model's own `# tsem-rules:` line decides (docs/learning.md).
    #[arg(long, value_name = "LIST", conflicts_with = "model")]
    pub rules: Option<String>,
    /// Learning: do not make the files the workload writes into pseudonyms.
    #[arg(long)]
    pub no_auto_pseudonyms: bool,
    /// Also model these hot events, as the kernel TSEM does, so models match kernel ones more
    /// closely (comma-separated: getattr, ioctl, fcntl, lock, socket, all). Each observed call costs a
    /// notification round trip.
    #[arg(long, value_name = "LIST", value_parser = tsem_sensor::Observe::parse)]
    pub observe: Option<tsem_sensor::Observe>,
    /// Let the workload inherit descriptor N (repeatable). Every other descriptor above 2 is
    /// closed when the workload starts, so nothing opened outside the model is readable in it.
    #[arg(long = "keep-fd", value_name = "N")]
    pub keep_fd: Vec<i32>,
    /// Kernel-exact digests: zero for tmpfs and memfd files even when they are executed or
    /// mapped executable (by default tsem hashes those, docs/sensor.md).
    #[arg(long)]
    pub kernel_exact_digests: bool,
    /// End when CMD exits, killing what it left running (default: wait for every descendant,
    /// which stays under the model until it ends).
    #[arg(long)]
    pub end_with_cmd: bool,
    /// Benchmarks only: intercept like a real run but model nothing (every call continues).
    /// Never combined with a model, an output or an attestation: it enforces nothing.
    #[arg(
        long,
        hide = true,
        conflicts_with_all = [
            "learn", "seal", "enforce", "model", "output", "trajectory", "forensics", "attest"
        ]
    )]
    pub mechanism_only: bool,
    /// Do not apply the kernel backstop (the Landlock ruleset compiled from the model's
    /// `landlock` lines) when enforcing.
    #[arg(long)]
    pub no_backstop: bool,
    /// Tests only: apply the model's kernel backstop but let every call through the sensor
    /// undecided, to show what the kernel alone refuses. Needs TSEM_TEST_BACKSTOP_ONLY (see
    /// docs/sensor.md); never combined with outputs or an attestation.
    #[arg(
        long,
        hide = true,
        requires = "model",
        conflicts_with_all = [
            "learn", "seal", "output", "trajectory", "forensics", "summary_json", "attest",
            "mechanism_only"
        ]
    )]
    pub backstop_only: bool,
    /// Live access: a control socket (--name), an export stream (--export).
    #[command(flatten)]
    pub live: crate::live::LiveArgs,
    /// Attest the namespace when the workload ends.
    #[command(flatten)]
    pub attestation: crate::attest_cmd::RunAttestArgs,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// A live progress line on a terminal.
struct Progress {
    start: Instant,
    last: Instant,
}

/// The modeling layer plugged into the sensor.
struct Modeler {
    ns: Namespace,
    /// The kernel backstop's access set being learned (learning runs only).
    learner: Option<tsem_sensor::backstop::learn::Learner>,
    /// Naming rules, outputs, the whole trajectory and the outcome in words.
    shaper: crate::learning::Shaper,
    /// Events the namespace could not model (counted as lost).
    errors: u64,
    progress: Option<Progress>,
    /// The control socket's mirror and the export stream, fed after each event.
    live: crate::live::Live,
}

impl Modeler {
    /// Redraw the progress line at most every 200 ms, or now if `force`.
    fn tick(&mut self, force: bool) {
        let Some(p) = &mut self.progress else { return };
        let now = Instant::now();
        if !force && now.duration_since(p.last).as_millis() < 200 {
            return;
        }
        p.last = now;
        let secs = now.duration_since(p.start).as_secs_f64().max(1e-3);
        let ns = &self.ns;
        eprint!(
            "\r\x1b[Ktsem: {} events ({:.0}/s), {} points, {} forensics, {} denied",
            ns.events(),
            ns.events() as f64 / secs,
            ns.points().len(),
            ns.forensics_events(),
            ns.denied()
        );
        let _ = std::io::stderr().flush();
    }
}

impl EventHandler for Modeler {
    fn on_event(&mut self, ev: &RawEvent) -> Verdict {
        let key = ev.tid as u64;
        if let Some(l) = &mut self.learner {
            l.observe(&ev.event);
        }
        // The sensor's untrusted mark follows forks; the namespace keys tasks by tid.
        if ev.untrusted {
            self.ns.mark_untrusted(key);
        }
        let event = self.shaper.shape(&ev.event, ev.tid);
        let v = match self.ns.model(key, &event) {
            Ok(o) => {
                let mode = self.ns.mode();
                self.shaper.outcome(&event, ev.tid, ev.untrusted, &o, mode);
                let v = match o.verdict {
                    NsVerdict::Allow => Verdict::allow(),
                    NsVerdict::Deny => Verdict::deny(libc_eperm()),
                };
                if o.forensic { v.tainting() } else { v }
            }
            Err(_) => {
                self.errors += 1;
                if self.ns.mode() == Mode::Enforcing {
                    Verdict::deny(libc_eperm())
                } else {
                    Verdict::allow()
                }
            }
        };
        self.live.after_event(&self.ns, &event, ev.untrusted);
        self.tick(false);
        v
    }

    fn on_exec(&mut self, ev: &tsem_sensor::ExecEvent) {
        self.shaper.executed(ev.tid, &ev.exe.path.pathname);
    }

    fn on_exit(&mut self, tid: i32) {
        self.ns.on_exit(tid as u64);
    }
}

const fn libc_eperm() -> i32 {
    1
}

fn write_events<'a>(
    path: &std::path::Path,
    events: impl IntoIterator<Item = &'a tsem_core::event::Event>,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for e in events {
        // Strict JSON whenever the strings allow it, so any JSON tool reads the file; a line with
        // a string that is not UTF-8 goes in the kernel's form, which tsem reads back exactly.
        if write_event_json(&mut out, e, RecordKind::Trajectory).is_err() {
            write_event(&mut out, e, RecordKind::Trajectory);
        }
        out.push(b'\n');
    }
    write_atomic(path, &out)
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    match a.cmd.first() {
        None => {
            return crate::usage(
                "no command: give the workload after `--`, e.g. `tsem run -- make test`",
            );
        }
        Some(c) if c.is_empty() => {
            return crate::usage("the command name is empty (`tsem run -- \"\"`)");
        }
        Some(_) => {}
    }
    // Fail on a bad model, key, nonce or TPM before anything runs.
    let attester = crate::attest_cmd::prepare(&a.attestation, a.ns.digest)?;
    let aggregate = attester.as_ref().and_then(|p| p.aggregate.clone());
    let mut ns = namespace_for(
        a.ns.digest,
        a.ns.mapping,
        a.model.as_deref(),
        aggregate.as_deref(),
    )?;
    let input = a
        .model
        .as_deref()
        .map(crate::replay::read_model)
        .transpose()?;
    let rules = match (&input, &a.rules) {
        (Some(m), _) => crate::learning::rules_of(m)?,
        (None, Some(list)) => {
            tsem_core::naming::RuleSet::parse(list).map_err(|e| anyhow::anyhow!("--rules: {e}"))?
        }
        (None, None) => tsem_core::naming::RuleSet::DEFAULT,
    };
    match (a.model.is_some(), a.learn, a.enforce) {
        (false, _, _) => {}
        // Extend a loaded model: namespace_for sealed it, so start again free from its points.
        (true, true, _) => {
            let path = a.model.as_deref().unwrap_or(std::path::Path::new(""));
            let mut m = crate::replay::read_model(path)?;
            m.lines.retain(|l| !matches!(l, Line::Seal));
            ns = namespace_for(a.ns.digest, a.ns.mapping, None, None)?;
            let agg = aggregate
                .as_deref()
                .map(|h| crate::replay::parse_digest_arg("aggregate", h, a.ns.digest))
                .transpose()?;
            m.load_into(&mut ns, agg)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        (true, false, true) => ns.enforce(),
        (true, false, false) => ns.seal(),
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| Progress {
        start: Instant::now(),
        last: Instant::now(),
    });
    let learning = ns.mode() == Mode::Free;
    let shaper = crate::learning::Shaper::new(
        rules,
        ns.config(),
        learning && !a.no_auto_pseudonyms,
        a.trajectory.is_some(),
    );
    let backstop = crate::backstop::plan(&a, input.as_ref())?;
    if let crate::backstop::Plan::NotRecorded = backstop {
        eprintln!("tsem: warning: no kernel backstop: the model has no landlock lines");
    }
    let live = crate::live::Live::start(&a.live, &ns, &a.cmd)?;
    let modeler = Modeler {
        ns,
        learner: crate::backstop::learner(&backstop),
        shaper,
        errors: 0,
        progress,
        live,
    };
    let cfg = SensorConfig {
        alg: a.ns.digest,
        mapping: a.ns.mapping,
        digest_cache: digest_store(&a)?,
        // The backstop-only switch reuses the mechanism-only path: every call continues.
        mechanism_only: a.mechanism_only || a.backstop_only,
        observe: a.observe.unwrap_or_default(),
        end_with_leader: a.end_with_cmd,
        backstop: match &backstop {
            crate::backstop::Plan::Apply(set) => Some(set.clone()),
            _ => None,
        },
        keep_fds: a.keep_fd.clone(),
        hash_pseudo_exec: !a.kernel_exact_digests,
        enforcing: a.enforce,
        ..SensorConfig::default()
    };
    let mut report = match tsem_sensor::run(&a.cmd, &cfg, modeler) {
        Ok(r) => r,
        Err(SpawnError::NotFound(p)) => bail!("command not found: {p}"),
        Err(e) => return Err(e).context("cannot run the workload"),
    };
    if report.handler.progress.is_some() {
        report.handler.tick(true);
        eprintln!();
    }
    let exports = report.handler.live.finish();
    let learned = crate::backstop::learned_set(&backstop, report.handler.learner.take());
    let m = &report.handler;
    if let Some(e) = &report.digest_cache_error {
        eprintln!("tsem: warning: {e}");
    }
    if let Some(e) = &report.listener_error {
        eprintln!("tsem: the sensor failed and the workload was killed: {e}");
    }
    let prog = a.cmd[0].to_string_lossy();
    if let Some(errno) = report.exec_error {
        let err = std::io::Error::from_raw_os_error(errno);
        eprintln!("tsem: cannot execute {prog}: {err}");
    }
    let ran = &m.ns;
    let relearned = if learning {
        Some(crate::learning::relearn(
            ran,
            input.as_ref(),
            m.shaper.outputs(),
        )?)
    } else {
        None
    };
    let ns = relearned.as_ref().map_or(ran, |l| &l.ns);
    if let Some(p) = &a.output {
        // Learning: the relearned model's notes and the set learned (united with the extended
        // model's). Otherwise the loaded model's notes and backstop, which this run did not change.
        let notes = match (&relearned, &input) {
            (Some(l), _) => l.notes.clone(),
            (None, Some(m)) => crate::learning::pseudonym_notes(m),
            (None, None) => Default::default(),
        };
        let mut model = crate::learning::model_file(ns, rules, &notes);
        let kept = input
            .as_ref()
            .filter(|_| !learning)
            .map(|m| m.access_set())
            .filter(tsem_core::access::AccessSet::is_recorded);
        if let Some(set) = learned.as_ref().map(|(s, _)| s).or(kept.as_ref()) {
            model.set_access_set(set);
        }
        write_atomic(p, &model.to_text())?;
    }
    if let Some(p) = &a.trajectory {
        let all = m.shaper.whole().unwrap_or_default();
        write_events(p, &crate::learning::with_pseudonyms(ns, all))?;
    }
    if let Some(p) = &a.forensics {
        write_events(p, ns.forensics())?;
    }
    let s = report.stats;
    if let Some(p) = &a.summary_json {
        let mut v = summary(ns);
        // Counts are the run's; points and states are those of the model it learned.
        v["events"] = json!(ran.events());
        v["forensics_events"] = json!(ran.forensics_events());
        v["denied"] = json!(ran.denied());
        v["pseudonyms"] = json!(ns.pseudonyms().count());
        v["outcome"] = json!(m.shaper.sentence(ran));
        v["lost_events"] = json!(s.lost + m.errors);
        // Calls the sensor refuses in every mode (it cannot describe or perform them) are
        // denials too.
        v["denied"] = json!(ns.denied() + s.refused);
        v["exit_status"] = json!(report.exit.code());
        crate::live::summarize(&mut v, exports.as_ref());
        v["digest_cache"] = json!(
            cfg.digest_cache
                .as_ref()
                .map(|s| s.path().display().to_string())
        );
        v["sensor"] = json!({
            "notifications": s.notifications,
            "events": s.events,
            "denied": s.denied,
            "emulated": s.emulated,
            "continued": s.continued,
            "unmodeled": s.unmodeled,
            "abandoned": s.abandoned,
            "exec_mismatch": s.exec_mismatch,
            "protected": s.protected,
            "refused": s.refused,
            "unfaithful": s.unfaithful,
            "tasks": s.tasks,
            "execs": s.execs,
        });
        v["landlock"] =
            crate::backstop::summary(&backstop, report.backstop.as_ref(), learned.as_ref());
        let text = serde_json::to_string_pretty(&v)? + "\n";
        write_atomic(p, &text)?;
    }
    if let Some(p) = attester {
        let model = input.as_ref();
        let workload = a
            .cmd
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        crate::attest_cmd::finish(p, ran, model, s.lost + m.errors, workload)?;
    }
    if let Some(words) = m.shaper.sentence(ran) {
        eprintln!(
            "tsem: {words}{}",
            a.forensics
                .as_ref()
                .map(|p| format!(" (see {})", p.display()))
                .unwrap_or_default()
        );
    }
    if s.refused > 0 || s.unfaithful > 0 {
        eprintln!(
            "tsem: {} calls refused (outside the workload's reach), {} not performable with the \
             task's credentials ({})",
            s.refused,
            s.unfaithful,
            if a.enforce { "refused" } else { "continued" }
        );
    }
    let code = match report.exec_error {
        Some(e) if e == libc_eperm() || e == 13 => 126,
        Some(_) => 127,
        None => report.exit.code(),
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The digest store to use: the one named (an unusable one is an error), none, or the default
/// one when it can be used (silently none otherwise, e.g. for a user without a home).
fn digest_store(a: &RunArgs) -> anyhow::Result<Option<tsem_sensor::digest_cache::Store>> {
    use tsem_sensor::digest_cache::{Store, default_path, fallback_paths};
    if a.no_digest_cache {
        return Ok(None);
    }
    if let Some(p) = &a.digest_cache {
        return Ok(Some(Store::open(p, a.ns.digest)?));
    }
    // The default store, else a fallback that is the user's alone; never silently none.
    let mut refused = Vec::new();
    for p in default_path(a.ns.digest)
        .into_iter()
        .chain(fallback_paths(a.ns.digest))
    {
        match Store::open(&p, a.ns.digest) {
            Ok(s) => {
                if !refused.is_empty() {
                    eprintln!(
                        "tsem: note: digest cache in {} ({}); --digest-cache FILE to choose",
                        p.display(),
                        refused.join("; ")
                    );
                }
                return Ok(Some(s));
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    eprintln!(
        "tsem: warning: no digest cache, every file is hashed afresh ({}); \
         --digest-cache FILE to choose one",
        if refused.is_empty() {
            "neither HOME nor XDG_CACHE_HOME is set".to_string()
        } else {
            refused.join("; ")
        }
    );
    Ok(None)
}
