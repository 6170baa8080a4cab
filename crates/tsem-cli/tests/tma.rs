//! `tsem tma serve` and `tsem run --tma`: the modeling agent as its own process. The same
//! state as in-process; killing the agent kills the workload before its next event takes
//! effect; an agent or a client with the wrong key is refused before anything runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use common::{s, scratch, summary, tsem};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keys(dir: &Path) {
    for k in ["agent", "client", "other"] {
        let o = tsem()
            .args(["keygen", "-o", s(&dir.join(format!("{k}.key")))])
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}

/// Start an agent on `listen` trusting `peer` (a public key in `dir`); returns once it listens.
fn agent(dir: &Path, listen: &str, peer: &str) -> Agent {
    let mut c = tsem()
        .args(["tma", "serve", "--listen", listen])
        .args(["--key", s(&dir.join("agent.key"))])
        .args(["--peer", s(&dir.join(peer))])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    // Keep draining its messages so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    Agent(c)
}

fn tcp() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("tcp:127.0.0.1:{port}")
}

fn run(dir: &Path, args: &[&str], script: &str) -> Output {
    tsem()
        .args(["run", "--no-digest-cache"])
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn with_tma<'a>(dir: &'a Path, addr: &'a str, key: &str, peer: &str) -> Vec<String> {
    vec![
        "--tma".into(),
        addr.into(),
        "--tma-key".into(),
        s(&dir.join(key)).into(),
        "--tma-peer".into(),
        s(&dir.join(peer)).into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_agent_gives_the_state_the_in_process_namespace_gives() {
    let dir = scratch("tma", "same");
    keys(&dir);
    std::fs::write(dir.join("data"), "some data\n").unwrap();
    let script = "cat data > /dev/null; ls > /dev/null";
    let model = dir.join("model.txt");
    let o = run(&dir, &["-o", s(&model)], script);
    assert!(o.status.success(), "{}", common::stderr(&o));
    for (i, addr) in [tcp(), format!("unix:{}", dir.join("agent.sock").display())]
        .iter()
        .enumerate()
    {
        let _a = agent(&dir, addr, "client.key.pub");
        let (inproc, remote) = (
            dir.join(format!("in{i}.json")),
            dir.join(format!("tma{i}.json")),
        );
        for learn in [true, false] {
            let model_args: Vec<String> = if learn {
                vec![]
            } else {
                vec!["--model".into(), s(&model).into()]
            };
            let sum = |p: &Path| vec!["--summary-json".to_string(), s(p).to_string()];
            let o = run(
                &dir,
                &strs(&[sum(&inproc), model_args.clone()].concat()),
                script,
            );
            assert!(o.status.success(), "{}", common::stderr(&o));
            let t = with_tma(&dir, addr, "client.key", "agent.key.pub");
            let o = run(&dir, &strs(&[sum(&remote), model_args, t].concat()), script);
            assert!(o.status.success(), "{addr}: {}", common::stderr(&o));
            let (a, b) = (summary(&inproc), summary(&remote));
            // The agent's own account is the run's, and the run's is the in-process one's.
            assert_eq!(b["tma"]["state"], b["state"], "{addr}");
            assert_eq!(b["tma"]["events"], b["events"], "{addr}");
            if !learn {
                assert_eq!(
                    a["state"], b["state"],
                    "{addr}: sealed runs of an in-model workload"
                );
                assert_eq!(b["forensics_events"], 0);
            }
        }
    }
}

#[test]
fn killing_the_agent_kills_the_workload_before_its_next_event() {
    let dir = scratch("tma", "kill");
    keys(&dir);
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::write(dir.join("secret"), "the secret\n").unwrap();
    let addr = tcp();
    let mut a = agent(&dir, &addr, "client.key.pub");
    let t = with_tma(&dir, &addr, "client.key", "agent.key.pub");
    let child = tsem()
        .args(["run", "--no-digest-cache"])
        .args(strs(&t))
        .args(["--", "sh", "-c", "read x < fifo; cat secret > copy"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The workload is up once it waits on the FIFO: opening it for writing meets its reader.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // The sensor may already have killed the workload for losing its agent (the idle watchdog),
    // closing the FIFO's read end: a broken pipe is that outcome, not a test failure.
    match w.write_all(b"go\n") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("modeling agent") && (err.contains("killed") || err.contains("killing")),
        "{err}"
    );
    // The effect: the secret was never copied.
    let copy = std::fs::read_to_string(dir.join("copy")).unwrap_or_default();
    assert!(
        !copy.contains("the secret"),
        "the workload ran on without its agent"
    );
}

#[test]
fn an_idle_workload_does_not_outlive_its_agent() {
    let dir = scratch("tma", "idle");
    keys(&dir);
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let addr = tcp();
    let mut a = agent(&dir, &addr, "client.key.pub");
    let t = with_tma(&dir, &addr, "client.key", "agent.key.pub");
    let mut child = tsem()
        .args(["run", "--no-digest-cache"])
        .args(strs(&t))
        .args(["--", "sh", "-c", "read x < fifo; echo after > after"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The workload blocks reading the FIFO, which we hold open and never write: it makes no
    // call that would ask the agent anything.
    let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // A deadline, not a measurement: a workload left running fails the test.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < end,
            "the workload outlived its agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("went away: killing the workload"), "{err}");
    assert!(!dir.join("after").exists());
}

#[test]
fn a_wrong_key_on_either_side_is_refused_before_the_workload_runs() {
    let dir = scratch("tma", "keys");
    keys(&dir);
    let addr = tcp();
    let _a = agent(&dir, &addr, "client.key.pub");
    let marker: PathBuf = dir.join("ran");
    let script = "echo ran > ran";
    // A client the agent does not trust.
    let o = run(
        &dir,
        &strs(&with_tma(&dir, &addr, "other.key", "agent.key.pub")),
        script,
    );
    common::fails_with(&o, "the agent refused us");
    // An agent that is not the one we trust (we expect other.key's).
    let o = run(
        &dir,
        &strs(&with_tma(&dir, &addr, "client.key", "other.key.pub")),
        script,
    );
    common::fails_with(&o, "the agent's key is not the one trusted");
    assert!(!marker.exists(), "the workload ran");
    // And with the right keys it runs.
    let o = run(
        &dir,
        &strs(&with_tma(&dir, &addr, "client.key", "agent.key.pub")),
        script,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(marker.exists());
}
