//! `tsem model update` and `tsem model suggest`: promotion the Quixote way, as explicit,
//! reviewable steps. `update` folds reviewed forensics into a model (what `quixote-console -M -u`
//! does) with a comment per added point saying where it came from; `suggest` only proposes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use tsem_core::event::Event;
use tsem_core::hash::Digest;
use tsem_core::namespace::Namespace;
use tsem_core::naming::Namer;
use tsem_core::raw::RawStr;
use tsem_format::model_file::{Line, ModelFile};

use crate::describe::one_line;
use crate::learning::{rules_of, with_pseudonyms};
use crate::model_cmd::write_atomic;
use crate::replay::{NsArgs, namespace_for, open_input, read_model};

/// Arguments of `tsem model update`.
#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Write the updated model here (unsigned: sign it again after review).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// The namespace's hash function and coefficient layout.
    #[command(flatten)]
    pub ns: NsArgs,
    /// The model to extend.
    pub model: PathBuf,
    /// Reviewed forensics files (`tsem run --forensics`), whose points become valid.
    #[arg(required = true, value_name = "FORENSICS")]
    pub forensics: Vec<PathBuf>,
}

/// Arguments of `tsem model suggest`.
#[derive(clap::Args)]
pub struct SuggestArgs {
    /// The namespace's hash function and coefficient layout.
    #[command(flatten)]
    pub ns: NsArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The model.
    pub model: PathBuf,
    /// Trajectories of separate runs (`tsem run --trajectory`).
    #[arg(required = true, value_name = "TRAJECTORY")]
    pub trajectories: Vec<PathBuf>,
}

/// The events of `file` with their line numbers.
fn numbered_events(file: &Path) -> anyhow::Result<Vec<(usize, Event)>> {
    let name = file.display().to_string();
    let mut out = Vec::new();
    let mut parser = tsem_format::RecordParser::new();
    for (i, line) in std::io::BufRead::lines(open_input(file)?).enumerate() {
        let line = line.with_context(|| format!("{name}:{}: read error", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if let tsem_format::Record::Event { event, .. } = parser
            .parse(&line)
            .map_err(|e| anyhow::anyhow!("{name}:{}: {e}", i + 1))?
        {
            out.push((i + 1, event));
        }
    }
    Ok(out)
}

/// The model's namespace and a namer with its rules.
fn load(model: &Path, ns: &NsArgs) -> anyhow::Result<(ModelFile, Namespace, Namer)> {
    let m = read_model(model)?;
    let rules = rules_of(&m).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let n = namespace_for(ns.digest, ns.mapping, Some(model), None)?;
    Ok((m, n, Namer::new(rules, ns.digest, ns.mapping)))
}

/// The coefficient of `ev` as the model's namespace would compute it: rules, then pseudonyms.
fn coefficient(ns: &mut Namespace, namer: &mut Namer, ev: &Event) -> (Digest, Event) {
    let mut e = ev.clone();
    namer.apply(&mut e);
    let e = with_pseudonyms(ns, std::slice::from_ref(&e))
        .pop()
        .unwrap_or(e);
    (ns.mapper().coefficient(&e), e)
}

pub fn update(a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let (mut m, mut ns, _) = load(&a.model, &a.ns)?;
    let rules = rules_of(&m)?;
    let mut have: BTreeSet<Digest> = m.states().copied().collect();
    let mut added = Vec::new();
    for f in &a.forensics {
        // Each file is one run's forensics: its own created paths.
        let mut namer = Namer::new(rules, a.ns.digest, a.ns.mapping);
        for (n, ev) in numbered_events(f)? {
            let (c, e) = coefficient(&mut ns, &mut namer, &ev);
            if have.insert(c) {
                let text: String = one_line(&e).chars().filter(|c| !c.is_control()).collect();
                added.push(Line::Comment(format!(
                    " promoted from {}:{n}: {text}",
                    f.display()
                )));
                added.push(Line::State(c));
            }
        }
    }
    let count = added.len() / 2;
    let was_signed = m.is_signed();
    m.strip_signatures();
    let at = m
        .lines
        .iter()
        .rposition(|l| matches!(l, Line::State(_) | Line::Aggregate(_) | Line::Base(_)))
        .map_or(0, |i| i + 1);
    m.lines.splice(at..at, added);
    write_atomic(&a.output, &m.to_text())?;
    eprintln!(
        "tsem: {count} {} promoted into {}{}",
        if count == 1 { "point" } else { "points" },
        a.output.display(),
        if was_signed {
            " (the signature was removed: review and sign it again)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// What one event key looked like across runs.
#[derive(Default)]
struct Seen {
    runs: BTreeSet<usize>,
    in_model: bool,
    line: String,
}

pub fn suggest(a: SuggestArgs) -> anyhow::Result<ExitCode> {
    let (m, mut ns, _) = load(&a.model, &a.ns)?;
    let rules = rules_of(&m)?;
    let zero = ns.alg().zero_digest();
    let mut points: HashMap<Digest, Seen> = HashMap::new();
    // Per digest-free coefficient: the path and the distinct digests seen.
    let mut contents: BTreeMap<RawStr, (BTreeSet<Digest>, BTreeSet<usize>)> = BTreeMap::new();
    for (run, f) in a.trajectories.iter().enumerate() {
        let mut namer = Namer::new(rules, a.ns.digest, a.ns.mapping);
        for (_, ev) in numbered_events(f)? {
            let (c, e) = coefficient(&mut ns, &mut namer, &ev);
            let s = points.entry(c).or_default();
            s.runs.insert(run);
            s.in_model = ns
                .points()
                .find(&c)
                .is_some_and(|i| ns.points().is_valid(i));
            if s.line.is_empty() {
                s.line = one_line(&e);
            }
            if let Some(file) = e.file()
                && file.digest != zero
            {
                let entry = contents.entry(file.path.pathname.clone()).or_default();
                entry.0.insert(file.digest);
                entry.1.insert(run);
            }
        }
    }
    let runs = a.trajectories.len();
    let pseudonyms: Vec<(&RawStr, usize)> = contents
        .iter()
        .filter(|(_, (d, _))| d.len() > 1)
        .map(|(p, (d, _))| (p, d.len()))
        .collect();
    // Seen in one run only: a path the workload takes now and then (a retry, a race, changing
    // contents), whether or not the model already has it.
    let mut once: Vec<(usize, &str, bool)> = points
        .values()
        .filter(|s| runs > 1 && s.runs.len() == 1)
        .filter_map(|s| s.runs.first().map(|r| (*r, s.line.as_str(), s.in_model)))
        .collect();
    once.sort();
    if a.json {
        let v = json!({
            "pseudonyms": pseudonyms.iter().map(|(p, n)| json!({"path": p.to_string(), "digests": n})).collect::<Vec<_>>(),
            "only_in_one_run": once.iter().map(|(r, l, m)| json!({
                "run": a.trajectories[*r].display().to_string(), "event": l, "in_model": m
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (p, n) in &pseudonyms {
        println!("pseudonym? {p}: {n} different contents across the runs");
    }
    for (r, l, in_model) in &once {
        let model = if *in_model { "in" } else { "not in" };
        println!(
            "only in {}: {l} ({model} the model)",
            a.trajectories[*r].display()
        );
    }
    if pseudonyms.is_empty() && once.is_empty() {
        println!("nothing to suggest: the runs agree with each other");
    }
    Ok(ExitCode::SUCCESS)
}
