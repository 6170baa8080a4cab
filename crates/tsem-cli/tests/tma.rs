//! `tsem tma serve` and `tsem run --tma`: the modeling agent as its own process. The same
//! state as in-process; killing the agent kills the workload before its next event takes
//! effect; an agent or a client with the wrong key is refused before anything runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::tma::{
    Agent, Lie, agent_killed_before_the_next_event, idle_workload_dies_with_its_agent, keys, liar,
    run, tcp_agent, tma_args,
};
use common::{s, scratch, summary};

/// Our three key pairs: the agent's, the client's, and one neither side trusts.
const KEYS: [&str; 3] = ["agent", "client", "other"];

/// An agent on `listen` trusting `peer`; returns once it listens.
fn agent(dir: &Path, listen: &str, peer: &str) -> Agent {
    common::tma::agent(dir, listen, peer, "listening on")
}

#[test]
fn the_agent_gives_the_state_the_in_process_namespace_gives() {
    let dir = scratch("tma", "same");
    keys(&dir, &KEYS);
    std::fs::write(dir.join("data"), "some data\n").unwrap();
    let script = "cat data > /dev/null; ls > /dev/null";
    let model = dir.join("model.txt");
    let o = run(&dir, &["-o".into(), s(&model).into()], script);
    assert!(o.status.success(), "{}", common::stderr(&o));
    for i in 0..2 {
        let (_a, addr) = if i == 0 {
            tcp_agent(&dir, "client.key.pub")
        } else {
            let addr = format!("unix:{}", dir.join("agent.sock").display());
            (agent(&dir, &addr, "client.key.pub"), addr)
        };
        let addr = &addr;
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
            let o = run(&dir, &[sum(&inproc), model_args.clone()].concat(), script);
            assert!(o.status.success(), "{}", common::stderr(&o));
            let t = tma_args(&dir, addr, "client.key", "agent.key.pub");
            let o = run(&dir, &[sum(&remote), model_args, t].concat(), script);
            assert!(o.status.success(), "{addr}: {}", common::stderr(&o));
            let (a, b) = (summary(&inproc), summary(&remote));
            // The agent's own account is the in-process namespace's: the same events, state
            // and (the events in the same order) measurement; so is the run's.
            let what = if learn { "learning" } else { "sealed" };
            for k in ["state", "measurement", "events"] {
                assert_eq!(a[k], b["tma"][k], "{addr}: the agent's {k}, {what}");
            }
            for k in ["state", "measurement", "events", "points"] {
                assert_eq!(a[k], b[k], "{addr}: {k} of {what} runs");
            }
            assert!(b["points"].as_u64().unwrap() > 0);
            if !learn {
                assert_eq!(b["forensics_events"], 0);
            }
        }
    }
}

#[test]
fn killing_the_agent_kills_the_workload_before_its_next_event() {
    let dir = scratch("tma", "kill");
    keys(&dir, &KEYS);
    let (a, addr) = tcp_agent(&dir, "client.key.pub");
    let t = tma_args(&dir, &addr, "client.key", "agent.key.pub");
    let err = agent_killed_before_the_next_event(&dir, a, &t);
    assert!(
        err.contains("modeling agent") && (err.contains("killed") || err.contains("killing")),
        "{err}"
    );
}

#[test]
fn an_idle_workload_does_not_outlive_its_agent() {
    let dir = scratch("tma", "idle");
    keys(&dir, &KEYS);
    let (a, addr) = tcp_agent(&dir, "client.key.pub");
    let t = tma_args(&dir, &addr, "client.key", "agent.key.pub");
    let err = idle_workload_dies_with_its_agent(&dir, a, &t, 60);
    assert!(err.contains("went away: killing the workload"), "{err}");
}

#[test]
fn a_wrong_key_on_either_side_is_refused_before_the_workload_runs() {
    let dir = scratch("tma", "keys");
    keys(&dir, &KEYS);
    let (_a, addr) = tcp_agent(&dir, "client.key.pub");
    let marker: PathBuf = dir.join("ran");
    let script = "echo ran > ran";
    // A client the agent does not trust.
    let o = run(
        &dir,
        &tma_args(&dir, &addr, "other.key", "agent.key.pub"),
        script,
    );
    common::fails_with(&o, "the agent refused us");
    // An agent that is not the one we trust (we expect other.key's).
    let o = run(
        &dir,
        &tma_args(&dir, &addr, "client.key", "other.key.pub"),
        script,
    );
    common::fails_with(&o, "the agent's key is not the one trusted");
    assert!(!marker.exists(), "the workload ran");
    // And with the right keys it runs.
    let o = run(
        &dir,
        &tma_args(&dir, &addr, "client.key", "agent.key.pub"),
        script,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(marker.exists());
}

/// A lying agent (see [`liar`]) serves a run whose workload copies a secret: the run fails,
/// its error names the fault, and the secret is never copied (the effect). Returns stderr.
fn lied_to(lie: Lie, enforce: bool) -> String {
    let dir = scratch("tma", &format!("lie-{lie:?}"));
    keys(&dir, &KEYS);
    std::fs::write(dir.join("secret"), "the secret\n").unwrap();
    std::fs::write(dir.join("public"), "public\n").unwrap();
    let mut args = vec![];
    if enforce {
        // A model of the same steps with another file: only the read of the secret is out of
        // it, so the honest verdict there is a refusal, and the lie an "allowed".
        let model = dir.join("model.txt");
        let o = run(&dir, &["-o".into(), s(&model).into()], "cat public > copy");
        assert!(o.status.success(), "{}", common::stderr(&o));
        std::fs::remove_file(dir.join("copy")).unwrap();
        args = vec!["--enforce".into(), "--model".into(), s(&model).into()];
    }
    let (addr, agent) = liar(&dir, lie);
    args.extend(tma_args(&dir, &addr, "client.key", "agent.key.pub"));
    let o = run(&dir, &args, "cat secret > copy");
    assert!(
        agent.join().unwrap(),
        "{lie:?}: the agent never saw the secret's event"
    );
    // The effect first: whatever the run reports, the secret must not have been copied.
    let copy = std::fs::read_to_string(dir.join("copy")).unwrap_or_default();
    assert!(
        !copy.contains("the secret"),
        "{lie:?}: the secret was copied"
    );
    assert!(!o.status.success(), "{lie:?}: the run succeeded");
    common::stderr(&o)
}

#[test]
fn an_agent_that_flips_a_verdict_fails_the_run_and_nothing_is_read() {
    // Enforcing: the model refuses the read; the agent, correctly signed, says it is allowed.
    let err = lied_to(Lie::Flags, true);
    assert!(
        err.contains("modeling agent") && err.contains("where the model gives"),
        "{err}"
    );
    // The outcome names no task it cannot name (the run ended at the event).
    assert!(
        err.contains("1 out-of-model event") && !err.contains(" 0 tasks") && !err.contains(": ;"),
        "{err}"
    );
}

#[test]
fn an_agent_frame_with_a_bad_signature_fails_the_run_and_nothing_is_read() {
    // Learning: the true answer allows the read, so only refusing the frame stops the copy.
    let err = lied_to(Lie::Signature, false);
    assert!(
        err.contains("modeling agent") && err.contains("bad signature"),
        "{err}"
    );
}

#[test]
fn an_agent_frame_out_of_sequence_fails_the_run_and_nothing_is_read() {
    let err = lied_to(Lie::Sequence, false);
    assert!(
        err.contains("modeling agent") && err.contains("was due (replayed or reordered)"),
        "{err}"
    );
}
