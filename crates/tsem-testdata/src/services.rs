//! Test support for services: temporary directories, polling with a generous bound, and a
//! PostgreSQL server of the test's own (Debian's `postgresql` package; `initdb` in a temporary
//! directory, listening on 127.0.0.1 only, run as uid 65534 when the test runs as root, since
//! initdb refuses root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tsem-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Poll `f` every 100 ms until it gives `Some`, for at most `secs` seconds (a generous bound on
/// a state change, not a performance threshold).
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A PostgreSQL server of our own: `initdb` in a temporary directory, listening on 127.0.0.1
/// at a free port, run as an unprivileged user (initdb refuses root).
pub struct Postgres {
    child: Child,
    /// Over loopback TCP (empty for [`Postgres::start_unix_only`]).
    pub url: String,
    /// Over its Unix socket: `postgres:///postgres?host=DIR&port=PORT&user=tsem` (the port names
    /// the socket file, `DIR/.s.PGSQL.PORT`; `postgres://tsem@/…` is not a URL: a user needs a
    /// host).
    pub socket_url: String,
    _dir: TempDir,
}

fn pg_bindir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("TSEM_PG_BINDIR") {
        return Some(PathBuf::from(d));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `cmd` as uid/gid 65534 when we are root, as ourselves otherwise.
fn unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Start one, or say in one line why not and return `None` (a failure instead when
    /// `TSEM_REQUIRE_POSTGRES` is set).
    pub fn start(name: &str) -> Option<Self> {
        Self::launch(name, true)
    }

    /// Like [`Postgres::start`], but with no TCP listener at all (`listen_addresses=''`): only
    /// [`Postgres::socket_url`] connects, so a client that works with it used the socket.
    pub fn start_unix_only(name: &str) -> Option<Self> {
        Self::launch(name, false)
    }

    fn launch(name: &str, tcp: bool) -> Option<Self> {
        let skip = |why: &str| {
            if std::env::var_os("TSEM_REQUIRE_POSTGRES").is_some() {
                panic!("PostgreSQL test cannot run: {why}");
            }
            eprintln!("skipped: PostgreSQL test: {why} (Debian: apt-get install postgresql)");
            None
        };
        let Some(bin) = pg_bindir() else {
            return skip("no initdb/postgres in /usr/lib/postgresql/*/bin");
        };
        let dir = TempDir::new(&format!("pg-{name}"));
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(&dir.0)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return skip("cannot hand the data directory to uid 65534");
            }
        }
        let data = dir.0.join("data");
        let out = unprivileged(&bin.join("initdb"))
            .args([
                "-U",
                "tsem",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
                "-D",
            ])
            .arg(&data)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return skip(&format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => return skip(&format!("cannot run initdb: {e}")),
        }
        let port = crate::port::unused_tcp_port();
        let child = unprivileged(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir.0)
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                if tcp {
                    "listen_addresses=127.0.0.1"
                } else {
                    "listen_addresses="
                },
                "-c",
                "fsync=off",
            ])
            .args(["-c", "max_connections=100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.0.join("postgres.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let url = if tcp {
            format!("postgres://tsem@127.0.0.1:{port}/postgres")
        } else {
            String::new()
        };
        let socket_url = format!(
            "postgres:///postgres?host={}&port={port}&user=tsem",
            dir.0.display()
        );
        let log = dir.0.join("postgres.log");
        let socket = dir.0.join(format!(".s.PGSQL.{port}"));
        let pg = Self {
            child,
            url,
            socket_url,
            _dir: dir,
        };
        // The port opens before recovery ends; the log says when connections are accepted.
        let up = wait_for(60, || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("ready to accept connections"))
                .and_then(|_| {
                    if tcp {
                        std::net::TcpStream::connect(("127.0.0.1", port)).map(|_| ())
                    } else {
                        std::os::unix::net::UnixStream::connect(&socket).map(|_| ())
                    }
                    .ok()
                })
        });
        assert!(
            up.is_some(),
            "PostgreSQL did not start on port {port}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown, which also ends its backends.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
