//! Helpers of the live-run tests (`control`, `control_export`): a test's world (its scratch
//! directory, private runtime directory and FIFOs), runs started in it and waited on at a known
//! point, and replays of what they wrote.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn tsem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
}

/// A fresh directory that also works when the tests run unprivileged.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("TSEM_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("tsem-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A test's world: its scratch directory, private runtime directory and FIFO (`fifo`; more
/// with [`World::mkfifo`]).
pub struct World {
    pub dir: PathBuf,
    pub rt: PathBuf,
    pub fifo: PathBuf,
}

impl World {
    pub fn new(name: &str) -> Self {
        let dir = scratch(name);
        let rt = dir.join("rt");
        std::fs::DirBuilder::new().mode(0o700).create(&rt).unwrap();
        let fifo = dir.join("fifo");
        mkfifo(&fifo);
        Self { dir, rt, fifo }
    }

    /// Another FIFO `name` in the scratch directory.
    pub fn mkfifo(&self, name: &str) -> PathBuf {
        let p = self.p(name);
        mkfifo(&p);
        p
    }

    pub fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    pub fn cmd(&self) -> Command {
        let mut c = tsem();
        c.env("XDG_RUNTIME_DIR", &self.rt).current_dir(&self.dir);
        c
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.cmd()
            .arg("ctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn ctl_json(&self, args: &[&str]) -> Vec<Value> {
        let o = self.ctl(args);
        assert!(o.status.success(), "ctl {args:?}: {}", stderr(&o));
        lines(&o.stdout)
    }

    /// Start `tsem run ARGS -- sh -c SCRIPT` in the background.
    pub fn start(&self, args: &[&str], script: &str) -> Child {
        self.cmd()
            .arg("run")
            .arg("--no-digest-cache")
            .args(args)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Wait until run `name` answers and its workload is blocked reading the FIFO, so that
    /// every event before it has been modeled and nothing changes until [`World::release`].
    /// Returns the FIFO's write end.
    pub fn wait_up(&self, name: &str, child: &mut Child) -> std::fs::File {
        self.wait_on(name, &self.fifo, child)
    }

    /// As [`World::wait_up`], for the workload blocked reading `fifo`.
    pub fn wait_on(&self, name: &str, fifo: &Path, child: &mut Child) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut answered = false;
        loop {
            answered = answered || self.ctl(&["state", name, "--json"]).status.success();
            if answered {
                // A non-blocking open for writing succeeds only once the reader has it open.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(fifo)
                {
                    Ok(f) => return f,
                    Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENXIO), "{e}"),
                }
            }
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("the run ended ({st}) before waiting: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Let the workload go on past the FIFO.
    pub fn release(&self, mut fifo: std::fs::File) {
        fifo.write_all(b"go\n").unwrap();
    }

    pub fn finish(&self, child: Child) -> Output {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "run failed: {}", stderr(&o));
        o
    }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn lines(b: &[u8]) -> Vec<Value> {
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

pub fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// `tsem replay --json FILES` (with `--model` if given).
pub fn replay(model: Option<&Path>, files: &[&Path]) -> Value {
    let mut c = tsem();
    c.arg("replay").arg("--json");
    if let Some(m) = model {
        c.arg("--model").arg(m);
    }
    let o = c.args(files).output().unwrap();
    assert!(o.status.success(), "replay: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

pub fn same_state(a: &Value, b: &Value) {
    for k in [
        "state",
        "measurement",
        "points",
        "forensics_points",
        "aggregate",
    ] {
        assert_eq!(a[k], b[k], "{k} differs");
    }
}

pub const WAITER: &str = "cat /etc/hostname >/dev/null; read x < fifo; ls / >/dev/null";
