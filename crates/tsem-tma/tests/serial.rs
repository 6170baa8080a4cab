//! The agent protocol on a real serial line: two pseudo-terminals joined by a null-modem relay
//! (`tsem_testdata::pty`). One session after another on the same device; line noise, an old
//! session's tail and a damaged hello before a session are skipped; a client that dies in the
//! middle of a session does not keep the next one out; the agent's verdicts over the line equal
//! the in-process namespace's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use tsem_core::namespace::{Config, Mode, Namespace};
use tsem_core::policy::Policy;
use tsem_format::RecordParser;
use tsem_testdata::pty::NullModem;
use tsem_tma::agent::{Client, Setup, serve};
use tsem_tma::serial::{Line, Role, encode};
use tsem_tma::{Addr, Listener, Session};

fn key() -> SigningKey {
    let (sk, _) = tsem_format::model_file::generate_ed25519().unwrap();
    SigningKey::from_pkcs8_pem(&sk).unwrap()
}

fn events() -> Vec<tsem_core::event::Event> {
    let p = tsem_testdata::shared_dir().join("conformance/tsem/process/process_1.json");
    let mut parser = RecordParser::new();
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| parser.parse_event(l).unwrap())
        .collect()
}

fn setup() -> Setup {
    Setup {
        config: Config::default(),
        mode: Mode::Free,
        policy: Policy::Untrust,
        model: String::new(),
    }
}

/// The agent on `path`, serving sessions until the test ends; each session's outcome (its
/// final state, or why it ended) is sent back.
fn agent(path: std::path::PathBuf, key: SigningKey, client: SigningKey) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let l = Listener::bind(&Addr::Serial {
        path,
        baud: 115_200,
    })
    .unwrap();
    std::thread::spawn(move || {
        loop {
            let t = l.accept().unwrap();
            let r = Session::server_over(t, key.clone(), client.verifying_key())
                .and_then(|mut s| serve(&mut s));
            let msg = match r {
                Ok(ns) => format!("state {}", ns.state().to_hex()),
                Err(e) => format!("ended: {e}"),
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    rx
}

fn client_session(path: &std::path::Path, c: &SigningKey, a: &SigningKey) -> Session {
    let line = Line::open(path, 115_200, Role::Client, Some(Duration::from_secs(60))).unwrap();
    Session::client_over(Box::new(line), c.clone(), a.verifying_key()).unwrap()
}

#[test]
fn sessions_follow_one_another_on_a_line_after_noise_and_a_dead_client() {
    let (c, a) = (key(), key());
    let cable = NullModem::new();
    let outcomes = agent(cable.a.clone(), a.clone(), c.clone());
    // Before any session: noise, a frame from an old session, a damaged hello, half a marker.
    let mut damaged = encode(b'H', &[7u8; 74]);
    damaged[20] ^= 1;
    let noise = [
        b"\x00\xff+++ATZ\r\n~~~".to_vec(),
        encode(b'm', b"the tail of an old session"),
        damaged,
        vec![0x7e, b'T', b'M'],
    ]
    .concat();
    cable.inject(true, &noise);
    let ev = events();

    // A client that models a few events and dies, its agent waiting for its next message.
    {
        let mut first = Client::start(client_session(&cable.b, &c, &a), &setup()).unwrap();
        for (i, e) in ev.iter().take(10).enumerate() {
            first.model(1 + i as u64 % 2, e).unwrap();
        }
    }

    // The next client, on the same line: served, and modeled as in process.
    let mut client = Client::start(client_session(&cable.b, &c, &a), &setup()).unwrap();
    let mut local = Namespace::new(Config::default()).unwrap();
    for (i, e) in ev.iter().enumerate() {
        let task = 10 + i as u64 % 3;
        assert_eq!(
            client.model(task, e).unwrap(),
            local.model(task, e).unwrap(),
            "event {i}"
        );
    }
    let sum = client.finish().unwrap();
    assert_eq!(sum["state"], local.state().to_hex());
    assert_eq!(sum["events"], 155);

    // The agent's account: the dead client's session ended by the new hello, the next one
    // gave the in-process state.
    let first = outcomes.recv().unwrap();
    assert!(first.contains("a new session's hello"), "{first}");
    assert_eq!(
        outcomes.recv().unwrap(),
        format!("state {}", local.state().to_hex())
    );

    // And a third session after that.
    let third = Client::start(client_session(&cable.b, &c, &a), &setup()).unwrap();
    assert_eq!(third.finish().unwrap()["events"], 0);
}

#[test]
fn a_client_with_the_wrong_key_is_refused_on_the_line_and_the_next_is_served() {
    let (c, a, stranger) = (key(), key(), key());
    let cable = NullModem::new();
    let outcomes = agent(cable.a.clone(), a.clone(), c.clone());
    let line = Line::open(
        &cable.b,
        115_200,
        Role::Client,
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    let e = Session::client_over(Box::new(line), stranger, a.verifying_key())
        .err()
        .expect("a stranger was accepted")
        .to_string();
    assert!(e.contains("refused us"), "{e}");
    assert!(outcomes.recv().unwrap().contains("not the one trusted"));
    let ok = Client::start(client_session(&cable.b, &c, &a), &setup()).unwrap();
    assert_eq!(ok.finish().unwrap()["events"], 0);
}

#[test]
fn a_second_client_cannot_open_a_line_in_use() {
    let cable = NullModem::new();
    let _held = Line::open(&cable.b, 115_200, Role::Client, None).unwrap();
    let e = Line::open(&cable.b, 115_200, Role::Client, None)
        .err()
        .expect("two clients on one line")
        .to_string();
    assert!(e.contains("in use"), "{e}");
}

#[test]
fn an_idle_session_stays_up_while_its_agent_lives_and_is_lost_when_it_goes() {
    let (c, a) = (key(), key());
    let cable = NullModem::new();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ak, cv) = (a.clone(), c.verifying_key());
    // The agent's end is open before the client speaks: opening a line flushes what is queued
    // on it, so a hello sent before would be lost (as on a real cable plugged in late).
    let l = Listener::bind(&Addr::Serial {
        path: cable.a.clone(),
        baud: 115_200,
    })
    .unwrap();
    let agent = std::thread::spawn(move || {
        let s = Session::server_over(l.accept().unwrap(), ak, cv).unwrap();
        let _ = stop_rx.recv();
        drop((s, l));
    });
    let line = Line::open(
        &cable.b,
        115_200,
        Role::Client,
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    let _session = Session::client_over(Box::new(line.clone()), c, a.verifying_key()).unwrap();
    // Longer than the silence that counts as a lost agent: only the agent's signed keepalives
    // for this session keep it.
    std::thread::sleep(tsem_tma::serial::SILENCE + 3 * tsem_tma::serial::KEEPALIVE);
    assert!(!line.agent_lost(), "a live agent counted as lost");
    // The agent goes (its line closed, its keepalives stop).
    stop_tx.send(()).unwrap();
    agent.join().unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(120);
    while !line.agent_lost() {
        assert!(std::time::Instant::now() < end, "a dead agent never lost");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_line_that_takes_no_more_bytes_fails_the_client_s_write_instead_of_hanging_it() {
    let (_master, path) = tsem_testdata::pty::unplugged();
    let mut line = Line::open(&path, 115_200, Role::Client, Some(Duration::from_secs(1))).unwrap();
    // Far more than a pseudo-terminal buffers, and nobody reads the other end.
    let e = tsem_tma::Transport::send(&mut line, tsem_tma::Kind::Message, &vec![0u8; 4 << 20])
        .expect_err("a write to a stalled line succeeded");
    assert!(e.to_string().contains("took no more bytes in time"), "{e}");
}
