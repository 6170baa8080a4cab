//! `tsem verifier serve|enroll|status` and `tsem attest --verifier`, as separate processes; two
//! verifier processes on one PostgreSQL, one killed mid-load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tsem-verifier/tests/common/mod.rs"]
mod common;
mod verifier_process;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use tsem_verifier::{Client, ClientError};
use verifier_process::{Verifier, text};

fn tsem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    tsem().args(args).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn serve_enroll_attest_status() {
    let dir = TempDir::new("cli");
    let db = format!("sqlite://{}", p(&dir.0.join("v.db")));
    let token = dir.0.join("token");

    // Plain HTTP off loopback is refused.
    let o = run(&["verifier", "serve", "--listen", "0.0.0.0:0", "--db", &db]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("refusing plain HTTP on 0.0.0.0"),
        "{}",
        text(&o)
    );

    let v = Verifier::start(&db, &["--admin-token-file", p(&token)]);
    assert_eq!(std::fs::read_to_string(&token).unwrap().trim().len(), 64);
    let key = dir.0.join("key");
    assert!(run(&["keygen", "-o", p(&key)]).status.success());
    let model = process_dir().join("test.model");
    let traj = |n: u32| process_dir().join(format!("process_{n}.json"));
    let o = run(&[
        "verifier",
        "enroll",
        "--url",
        &v.url,
        "--token-file",
        p(&token),
        "--workload",
        "web",
        "--model",
        p(&model),
        "--key",
        &format!("{}.pub", p(&key)),
        "--every",
        "300",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("enrolled web"), "{}", text(&o));

    let attest = |files: &[u32]| {
        let mut args = vec![
            "attest".to_string(),
            "--verifier".into(),
            v.url.clone(),
            "--workload".into(),
            "web".into(),
            "--key".into(),
            p(&key).into(),
            "--model".into(),
            p(&model).into(),
        ];
        args.extend(files.iter().map(|&n| p(&traj(n)).to_string()));
        tsem().args(&args).stdin(Stdio::null()).output().unwrap()
    };
    let o = attest(&[1]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("affirming: verified"),
        "{}",
        text(&o)
    );
    let o = run(&["verifier", "status", "--url", &v.url, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["workload"], "web");
    assert_eq!(s["verdict"], "affirming");

    let o = attest(&[1, 2]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.starts_with("contraindicated: rejected: 2 forensic event(s)"),
        "{out}"
    );
    let o = run(&["verifier", "status", "--url", &v.url, "--workload", "web"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("web\tcontraindicated\t"),
        "{}",
        text(&o)
    );

    // Not enrolled: a clear one-line error, exit 1.
    let o = tsem()
        .args([
            "attest",
            "--verifier",
            &v.url,
            "--workload",
            "ghost",
            "--key",
            p(&key),
        ])
        .arg(traj(1))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("HTTP 404: workload \"ghost\" is not enrolled"),
        "{}",
        text(&o)
    );
}

/// Two verifier processes share one PostgreSQL; clients post to both; one is killed (SIGKILL)
/// mid-load. Every attestation is accepted exactly once (a post whose answer was lost with the
/// process is retried at the survivor and found already recorded, never recorded twice), and the
/// survivor takes over the dead process's leases.
#[test]
fn two_verifiers_one_killed() {
    let Some(pg) = Postgres::start("kill") else {
        return;
    };
    let token_dir = TempDir::new("kill");
    let token = token_dir.0.join("token");
    let lease = ["--lease-ttl", "2", "--admin-token-file", p(&token)];
    let mut a = Verifier::start(&pg.url, &lease);
    let admin = Client::new(
        &a.url,
        Some(std::fs::read_to_string(&token).unwrap().trim().to_string()),
    )
    .unwrap();
    let (secret, public) = tsem_format::model_file::generate_ed25519().unwrap();
    const WORKLOADS: usize = 8;
    const PER_WORKLOAD: usize = 12;
    for w in 0..WORKLOADS {
        admin
            .enroll(&enrolment(&format!("w{w}"), &public, 0, 300))
            .unwrap();
    }
    let id_of = |url: &str| -> String {
        let h: serde_json::Value = Client::new(url, None)
            .unwrap()
            .call::<(), _>("GET", "/v1/health", None)
            .unwrap();
        h["verifier"].as_str().unwrap().to_string()
    };
    let id_a = id_of(&a.url);
    // A, alone, takes every lease; B, started then, finds none free while A lives.
    let held = wait_for(60, || {
        let s = Client::new(&a.url, None).unwrap().status().unwrap();
        s.iter()
            .all(|s| s.lease_holder.as_deref() == Some(&id_a))
            .then_some(())
    });
    assert!(held.is_some(), "A never held every lease");
    let b = Verifier::start(&pg.url, &lease);
    let id_b = id_of(&b.url);

    let model = test_model();
    let ns = Arc::new(namespace(&model, &["process_1.json"]));
    let ok = Arc::new(Mutex::new(Vec::<String>::new()));
    let posted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|t| {
            let (urls, ns, ok, posted, model) = (
                [a.url.clone(), b.url.clone()],
                ns.clone(),
                ok.clone(),
                posted.clone(),
                model.clone(),
            );
            let signer = tsem_attest::Signer::from_pem(&secret).unwrap();
            std::thread::spawn(move || {
                for i in 0..WORKLOADS * PER_WORKLOAD / 2 {
                    let w = format!("w{}", (i * 2 + t) % WORKLOADS);
                    // Alternate verifiers; after A dies, everything goes to B.
                    let mut order = [&urls[i % 2], &urls[(i + 1) % 2]];
                    let nonce = loop {
                        match Client::new(order[0], None).unwrap().nonce(&w) {
                            Ok(n) => break n.nonce,
                            Err(_) => order.swap(0, 1),
                        }
                    };
                    let body = post(attest(&ns, &model, &nonce, &w, &signer), &ns);
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        assert!(tries < 20, "{w}: never accepted");
                        match Client::new(order[0], None).unwrap().post(&w, &body) {
                            Ok(a) => {
                                assert_eq!(a.verdict, "affirming", "{}", a.reason);
                                ok.lock().unwrap().push(nonce.clone());
                                break;
                            }
                            // Recorded by the process that died before it could answer.
                            Err(ClientError::Status { code: 409, msg, .. }) if tries > 1 => {
                                assert!(msg.contains("replayed"), "{msg}");
                                ok.lock().unwrap().push(nonce.clone());
                                break;
                            }
                            Err(ClientError::Io { .. } | ClientError::Response { .. }) => {
                                order.swap(0, 1)
                            }
                            Err(e) => panic!("{w}: {e}"),
                        }
                    }
                    posted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Mid-load: once a third of the attestations are in.
    wait_for(300, || {
        (posted.load(std::sync::atomic::Ordering::SeqCst) >= WORKLOADS * PER_WORKLOAD / 3)
            .then_some(())
    })
    .expect("load never got going");
    a.kill();
    for c in clients {
        c.join().unwrap();
    }
    let ok = ok.lock().unwrap().clone();
    assert_eq!(ok.len(), WORKLOADS * PER_WORKLOAD);
    let mut distinct = ok.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ok.len());

    // The database holds each accepted attestation exactly once, none missing.
    let survivor = Client::new(&b.url, None).unwrap();
    let mut recorded = Vec::new();
    for w in 0..WORKLOADS {
        let h = survivor.history(&format!("w{w}")).unwrap();
        for e in h["history"].as_array().unwrap() {
            if let Some(n) = e["ear"]["eat_nonce"].as_str() {
                recorded.push(n.to_string());
            }
        }
    }
    assert_eq!(
        recorded.len(),
        ok.len(),
        "accepted {} but recorded {}",
        ok.len(),
        recorded.len()
    );
    let mut want: Vec<String> = ok.iter().map(|n| b64url_of_hex(n)).collect();
    want.sort();
    recorded.sort();
    assert_eq!(recorded, want);

    // The survivor takes over every lease of the dead process.
    let moved = wait_for(60, || {
        let s = survivor.status().unwrap();
        s.iter()
            .all(|s| s.lease_holder.as_deref() == Some(&id_b))
            .then_some(())
    });
    assert!(
        moved.is_some(),
        "the leases of the killed verifier were not taken over"
    );
}

/// Two `serve` processes on one database: a re-enrolment through one takes effect on the next
/// post to the other (each caches enrolments; the append statement notices the change).
fn reenrolment_between_processes(db: &str, dir: &TempDir) {
    let token = dir.0.join("token");
    let a = Verifier::start(db, &["--admin-token-file", p(&token)]);
    let b = Verifier::start(db, &["--admin-token-file", p(&token)]);
    let t = std::fs::read_to_string(&token).unwrap();
    reenrolment_through_the_other(&a.url, &b.url, t.trim());
}

#[test]
fn reenrolment_through_another_process_sqlite() {
    let dir = TempDir::new("reenrol");
    let db = format!("sqlite://{}", p(&dir.0.join("v.db")));
    reenrolment_between_processes(&db, &dir);
}

#[test]
fn reenrolment_through_another_process_postgres() {
    let Some(pg) = Postgres::start("reenrol") else {
        return;
    };
    reenrolment_between_processes(&pg.url, &TempDir::new("reenrol-pg"));
}

fn b64url_of_hex(h: &str) -> String {
    let bytes = tsem_attest::claims::from_hex("nonce", h).unwrap();
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The benchmark runs the whole path and reports what it measured.
#[test]
fn bench_reports_json() {
    let dir = TempDir::new("bench");
    let db = format!("sqlite://{}", p(&dir.0.join("b.db")));
    let model = process_dir().join("test.model");
    let traj = process_dir().join("process_1.json");
    let o = run(&[
        "verifier",
        "bench",
        "--db",
        &db,
        "--model",
        p(&model),
        // More than the default nonce rate's burst (50): the benchmark must not be throttled.
        "-n",
        "60",
        p(&traj),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["bench"], "verifier");
    assert_eq!(r["db"], "sqlite");
    assert_eq!(r["n"], 60);
    assert_eq!(r["model_points"], 196);
    assert!(r["per_second"].as_f64().unwrap() > 0.0);
    // Each of the 60 was appraised and recorded: the database holds them after the enrolment.
    let v = Verifier::start(&db, &[]);
    let c = Client::new(&v.url, None).unwrap();
    let all = c.status().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].verdict, "affirming");
    let h = c.history(&all[0].workload).unwrap();
    assert_eq!(h["history"].as_array().unwrap().len(), 61, "{h:#}");
}

/// `tsem bench verifier --json`: `serve` processes on SQLite, and on PostgreSQL with one and two
/// of them; every attestation it reports was appraised affirming and recorded once.
#[test]
fn bench_verifier_measures_serve_processes() {
    let pg = Postgres::start("bench");
    let mut args = vec!["bench", "verifier", "--json", "-n", "30", "--clients", "2"];
    if let Some(pg) = &pg {
        args.extend(["--postgres", pg.url.as_str()]);
    }
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["bench"], "verifier");
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1, "{r}");
    let rows: Vec<(String, u64, u64)> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert!(x["per_second"].as_f64().unwrap() > 0.0, "{x}");
            assert!(x["median_ms"].as_f64().unwrap() > 0.0, "{x}");
            (
                x["db"].as_str().unwrap().to_string(),
                x["servers"].as_u64().unwrap(),
                x["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut want = vec![("sqlite".to_string(), 1, 30)];
    let Some(pg) = pg else {
        assert_eq!(rows, want);
        return;
    };
    want.extend([
        ("postgres".to_string(), 1, 30),
        ("postgres".to_string(), 2, 30),
    ]);
    assert_eq!(rows, want);
    // Both PostgreSQL runs left their workloads affirming with exactly 30 appraisals each (and
    // the enrolment note).
    let v = Verifier::start(&pg.url, &[]);
    let c = Client::new(&v.url, None).unwrap();
    let all = c.status().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for w in all {
        assert_eq!(w.verdict, "affirming");
        let h = c.history(&w.workload).unwrap();
        assert_eq!(h["history"].as_array().unwrap().len(), 31, "{h:#}");
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl; `None` (and a
/// one-line skip) without openssl.
fn make_pki(dir: &Path, ca_name: &str) -> Option<()> {
    let ossl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (subj, key, pem) = (
        format!("/CN={ca_name}"),
        format!("{ca_name}.key"),
        format!("{ca_name}.pem"),
    );
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-subj", &subj, "-days", "2", "-keyout", &key, "-out", &pem]);
    match ossl(&ca) {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("openssl: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!(
                "skipped: TLS test: cannot run openssl: {e} (Debian: apt-get install openssl)"
            );
            return None;
        }
    }
    if ca_name != "ca" {
        return Some(());
    }
    let mut leaf = vec!["req"];
    leaf.extend(ec);
    leaf.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    assert!(ossl(&leaf).unwrap().status.success());
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let o = ossl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "cert.pem",
    ])
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(())
}

/// HTTPS end to end: serve with a certificate, enrol and attest trusting its CA; a client that
/// trusts another CA, or none, or speaks plain HTTP, gets nothing.
#[test]
fn tls_end_to_end() {
    let dir = TempDir::new("tls");
    if make_pki(&dir.0, "ca").is_none() || make_pki(&dir.0, "other").is_none() {
        return;
    }
    let f = |n: &str| p(&dir.0.join(n)).to_string();
    let db = format!("sqlite://{}", f("v.db"));
    let token = dir.0.join("token");
    let v = Verifier::start(
        &db,
        &[
            "--admin-token-file",
            p(&token),
            "--tls-cert",
            &f("cert.pem"),
            "--tls-key",
            &f("key.pem"),
        ],
    );
    assert!(v.url.starts_with("https://"), "{}", v.url);
    let key = dir.0.join("key");
    assert!(run(&["keygen", "-o", p(&key)]).status.success());
    let model = process_dir().join("test.model");
    let o = run(&[
        "verifier",
        "enroll",
        "--url",
        &v.url,
        "--ca-cert",
        &f("ca.pem"),
        "--token-file",
        p(&token),
        "--workload",
        "web",
        "--model",
        p(&model),
        "--key",
        &format!("{}.pub", p(&key)),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tsem()
        .args([
            "attest",
            "--verifier",
            &v.url,
            "--verifier-ca",
            &f("ca.pem"),
            "--workload",
            "web",
        ])
        .args(["--key", p(&key), "--model", p(&model)])
        .arg(process_dir().join("process_1.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("affirming: "),
        "{}",
        text(&o)
    );

    let o = run(&[
        "verifier",
        "status",
        "--url",
        &v.url,
        "--ca-cert",
        &f("ca.pem"),
        "--json",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"verdict\":\"affirming\""),
        "{}",
        text(&o)
    );
    // Another CA: the certificate is refused.
    let o = run(&[
        "verifier",
        "status",
        "--url",
        &v.url,
        "--ca-cert",
        &f("other.pem"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("UnknownIssuer") || text(&o).contains("invalid peer certificate"),
        "{}",
        text(&o)
    );
    // No CA at all, and plain HTTP to the TLS port.
    let o = run(&["verifier", "status", "--url", &v.url]);
    assert!(
        text(&o).contains("https needs the CA certificate"),
        "{}",
        text(&o)
    );
    let plain = v.url.replace("https://", "http://");
    let o = run(&["verifier", "status", "--url", &plain]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// `tsem run --verifier`: the run attests when the workload ends, with the verifier's fresh nonce
/// and the forensic descriptions; an unknown workload fails before anything runs.
#[test]
fn run_attests_to_the_verifier() {
    let dir = TempDir::new("run-verifier");
    let work = dir.0.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("words.txt"), "b\na\n").unwrap();
    std::fs::write(dir.0.join("other.txt"), "not for this workload\n").unwrap();
    let script = "sort words.txt > sorted.txt\n\
                  if [ -n \"${EXTRA_READ:-}\" ]; then\n\
                  if read -r l < \"$EXTRA_READ\"; then echo \"$l\" > leak.txt; fi\n\
                  fi\n";
    std::fs::write(work.join("job.sh"), script).unwrap();
    let sh = |args: &[&str], extra: Option<&Path>| {
        let mut c = tsem();
        c.args(args)
            .current_dir(&work)
            .env("HOME", &dir.0)
            .env_remove("EXTRA_READ")
            .stdin(Stdio::null());
        if let Some(f) = extra {
            c.env("EXTRA_READ", f);
        }
        c.output().unwrap()
    };
    let model = dir.0.join("job.model");
    let o = sh(&["learn", "-o", p(&model), "--", "sh", "job.sh"], None);
    assert!(o.status.success(), "{}", text(&o));
    let (v, key) = verifier_process::with_job_enrolled(&dir.0, &model, &[]);
    let enforce = |workload: &str, extra: Option<&Path>| {
        sh(
            &[
                "run",
                "--enforce",
                "--model",
                p(&model),
                "--verifier",
                &v.url,
                "--workload",
                workload,
                "--key",
                p(&key),
                "--",
                "sh",
                "job.sh",
            ],
            extra,
        )
    };

    let o = enforce("job", None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("affirming: verified"), "{}", text(&o));
    let c = Client::new(&v.url, None).unwrap();
    let st = c.status().unwrap();
    assert_eq!(st[0].verdict, "affirming", "{st:?}");

    // One out-of-model read: denied (nothing leaked), and the verifier holds its description.
    let o = enforce("job", Some(&dir.0.join("other.txt")));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("contraindicated"), "{}", text(&o));
    let leaked = std::fs::read_to_string(work.join("leak.txt")).unwrap_or_default();
    assert!(
        !leaked.contains("not for this workload"),
        "the read was not denied"
    );
    assert_eq!(c.status().unwrap()[0].verdict, "contraindicated");
    let h = c.history("job").unwrap().to_string();
    assert!(h.contains("other.txt"), "forensics not posted: {h}");

    // A workload the verifier does not know: refused before the workload runs.
    let _ = std::fs::remove_file(work.join("sorted.txt"));
    let o = enforce("nobody-knows", None);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not enrolled"), "{}", text(&o));
    assert!(!work.join("sorted.txt").exists(), "the workload ran");
}
