//! `tsem bench model`: the modeling core against the SHA-256 work its events require, the JSON
//! reader against peers on the same lines, and replay's memory per point, on this machine, now.
//!
//! Every figure is printed beside its same-run reference (the hash bound, serde_json, simd-json)
//! and the machine it was measured on (CPU, SHA-NI, load), so a figure is never read as another
//! machine's.

use std::hint::black_box;
use std::io::{BufReader, Cursor, Read};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Value, json};
use tsem_core::event::{Cell, Coe, Event, EventHeader, EventType, FileDesc, Inode, PathRef};
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::{Mapper, Mapping, Preimages};
use tsem_core::namespace::{BATCH, Config, Namespace, Outcome};
use tsem_format::{RecordKind, RecordParser, Strictness, write_event};

use crate::bench::{Rng, synthetic_events};
use crate::replay::{StreamStats, model_stream_threads, model_stream_with};

/// The machine a figure was measured on.
pub struct Machine {
    cpu: String,
    cores: usize,
    sha_ni: bool,
    load: [f64; 3],
}

impl Machine {
    /// This machine, with its load average now.
    pub fn now() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mut load = [f64::NAN; 3];
        if let Ok(s) = std::fs::read_to_string("/proc/loadavg") {
            for (l, v) in load.iter_mut().zip(s.split_whitespace()) {
                *l = v.parse().unwrap_or(f64::NAN);
            }
        }
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sha_ni: cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("sha"),
            load,
        }
    }

    /// As a JSON object.
    pub fn json(&self) -> Value {
        json!({
            "cpu": self.cpu,
            "cores": self.cores,
            "sha_ni": self.sha_ni,
            "load_1_5_15": self.load.map(|l| if l.is_finite() { json!(l) } else { Value::Null }),
        })
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "{}, {} cores, SHA-NI {}, load {:.2} {:.2} {:.2}",
            self.cpu,
            self.cores,
            if self.sha_ni { "yes" } else { "no" },
            self.load[0],
            self.load[1],
            self.load[2]
        )
    }
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`), if the kernel says.
/// On a shared machine wall time counts the other tenants' turns; CPU time does not.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|&ns| ns > 0)
}

/// The best of `runs` timings of `f`, in seconds of this thread's CPU time (wall time where the
/// kernel does not report it).
pub fn best_secs(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let (t, cpu) = (Instant::now(), thread_cpu_ns());
        f()?;
        let secs = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => t.elapsed().as_secs_f64(),
        };
        best = best.min(secs);
    }
    Ok(best)
}

/// The best of `runs` wall-clock timings of `f`, in seconds: for passes that run on more than
/// one thread, whose cost no single thread's CPU time shows.
pub fn best_wall_secs(
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// serde_json `Value` parse of `text`'s lines on `threads` threads, each a contiguous share of
/// the lines (the like-for-like reference for a replay on as many threads).
fn serde_on_threads(text: &str, threads: usize) -> anyhow::Result<()> {
    let lines: Vec<&str> = text.lines().collect();
    let share = lines.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = lines
            .chunks(share)
            .map(|part| {
                s.spawn(move || -> anyhow::Result<()> {
                    for line in part {
                        black_box(serde_json::from_str::<Value>(line)?);
                    }
                    Ok(())
                })
            })
            .collect();
        parts.into_iter().try_for_each(|p| {
            p.join()
                .map_err(|_| anyhow::anyhow!("a serde_json thread panicked"))?
        })
    })
}

fn e(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

/// The namespace replay models into: no descriptions kept.
fn replay_config() -> Config {
    Config {
        alg: HashAlg::Sha256,
        mapping: Mapping::Model0,
        keep_descriptions: false,
    }
}

/// The synthetic events as JSON lines, in the kernel's form.
fn as_lines(events: &[Event]) -> anyhow::Result<String> {
    let mut text = Vec::with_capacity(events.len() * 900);
    for ev in events {
        write_event(&mut text, ev, RecordKind::Trajectory);
        text.push(b'\n');
    }
    // Synthetic events hold only text, so their lines are UTF-8.
    Ok(String::from_utf8(text)?)
}

/// Model `events` one by one.
fn core_pass(cfg: Config, events: &[Event]) -> anyhow::Result<Digest> {
    let mut ns = Namespace::new(cfg).map_err(e)?;
    for ev in events {
        ns.model(0, ev).map_err(e)?;
    }
    Ok(ns.state())
}

/// Model `events` in batches, as replay does.
fn batch_pass(cfg: Config, events: &[Event]) -> anyhow::Result<Digest> {
    let mut ns = Namespace::new(cfg).map_err(e)?;
    let mut out: Vec<Outcome> = Vec::with_capacity(4 * BATCH);
    let mut batch = Vec::with_capacity(4 * BATCH);
    for group in events.chunks(4 * BATCH) {
        batch.clear();
        batch.extend(group.iter().map(|ev| (0, ev)));
        out.clear();
        ns.model_batch(&batch, &mut out).map_err(e)?;
    }
    Ok(ns.state())
}

/// [`batch_pass`] as replay feeds the core: each group of events is first copied into one
/// reused buffer (replay's parser writes the events it has just read into its pending batch), so
/// the core reads descriptions that are in the cache, not a million cold ones. With `model`
/// false only the copying is done, to be subtracted.
fn batch_pass_hot(cfg: Config, events: &[Event], model: bool) -> anyhow::Result<Digest> {
    let mut ns = Namespace::new(cfg).map_err(e)?;
    let mut out: Vec<Outcome> = Vec::with_capacity(4 * BATCH);
    let mut pending: Vec<Event> = Vec::with_capacity(4 * BATCH);
    for group in events.chunks(4 * BATCH) {
        pending.clear();
        pending.extend(group.iter().cloned());
        if model {
            let batch: Vec<(u64, &Event)> = pending.iter().map(|ev| (0, ev)).collect();
            out.clear();
            ns.model_batch(&batch, &mut out).map_err(e)?;
        } else {
            black_box(&mut pending);
        }
    }
    Ok(ns.state())
}

/// `tsem replay`'s own code over `text` on `threads` (1: one thread; 2 or more: every thread
/// parses blocks of lines and takes turns modeling them): parse, name, model, state.
fn replay_pass(text: &[u8], threads: u8) -> anyhow::Result<(Digest, u64)> {
    let mut ns = Namespace::new(replay_config()).map_err(e)?;
    let mut stats = StreamStats::default();
    model_stream_threads(
        &mut ns,
        "bench",
        &mut Cursor::new(text),
        &mut stats,
        Strictness::Kernel,
        threads,
    )?;
    Ok((ns.state(), ns.events()))
}

/// Run one phase `runs` times and print its rate: a stable target for profilers.
pub fn profile_phase(phase: &str, n: usize, runs: usize) -> anyhow::Result<ExitCode> {
    if phase == "replay-memory" {
        return replay_memory(n);
    }
    let cfg = replay_config();
    let events = synthetic_events(n, 0x7e5e_b3c4);
    let text = as_lines(&events)?;
    let secs = match phase {
        "core" => best_secs(runs, || core_pass(cfg, &events).map(|_| ()))?,
        "batch" => best_secs(runs, || batch_pass(cfg, &events).map(|_| ()))?,
        "batch-hot" => best_secs(runs, || batch_pass_hot(cfg, &events, true).map(|_| ()))?,
        "core-descriptions" => best_secs(runs, || {
            core_pass(
                Config {
                    keep_descriptions: true,
                    ..cfg
                },
                &events,
            )
            .map(|_| ())
        })?,
        "map" => {
            let mut m = Mapper::new(HashAlg::Sha256, Mapping::Model0);
            best_secs(runs, || {
                for ev in &events {
                    black_box(m.coefficient(ev));
                }
                Ok(())
            })?
        }
        "parse" => {
            let mut p = RecordParser::new();
            best_secs(runs, || {
                for line in text.lines() {
                    black_box(p.parse_event(line).map_err(e)?);
                }
                Ok(())
            })?
        }
        "replay" => best_secs(runs, || replay_pass(text.as_bytes(), 1).map(|_| ()))?,
        "replay-pipelined" => best_wall_secs(runs, || replay_pass(text.as_bytes(), 2).map(|_| ()))?,
        "replay-3" => best_wall_secs(runs, || replay_pass(text.as_bytes(), 3).map(|_| ()))?,
        other => anyhow::bail!(
            "unknown phase {other:?} (core, batch, batch-hot, core-descriptions, map, parse, replay, \
             replay-pipelined, replay-3, replay-memory)"
        ),
    };
    println!("{phase}: {:.0} events/s", n as f64 / secs);
    Ok(ExitCode::SUCCESS)
}

fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// JSON lines of `n` distinct file opens (a million distinct files), made as they are read so
/// that the input itself takes no memory.
struct DistinctLines {
    next: u64,
    n: u64,
    buf: Vec<u8>,
    at: usize,
    template: Event,
}

impl DistinctLines {
    fn new(n: usize) -> Self {
        let alg = HashAlg::Sha256;
        let t = alg.digest(b"task");
        let template = Event {
            header: EventHeader::new("workload", EventType::FileOpen, t, t),
            coe: Coe::default(),
            cell: Cell::File(FileDesc {
                flags: 32768,
                inode: Inode {
                    uid: 0,
                    gid: 0,
                    mode: 0o100644,
                    s_magic: 0xef53,
                    s_id: "sda3".into(),
                    s_uuid: [0x5a; 16],
                },
                path: PathRef {
                    dev: Some((8, 3)),
                    created: None,
                    path_type: Some("root".into()),
                    pathname: "".into(),
                },
                digest: alg.zero_digest(),
            }),
        };
        Self {
            next: 0,
            n: n as u64,
            buf: Vec::with_capacity(1 << 16),
            at: 0,
            template,
        }
    }
}

impl Read for DistinctLines {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
            while self.buf.len() < (1 << 15) && self.next < self.n {
                let i = self.next;
                self.next += 1;
                if let Cell::File(f) = &mut self.template.cell {
                    f.path.pathname = format!("/srv/data/{:03}/{i:010}.dat", i % 997).into();
                    f.digest = HashAlg::Sha256.digest(&i.to_le_bytes());
                }
                write_event(&mut self.buf, &self.template, RecordKind::Trajectory);
                self.buf.push(b'\n');
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Replay `n` distinct events with replay's own code in this (fresh) process and print the
/// memory it took per point, resident and peak, and its time per event.
fn replay_memory(n: usize) -> anyhow::Result<ExitCode> {
    let mut input = BufReader::with_capacity(1 << 16, DistinctLines::new(n));
    let mut ns = Namespace::new(replay_config()).map_err(e)?;
    let mut stats = StreamStats::default();
    let (rss0, hwm0) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    let secs = best_secs(1, || {
        model_stream_with(
            &mut ns,
            "distinct",
            &mut input,
            &mut stats,
            Strictness::Kernel,
        )?;
        black_box(ns.state());
        Ok(())
    })?;
    let (rss1, hwm1) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    anyhow::ensure!(
        ns.points().len() == n,
        "{} points, not {n}",
        ns.points().len()
    );
    // Making the lines is not replay's work: time it alone and take it out.
    let mut sink = std::io::sink();
    let gen_secs = best_secs(1, || {
        std::io::copy(&mut DistinctLines::new(n), &mut sink)?;
        Ok(())
    })?;
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => {
            json!(((b.saturating_sub(a) * 1024) as f64 / n as f64 * 10.0).round() / 10.0)
        }
        _ => Value::Null,
    };
    println!(
        "{}",
        json!({
            "points": n,
            "rss_bytes_per_point": per(rss0, rss1),
            "peak_bytes_per_point": per(hwm0, hwm1),
            "table_bytes_per_point": (ns.points().heap_bytes() as f64 / n as f64 * 10.0).round() / 10.0,
            "us_per_event": ((secs - gen_secs).max(0.0) / n as f64 * 1e8).round() / 100.0,
            "generating_us_per_event": (gen_secs / n as f64 * 1e8).round() / 100.0,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// Run [`replay_memory`] in a fresh process of this binary: its heap holds nothing else.
fn replay_memory_child(n: usize) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["bench", "model", "--only", "replay-memory", "--events"])
        .arg(n.to_string())
        .stdin(std::process::Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "replay-memory phase failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn model(n: usize, n_points: usize, runs: usize, as_json: bool) -> anyhow::Result<ExitCode> {
    let before = Machine::now();
    let cfg = replay_config();
    eprintln!("tsem bench: generating {n} synthetic events...");
    let events = synthetic_events(n, 0x7e5e_b3c4);
    let text = as_lines(&events)?;

    // The exact preimages the pipeline hashes: COE, CELL, coefficient per event; P(c) and the
    // measurement step per new point; P(c) and the state step per point at the end.
    eprintln!("tsem bench: recording the SHA-256 work those events require...");
    let mut ns = Namespace::new(cfg).map_err(e)?;
    let mut mapper = Mapper::new(HashAlg::Sha256, Mapping::Model0);
    let mut pre = Preimages::default();
    let mut bytes = Vec::<u8>::with_capacity(n * 400);
    let mut spans = Vec::<(usize, usize)>::with_capacity(n * 4);
    let mut push = |bytes: &mut Vec<u8>, b: &[u8]| {
        spans.push((bytes.len(), b.len()));
        bytes.extend_from_slice(b);
    };
    for ev in &events {
        let c = mapper.coefficient_traced(ev, &mut pre);
        push(&mut bytes, &pre.coe);
        push(&mut bytes, &pre.cell);
        push(&mut bytes, &pre.coefficient);
        if ns.model_coefficient(0, c, ev).map_err(e)?.new_point {
            // P(c) = HF(base || c), then HF(measurement || P(c)): 64 bytes each.
            push(&mut bytes, &[0u8; 64]);
            push(&mut bytes, &[0u8; 64]);
        }
    }
    let distinct = ns.points().len();
    for _ in 0..distinct {
        push(&mut bytes, &[0u8; 64]);
        push(&mut bytes, &[0u8; 64]);
    }
    drop(ns);

    eprintln!("tsem bench: measuring ({runs} runs each)...");
    let hash_secs = best_secs(runs, || {
        for &(o, l) in &spans {
            black_box(HashAlg::Sha256.digest(&bytes[o..o + l]));
        }
        Ok(())
    })?;
    drop(bytes);
    let mut state = Digest::zero(0);
    let core_secs = best_secs(runs, || {
        state = black_box(core_pass(cfg, &events)?);
        Ok(())
    })?;
    let batch_secs = best_secs(runs, || {
        let s = black_box(batch_pass(cfg, &events)?);
        anyhow::ensure!(
            s == state,
            "batched and single modeling disagree on the state"
        );
        Ok(())
    })?;
    // The core as replay uses it: the copy into the pending batch is timed alone and taken out.
    let hot_secs = best_secs(runs, || {
        let s = black_box(batch_pass_hot(cfg, &events, true)?);
        anyhow::ensure!(s == state, "hot and cold batches disagree on the state");
        Ok(())
    })?;
    let copy_secs = best_secs(runs, || {
        black_box(batch_pass_hot(cfg, &events, false)?);
        Ok(())
    })?;
    let hot_core_secs = (hot_secs - copy_secs).max(f64::MIN_POSITIVE);
    let kept_cfg = Config {
        keep_descriptions: true,
        ..cfg
    };
    let kept_secs = best_secs(runs, || {
        black_box(core_pass(kept_cfg, &events)?);
        Ok(())
    })?;
    let mut mapper2 = Mapper::new(HashAlg::Sha256, Mapping::Model0);
    let map_secs = best_secs(runs, || {
        for ev in &events {
            black_box(mapper2.coefficient(ev));
        }
        Ok(())
    })?;
    // Replay on `threads` threads must reach the pre-parsed modeling's state and count.
    let replay_agrees = |threads: u8| -> anyhow::Result<()> {
        let (s, events) = replay_pass(text.as_bytes(), threads)?;
        anyhow::ensure!(
            s == state && events == n as u64,
            "replay on {threads} thread(s) and pre-parsed modeling disagree on the state"
        );
        Ok(())
    };
    let replay_secs = best_secs(runs, || replay_agrees(1))?;
    // Two threads: no one thread's CPU time shows the cost, so wall time, and the references it
    // is divided by are timed by wall time too.
    let pipelined_secs = best_wall_secs(runs, || replay_agrees(2))?;
    let three_secs = best_wall_secs(runs, || replay_agrees(3))?;
    let replay_wall_secs = best_wall_secs(runs, || replay_pass(text.as_bytes(), 1).map(|_| ()))?;
    let serde_wall_secs = best_wall_secs(runs, || serde_on_threads(&text, 1))?;
    let serde2_wall_secs = best_wall_secs(runs, || serde_on_threads(&text, 2))?;
    // The parsers alone, on the same lines.
    let mut parser = RecordParser::new();
    let parse_secs = best_secs(runs, || {
        for line in text.lines() {
            black_box(parser.parse_event(line).map_err(e)?);
        }
        Ok(())
    })?;
    let serde_secs = best_secs(runs, || {
        for line in text.lines() {
            black_box(serde_json::from_str::<Value>(line)?);
        }
        Ok(())
    })?;
    // simd-json parses in place: each line is copied to a scratch buffer first, as a reader of
    // lines would have to.
    let mut scratch = Vec::with_capacity(4096);
    let mut buffers = simd_json::Buffers::new(4096);
    let simd_secs = best_secs(runs, || {
        for line in text.lines() {
            scratch.clear();
            scratch.extend_from_slice(line.as_bytes());
            black_box(
                simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers).map_err(e)?,
            );
        }
        Ok(())
    })?;

    eprintln!("tsem bench: memory at {n_points} points...");
    let mut big = Namespace::new(cfg).map_err(e)?;
    let mut r = Rng(0x5eed);
    for _ in 0..n_points {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&r.next().to_le_bytes());
        }
        big.load_point(Digest::from_slice(&b).unwrap_or(Digest::zero(32)))
            .map_err(e)?;
    }
    let table_per_point = big.points().heap_bytes() as f64 / n_points.max(1) as f64;
    drop(big);
    eprintln!("tsem bench: replaying {n_points} distinct events in a fresh process...");
    let replay_mem = replay_memory_child(n_points)?;
    let after = Machine::now();

    let hash_eps = rate(n, hash_secs);
    let serde_lps = rate(n, serde_secs);
    let simd_lps = rate(n, simd_secs);
    let v = json!({
        "machine": before.json(),
        "timing": if thread_cpu_ns().is_some() { "thread CPU time, best of runs" } else { "wall time, best of runs" },
        "machine_after": after.json(),
        "events": n,
        "distinct_points": distinct,
        "json_bytes_per_event": (text.len() as f64 / n as f64).round(),
        "hash_bound_events_per_s": hash_eps.round(),
        "events_per_s": rate(n, core_secs).round(),
        "ratio": r3(rate(n, core_secs) / hash_eps),
        "batch_events_per_s": rate(n, batch_secs).round(),
        "batch_ratio": r3(rate(n, batch_secs) / hash_eps),
        "batch_hot_events_per_s": rate(n, hot_core_secs).round(),
        "batch_hot_ratio": r3(rate(n, hot_core_secs) / hash_eps),
        "batch_hot_copy_us_per_event": (copy_secs / n as f64 * 1e8).round() / 100.0,
        "keep_descriptions_events_per_s": rate(n, kept_secs).round(),
        "keep_descriptions_ratio": r3(rate(n, kept_secs) / hash_eps),
        "mapping_events_per_s": rate(n, map_secs).round(),
        "mapping_ratio": r3(rate(n, map_secs) / hash_eps),
        "replay_events_per_s": rate(n, replay_secs).round(),
        "replay_us_per_event": (replay_secs / n as f64 * 1e8).round() / 100.0,
        "replay_ratio_to_hash_bound": r3(rate(n, replay_secs) / hash_eps),
        "replay_vs_serde_json_value": r3(rate(n, replay_secs) / serde_lps),
        "replay_vs_simd_json": r3(rate(n, replay_secs) / simd_lps),
        "replay_pipelined": {
            "threads": "2 (the default): both parse blocks of lines, whichever is free models them in order",
            "timing": "wall time, best of runs (as are the references here)",
            "events_per_s": rate(n, pipelined_secs).round(),
            "us_per_event": (pipelined_secs / n as f64 * 1e8).round() / 100.0,
            "single_threaded_replay_us_per_event": (replay_wall_secs / n as f64 * 1e8).round() / 100.0,
            "speedup_over_single_threaded": r3(replay_wall_secs / pipelined_secs),
            "serde_json_value_1_thread_lines_per_s": rate(n, serde_wall_secs).round(),
            "serde_json_value_2_threads_lines_per_s": rate(n, serde2_wall_secs).round(),
            "vs_serde_json_value_1_thread": r3(serde_wall_secs / pipelined_secs),
            "vs_serde_json_value_2_threads": r3(serde2_wall_secs / pipelined_secs),
            "single_threaded_vs_serde_json_value_1_thread": r3(serde_wall_secs / replay_wall_secs),
        },
        "replay_threads_3": {
            "threads": "3: every thread parses blocks of lines, whichever is free models them in order",
            "timing": "wall time, best of runs",
            "events_per_s": rate(n, three_secs).round(),
            "us_per_event": (three_secs / n as f64 * 1e8).round() / 100.0,
            "vs_serde_json_value_1_thread": r3(serde_wall_secs / three_secs),
            "vs_serde_json_value_2_threads": r3(serde2_wall_secs / three_secs),
        },
        "parse_lines_per_s": rate(n, parse_secs).round(),
        "serde_json_value_lines_per_s": serde_lps.round(),
        "simd_json_borrowed_lines_per_s": simd_lps.round(),
        "parse_vs_serde_json_value": r3(rate(n, parse_secs) / serde_lps),
        "parse_vs_simd_json": r3(rate(n, parse_secs) / simd_lps),
        "table_bytes_per_point": (table_per_point * 10.0).round() / 10.0,
        "replay_memory": replay_mem,
        "points_measured": n_points,
        "state": state.to_hex(),
    });
    if as_json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let mb = |x: f64| x / 1e6;
    println!(
        "machine  {} (after: load {:.2})",
        before.line(),
        after.load[0]
    );
    println!(
        "timing   {}, best of {runs}",
        if thread_cpu_ns().is_some() {
            "this thread's CPU time"
        } else {
            "wall time"
        }
    );
    println!(
        "events   {n} ({distinct} distinct points, {:.0} JSON bytes each)",
        text.len() as f64 / n as f64
    );
    println!(
        "reference: SHA-256 of exactly the preimages these events need   {:.3} M events/s",
        mb(hash_eps)
    );
    for (name, secs) in [
        ("modeling core, one by one (replay's namespace)", core_secs),
        ("modeling core, batches of 16", batch_secs),
        (
            "modeling core, batches, input in cache (replay)",
            hot_core_secs,
        ),
        ("modeling core keeping descriptions (tsem run)", kept_secs),
        ("coefficients only", map_secs),
        ("tsem replay: JSON lines in, state out", replay_secs),
    ] {
        println!(
            "{name:<48} {:.3} M events/s = {:.3} x the hash bound",
            mb(rate(n, secs)),
            rate(n, secs) / hash_eps
        );
    }
    println!(
        "reference: serde_json::Value parse only  {:.3} M lines/s",
        mb(serde_lps)
    );
    println!(
        "reference: simd-json borrowed Value parse only  {:.3} M lines/s",
        mb(simd_lps)
    );
    println!(
        "tsem parse only {:.3} M lines/s = {:.2} x serde_json, {:.2} x simd-json; replay {:.2} x serde_json, {:.2} µs/event",
        mb(rate(n, parse_secs)),
        rate(n, parse_secs) / serde_lps,
        rate(n, parse_secs) / simd_lps,
        rate(n, replay_secs) / serde_lps,
        replay_secs / n as f64 * 1e6
    );
    println!(
        "tsem replay on 2 threads (the default; wall time): {:.2} µs/event = {:.2} x serde_json on 1 thread, \
         {:.2} x serde_json on 2 threads ({:.2} x single-threaded replay, which is {:.2} x serde_json by wall time)",
        pipelined_secs / n as f64 * 1e6,
        serde_wall_secs / pipelined_secs,
        serde2_wall_secs / pipelined_secs,
        replay_wall_secs / pipelined_secs,
        serde_wall_secs / replay_wall_secs
    );
    println!(
        "tsem replay --threads 3 (wall time): {:.2} µs/event = {:.2} x serde_json on 1 thread, {:.2} x on 2 threads",
        three_secs / n as f64 * 1e6,
        serde_wall_secs / three_secs,
        serde2_wall_secs / three_secs
    );
    println!("point table  {table_per_point:.1} bytes/point at {n_points} points");
    println!(
        "tsem replay of {n_points} distinct events: {} bytes/point resident, {} peak, {} µs/event",
        replay_mem["rss_bytes_per_point"],
        replay_mem["peak_bytes_per_point"],
        replay_mem["us_per_event"]
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distinct_lines_are_distinct_points_and_every_pass_agrees() {
        let mut input = BufReader::new(DistinctLines::new(3000));
        let mut ns = Namespace::new(replay_config()).unwrap();
        let mut stats = StreamStats::default();
        model_stream_with(&mut ns, "t", &mut input, &mut stats, Strictness::Kernel).unwrap();
        assert_eq!((ns.events(), ns.points().len()), (3000, 3000));

        // The passes bench model times compute one state.
        let events = synthetic_events(2000, 9);
        let text = as_lines(&events).unwrap();
        let state = core_pass(replay_config(), &events).unwrap();
        assert_eq!(batch_pass(replay_config(), &events).unwrap(), state);
        assert_eq!(
            batch_pass_hot(replay_config(), &events, true).unwrap(),
            state
        );
        assert_eq!(replay_pass(text.as_bytes(), 1).unwrap(), (state, 2000));
        assert_eq!(replay_pass(text.as_bytes(), 2).unwrap(), (state, 2000));
        assert_eq!(replay_pass(text.as_bytes(), 3).unwrap(), (state, 2000));
        serde_on_threads(&text, 2).unwrap();
        let m = Machine::now();
        assert!(m.cores >= 1 && !m.cpu.is_empty() && m.line().contains("SHA-NI"));
    }

    #[test]
    fn simd_json_cannot_read_what_the_kernel_writes() {
        // Why the SIMD peer is only a peer: a pathname's bytes need not be UTF-8 (the kernel
        // prints them with %s), and simd-json refuses such a line, which our reader takes.
        let mut line = b"{\"p\": \"/tmp/\xff\xfe\"}".to_vec();
        assert!(simd_json::to_borrowed_value(&mut line).is_err());
        let mut doc = tsem_format::json::Document::new();
        let line = b"{\"p\": \"/tmp/\xff\xfe\"}".to_vec();
        doc.parse(&line).unwrap();
        assert_eq!(&*doc.root()[0].value.as_bytes().unwrap(), b"/tmp/\xff\xfe");
    }
}
