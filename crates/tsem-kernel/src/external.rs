//! The external modeling agent (§5.3, §7.3): read an external namespace's export pseudo-file
//! (`external_tma/<id>`) one record at a time, model each event in a userspace namespace, and
//! answer every waiting task with `trusted` or `untrusted` on the control file.
//!
//! What the kernel leaves to its agent is the agent's: the answer follows the namespace's
//! deviation policy decision ([`tsem_core::policy`]) as far as the kernel can express it. The
//! kernel knows only `trusted` and `untrusted` (sticky), so `deny` cannot refuse a single event
//! here and is refused ([`ExternalTma::with_setup`]); `kill` and `restart` answer `untrusted`
//! (the event is refused when enforcing, as the sensor refuses it) and ask the orchestrator to
//! end the workload, and every later event of the dying workload is answered `untrusted`; an
//! `async_event` nobody waits on that is out of the model under enforce asks the orchestrator to
//! end the workload, as Quixote does.

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use tsem_core::namespace::{Mode, Namespace, Verdict};
use tsem_core::policy::RunAction;
use tsem_format::{Record, RecordKind, RecordParser};

use crate::{Command, KernelError, SecurityFs};

type R<T> = Result<T, KernelError>;

/// An open export pseudo-file. Records are split on newlines whatever each read returns (the
/// kernel returns one record per read, a pipe what is there).
#[derive(Debug)]
pub struct ExportFile {
    path: PathBuf,
    file: std::fs::File,
    buf: Vec<u8>,
}

/// What one record asked of the orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing more (the task was answered, or nothing waits).
    Done,
    /// End the workload: an out-of-model event nobody could refuse, under enforce.
    EndWorkload,
    /// End the workload: the deviation policy is `kill`.
    Kill,
    /// End the workload and start it again: the deviation policy is `restart`.
    Restart,
}

/// Counters of an agent's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TmaCounts {
    /// Records read.
    pub records: u64,
    /// Tasks released (`trusted`).
    pub trusted: u64,
    /// Tasks disciplined (`untrusted`).
    pub untrusted: u64,
    /// `async_event` records modeled.
    pub async_events: u64,
    /// `log` records (events of already untrusted tasks).
    pub logs: u64,
}

/// The agent: a namespace, the securityfs it answers through, its counters.
#[derive(Debug)]
pub struct ExternalTma {
    /// The model and everything modeled so far.
    pub ns: Namespace,
    /// Counters.
    pub counts: TmaCounts,
    parser: RecordParser,
    /// The model to load once the kernel's aggregate is known (the first record), which seeds
    /// the state before any point (§4.3).
    pending: Option<Setup>,
    /// The policy ended the workload: whatever its tasks still ask is refused.
    ending: bool,
}

/// How to set the namespace up when the kernel's aggregate arrives.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The namespace's configuration.
    pub config: tsem_core::namespace::Config,
    /// The model to load, if any.
    pub model: Option<tsem_format::ModelFile>,
    /// Seal, enforce or learn.
    pub mode: Mode,
    /// The deviation policy.
    pub policy: tsem_core::policy::Policy,
}

impl Setup {
    /// The namespace for `aggregate` (the model's own when None).
    pub fn build(&self, aggregate: Option<tsem_core::Digest>) -> Result<Namespace, String> {
        let mut ns = Namespace::new(self.config).map_err(|e| format!("{e:?}"))?;
        match &self.model {
            Some(m) => m.load_into(&mut ns, aggregate),
            None => aggregate.map_or(Ok(()), |a| ns.set_aggregate(a)),
        }
        .map_err(|e| format!("{e:?}"))?;
        match self.mode {
            Mode::Free => {}
            Mode::Sealed => ns.seal(),
            Mode::Enforcing => ns.enforce(),
        }
        ns.set_policy(self.policy);
        Ok(ns)
    }
}

impl ExportFile {
    /// Open `external_tma/<id>` for reading (never blocking: a read with nothing queued
    /// returns ENODATA from the kernel, EAGAIN from a pipe).
    pub fn open(fs: &SecurityFs, id: u64) -> R<Self> {
        let path = fs.path(&format!("external_tma/{id}"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|source| KernelError::Io {
                path: path.clone(),
                op: "open",
                source,
            })?;
        Ok(Self {
            path,
            file,
            buf: Vec::new(),
        })
    }

    /// The next record (without its newline), waiting at most `timeout_ms` for one; None when
    /// nothing came.
    pub fn next(&mut self, timeout_ms: i32) -> R<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.drain(..=i).take(i).collect();
                return Ok(Some(line));
            }
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(self.io("poll", e));
            }
            if n == 0 || pfd.revents & libc::POLLIN == 0 {
                if pfd.revents & libc::POLLHUP != 0 {
                    // A pipe with no writer: wait as the kernel file would.
                    std::thread::sleep(std::time::Duration::from_millis(timeout_ms.max(0) as u64));
                }
                return Ok(None);
            }
            let mut chunk = [0u8; 4096];
            match self.file.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e)
                    if e.raw_os_error() == Some(libc::ENODATA)
                        || e.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(self.io("read", e)),
            }
            // The kernel serves each record at offset 0 (Quixote seeks back before each read);
            // a pipe cannot seek, which is fine.
            // SAFETY: lseek on an owned descriptor.
            unsafe { libc::lseek(self.file.as_raw_fd(), 0, libc::SEEK_SET) };
        }
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> KernelError {
        KernelError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }
}

impl ExternalTma {
    /// An agent modeling in `ns` (loaded, sealed or enforcing as the orchestrator chose).
    pub fn new(ns: Namespace) -> Self {
        Self {
            ns,
            counts: TmaCounts::default(),
            parser: RecordParser::new(),
            pending: None,
            ending: false,
        }
    }

    /// The workload was started again (`restart`) in a new kernel namespace: its tasks are
    /// answered by the model again.
    pub fn restarted(&mut self) {
        self.ending = false;
    }

    /// An agent that sets its namespace up when the kernel's aggregate arrives (or at the
    /// first event, with the model's aggregate, if the kernel sends none).
    pub fn with_setup(setup: Setup) -> Result<Self, String> {
        if setup.policy == tsem_core::policy::Policy::Deny {
            return Err(
                "--on-forensic deny cannot be kept by a TSEM kernel: it refuses an event \
                        only by making its task untrusted for good"
                    .into(),
            );
        }
        let mut t = Self::new(setup.build(None)?);
        t.pending = Some(setup);
        Ok(t)
    }

    /// Handle one export record read from `export` (its position for error messages), and
    /// answer its task through `fs`.
    pub fn handle(&mut self, fs: &SecurityFs, export: &ExportFile, line: &[u8]) -> R<Step> {
        self.counts.records += 1;
        let at = self.counts.records as usize;
        let bad = |msg: String| KernelError::Parse {
            path: export.path.clone(),
            line: at,
            msg,
        };
        match self.parser.parse(line).map_err(|e| bad(e.to_string()))? {
            Record::Aggregate(a) => {
                match self.pending.take() {
                    Some(setup) => self.ns = setup.build(Some(a)).map_err(bad)?,
                    None if self.ns.aggregate() == a => {}
                    None => self
                        .ns
                        .set_aggregate(a)
                        .map_err(|e| bad(format!("aggregate: {e:?}")))?,
                }
                Ok(Step::Done)
            }
            Record::Log(_) => {
                self.counts.logs += 1;
                Ok(Step::Done)
            }
            Record::Event { kind, event } => {
                // No aggregate came first: the namespace stays as set up.
                self.pending = None;
                let task = event.header.pid.or(event.header.tnum).unwrap_or(0);
                let o = self
                    .ns
                    .model(task, &event)
                    .map_err(|e| bad(format!("cannot model: {e:?}")))?;
                match kind {
                    RecordKind::Event => {
                        let (Some(pid), Some(tnum)) = (event.header.pid, event.header.tnum) else {
                            return Err(bad(
                                "an event record without pid and tnum cannot be answered".into(),
                            ));
                        };
                        let disciplined = self.ending || o.untrust || o.verdict == Verdict::Deny;
                        let c = if disciplined {
                            self.counts.untrusted += 1;
                            Command::Untrusted { pid, tnum }
                        } else {
                            self.counts.trusted += 1;
                            Command::Trusted { pid, tnum }
                        };
                        fs.command(&c)?;
                        Ok(self.policy_step(o.run))
                    }
                    RecordKind::AsyncEvent => {
                        self.counts.async_events += 1;
                        Ok(match self.policy_step(o.run) {
                            Step::Done if o.forensic && self.ns.mode() == Mode::Enforcing => {
                                Step::EndWorkload
                            }
                            s => s,
                        })
                    }
                    RecordKind::Log => {
                        self.counts.logs += 1;
                        Ok(Step::Done)
                    }
                    RecordKind::Trajectory => Err(bad(
                        "a trajectory line, not an export record (no \"export\" member)".into(),
                    )),
                }
            }
        }
    }
}

impl ExternalTma {
    /// What the deviation policy's decision asks of the orchestrator.
    fn policy_step(&mut self, run: RunAction) -> Step {
        match run {
            RunAction::Continue => Step::Done,
            RunAction::Kill => {
                self.ending = true;
                Step::Kill
            }
            RunAction::Restart => {
                self.ending = true;
                Step::Restart
            }
        }
    }
}
