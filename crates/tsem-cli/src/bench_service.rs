//! `tsem bench service`: a real HTTP server on 127.0.0.1 under each variant of `tsem run`.
//!
//! A build pays the sensor per file; a service pays it per request (each request's `open`, each
//! connection's `accept`). The server (nginx from Debian, else python3's `http.server`) serves a
//! few static files from a scratch directory; a client built in (blocking sockets, one thread per
//! connection, HTTP/1.1 keep-alive, a fresh connection every `--per-connection` requests) sends a
//! fixed number of requests. Only the load is timed, not the server's start-up: requests/s and the
//! 99th percentile latency of each variant, medians over alternating rounds, as ratios to bare and
//! to the mechanism's floor (`--mechanism-only`) of the same invocation.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// The files served, by name and size: a page, a stylesheet, a script, an image.
const FILES: [(&str, usize); 4] = [
    ("index.html", 612),
    ("style.css", 4 << 10),
    ("app.js", 16 << 10),
    ("logo.png", 64 << 10),
];

/// What the client measured in one round of one variant.
struct Load {
    secs: f64,
    /// Each request's latency in seconds (the connect of a new connection included).
    latencies: Vec<f64>,
    /// Requests that did not get `200 OK` with the whole body (a denial shows up here).
    errors: usize,
}

/// The server program and how it is started in `dir`.
enum Server {
    Nginx(PathBuf),
    Python(PathBuf),
}

impl Server {
    fn find() -> Option<Server> {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        if let Some(p) = nginx {
            return Some(Server::Nginx(p));
        }
        let ok = Command::new("python3")
            .arg("-c")
            .arg("import http.server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Server::Python(PathBuf::from("python3")))
    }

    fn name(&self) -> &'static str {
        match self {
            Server::Nginx(_) => "nginx",
            Server::Python(_) => "python3 http.server",
        }
    }

    /// A shell line that records its pid and becomes the server, so that every variant (bare,
    /// under tsem, under strace) is stopped the same way: SIGINT to that pid, a clean exit.
    fn script(&self, dir: &Path, port: u16) -> anyhow::Result<String> {
        let d = dir.display();
        Ok(match self {
            Server::Nginx(bin) => {
                let conf = format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                     error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
                     http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
                     client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
                     fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
                     scgi_temp_path {d}/tmp/scgi;\n\
                     server {{ listen 127.0.0.1:{port}; root {d}/html; }}\n}}\n"
                );
                // Everything nginx writes exists before the model is learned, so the learned
                // run and the enforced ones see the same objects (a file the workload creates is
                // described as created, and in a later run it is not).
                for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                    std::fs::create_dir_all(dir.join("tmp").join(t))?;
                }
                for f in ["error.log", "nginx.pid"] {
                    std::fs::write(dir.join(f), "")?;
                }
                std::fs::write(dir.join("nginx.conf"), conf)?;
                format!(
                    "echo $$ > {d}/server.pid && exec {} -p {d} -c {d}/nginx.conf -e {d}/error.log",
                    bin.display()
                )
            }
            Server::Python(bin) => format!(
                "echo $$ > {d}/server.pid && exec {} -m http.server --bind 127.0.0.1 \
                 --directory {d}/html {port}",
                bin.display()
            ),
        })
    }
}

/// Options of `tsem bench service`.
pub struct Opts {
    pub requests: usize,
    pub clients: usize,
    pub per_connection: usize,
    pub runs: usize,
    pub json: bool,
}

fn start(dir: &Path, name: &str, argv: &[String], port: u16) -> anyhow::Result<Child> {
    // Emptied, not removed (see `Server::script`): the shell's pid in it says it started.
    // nginx removes its own pid file when it ends: put it back, so every run opens it as the
    // learned one did rather than creating it.
    std::fs::write(dir.join("server.pid"), "")?;
    if dir.join("nginx.conf").exists() {
        std::fs::write(dir.join("nginx.pid"), "")?;
    }
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr")))?)
        .spawn()
        .map_err(|e| anyhow::anyhow!("{name}: cannot start {}: {e}", argv[0]))?;
    let until = Instant::now() + Duration::from_secs(20);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Some(st) = child.try_wait()? {
            let err = std::fs::read_to_string(dir.join(format!("{name}.stderr")))?;
            anyhow::bail!("{name}: the server exited ({st}) before serving: {err}");
        }
        let ready = std::fs::metadata(dir.join("server.pid")).is_ok_and(|m| m.len() > 0)
            && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
        if ready {
            return Ok(child);
        }
        if Instant::now() > until {
            let _ = child.kill();
            anyhow::bail!("{name}: the server did not listen on {addr} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stop the server with SIGINT (a clean exit, so `--learn` writes its model) and wait for it.
fn stop(dir: &Path, name: &str, mut child: Child) -> anyhow::Result<()> {
    let pid = std::fs::read_to_string(dir.join("server.pid"))?;
    let pid = pid.trim();
    let _ = Command::new("kill").args(["-INT", pid]).status();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait()? {
            // Under strace or tsem the status is the server's: python exits 0 after SIGINT,
            // nginx too; a variant that broke the server shows here.
            anyhow::ensure!(
                st.success() || st.code() == Some(130),
                "{name}: the server ended with {st}: {}",
                std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default()
            );
            return Ok(());
        }
        if Instant::now() > until {
            let _ = child.kill();
            anyhow::bail!("{name}: the server did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One GET over `s`; whether it got `200 OK` and the whole body.
fn get(s: &mut TcpStream, path: &str, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let req = format!("GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(req.as_bytes())?;
    buf.clear();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200");
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let Some(len) = len else {
        return Ok(false);
    };
    while buf.len() - head_end < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(ok && buf.len() - head_end == len)
}

/// `requests` requests from `clients` threads, a new connection every `per_conn` requests.
fn load(port: u16, requests: usize, clients: usize, per_conn: usize) -> Load {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let t = Instant::now();
    let parts: Vec<(Vec<f64>, usize)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let n = requests / clients + usize::from(c < requests % clients);
                sc.spawn(move || {
                    let mut lat = Vec::with_capacity(n);
                    let mut errors = 0;
                    let mut buf = Vec::new();
                    let mut conn: Option<TcpStream> = None;
                    for i in 0..n {
                        let t0 = Instant::now();
                        if i % per_conn == 0 {
                            conn = None;
                        }
                        if conn.is_none() {
                            conn = TcpStream::connect(addr).ok();
                            if let Some(s) = &conn {
                                let _ = s.set_nodelay(true);
                            }
                        }
                        let path = FILES[(i + c) % FILES.len()].0;
                        let ok = match conn.as_mut() {
                            Some(s) => get(s, path, &mut buf).unwrap_or(false),
                            None => false,
                        };
                        if !ok {
                            errors += 1;
                            conn = None;
                        }
                        lat.push(t0.elapsed().as_secs_f64());
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| (Vec::new(), usize::MAX)))
            .collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0usize;
    for (l, e) in parts {
        latencies.extend(l);
        errors = errors.saturating_add(e);
    }
    Load {
        secs,
        latencies,
        errors,
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

pub fn run(o: Opts) -> anyhow::Result<ExitCode> {
    let machine = crate::bench_model::Machine::now();
    let server = Server::find().ok_or_else(|| {
        anyhow::anyhow!("tsem bench service: neither nginx nor python3 is installed")
    })?;
    let dir = std::env::temp_dir().join(format!("tsem-bench-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("html"))?;
    for (i, (name, size)) in FILES.iter().enumerate() {
        let body: Vec<u8> = (0..*size).map(|k| b'a' + ((k + i) % 26) as u8).collect();
        std::fs::write(dir.join("html").join(name), body)?;
    }
    // One port for the whole invocation: the learned model names the address it binds.
    let port = free_port()?;
    let script = server.script(&dir, port)?;
    let tsem = std::env::current_exe()?;
    let tsem = tsem
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("tsem's path is not UTF-8"))?
        .to_string();
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let (model, cache) = (d("service.model"), d("cache/digests"));
    std::fs::create_dir_all(dir.join("cache"))?;
    let sh: Vec<String> = vec!["sh".into(), "-c".into(), script];
    let under = |opts: &[&str]| -> Vec<String> {
        let mut v = vec![tsem.clone(), "run".into()];
        v.extend(opts.iter().map(|x| x.to_string()));
        v.push("--".into());
        v.extend(sh.iter().cloned());
        v
    };
    let strace = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if !strace {
        eprintln!("tsem bench: strace not found (apt-get install strace); its column is skipped");
    }
    let syd = crate::bench_peer::Syd::detect();
    // The peer's enforcing profile must deny before it is timed (see bench_peer).
    let denial = match &syd {
        Some(s) => Some(s.prove_denial(&dir)?),
        None => None,
    };
    let mut variants: Vec<(&str, Vec<String>)> = vec![
        ("bare", sh.clone()),
        (
            "learn",
            under(&[
                "--learn",
                "-o",
                &d("relearned.model"),
                "--digest-cache",
                &cache,
            ]),
        ),
        (
            "enforce",
            under(&["--enforce", "--model", &model, "--digest-cache", &cache]),
        ),
        (
            "mechanism",
            under(&["--mechanism-only", "--no-digest-cache"]),
        ),
        // The floor of emulation: each open also performed and handed back with ADDFD, as
        // enforcing does, with nothing described or modeled.
        (
            "emulation",
            under(&["--mechanism-only=emulate", "--no-digest-cache"]),
        ),
    ];
    if strace {
        let mut v: Vec<String> = ["strace", "-f", "-qq", "-o", "/dev/null"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(sh.iter().cloned());
        variants.push(("strace", v));
    }
    // The mechanism's floors without tsem (crate::bench_reference); every response checked.
    let reference = crate::bench_reference::Reference::compile(&dir)
        .map_err(|why| eprintln!("tsem bench: the reference supervisor: {why}; skipped"))
        .ok();
    if let Some(r) = &reference {
        let [cont, emulate] = r.variants(&sh);
        variants.push(("reference-continue", cont));
        variants.push(("reference-emulate", emulate));
    }
    if syd.is_some() {
        variants.push(("syd-off", crate::bench_peer::Syd::tracing(&sh)));
        variants.push((
            "syd-enforce",
            crate::bench_peer::Syd::enforcing(&dir, Some(port), &sh),
        ));
    }
    let (requests, clients) = (o.requests.max(1), o.clients.max(1));
    let per_conn = o.per_connection.max(1);
    eprintln!(
        "tsem bench: {} on 127.0.0.1:{port}, {requests} requests from {clients} connections; \
         learning its model...",
        server.name()
    );
    // The model enforce runs: learned from the same server under the same load.
    let learn = under(&["--learn", "-o", &model, "--digest-cache", &cache]);
    let child = start(&dir, "learn-model", &learn, port)?;
    let first = load(port, requests, clients, per_conn);
    stop(&dir, "learn-model", child)?;
    anyhow::ensure!(
        first.errors == 0,
        "{} requests failed while learning",
        first.errors
    );
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut p99: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut errors = vec![0usize; variants.len()];
    for round in 0..o.runs.max(1) {
        eprintln!("tsem bench: round {}/{}", round + 1, o.runs.max(1));
        // A balanced Latin square's row (tsem_runtime::bench::balanced_order), not a fixed order.
        for k in tsem_runtime::bench::balanced_order(variants.len(), round) {
            let (name, argv) = &variants[k];
            let child = start(&dir, name, argv, port)?;
            let mut l = load(port, requests, clients, per_conn);
            stop(&dir, name, child)?;
            rps[k].push(requests as f64 / l.secs);
            p99[k].push(percentile(&mut l.latencies, 0.99));
            errors[k] = errors[k].saturating_add(l.errors);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let med = |v: &mut Vec<f64>| percentile(v, 0.5);
    let rps: Vec<f64> = rps.iter_mut().map(med).collect();
    let p99: Vec<f64> = p99.iter_mut().map(med).collect();
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let (bare, floor, emu) = (0, 3, 4);
    let ref_emu = variants.iter().position(|(n, _)| *n == "reference-emulate");
    let mut out = serde_json::Map::new();
    out.insert("machine".into(), machine.json());
    out.insert(
        "machine_after".into(),
        crate::bench_model::Machine::now().json(),
    );
    out.insert("server".into(), json!(server.name()));
    out.insert(
        "reference".into(),
        reference
            .as_ref()
            .map_or(json!("not compiled"), |r| r.json()),
    );
    out.insert("requests".into(), json!(requests));
    out.insert("connections".into(), json!(clients));
    out.insert("requests_per_connection".into(), json!(per_conn));
    out.insert("runs".into(), json!(o.runs.max(1)));
    out.insert(
        "syd".into(),
        match (&syd, &denial) {
            (Some(s), Some(d)) => s.json(&dir, Some(port), d),
            _ => json!("not installed"),
        },
    );
    let mut table = Vec::new();
    for (k, (name, _)) in variants.iter().enumerate() {
        // Time ratios (bare requests/s over the variant's), so larger is slower as in `bench run`.
        let vs_bare = round2(rps[bare] / rps[k]);
        let vs_floor = round2(rps[floor] / rps[k]);
        let vs_emu = round2(rps[emu] / rps[k]);
        let p99_ratio = round2(p99[k] / p99[bare]);
        out.insert(
            (*name).into(),
            json!({
                "requests_per_s": rps[k].round(),
                "p99_ms": (p99[k] * 1e5).round() / 100.0,
                "time_ratio_to_bare": vs_bare,
                "time_ratio_to_floor": vs_floor,
                "time_ratio_to_emulation_floor": vs_emu,
                "time_ratio_to_reference_emulation": ref_emu.map(|r| round2(rps[r] / rps[k])),
                "p99_ratio_to_bare": p99_ratio,
                "failed_requests": errors[k],
            }),
        );
        table.push(format!(
            "{name:<10} {:>9.0} req/s  p99 {:>7.2} ms  time {:>5.2}x bare  {:>5.2}x floor  \
             {:>5.2}x emulation floor  p99 {:>5.2}x bare  failed {}",
            rps[k],
            p99[k] * 1e3,
            vs_bare,
            vs_floor,
            vs_emu,
            p99_ratio,
            errors[k]
        ));
    }
    if o.json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!("machine: {}", machine.line());
        println!(
            "{} on 127.0.0.1, {requests} requests over {clients} connections \
             ({per_conn} per connection), median of {} rounds, variants in a balanced order",
            server.name(),
            o.runs.max(1)
        );
        for l in table {
            println!("{l}");
        }
        match (&syd, &denial) {
            (Some(s), Some(d)) => println!(
                "syd: {}; its enforcing profile denied a read outside it: {}, allowed one \
                 inside it: {}",
                s.version(),
                d.denied,
                d.allowed
            ),
            _ => println!("syd: not installed (not on PATH), no peer column"),
        }
    }
    let failed: usize = errors.iter().sum();
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("tsem bench: {failed} requests failed (see failed_requests)");
        ExitCode::FAILURE
    })
}
