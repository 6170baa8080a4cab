//! A private swtpm per test, on free loopback ports with a temporary state directory, killed
//! (and its state removed) on drop; optionally manufactured with an EK certificate from a local
//! CA the test creates (`swtpm_setup --create-ek-cert` with `swtpm_localca`), as a vendor would.
//!
//! Where the `tsem-tpm` helper was not built (cargo feature `tpm`, which needs libtss2-dev) or
//! swtpm is missing, a TPM test says so in one line and returns; with `TSEM_REQUIRE_TPM=1` (set by
//! `.ci/run`) that is a failure instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Cargo names the helper's path even when its required feature (`tpm`) is off; only the file
/// tells whether it was built.
pub fn tpm_helper() -> Option<PathBuf> {
    option_env!("CARGO_BIN_EXE_tsem-tpm")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

fn which(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn have(name: &str) -> bool {
    which(name).is_some()
}

/// `true` (after printing one line) when a TPM test must be skipped; panics instead where
/// `TSEM_REQUIRE_TPM` is set, so CI never skips silently.
pub fn skip_tpm_test(test: &str) -> bool {
    skip_tpm_test_with(test, &[])
}

/// [`skip_tpm_test`] for a test that also runs `extra` tools: `(program, Debian package)`.
pub fn skip_tpm_test_with(test: &str, extra: &[(&str, &str)]) -> bool {
    let why = if tpm_helper().is_none() {
        "the tsem-tpm helper was not built (cargo feature `tpm`; needs libtss2-dev pkg-config)"
            .to_string()
    } else {
        let mut missing: Vec<&str> = [
            ("swtpm", "swtpm"),
            ("swtpm_setup", "swtpm-tools"),
            ("swtpm_localca", "swtpm-tools"),
        ]
        .iter()
        .chain(extra)
        .filter(|(n, _)| !have(n))
        .map(|(_, p)| *p)
        .collect();
        missing.dedup();
        if missing.is_empty() {
            return false;
        }
        format!("not installed: {}", missing.join(" "))
    };
    assert!(
        std::env::var_os("TSEM_REQUIRE_TPM").is_none(),
        "{test}: TSEM_REQUIRE_TPM is set but {why}"
    );
    eprintln!("skipped {test}: {why} (scripts/setup installs them)");
    true
}

fn free_port_pair() -> Option<u16> {
    tsem_testdata::port::unused_tcp_ports(2)
}

fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "tsem-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A certificate authority of the test's own that issues EK certificates (`swtpm_localca`
/// creates its root and issuing certificates on first use).
pub struct LocalCa {
    pub dir: PathBuf,
}

impl LocalCa {
    pub fn new(name: &str) -> Self {
        let dir = scratch(&format!("ca-{name}"));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let st = dir.join("state");
        std::fs::write(
            dir.join("localca.conf"),
            format!(
                "statedir = {s}\nsigningkey = {s}/signkey.pem\nissuercert = {s}/issuercert.pem\n\
                 certserial = {s}/certserial\n",
                s = st.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("localca.options"),
            "--platform-manufacturer tsem\n--platform-version 1\n--platform-model test\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("setup.conf"),
            format!(
                "create_certs_tool = {}\ncreate_certs_tool_config = {}\n\
                 create_certs_tool_options = {}\n",
                which("swtpm_localca").unwrap().display(),
                dir.join("localca.conf").display(),
                dir.join("localca.options").display()
            ),
        )
        .unwrap();
        Self { dir }
    }

    /// The certificate that signs EK certificates (exists once a TPM was manufactured).
    pub fn issuer_cert(&self) -> PathBuf {
        self.dir.join("state/issuercert.pem")
    }
}

impl Drop for LocalCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Swtpm {
    /// A TPM fresh from the factory, without EK certificate.
    pub fn start(name: &str) -> Swtpm {
        Self::serve(scratch(&format!("swtpm-{name}")))
    }

    /// A TPM with an RSA 2048 EK (and an ECC one) whose certificate `ca` issued, in NV.
    pub fn manufactured(name: &str, ca: &LocalCa) -> Swtpm {
        let dir = scratch(&format!("swtpm-{name}"));
        let out = Command::new("swtpm_setup")
            .args(["--tpm2", "--create-ek-cert", "--overwrite", "--tpmstate"])
            .arg(&dir)
            .arg("--config")
            .arg(ca.dir.join("setup.conf"))
            .stdin(Stdio::null())
            .output()
            .expect("cannot run swtpm_setup");
        assert!(
            out.status.success(),
            "swtpm_setup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self::serve(dir)
    }

    fn serve(dir: PathBuf) -> Swtpm {
        // Ports picked here can be taken by someone else before swtpm binds them: retry.
        for _ in 0..10 {
            let port = free_port_pair().expect("no free loopback port pair");
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .args(["--flags", "not-need-init,startup-clear", "--tpmstate"])
                .arg(format!("dir={}", dir.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start swtpm");
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Swtpm { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not come up on a loopback port");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Run the `tsem-tpm` helper against this TPM: its JSON output, or its one-line error.
    pub fn helper(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new(tpm_helper().unwrap())
            .arg(args[0])
            .args(["--tcti", &self.tcti()])
            .args(&args[1..])
            .env("TSS2_LOG", "all+none")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
