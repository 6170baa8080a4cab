//! `tsem run --export`, end to end: to a file, standard output, a Unix socket and mosquitto,
//! each replayed to the run's state; consumers that stop reading or die lose records, counted,
//! never enforcement. Runs as root and as nobody (scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control_common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use control_common::{World, lines, read_json, replay, same_state, stderr};
use serde_json::Value;

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
fn an_export_to_standard_output_replays_to_the_run_s_state() {
    let w = World::new("stdout");
    // The workload writes nothing to the standard output it shares with the export.
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "--export", "-"])
        .args(["--summary-json", "s.json", "--", "sh", "-c"])
        .arg("cat /etc/hostname > /dev/null; ls / > /dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let s = read_json(&w.p("s.json"));
    assert!(s["events"].as_u64().unwrap() > 0);
    check_export(&o.stdout, &s, None, &w.dir, "stdout");
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
    let port = tsem_testdata::port::unused_tcp_port();
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
