//! `tsem run`: run a workload under the userspace sensor inside its own modeling namespace, and
//! learn, seal or enforce a security model.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use std::borrow::Cow;

use tsem_core::RawStr;
use tsem_core::event::Event;
use tsem_core::namespace::{Mode, Namespace, Outcome};
use tsem_format::model_file::Line;
use tsem_format::{RecordKind, write_event, write_event_json};
use tsem_sensor::supervisor::SpawnError;
use tsem_sensor::{Extras, Modeler, SensorConfig};

use crate::model_cmd::write_atomic;
use crate::replay::{namespace_for, summary};

/// Run a workload under a security model (learn, seal, enforce).
///
/// Without `--model` the workload's events are learned (free modeling); `-o` writes the model.
/// With `--model`, the model is loaded and sealed (`--seal`, the default): out-of-model events
/// are recorded as forensics and their tasks marked untrusted, but allowed. `--enforce` also
/// fails them with EPERM before they take effect, and denies every later security event of an
/// untrusted task and its descendants. The exit status is the workload's.
/// What `--mechanism-only` leaves of a run (benchmarks only).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// Every notification answered with CONTINUE at once: what interception alone costs.
    Continue,
    /// Opens performed by the supervisor (probe, reopen, ADDFD) as when enforcing, with
    /// nothing described or modeled: what emulating them costs.
    Emulate,
}

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
    /// Set by `tsem learn` for its runs: it learns again itself, so no advice to do so.
    #[arg(long, hide = true)]
    pub learn_loop: bool,
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
    /// Benchmarks only: intercept like a real run but model nothing. `continue` (the default):
    /// every call continues, the floor of interception; `emulate`: opens are performed and
    /// handed back as when enforcing, the floor of emulation. Never combined with a model, an
    /// output or an attestation: it enforces nothing.
    #[arg(
        long,
        hide = true,
        value_name = "FLOOR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "continue",
        conflicts_with_all = [
            "learn", "seal", "enforce", "model", "output", "trajectory", "forensics", "attest"
        ]
    )]
    pub mechanism_only: Option<Floor>,
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
    /// Where the run is modeled: `auto` (a TSEM kernel when its securityfs exists,
    /// $TSEM_SECURITYFS or /sys/kernel/security/tsem, and the run needs nothing only the sensor
    /// has), `sensor`, `kernel` (the kernel models) or `kernel-external` (tsem models a kernel
    /// namespace as its external agent). See docs/kernel.md.
    #[arg(long, value_name = "WHERE", default_value = "auto")]
    pub backend: crate::kernel_run::Backend,
    /// The kernel namespace's creation options (--kernel-nsref, --kernel-cache).
    #[command(flatten)]
    pub kernel: crate::kernel_run::KernelArgs,
    /// What a deviation costs the workload (--on-forensic, --max-restarts).
    #[command(flatten)]
    pub deviation: crate::deviation::DeviationArgs,
    /// A modeling agent outside this process (--tma, --tma-key, --tma-peer).
    #[command(flatten)]
    pub tma: crate::tma_cmd::TmaArgs,
    /// Internal (tsem-runtime): supervise the process whose pid arrives on descriptor N instead
    /// of starting CMD, which then only names the workload (crate tsem-runtime).
    #[arg(
        long,
        hide = true,
        value_name = "N",
        conflicts_with_all = ["mechanism_only", "keep_fd"]
    )]
    pub attach_fd: Option<i32>,
    /// Live access: a control socket (--name), an export stream (--export).
    #[command(flatten)]
    pub live: crate::live::LiveArgs,
    /// Attest the namespace when the workload ends.
    #[command(flatten)]
    pub attestation: crate::attest_cmd::RunAttestArgs,
    /// Unseal a secret sealed to the model's state when the workload ends.
    #[command(flatten)]
    pub unseal: crate::seal_cmd::UnsealArgs,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// A live progress line on a terminal.
struct Progress {
    start: Instant,
    last: Instant,
}

/// The sensor's modeler with what `tsem run` adds around it.
pub(crate) type RunModeler = Modeler<RunExtras>;

/// What `tsem run` adds around the sensor's [`Modeler`]: naming rules and outputs, the live
/// mirror and export, a progress line. None of it decides a verdict.
pub(crate) struct RunExtras {
    /// Naming rules, outputs, the whole trajectory and the outcome in words.
    shaper: crate::learning::Shaper,
    progress: Option<Progress>,
    /// The control socket's mirror and the export stream, fed after each event.
    live: crate::live::Live,
    /// The deviation policy ended this incarnation of the workload (kill or restart).
    ended: Option<tsem_core::policy::RunAction>,
    /// The modeling agent whose verdicts decide (`--tma`).
    agent: Option<crate::tma_cmd::Agent>,
    /// Events lost, read live by `--every` attestations.
    loss: Option<std::sync::Arc<crate::periodic::Loss>>,
}

impl RunExtras {
    /// Redraw the progress line at most every 200 ms, or now if `force`.
    fn tick(&mut self, ns: &Namespace, force: bool) {
        let Some(p) = &mut self.progress else { return };
        let now = Instant::now();
        if !force && now.duration_since(p.last).as_millis() < 200 {
            return;
        }
        p.last = now;
        let secs = now.duration_since(p.start).as_secs_f64().max(1e-3);
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

impl Extras for RunExtras {
    fn shape<'a>(&mut self, ev: &'a Event, tid: i32) -> Cow<'a, Event> {
        self.shaper.shape(ev, tid)
    }

    fn outcome(&mut self, ev: &Event, tid: i32, untrusted: bool, o: &Outcome, mode: Mode) {
        self.shaper.outcome(ev, tid, untrusted, o, mode);
        if o.run != tsem_core::policy::RunAction::Continue && self.ended.is_none() {
            self.ended = Some(o.run);
            self.live.policy_killed();
        }
    }

    fn unmodeled(&mut self) {
        if let Some(l) = &self.loss {
            l.unmodeled();
        }
    }

    fn after_event(&mut self, ns: &Namespace, ev: &Event, untrusted: bool) {
        self.live.after_event(ns, ev, untrusted);
        self.tick(ns, false);
    }

    fn executed(&mut self, tid: i32, path: &RawStr) {
        self.shaper.executed(tid, path);
    }

    fn exited(&mut self, tid: i32) {
        if let Some(agent) = &mut self.agent {
            agent.exited(tid as u64);
        }
    }

    fn remote(&mut self, key: u64, ev: &Event, local: Outcome) -> Option<Outcome> {
        match &mut self.agent {
            None => Some(local),
            Some(agent) => agent.model(key, ev, &local),
        }
    }
}

const fn libc_eperm() -> i32 {
    1
}

pub(crate) fn write_events<'a>(
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
    if let Some((fs, external)) = crate::kernel_run::select(&a)? {
        return crate::kernel_run::run(&a, fs, external);
    }
    // Fail on a bad model, key, nonce or TPM before anything runs.
    let attester = crate::attest_cmd::prepare(&a.attestation, a.ns.digest)?;
    let unsealer =
        crate::seal_cmd::prepare(&a.unseal, &a.attestation, a.model.as_deref(), a.ns.digest)?;
    let aggregate = (attester.as_ref().and_then(|p| p.aggregate.clone()))
        .or_else(|| unsealer.as_ref().map(|u| u.aggregate.clone()));
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
    ns.set_policy(a.deviation.on_forensic);
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
    let agent = crate::tma_cmd::Agent::connect(&a.tma, &ns)?;
    let mut live = crate::live::Live::start(&a.live, &ns, &a.cmd)?;
    let attesting =
        crate::periodic::Attesting::start(attester, &a.attestation, input.as_ref(), &mut live, &ns);
    let extras = RunExtras {
        shaper,
        progress,
        live,
        ended: None,
        agent,
        loss: attesting.loss.clone(),
    };
    let modeler = Modeler::new(ns, crate::backstop::learner(&backstop), extras);
    let mut cfg = SensorConfig {
        alg: a.ns.digest,
        mapping: a.ns.mapping,
        digest_cache: digest_store(&a)?,
        // The backstop-only switch reuses the mechanism-only path: every call continues.
        mechanism_only: a.mechanism_only.is_some() || a.backstop_only,
        mechanism_emulates_opens: a.mechanism_only == Some(Floor::Emulate),
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
    let mut handler = modeler;
    let mut restarts = 0u32;
    let mut earlier = tsem_sensor::Stats::default();
    let mut report = loop {
        cfg.counters = attesting.counters();
        let mut r = match a.attach_fd {
            Some(fd) => crate::attach::run(fd, &cfg, handler)?,
            None => match tsem_sensor::run(&a.cmd, &cfg, handler) {
                Ok(r) => r,
                // Nothing ran: the shell's status for a command not found, as when exec fails.
                Err(SpawnError::NotFound(p)) => {
                    eprintln!("tsem: command not found: {p}");
                    return Ok(ExitCode::from(127));
                }
                Err(e) => return Err(e).context("cannot run the workload"),
            },
        };
        // A container's init (--attach-fd) cannot be started again by tsem: its runtime does.
        let again = r.handler.extras.ended == Some(tsem_core::policy::RunAction::Restart)
            && a.attach_fd.is_none()
            && r.listener_error.is_none()
            && r.exec_error.is_none();
        if !again {
            r.stats = earlier + r.stats;
            break r;
        }
        if restarts >= a.deviation.max_restarts {
            eprintln!(
                "tsem: a forensic event after {restarts} restart(s): the workload stays killed \
                 (--max-restarts {})",
                a.deviation.max_restarts
            );
            r.stats = earlier + r.stats;
            break r;
        }
        restarts += 1;
        eprintln!(
            "tsem: a forensic event killed the workload; starting it again ({restarts} of at \
             most {})",
            a.deviation.max_restarts
        );
        earlier = earlier + r.stats;
        handler = r.handler;
        handler.extras.ended = None;
        handler.extras.shaper.restart(handler.ns.config());
        handler.extras.live.restarted();
    };
    let attester = attesting.finish()?;
    let handler = &mut report.handler;
    if handler.extras.progress.is_some() {
        handler.extras.tick(&handler.ns, true);
        eprintln!();
    }
    handler.extras.shaper.finish();
    let exports = handler.extras.live.finish();
    let agent = handler
        .extras
        .agent
        .as_mut()
        .map(|g| (g.addr().to_string(), g.finish()));
    let learned = crate::backstop::learned_set(&backstop, handler.learner.take());
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
            m.extras.shaper.outputs(),
        )?)
    } else {
        None
    };
    let ns = relearned.as_ref().map_or(ran, |l| &l.ns);
    if let Some(w) = relearned
        .as_ref()
        .filter(|_| !a.learn_loop)
        .and_then(crate::learning::Learned::next_run_warning)
    {
        eprintln!("{w}");
    }
    if learning
        && !a.learn_loop
        && let Some(w) = crate::learning::outlived_warning(report.stats.outlived)
    {
        eprintln!("tsem: {w}");
    }
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
        let all = m.extras.shaper.whole().unwrap_or_default();
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
        v["pseudonyms"] = json!(ns.pseudonyms().count());
        v["outcome"] = json!(m.extras.shaper.sentence(ran));
        v["lost_events"] = json!(s.lost + m.errors);
        // Every refusal of the sensor is a denial too, so that no run in which the sensor
        // refused something reports `denied` 0: calls refused whatever the model says (out of
        // the workload's reach), touches of the digest store, programs killed at their exec
        // stop for a mapping that is not what was approved, and, when enforcing, calls it
        // cannot perform with the caller's own credentials or on its own copy of their
        // arguments (learning and sealing continue those: not counted there).
        let unfaithful = if a.enforce { s.unfaithful } else { 0 };
        v["denied"] = json!(ran.denied() + s.refused + s.protected + s.exec_mismatch + unfaithful);
        v["exit_status"] = json!(report.exit.code());
        v["on_forensic"] = json!(ran.policy().name());
        v["restarts"] = json!(restarts);
        // Incarnations the policy killed (the last one too, when it ended the run).
        v["policy_kills"] = json!(restarts as u64 + u64::from(m.extras.ended.is_some()));
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
            "undecodable": s.undecodable,
            "sync_wakeup": s.sync_wakeup,
            "tasks": s.tasks,
            "execs": s.execs,
            "outlived": s.outlived,
        });
        v["landlock"] =
            crate::backstop::summary(&backstop, report.backstop.as_ref(), learned.as_ref());
        if let Some((addr, r)) = &agent {
            v["tma"] = match r {
                Ok(s) => json!({
                    "address": addr,
                    "state": s["state"],
                    "measurement": s["measurement"],
                    "events": s["events"],
                }),
                Err(why) => json!({ "address": addr, "failed": why }),
            };
        }
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
    if let Some(u) = unsealer {
        crate::seal_cmd::finish(u, ran, s.lost + m.errors)?;
    }
    if let Some(words) = m.extras.shaper.sentence(ran) {
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
    if let Some((_, r)) = &agent {
        match r {
            Err(why) => bail!("{why}: the workload was killed"),
            // The agent's account must be the run's: the supervisor checked each verdict.
            Ok(s) if s["state"] != json!(ran.state().to_hex()) => bail!(
                "the modeling agent's final state {} is not the run's {}",
                s["state"],
                ran.state()
            ),
            Ok(_) => {}
        }
    }
    let code = match report.exec_error {
        Some(e) if e == libc_eperm() || e == 13 => 126,
        Some(_) => 127,
        None => report.exit.code(),
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The digest store to use: the one named (an unusable one is an error), none, or the default
/// one; when that cannot be derived (no HOME nor XDG_CACHE_HOME) or used (a HOME that is not
/// the user's), a fallback that is the user's alone, with a note saying where and why; with
/// none usable, a warning. Never silently elsewhere or off.
fn digest_store(a: &RunArgs) -> anyhow::Result<Option<tsem_sensor::digest_cache::Store>> {
    use tsem_sensor::digest_cache::{Store, default_path, fallback_paths};
    if a.no_digest_cache {
        return Ok(None);
    }
    if let Some(p) = &a.digest_cache {
        return Ok(Some(Store::open(p, a.ns.digest)?));
    }
    let default = default_path(a.ns.digest);
    let mut refused = Vec::new();
    if default.is_none() {
        refused.push("neither HOME nor XDG_CACHE_HOME is set".to_string());
    }
    for p in default.into_iter().chain(fallback_paths(a.ns.digest)) {
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
        refused.join("; ")
    );
    Ok(None)
}
