//! A simulated TSEM securityfs, for tests: a directory of files and FIFOs that behaves as
//! spec §5 describes, driven by a thread of the test process.
//!
//! - `control` is a FIFO; each line written is one command (§5.2), parsed and applied to the
//!   namespace created last (a real kernel applies it to the writer's namespace; the
//!   simulation serves one workload at a time). A command the kernel would refuse (EINVAL) is
//!   recorded in [`Simulator::errors`] — a FIFO cannot fail the write.
//! - `id` holds the id of the namespace created last (post-v4 semantics, §7.3), and appears
//!   with the first one (Quixote polls it until it can be opened); `aggregate` holds the
//!   hardware aggregate.
//! - `internal_tma/model0/*` are rewritten after every event an internal namespace models,
//!   by a real `tsem_core` namespace (§5.1 formats).
//! - `external_tma/<id>` is a FIFO carrying export records (§5.3): the aggregate first, then
//!   each event, whose task "sleeps" until `trusted`/`untrusted pid=N tnum=T` arrives on
//!   `control`.
//!
//! Events come from captures ([`Simulator::events_of`]) and are fed when the workload asks: it
//! writes a line to the `go` FIFO given to [`Simulator::serve_workload`], and reads one back
//! once the events are modeled or answered. What the simulation cannot show is listed in
//! docs/kernel.md.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tsem_core::event::Event;
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::namespace::{Config, Namespace};
use tsem_format::{Record, RecordKind, RecordParser, write_event};

use crate::KernelError;

/// A trust answer the simulated kernel received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The pid named.
    pub pid: u64,
    /// The tnum named.
    pub tnum: u64,
    /// `trusted` (true) or `untrusted`.
    pub trusted: bool,
}

#[derive(Debug)]
struct SimNs {
    external: bool,
    ns: Namespace,
    export: Option<std::fs::File>,
}

#[derive(Debug, Default)]
struct State {
    current: Option<SimNs>,
    last_id: u64,
    errors: Vec<String>,
    commands: Vec<String>,
    answers: Vec<Answer>,
}

/// The simulated securityfs and the thread serving its control file.
#[derive(Debug)]
pub struct Simulator {
    root: PathBuf,
    state: Arc<Mutex<State>>,
    answers: Arc<Mutex<Receiver<Answer>>>,
    control: Arc<std::fs::File>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn mkfifo(p: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn write(p: &Path, text: &[u8]) {
    // The simulator's own files: a failure shows as a test failure reading them.
    let _ = std::fs::write(p, text);
}

impl Simulator {
    /// Create the layout under `root` (which must not exist yet) and start serving `control`.
    pub fn start(root: &Path) -> Result<Self, KernelError> {
        let io = |op: &'static str| {
            move |source| KernelError::Io {
                path: root.to_path_buf(),
                op,
                source,
            }
        };
        std::fs::create_dir_all(root.join("internal_tma/model0")).map_err(io("mkdir"))?;
        std::fs::create_dir_all(root.join("external_tma")).map_err(io("mkdir"))?;
        mkfifo(&root.join("control")).map_err(io("mkfifo control"))?;
        write(
            &root.join("aggregate"),
            format!("{}\n", Digest::zero(32).to_hex()).as_bytes(),
        );
        // Read and write: the FIFO never reaches end of file between writers.
        let control = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(root.join("control"))
                .map_err(io("open control"))?,
        );
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = channel();
        let st = state.clone();
        let dir = root.to_path_buf();
        let fd = control.clone();
        std::thread::spawn(move || {
            let mut partial = Vec::new();
            loop {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
                    continue;
                }
                // Read and apply under the lock, so that a feeder seeing the FIFO empty while
                // holding it knows every command written before has taken effect.
                let mut guard = lock(&st);
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = (&*fd).read(&mut chunk) {
                    partial.extend_from_slice(&chunk[..n]);
                }
                while let Some(i) = partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=i).take(i).collect();
                    command(&dir, &mut guard, &tx, &line);
                }
            }
        });
        Ok(Self {
            root: root.to_path_buf(),
            state,
            answers: Arc::new(Mutex::new(rx)),
            control,
        })
    }

    /// Its root (what `TSEM_SECURITYFS` must name).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Commands the simulated kernel would have refused.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.state).errors.clone()
    }

    /// Every command received, in order, without the newline.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.state).commands.clone()
    }

    /// Wait until `n` commands have arrived (a FIFO write returns before the simulated kernel
    /// has read it; a real one returns after the command took effect). False after `wait`.
    pub fn settle(&self, n: usize, wait: Duration) -> bool {
        let end = std::time::Instant::now() + wait;
        while lock(&self.state).commands.len() < n {
            if std::time::Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Every trust answer received.
    pub fn answers(&self) -> Vec<Answer> {
        lock(&self.state).answers.clone()
    }

    /// The events of a capture (trajectory lines or export records), read as the kernel's
    /// bytes: a pathname need not be UTF-8 (docs/raw-bytes.md).
    pub fn events_of(path: &Path) -> Result<Vec<Event>, KernelError> {
        let bytes = std::fs::read(path).map_err(|source| KernelError::Io {
            path: path.to_path_buf(),
            op: "read",
            source,
        })?;
        let mut p = RecordParser::new();
        let mut out = Vec::new();
        for (n, l) in crate::record_lines(&bytes) {
            match p.parse(l) {
                Ok(Record::Event { event, .. }) => out.push(event),
                Ok(_) => {}
                Err(e) => {
                    return Err(KernelError::Parse {
                        path: path.to_path_buf(),
                        line: n,
                        msg: e.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Feed `events` to the current namespace as its workload causing them: an internal one
    /// models them and rewrites its files; an external one exports each and waits (at most
    /// `wait` per event) for its answer. Returns the answers (external) or none.
    pub fn feed(&self, events: &[Event], wait: Duration) -> Vec<Answer> {
        feed(
            &self.root,
            &self.state,
            &self.control,
            &self.answers,
            events,
            wait,
        )
    }

    /// Serve a workload: each line it writes to the FIFO `go` (created here) feeds `events`
    /// (see [`Self::feed`]); then one line is written to `go.done` (also a FIFO), which the
    /// workload reads to go on. One round per line, until the test ends.
    pub fn serve_workload(&self, go: &Path, events: Vec<Event>) -> Result<(), KernelError> {
        let done = go.with_extension("done");
        for p in [go, done.as_path()] {
            mkfifo(p).map_err(|source| KernelError::Io {
                path: p.to_path_buf(),
                op: "mkfifo",
                source,
            })?;
        }
        let (go, root, state, answers, control) = (
            go.to_path_buf(),
            self.root.clone(),
            self.state.clone(),
            self.answers.clone(),
            self.control.clone(),
        );
        std::thread::spawn(move || {
            loop {
                let Ok(f) = std::fs::File::open(&go) else {
                    return;
                };
                // Closed before the round: a later incarnation's `go` must wait for the next
                // round rather than land in this one's buffer.
                let asked = matches!(BufReader::new(f).lines().next(), Some(Ok(_)));
                if !asked {
                    continue;
                }
                feed(
                    &root,
                    &state,
                    &control,
                    &answers,
                    &events,
                    Duration::from_secs(60),
                );
                // The workload waits on `done`, unless it was killed meanwhile (a deviation
                // policy): then nobody reads it, and the next incarnation's `go` is served.
                for _ in 0..1000 {
                    match std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&done)
                    {
                        Ok(mut d) => {
                            let _ = d.write_all(b"done\n");
                            break;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        Ok(())
    }
}

/// The state once every command written so far has taken effect (as after a real kernel's
/// synchronous writes).
fn settled<'a>(state: &'a Mutex<State>, control: &std::fs::File) -> MutexGuard<'a, State> {
    loop {
        let st = lock(state);
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        let r = unsafe { libc::ioctl(control.as_raw_fd(), libc::FIONREAD, &mut pending) };
        if r != 0 || pending == 0 {
            return st;
        }
        drop(st);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn feed(
    root: &Path,
    state: &Mutex<State>,
    control: &std::fs::File,
    answers: &Mutex<Receiver<Answer>>,
    events: &[Event],
    wait: Duration,
) -> Vec<Answer> {
    let mut got = Vec::new();
    let external = settled(state, control)
        .current
        .as_ref()
        .is_some_and(|c| c.external);
    if !external {
        let mut st = settled(state, control);
        let State {
            current, errors, ..
        } = &mut *st;
        let Some(c) = current.as_mut() else {
            errors.push("events fed with no namespace".into());
            return got;
        };
        for e in events {
            let task = e.header.pid.or(e.header.tnum).unwrap_or(1);
            if let Err(err) = c.ns.model(task, e) {
                errors.push(format!("model: {err:?}"));
            }
        }
        write_internal(root, &c.ns);
        return got;
    }
    let rx = lock(answers);
    for (i, e) in events.iter().enumerate() {
        let mut e = e.clone();
        // The exported pid is the task's global pid and tnum its task number (post-v4).
        let pid = 4000 + (i as u64 % 7);
        let tnum = 1_000_000 + i as u64;
        e.header.pid = Some(pid);
        e.header.tnum = Some(tnum);
        let mut line = Vec::new();
        write_event(&mut line, &e, RecordKind::Event);
        line.push(b'\n');
        {
            let mut st = lock(state);
            let State {
                current, errors, ..
            } = &mut *st;
            match current.as_mut().and_then(|c| c.export.as_mut()) {
                Some(f) => {
                    if let Err(err) = f.write_all(&line) {
                        errors.push(format!("export write: {err}"));
                        return got;
                    }
                }
                None => {
                    errors.push("external namespace without an export file".into());
                    return got;
                }
            }
        }
        // The task sleeps until its agent answers.
        match rx.recv_timeout(wait) {
            Ok(a) if a.pid == pid && a.tnum == tnum => got.push(a),
            Ok(a) => {
                lock(state).errors.push(format!(
                    "answer for pid {} tnum {} while pid {pid} tnum {tnum} waits",
                    a.pid, a.tnum
                ));
                return got;
            }
            Err(_) => {
                lock(state)
                    .errors
                    .push(format!("no answer for pid {pid} tnum {tnum}"));
                return got;
            }
        }
    }
    got
}

/// Rewrite the internal TMA's files from `ns` (§5.1 formats).
fn write_internal(root: &Path, ns: &Namespace) {
    let d = root.join("internal_tma/model0");
    write(
        &d.join("measurement"),
        format!("{}\n", ns.measurement().to_hex()).as_bytes(),
    );
    write(
        &d.join("state"),
        format!("{}\n", ns.state().to_hex()).as_bytes(),
    );
    for (name, events) in [
        ("trajectory", ns.trajectory()),
        ("forensics", ns.forensics()),
    ] {
        let mut out = Vec::new();
        for e in events {
            let mut e = e.clone();
            // The kernel zeroes the pid when it stores an event (§5.1).
            e.header.pid = None;
            write_event(&mut out, &e, RecordKind::Trajectory);
            out.push(b'\n');
        }
        write(&d.join(name), &out);
    }
    for (kind, valid) in [("trajectory", true), ("forensics", false)] {
        let (mut c, mut n) = (String::new(), String::new());
        for (p, count, v) in ns.points().iter() {
            if v == valid {
                c.push_str(&format!("{}\n", p.to_hex()));
                n.push_str(&format!("{count}\n"));
            }
        }
        write(&d.join(format!("{kind}_coefficients")), c.as_bytes());
        write(&d.join(format!("{kind}_counts")), n.as_bytes());
    }
}

fn command(root: &Path, st: &mut State, tx: &Sender<Answer>, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw).into_owned();
    st.commands.push(text.clone());
    if raw.len() + 1 > crate::MAX_CONTROL {
        st.errors
            .push(format!("{text}: {} bytes, over the limit", raw.len() + 1));
        return;
    }
    let mut words = text.split(' ');
    let verb = words.next().unwrap_or_default();
    let args: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
    let arg = |k: &str| args.iter().find(|(a, _)| *a == k).map(|(_, v)| *v);
    let fail = |st: &mut State, why: &str| st.errors.push(format!("{text}: {why}"));
    match verb {
        "internal" | "external" | "export" => {
            let alg = match arg("digest").map(str::parse::<HashAlg>) {
                None => HashAlg::Sha256,
                Some(Ok(a)) => a,
                Some(Err(_)) => return fail(st, "unknown digest"),
            };
            if arg("cache").is_some_and(|c| c.parse::<u32>().is_err()) {
                return fail(st, "cache= is not a number");
            }
            if arg("nsref").is_some_and(|r| r != "initial" && r != "current") {
                return fail(st, "nsref= is neither initial nor current");
            }
            let Ok(ns) = Namespace::new(Config {
                alg,
                ..Config::default()
            }) else {
                return fail(st, "cannot create the namespace");
            };
            st.last_id += 1;
            let id = st.last_id;
            let external = verb != "internal";
            let mut export = None;
            if external {
                let p = root.join(format!("external_tma/{id}"));
                let opened = mkfifo(&p).and_then(|()| {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .custom_flags(0)
                        .open(&p)
                });
                match opened {
                    Ok(mut f) => {
                        let agg = ns.aggregate().to_hex();
                        let rec = format!(
                            "{{\"export\": {{\"type\": \"aggregate\"}}, \"aggregate\": {{\"value\": \"{agg}\"}}}}\n"
                        );
                        let _ = f.write_all(rec.as_bytes());
                        export = Some(f);
                    }
                    Err(e) => return fail(st, &format!("export file: {e}")),
                }
            }
            st.current = Some(SimNs {
                external,
                ns,
                export,
            });
            // Whole or not at all: a reader polling it never sees it half written.
            let tmp = root.join(".id.tmp");
            write(&tmp, format!("{id}\n").as_bytes());
            let _ = std::fs::rename(&tmp, root.join("id"));
            if !external && let Some(c) = &st.current {
                write_internal(root, &c.ns);
            }
        }
        "seal" | "enforce" | "state" | "pseudonym" | "base" => {
            let State {
                current, errors, ..
            } = st;
            let Some(c) = current.as_mut() else {
                return errors.push(format!("{text}: no namespace"));
            };
            let value = || {
                arg("value")
                    .and_then(|v| Digest::from_hex_len(v, c.ns.alg().size()).ok())
                    .ok_or("value= is not a digest of the namespace's size")
            };
            let r = match verb {
                "seal" => {
                    c.ns.seal();
                    Ok(())
                }
                "enforce" => {
                    c.ns.enforce();
                    Ok(())
                }
                "state" if c.external => Err("state on an external namespace"),
                "state" => value().and_then(|v| {
                    c.ns.load_point(v)
                        .map(|_| ())
                        .map_err(|_| "cannot load the point")
                }),
                "pseudonym" => value().and_then(|v| {
                    c.ns.add_pseudonym(v)
                        .map_err(|_| "cannot add the pseudonym")
                }),
                _ => value().and_then(|v| c.ns.set_base(v).map_err(|_| "cannot set the base")),
            };
            match r {
                Ok(()) if !c.external => write_internal(root, &c.ns),
                Ok(()) => {}
                Err(why) => errors.push(format!("{text}: {why}")),
            }
        }
        "trusted" | "untrusted" => {
            let pid = arg("pid").and_then(|v| v.parse().ok());
            let tnum = arg("tnum").and_then(|v| v.parse().ok());
            let (Some(pid), Some(tnum)) = (pid, tnum) else {
                return fail(st, "pid= and tnum= are required");
            };
            if !st.current.as_ref().is_some_and(|c| c.external) {
                return fail(st, "no external namespace");
            }
            let a = Answer {
                pid,
                tnum,
                trusted: verb == "trusted",
            };
            st.answers.push(a);
            let _ = tx.send(a);
        }
        "lock" => {}
        _ => fail(st, "unknown command"),
    }
}
