//! Shared by the container tests: skipping where runc or a static busybox is missing, busybox
//! bundles built from scratch (no image registry), and running `tsem-runtime`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Programs linked into the busybox root filesystem.
pub const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "echo", "true", "wc", "mkdir", "sleep", "kill", "head", "grep", "tr", "rm",
];

/// Contents of /etc/secret, which no model lets a container read.
pub const SECRET: &str = "SECRET-BYTES-4711";

/// Where a test works: its own directory under $TMPDIR, its own runc state root.
pub struct Env {
    /// The test's directory.
    pub dir: PathBuf,
    /// `tsem-runtime`.
    pub runtime: PathBuf,
    /// `tsem`, the supervisor.
    pub tsem: PathBuf,
    /// runc's `--root` for this test.
    pub root: PathBuf,
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Busybox linked statically (Debian's busybox-static), which runs in a root filesystem of its
/// own.
fn static_busybox() -> bool {
    let Ok(b) = std::fs::read("/bin/busybox") else {
        return false;
    };
    // An ELF64 file without a PT_INTERP program header.
    let u = |at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at + n)?;
        Some(s.iter().rev().fold(0u64, |a, x| a << 8 | u64::from(*x)))
    };
    let (Some(off), Some(size), Some(num)) = (u(0x20, 8), u(0x36, 2), u(0x38, 2)) else {
        return false;
    };
    b.starts_with(b"\x7fELF\x02")
        && (0..num).all(|i| u((off + i * size) as usize, 4).is_some_and(|t| t != 3))
}

/// Skip (one line, `None`) unless root, runc and a static busybox are here, or fail when
/// TSEM_REQUIRE_CONTAINERS=1.
pub fn env(name: &str) -> Option<Env> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        Some(
            "not root: runc's init is not dumpable before its exec, so an unprivileged \
             supervisor cannot seize it (rootless containers are not supported yet)",
        )
    } else if !have("runc") {
        Some("runc is not installed (Debian: runc)")
    } else if !static_busybox() {
        Some("no static /bin/busybox (Debian: busybox-static)")
    } else {
        None
    };
    if let Some(why) = why {
        if std::env::var("TSEM_REQUIRE_CONTAINERS").as_deref() == Ok("1") && root {
            panic!("TSEM_REQUIRE_CONTAINERS=1 but {why}");
        }
        println!("skipped {name}: {why}");
        return None;
    }
    let runtime = PathBuf::from(env!("CARGO_BIN_EXE_tsem-runtime"));
    let tsem = runtime.with_file_name("tsem");
    assert!(
        tsem.is_file(),
        "{} is missing: build it first (cargo build -p tsem-cli)",
        tsem.display()
    );
    let dir = std::env::temp_dir().join(format!("tsem-runtime-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Some(Env {
        root: dir.join("runc-root"),
        dir,
        runtime,
        tsem,
    })
}

/// A busybox root filesystem in `dir/rootfs`: the applets, /etc/app.conf, /etc/secret, /tmp.
pub fn rootfs(dir: &Path) -> PathBuf {
    let r = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    std::fs::write(r.join("etc/app.conf"), "greeting=hello\n").unwrap();
    std::fs::write(r.join("etc/secret"), format!("{SECRET}\n")).unwrap();
    std::fs::create_dir_all(r.join("etc/conf.d")).unwrap();
    std::fs::write(r.join("etc/conf.d/a"), "a\n").unwrap();
    std::fs::write(r.join("etc/conf.d/b"), "b\n").unwrap();
    r
}

/// A bundle in `dir` (created) whose process runs `script` with `sh -c`, with annotations.
pub fn bundle(dir: &Path, script: &str, annotations: &[(&str, String)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    rootfs(dir);
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success(), "runc spec");
    set_process(dir, script, annotations);
    dir.to_path_buf()
}

/// Change the bundle's process and annotations.
pub fn set_process(dir: &Path, script: &str, annotations: &[(&str, String)]) {
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    c["root"]["readonly"] = false.into();
    let mut a = serde_json::Map::new();
    for (k, v) in annotations {
        a.insert(k.to_string(), v.clone().into());
    }
    c["annotations"] = a.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

impl Env {
    /// `tsem-runtime --root ROOT --tsem TSEM ARGS...`.
    pub fn runtime(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root")
            .arg(&self.root)
            .arg("--tsem")
            .arg(&self.tsem);
        c
    }

    /// `tsem-runtime run -b BUNDLE ID`.
    pub fn run(&self, bundle: &Path, id: &str) -> Output {
        self.runtime()
            .args(["run", "-b"])
            .arg(bundle)
            .arg(id)
            .output()
            .unwrap()
    }

    /// `tsem-runtime run -d -b BUNDLE ID`, the container's stdio on /dev/null (a pipe would stay
    /// open as long as the container runs); whether it succeeded.
    pub fn run_detached(&self, bundle: &Path, id: &str) -> bool {
        self.runtime()
            .args(["run", "-d", "-b"])
            .arg(bundle)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// A path in the test's directory, as a String (annotations take strings).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The delegate's state of `id`.
    pub fn state(&self, id: &str) -> Option<serde_json::Value> {
        let o = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["state", id])
            .output()
            .unwrap();
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).unwrap())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A JSON file.
pub fn json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

/// stdout and stderr of `o`, for failure messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
