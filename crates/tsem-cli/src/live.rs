//! What `tsem run --name` and `--export` add to a run: the control socket and the export
//! stream, hooked into the modeling handler (docs/control.md).

use std::ffi::OsString;
use std::sync::Arc;

use serde_json::json;
use tsem_control::export::{DEFAULT_QUEUE, Dest, ExportReport, Exporter};
use tsem_control::mirror::{ExtraCounters, Mirror};
use tsem_control::server::{Info, Server};
use tsem_core::event::Event;
use tsem_core::namespace::Namespace;

/// Live access to a run while it goes on.
#[derive(clap::Args, Clone, Default)]
pub struct LiveArgs {
    /// Name the run and serve its control socket for `tsem ctl` and `tsem console` while it
    /// runs ($XDG_RUNTIME_DIR/tsem/NAME.sock, else /run/tsem for root or /tmp/tsem-UID; yours
    /// alone, refused to the workload's own tasks).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["mechanism_only", "backstop_only"])]
    pub name: Option<String>,
    /// Internal (tsem-runtime): a `--name` another live run holds leaves this run unnamed (one
    /// line on stderr) instead of failing it; a container must not fail to start because
    /// another runtime root used its id.
    #[arg(long, hide = true, requires = "name")]
    pub name_if_free: bool,
    /// Stream every event description as TSEM export records as it happens, to a file, `-`,
    /// unix:PATH or mqtt://HOST:PORT/TOPIC. A consumer that cannot keep up loses records
    /// (counted as lost_exports), never holds up the workload's verdicts.
    #[arg(
        long,
        value_name = "DEST",
        value_parser = parse_dest,
        conflicts_with_all = ["mechanism_only", "backstop_only"]
    )]
    pub export: Option<Dest>,
    /// Records that may wait for a slow export consumer before new ones are dropped.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_QUEUE, requires = "export")]
    pub export_queue: usize,
}

fn parse_dest(s: &str) -> Result<Dest, String> {
    s.parse()
        .map_err(|e: tsem_control::export::ExportError| e.to_string())
}

/// The live parts of a run (each optional).
#[derive(Default)]
pub struct Live {
    counters: Arc<ExtraCounters>,
    mirror: Option<Mirror>,
    server: Option<Server>,
    export: Option<Exporter>,
}

impl Live {
    /// Start what `a` asks for, before the workload runs (so a bad name or destination fails
    /// the run before anything executes). `ns` is the namespace as the run starts.
    pub fn start(a: &LiveArgs, ns: &Namespace, cmd: &[OsString]) -> anyhow::Result<Self> {
        let counters = Arc::new(ExtraCounters::default());
        let export = a
            .export
            .as_ref()
            .map(|d| Exporter::start(d, a.export_queue, ns.aggregate(), counters.clone()))
            .transpose()?;
        let (mirror, server) = match &a.name {
            None => (None, None),
            Some(name) => {
                let mirror = Mirror::new(ns, counters.clone());
                let info = Info {
                    name: name.clone(),
                    command: cmd
                        .iter()
                        .map(|c| c.to_string_lossy().into_owned())
                        .collect(),
                    export: a.export.as_ref().map(describe_dest),
                    started: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                match Server::start(mirror.clone(), info) {
                    Ok(server) => (Some(mirror), Some(server)),
                    Err(tsem_control::server::ServerError::InUse(p)) if a.name_if_free => {
                        eprintln!(
                            "tsem: note: {}: another live run has this name; this one runs \
                             unnamed",
                            p.display()
                        );
                        (None, None)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(Self {
            counters,
            mirror,
            server,
            export,
        })
    }

    /// The run's mirror, started now if `--name` did not (`tsem run --every` reads it).
    pub fn mirror(&mut self, ns: &Namespace) -> Mirror {
        let counters = &self.counters;
        self.mirror
            .get_or_insert_with(|| Mirror::new(ns, counters.clone()))
            .clone()
    }

    /// The deviation policy killed the workload (`kill`, or `restart` before it starts again).
    pub fn policy_killed(&self) {
        use std::sync::atomic::Ordering;
        self.counters.policy_kills.fetch_add(1, Ordering::Relaxed);
    }

    /// The workload is started again (`restart`).
    pub fn restarted(&self) {
        use std::sync::atomic::Ordering;
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// After the namespace modeled `ev` (called from the modeling handler, in event order).
    #[inline]
    /// `event` is the description as modeled (after the naming rules), so an export replays to
    /// the run's state.
    pub fn after_event(&mut self, ns: &Namespace, event: &Event, untrusted: bool) {
        if let Some(x) = &mut self.export {
            x.event(event, untrusted);
        }
        if let Some(m) = &self.mirror {
            m.publish(ns);
        }
    }

    /// The run is over: followers get the end, the socket goes, the export drains.
    pub fn finish(&mut self) -> Option<ExportReport> {
        if let Some(m) = &self.mirror {
            m.close();
        }
        let report = self.export.take().map(Exporter::finish);
        if let Some(s) = self.server.take() {
            s.stop();
        }
        if let Some(r) = &report
            && r.lost > 0
        {
            eprintln!(
                "tsem: warning: {} of {} export records lost{}",
                r.lost,
                r.produced,
                r.error
                    .as_ref()
                    .map(|e| format!(" (the consumer: {e})"))
                    .unwrap_or_else(|| " (the consumer did not keep up)".into())
            );
        }
        report
    }
}

/// Add the export's counters to a run summary.
pub fn summarize(v: &mut serde_json::Value, r: Option<&ExportReport>) {
    if let Some(r) = r {
        v["exported"] = json!(r.written);
        v["lost_exports"] = json!(r.lost);
    }
}

fn describe_dest(d: &Dest) -> String {
    match d {
        Dest::File(p) => p.display().to_string(),
        Dest::Stdout => "-".into(),
        Dest::Unix(p) => format!("unix:{}", p.display()),
        Dest::Mqtt { host, port, topic } => format!("mqtt://{host}:{port}/{topic}"),
    }
}
