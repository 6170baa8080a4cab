//! `tsem tma serve` (the modeling agent as its own process) and `tsem run --tma ADDR` (model
//! through it). docs/tma.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tsem_core::event::Event;
use tsem_core::namespace::{Namespace, Outcome};
use tsem_tma::agent::{Client, Setup};
use tsem_tma::{Addr, Session};

/// The modeling agent.
#[derive(clap::Subcommand)]
pub enum TmaCmd {
    /// Serve the modeling core to `tsem run --tma` clients, one session at a time.
    Serve(ServeArgs),
}

/// `tsem tma serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where to listen: unix:PATH, tcp:HOST:PORT, vsock:any:PORT (or vsock:CID:PORT) or
    /// serial:DEVICE[,BAUD] (one session after another on the line).
    #[arg(long, value_name = "ADDR")]
    pub listen: Addr,
    /// The agent's Ed25519 private key (`tsem keygen`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The only client public key accepted.
    #[arg(long, value_name = "PUB")]
    pub peer: PathBuf,
    /// End after one session.
    #[arg(long)]
    pub once: bool,
}

/// `tsem run --tma`.
#[derive(clap::Args, Clone, Default)]
pub struct TmaArgs {
    /// Model through the agent at ADDR (unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or
    /// serial:DEVICE[,BAUD]) instead of in this
    /// process: its verdicts decide; if it dies, lies or answers late, the workload is killed.
    #[arg(long, value_name = "ADDR", requires_all = ["tma_key", "tma_peer"],
          conflicts_with_all = ["mechanism_only", "backstop_only"])]
    pub tma: Option<Addr>,
    /// Our Ed25519 private key, which the agent must trust.
    #[arg(long, value_name = "KEY", requires = "tma")]
    pub tma_key: Option<PathBuf>,
    /// The agent's public key: no other agent is accepted.
    #[arg(long, value_name = "PUB", requires = "tma")]
    pub tma_peer: Option<PathBuf>,
}

/// How long a verdict may take before the agent counts as dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(c: TmaCmd) -> anyhow::Result<ExitCode> {
    let TmaCmd::Serve(a) = c;
    let key = tsem_tma::signing_key(&a.key)?;
    let peer = tsem_tma::verifying_key(&a.peer)?;
    let listener = tsem_tma::Listener::bind(&a.listen).with_context(|| format!("{}", a.listen))?;
    eprintln!(
        "tsem: modeling agent listening on {}",
        listener.local_addr(&a.listen)
    );
    loop {
        let stream = listener.accept().with_context(|| format!("{}", a.listen))?;
        let outcome = Session::server_over(stream, key.clone(), peer)
            .and_then(|mut s| tsem_tma::agent::serve(&mut s));
        match outcome {
            Ok(ns) => eprintln!(
                "tsem: session ended: {} events, {} forensic, state {}",
                ns.events(),
                ns.forensics_events(),
                ns.state()
            ),
            Err(e) => eprintln!("tsem: session refused or broken: {e}"),
        }
        // A serial line that failed (not one that carried a bad session) carries no more.
        if let tsem_tma::Listener::Serial(line) = &listener
            && line.is_closed()
        {
            anyhow::bail!("{}: the line closed", a.listen);
        }
        if a.once {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The run's remote agent, as the modeling handler sees it.
pub struct Agent {
    client: Option<Client>,
    addr: Addr,
    /// Why the agent can no longer be trusted (the run fails closed).
    pub failed: Option<String>,
    /// Verdicts where the agent and the supervisor's own namespace disagreed.
    pub disagreed: u64,
    /// Set when the session ends normally (the watchdog stands down).
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Agent {
    /// Connect, authenticate and set the agent's namespace up as `ns` is (before the workload
    /// starts, so a refused agent means nothing ran).
    pub fn connect(a: &TmaArgs, ns: &Namespace) -> anyhow::Result<Option<Self>> {
        let (Some(addr), Some(k), Some(p)) = (&a.tma, &a.tma_key, &a.tma_peer) else {
            return Ok(None);
        };
        let key = tsem_tma::signing_key(k)?;
        let peer = tsem_tma::verifying_key(p)?;
        let (stream, watched) = tsem_tma::connect(addr, REPLY_TIMEOUT)
            .with_context(|| format!("the modeling agent at {addr}"))?;
        let session = Session::client_over(stream, key, peer)
            .with_context(|| format!("the modeling agent at {addr}"))?;
        let setup = Setup {
            config: *ns.config(),
            mode: ns.mode(),
            policy: ns.policy(),
            model: {
                // The mode travels on its own: the file's `seal` would seal a learning agent.
                let mut m = tsem_format::ModelFile::from_namespace(ns);
                m.lines
                    .retain(|l| !matches!(l, tsem_format::model_file::Line::Seal));
                m.to_text()
            },
        };
        let client = Client::start(session, &setup)
            .with_context(|| format!("the modeling agent at {addr}"))?;
        // An agent gone while the workload makes no call: kill the workload now rather than
        // at its next verdict (it may be reading and writing what it already holds).
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let who = addr.to_string();
        tsem_tma::watch(watched, done.clone(), move || {
            eprintln!("tsem: the modeling agent at {who} went away: killing the workload");
            let me = std::process::id() as i32;
            // Repeat: a process forked while we kill is found in the next pass.
            for _ in 0..100 {
                let tree = tsem_sensor::procfs::descendants(me);
                if tree.is_empty() {
                    break;
                }
                for p in tree {
                    let _ = tsem_sensor::sys::kill(p, 9);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Ok(Some(Self {
            client: Some(client),
            addr: addr.clone(),
            failed: None,
            disagreed: 0,
            done,
        }))
    }

    /// The agent's outcome for an event the supervisor modeled as `local`; None when the agent
    /// failed (now or before), which the caller must treat as a refusal that ends the workload.
    pub fn model(&mut self, task: u64, event: &Event, local: &Outcome) -> Option<Outcome> {
        let c = self.client.as_mut()?;
        match c.model(task, event) {
            // The supervisor models too (for its outputs and attestation): an agent whose
            // verdict differs is lying or broken, and nothing continues on its word.
            Ok(o) if o != *local => {
                self.disagreed += 1;
                self.fail(format!(
                    "the modeling agent at {} answered {:?} where the model gives {:?}",
                    self.addr, o, local
                ));
                None
            }
            Ok(o) => Some(o),
            Err(e) => {
                self.fail(format!("the modeling agent at {}: {e}", self.addr));
                None
            }
        }
    }

    /// A task exited.
    pub fn exited(&mut self, task: u64) {
        if let Some(c) = self.client.as_mut()
            && let Err(e) = c.exited(task)
        {
            self.fail(format!("the modeling agent at {}: {e}", self.addr));
        }
    }

    fn fail(&mut self, why: String) {
        self.client = None;
        self.failed.get_or_insert(why);
    }

    /// End the session: the agent's summary, or why there is none.
    pub fn finish(&mut self) -> Result<serde_json::Value, String> {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let c = self.client.take().ok_or("no session")?;
        c.finish()
            .map_err(|e| format!("the modeling agent at {}: {e}", self.addr))
    }

    /// The agent's address.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }
}
