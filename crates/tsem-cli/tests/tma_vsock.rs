//! `tsem tma serve --listen vsock:any:PORT` and `tsem run --tma vsock:CID:PORT`. What runs on
//! any machine: an agent that cannot be reached fails the run with one line before the
//! workload starts; malformed addresses are refused; the agent binds and listens on
//! vsock:any. End to end (same state as in process, killing the agent kills the workload) only
//! where a connection to ourselves works (`vsock_loopback`), probed first; elsewhere the test
//! says it was skipped (TSEM_REQUIRE_VSOCK_LOOPBACK=1 makes that a failure).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Output;

use common::tma::{Agent, idle_workload_dies_with_its_agent, keys, serve, tma_args};
use common::{s, scratch, summary, tsem};

const KEYS: [&str; 2] = ["agent", "client"];

/// A vsock port free now, or None where this machine has no AF_VSOCK at all.
fn free_port() -> Option<u32> {
    match tsem_tma::vsock::Listener::bind(None, libc::VMADDR_PORT_ANY) {
        Ok(l) => Some(l.port().unwrap()),
        Err(e) => {
            assert!(
                std::env::var_os("TSEM_REQUIRE_VSOCK").is_none(),
                "no AF_VSOCK: {e}"
            );
            println!("skipped: no AF_VSOCK on this machine ({e})");
            None
        }
    }
}

fn run(dir: &Path, addr: &str, extra: &[&str], script: &str) -> Output {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend(tma_args(dir, addr, "client.key", "agent.key.pub"));
    common::tma::run(dir, &args, script)
}

#[test]
fn an_unreachable_vsock_agent_fails_the_run_before_the_workload_starts() {
    let dir = scratch("tma_vsock", "unreachable");
    keys(&dir, &KEYS);
    // The host (CID 2) with nothing on the port, ourselves through the local CID (no listener,
    // or no loopback transport), a CID no VM has: each refused, reset or unreachable.
    for addr in ["vsock:2:40404", "vsock:1:40404", "vsock:4000000000:40404"] {
        let o = run(&dir, addr, &[], "echo ran > ran");
        common::fails_with(&o, &format!("the modeling agent at {addr}"));
        assert!(!dir.join("ran").exists(), "{addr}: the workload ran");
    }
}

#[test]
fn malformed_or_listen_only_vsock_addresses_are_refused() {
    let dir = scratch("tma_vsock", "addr");
    keys(&dir, &KEYS);
    let o = run(&dir, "vsock:any:40404", &[], "echo ran > ran");
    common::fails_with(&o, "vsock:any names no agent");
    for (addr, why) in [
        ("vsock:host:1", "is not a number"),
        ("vsock:2", "expected vsock:CID:PORT"),
        ("vsock:2:4294967295", "VMADDR_PORT_ANY"),
    ] {
        let o = run(&dir, addr, &[], "echo ran > ran");
        assert!(!o.status.success());
        let err = common::stderr(&o);
        assert!(err.contains(why), "{addr}: {err}");
    }
    assert!(!dir.join("ran").exists());
}

#[test]
fn the_agent_listens_on_vsock_any_and_one_agent_holds_a_port() {
    let Some(port) = free_port() else { return };
    let dir = scratch("tma_vsock", "listen");
    keys(&dir, &KEYS);
    let listen = format!("vsock:any:{port}");
    let mut c = serve(&dir, &listen, "client.key.pub");
    let mut line = String::new();
    BufReader::new(c.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _a = Agent(c);
    assert!(line.contains(&format!("listening on {listen}")), "{line}");
    let o = serve(&dir, &listen, "client.key.pub")
        .wait_with_output()
        .unwrap();
    common::fails_with(&o, &listen);
    assert!(
        common::stderr(&o).contains("in use"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn end_to_end_over_vsock_loopback_where_it_exists() {
    if let Err(e) = tsem_tma::vsock::loopback_works() {
        assert!(
            std::env::var_os("TSEM_REQUIRE_VSOCK_LOOPBACK").is_none(),
            "no vsock loopback: {e}"
        );
        println!("skipped: a vsock connection to ourselves does not work here ({e})");
        return;
    }
    let Some(port) = free_port() else { return };
    let dir = scratch("tma_vsock", "e2e");
    keys(&dir, &KEYS);
    std::fs::write(dir.join("data"), "some data\n").unwrap();
    let script = "cat data > /dev/null; ls > /dev/null";
    let listen = format!("vsock:any:{port}");
    let agent = common::tma::agent(&dir, &listen, "client.key.pub", "listening on");
    let addr = format!("vsock:{}:{port}", libc::VMADDR_CID_LOCAL);
    let (inproc, remote) = (dir.join("in.json"), dir.join("tma.json"));
    let model = dir.join("model.txt");
    for args in [
        vec!["-o", s(&model)],
        vec!["--model", s(&model), "--summary-json", s(&inproc)],
    ] {
        let o = tsem()
            .args(["run", "--no-digest-cache"])
            .args(args)
            .args(["--", "sh", "-c", script])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
    }
    let o = run(
        &dir,
        &addr,
        &["--model", s(&model), "--summary-json", s(&remote)],
        script,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    // Sealed runs of an in-model workload, in process and through the agent.
    let (a, b) = (summary(&inproc), summary(&remote));
    assert_eq!(a["state"], b["state"]);
    assert_eq!(b["tma"]["state"], b["state"]);
    // Killing the agent kills a workload that asks nothing more.
    let t = tma_args(&dir, &addr, "client.key", "agent.key.pub");
    idle_workload_dies_with_its_agent(&dir, agent, &t, 60);
}
