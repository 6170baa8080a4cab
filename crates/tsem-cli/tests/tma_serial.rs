//! `tsem tma serve --listen serial:DEV` and `tsem run --tma serial:DEV` on a real tty pair:
//! two pseudo-terminals joined by a null-modem relay (`tsem_testdata::pty`). The same state as
//! in process, session after session, with noise put on the line before each; killing the
//! agent kills the workload; a byte flipped mid-session (either way) fails the run closed at
//! once, and the agent serves the next session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use common::{s, scratch, summary, tsem};
use tsem_testdata::pty::{Flip, NullModem};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keys(dir: &Path) {
    for k in ["agent", "client"] {
        let o = tsem()
            .args(["keygen", "-o", s(&dir.join(format!("{k}.key")))])
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}

/// The agent on the cable's `a` end; returns once it listens.
fn agent(dir: &Path, cable: &NullModem) -> Agent {
    let mut c = tsem()
        .args(["tma", "serve", "--listen"])
        .arg(format!("serial:{},115200", cable.a.display()))
        .args(["--key", s(&dir.join("agent.key"))])
        .args(["--peer", s(&dir.join("client.key.pub"))])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on serial:"), "{line}");
    std::thread::spawn(move || for _ in err.lines() {});
    Agent(c)
}

fn tma_args(dir: &Path, cable: &NullModem) -> Vec<String> {
    vec![
        "--tma".into(),
        format!("serial:{}", cable.b.display()),
        "--tma-key".into(),
        s(&dir.join("client.key")).into(),
        "--tma-peer".into(),
        s(&dir.join("agent.key.pub")).into(),
    ]
}

fn run(dir: &Path, args: &[String], script: &str) -> Output {
    tsem()
        .args(["run", "--no-digest-cache"])
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn noise(cable: &NullModem) {
    // Line noise, the tail of an old session's message, half a frame marker.
    cable.inject(
        true,
        b"\x00\xff+++ATH0\r\n\x7eTMAm\x00\x00\x00\x05garbage\x7eT",
    );
}

#[test]
fn over_a_serial_line_runs_give_the_in_process_state_session_after_session() {
    let dir = scratch("tma_serial", "same");
    keys(&dir);
    std::fs::write(dir.join("data"), "some data\n").unwrap();
    let script = "cat data > /dev/null; ls > /dev/null";
    let model = dir.join("model.txt");
    let o = run(&dir, &["-o".into(), s(&model).into()], script);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let cable = NullModem::new();
    let _a = agent(&dir, &cable);
    for learn in [true, false] {
        let mut args: Vec<String> = if learn {
            vec![]
        } else {
            vec!["--model".into(), s(&model).into()]
        };
        let (inproc, remote) = (dir.join("in.json"), dir.join("tma.json"));
        args.extend(["--summary-json".into(), s(&inproc).into()]);
        let o = run(&dir, &args, script);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let n = args.len();
        args[n - 1] = s(&remote).into();
        args.extend(tma_args(&dir, &cable));
        noise(&cable);
        let o = run(&dir, &args, script);
        assert!(o.status.success(), "learn {learn}: {}", common::stderr(&o));
        let (a, b) = (summary(&inproc), summary(&remote));
        assert_eq!(b["tma"]["state"], b["state"], "learn {learn}");
        assert_eq!(b["tma"]["events"], b["events"], "learn {learn}");
        assert!(b["events"].as_u64().unwrap() > 10);
        if !learn {
            assert_eq!(
                a["state"], b["state"],
                "sealed runs of an in-model workload"
            );
            assert_eq!(b["forensics_events"], 0);
        }
    }
}

#[test]
fn killing_the_agent_on_a_serial_line_kills_the_workload() {
    let dir = scratch("tma_serial", "kill");
    keys(&dir);
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::write(dir.join("secret"), "the secret\n").unwrap();
    let cable = NullModem::new();
    let mut a = agent(&dir, &cable);
    let child = tsem()
        .args(["run", "--no-digest-cache"])
        .args(tma_args(&dir, &cable))
        .args(["--", "sh", "-c", "read x < fifo; cat secret > copy"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The workload is up once it waits on the FIFO. A serial line has no hang-up: the client
    // learns of the agent's death by its silence (or by no reply to the next event).
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    match w.write_all(b"go\n") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("modeling agent at serial:"), "{err}");
    let copy = std::fs::read_to_string(dir.join("copy")).unwrap_or_default();
    assert!(
        !copy.contains("the secret"),
        "the workload ran on without its agent"
    );
}

#[test]
fn an_idle_workload_does_not_outlive_its_agent_on_a_serial_line() {
    let dir = scratch("tma_serial", "idle");
    keys(&dir);
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cable = NullModem::new();
    let mut a = agent(&dir, &cable);
    let mut child = tsem()
        .args(["run", "--no-digest-cache"])
        .args(tma_args(&dir, &cable))
        .args(["--", "sh", "-c", "read x < fifo; echo after > after"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open, never written: the workload asks nothing while its agent dies.
    let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // A deadline, not a measurement: a workload left running fails the test.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < end,
            "the workload outlived its agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("went away: killing the workload"), "{err}");
    assert!(!dir.join("after").exists());
}

#[test]
fn a_byte_flipped_mid_session_fails_the_run_closed_and_the_next_session_is_served() {
    let dir = scratch("tma_serial", "flip");
    keys(&dir);
    let cable = NullModem::new();
    let _a = agent(&dir, &cable);
    let script = "cat /etc/hostname > /dev/null; ls > /dev/null; echo done > marker";
    // Agent to client: the third message (a verdict); client to agent: the third (an event).
    for (from_agent, kind, why) in [
        (true, b'M', "the line is corrupted"),
        (false, b'm', "the agent refused"),
    ] {
        let _ = std::fs::remove_file(dir.join("marker"));
        cable.flip(from_agent, Flip { kind, nth: 3 });
        let o = run(&dir, &tma_args(&dir, &cable), script);
        assert!(cable.flipped(from_agent), "the byte was not flipped");
        assert!(!o.status.success());
        let err = common::stderr(&o);
        // Found at once from the damage, not after a reply timeout.
        assert!(
            err.contains(why) && !err.contains("no reply"),
            "{}: {err}",
            kind as char
        );
        assert!(!dir.join("marker").exists(), "the workload ran on");
    }
    // The line is clean again: the agent serves the next session.
    let o = run(&dir, &tma_args(&dir, &cable), script);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(dir.join("marker").exists());
}
