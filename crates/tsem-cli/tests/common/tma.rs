//! Helpers of the modeling-agent tests (`tma`, `tma_serial`, `tma_vsock`): agents started
//! and killed, `tsem run --tma` arguments, and the two fail-closed scenarios every transport
//! must pass (the agent dies while the workload is about to act, or while it asks nothing).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use super::{s, tsem};

/// A running `tsem tma serve`, killed when dropped.
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Agent {
    /// Kill the agent now and reap it.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// Ed25519 key pairs `NAME.key` / `NAME.key.pub` in `dir`.
pub fn keys(dir: &Path, names: &[&str]) {
    for k in names {
        let o = tsem()
            .args(["keygen", "-o", s(&dir.join(format!("{k}.key")))])
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}

/// `tsem tma serve --listen LISTEN` with `agent.key`, trusting `peer` (a public key in `dir`).
pub fn serve(dir: &Path, listen: &str, peer: &str) -> Child {
    tsem()
        .args(["tma", "serve", "--listen", listen])
        .args(["--key", s(&dir.join("agent.key"))])
        .args(["--peer", s(&dir.join(peer))])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// [`serve`], returning once the agent says it listens (its first line contains `says`).
pub fn agent(dir: &Path, listen: &str, peer: &str, says: &str) -> Agent {
    let mut c = serve(dir, listen, peer);
    let mut line = String::new();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    assert!(line.contains(says), "{line}");
    // Keep draining its messages so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    Agent(c)
}

/// `tsem run` arguments modeling through the agent at `addr`, with our `key` and its `peer`.
pub fn tma_args(dir: &Path, addr: &str, key: &str, peer: &str) -> Vec<String> {
    vec![
        "--tma".into(),
        addr.into(),
        "--tma-key".into(),
        s(&dir.join(key)).into(),
        "--tma-peer".into(),
        s(&dir.join(peer)).into(),
    ]
}

/// `tsem run ARGS -- sh -c SCRIPT` in `dir`.
pub fn run(dir: &Path, args: &[String], script: &str) -> Output {
    tsem()
        .args(["run", "--no-digest-cache"])
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `tsem run ARGS -- sh -c "read x < fifo; SCRIPT"` started in `dir`, and the FIFO's write end
/// once the workload waits on it (opening it meets its reader).
fn waiting_on_a_fifo(dir: &Path, args: &[String], script: &str) -> (Child, std::fs::File) {
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let child = tsem()
        .args(["run", "--no-digest-cache"])
        .args(args)
        .args(["--", "sh", "-c", &format!("read x < fifo; {script}")])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    (child, w)
}

/// The agent dies while the workload waits; then the workload is told to copy a secret. The
/// run fails, the secret is never copied (the effect); the run's stderr is returned.
pub fn agent_killed_before_the_next_event(dir: &Path, mut agent: Agent, tma: &[String]) -> String {
    std::fs::write(dir.join("secret"), "the secret\n").unwrap();
    let (child, mut w) = waiting_on_a_fifo(dir, tma, "cat secret > copy");
    agent.kill();
    // The sensor may already have killed the workload for losing its agent (its watchdog),
    // closing the FIFO's read end: a broken pipe is that outcome, not a test failure.
    match w.write_all(b"go\n") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let copy = std::fs::read_to_string(dir.join("copy")).unwrap_or_default();
    assert!(
        !copy.contains("the secret"),
        "the workload ran on without its agent"
    );
    super::stderr(&out)
}

/// The agent dies while the workload asks nothing (it blocks on a FIFO held open and never
/// written): the workload must still be killed within `deadline_s` (a deadline, not a
/// measurement) and its next command never run. The run's stderr is returned.
pub fn idle_workload_dies_with_its_agent(
    dir: &Path,
    mut agent: Agent,
    tma: &[String],
    deadline_s: u64,
) -> String {
    let (mut child, w) = waiting_on_a_fifo(dir, tma, "echo after > after");
    agent.kill();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(deadline_s);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < end,
            "the workload outlived its agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(!dir.join("after").exists());
    super::stderr(&out)
}
