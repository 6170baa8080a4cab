//! `tsem console [NAME]`: a terminal view of a running, named `tsem run` (docs/control.md):
//! live counters, the state and measurement, a scrolling trajectory and the forensics with
//! `tsem replay --explain`-style field differences. Without a terminal it prints lines instead.

use std::collections::VecDeque;
use std::io::BufRead as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use tsem_control::protocol::{Query, Request};
use tsem_core::event::Event;

/// Watch a named run: counters, state, trajectory, forensics (q quits).
#[derive(clap::Args)]
pub struct ConsoleArgs {
    /// The run's name (default: your only named run).
    pub name: Option<String>,
    /// Explain each forensic event against the events of this trajectory too (e.g. the run the
    /// model was learned from, `tsem run --trajectory`), as `tsem replay --explain` does.
    /// Repeatable. Without it only the trajectory this run has shown so far is used, which is
    /// empty for a run loaded from a model.
    #[arg(long, value_name = "TRAJECTORY")]
    pub explain: Vec<std::path::PathBuf>,
}

/// What the watcher threads collect.
#[derive(Default)]
struct Seen {
    summary: serde_json::Value,
    /// The newest trajectory descriptions (bounded) and how many there were in all.
    trajectory: VecDeque<Event>,
    trajectory_total: u64,
    /// Every forensic description (each one matters), its explanation once computed, and the
    /// events to explain them by: those of `--explain`, then the trajectory seen so far.
    forensics: Vec<Event>,
    explained: Vec<Option<Vec<String>>>,
    reference: Vec<Event>,
    /// How many descriptions `reference` may hold.
    reference_max: usize,
    ended: bool,
    error: Option<String>,
}

/// Descriptions of the run's trajectory kept for the explanation of forensics (the nearest
/// in-model event), besides those of `--explain`.
const REFERENCE_MAX: usize = 20_000;
const TRAJECTORY_SHOWN: usize = 500;

pub fn run(a: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let name = match a.name {
        Some(n) => n,
        None => {
            let live: Vec<String> = tsem_control::client::names()?
                .into_iter()
                .filter(|(_, p)| std::os::unix::net::UnixStream::connect(p).is_ok())
                .map(|(n, _)| n)
                .collect();
            match live.as_slice() {
                [one] => one.clone(),
                [] => return crate::usage("no named run (start one with `tsem run --name NAME`)"),
                _ => {
                    return crate::usage(format!(
                        "several named runs ({}): give one",
                        live.join(", ")
                    ));
                }
            }
        }
    };
    // Fail now, before taking over the terminal, if a file is bad or the run is not there.
    let reference = crate::replay::read_events(&a.explain)?;
    let first = ask_line(&name, Query::State)?;
    let seen = Arc::new(Mutex::new(Seen {
        summary: first,
        reference_max: reference.len() + REFERENCE_MAX,
        reference,
        ..Seen::default()
    }));
    watch(&name, &seen)?;
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        tui(&name, &seen)
    } else {
        lines(&seen)
    }
}

fn ask_line(name: &str, query: Query) -> anyhow::Result<serde_json::Value> {
    let mut r = tsem_control::client::ask(
        name,
        Request {
            query,
            follow: false,
        },
    )?;
    let mut l = Vec::new();
    r.read_until(b'\n', &mut l)?;
    Ok(serde_json::from_slice(&l)?)
}

/// Three followers: the state, the trajectory and the forensics.
fn watch(name: &str, seen: &Arc<Mutex<Seen>>) -> anyhow::Result<()> {
    for query in [Query::State, Query::Trajectory, Query::Forensics] {
        let r = tsem_control::client::ask(
            name,
            Request {
                query,
                follow: true,
            },
        )?;
        let seen = seen.clone();
        std::thread::spawn(move || {
            let lock = || seen.lock().unwrap_or_else(|p| p.into_inner());
            for line in r.split(b'\n') {
                let Ok(line) = line else { break };
                match query {
                    Query::State => {
                        if let Ok(v) = serde_json::from_slice(&line) {
                            lock().summary = v;
                        }
                    }
                    _ => match tsem_format::parse_event(&line) {
                        Ok(ev) => {
                            let mut s = lock();
                            if query == Query::Forensics {
                                s.forensics.push(ev);
                                s.explained.push(None);
                            } else {
                                if s.reference.len() < s.reference_max {
                                    s.reference.push(ev.clone());
                                }
                                s.trajectory_total += 1;
                                s.trajectory.push_back(ev);
                                if s.trajectory.len() > TRAJECTORY_SHOWN {
                                    s.trajectory.pop_front();
                                }
                            }
                        }
                        Err(e) => lock().error = Some(e.to_string()),
                    },
                }
            }
            if query == Query::State {
                lock().ended = true;
            }
        });
    }
    Ok(())
}

fn num(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn text(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or("-").to_string()
}

/// The counters line, with events/s over the last interval.
fn counters(s: &serde_json::Value, rate: f64) -> String {
    let lost = match s.get("lost_exports") {
        Some(l) => l.to_string(),
        None => "-".into(),
    };
    format!(
        "events {} ({rate:.0}/s)  points {}  forensics {} ({} points)  denied {}  lost exports {lost}  mode {}",
        num(s, "events"),
        num(s, "points"),
        num(s, "forensics_events"),
        num(s, "forensics_points"),
        num(s, "denied"),
        text(s, "mode"),
    )
}

impl Seen {
    /// The lines of forensic event `i`, explained once (against the reference known then: a
    /// redraw must not compare every shown event with every reference event again).
    fn explained(&mut self, i: usize) -> &[String] {
        let Self {
            forensics,
            explained,
            reference,
            ..
        } = self;
        explained[i].get_or_insert_with(|| explain(&forensics[i], reference))
    }
}

/// A forensic event and why it is out of the model.
fn explain(ev: &Event, reference: &[Event]) -> Vec<String> {
    let mut out = vec![format!("forensic: {}", crate::describe::one_line(ev))];
    if let Some(e) = tsem_format::explain::explain(ev, reference) {
        out.push(format!(
            "  nearest in-model: {}",
            crate::describe::one_line(&reference[e.nearest])
        ));
        for d in &e.differences {
            out.push(format!(
                "  differs: {} = {} (model: {})",
                d.field,
                d.ours.as_deref().unwrap_or("absent"),
                d.theirs.as_deref().unwrap_or("absent")
            ));
        }
    }
    out
}

/// Line output (no terminal): a counters line per change, each new description, until the end.
fn lines(seen: &Arc<Mutex<Seen>>) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let (mut shown_t, mut shown_f, mut last) = (0u64, 0usize, String::new());
    let mut rate = Rate::default();
    loop {
        let (ended, out) = {
            let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = Vec::new();
            let r = rate.update(num(&s.summary, "events"));
            let c = counters(&s.summary, r);
            if c != last {
                out.push(c.clone());
                last = c;
            }
            let new_t = (s.trajectory_total - shown_t) as usize;
            for ev in s
                .trajectory
                .iter()
                .skip(s.trajectory.len().saturating_sub(new_t))
            {
                out.push(format!("trajectory: {}", crate::describe::one_line(ev)));
            }
            shown_t = s.trajectory_total;
            for i in shown_f..s.forensics.len() {
                out.extend_from_slice(s.explained(i));
            }
            shown_f = s.forensics.len();
            if let Some(e) = &s.error {
                out.push(format!("error: {e}"));
            }
            (s.ended, out)
        };
        let mut o = std::io::stdout().lock();
        for l in out {
            writeln!(o, "{l}")?;
        }
        o.flush()?;
        if ended {
            writeln!(o, "run ended")?;
            return Ok(ExitCode::SUCCESS);
        }
        drop(o);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Events per second between updates.
#[derive(Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    value: f64,
}

impl Rate {
    fn update(&mut self, events: u64) -> f64 {
        let now = Instant::now();
        match self.last {
            Some((t, n)) if now.duration_since(t) >= Duration::from_millis(500) => {
                let dt = now.duration_since(t).as_secs_f64();
                self.value = events.saturating_sub(n) as f64 / dt;
                self.last = Some((now, events));
            }
            None => self.last = Some((now, events)),
            _ => {}
        }
        self.value
    }
}

fn tui(name: &str, seen: &Arc<Mutex<Seen>>) -> anyhow::Result<ExitCode> {
    let mut term = ratatui::init();
    let r = tui_loop(&mut term, name, seen);
    ratatui::restore();
    r
}

fn tui_loop(
    term: &mut ratatui::DefaultTerminal,
    name: &str,
    seen: &Arc<Mutex<Seen>>,
) -> anyhow::Result<ExitCode> {
    let mut rate = Rate::default();
    loop {
        {
            let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
            let r = rate.update(num(&s.summary, "events"));
            let n = s.forensics.len();
            let fl: Vec<String> = (n.saturating_sub(20)..n)
                .rev()
                .flat_map(|i| s.explained(i).to_vec())
                .collect();
            term.draw(|f| {
                let [top, state, traj, forens, help] = Layout::vertical([
                    Constraint::Length(3),
                    Constraint::Length(5),
                    // The forensics, each with its explanation, need the room.
                    Constraint::Fill(1),
                    Constraint::Fill(2),
                    Constraint::Length(1),
                ])
                .areas(f.area());
                let title = if s.ended {
                    format!(" tsem console: {name} (ended) ")
                } else {
                    format!(" tsem console: {name} ")
                };
                f.render_widget(
                    Paragraph::new(counters(&s.summary, r))
                        .block(Block::default().borders(Borders::ALL).title(title)),
                    top,
                );
                let st = format!(
                    "state        {}\nmeasurement  {}\naggregate    {}",
                    text(&s.summary, "state"),
                    text(&s.summary, "measurement"),
                    text(&s.summary, "aggregate")
                );
                f.render_widget(
                    Paragraph::new(st)
                        .block(Block::default().borders(Borders::ALL).title(" state ")),
                    state,
                );
                let rows = usize::from(traj.height.saturating_sub(2));
                let t: Vec<String> = s
                    .trajectory
                    .iter()
                    .skip(s.trajectory.len().saturating_sub(rows))
                    .map(crate::describe::one_line)
                    .collect();
                f.render_widget(
                    Paragraph::new(t.join("\n")).block(
                        Block::default()
                            .borders(Borders::ALL)
                            .title(format!(" trajectory ({}) ", s.trajectory_total)),
                    ),
                    traj,
                );
                f.render_widget(
                    Paragraph::new(fl.join("\n"))
                        .wrap(Wrap { trim: false })
                        .block(
                            Block::default().borders(Borders::ALL).title(format!(
                                " forensics ({}, newest first) ",
                                s.forensics.len()
                            )),
                        ),
                    forens,
                );
                f.render_widget(Paragraph::new("q: quit"), help);
            })?;
        }
        if event::poll(Duration::from_millis(250))?
            && let TermEvent::Key(k) = event::read()?
            && k.kind == KeyEventKind::Press
        {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}
