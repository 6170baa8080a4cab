//! `tsem ctl`: ask a named run (`tsem run --name NAME`) for its state, points, trajectory,
//! forensics or model while it runs (docs/control.md).

use std::io::{BufRead, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tsem_control::protocol::{Query, Request};

/// Talk to a running, named tsem.
#[derive(clap::Subcommand)]
pub enum CtlCmd {
    /// List your named runs.
    List {
        /// One JSON array of the runs' info objects.
        #[arg(long)]
        json: bool,
    },
    /// The summary: events, points, forensics, state, measurement, mode, denied.
    State(Ask),
    /// The coefficients of the points, first-seen order (forensic ones marked).
    Points(Ask),
    /// Descriptions of the valid points, as `tsem run --trajectory` writes them.
    Trajectory(Ask),
    /// Descriptions of the out-of-model points, as `tsem run --forensics` writes them.
    Forensics(Ask),
    /// Write the model so far (like `quixote-console -M`).
    Model {
        /// The run's name.
        name: String,
        /// Fold the forensic points into the model (like `quixote-console -M -u`).
        #[arg(long)]
        with_forensics: bool,
        /// Where to write the model (`-` for standard output).
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: PathBuf,
    },
}

/// A question to one run.
#[derive(clap::Args)]
pub struct Ask {
    /// The run's name.
    pub name: String,
    /// JSON lines: the same objects as `tsem replay --json` and the trajectory files.
    #[arg(long)]
    pub json: bool,
    /// Keep printing what is new until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub fn run(c: CtlCmd) -> anyhow::Result<ExitCode> {
    match c {
        CtlCmd::List { json } => list(json),
        CtlCmd::State(a) => ask(&a, Query::State),
        CtlCmd::Points(a) => ask(&a, Query::Points),
        CtlCmd::Trajectory(a) => ask(&a, Query::Trajectory),
        CtlCmd::Forensics(a) => ask(&a, Query::Forensics),
        CtlCmd::Model {
            name,
            with_forensics,
            output,
        } => {
            let mut r = tsem_control::client::ask(
                &name,
                Request {
                    query: Query::Model { with_forensics },
                    follow: false,
                },
            )?;
            let mut text = Vec::new();
            r.read_to_end(&mut text)
                .with_context(|| format!("{name}: reading the model"))?;
            // A model cut short by a broken connection must not be written as if whole.
            if !text.ends_with(b"end\n") {
                anyhow::bail!("{name}: the model arrived incomplete");
            }
            if output.as_os_str() == "-" {
                std::io::stdout().write_all(&text)?;
            } else {
                crate::model_cmd::write_atomic(&output, &text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(json: bool) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    for (name, path) in tsem_control::client::names()? {
        let info = Request {
            query: Query::Info,
            follow: false,
        };
        match tsem_control::client::ask_at(&name, &path, info) {
            Ok(mut r) => {
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line)?;
                let v: serde_json::Value = serde_json::from_slice(&line)
                    .with_context(|| format!("{name}: malformed info"))?;
                runs.push(v);
            }
            // A socket left by a run that was killed: not a run.
            Err(tsem_control::client::ClientError::NotRunning { .. }) => {}
            Err(e) => eprintln!("tsem: {e}"),
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(runs));
        return Ok(ExitCode::SUCCESS);
    }
    if !runs.is_empty() {
        println!(
            "{:<20} {:>8} {:<10} {:>10} COMMAND",
            "NAME", "PID", "MODE", "EVENTS"
        );
    }
    for r in &runs {
        let cmd: Vec<&str> = r["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        println!(
            "{:<20} {:>8} {:<10} {:>10} {}",
            r["name"].as_str().unwrap_or_default(),
            r["pid"],
            r["mode"].as_str().unwrap_or_default(),
            r["events"],
            cmd.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ask(a: &Ask, query: Query) -> anyhow::Result<ExitCode> {
    let req = Request {
        query,
        follow: a.follow,
    };
    let mut r = tsem_control::client::ask(&a.name, req)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if a.json {
            out.write_all(&line)?;
        } else {
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            human(&mut out, query, text).with_context(|| format!("{}: bad answer", a.name))?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The text form of one answer line.
fn human(out: &mut impl std::io::Write, query: Query, line: &[u8]) -> anyhow::Result<()> {
    match query {
        Query::State => {
            let v: serde_json::Value = serde_json::from_slice(line)?;
            let s = |k: &str| match &v[k] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            writeln!(out, "mode              {}", s("mode"))?;
            writeln!(out, "events            {}", s("events"))?;
            writeln!(out, "points            {}", s("points"))?;
            writeln!(out, "forensics events  {}", s("forensics_events"))?;
            writeln!(out, "forensics points  {}", s("forensics_points"))?;
            writeln!(out, "denied            {}", s("denied"))?;
            if v.get("lost_exports").is_some() {
                writeln!(out, "exported          {}", s("exported"))?;
                writeln!(out, "lost exports      {}", s("lost_exports"))?;
            }
            writeln!(out, "digest            {} ({})", s("digest"), s("mapping"))?;
            writeln!(out, "aggregate         {}", s("aggregate"))?;
            writeln!(out, "measurement       {}", s("measurement"))?;
            writeln!(out, "state             {}", s("state"))?;
        }
        Query::Points => {
            let v: serde_json::Value = serde_json::from_slice(line)?;
            let c = v["coefficient"].as_str().unwrap_or_default();
            if v["valid"].as_bool() == Some(false) {
                writeln!(out, "{c} forensic")?;
            } else {
                writeln!(out, "{c}")?;
            }
        }
        Query::Trajectory | Query::Forensics => {
            let ev = tsem_format::parse_event(line)?;
            writeln!(out, "{}", crate::describe::one_line(&ev))?;
        }
        Query::Info | Query::Model { .. } => out.write_all(line)?,
    }
    Ok(())
}
