//! The nonce an appraisal answer carries for the workload's next attestation, on SQLite and on
//! PostgreSQL: single use, bound to its workload, expiring like any other; and a client that
//! holds one attests with one request, recovering with one nonce request when it has expired.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use tsem_verifier::protocol::{NonceGrant, Post};
use tsem_verifier::server::{Config, spawn};
use tsem_verifier::{Client, ClientError, Session};

/// `(HTTP status, message, kind)` of a refusal.
fn refusal(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String, Option<String>) {
    match r {
        Err(ClientError::Status {
            code, msg, kind, ..
        }) => (code, msg, kind),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

/// `(nonce requests, attestation posts)` the server has served so far.
fn served(c: &Client) -> (u64, u64) {
    let h: serde_json::Value = c.call::<(), _>("GET", "/v1/health", None).unwrap();
    (
        h["requests"]["nonce"].as_u64().unwrap(),
        h["requests"]["attestations"].as_u64().unwrap(),
    )
}

/// Entries recorded in `w`'s history for `nonce` (hex): their EARs name it.
fn recorded(c: &Client, w: &str, nonce: &str) -> usize {
    let b64 = base64url(&tsem_attest::parse_nonce(nonce).unwrap());
    c.history(w).unwrap()["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ear"]["eat_nonce"].as_str() == Some(b64.as_str()))
        .count()
}

/// RFC 4648 base64url without padding (the EAR's `eat_nonce`), written out here so that the
/// test does not share the code it checks.
fn base64url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | u32::from(*x) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn scenario(db_url: &str) {
    let token = "t".to_string();
    let server = spawn(
        ([127, 0, 0, 1], 0).into(),
        db_url,
        Config::new(Some(token.clone())),
    )
    .unwrap();
    // A second process on the same database whose nonces live one second (the `--nonce-ttl`
    // knob): the fleet key is the database's, so either process checks the other's nonces.
    let mut short = Config::new(Some(token.clone()));
    short.nonce_ttl = 1;
    let brief = spawn(([127, 0, 0, 1], 0).into(), db_url, short).unwrap();
    let admin = Client::new(&server.url(), Some(token)).unwrap();
    let c = Client::new(&server.url(), None).unwrap();
    let model = test_model();
    let ns = namespace(&model, &["process_1.json"]);
    let (k_web, p_web) = keypair();
    let (k_other, p_other) = keypair();
    admin.enroll(&enrolment("web", &p_web, 0, 300)).unwrap();
    admin.enroll(&enrolment("other", &p_other, 0, 300)).unwrap();
    let post_for = |nonce: &str, w: &str, k: &tsem_attest::Signer| -> Post {
        post(attest(&ns, &model, nonce, w, k), &ns)
    };

    // The first attestation asks for a nonce; its answer carries the next one.
    let first = c.nonce("web").unwrap();
    let before = tsem_attest::now_unix();
    let a = c
        .post("web", &post_for(&first.nonce, "web", &k_web))
        .unwrap();
    assert_eq!(a.verdict, "affirming", "{}", a.reason);
    let next = a
        .next_nonce
        .expect("an accepted answer carries the next nonce");
    assert_ne!(next.nonce, first.nonce);
    // The same lifetime as an asked-for nonce (120 s by default), from the answer's time.
    assert!(
        next.expires >= before + 120 && next.expires <= tsem_attest::now_unix() + 120,
        "expires {} for a nonce issued at {before}",
        next.expires
    );

    // Bound to its workload: another workload's genuine post with it is refused, nothing is
    // recorded, and the nonce stays good for its own workload.
    let (code, msg, kind) = refusal(c.post("other", &post_for(&next.nonce, "other", &k_other)));
    assert_eq!(
        (code, kind.as_deref()),
        (403, Some("nonce_unknown")),
        "{msg}"
    );
    assert_eq!(recorded(&c, "other", &next.nonce), 0);

    // Accepted once, and only once.
    let p = post_for(&next.nonce, "web", &k_web);
    let b = c.post("web", &p).unwrap();
    assert_eq!(b.verdict, "affirming", "{}", b.reason);
    let (code, msg, kind) = refusal(c.post("web", &p));
    assert_eq!((code, kind.as_deref()), (409, Some("replayed")), "{msg}");
    assert_eq!(recorded(&c, "web", &next.nonce), 1);
    // Also at the other process (a replay anywhere in the fleet meets the same append).
    let (code, msg, _) = refusal(Client::new(&brief.url(), None).unwrap().post("web", &p));
    assert_eq!(code, 409, "{msg}");
    // A fresh attestation for the consumed nonce (made again and signed anew) is refused too.
    let (code, msg, _) = refusal(c.post("web", &post_for(&next.nonce, "web", &k_web)));
    assert_eq!(code, 409, "{msg}");
    assert_eq!(recorded(&c, "web", &next.nonce), 1);

    // It expires like any other: one issued by the one-second process, held past its expiry.
    let bc = Client::new(&brief.url(), None).unwrap();
    let n = bc.nonce("web").unwrap();
    let a = bc.post("web", &post_for(&n.nonce, "web", &k_web)).unwrap();
    let held = a.next_nonce.unwrap();
    assert!(held.expires <= tsem_attest::now_unix() + 1);
    wait_past(held.expires);
    let (code, msg, kind) = refusal(bc.post("web", &post_for(&held.nonce, "web", &k_web)));
    assert_eq!(
        (code, kind.as_deref()),
        (403, Some("nonce_expired")),
        "{msg}"
    );
    assert!(msg.contains("expired at"), "{msg}");
    assert_eq!(recorded(&c, "web", &held.nonce), 0);

    // A session holding that expired nonce (it knows its expiry): one nonce request, one post.
    let mut s = Session::new(Client::new(&brief.url(), None).unwrap(), "web");
    s.hold(held.clone());
    let (n0, p0) = served(&bc);
    // Attest through a session; how many attestations it made (one per nonce it tried).
    let attest_web = |s: &mut Session| {
        let mut made = 0;
        let a = s
            .attest(|nonce| {
                made += 1;
                Ok::<_, ClientError>(post_for(&hex(nonce), "web", &k_web))
            })
            .unwrap();
        (a, made)
    };
    let (a, made) = attest_web(&mut s);
    assert_eq!(a.verdict, "affirming", "{}", a.reason);
    assert_eq!(served(&bc), (n0 + 1, p0 + 1));
    assert_eq!(made, 1);
    // A session whose clock says the held nonce is still good (its expiry misreported, as a
    // client's clock running late would): the verifier refuses it as expired, the session asks
    // for a fresh one and attests again, once.
    s.hold(NonceGrant {
        nonce: held.nonce.clone(),
        expires: u64::MAX,
    });
    let (a, made) = attest_web(&mut s);
    assert_eq!(a.verdict, "affirming", "{}", a.reason);
    assert_eq!(served(&bc), (n0 + 2, p0 + 3));
    assert_eq!(made, 2);
    assert_eq!(recorded(&c, "web", &held.nonce), 0);

    // A session attesting repeatedly: one nonce request in all, one post per attestation.
    let mut s = Session::new(Client::new(&server.url(), None).unwrap(), "web");
    let (n0, p0) = served(&c);
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..5 {
        let a = s
            .attest(|nonce| {
                assert!(nonces.insert(nonce.to_vec()), "a nonce used twice");
                Ok::<_, ClientError>(post_for(&hex(nonce), "web", &k_web))
            })
            .unwrap();
        assert_eq!(a.verdict, "affirming", "{}", a.reason);
    }
    assert_eq!(served(&c), (n0 + 1, p0 + 5));
    for n in &nonces {
        assert_eq!(recorded(&c, "web", &hex(n)), 1);
    }
    server.stop().unwrap();
    brief.stop().unwrap();
}

fn hex(b: &[u8]) -> String {
    tsem_attest::claims::to_hex(b)
}

/// Sleep until the clock reads past `t` (UNIX seconds).
fn wait_past(t: u64) {
    while tsem_attest::now_unix() <= t {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sqlite_next_nonce() {
    let dir = TempDir::new("sqlite-next-nonce");
    scenario(&format!("sqlite://{}", dir.0.join("v.db").display()));
}

#[test]
fn postgres_next_nonce() {
    let Some(pg) = Postgres::start("next-nonce") else {
        return;
    };
    scenario(&pg.url);
}
