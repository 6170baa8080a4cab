//! Streaming event descriptions as TSEM export records (spec §5.3) while a run goes on.
//!
//! The modeling handler hands each event to [`Exporter::event`], which clones it into a bounded
//! queue and returns at once; a writer thread serializes it and writes it to the destination.
//! A consumer that is slow, stops reading or goes away therefore never holds up a verdict: when
//! the queue is full the record is dropped and counted, and after a write error every later
//! record is counted too. `lost_exports` is exact: records produced minus records the
//! destination accepted whole (written to the file, the socket or the broker's connection).
//!
//! Record forms: first an `aggregate` record (the namespace's hardware aggregate, as the kernel
//! queues for a new external namespace), then one record per event: a `log` record (with the
//! full description, the post-v4 form) for an event of a task already untrusted, as the kernel
//! exports those; an `async_event` record for a hook the kernel runs in atomic context
//! ([`atomic_context`]: the sensor decides those synchronously all the same, the kind tells a
//! consumer what the kernel would have done); an `event` record otherwise. Lines are in the
//! kernel's form (a pathname's bytes as they are), so `tsem replay` of the export models exactly
//! the descriptions the run modeled, whatever their record kind.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use tsem_core::event::Event;
use tsem_core::hash::Digest;
use tsem_format::{RecordKind, write_event};

use crate::mirror::ExtraCounters;
use crate::mqtt::MqttError;

/// Why an export cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The destination is not one we know how to write.
    #[error("bad --export destination {0:?}: give a file, -, unix:PATH or mqtt://HOST:PORT/TOPIC")]
    BadDest(String),
    /// Opening the destination failed.
    #[error("--export {dest}: {source}")]
    Open {
        /// The destination.
        dest: String,
        /// The error.
        source: std::io::Error,
    },
    /// Connecting to the broker failed.
    #[error("--export: {0}")]
    Mqtt(#[from] MqttError),
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file (created or truncated, mode 0600: descriptions name the workload's files).
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// A Unix stream socket someone listens on.
    Unix(PathBuf),
    /// An MQTT broker and topic.
    Mqtt {
        /// Host name or address.
        host: String,
        /// Port (1883 if not given).
        port: u16,
        /// Topic every record is published to.
        topic: String,
    },
}

impl std::str::FromStr for Dest {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ExportError::BadDest(s.to_string());
        if s == "-" {
            return Ok(Dest::Stdout);
        }
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.is_empty() {
                Err(bad())
            } else {
                Ok(Dest::Unix(p.into()))
            };
        }
        if let Some(rest) = s.strip_prefix("mqtt://") {
            let (hostport, topic) = rest.split_once('/').ok_or_else(bad)?;
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
                None => (hostport, 1883),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || topic.is_empty() {
                return Err(bad());
            }
            return Ok(Dest::Mqtt {
                host: host.to_string(),
                port,
                topic: topic.to_string(),
            });
        }
        if s.is_empty() || s.contains("://") {
            return Err(bad());
        }
        Ok(Dest::File(s.into()))
    }
}

/// How an export ended.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    /// Records produced (the aggregate record and one per event).
    pub produced: u64,
    /// Records the destination accepted whole.
    pub written: u64,
    /// `produced - written`.
    pub lost: u64,
    /// Why the destination stopped taking records, if it did.
    pub error: Option<String>,
}

/// Default queue bound, in records (a record is about a kilobyte).
pub const DEFAULT_QUEUE: usize = 8192;
/// How long the end of a run waits for the writer to empty the queue before the rest is lost.
const DRAIN: Duration = Duration::from_secs(5);
/// An idle MQTT connection is pinged this often.
const PING_EVERY: Duration = Duration::from_secs(KEEPALIVE_SECS / 2);
const KEEPALIVE_SECS: u64 = crate::mqtt::KEEPALIVE as u64;

enum Item {
    Aggregate(Digest),
    Event(Box<Event>, RecordKind),
}

/// A running export.
pub struct Exporter {
    tx: Option<SyncSender<Item>>,
    produced: u64,
    counters: Arc<ExtraCounters>,
    writer: Option<JoinHandle<Option<String>>>,
    done: Receiver<()>,
    /// A duplicate of the socket, to break a write blocked on a consumer that stopped reading.
    socket: Option<OwnedFd>,
}

/// The destination with its buffer of whole records.
struct Sink {
    w: Box<dyn Write + Send>,
    /// The MQTT topic: each record goes in a PUBLISH packet.
    topic: Option<Vec<u8>>,
    buf: Vec<u8>,
    /// End offset in `buf` of each record in it.
    ends: Vec<usize>,
}

/// Bytes buffered before a write (records flow out in batches under load).
const BATCH: usize = 64 * 1024;

impl Exporter {
    /// Open `dest` (failing now, before the workload runs, if it cannot be) and queue the
    /// aggregate record. `queue` bounds the records waiting for the writer.
    pub fn start(
        dest: &Dest,
        queue: usize,
        aggregate: Digest,
        counters: Arc<ExtraCounters>,
    ) -> Result<Self, ExportError> {
        let name = match dest {
            Dest::File(p) => p.display().to_string(),
            Dest::Stdout => "-".into(),
            Dest::Unix(p) => format!("unix:{}", p.display()),
            Dest::Mqtt { host, port, topic } => format!("mqtt://{host}:{port}/{topic}"),
        };
        let open = |source| ExportError::Open {
            dest: name.clone(),
            source,
        };
        let (w, topic, socket): (Box<dyn Write + Send>, _, Option<OwnedFd>) = match dest {
            Dest::File(p) => {
                let f = File::options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(open)?;
                (Box::new(f), None, None)
            }
            Dest::Stdout => (Box::new(std::io::stdout()), None, None),
            Dest::Unix(p) => {
                let s = UnixStream::connect(p).map_err(open)?;
                let dup = s.try_clone().map_err(open)?;
                (Box::new(s), None, Some(OwnedFd::from(dup)))
            }
            Dest::Mqtt { host, port, topic } => {
                crate::mqtt::check_topic(topic)?;
                let id = format!("tsem-{}", std::process::id());
                let s = crate::mqtt::connect(host, *port, &id)?;
                let dup = s.try_clone().map_err(open)?;
                (
                    Box::new(s),
                    Some(topic.as_bytes().to_vec()),
                    Some(OwnedFd::from(dup)),
                )
            }
        };
        let sink = Sink {
            w,
            topic,
            buf: Vec::with_capacity(BATCH + 4096),
            ends: Vec::new(),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        let (done_tx, done) = std::sync::mpsc::channel();
        counters.exporting.store(1, Ordering::Relaxed);
        let c = counters.clone();
        let writer = std::thread::Builder::new()
            .name("tsem-export".into())
            .spawn(move || {
                let r = write_all(sink, &rx, &c);
                let _ = done_tx.send(());
                r
            })
            .map_err(open)?;
        let mut x = Self {
            tx: Some(tx),
            produced: 0,
            counters,
            writer: Some(writer),
            done,
            socket,
        };
        x.push(Item::Aggregate(aggregate));
        Ok(x)
    }

    /// Queue one event (`untrusted`: its task was already untrusted, a `log` record; a hook
    /// the kernel runs in atomic context, an `async_event`). Never blocks: a full queue or a
    /// dead writer loses the record, counted.
    pub fn event(&mut self, ev: &Event, untrusted: bool) {
        let kind = if untrusted {
            RecordKind::Log
        } else if atomic_context(ev.header.event_type.name()) {
            RecordKind::AsyncEvent
        } else {
            RecordKind::Event
        };
        self.push(Item::Event(Box::new(ev.clone()), kind));
    }

    fn push(&mut self, item: Item) {
        self.produced += 1;
        let Some(tx) = &self.tx else { return };
        match tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.lost_exports.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// End the export: let the writer empty the queue (within a bound; a consumer that stopped
    /// reading has its connection shut down), and count what did not arrive.
    pub fn finish(mut self) -> ExportReport {
        drop(self.tx.take());
        let mut drained = self.done.recv_timeout(DRAIN).is_ok();
        if !drained && let Some(fd) = &self.socket {
            // SAFETY: fd is our own duplicate of the socket; shutting it down makes the writer's
            // blocked write fail, so it can count and stop.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
            drained = self.done.recv_timeout(Duration::from_secs(1)).is_ok();
        }
        let mut error = None;
        if drained {
            if let Some(w) = self.writer.take() {
                error = w.join().ok().flatten();
            }
        } else {
            // A write to standard output that never returns: what it holds is not counted as
            // written, so it is reported lost even if it arrives as we exit.
            error = Some(format!(
                "the consumer took nothing for {} s at the end of the run",
                DRAIN.as_secs()
            ));
        }
        let written = self.counters.exported.load(Ordering::SeqCst);
        let lost = self.produced.saturating_sub(written);
        self.counters.lost_exports.store(lost, Ordering::SeqCst);
        ExportReport {
            produced: self.produced,
            written,
            lost,
            error,
        }
    }
}

/// The hooks a TSEM kernel runs in atomic context (spec §1.2, "LOCKED"): it exports their
/// events as `async_event` records, on which no task waits for a trust answer. The sensor
/// decides them synchronously all the same; the record kind tells a consumer (or `tsem
/// replay`, which models every kind alike) what the kernel would have done.
pub fn atomic_context(event: &str) -> bool {
    matches!(
        event,
        "task_kill"
            | "task_setpgid"
            | "task_getpgid"
            | "task_getsid"
            | "task_setnice"
            | "task_prlimit"
            | "task_setrlimit"
            | "task_setscheduler"
            | "task_getscheduler"
            | "task_prctl"
            | "ptrace_access_check"
            | "ptrace_traceme"
            | "capget"
            | "capset"
            | "capable"
            | "shm_associate"
            | "shm_shmctl"
            | "shm_shmat"
            | "sem_associate"
            | "sem_semctl"
            | "sem_semop"
            | "msg_queue_associate"
            | "msg_queue_msgsnd"
            | "msg_queue_msgctl"
            | "msg_queue_msgrcv"
            | "ipc_permission"
            | "unix_stream_connect"
            | "unix_may_send"
            | "key_permission"
    )
}

/// The writer thread: serialize, write, count. Returns why the destination stopped taking
/// records, if it did.
fn write_all(mut sink: Sink, rx: &Receiver<Item>, c: &ExtraCounters) -> Option<String> {
    let mut line = Vec::with_capacity(4096);
    let mut error: Option<String> = None;
    loop {
        let item = match rx.try_recv() {
            Ok(i) => i,
            Err(_) => {
                // Nothing waiting: push out what is buffered, then block for more.
                if error.is_none() {
                    error = sink.flush(c).err();
                }
                match rx.recv_timeout(PING_EVERY) {
                    Ok(i) => i,
                    Err(RecvTimeoutError::Timeout) => {
                        if error.is_none() {
                            error = sink.ping().err();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if error.is_some() {
            // The destination is gone: the record is lost (finish counts it).
            continue;
        }
        line.clear();
        match item {
            Item::Aggregate(d) => {
                line.extend_from_slice(
                    br#"{"export": {"type": "aggregate"}, "aggregate": {"value": ""#,
                );
                line.extend_from_slice(d.to_hex().as_bytes());
                line.extend_from_slice(br#""}}"#);
            }
            Item::Event(ev, kind) => write_event(&mut line, &ev, kind),
        }
        sink.push(&line);
        if sink.buf.len() >= BATCH {
            error = sink.flush(c).err();
        }
    }
    if error.is_none() {
        error = sink.close(c).err();
    }
    error
}

impl Sink {
    /// Buffer one record (a line, or an MQTT PUBLISH whose payload is the line).
    fn push(&mut self, line: &[u8]) {
        match &self.topic {
            Some(t) => crate::mqtt::publish(&mut self.buf, t, line),
            None => {
                self.buf.extend_from_slice(line);
                self.buf.push(b'\n');
            }
        }
        self.ends.push(self.buf.len());
    }

    /// Write the buffer out and count the records that left whole, also when the write fails
    /// part way (a record cut by the failure is lost).
    fn flush(&mut self, c: &ExtraCounters) -> Result<(), String> {
        let mut off = 0;
        let mut r = Ok(());
        while off < self.buf.len() {
            match self.w.write(&self.buf[off..]) {
                Ok(0) => {
                    r = Err("the destination takes no more bytes".to_string());
                    break;
                }
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    r = Err(e.to_string());
                    break;
                }
            }
        }
        if r.is_ok() {
            r = self.w.flush().map_err(|e| e.to_string());
        }
        let whole = self.ends.iter().take_while(|&&e| e <= off).count();
        c.exported.fetch_add(whole as u64, Ordering::SeqCst);
        self.buf.clear();
        self.ends.clear();
        r
    }

    fn ping(&mut self) -> Result<(), String> {
        if self.topic.is_some() {
            self.w
                .write_all(&crate::mqtt::PINGREQ)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn close(&mut self, c: &ExtraCounters) -> Result<(), String> {
        self.flush(c)?;
        if self.topic.is_some() {
            self.w
                .write_all(&crate::mqtt::DISCONNECT)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_bad_ones_are_named() {
        assert_eq!("-".parse::<Dest>().unwrap(), Dest::Stdout);
        assert_eq!(
            "unix:/run/x.sock".parse::<Dest>().unwrap(),
            Dest::Unix("/run/x.sock".into())
        );
        assert_eq!(
            "mqtt://127.0.0.1:1884/tsem/events".parse::<Dest>().unwrap(),
            Dest::Mqtt {
                host: "127.0.0.1".into(),
                port: 1884,
                topic: "tsem/events".into()
            }
        );
        assert_eq!(
            "mqtt://broker/t".parse::<Dest>().unwrap(),
            Dest::Mqtt {
                host: "broker".into(),
                port: 1883,
                topic: "t".into()
            }
        );
        assert_eq!(
            "out.jsonl".parse::<Dest>().unwrap(),
            Dest::File("out.jsonl".into())
        );
        for bad in [
            "",
            "unix:",
            "mqtt://host",
            "mqtt://:1/t",
            "mqtt://h:x/t",
            "http://x/y",
        ] {
            let e = bad.parse::<Dest>().unwrap_err().to_string();
            assert!(e.contains("bad --export"), "{bad}: {e}");
        }
    }

    #[test]
    fn atomic_context_hooks_export_as_async_events_and_untrusted_tasks_as_logs() {
        let dir = std::env::temp_dir().join(format!("tsem-export-kinds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("x.jsonl");
        let mut p = tsem_format::RecordParser::new();
        let capable = p
            .parse_event(r#"{"event": {"process": "a", "type": "capable", "ttd": "1", "p_ttd": "1", "task_id": "0000000000000000000000000000000000000000000000000000000000000000", "p_task_id": "0000000000000000000000000000000000000000000000000000000000000000", "ts": "1"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x0"}, "capable": {"cap": "8", "opts": "0"}}"#)
            .unwrap();
        let generic = p
            .parse_event(r#"{"event": {"process": "a", "type": "socket_create", "ttd": "1", "p_ttd": "1", "task_id": "0000000000000000000000000000000000000000000000000000000000000000", "p_task_id": "0000000000000000000000000000000000000000000000000000000000000000", "ts": "1"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x0"}, "socket_create": {"family": "2", "type": "1", "protocol": "6", "kern": "0"}}"#)
            .unwrap();
        let mut x = Exporter::start(
            &Dest::File(out.clone()),
            16,
            tsem_core::Digest::zero(32),
            Arc::new(ExtraCounters::default()),
        )
        .unwrap();
        x.event(&capable, false);
        x.event(&capable, true);
        x.event(&generic, false);
        let r = x.finish();
        assert_eq!(r.lost, 0);
        let text = std::fs::read_to_string(&out).unwrap();
        let kinds: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["export"]["type"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(kinds, ["aggregate", "async_event", "log", "event"]);
        assert!(atomic_context("task_kill") && !atomic_context("file_open"));
    }
}
