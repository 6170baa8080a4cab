//! The agent protocol over a real socket pair: mutual Ed25519 authentication, the agent's
//! verdicts equal the in-process namespace's, and replayed, reordered or altered frames refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::net::UnixStream;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use tsem_core::namespace::{Config, Mode, Namespace};
use tsem_core::policy::Policy;
use tsem_format::RecordParser;
use tsem_tma::agent::{Client, Setup, serve};
use tsem_tma::{Session, TmaError};

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

/// A session pair: the agent serving in a thread (its result), the client's session.
fn pair(
    agent_trusts: &SigningKey,
    client_trusts: &SigningKey,
    client: SigningKey,
    agent: SigningKey,
) -> (
    std::thread::JoinHandle<Result<Namespace, TmaError>>,
    Result<Session, TmaError>,
) {
    let (a, b) = UnixStream::pair().unwrap();
    let trusted = agent_trusts.verifying_key();
    let h = std::thread::spawn(move || {
        let mut s = Session::server(Box::new(a), agent, trusted)?;
        serve(&mut s)
    });
    let s = Session::client(Box::new(b), client, client_trusts.verifying_key());
    (h, s)
}

fn setup() -> Setup {
    Setup {
        config: Config::default(),
        mode: Mode::Free,
        policy: Policy::Untrust,
        model: String::new(),
    }
}

#[test]
fn the_agent_models_as_the_in_process_namespace_does() {
    let (c, a) = (key(), key());
    let (h, s) = pair(&c, &a, c.clone(), a.clone());
    let mut client = Client::start(s.unwrap(), &setup()).unwrap();
    let mut local = Namespace::new(Config::default()).unwrap();
    for (i, e) in events().iter().enumerate() {
        let task = 10 + i as u64 % 3;
        assert_eq!(
            client.model(task, e).unwrap(),
            local.model(task, e).unwrap()
        );
    }
    client.exited(10).unwrap();
    let sum = client.finish().unwrap();
    assert_eq!(sum["state"], local.state().to_hex());
    assert_eq!(sum["events"], 155);
    assert_eq!(h.join().unwrap().unwrap().state(), local.state());
}

#[test]
fn a_wrong_key_on_either_side_is_refused() {
    let (c, a, stranger) = (key(), key(), key());
    // The client expects another agent.
    let (h, s) = pair(&c, &stranger, c.clone(), a.clone());
    let e = s.err().expect("an impostor agent was accepted").to_string();
    assert!(e.contains("the agent's key is not the one trusted"), "{e}");
    assert!(h.join().unwrap().is_err());
    // The agent expects another client.
    let (h, s) = pair(&stranger, &a, c.clone(), a.clone());
    let e = s.err().expect("a stranger client was accepted").to_string();
    assert!(e.contains("refused us"), "{e}");
    let e = h.join().unwrap().err().unwrap().to_string();
    assert!(e.contains("not the one trusted"), "{e}");
}

#[test]
fn replayed_reordered_and_altered_frames_are_refused() {
    let (c, a) = (key(), key());
    let ev = events();
    for case in ["replay", "reorder", "alter"] {
        let (h, s) = pair(&c, &a, c.clone(), a.clone());
        let mut s = s.unwrap();
        // A valid set-up (sequence 0), answered.
        let head =
            r#"{"digest":"sha256","mapping":"model0","mode":"free","on_forensic":"untrust"}"#;
        s.send(format!("S{head}\n").as_bytes()).unwrap();
        assert_eq!(s.recv().unwrap(), b"O");
        let mut body = vec![b'E'];
        body.extend_from_slice(&1u64.to_be_bytes());
        tsem_format::write_event(&mut body, &ev[0], tsem_format::RecordKind::Trajectory);
        let frame = match case {
            // Sequence 0 again: the set-up frame's number, a valid signature.
            "replay" => s.seal_frame(0, &body),
            // Sequence 2 where 1 is due.
            "reorder" => s.seal_frame(2, &body),
            _ => {
                let mut f = s.seal_frame(1, &body);
                f[12] ^= 1;
                f
            }
        };
        s.send_raw(&frame).unwrap();
        let e = h
            .join()
            .unwrap()
            .expect_err("the frame was accepted")
            .to_string();
        let want = if case == "alter" {
            "bad signature"
        } else {
            "replayed or reordered"
        };
        assert!(e.contains(want), "{case}: {e}");
        // The agent says why, and ended the session: nothing more is answered.
        let why = s.recv().unwrap();
        assert!(
            why.starts_with(b"N") && String::from_utf8_lossy(&why).contains(want),
            "{case}: {}",
            String::from_utf8_lossy(&why)
        );
        assert!(s.recv().is_err(), "{case}");
    }
}
