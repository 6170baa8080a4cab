//! The verifier end to end, on SQLite and on PostgreSQL: enrolment, challenge-response,
//! replay and foreign nonces, forensics, staleness, hostile posts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use tsem_verifier::protocol::Status;
use tsem_verifier::server::{Config, spawn};
use tsem_verifier::{Client, ClientError};

fn status_of(c: &Client, w: &str) -> Status {
    c.status()
        .unwrap()
        .into_iter()
        .find(|s| s.workload == w)
        .unwrap_or_else(|| panic!("{w} not in status"))
}

fn http_error(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Status { code, msg, .. }) => (code, msg),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

/// Everything the issue asks of one database.
fn scenario(db_url: &str) {
    let token = "test-admin-token".to_string();
    let mut cfg = Config::new(Some(token.clone()));
    cfg.lease_ttl = 1;
    // Above what any workload below asks for, except `burst`.
    cfg.nonce_rate = 5;
    let server = spawn(([127, 0, 0, 1], 0).into(), db_url, cfg).unwrap();
    let admin = Client::new(&server.url(), Some(token)).unwrap();
    let anon = Client::new(&server.url(), None).unwrap();
    let model = test_model();
    let (signer, public) = keypair();

    // Enrolment needs the admin token.
    let (code, msg) = http_error(anon.enroll(&enrolment("web", &public, 0, 300)));
    assert_eq!(code, 401, "{msg}");
    let (code, _) = http_error(
        Client::new(&server.url(), Some("wrong".into()))
            .unwrap()
            .enroll(&enrolment("web", &public, 0, 300)),
    );
    assert_eq!(code, 401);
    admin.enroll(&enrolment("web", &public, 0, 300)).unwrap();
    admin.enroll(&enrolment("bad", &public, 0, 300)).unwrap();
    admin
        .enroll(&enrolment("tolerant", &public, 2, 300))
        .unwrap();
    assert_eq!(status_of(&anon, "web").verdict, "none");

    // process_1 against test.model: affirming.
    let ns1 = namespace(&model, &["process_1.json"]);
    let nonce = anon.nonce("web").unwrap().nonce;
    let att = attest(&ns1, &model, &nonce, "web", &signer);
    let a = anon.post("web", &post(att.clone(), &ns1)).unwrap();
    assert_eq!(a.verdict, "affirming", "{}", a.reason);
    assert!(a.reason.contains("155 events, 0 forensic"), "{}", a.reason);
    assert_eq!(a.ear["submods"]["tsem"]["ear.status"], "affirming");
    let s = status_of(&anon, "web");
    assert_eq!(
        (s.verdict.as_str(), s.reason.as_str()),
        ("affirming", a.reason.as_str())
    );

    // The same attestation posted again: rejected, and recorded once.
    let (code, msg) = http_error(anon.post("web", &post(att.clone(), &ns1)));
    assert_eq!(code, 409, "{msg}");
    assert!(msg.contains("replayed"), "{msg}");
    // A nonce this verifier never issued, and one issued to another workload.
    let made_up = tsem_verifier::server::random_hex(32).unwrap();
    let forged = attest(&ns1, &model, &made_up, "web", &signer);
    let (code, msg) = http_error(anon.post("web", &post(forged, &ns1)));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("was not issued by this verifier"), "{msg}");
    let others = anon.nonce("bad").unwrap().nonce;
    let crossed = attest(&ns1, &model, &others, "web", &signer);
    let (code, msg) = http_error(anon.post("web", &post(crossed, &ns1)));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("was not issued by this verifier"), "{msg}");
    // A genuine nonce of this workload with its MAC altered (one bit of its last byte), and
    // with its expiry pushed later (the MAC covers it): not issued here.
    for forge in [|n: &mut Vec<u8>| n[31] ^= 1, |n: &mut Vec<u8>| n[6] ^= 0x10] {
        let mut n = tsem_attest::parse_nonce(&anon.nonce("web").unwrap().nonce).unwrap();
        forge(&mut n);
        let forged = attest(
            &ns1,
            &model,
            &tsem_attest::claims::to_hex(&n),
            "web",
            &signer,
        );
        let (code, msg) = http_error(anon.post("web", &post(forged, &ns1)));
        assert_eq!(code, 403, "{msg}");
        assert!(msg.contains("was not issued by this verifier"), "{msg}");
    }
    // A genuine nonce (made under the fleet key the database holds, as any verifier process of
    // the fleet would) that expired a second ago.
    let expired = fleet_nonce(db_url, "web", tsem_attest::now_unix() - 1);
    let late = attest(&ns1, &model, &expired, "web", &signer);
    let (code, msg) = http_error(anon.post("web", &post(late, &ns1)));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("expired at"), "{msg}");
    // Signed by another key: not appraised, nothing recorded, the nonce stays usable.
    let (intruder, _) = keypair();
    let nonce = anon.nonce("web").unwrap().nonce;
    let wrong = attest(&ns1, &model, &nonce, "web", &intruder);
    let (code, msg) = http_error(anon.post("web", &post(wrong, &ns1)));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("another key"), "{msg}");
    let h = anon.history("web").unwrap();
    let entries = h["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{h:#}"); // enrolment + one appraisal
    assert_eq!(entries[1]["verdict"], "affirming");
    assert_eq!(
        entries[1]["ear"]["eat_nonce"].as_str().map(str::len),
        Some(43)
    );
    assert_eq!(status_of(&anon, "web").verdict, "affirming");
    // The nonce the intruder burned nothing: the workload can still use it.
    let ok = attest(&ns1, &model, &nonce, "web", &signer);
    assert_eq!(
        anon.post("web", &post(ok, &ns1)).unwrap().verdict,
        "affirming"
    );

    // Forensics above the policy: contraindicated, with the reason, and the forensics kept.
    let ns2 = namespace(&model, &["process_1.json", "process_2.json"]);
    assert_eq!(ns2.forensics_events(), 2);
    let nonce = anon.nonce("bad").unwrap().nonce;
    let a = anon
        .post(
            "bad",
            &post(attest(&ns2, &model, &nonce, "bad", &signer), &ns2),
        )
        .unwrap();
    let why = "2 forensic event(s) at 2 forensic point(s); the policy tolerates 0";
    assert_eq!(a.verdict, "contraindicated");
    assert!(a.reason.contains(why), "{}", a.reason);
    let s = status_of(&anon, "bad");
    assert_eq!(s.verdict, "contraindicated");
    assert!(s.reason.contains(why), "{}", s.reason);
    let h = anon.history("bad").unwrap();
    let last = h["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["forensics"].as_array().unwrap().len(), 2, "{last:#}");
    // Within a policy that tolerates them: a warning.
    let nonce = anon.nonce("tolerant").unwrap().nonce;
    let a = anon
        .post(
            "tolerant",
            &post(attest(&ns2, &model, &nonce, "tolerant", &signer), &ns2),
        )
        .unwrap();
    assert_eq!(a.verdict, "warning", "{}", a.reason);

    // A deviation policy required at enrolment (`--require-on-forensic`): an unknown one is
    // refused; a run under another (process_1 modeled under untrust, the default) is
    // contraindicated, naming both; the same run under the required policy is affirming.
    let mut strict = enrolment("strict", &public, 0, 300);
    strict.on_forensic = Some("lenient".into());
    let (code, msg) = http_error(admin.enroll(&strict));
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("on_forensic"), "{msg}");
    strict.on_forensic = Some("deny".into());
    admin.enroll(&strict).unwrap();
    let s = status_of(&anon, "strict");
    assert!(
        s.reason.contains("deviation policy deny required"),
        "{}",
        s.reason
    );
    let nonce = anon.nonce("strict").unwrap().nonce;
    let a = anon
        .post(
            "strict",
            &post(attest(&ns1, &model, &nonce, "strict", &signer), &ns1),
        )
        .unwrap();
    assert_eq!(a.verdict, "contraindicated", "{}", a.reason);
    assert!(
        a.reason
            .contains("ran with --on-forensic untrust; the policy requires deny"),
        "{}",
        a.reason
    );
    let mut denying = namespace(&model, &["process_1.json"]);
    denying.set_policy(tsem_core::policy::Policy::Deny);
    let nonce = anon.nonce("strict").unwrap().nonce;
    let a = anon
        .post(
            "strict",
            &post(
                attest(&denying, &model, &nonce, "strict", &signer),
                &denying,
            ),
        )
        .unwrap();
    assert_eq!(a.verdict, "affirming", "{}", a.reason);

    // Hostile bodies: one-line errors, and the server keeps serving.
    for (body, want) in [
        (&b"{"[..], 400),
        (b"[]", 400),
        (b"\xff\xfe\x00", 400),
        (br#"{"attestation":{"format":"x"}}"#, 400),
    ] {
        let (code, text) = anon
            .request("POST", "/v1/workloads/web/attestations", Some(body))
            .unwrap();
        assert_eq!(code, want, "{text}");
        assert!(
            text.starts_with("{\"error\":") && !text.contains('\n'),
            "{text}"
        );
    }
    let huge = vec![b'x'; tsem_verifier::protocol::MAX_POST + 10];
    let (code, _) = anon
        .request("POST", "/v1/workloads/web/attestations", Some(&huge))
        .unwrap();
    assert_eq!(code, 413);
    let (code, _) = anon
        .request("POST", "/v1/workloads/..%2f/nonce", None)
        .unwrap();
    assert_eq!(code, 400);
    let (code, _) = anon
        .request("POST", "/v1/workloads/ghost/nonce", None)
        .unwrap();
    assert_eq!(code, 404);

    // Nonces are rate-limited per workload (5 a second here): a burst of 40 is cut short.
    admin.enroll(&enrolment("burst", &public, 0, 300)).unwrap();
    let mut refused = 0;
    for _ in 0..40 {
        if let Err(e) = anon.nonce("burst") {
            let (code, msg) = http_error(Err::<(), _>(e));
            assert_eq!(code, 429, "{msg}");
            assert!(msg.contains("rate limit"), "{msg}");
            refused += 1;
        }
    }
    assert!(refused > 0, "40 nonces in a row were all issued");

    // A workload that stops reporting turns stale after its interval (1 s: stale 2 s after its
    // last attestation), in every status answer and, through the lease keeper, in its history.
    admin.enroll(&enrolment("quiet", &public, 0, 1)).unwrap();
    let nonce = anon.nonce("quiet").unwrap().nonce;
    let a = anon
        .post(
            "quiet",
            &post(attest(&ns1, &model, &nonce, "quiet", &signer), &ns1),
        )
        .unwrap();
    assert_eq!(a.verdict, "affirming");
    let stale = wait_for(60, || {
        let s = status_of(&anon, "quiet");
        (s.verdict == "stale").then_some(s)
    })
    .expect("quiet never turned stale");
    assert!(
        stale.reason.contains("reports every 1 s"),
        "{}",
        stale.reason
    );
    let recorded = wait_for(60, || {
        let h = anon.history("quiet").unwrap();
        h["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["verdict"] == "stale")
            .then_some(())
    });
    assert!(
        recorded.is_some(),
        "the lease keeper never recorded quiet as stale"
    );
    assert!(status_of(&anon, "quiet").lease_holder.is_some());
    // An affirming workload with a long interval is not stale.
    assert_eq!(status_of(&anon, "web").verdict, "affirming");
    server.stop().unwrap();
}

/// A nonce for `workload` expiring at `expires`, made with the fleet key stored in `db_url`.
fn fleet_nonce(db_url: &str, workload: &str, expires: u64) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = tsem_verifier::Store::open(db_url).await.unwrap();
        let n = store.nonce_key().issue(workload, expires).unwrap();
        store.close().await;
        tsem_attest::claims::to_hex(&n)
    })
}

/// Two verifier servers on one database, each with its own pool and enrolment cache (they
/// share nothing but the database; `tsem-cli`'s `verifier_cli.rs` runs the same with two
/// `serve` processes).
fn two_servers_one_database(db_url: &str) {
    let token = "t".to_string();
    let a = spawn(
        ([127, 0, 0, 1], 0).into(),
        db_url,
        Config::new(Some(token.clone())),
    )
    .unwrap();
    let b = spawn(
        ([127, 0, 0, 1], 0).into(),
        db_url,
        Config::new(Some(token.clone())),
    )
    .unwrap();
    reenrolment_through_the_other(&a.url(), &b.url(), &token);
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn sqlite_reenrolment_through_another_verifier() {
    let dir = TempDir::new("sqlite-reenrol");
    two_servers_one_database(&format!("sqlite://{}", dir.0.join("v.db").display()));
}

#[test]
fn postgres_reenrolment_through_another_verifier() {
    let Some(pg) = Postgres::start("reenrol") else {
        return;
    };
    two_servers_one_database(&pg.url);
}

/// Many posts at once, so that appraisals queue for the database (on PostgreSQL several share
/// one statement): every distinct attestation recorded once, and of one attestation posted by
/// every thread at the same moment exactly one accepted, the others refused as replayed.
fn concurrent_posts(db_url: &str) {
    const THREADS: usize = 12;
    const EACH: usize = 5;
    let mut cfg = Config::new(Some("t".into()));
    cfg.nonce_rate = 0;
    let server = spawn(([127, 0, 0, 1], 0).into(), db_url, cfg).unwrap();
    let admin = Client::new(&server.url(), Some("t".into())).unwrap();
    let (signer, public) = keypair();
    admin.enroll(&enrolment("busy", &public, 0, 300)).unwrap();
    let model = test_model();
    let ns = namespace(&model, &["process_1.json"]);
    let make = || {
        let nonce = admin.nonce("busy").unwrap().nonce;
        post(attest(&ns, &model, &nonce, "busy", &signer), &ns)
    };
    let shared = make();
    let own: Vec<Vec<_>> = (0..THREADS)
        .map(|_| (0..EACH).map(|_| make()).collect())
        .collect();
    let barrier = std::sync::Barrier::new(THREADS);
    let codes: Vec<(u16, Vec<u16>)> = std::thread::scope(|s| {
        let handles: Vec<_> = own
            .iter()
            .map(|mine| {
                let (url, shared, barrier) = (server.url(), &shared, &barrier);
                s.spawn(move || {
                    let c = Client::new(&url, None).unwrap();
                    let code = |r: Result<_, ClientError>| match r {
                        Ok(a) => {
                            let a: tsem_verifier::protocol::Appraisal = a;
                            assert_eq!(a.verdict, "affirming", "{}", a.reason);
                            200
                        }
                        Err(ClientError::Status { code, .. }) => code,
                        Err(e) => panic!("{e}"),
                    };
                    barrier.wait();
                    let first = code(c.post("busy", shared));
                    let rest = mine.iter().map(|p| code(c.post("busy", p))).collect();
                    (first, rest)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shared_ok = codes.iter().filter(|c| c.0 == 200).count();
    assert_eq!(shared_ok, 1, "{codes:?}");
    assert!(codes.iter().all(|c| c.0 == 200 || c.0 == 409), "{codes:?}");
    assert!(
        codes.iter().all(|c| c.1.iter().all(|&x| x == 200)),
        "{codes:?}"
    );
    let h = admin.history("busy").unwrap();
    let entries = h["history"].as_array().unwrap();
    // The enrolment note, then one entry per accepted attestation, each nonce once.
    assert_eq!(entries.len(), 1 + 1 + THREADS * EACH);
    let nonces: std::collections::HashSet<_> = entries[1..]
        .iter()
        .map(|e| e["ear"]["eat_nonce"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nonces.len(), 1 + THREADS * EACH);
    server.stop().unwrap();
}

#[test]
fn sqlite_concurrent_posts() {
    let dir = TempDir::new("sqlite-busy");
    concurrent_posts(&format!("sqlite://{}", dir.0.join("v.db").display()));
}

#[test]
fn postgres_concurrent_posts() {
    let Some(pg) = Postgres::start("busy") else {
        return;
    };
    concurrent_posts(&pg.url);
}

#[test]
fn sqlite_end_to_end() {
    let dir = TempDir::new("sqlite");
    let url = format!("sqlite://{}", dir.0.join("v.db").display());
    scenario(&url);
    // Everything survives a restart: the history is in the file.
    let server = spawn(([127, 0, 0, 1], 0).into(), &url, Config::new(None)).unwrap();
    let c = Client::new(&server.url(), None).unwrap();
    assert_eq!(status_of(&c, "bad").verdict, "contraindicated");
    server.stop().unwrap();
    // With private status, reading verdicts needs the admin token.
    let mut cfg = Config::new(Some("t".into()));
    cfg.private_status = true;
    let server = spawn(([127, 0, 0, 1], 0).into(), &url, cfg).unwrap();
    let (code, msg) = http_error(Client::new(&server.url(), None).unwrap().status());
    assert_eq!(code, 401, "{msg}");
    let (code, _) = http_error(Client::new(&server.url(), None).unwrap().history("bad"));
    assert_eq!(code, 401);
    let admin = Client::new(&server.url(), Some("t".into())).unwrap();
    assert_eq!(status_of(&admin, "bad").verdict, "contraindicated");
    assert!(admin.history("bad").is_ok());
    server.stop().unwrap();
}

#[test]
fn postgres_end_to_end() {
    let Some(pg) = Postgres::start("e2e") else {
        return;
    };
    scenario(&pg.url);
}

/// The same over PostgreSQL's Unix socket (`postgres:///DB?host=DIR&user=USER`), on a server with no
/// TCP listener at all: that the scenario passes shows the verifier connected by the socket.
#[test]
fn postgres_end_to_end_over_unix_socket() {
    let Some(pg) = Postgres::start_unix_only("e2e-unix") else {
        return;
    };
    assert!(pg.url.is_empty());
    scenario(&pg.socket_url);
}

/// Every truncation and many byte mutations of a real post: the parser never panics, and every
/// error is one line (the fuzz target explores further; this runs in every `cargo test`).
#[test]
fn mutated_posts_never_panic() {
    let model = test_model();
    let (signer, _) = keypair();
    let ns = namespace(&model, &["process_1.json", "process_2.json"]);
    let nonce = tsem_verifier::server::random_hex(32).unwrap();
    let body = serde_json::to_vec(&post(attest(&ns, &model, &nonce, "w", &signer), &ns)).unwrap();
    assert!(tsem_verifier::protocol::parse_post(&body).is_ok());
    let check = |b: &[u8]| {
        if let Err(e) = tsem_verifier::protocol::parse_post(b) {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    };
    for n in 0..body.len() {
        check(&body[..n]);
    }
    for (i, flip) in (0..body.len()).zip(
        [b'"', b'{', b'}', b'0', b'\\', 0xff, b' ', b'9']
            .iter()
            .cycle(),
    ) {
        let mut m = body.clone();
        m[i] = *flip;
        check(&m);
    }
}

/// The verifier memoises the state a model implies for an aggregate and forensic points; a
/// signed post that claims another state for the same inputs is still refused once the memo
/// holds the expectation, and the refused claim does not change what later posts are held to.
#[test]
fn a_state_other_than_the_memoised_expectation_is_refused() {
    let dir = TempDir::new("memo");
    let url = format!("sqlite://{}", dir.0.join("v.db").display());
    let mut cfg = Config::new(Some("t".into()));
    cfg.nonce_rate = 0;
    let server = spawn(([127, 0, 0, 1], 0).into(), &url, cfg).unwrap();
    let admin = Client::new(&server.url(), Some("t".into())).unwrap();
    let (signer, public) = keypair();
    admin.enroll(&enrolment("memo", &public, 0, 300)).unwrap();
    let model = test_model();
    let ns = namespace(&model, &["process_1.json"]);
    let genuine = |admin: &Client| {
        let nonce = admin.nonce("memo").unwrap().nonce;
        let a = admin
            .post(
                "memo",
                &post(attest(&ns, &model, &nonce, "memo", &signer), &ns),
            )
            .unwrap();
        assert_eq!(a.verdict, "affirming", "{}", a.reason);
    };
    genuine(&admin);
    genuine(&admin);
    let nonce = admin.nonce("memo").unwrap().nonce;
    let mut claims = attest(&ns, &model, &nonce, "memo", &signer).claims;
    let expected = claims.state.clone();
    claims.state = tsem_core::hash::HashAlg::Sha256
        .digest(b"not the model's state")
        .to_hex();
    let lie = tsem_attest::Attestation::sign(claims, &signer).unwrap();
    let a = admin.post("memo", &post(lie, &ns)).unwrap();
    assert_eq!(a.verdict, "contraindicated", "{}", a.reason);
    assert!(
        a.reason.contains(&format!("is not {expected}")),
        "{}",
        a.reason
    );
    genuine(&admin);
    server.stop().unwrap();
}

/// A refused post costs a signature check and consumes nothing: past `refusal_rate` a second,
/// posts for that workload are answered 429 before any check, genuine ones included, until the
/// bucket refills. Accepted posts are never charged (each consumed its nonce).
#[test]
fn refused_posts_are_rate_limited_and_accepted_ones_are_not() {
    let dir = TempDir::new("refusal-rate");
    let url = format!("sqlite://{}", dir.0.join("v.db").display());
    let mut cfg = Config::new(Some("t".into()));
    cfg.refusal_rate = 3;
    let server = spawn(([127, 0, 0, 1], 0).into(), &url, cfg).unwrap();
    let admin = Client::new(&server.url(), Some("t".into())).unwrap();
    let c = Client::new(&server.url(), None).unwrap();
    let model = test_model();
    let ns = namespace(&model, &["process_1.json"]);
    let (signer, public) = keypair();
    let (stranger, _) = keypair();
    admin.enroll(&enrolment("w", &public, 0, 300)).unwrap();

    // Accepted posts, many more than the refusal rate, one after another: none is charged.
    let mut nonce = c.nonce("w").unwrap().nonce;
    for _ in 0..10 {
        let a = c
            .post("w", &post(attest(&ns, &model, &nonce, "w", &signer), &ns))
            .unwrap();
        assert_eq!(a.verdict, "affirming", "{}", a.reason);
        nonce = a.next_nonce.unwrap().nonce;
    }
    let recorded = || {
        admin.history("w").unwrap()["history"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = recorded();
    // Signed by a key the verifier does not know: refused, and the nonce is not consumed.
    let forged = post(attest(&ns, &model, &nonce, "w", &stranger), &ns);
    for _ in 0..3 {
        let (code, msg) = http_error(c.post("w", &forged));
        assert_eq!(code, 403, "{msg}");
    }
    let (code, msg) = http_error(c.post("w", &forged));
    assert_eq!(code, 429, "{msg}");
    assert!(msg.contains("refused posts"), "{msg}");
    // The genuine post waits for the bucket too, and is not recorded meanwhile.
    let genuine = post(attest(&ns, &model, &nonce, "w", &signer), &ns);
    let (code, _) = http_error(c.post("w", &genuine));
    assert_eq!(code, 429);
    assert_eq!(recorded(), before);
    // Another workload is not affected.
    admin.enroll(&enrolment("v", &public, 0, 300)).unwrap();
    let n = c.nonce("v").unwrap().nonce;
    let a = c
        .post("v", &post(attest(&ns, &model, &n, "v", &signer), &ns))
        .unwrap();
    assert_eq!(a.verdict, "affirming");
    // A third of a second refills one token: the genuine post goes through with its nonce.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let a = c.post("w", &genuine).unwrap();
    assert_eq!(a.verdict, "affirming", "{}", a.reason);
    assert_eq!(recorded(), before + 1);
    server.stop().unwrap();
}
