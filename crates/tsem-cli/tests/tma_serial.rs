//! `tsem tma serve --listen serial:DEV` and `tsem run --tma serial:DEV` on a real tty pair:
//! two pseudo-terminals joined by a null-modem relay (`tsem_testdata::pty`). The same state as
//! in process, session after session, with noise put on the line before each; killing the
//! agent kills the workload; a byte flipped mid-session (either way) fails the run closed at
//! once, and the agent serves the next session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::tma::{
    Agent, agent_killed_before_the_next_event, idle_workload_dies_with_its_agent, keys, run,
};
use common::{s, scratch, summary};
use tsem_testdata::pty::{Flip, NullModem};

const KEYS: [&str; 2] = ["agent", "client"];

/// The agent on the cable's `a` end; returns once it listens.
fn agent(dir: &Path, cable: &NullModem) -> Agent {
    let listen = format!("serial:{},115200", cable.a.display());
    common::tma::agent(dir, &listen, "client.key.pub", "listening on serial:")
}

fn tma_args(dir: &Path, cable: &NullModem) -> Vec<String> {
    let addr = format!("serial:{}", cable.b.display());
    common::tma::tma_args(dir, &addr, "client.key", "agent.key.pub")
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
    keys(&dir, &KEYS);
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
    keys(&dir, &KEYS);
    let cable = NullModem::new();
    let a = agent(&dir, &cable);
    // A serial line has no hang-up: the client learns of the agent's death by its silence (or
    // by no reply to the next event).
    let err = agent_killed_before_the_next_event(&dir, a, &tma_args(&dir, &cable));
    assert!(err.contains("modeling agent at serial:"), "{err}");
}

#[test]
fn an_idle_workload_does_not_outlive_its_agent_on_a_serial_line() {
    let dir = scratch("tma_serial", "idle");
    keys(&dir, &KEYS);
    let cable = NullModem::new();
    let a = agent(&dir, &cable);
    let err = idle_workload_dies_with_its_agent(&dir, a, &tma_args(&dir, &cable), 90);
    assert!(err.contains("went away: killing the workload"), "{err}");
}

#[test]
fn a_byte_flipped_mid_session_fails_the_run_closed_and_the_next_session_is_served() {
    let dir = scratch("tma_serial", "flip");
    keys(&dir, &KEYS);
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
