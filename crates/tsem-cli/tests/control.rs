//! `tsem run --name` / `tsem ctl` and `tsem run --export`, end to end on real workloads that
//! wait on a FIFO the test controls, so that what is asked mid-run is asked at a known point.
//! Runs as root and as nobody (scripts/test.sh); the socket directory is a private one under the
//! test's scratch directory (XDG_RUNTIME_DIR).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn tsem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
}

/// A fresh directory that also works when the tests run unprivileged.
fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("TSEM_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("tsem-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A test's world: its scratch directory, private runtime directory and FIFO.
struct World {
    dir: PathBuf,
    rt: PathBuf,
    fifo: PathBuf,
}

impl World {
    fn new(name: &str) -> Self {
        let dir = scratch(name);
        let rt = dir.join("rt");
        std::fs::DirBuilder::new().mode(0o700).create(&rt).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        Self { dir, rt, fifo }
    }

    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    fn cmd(&self) -> Command {
        let mut c = tsem();
        c.env("XDG_RUNTIME_DIR", &self.rt).current_dir(&self.dir);
        c
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.cmd()
            .arg("ctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ctl_json(&self, args: &[&str]) -> Vec<Value> {
        let o = self.ctl(args);
        assert!(o.status.success(), "ctl {args:?}: {}", stderr(&o));
        lines(&o.stdout)
    }

    /// Start `tsem run ARGS -- sh -c SCRIPT` in the background.
    fn start(&self, args: &[&str], script: &str) -> Child {
        self.cmd()
            .arg("run")
            .arg("--no-digest-cache")
            .args(args)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Wait until run `name` answers and its workload is blocked reading the FIFO, so that
    /// every event before it has been modeled and nothing changes until [`World::release`].
    /// Returns the FIFO's write end.
    fn wait_up(&self, name: &str, child: &mut Child) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut answered = false;
        loop {
            answered = answered || self.ctl(&["state", name, "--json"]).status.success();
            if answered {
                // A non-blocking open for writing succeeds only once the reader has it open.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&self.fifo)
                {
                    Ok(f) => return f,
                    Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENXIO), "{e}"),
                }
            }
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("the run ended ({st}) before waiting: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Let the workload go on past the FIFO.
    fn release(&self, mut fifo: std::fs::File) {
        fifo.write_all(b"go\n").unwrap();
    }

    fn finish(&self, child: Child) -> Output {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "run failed: {}", stderr(&o));
        o
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(b: &[u8]) -> Vec<Value> {
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// `tsem replay --json FILES` (with `--model` if given).
fn replay(model: Option<&Path>, files: &[&Path]) -> Value {
    let mut c = tsem();
    c.arg("replay").arg("--json");
    if let Some(m) = model {
        c.arg("--model").arg(m);
    }
    let o = c.args(files).output().unwrap();
    assert!(o.status.success(), "replay: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn same_state(a: &Value, b: &Value) {
    for k in [
        "state",
        "measurement",
        "points",
        "forensics_points",
        "aggregate",
    ] {
        assert_eq!(a[k], b[k], "{k} differs");
    }
}

const WAITER: &str = "cat /etc/hostname >/dev/null; read x < fifo; ls / >/dev/null";

#[test]
fn a_named_run_answers_while_it_runs_and_its_socket_goes_with_it() {
    let w = World::new("named");
    let mut run = w.start(
        &[
            "--name",
            "web",
            "--trajectory",
            "t.jsonl",
            "--summary-json",
            "s.json",
        ],
        WAITER,
    );
    let fifo = w.wait_up("web", &mut run);
    let sock = w.rt.join("tsem/web.sock");
    let dm = std::fs::metadata(w.rt.join("tsem")).unwrap();
    assert_eq!(dm.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);

    let list = w.ctl_json(&["list", "--json"]);
    let runs = list[0].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["name"], "web");
    assert_eq!(runs[0]["pid"], run.id());
    assert_eq!(runs[0]["command"][0], "sh");

    // The workload is blocked on the FIFO: what ctl says is one consistent moment.
    let state = w.ctl_json(&["state", "web", "--json"]).remove(0);
    assert_eq!(state["mode"], "free");
    assert!(state["events"].as_u64().unwrap() > 0);
    let points = w.ctl_json(&["points", "web", "--json"]);
    assert_eq!(points.len() as u64, state["points"].as_u64().unwrap());
    assert!(points.iter().all(|p| p["valid"] == true));
    let traj = w.ctl(&["trajectory", "web", "--json"]);
    assert!(traj.status.success());
    std::fs::write(w.p("mid.jsonl"), &traj.stdout).unwrap();
    assert_eq!(lines(&traj.stdout).len(), points.len());
    // The descriptions so far replay to the state so far, bit for bit.
    same_state(&replay(None, &[&w.p("mid.jsonl")]), &state);
    // And the model so far holds exactly those points.
    let o = w.ctl(&["model", "web", "-o", "mid.model"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = std::fs::read_to_string(w.p("mid.model")).unwrap();
    assert_eq!(
        model.lines().filter(|l| l.starts_with("state ")).count(),
        points.len()
    );
    let r = replay(Some(&w.p("mid.model")), &[&w.p("mid.jsonl")]);
    assert_eq!(r["forensics_events"], 0);
    assert_eq!(r["model_state"], state["model_state"]);
    // Text forms name what happened.
    let text = String::from_utf8(w.ctl(&["trajectory", "web"]).stdout).unwrap();
    assert!(text.contains("/etc/hostname"), "{text}");

    // A follower gets what exists now before the workload goes on, then the rest as it comes.
    let mut follow = w
        .cmd()
        .args(["ctl", "trajectory", "web", "--json", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(follow.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..points.len() {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        got.push(l);
    }
    w.release(fifo);
    let o = w.finish(run);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(follow.wait().unwrap().success());
    got.extend(rest.lines().map(|l| format!("{l}\n")));
    let file = std::fs::read_to_string(w.p("t.jsonl")).unwrap();
    assert!(
        got.len() > points.len(),
        "nothing followed after the release"
    );
    assert_eq!(
        got.concat(),
        file,
        "followed lines differ from the trajectory"
    );
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    // The run is over: its socket is gone and nothing is listed.
    assert!(!sock.exists());
    assert_eq!(w.ctl_json(&["list", "--json"])[0], serde_json::json!([]));
    let e = w.ctl(&["state", "web"]);
    assert!(!e.status.success());
    assert!(stderr(&e).contains("no running tsem named \"web\""));
    // The summary's keys include every key ctl state gives (the same object).
    let s = read_json(&w.p("s.json"));
    for k in state.as_object().unwrap().keys() {
        assert!(s.get(k).is_some(), "summary lacks {k}");
    }
}

#[test]
fn the_workload_is_refused_its_own_run_s_socket() {
    let w = World::new("self");
    let exe = env!("CARGO_BIN_EXE_tsem");
    let script = format!(
        "{exe} ctl state me --json > asked.out 2> asked.err; read x < fifo; \
         {exe} ctl model me -o stolen.model 2>> asked.err; true"
    );
    let mut run = w.start(&["--name", "me"], &script);
    let fifo = w.wait_up("me", &mut run);
    // While it waits, the owner is served.
    assert_eq!(w.ctl_json(&["state", "me", "--json"]).len(), 1);
    w.release(fifo);
    w.finish(run);
    assert_eq!(std::fs::read(w.p("asked.out")).unwrap(), b"");
    let err = std::fs::read_to_string(w.p("asked.err")).unwrap();
    assert_eq!(
        err.matches("is a task of the workload under this run")
            .count(),
        2,
        "{err}"
    );
    assert!(!w.p("stolen.model").exists());
}

#[test]
fn another_user_is_refused_by_the_directory_and_by_peer_credentials() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to act as a second user");
        return;
    }
    let w = World::new("other");
    let mut run = w.start(&["--name", "shared"], WAITER);
    let fifo = w.wait_up("shared", &mut run);
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_tsem"))
            .args(["ctl", "state", "shared", "--json"])
            .env("XDG_RUNTIME_DIR", &w.rt)
            .output()
            .unwrap()
    };
    // Everything on the way is root's alone: the file system refuses.
    let o = as_nobody();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // Opened up by mistake, the socket still refuses a peer of another uid.
    for (p, mode) in [
        (w.dir.clone(), 0o711),
        (w.rt.clone(), 0o711),
        (w.rt.join("tsem"), 0o711),
        (w.rt.join("tsem/shared.sock"), 0o666),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let o = as_nobody();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("uid 65534 is not the owner of this run"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
    w.release(fifo);
    w.finish(run);
}

#[test]
fn with_forensics_the_model_absorbs_exactly_the_sealed_run_s_forensics() {
    let w = World::new("forensics");
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "-o", "base.model", "--"])
        .args(["sh", "-c", "cat /etc/hostname > /dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let script = "cat /etc/hostname > /dev/null; cat /etc/passwd > /dev/null; read x < fifo";
    let mut run = w.start(
        &[
            "--name",
            "sealed",
            "--model",
            "base.model",
            "--forensics",
            "f.jsonl",
            "--on-forensic",
            "deny",
        ],
        script,
    );
    let fifo = w.wait_up("sealed", &mut run);
    let state = w.ctl_json(&["state", "sealed", "--json"]).remove(0);
    assert_eq!(state["mode"], "sealed");
    // The deviation policy is part of the live state (sealed: recorded, nothing refused).
    assert_eq!(state["on_forensic"], "deny");
    assert_eq!(
        (state["restarts"].as_u64(), state["denied"].as_u64()),
        (Some(0), Some(0))
    );
    let nf = state["forensics_points"].as_u64().unwrap();
    assert!(nf > 0);
    let f = w.ctl(&["forensics", "sealed", "--json"]);
    std::fs::write(w.p("mid-f.jsonl"), &f.stdout).unwrap();
    assert_eq!(lines(&f.stdout).len() as u64, nf);
    let pts = w.ctl_json(&["points", "sealed", "--json"]);
    assert_eq!(
        pts.iter().filter(|p| p["valid"] == false).count() as u64,
        nf
    );
    let o = w.ctl(&[
        "model",
        "sealed",
        "--with-forensics",
        "-o",
        "absorbed.model",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = w.ctl(&["model", "sealed", "-o", "plain.model"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let count = |p: &str| {
        std::fs::read_to_string(w.p(p))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("state "))
            .count() as u64
    };
    assert_eq!(count("plain.model"), count("base.model"));
    assert_eq!(count("absorbed.model"), count("base.model") + nf);
    // The forensics so far are in the absorbed model and in no other.
    let r = replay(Some(&w.p("absorbed.model")), &[&w.p("mid-f.jsonl")]);
    assert_eq!(r["forensics_events"], 0);
    let r = replay(Some(&w.p("plain.model")), &[&w.p("mid-f.jsonl")]);
    assert_eq!(r["forensics_points"], nf);
    // The absorbed model's state is the state the sealed run has so far.
    assert_eq!(r["state"], state["state"]);
    w.release(fifo);
    w.finish(run);
}

/// Listen on a Unix socket and collect everything sent to it, in a thread.
fn collector(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    })
}

fn check_export(export: &[u8], summary: &Value, model: Option<&Path>, dir: &Path, tag: &str) {
    let recs = lines(export);
    assert_eq!(recs[0]["export"]["type"], "aggregate");
    // An event record for a synchronous hook, async_event for one the kernel runs in atomic
    // context (spec §1.2), log for an untrusted task's.
    for r in &recs[1..] {
        let kind = r["export"]["type"].as_str().unwrap();
        let ty = r["event"]["type"].as_str().unwrap();
        match kind {
            "log" => {}
            "async_event" => assert!(tsem_control::export::atomic_context(ty), "{r}"),
            "event" => assert!(!tsem_control::export::atomic_context(ty), "{r}"),
            _ => panic!("unexpected record {r}"),
        }
    }
    assert_eq!(recs.len() as u64, summary["events"].as_u64().unwrap() + 1);
    assert_eq!(summary["exported"], recs.len());
    assert_eq!(summary["lost_exports"], 0);
    let f = dir.join(format!("{tag}.export"));
    std::fs::write(&f, export).unwrap();
    let r = replay(model, &[&f]);
    same_state(&r, summary);
    assert_eq!(r["events"], summary["events"]);
    assert_eq!(r["forensics_events"], summary["forensics_events"]);
}

#[test]
fn an_export_to_a_file_or_a_unix_socket_replays_to_the_run_s_state() {
    let w = World::new("export");
    let script = "cat /etc/hostname > /dev/null; ls / > /dev/null";
    let run = w.start(
        &[
            "--export",
            "out.export",
            "--summary-json",
            "s1.json",
            "-o",
            "m",
        ],
        script,
    );
    w.finish(run);
    let s1 = read_json(&w.p("s1.json"));
    check_export(
        &std::fs::read(w.p("out.export")).unwrap(),
        &s1,
        None,
        &w.dir,
        "file",
    );

    // Sealed against a smaller model, to a socket: the forensics replay too.
    let sock = w.p("consumer.sock");
    let got = collector(&sock);
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "-o", "small.model", "--"])
        .args(["sh", "-c", "cat /etc/hostname > /dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let dest = format!("unix:{}", sock.display());
    let args = [
        "--export",
        &dest,
        "--summary-json",
        "s2.json",
        "--model",
        "small.model",
    ];
    let run = w.start(&args, script);
    w.finish(run);
    let s2 = read_json(&w.p("s2.json"));
    assert!(s2["forensics_events"].as_u64().unwrap() > 0);
    let export = got.join().unwrap();
    check_export(&export, &s2, Some(&w.p("small.model")), &w.dir, "unix");
    // Events of tasks already untrusted come as log records, as the kernel exports them.
    assert!(lines(&export).iter().any(|r| r["export"]["type"] == "log"));
}

#[test]
fn a_consumer_that_stops_reading_loses_records_but_never_enforcement() {
    let w = World::new("deadconsumer");
    // Thousands of events, megabytes of export: more than any socket buffer holds.
    let busy = "i=0; while [ $i -lt 3000 ]; do : < /etc/hostname; i=$((i+1)); done";
    let o = w
        .cmd()
        .args([
            "run",
            "--no-digest-cache",
            "-o",
            "busy.model",
            "--",
            "sh",
            "-c",
            busy,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(w.p("secret"), "the-secret-word\n").unwrap();
    let attack = format!("{busy}; cat secret");
    let enforce = |extra: &[&str], summary: &str| {
        let mut args = vec![
            "--enforce",
            "--model",
            "busy.model",
            "--summary-json",
            summary,
        ];
        args.extend_from_slice(extra);
        let run = w.start(&args, &attack);
        run.wait_with_output().unwrap()
    };
    let plain = enforce(&[], "plain.json");

    // A consumer that accepts and then never reads.
    let sock = w.p("stuck.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let hold = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s
    });
    let dest = format!("unix:{}", sock.display());
    let stuck = enforce(&["--export", &dest, "--export-queue", "16"], "stuck.json");
    let _conn = hold.join().unwrap();

    for o in [&plain, &stuck] {
        // The effect: the secret was not read, whatever happened to the export.
        assert!(!String::from_utf8_lossy(&o.stdout).contains("the-secret-word"));
        assert_eq!(o.status.code(), plain.status.code());
    }
    let (a, b) = (read_json(&w.p("plain.json")), read_json(&w.p("stuck.json")));
    for k in ["state", "events", "denied", "forensics_events", "points"] {
        assert_eq!(a[k], b[k], "{k} changed by a stuck export consumer");
    }
    assert!(b["denied"].as_u64().unwrap() > 0);
    let lost = b["lost_exports"].as_u64().unwrap();
    assert!(lost > 0, "{b}");
    assert_eq!(
        b["exported"].as_u64().unwrap() + lost,
        b["events"].as_u64().unwrap() + 1
    );
    let err = stderr(&stuck);
    assert!(
        err.contains(&format!("{lost} of ")) && err.contains("export records lost"),
        "{err}"
    );
}

#[test]
fn an_export_to_mosquitto_delivers_every_record_and_a_dead_broker_is_counted() {
    let have = |p: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("mosquitto") || !have("mosquitto_sub") || !have("mosquitto_pub") {
        eprintln!("skipped: mosquitto, mosquitto_sub or mosquitto_pub not installed");
        return;
    }
    let w = World::new("mqtt");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = w.p("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut broker = Kill(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The subscriber gives up at once if the broker is not listening yet.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = port.to_string();
    let mut sub = Kill(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &p, "-t", "tsem/test"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let out = sub.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).split(b'\n') {
            if tx.send(l.unwrap()).is_err() {
                return;
            }
        }
    });
    // The broker and the subscription are up once a probe comes back through them.
    loop {
        let _ = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-t",
                "tsem/test",
                "-m",
                "probe",
            ])
            .stderr(Stdio::null())
            .status();
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
    }
    let dest = format!("mqtt://127.0.0.1:{port}/tsem/test");
    let run = w.start(
        &["--export", &dest, "--summary-json", "s.json"],
        "cat /etc/hostname > /dev/null; ls / > /dev/null",
    );
    w.finish(run);
    let s = read_json(&w.p("s.json"));
    let n = s["exported"].as_u64().unwrap();
    assert_eq!(n, s["events"].as_u64().unwrap() + 1);
    let (mut got, mut records) = (Vec::new(), 0u64);
    while records < n {
        // Only a guard against hanging: every record was handed to the broker already.
        let l = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("only {records} of {n} records arrived"));
        if l != b"probe" {
            records += 1;
            got.extend_from_slice(&l);
            got.push(b'\n');
        }
    }
    check_export(&got, &s, None, &w.dir, "mqtt");

    // The broker dies while a run exports to it: the run goes on to its end, the records that
    // could not be sent are counted and reported.
    let busy = "read x < fifo; i=0; while [ $i -lt 2000 ]; do : < /etc/hostname; i=$((i+1)); done";
    let mut run = w.start(
        &[
            "--name",
            "mq",
            "--export",
            &dest,
            "--summary-json",
            "gone.json",
        ],
        busy,
    );
    let fifo = w.wait_up("mq", &mut run);
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    w.release(fifo);
    let o = w.finish(run);
    let s = read_json(&w.p("gone.json"));
    let lost = s["lost_exports"].as_u64().unwrap();
    assert!(lost > 0, "{s}");
    assert_eq!(
        s["exported"].as_u64().unwrap() + lost,
        s["events"].as_u64().unwrap() + 1
    );
    assert!(stderr(&o).contains("export records lost"), "{}", stderr(&o));
}

#[test]
fn the_console_shows_the_live_counters_in_tmux_and_quits_on_q() {
    let have_tmux = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let w = World::new("console");
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "-o", "base.model", "--"])
        .args(["sh", "-c", "cat /etc/hostname > /dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let script = "cat /etc/hostname > /dev/null; cat /etc/passwd > /dev/null; read x < fifo";
    let mut run = w.start(&["--name", "tui", "--model", "base.model"], script);
    let fifo = w.wait_up("tui", &mut run);
    let state = w.ctl_json(&["state", "tui", "--json"]).remove(0);
    let counters = format!("events {} (", state["events"].as_u64().unwrap());

    // Without a terminal: lines, the same counters, the forensic event named.
    let mut lines_mode = w
        .cmd()
        .args(["console", "tui"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(lines_mode.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with(&counters), "{first}");
    assert!(first.contains("mode sealed"), "{first}");

    if have_tmux {
        let tmux = || {
            let mut c = Command::new("tmux");
            // tmux runs the command with $SHELL, else the user's login shell: for nobody that
            // is nologin, which would end the session before the console draws anything.
            c.env("TMUX_TMPDIR", &w.dir).env("SHELL", "/bin/sh").args([
                "-f",
                "/dev/null",
                "-L",
                "tsem-console-test",
            ]);
            c
        };
        let cmd = format!(
            "env TERM=xterm-256color XDG_RUNTIME_DIR={} {} console tui",
            w.rt.display(),
            env!("CARGO_BIN_EXE_tsem")
        );
        let st = tmux()
            .args([
                "new-session",
                "-d",
                "-s",
                "c",
                "-x",
                "120",
                "-y",
                "40",
                &cmd,
            ])
            .env("TERM", "xterm-256color")
            .status()
            .unwrap();
        assert!(st.success());
        let capture = || {
            let o = tmux()
                .args(["capture-pane", "-p", "-t", "c"])
                .output()
                .unwrap();
            if o.status.success() {
                String::from_utf8_lossy(&o.stdout).into_owned()
            } else {
                format!("(no pane: {})", String::from_utf8_lossy(&o.stderr).trim())
            }
        };
        // Drawn within a few redraws; the bound only guards against a hang.
        let mut screen = String::new();
        for _ in 0..600 {
            screen = capture();
            if screen.contains(&counters) && screen.contains("/etc/passwd") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(screen.contains(&counters), "{screen}");
        assert!(screen.contains("tsem console: tui"), "{screen}");
        assert!(
            screen.contains("forensic: file_open process=cat /etc/passwd"),
            "{screen}"
        );
        assert!(
            screen.contains(state["state"].as_str().unwrap()),
            "{screen}"
        );
        tmux().args(["send-keys", "-t", "c", "q"]).status().unwrap();
        let mut gone = false;
        for _ in 0..600 {
            if !tmux()
                .args(["has-session", "-t", "c"])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
            {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(gone, "the console did not quit on q: {}", capture());
    } else {
        eprintln!("skipped the terminal half: tmux not installed");
    }

    w.release(fifo);
    w.finish(run);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(lines_mode.wait().unwrap().success());
    assert!(
        rest.contains("forensic: file_open process=cat /etc/passwd"),
        "{rest}"
    );
    assert!(rest.trim_end().ends_with("run ended"), "{rest}");
}

#[test]
fn without_xdg_runtime_dir_a_user_s_sockets_go_to_a_private_tmp_directory() {
    // SAFETY: no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        eprintln!("skipped: root's fallback is /run/tsem, not to be touched by a test");
        return;
    }
    let w = World::new("fallback");
    let name = format!("fallback-{}", std::process::id());
    let mut c = w.cmd();
    c.env_remove("XDG_RUNTIME_DIR")
        .args([
            "run",
            "--no-digest-cache",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            WAITER,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut run = c.spawn().unwrap();
    let dir = PathBuf::from(format!("/tmp/tsem-{uid}"));
    let sock = dir.join(format!("{name}.sock"));
    loop {
        if sock.exists() {
            break;
        }
        assert!(run.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = std::fs::symlink_metadata(&dir).unwrap();
    assert!(m.is_dir() && m.uid() == uid && m.mode() & 0o777 == 0o700);
    let o = w
        .cmd()
        .env_remove("XDG_RUNTIME_DIR")
        .args(["ctl", "state", &name, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&w.fifo)
        .unwrap();
    f.write_all(b"go\n").unwrap();
    drop(f);
    w.finish(run);
    assert!(!sock.exists());
}

#[test]
fn a_name_in_use_or_malformed_fails_the_run_before_the_workload_starts() {
    let w = World::new("names");
    let mut first = w.start(&["--name", "dup"], WAITER);
    let fifo = w.wait_up("dup", &mut first);
    for (name, why) in [
        ("dup", "a running tsem already has this name"),
        ("../escape", "bad name"),
        (".hidden", "bad name"),
    ] {
        let o = w
            .cmd()
            .args(["run", "--no-digest-cache", "--name", name, "--"])
            .args(["sh", "-c", "touch ran"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert!(!w.p("ran").exists(), "{name}: the workload ran");
    }
    // tsem-runtime's containers ask for their id only if it is free: such a run goes on
    // unnamed, saying so.
    let o = w
        .cmd()
        .args([
            "run",
            "--no-digest-cache",
            "--name",
            "dup",
            "--name-if-free",
            "--",
        ])
        .args(["sh", "-c", "touch ran"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("runs unnamed"), "{}", stderr(&o));
    assert!(w.p("ran").exists(), "the workload did not run");
    // The first run is untouched by the attempts.
    assert_eq!(
        w.ctl_json(&["list", "--json"])[0].as_array().unwrap().len(),
        1
    );
    w.release(fifo);
    w.finish(first);
    // A socket left by a run that was killed is not a run: listed as nothing, and replaced.
    let stale = w.rt.join("tsem/dup.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert_eq!(w.ctl_json(&["list", "--json"])[0], serde_json::json!([]));
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "--name", "dup", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists());
}
