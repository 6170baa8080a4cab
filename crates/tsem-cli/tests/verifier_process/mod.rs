//! A `tsem verifier serve` process for the CLI tests, killed on drop, and the one-line summary of
//! a command's output the tests print when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead as _, BufReader};
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

/// Exit status, stdout and stderr of a command, for assertion messages and `contains` checks.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
