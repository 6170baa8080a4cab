//! A `tsem verifier serve` process for the CLI tests, killed on drop, and the one-line summary of
//! a command's output the tests print when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A `tsem verifier serve` process; its URL is the first line it prints.
pub struct Verifier {
    pub child: Child,
    pub url: String,
}

impl Verifier {
    /// Serve `db` on a free loopback port with `extra` options.
    pub fn start(db: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tsem"))
            .args(["verifier", "serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://127.0.0.1:") || line.starts_with("https://127.0.0.1:"),
            "{line:?}"
        );
        Self {
            child,
            url: line.trim().to_string(),
        }
    }

    /// SIGKILL it, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A verifier on SQLite in `dir` with an admin token, and workload `job` enrolled in it under
/// `model` with a new Ed25519 key `dir/key` and the `extra` enrolment options. Returns the
/// verifier and the key's path.
pub fn with_job_enrolled(dir: &Path, model: &Path, extra: &[&str]) -> (Verifier, PathBuf) {
    let tsem = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tsem"))
            .args(args)
            .output()
            .unwrap()
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let key = dir.join("key");
    let o = tsem(&["keygen", "-o", &s(&key)]);
    assert!(o.status.success(), "{}", text(&o));
    let token = dir.join("token");
    let v = Verifier::start(
        &format!("sqlite://{}", s(&dir.join("v.db"))),
        &["--admin-token-file", &s(&token)],
    );
    let (url, token, model, public) = (
        v.url.clone(),
        s(&token),
        s(model),
        format!("{}.pub", s(&key)),
    );
    let mut args = vec!["verifier", "enroll", "--url", &url, "--token-file", &token];
    args.extend(["--workload", "job", "--model", &model, "--key", &public]);
    args.extend(extra);
    let o = tsem(&args);
    assert!(o.status.success(), "{}", text(&o));
    (v, key)
}

/// Exit status, stdout and stderr of a command, for assertion messages and `contains` checks.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
