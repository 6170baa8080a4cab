//! `tsem model …`: build, show, diff, merge, sign and verify security models.

use std::collections::{HashMap, HashSet};

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use tsem_core::event::Event;
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::{Mapper, Mapping};
use tsem_format::model_file::{Line, ModelFile};

use crate::replay::{StreamStats, model_stream, namespace_for, open_input, read_model};

/// Model subcommands.
#[derive(Subcommand)]
pub enum ModelCmd {
    /// Learn a model from one or more trajectories (points in first-seen order).
    Build {
        /// Output model file.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// Hash function.
        #[arg(long, default_value = "sha256", value_name = "NAME")]
        digest: HashAlg,
        /// Coefficient layout.
        #[arg(long, default_value = "model0", value_name = "NAME")]
        mapping: Mapping,
        /// Hardware aggregate to record (hex); default zero.
        #[arg(long, value_name = "HEX")]
        aggregate: Option<String>,
        /// Refuse to write the model unless the last N trajectories added no new point (the
        /// model has converged: more test runs teach it nothing new).
        #[arg(long, value_name = "N")]
        require_converged: Option<usize>,
        /// Print the learning curve as JSON.
        #[arg(long)]
        json: bool,
        /// Also learn the kernel backstop's access set (`landlock` lines) from the trajectories'
        /// paths, as `tsem run --learn` does; for trajectories recorded on this machine.
        #[arg(long)]
        backstop: bool,
        /// Naming rules to apply and record in the model (docs/learning.md); default none.
        #[arg(long, value_name = "LIST")]
        rules: Option<String>,
        /// Trajectory files, one per test run, in the order they ran (`-` for stdin).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show a model's state, measurement and counts.
    Show {
        /// Hash function the model was made with.
        #[arg(long, default_value = "sha256", value_name = "NAME")]
        digest: HashAlg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The model.
        file: PathBuf,
    },
    /// Points only in A and only in B, with event descriptions where known.
    Diff {
        /// Trajectories to look descriptions up in (repeatable).
        #[arg(long = "events", value_name = "FILE")]
        events: Vec<PathBuf>,
        /// Hash function (for looking up descriptions).
        #[arg(long, default_value = "sha256", value_name = "NAME")]
        digest: HashAlg,
        /// Coefficient layout (for looking up descriptions).
        #[arg(long, default_value = "model0", value_name = "NAME")]
        mapping: Mapping,
        /// Exit with status 1 when the models differ.
        #[arg(long)]
        exit_code: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// First model.
        a: PathBuf,
        /// Second model.
        b: PathBuf,
    },
    /// Merge models (set union of their points, in first-seen order).
    Merge {
        /// Output model file.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// Models to merge.
        #[arg(required = true, num_args = 2.., value_name = "MODEL")]
        models: Vec<PathBuf>,
    },
    /// Sign a model with an Ed25519 (tsem keygen) or RSA (Quixote sign-model) private key.
    Sign {
        /// Private key, PEM.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Write the signed model here (`-o M` signs M in place; default: stdout, M unchanged).
        #[arg(short, long, value_name = "OUT", conflicts_with = "in_place")]
        output: Option<PathBuf>,
        /// Sign the model file itself (the same as `-o M`).
        #[arg(long)]
        in_place: bool,
        /// The model.
        file: PathBuf,
    },
    /// Fold reviewed forensics into a model: each new point gets a comment naming its source.
    Update(crate::model_learn::UpdateArgs),
    /// Propose pseudonyms (paths whose contents differ across runs) and list points seen in only
    /// one run; changes nothing.
    Suggest(crate::model_learn::SuggestArgs),
    /// Verify a model's signatures (exit 1 if invalid).
    Verify {
        /// Expected signer's public key (PEM); without it only integrity is checked.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// The model.
        file: PathBuf,
    },
}

pub fn run(c: ModelCmd) -> anyhow::Result<ExitCode> {
    match c {
        ModelCmd::Build {
            output,
            digest,
            mapping,
            aggregate,
            require_converged,
            json,
            backstop,
            rules,
            files,
        } => build(
            &output,
            (digest, mapping),
            aggregate.as_deref(),
            require_converged,
            json,
            rules.as_deref(),
            &files,
            backstop,
        ),
        ModelCmd::Show { digest, json, file } => show(&file, digest, json),
        ModelCmd::Diff {
            events,
            digest,
            mapping,
            exit_code,
            json,
            a,
            b,
        } => diff(&a, &b, &events, digest, mapping, exit_code, json),
        ModelCmd::Merge { output, models } => merge(&output, &models),
        ModelCmd::Sign {
            key,
            output,
            in_place,
            file,
        } => {
            let out = if in_place { Some(file.clone()) } else { output };
            sign(&file, &key, out.as_deref())
        }
        ModelCmd::Verify { key, file } => verify(&file, key.as_deref()),
        ModelCmd::Update(a) => crate::model_learn::update(a),
        ModelCmd::Suggest(a) => crate::model_learn::suggest(a),
    }
}

/// Write `text` to `path` atomically (temp file + rename), so a failed write leaves no half model.
/// A path naming no regular file (`/dev/stdout`, `/dev/null`, a FIFO) is written in place:
/// renaming over it would replace the device with a regular file, for every program (as root).
/// A symbolic link is followed: the file it names is replaced, the link stays.
pub fn write_atomic(path: &Path, text: &(impl AsRef<[u8]> + ?Sized)) -> anyhow::Result<()> {
    use std::io::Write as _;
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        f.write_all(text.as_ref())
            .with_context(|| format!("{}: cannot write", path.display()))?;
        return Ok(());
    }
    let linked;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        linked = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        linked.as_path()
    } else {
        path
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id()
    ));
    std::fs::write(&tmp, text.as_ref())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build(
    out: &Path,
    (alg, mapping): (HashAlg, Mapping),
    aggregate: Option<&str>,
    require_converged: Option<usize>,
    as_json: bool,
    rules: Option<&str>,
    files: &[PathBuf],
    backstop: bool,
) -> anyhow::Result<ExitCode> {
    let rules = crate::replay::rules_for(None, rules)?;
    let mut ns = namespace_for(alg, mapping, None, aggregate)?;
    let mut stats = StreamStats::default();
    // The learning curve: how many new points each test run taught the model.
    let mut curve = Vec::new();
    for f in files {
        let (events0, points0) = (ns.events(), ns.points().len());
        // Each trajectory is one run: what it created is its own.
        stats.namer = tsem_core::naming::Namer::new(rules, alg, mapping);
        model_stream(
            &mut ns,
            &f.display().to_string(),
            &mut *open_input(f)?,
            &mut stats,
        )?;
        let new_points = ns.points().len() - points0;
        if !as_json {
            eprintln!(
                "tsem: {}: {} events, {new_points} new points",
                f.display(),
                ns.events() - events0
            );
        }
        curve.push(json!({"file": f.display().to_string(), "events": ns.events() - events0, "new_points": new_points}));
    }
    if let Some(n) = require_converged {
        let tail = curve.iter().rev().take(n);
        let learning: Vec<String> = tail
            .filter(|c| c["new_points"].as_u64().unwrap_or(1) > 0)
            .map(|c| c["file"].as_str().unwrap_or("?").to_string())
            .collect();
        if curve.len() < n || !learning.is_empty() {
            bail!(
                "the model has not converged: the last {n} runs must add no new point, but {} did; run more tests",
                if curve.len() < n {
                    format!("only {} runs were given and they", curve.len())
                } else {
                    learning.join(", ")
                }
            );
        }
    }
    if stats.ruled_names > 0 {
        eprintln!(
            "tsem: warning: the trajectories were written under naming rules ({} events name \
             created files `%created:`), but no --rules were given: the model will not say so, \
             and enforcing it will not apply them (pass --rules {})",
            stats.ruled_names,
            tsem_core::naming::RuleSet::DEFAULT.names()
        );
    }
    let mut model = crate::learning::model_file(&ns, rules, &Default::default());
    if backstop && let Some(set) = crate::backstop::learn_from_trajectories(files)? {
        model.set_access_set(&set);
    }
    write_atomic(out, &model.to_text())?;
    if as_json {
        println!(
            "{}",
            json!({
                "output": out.display().to_string(),
                "events": ns.events(),
                "points": ns.points().len(),
                "state": ns.model_state().to_hex(),
                "runs": curve,
            })
        );
    } else {
        eprintln!(
            "tsem: {} events, {} points -> {} (state {})",
            ns.events(),
            ns.points().len(),
            out.display(),
            ns.model_state()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(file: &Path, alg: HashAlg, as_json: bool) -> anyhow::Result<ExitCode> {
    let m = read_model(file)?;
    let ns = namespace_for(alg, Mapping::Model0, Some(file), None)?;
    let signed: Vec<&str> = m
        .lines
        .iter()
        .filter_map(|l| match l {
            Line::Signature(_) => Some("rsa"),
            Line::Ed25519Signature(_) => Some("ed25519"),
            _ => None,
        })
        .collect();
    let pseudonyms = m
        .lines
        .iter()
        .filter(|l| matches!(l, Line::Pseudonym(_)))
        .count();
    let states = m.states().count();
    if as_json {
        println!(
            "{}",
            json!({
                "file": file.display().to_string(),
                "digest": alg.name(),
                "state_lines": states,
                "points": ns.points().len(),
                "pseudonyms": pseudonyms,
                "sealed": m.sealed(),
                "signatures": signed,
                "aggregate": ns.aggregate().to_hex(),
                "base": ns.base().to_hex(),
                "state": ns.model_state().to_hex(),
                "measurement": ns.measurement().to_hex(),
                "rules": crate::learning::rules_of(&m)?.names(),
                "pseudonym_notes": crate::learning::pseudonym_notes(&m)
                    .into_iter()
                    .map(|(p, n)| (p.to_hex(), n))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            })
        );
    } else {
        println!("model        {}", file.display());
        println!(
            "points       {} ({} state lines)",
            ns.points().len(),
            states
        );
        println!("pseudonyms   {pseudonyms}");
        crate::learning::print_pseudonyms(&m);
        println!("rules        {}", crate::learning::rules_of(&m)?.names());
        println!("sealed       {}", if m.sealed() { "yes" } else { "no" });
        println!(
            "signatures   {}",
            if signed.is_empty() {
                "none".to_string()
            } else {
                signed.join(", ")
            }
        );
        println!("aggregate    {}", ns.aggregate());
        println!("measurement  {}", ns.measurement());
        println!("state        {}", ns.model_state());
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_index(
    files: &[PathBuf],
    alg: HashAlg,
    mapping: Mapping,
) -> anyhow::Result<HashMap<Digest, Event>> {
    let mut idx = HashMap::new();
    let mut mapper = Mapper::new(alg, mapping);
    for f in files {
        let name = f.display().to_string();
        let mut parser = tsem_format::RecordParser::new();
        crate::replay::for_each_record(&name, &mut *open_input(f)?, &mut parser, |_, record| {
            if let tsem_format::Record::Event { event, .. } = record {
                idx.entry(mapper.coefficient(&event)).or_insert(event);
            }
            Ok(())
        })?;
    }
    Ok(idx)
}

fn diff(
    a: &Path,
    b: &Path,
    events: &[PathBuf],
    alg: HashAlg,
    mapping: Mapping,
    exit_code: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let ma = read_model(a)?;
    let mb = read_model(b)?;
    let sa: HashSet<Digest> = ma.states().copied().collect();
    let sb: HashSet<Digest> = mb.states().copied().collect();
    let only_a: Vec<Digest> = unique_in_order(ma.states())
        .into_iter()
        .filter(|d| !sb.contains(d))
        .collect();
    let only_b: Vec<Digest> = unique_in_order(mb.states())
        .into_iter()
        .filter(|d| !sa.contains(d))
        .collect();
    let idx = describe_index(events, alg, mapping)?;
    let desc = |d: &Digest| idx.get(d).map(crate::describe::one_line);
    if as_json {
        let list = |v: &[Digest]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|d| json!({"point": d.to_hex(), "event": desc(d)}))
                .collect()
        };
        println!(
            "{}",
            json!({"only_in_a": list(&only_a), "only_in_b": list(&only_b), "common": sa.intersection(&sb).count()})
        );
    } else {
        let mut out = std::io::stdout().lock();
        for (sign, v) in [("-", &only_a), ("+", &only_b)] {
            for d in v {
                match desc(d) {
                    Some(t) => writeln!(out, "{sign} {d}  {t}")?,
                    None => writeln!(out, "{sign} {d}")?,
                }
            }
        }
        writeln!(
            out,
            "{} only in {}, {} only in {}, {} common",
            only_a.len(),
            a.display(),
            only_b.len(),
            b.display(),
            sa.intersection(&sb).count()
        )?;
    }
    let differ = !only_a.is_empty() || !only_b.is_empty();
    Ok(if exit_code && differ {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn unique_in_order<'a>(it: impl Iterator<Item = &'a Digest>) -> Vec<Digest> {
    let mut seen = HashSet::new();
    it.filter(|d| seen.insert(**d)).copied().collect()
}

fn merge(out: &Path, models: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let parsed = models
        .iter()
        .map(|p| read_model(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut merged = ModelFile::merge(&parsed).map_err(|e| {
        anyhow::anyhow!(
            "{} vs {}: {e}",
            models[e.other].display(),
            models[e.first].display()
        )
    })?;
    crate::learning::carry_over(&parsed, &mut merged)
        .map_err(|e| anyhow::anyhow!("{e}: {}", names_of(models)))?;
    let names: Vec<String> = models.iter().map(|p| p.display().to_string()).collect();
    merged.lines.insert(
        0,
        Line::Comment(format!(" merged by tsem from {}", names.join(", "))),
    );
    write_atomic(out, &merged.to_text())?;
    eprintln!(
        "tsem: {} models, {} points -> {}",
        models.len(),
        merged.states().count(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn names_of(models: &[PathBuf]) -> String {
    models
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn sign(file: &Path, key: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut m = read_model(file)?;
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("{}: cannot read key", key.display()))?;
    let scheme = m
        .sign(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    match out {
        Some(o) => {
            write_atomic(o, &m.to_text())?;
            eprintln!("tsem: signed ({scheme}) -> {}", o.display());
        }
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(m.to_text().as_bytes())?;
            stdout.flush()?;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!(
                    "tsem: signed ({scheme}) model written to stdout; {} is unchanged \
                     (-o OUT or --in-place to write a file)",
                    file.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(file: &Path, key: Option<&Path>) -> anyhow::Result<ExitCode> {
    let m = read_model(file)?;
    let pinned = key
        .map(|k| {
            std::fs::read_to_string(k).with_context(|| format!("{}: cannot read key", k.display()))
        })
        .transpose()?;
    match m.verify(pinned.as_deref()) {
        Ok(v) => {
            let how = if v.pinned {
                "by the given key"
            } else {
                "by the key it carries (not pinned: pass --key to check the signer)"
            };
            println!(
                "{}: signature OK ({}) {how}",
                file.display(),
                v.schemes.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("{}: {e}", file.display()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt as _;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tsem-write-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// As `-o /dev/stdout` or `--summary-json /dev/null`: the device must stay a device.
    #[test]
    fn what_is_not_a_regular_file_is_written_in_place() {
        let d = scratch("fifo");
        let fifo = d.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // The reading end first (non-blocking: it opens with no writer), so nothing waits.
        let mut reader = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap()
        };
        write_atomic(&fifo, "model\n").unwrap();
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
        assert_eq!(got, b"model\n");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_link_is_followed_and_kept() {
        let d = scratch("link");
        std::fs::write(d.join("target"), "old").unwrap();
        std::os::unix::fs::symlink("target", d.join("link")).unwrap();
        write_atomic(&d.join("link"), "new").unwrap();
        assert!(
            std::fs::symlink_metadata(d.join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(d.join("target")).unwrap(), "new");
        write_atomic(&d.join("plain"), "x").unwrap();
        assert_eq!(std::fs::read_to_string(d.join("plain")).unwrap(), "x");
        std::fs::remove_dir_all(d).unwrap();
    }
}
