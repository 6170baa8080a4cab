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
    agent_and_line(dir, listen, peer, says).0
}

/// [`agent`], with the line in which it said where it listens.
fn agent_and_line(dir: &Path, listen: &str, peer: &str, says: &str) -> (Agent, String) {
    let mut c = serve(dir, listen, peer);
    let mut line = String::new();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    assert!(line.contains(says), "{line}");
    // Keep draining its messages so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    (Agent(c), line)
}

/// An agent on a TCP port of the kernel's choosing (so no other test can take it between a
/// probe and the bind), and the address it says it listens on.
pub fn tcp_agent(dir: &Path, peer: &str) -> (Agent, String) {
    let (a, line) = agent_and_line(dir, "tcp:127.0.0.1:0", peer, "listening on tcp:127.0.0.1:");
    let addr = line.trim_end().rsplit(' ').next().unwrap().to_string();
    assert!(!addr.ends_with(":0"), "{line}");
    (a, addr)
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

/// How a lying agent falsifies its answer about the first event naming `secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// The verdict's flags turned into "allowed, in the model", correctly signed.
    Flags,
    /// The true answer, with its signature damaged.
    Signature,
    /// The true answer, correctly signed, under the next sequence number but one.
    Sequence,
}

/// A fake agent at `tcp:127.0.0.1:PORT` that handshakes as the real one (`agent.key`, trusting
/// `client.key.pub` in `dir`) and relays every message to a real agent (tsem_tma's own
/// `agent::serve`, on a thread over a socket pair) and every answer back, except the answer
/// about the first event that names a file `secret`, which it falsifies as `lie` says. Returns
/// the address and the thread, which ends with the session and tells whether it lied.
pub fn liar(dir: &Path, lie: Lie) -> (String, std::thread::JoinHandle<bool>) {
    use tsem_tma::Session;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp:{}", l.local_addr().unwrap());
    let key = |f: &str| tsem_tma::signing_key(&dir.join(f)).unwrap();
    let public = |f: &str| tsem_tma::verifying_key(&dir.join(f)).unwrap();
    let (agent_key, agent_pub) = (key("agent.key"), public("agent.key.pub"));
    let (client_key, client_pub) = (key("client.key"), public("client.key.pub"));
    let t = std::thread::spawn(move || {
        let (conn, _) = l.accept().unwrap();
        let mut down = Session::server(Box::new(conn), agent_key.clone(), client_pub).unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let real = std::thread::spawn(move || {
            if let Ok(mut s) = Session::server(Box::new(a), agent_key, client_pub) {
                let _ = tsem_tma::agent::serve(&mut s);
            }
        });
        let mut up = Session::client(Box::new(b), client_key, agent_pub).unwrap();
        // Our sequence number towards the client: Session::send counts its own, send_raw not.
        let (mut sent, mut lied) = (0u64, false);
        while let Ok(body) = down.recv() {
            let Ok(mut reply) = up.send(&body).and_then(|()| up.recv()) else {
                break;
            };
            let names_secret = body.first() == Some(&b'E')
                && body.windows(b"/secret\"".len()).any(|w| w == b"/secret\"");
            let r = if names_secret && !lied {
                lied = true;
                match lie {
                    Lie::Flags => {
                        assert_eq!(reply[0], b'V', "not a verdict");
                        let honest = reply[1];
                        // allow | valid, neither forensic nor untrusting.
                        reply[1] = (honest | 1 | 8) & !(2 | 4);
                        assert_ne!(reply[1], honest, "the lie would be the truth");
                        down.send(&reply)
                    }
                    Lie::Signature => {
                        let mut f = down.seal_frame(sent, &reply);
                        let n = f.len();
                        f[n - 1] ^= 0x01;
                        down.send_raw(&f)
                    }
                    Lie::Sequence => down.send_raw(&down.seal_frame(sent + 1, &reply)),
                }
            } else {
                down.send(&reply)
            };
            if r.is_err() {
                break;
            }
            sent += 1;
        }
        drop(up);
        real.join().unwrap();
        lied
    });
    (addr, t)
}
