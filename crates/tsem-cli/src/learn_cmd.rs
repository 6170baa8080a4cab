//! `tsem learn`: learn a model as a loop — run the workload under `tsem run` again and again
//! until further runs teach the model nothing, print the learning curve, write the model.
//!
//! Each run is an ordinary `tsem run` (its own process, its own modeling namespace) that writes
//! its trajectory and the pseudonyms of the outputs it saw. After each run the union of the runs
//! is modeled again with every pseudonym known so far, so a file one run wrote and another only
//! read counts once; a run "adds" the points not in the union of the runs before it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use serde_json::json;
use tsem_core::access::AccessSet;
use tsem_core::event::Event;
use tsem_core::hash::Digest;
use tsem_core::namespace::{Config, Namespace};
use tsem_core::naming::RuleSet;

use crate::learning::{model_file, pseudonym_notes};
use crate::model_cmd::write_atomic;
use crate::replay::{read_events, read_model};

/// Learn a model by running the workload until it converges.
#[derive(clap::Args)]
pub struct LearnArgs {
    /// Write the learned model here.
    #[arg(short = 'o', long = "output", value_name = "MODEL")]
    pub output: PathBuf,
    /// Run the workload at most N times.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Stop once K consecutive runs added no point (0: always do --runs runs).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub until_converged: u32,
    /// Naming rules (`none` for plain TSEM model0).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "created-subtree-v1,proc-pid-v1,prctl-args-v1"
    )]
    pub rules: String,
    /// Do not make the files the workload writes into pseudonyms.
    #[arg(long)]
    pub no_auto_pseudonyms: bool,
    /// Keep each run's model, trajectory and summary in DIR (default: a temporary directory,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    pub keep_runs: Option<PathBuf>,
    /// Print the learning curve as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Passed to `tsem run`: also model these hot events (learn with what you will enforce with).
    #[arg(long, value_name = "LIST")]
    pub observe: Option<String>,
    /// Passed to `tsem run`: end each run when CMD exits.
    #[arg(long)]
    pub end_with_cmd: bool,
    /// The namespace's hash function and coefficient layout.
    #[command(flatten)]
    pub ns: crate::replay::NsArgs,
    /// The workload, after `--`.
    #[arg(last = true, value_name = "CMD", required = true)]
    pub cmd: Vec<OsString>,
}

/// One run's contribution.
struct RunResult {
    events: u64,
    new_points: usize,
    total_points: usize,
}

/// The runs so far: their descriptions and the union of their pseudonyms.
struct Union {
    cfg: Config,
    trajectories: Vec<Vec<Event>>,
    pseudonyms: BTreeMap<Digest, String>,
    unnoted: Vec<Digest>,
    /// The kernel backstop's access set: the union of every run's (each learned from that
    /// run's raw descriptions); none as soon as one run could not learn one, since a set
    /// covering only some runs would refuse what the others did.
    access: Option<AccessSet>,
}

impl Union {
    /// Model every run's descriptions with every pseudonym; the number of points after each run.
    fn model(&self) -> anyhow::Result<(Namespace, Vec<usize>)> {
        let e = |e: tsem_core::namespace::NamespaceError| anyhow::anyhow!("{e}");
        let mut ns = Namespace::new(self.cfg).map_err(e)?;
        for p in self.pseudonyms.keys().chain(&self.unnoted) {
            ns.add_pseudonym(*p).map_err(e)?;
        }
        let mut after = Vec::new();
        for t in &self.trajectories {
            for ev in t {
                ns.model(0, ev).map_err(e)?;
            }
            after.push(ns.points().len());
        }
        Ok((ns, after))
    }
}

pub fn run(a: LearnArgs) -> anyhow::Result<ExitCode> {
    let rules = RuleSet::parse(&a.rules).map_err(|e| anyhow::anyhow!("--rules: {e}"))?;
    let work = match &a.keep_runs {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("{}: cannot create", d.display()))?;
            d.clone()
        }
        None => {
            let d = std::env::temp_dir().join(format!("tsem-learn-{}", std::process::id()));
            std::fs::create_dir_all(&d)
                .with_context(|| format!("{}: cannot create", d.display()))?;
            d
        }
    };
    let result = learn(&a, rules, &work);
    if a.keep_runs.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn learn(a: &LearnArgs, rules: RuleSet, work: &Path) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the tsem executable")?;
    let mut union = Union {
        cfg: Config {
            alg: a.ns.digest,
            mapping: a.ns.mapping,
            keep_descriptions: true,
        },
        trajectories: Vec::new(),
        pseudonyms: BTreeMap::new(),
        unnoted: Vec::new(),
        access: Some(AccessSet::learned()),
    };
    let mut curve: Vec<RunResult> = Vec::new();
    let mut quiet_runs = 0;
    let mut converged = false;
    for k in 1..=a.runs {
        let model = work.join(format!("run{k}.model"));
        let traj = work.join(format!("run{k}.trajectory"));
        let summary = work.join(format!("run{k}.summary.json"));
        let mut c = Command::new(&exe);
        c.arg("run")
            .arg("--learn-loop")
            .args(["--rules", &rules.names()])
            .args([
                "--digest",
                a.ns.digest.name(),
                "--mapping",
                a.ns.mapping.name(),
            ])
            .arg("-o")
            .arg(&model)
            .arg("--trajectory")
            .arg(&traj)
            .arg("--summary-json")
            .arg(&summary);
        if a.no_auto_pseudonyms {
            c.arg("--no-auto-pseudonyms");
        }
        if let Some(o) = &a.observe {
            c.args(["--observe", o]);
        }
        if a.end_with_cmd {
            c.arg("--end-with-cmd");
        }
        c.arg("--").args(&a.cmd);
        if a.json {
            // Stdout is the curve's: the workload's own output goes to stderr.
            c.stdout(std::io::stderr());
        }
        let status = c.status().context("cannot start tsem run")?;
        let s: serde_json::Value = std::fs::read_to_string(&summary)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .with_context(|| format!("run {k}: tsem run wrote no summary (status {status})"))?;
        if !status.success() {
            bail!(
                "run {k}: the workload failed ({status}); a model learned from a failing run would \
                 hold the workload to its failure, so none is written"
            );
        }
        let lost = s["lost_events"].as_u64().unwrap_or(u64::MAX);
        if lost != 0 {
            bail!("run {k}: {lost} events were lost; the model would be incomplete");
        }
        let m = read_model(&model)?;
        let set = m.access_set();
        union.access = union
            .access
            .take()
            .filter(|_| set.is_recorded())
            .map(|mut u| {
                u.union(&set);
                u
            });
        let notes = pseudonym_notes(&m);
        for p in m.lines.iter().filter_map(|l| match l {
            tsem_format::model_file::Line::Pseudonym(p) => Some(*p),
            _ => None,
        }) {
            match notes.get(&p) {
                Some(n) => {
                    union.pseudonyms.entry(p).or_insert_with(|| n.clone());
                }
                None if !union.unnoted.contains(&p) => union.unnoted.push(p),
                None => {}
            }
        }
        union.trajectories.push(read_events(&[traj])?);
        let (_, after) = union.model()?;
        let total = after.last().copied().unwrap_or(0);
        let before = if after.len() >= 2 {
            after[after.len() - 2]
        } else {
            0
        };
        let r = RunResult {
            events: s["events"].as_u64().unwrap_or(0),
            new_points: total - before,
            total_points: total,
        };
        eprintln!(
            "tsem: learn: run {k}: {} events, {} new {} ({} in all)",
            r.events,
            r.new_points,
            if r.new_points == 1 { "point" } else { "points" },
            r.total_points
        );
        let outlived = s["sensor"]["outlived"].as_u64().unwrap_or(0);
        if let Some(w) = crate::learning::outlived_warning(outlived) {
            eprintln!("tsem: learn: run {k}: {w}");
        }
        quiet_runs = if r.new_points == 0 { quiet_runs + 1 } else { 0 };
        curve.push(r);
        if a.until_converged > 0 && quiet_runs >= a.until_converged {
            converged = true;
            break;
        }
    }
    let (ns, _) = union.model()?;
    let mut model = model_file(&ns, rules, &union.pseudonyms);
    if let Some(set) = &union.access {
        model.set_access_set(set);
    }
    let text = model.to_text();
    write_atomic(&a.output, &text)?;
    let runs = curve.len();
    let pseudonyms = union.pseudonyms.len() + union.unnoted.len();
    if a.json {
        let v = json!({
            "runs": runs,
            "converged": converged,
            "points": ns.points().len(),
            "pseudonyms": pseudonyms,
            "rules": rules.names(),
            "curve": curve.iter().map(|r| json!({
                "events": r.events, "new_points": r.new_points, "points": r.total_points
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    let shape = curve
        .iter()
        .map(|r| r.new_points.to_string())
        .collect::<Vec<_>>()
        .join(" → ");
    if converged {
        eprintln!(
            "tsem: learn: converged after {runs} runs (new points per run: {shape}); {} points, \
             {pseudonyms} {} -> {}",
            ns.points().len(),
            if pseudonyms == 1 {
                "pseudonym"
            } else {
                "pseudonyms"
            },
            a.output.display()
        );
        Ok(ExitCode::SUCCESS)
    } else if a.until_converged == 0 {
        eprintln!(
            "tsem: learn: {runs} runs (new points per run: {shape}); {} points -> {}",
            ns.points().len(),
            a.output.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "tsem: learn: not converged after {runs} runs (new points per run: {shape}); the model \
             was written to {} but enforcing it will likely deny events the workload still needs \
             (see docs/learning.md)",
            a.output.display()
        );
        Ok(ExitCode::from(3))
    }
}
