//! The messages of a modeling session: the client (the supervisor) sets the namespace up, asks
//! for the verdict on each event, reports exits, and finishes with the agent's account of the
//! run; the agent answers each from its own namespace.
//!
//! Bodies: `S` JSON-header `\n` model-text → `O`; `E` task[u64] event-line → `V` flags[u8]
//! run[u8] coefficient; `X` task → `O` (exited); `F` → `R` JSON summary. `N` reason is a
//! refusal, after which the agent ends the session; a frame the agent refuses (bad signature,
//! wrong sequence, a corrupted line) is answered with one too.

use serde_json::json;
use tsem_core::Digest;
use tsem_core::event::Event;
use tsem_core::namespace::{Config, Mode, Namespace, Outcome, Verdict};
use tsem_core::policy::{Policy, RunAction};
use tsem_format::{ModelFile, RecordKind, RecordParser, write_event};

use crate::{Session, TmaError};

type R<T> = Result<T, TmaError>;

/// How the agent's namespace is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Hash function and mapping.
    pub config: Config,
    /// Free, sealed or enforcing.
    pub mode: Mode,
    /// The deviation policy.
    pub policy: Policy,
    /// The model's text (its points, pseudonyms, aggregate, base), possibly empty.
    pub model: String,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Free => "free",
        Mode::Sealed => "sealed",
        Mode::Enforcing => "enforcing",
    }
}

fn u64_at(b: &[u8]) -> R<(u64, &[u8])> {
    if b.len() < 8 {
        return Err(TmaError::Protocol("truncated task number".into()));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    Ok((u64::from_be_bytes(a), &b[8..]))
}

/// The client side: the supervisor's handle on its agent.
pub struct Client {
    session: Session,
}

impl Client {
    /// Set the agent's namespace up over an authenticated `session`.
    pub fn start(mut session: Session, s: &Setup) -> R<Self> {
        let head = json!({
            "digest": s.config.alg.name(),
            "mapping": s.config.mapping.name(),
            "mode": mode_name(s.mode),
            "on_forensic": s.policy.name(),
        });
        let mut b = vec![b'S'];
        b.extend_from_slice(head.to_string().as_bytes());
        b.push(b'\n');
        b.extend_from_slice(s.model.as_bytes());
        session.send(&b)?;
        let mut c = Self { session };
        c.ok()?;
        Ok(c)
    }

    fn ok(&mut self) -> R<Vec<u8>> {
        let r = self.session.recv()?;
        match r.first() {
            Some(b'N') => Err(TmaError::Protocol(format!(
                "the agent refused: {}",
                String::from_utf8_lossy(&r[1..])
            ))),
            Some(_) => Ok(r),
            None => Err(TmaError::Protocol("empty reply".into())),
        }
    }

    /// The agent's outcome for `event` of `task`.
    pub fn model(&mut self, task: u64, event: &Event) -> R<Outcome> {
        let mut b = vec![b'E'];
        b.extend_from_slice(&task.to_be_bytes());
        write_event(&mut b, event, RecordKind::Trajectory);
        self.session.send(&b)?;
        let r = self.ok()?;
        if r.len() < 3 || r[0] != b'V' {
            return Err(TmaError::Protocol("not a verdict".into()));
        }
        let (f, run) = (r[1], r[2]);
        let coefficient = Digest::from_slice(&r[3..])
            .ok_or_else(|| TmaError::Protocol("bad coefficient".into()))?;
        Ok(Outcome {
            coefficient,
            new_point: f & 16 != 0,
            valid: f & 8 != 0,
            forensic: f & 2 != 0,
            verdict: if f & 1 != 0 {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            untrust: f & 4 != 0,
            run: match run {
                0 => RunAction::Continue,
                1 => RunAction::Kill,
                2 => RunAction::Restart,
                _ => return Err(TmaError::Protocol("bad run action".into())),
            },
        })
    }

    /// A task exited (its id may be reused).
    pub fn exited(&mut self, task: u64) -> R<()> {
        let mut b = vec![b'X'];
        b.extend_from_slice(&task.to_be_bytes());
        self.session.send(&b)?;
        self.ok().map(|_| ())
    }

    /// End the session: the agent's summary of the namespace (state, measurement, counts).
    pub fn finish(mut self) -> R<serde_json::Value> {
        self.session.send(b"F")?;
        let r = self.ok()?;
        if r.first() != Some(&b'R') {
            return Err(TmaError::Protocol("not a summary".into()));
        }
        serde_json::from_slice(&r[1..]).map_err(|e| TmaError::Protocol(format!("summary: {e}")))
    }
}

/// The agent's summary of its namespace.
pub fn summary(ns: &Namespace) -> serde_json::Value {
    json!({
        "state": ns.state().to_hex(),
        "measurement": ns.measurement().to_hex(),
        "events": ns.events(),
        "points": ns.points().len(),
        "forensics_events": ns.forensics_events(),
        "denied": ns.denied(),
        "mode": mode_name(ns.mode()),
        "on_forensic": ns.policy().name(),
    })
}

fn setup_ns(body: &[u8]) -> Result<Namespace, String> {
    let nl = body
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("setup without a header line")?;
    let head: serde_json::Value =
        serde_json::from_slice(&body[..nl]).map_err(|e| format!("setup header: {e}"))?;
    let field = |k: &str| head[k].as_str().ok_or(format!("setup header: no {k}"));
    let alg = field("digest")?
        .parse()
        .map_err(|_| "setup: unknown digest".to_string())?;
    let mapping = field("mapping")?
        .parse()
        .map_err(|_| "setup: unknown mapping".to_string())?;
    let policy: Policy = field("on_forensic")?.parse().map_err(|e| format!("{e}"))?;
    let mut ns = Namespace::new(Config {
        alg,
        mapping,
        ..Config::default()
    })
    .map_err(|e| format!("{e:?}"))?;
    let text = std::str::from_utf8(&body[nl + 1..]).map_err(|_| "model: not UTF-8")?;
    if !text.trim().is_empty() {
        let m = ModelFile::parse(text).map_err(|e| format!("model: {e}"))?;
        m.load_into(&mut ns, None)
            .map_err(|e| format!("model: {e:?}"))?;
    }
    match field("mode")? {
        "free" => {}
        "sealed" => ns.seal(),
        "enforcing" => ns.enforce(),
        m => return Err(format!("setup: unknown mode {m:?}")),
    }
    ns.set_policy(policy);
    Ok(ns)
}

/// Serve one authenticated session until the client finishes (the namespace is returned) or a
/// frame is refused (the error; the session is over either way).
pub fn serve(session: &mut Session) -> R<Namespace> {
    let mut ns: Option<Namespace> = None;
    let mut parser = RecordParser::new();
    loop {
        let body = match session.recv() {
            Ok(b) => b,
            // Say why before ending the session, so that a client still there fails at once
            // rather than at its reply timeout (a flipped byte on a serial line, say).
            Err(e @ TmaError::Frame(_)) => {
                let _ = session.send(format!("N{e}").as_bytes());
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let reply = match (body.first(), ns.as_mut()) {
            (Some(b'S'), None) => match setup_ns(&body[1..]) {
                Ok(n) => {
                    ns = Some(n);
                    b"O".to_vec()
                }
                Err(e) => [b"N".as_slice(), e.as_bytes()].concat(),
            },
            (Some(b'E'), Some(n)) => {
                let (task, line) = u64_at(&body[1..])?;
                let ev = match parser.parse_event(line) {
                    Ok(e) => e,
                    Err(e) => {
                        let msg = format!("event: {e}");
                        session.send(&[b"N".as_slice(), msg.as_bytes()].concat())?;
                        return Err(TmaError::Protocol(msg));
                    }
                };
                match n.model(task, &ev) {
                    Ok(o) => {
                        let f = u8::from(o.verdict == Verdict::Allow)
                            | u8::from(o.forensic) << 1
                            | u8::from(o.untrust) << 2
                            | u8::from(o.valid) << 3
                            | u8::from(o.new_point) << 4;
                        let run = match o.run {
                            RunAction::Continue => 0,
                            RunAction::Kill => 1,
                            RunAction::Restart => 2,
                        };
                        let mut r = vec![b'V', f, run];
                        r.extend_from_slice(o.coefficient.as_bytes());
                        r
                    }
                    Err(e) => format!("Ncannot model: {e:?}").into_bytes(),
                }
            }
            (Some(b'X'), Some(n)) => {
                let (task, _) = u64_at(&body[1..])?;
                n.on_exit(task);
                b"O".to_vec()
            }
            (Some(b'F'), Some(n)) => {
                let mut r = vec![b'R'];
                r.extend_from_slice(summary(n).to_string().as_bytes());
                session.send(&r)?;
                return ns.ok_or_else(|| TmaError::Protocol("no namespace".into()));
            }
            (Some(b'S'), Some(_)) => b"Nalready set up".to_vec(),
            _ => b"Nunknown message, or none before the set-up".to_vec(),
        };
        let refused = reply.first() == Some(&b'N');
        session.send(&reply)?;
        if refused {
            return Err(TmaError::Protocol(
                String::from_utf8_lossy(&reply[1..]).into_owned(),
            ));
        }
    }
}
