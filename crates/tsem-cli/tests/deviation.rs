//! `tsem run --on-forensic`: a real HTTP server (Debian's nginx) learned on a few requests, then
//! enforced. Under `deny` one request for an unlearned file is refused and recorded while every
//! other request keeps being served; under `restart` the server is killed by that request and
//! comes back serving. Effects are checked on the wire (status and body), not only in tsem's
//! summary. Skipped with one line without nginx unless TSEM_REQUIRE_NGINX=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{s, scratch, summary, tsem};

/// The nginx binary, or None (the test is skipped) when it is not installed.
fn nginx() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var_os("TSEM_REQUIRE_NGINX").is_some() {
            panic!("nginx is not installed and TSEM_REQUIRE_NGINX is set");
        }
        eprintln!("skipped: nginx not installed (Debian package nginx-light)");
    }
    found
}

/// A server's world: its directory (config, logs, document root) and port.
struct Site {
    dir: PathBuf,
    port: u16,
    nginx: PathBuf,
}

const INDEX: &str = "the index page\n";
const OTHER: &str = "another learned page\n";
const SECRET: &str = "never learned: must not be served\n";

impl Site {
    fn new(name: &str, nginx: PathBuf) -> Self {
        let dir = scratch("deviation", name);
        let port = tsem_testdata::port::unused_tcp_port();
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("www/index.html"), INDEX).unwrap();
        std::fs::write(dir.join("www/other.html"), OTHER).unwrap();
        std::fs::write(dir.join("www/secret.html"), SECRET).unwrap();
        // One process (no master/worker split), in the foreground, everything in the directory.
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid nginx.pid;\n\
             error_log error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
             access_log off;\nclient_body_temp_path tmp;\nproxy_temp_path tmp;\n\
             fastcgi_temp_path tmp;\nuwsgi_temp_path tmp;\nscgi_temp_path tmp;\n\
             server {{ listen 127.0.0.1:{port}; root www; }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        Self { dir, port, nginx }
    }

    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// `tsem run ARGS -- nginx ...`, in the background.
    fn start(&self, args: &[&str]) -> Child {
        let d = format!("{}/", self.dir.display());
        tsem()
            .arg("run")
            .arg("--no-digest-cache")
            .args(args)
            .arg("--")
            .arg(&self.nginx)
            .args(["-p", &d, "-c", s(&self.p("nginx.conf"))])
            .args(["-e", s(&self.p("error.log"))])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// GET `path`: the status and body, or None when nothing answers.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        self.get_within(path, Duration::from_secs(30))
    }

    /// GET `path`, giving up after `wait` without an answer.
    fn get_within(&self, path: &str, wait: Duration) -> Option<(u16, String)> {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        c.set_read_timeout(Some(wait)).unwrap();
        c.write_all(format!("GET /{path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .ok()?;
        let mut resp = String::new();
        c.read_to_string(&mut resp).ok()?;
        let status = resp.split(' ').nth(1)?.parse().ok()?;
        let body = resp.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
        Some((status, body))
    }

    /// Wait until the server serves the index page (a deadline, not a measurement: a server
    /// that never comes up fails the test).
    fn wait_serving(&self, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, body)) = self.get("index.html") {
                assert_eq!(body, INDEX);
                return;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("tsem ended ({st}) before nginx served");
            }
            assert!(Instant::now() < deadline, "nginx never served");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ask the running nginx to quit (SIGQUIT, graceful) or die (SIGKILL), and wait for tsem.
    fn stop(&self, child: Child, sig: i32) -> Output {
        let pid: i32 = std::fs::read_to_string(self.p("nginx.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill has no memory preconditions.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        child.wait_with_output().unwrap()
    }

    /// Learn the server: a clean start serving the two pages and a graceful stop, then (extending
    /// the model) a crash, and a start after the crash (nginx finds its stale pid file).
    fn learn(&self) -> PathBuf {
        let model = self.p("model.txt");
        let m = s(&model);
        for (i, sig) in [libc::SIGQUIT, libc::SIGKILL, libc::SIGQUIT]
            .into_iter()
            .enumerate()
        {
            let mut args = vec!["-o", m];
            if i > 0 {
                args.extend(["--learn", "--model", m]);
            }
            let mut child = self.start(&args);
            self.wait_serving(&mut child);
            assert_eq!(self.get("other.html").unwrap(), (200, OTHER.to_string()));
            let out = self.stop(child, sig);
            assert!(
                model.exists(),
                "learning run {i} wrote no model: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        model
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn deny_refuses_the_one_unlearned_file_and_the_server_keeps_serving() {
    let Some(nginx) = nginx() else { return };
    let site = Site::new("deny", nginx);
    let model = site.learn();
    let sum = site.p("deny.json");
    let forensics = site.p("forensics.txt");
    let key = site.p("attester.key");
    let o = tsem().args(["keygen", "-o", s(&key)]).output().unwrap();
    assert!(o.status.success());
    let att = site.p("deny.att.json");
    const NONCE: &str = "00112233445566778899aabbccddeeff";
    let mut child = site.start(&[
        "--model",
        s(&model),
        "--enforce",
        "--on-forensic",
        "deny",
        "--forensics",
        s(&forensics),
        "--summary-json",
        s(&sum),
        "--attest",
        s(&att),
        "--nonce",
        NONCE,
        "--key",
        s(&key),
    ]);
    site.wait_serving(&mut child);
    let mut served = 0;
    for round in 0..3 {
        let (st, body) = site.get("secret.html").expect("the server answers");
        assert_ne!(st, 200, "round {round}: the unlearned file was served");
        assert!(!body.contains(SECRET), "round {round}: secret leaked");
        for (page, text) in [("index.html", INDEX), ("other.html", OTHER)] {
            assert_eq!(
                site.get(page),
                Some((200, text.to_string())),
                "round {round}: {page} after a refused request"
            );
            served += 1;
        }
    }
    assert_eq!(served, 6);
    let out = site.stop(child, libc::SIGQUIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = summary(&sum);
    assert_eq!(v["on_forensic"], "deny");
    // Each request for the secret is one refused, recorded open; nothing else was refused.
    assert_eq!(v["forensics_events"], 3, "{v}");
    assert_eq!(v["denied"], 3, "{v}");
    assert_eq!(v["restarts"], 0);
    assert_eq!(v["policy_kills"], 0);
    let f = common::events(&forensics);
    assert_eq!(f.len(), 1, "one forensic point: {f:?}");
    assert!(common::pathname_of(&f[0]).ends_with("/www/secret.html"));
    assert!(
        stderr(&out).contains("--on-forensic deny"),
        "{}",
        stderr(&out)
    );
    // The policy is in the signed attestation, and a verifier can require it.
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&att).unwrap()).unwrap();
    assert_eq!(a["claims"]["on_forensic"], "deny", "{a}");
    let pubkey = format!("{}.pub", key.display());
    let verify = |policy: &str| {
        tsem()
            .args(["verify", "--model", s(&model), "--nonce", NONCE])
            .args(["--key", &pubkey, "--max-forensics", "3"])
            .args(["--require-on-forensic", policy, s(&att)])
            .output()
            .unwrap()
    };
    let ok = verify("deny");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let refused = verify("untrust");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        said.contains("rejected: the workload ran with --on-forensic deny"),
        "{said}"
    );
}

#[test]
fn untrust_takes_the_server_down_after_one_unlearned_file() {
    // TSEM's own semantics, for contrast: the server's one process becomes untrusted and every
    // later request fails.
    let Some(nginx) = nginx() else { return };
    let site = Site::new("untrust", nginx);
    let model = site.learn();
    let sum = site.p("untrust.json");
    let mut child = site.start(&["--model", s(&model), "--enforce", "--summary-json", s(&sum)]);
    site.wait_serving(&mut child);
    let (st, _) = site.get("secret.html").expect("the server answers");
    assert_ne!(st, 200);
    // Its accept loop is refused: the connection waits in the backlog, unanswered.
    let after = site.get_within("index.html", Duration::from_secs(5));
    assert_ne!(after.map(|a| a.0), Some(200), "an untrusted server served");
    let out = site.stop(child, libc::SIGKILL);
    let v = summary(&sum);
    assert_eq!(v["on_forensic"], "untrust");
    assert!(v["denied"].as_u64().unwrap() > 1, "{v} {}", stderr(&out));
}

#[test]
fn restart_kills_the_server_on_a_deviation_and_it_comes_back_serving() {
    let Some(nginx) = nginx() else { return };
    let site = Site::new("restart", nginx);
    let model = site.learn();
    let sum = site.p("restart.json");
    let mut child = site.start(&[
        "--model",
        s(&model),
        "--enforce",
        "--on-forensic",
        "restart",
        "--max-restarts",
        "2",
        "--summary-json",
        s(&sum),
        "--forensics",
        s(&site.p("forensics.txt")),
    ]);
    site.wait_serving(&mut child);
    let first: String = std::fs::read_to_string(site.p("nginx.pid")).unwrap();
    let secret = site.get("secret.html");
    assert!(
        !secret.is_some_and(|(st, body)| st == 200 || body.contains(SECRET)),
        "the unlearned file was served"
    );
    // A new nginx (new pid) serves again.
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        site.wait_serving(&mut child)
    })) {
        eprintln!(
            "{}",
            std::fs::read_to_string(site.p("forensics.txt")).unwrap_or_default()
        );
        std::panic::resume_unwind(e);
    }
    let second: String = std::fs::read_to_string(site.p("nginx.pid")).unwrap();
    assert_ne!(first, second, "the server was not started again");
    assert_eq!(site.get("other.html"), Some((200, OTHER.to_string())));
    let out = site.stop(child, libc::SIGQUIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = summary(&sum);
    assert_eq!(v["on_forensic"], "restart");
    assert_eq!(v["restarts"], 1, "{v}");
    assert_eq!(v["policy_kills"], 1, "{v}");
    assert_eq!(v["forensics_events"], 1, "{v}");
    assert!(stderr(&out).contains("starting it again (1 of at most 2)"));
}

#[test]
fn kill_ends_the_workload_and_is_counted() {
    let Some(nginx) = nginx() else { return };
    let site = Site::new("kill", nginx);
    let model = site.learn();
    let sum = site.p("kill.json");
    let mut child = site.start(&[
        "--model",
        s(&model),
        "--enforce",
        "--on-forensic",
        "kill",
        "--summary-json",
        s(&sum),
    ]);
    site.wait_serving(&mut child);
    let _ = site.get("secret.html");
    let out = child.wait_with_output().unwrap();
    // The workload was killed: tsem reports nginx's SIGKILL status and nothing listens.
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGKILL),
        "{}",
        stderr(&out)
    );
    assert!(site.get("index.html").is_none(), "the server still answers");
    let v = summary(&sum);
    assert_eq!(v["on_forensic"], "kill");
    assert_eq!(v["policy_kills"], 1, "{v}");
    assert_eq!(v["restarts"], 0, "{v}");
}
