//! `tsem bench`: throughput measured against the physical limit in the same run.
//!
//! `bench model` runs a synthetic, realistic event mix through the modeling core and reports it
//! against the SHA-256 work those very events require (the same preimages hashed with nothing
//! else), so the ratio says how close to the hash-bound limit the core runs on this machine.

use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;
use serde_json::json;
use tsem_core::event::{
    Cell, Coe, Dentry, Event, EventHeader, EventType, FileDesc, Inode, PathRef, Sock, SockAddr,
};
use tsem_core::hash::{Digest, HashAlg};

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// A C build (shell pipeline + make -j2 + gcc) bare, under `tsem run --learn`, under
    /// `tsem run --enforce`, under `strace -f` (a peer recording the same calls) and, when it is
    /// on PATH, under syd in its tracing mode and an enforcing profile (crate::bench_peer),
    /// alternating.
    Run {
        /// Runs of each variant (medians are reported).
        #[arg(long, default_value_t = 9)]
        runs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A static HTTP server (nginx, else python3 http.server) on 127.0.0.1 under bare, learn,
    /// enforce, the mechanism's floor and strace, loaded by a built-in client: requests/s and
    /// p99 latency (crate::bench_service).
    Service {
        /// Requests per run.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Concurrent client connections.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Requests per connection before it is closed and a new one made (keep-alive).
        #[arg(long, default_value_t = 100)]
        per_connection: usize,
        /// Runs of each variant (medians are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Attestations appraised per second by `tsem verifier serve` processes over loopback HTTP
    /// (SQLite; PostgreSQL with one and two processes), median latency (crate::bench_verifier).
    Verifier(crate::bench_verifier::VerifierBenchArgs),
    /// Start-to-exit of a short busybox container under plain `runc run` and `tsem-runtime run`
    /// (unsupervised, learn, enforce), alternating; medians and ratios to runc
    /// (crate::bench_container). Root, runc and busybox-static.
    Container {
        /// Runs of each mode (medians are reported).
        #[arg(long, default_value_t = 15)]
        runs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Modeling core throughput, JSON parsing, the hash-bound limit and memory per point.
    Model {
        /// Number of synthetic events.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Points for the memory measurement.
        #[arg(long, default_value_t = 1_000_000)]
        points: usize,
        /// Repetitions (the best run is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Run one phase only, repeatedly (for profilers): core, batch, batch-hot (its input in
        /// cache, as replay feeds it), core-descriptions, map, parse, replay, replay-pipelined
        /// (replay on two threads, wall time), replay-3 (three threads); or replay-memory
        /// (--events distinct events, once).
        #[arg(long, value_name = "PHASE")]
        only: Option<String>,
    },
}

/// The sample C project (`samples/cbuild`), compiled into the binary so the benchmark needs no
/// checkout.
const CBUILD: [(&str, &str); 5] = [
    ("util.h", include_str!("../../../samples/cbuild/util.h")),
    ("util.c", include_str!("../../../samples/cbuild/util.c")),
    ("main.c", include_str!("../../../samples/cbuild/main.c")),
    ("Makefile", include_str!("../../../samples/cbuild/Makefile")),
    (
        "words.txt",
        include_str!("../../../samples/cbuild/words.txt"),
    ),
];

/// A shell pipeline plus a parallel C build: the workload of the `tsem run` tests.
const BUILD: &str =
    "sort words.txt | uniq -c | wc -l > /dev/null && make -s -j2 && ./hello > /dev/null";

pub fn run(c: BenchCmd) -> anyhow::Result<ExitCode> {
    match c {
        BenchCmd::Run { runs, json } => run_bench(runs.max(1), json),
        BenchCmd::Service {
            requests,
            clients,
            per_connection,
            runs,
            json,
        } => crate::bench_service::run(crate::bench_service::Opts {
            requests,
            clients,
            per_connection,
            runs,
            json,
        }),
        BenchCmd::Verifier(a) => crate::bench_verifier::run(a),
        BenchCmd::Container { runs, json } => crate::bench_container::run(runs.max(1), json),
        BenchCmd::Model {
            events,
            points,
            runs,
            json,
            only,
        } => match only {
            Some(phase) => crate::bench_model::profile_phase(&phase, events, runs.max(1)),
            None => crate::bench_model::model(events, points, runs.max(1), json),
        },
    }
}

/// A deterministic xorshift generator: the workload must be identical from run to run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A synthetic stream with the shape of real captures: mostly file opens, executable maps and
/// attribute reads of a working set of files, plus sockets, signals and capability checks, from a
/// few dozen tasks; about one event in ten is new.
pub fn synthetic_events(n: usize, seed: u64) -> Vec<Event> {
    let alg = HashAlg::Sha256;
    let mut r = Rng(seed | 1);
    let tasks: Vec<Digest> = (0..48u32).map(|i| alg.digest(&i.to_le_bytes())).collect();
    let working_set = (n / 200).max(16) as u64;
    let inode = |r: &mut Rng| Inode {
        uid: 0,
        gid: 0,
        mode: if r.below(4) == 0 { 0o100755 } else { 0o100644 },
        s_magic: 0xef53,
        s_id: "sda3".into(),
        s_uuid: [
            0xe8, 0x96, 0x11, 0x0b, 0x42, 0xb2, 0x4d, 0xbc, 0xa8, 0x9c, 0x7c, 0xaa, 0x36, 0x96,
            0x16, 0x85,
        ],
    };
    let path = |obj: u64| PathRef {
        dev: Some((8, 3)),
        created: None,
        path_type: Some("root".into()),
        pathname: format!(
            "/usr/lib/x86_64-linux-gnu/workload/lib{obj:06}.so.{}",
            obj % 7
        )
        .into(),
    };
    (0..n)
        .map(|i| {
            // Each object is touched by a few tasks, as libraries and configs are in real runs.
            let obj = r.below(working_set);
            let t = ((obj + r.below(3)) % tasks.len() as u64) as usize;
            let file = |r: &mut Rng| FileDesc {
                flags: 32768,
                inode: inode(r),
                path: path(obj),
                digest: alg.digest(&obj.to_le_bytes()),
            };
            let kind = r.below(100);
            let (event_type, cell) = match kind {
                0..35 => (EventType::FileOpen, Cell::File(file(&mut r))),
                35..55 => (
                    EventType::MmapFile,
                    Cell::MmapFile {
                        file: Some(file(&mut r)),
                        prot: 5,
                        flags: 2050,
                    },
                ),
                55..70 => (
                    EventType::InodeGetattr,
                    Cell::InodeGetattr(Dentry {
                        inode: Some(inode(&mut r)),
                        path: path(obj),
                    }),
                ),
                70..78 => (
                    EventType::SocketConnect,
                    Cell::SockAddr {
                        sock: Sock {
                            family: 2,
                            sock_type: 1,
                            protocol: 6,
                            owner: tasks[t],
                        },
                        addr: Some(SockAddr::Inet {
                            port: (obj % 64) as u16,
                            address: 0x0100_007f,
                        }),
                    },
                ),
                78..83 => (
                    EventType::SocketCreate,
                    Cell::SocketCreate {
                        family: 2,
                        sock_type: 1,
                        protocol: 6,
                        kern: 0,
                    },
                ),
                83..87 => (
                    EventType::TaskKill,
                    Cell::TaskKill {
                        target: tasks[(obj % 48) as usize],
                        sig: 15,
                        cross_ns: 0,
                    },
                ),
                87..92 => (
                    EventType::Capable,
                    Cell::Capable {
                        cap: (obj % 40) as u32,
                        opts: 0,
                    },
                ),
                _ => (
                    EventType::FileIoctl,
                    Cell::FileCmd {
                        file: file(&mut r),
                        cmd: 21505,
                    },
                ),
            };
            Event {
                header: EventHeader {
                    pid: None,
                    tnum: None,
                    context: Some(1),
                    number: Some(i as u64 + 1),
                    process: "workload".into(),
                    event_type,
                    ttd: 1000 + t as u64,
                    p_ttd: 1000,
                    task_id: tasks[t],
                    p_task_id: tasks[0],
                    ts: 1_000_000 + i as u64 * 1000,
                },
                coe: Coe {
                    capeff: 0x1ffffffffff,
                    ..Coe::default()
                },
                cell,
            }
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Run `argv` in `dir` after removing the build outputs; the wall time, or an error naming the
/// variant if it failed.
/// Remove what the sample build makes, so that every run builds everything.
fn clean(dir: &std::path::Path) {
    for f in ["main.o", "util.o", "hello"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

fn timed(dir: &std::path::Path, name: &str, argv: &[&str]) -> anyhow::Result<f64> {
    clean(dir);
    let t = Instant::now();
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("{name}: cannot start {}: {e}", argv[0]))?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "{name} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
    );
    Ok(secs)
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn run_bench(runs: usize, as_json: bool) -> anyhow::Result<ExitCode> {
    let machine = crate::bench_model::Machine::now();
    let dir = std::env::temp_dir().join(format!("tsem-bench-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for (name, text) in CBUILD {
        std::fs::write(dir.join(name), text)?;
    }
    let tsem = std::env::current_exe()?;
    let tsem = tsem
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("tsem's path is not UTF-8"))?;
    let model = dir.join("build.model");
    let model = model
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("temp path is not UTF-8"))?
        .to_string();
    let strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !strace {
        eprintln!("tsem bench: strace not found (apt-get install strace); its column is skipped");
    }
    eprintln!("tsem bench: learning the build's model...");
    // In a directory of its own: the workload may create nothing next to the store.
    let cache = dir.join("cache").join("digests");
    let cache = cache
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("temp path is not UTF-8"))?
        .to_string();
    let sh = ["sh", "-c", BUILD];
    let under = |opts: &[&'static str], extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [tsem, "run"].iter().map(|x| x.to_string()).collect();
        v.extend(opts.iter().chain(extra).map(|x| x.to_string()));
        v.push("--".into());
        v.extend(sh.iter().map(|x| x.to_string()));
        v
    };
    // The variants, in the order they alternate; the last one needs strace.
    // learn and enforce run as users run them, with the digest cache (kept in the scratch
    // directory rather than the user's); the cold variant hashes every file afresh.
    let variants: [(&str, Vec<String>); 8] = [
        ("bare", sh.iter().map(|x| x.to_string()).collect()),
        (
            "learn",
            under(
                &["--learn", "-o", "learned.model", "--digest-cache"],
                &[&cache],
            ),
        ),
        (
            "enforce",
            under(
                &["--enforce", "--digest-cache"],
                &[&cache, "--model", &model],
            ),
        ),
        // What the kernel backstop (Landlock) adds to enforcing.
        (
            "enforce-no-backstop",
            under(
                &["--enforce", "--no-backstop", "--digest-cache"],
                &[&cache, "--model", &model],
            ),
        ),
        (
            "enforce-cold",
            under(&["--enforce", "--no-digest-cache", "--model"], &[&model]),
        ),
        // The floor of the mechanism: the same filter, threads and ptrace, every notification
        // answered with CONTINUE at once, nothing described or modeled.
        (
            "mechanism",
            under(&["--mechanism-only", "--no-digest-cache"], &[]),
        ),
        // The floor of emulation: opens also performed and handed back (probe, reopen, ADDFD)
        // as when enforcing, still nothing described or modeled.
        (
            "emulation",
            under(&["--mechanism-only=emulate", "--no-digest-cache"], &[]),
        ),
        (
            "strace",
            ["strace", "-f", "-qq", "-o", "/dev/null"]
                .iter()
                .chain(&sh)
                .map(|x| x.to_string())
                .collect(),
        ),
    ];
    // The first learning run fills the digest cache; the runs timed below see its steady state.
    timed(
        &dir,
        "learn",
        &argv(&under(
            &["--learn", "--digest-cache"],
            &[&cache, "-o", &model],
        )),
    )?;
    let peers = Peers::prepare(&dir, &sh.map(String::from));
    let mut t: [Vec<f64>; 8] = Default::default();
    let mut tp: [Vec<f64>; 4] = Default::default();
    // Every round runs every variant, in the order of a balanced Latin square
    // (tsem_runtime::bench::balanced_order): with a fixed order `enforce` always ran right after
    // `learn` and paid for the writeback its model write starts.
    enum Job<'a> {
        Own(usize, &'a (&'static str, Vec<String>)),
        Peer(usize, &'a (&'static str, Vec<String>)),
    }
    let jobs: Vec<Job> = variants
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| *name != "strace" || strace)
        .map(|(k, v)| Job::Own(k, v))
        .chain(peers.runnable().map(|(k, v)| Job::Peer(k, v)))
        .collect();
    for i in 0..runs {
        eprintln!("tsem bench: round {}/{runs}", i + 1);
        for j in tsem_runtime::bench::balanced_order(jobs.len(), i) {
            match jobs[j] {
                Job::Own(k, (name, v)) => t[k].push(timed(&dir, name, &argv(v))?),
                Job::Peer(k, (name, v)) => tp[k].push(timed(&dir, name, &argv(v))?),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let [bare, learn, enforce, no_backstop, cold, floor, emu, st] = t.map(|mut v| median(&mut v));
    let [syd_off, syd_enforce, ref_continue, ref_emulate] = tp.map(|mut v| median(&mut v));
    let over = |x: f64| enforce / x;
    let two = |x: f64| {
        if x.is_nan() {
            serde_json::Value::Null
        } else {
            json!((x * 100.0).round() / 100.0)
        }
    };
    let over2 = |x: f64| two(over(x));
    let (over_floor, over_emu) = (over(floor), over(emu));
    let ratio = |x: f64| {
        if x.is_nan() {
            serde_json::Value::Null
        } else {
            json!((x / bare * 100.0).round() / 100.0)
        }
    };
    let ms = |x: f64| {
        if x.is_nan() {
            serde_json::Value::Null
        } else {
            json!((x * 1e4).round() / 10.0)
        }
    };
    let v = json!({
        "machine": machine.json(),
        "machine_after": crate::bench_model::Machine::now().json(),
        "runs": runs,
        "bare_ms": ms(bare),
        "learn_ms": ms(learn),
        "enforce_ms": ms(enforce),
        "strace_ms": ms(st),
        "learn_ratio": ratio(learn),
        "enforce_ratio": ratio(enforce),
        "enforce_no_backstop_ms": ms(no_backstop),
        "enforce_no_backstop_ratio": ratio(no_backstop),
        "strace_ratio": ratio(st),
        "enforce_no_digest_cache_ms": ms(cold),
        "enforce_no_digest_cache_ratio": ratio(cold),
        "mechanism_floor_ms": ms(floor),
        "mechanism_floor_ratio": ratio(floor),
        "emulation_floor_ms": ms(emu),
        "emulation_floor_ratio": ratio(emu),
        "enforce_over_mechanism_floor": (over_floor * 100.0).round() / 100.0,
        "enforce_over_emulation_floor": (over_emu * 100.0).round() / 100.0,
        "syd": peers.json(&dir),
        "syd_off_ms": ms(syd_off),
        "syd_off_ratio": ratio(syd_off),
        "syd_enforce_ms": ms(syd_enforce),
        "syd_enforce_ratio": ratio(syd_enforce),
        "reference": peers.reference_json(),
        "reference_continue_ms": ms(ref_continue),
        "reference_continue_ratio": ratio(ref_continue),
        "reference_emulate_ms": ms(ref_emulate),
        "reference_emulate_ratio": ratio(ref_emulate),
        "enforce_over_reference_emulation": over2(ref_emulate),
        "mechanism_floor_over_reference_continue": two(floor / ref_continue),
        "emulation_floor_over_reference_emulation": two(emu / ref_emulate),
    });
    if as_json {
        println!("{v}");
    } else {
        println!("machine: {}", machine.line());
        println!(
            "C build, median of {runs} rounds, variants in a balanced order; ratios are to bare in the same run"
        );
        println!("bare            {:.1} ms", bare * 1e3);
        println!(
            "tsem --learn    {:.1} ms ({:.2}x)",
            learn * 1e3,
            learn / bare
        );
        println!(
            "tsem --enforce  {:.1} ms ({:.2}x)",
            enforce * 1e3,
            enforce / bare
        );
        println!(
            "  no backstop     {:.1} ms ({:.2}x)",
            no_backstop * 1e3,
            no_backstop / bare
        );
        println!(
            "  no digest cache {:.1} ms ({:.2}x)",
            cold * 1e3,
            cold / bare
        );
        println!(
            "  interception alone (floor) {:.1} ms ({:.2}x)",
            floor * 1e3,
            floor / bare
        );
        println!(
            "  opens emulated too (floor of emulation) {:.1} ms ({:.2}x)",
            emu * 1e3,
            emu / bare
        );
        println!(
            "enforce / floor of interception {over_floor:.2}, / floor of emulation {over_emu:.2}"
        );
        if strace {
            println!("strace -f       {:.1} ms ({:.2}x)", st * 1e3, st / bare);
        }
        peers.print(&[syd_off, syd_enforce, ref_continue, ref_emulate], bare);
        if !ref_emulate.is_nan() {
            println!(
                "enforce / the reference's floor of emulation {:.2}",
                enforce / ref_emulate
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// syd, with the denial its enforcing profile was shown to make.
type SydProven = (crate::bench_peer::Syd, crate::bench_peer::Denial);

/// The columns beside tsem's: syd's two (tracing, enforcing) and the reference supervisor's two
/// (crate::bench_reference: the mechanism's floors without tsem). Each runs only if the build
/// succeeded under it once before the timed rounds; otherwise its column says why it is empty.
struct Peers {
    syd: Option<SydProven>,
    reference: Option<crate::bench_reference::Reference>,
    variants: [(&'static str, Vec<String>); 4],
    failed: [Option<String>; 4],
}

impl Peers {
    fn prepare(dir: &std::path::Path, cmd: &[String]) -> Self {
        let reference = crate::bench_reference::Reference::prepare(dir, cmd, &|| clean(dir));
        let [ref_continue, ref_emulate] = match &reference {
            Ok(r) => r.variants(cmd),
            Err(_) => Default::default(),
        };
        let variants = [
            ("syd-off", crate::bench_peer::Syd::tracing(cmd)),
            (
                "syd-enforce",
                crate::bench_peer::Syd::enforcing(dir, None, cmd),
            ),
            ("reference-continue", ref_continue),
            ("reference-emulate", ref_emulate),
        ];
        let (reference, ref_failed) = match reference {
            Ok(r) => (Some(r), None),
            Err(why) => {
                eprintln!("tsem bench: the reference supervisor: {why}; its columns are skipped");
                (None, Some(why))
            }
        };
        let (syd, syd_failed) = Self::syd(dir, &variants);
        Peers {
            syd,
            reference,
            variants,
            failed: [
                syd_failed[0].clone(),
                syd_failed[1].clone(),
                ref_failed.clone(),
                ref_failed,
            ],
        }
    }

    /// syd, its denial shown by effect, and why each of its columns is empty, if it is.
    fn syd(
        dir: &std::path::Path,
        variants: &[(&'static str, Vec<String>); 4],
    ) -> (Option<SydProven>, [Option<String>; 2]) {
        let Some(syd) = crate::bench_peer::Syd::detect() else {
            let none = || Some("syd is not on PATH".to_string());
            return (None, [none(), none()]);
        };
        let denial = match syd.prove_denial(dir) {
            Ok(d) => d,
            Err(e) => {
                let why = || Some(format!("cannot run the denial check: {e}"));
                return (None, [why(), why()]);
            }
        };
        let failed = [&variants[0], &variants[1]].map(|(name, v)| {
            timed(dir, name, &argv(v)).err().map(|e| {
                eprintln!("tsem bench: {e}; the {name} column is skipped");
                e.to_string()
            })
        });
        (Some((syd, denial)), failed)
    }

    /// The variants that ran the build, with their index.
    fn runnable(&self) -> impl Iterator<Item = (usize, &(&'static str, Vec<String>))> {
        self.variants
            .iter()
            .enumerate()
            .filter(|(k, _)| self.failed[*k].is_none())
    }

    /// syd's object (its configuration and denial, each column's reason if empty).
    fn json(&self, dir: &std::path::Path) -> serde_json::Value {
        let mut v = match &self.syd {
            Some((s, d)) => s.json(dir, None, d),
            None => json!({}),
        };
        if let Some(o) = v.as_object_mut() {
            for (k, (name, _)) in self.variants.iter().enumerate().take(2) {
                o.insert(format!("{name}_failed"), json!(self.failed[k]));
            }
        }
        v
    }

    /// The reference's object (source, its check run's counts, or why it did not run).
    fn reference_json(&self) -> serde_json::Value {
        match (&self.reference, &self.failed[2]) {
            (Some(r), _) => r.json(),
            (None, why) => json!({ "failed": why }),
        }
    }

    fn print(&self, medians: &[f64; 4], bare: f64) {
        if let Some((s, d)) = &self.syd {
            println!(
                "syd: {}; its enforcing profile denied a read outside it: {}, allowed one \
                 inside it: {}",
                s.version(),
                d.denied,
                d.allowed
            );
        }
        if let Some(r) = &self.reference {
            println!("{}", r.line());
        }
        for (k, (name, _)) in self.variants.iter().enumerate() {
            match &self.failed[k] {
                None => println!(
                    "{name:<15} {:.1} ms ({:.2}x)",
                    medians[k] * 1e3,
                    medians[k] / bare
                ),
                Some(why) => println!("{name:<15} not timed: {why}"),
            }
        }
    }
}
