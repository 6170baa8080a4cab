//! Peers timed in the same run as tsem (issue 15): syd, a seccomp user-notification sandbox
//! written in Rust, in its tracing mode and in an enforcing profile.
//!
//! The enforcing profile is syd's own `linux` profile (read, write, stat, exec and network
//! checked against allowlists of the system's directories) plus the workload's directory and
//! its listening port, with one file of that directory denied. Before any timing,
//! [`Syd::prove_denial`] shows by effect that the profile enforces: a read of the denied file
//! fails and its bytes never reach the output, while a read of an allowed file beside it works.
//! syd's Landlock layer is turned off: with it, every `execve` fails with `EACCES` on this
//! project's machines (Landlock ABI 7), so the profile would deny the workload itself.
//! `trace/allow_unsafe_exec_nopie` lets non-PIE executables run (Debian's gcc is one).
//!
//! # Warning
//! The comparison is like for like only as far as the profiles are: tsem checks each event
//! against a learned model of exact objects, syd checks paths against glob allowlists.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

/// The bytes the denial proof looks for in the output: present only if the read succeeded.
const SECRET: &str = "tsem-bench-secret-7f3a";

/// A `syd` found on PATH.
pub struct Syd {
    version: String,
}

/// What [`Syd::prove_denial`] observed.
pub struct Denial {
    /// The denied read failed and its bytes did not reach the output.
    pub denied: bool,
    /// The allowed read beside it succeeded with the file's bytes.
    pub allowed: bool,
}

impl Syd {
    /// `syd` on PATH answering `--version`, or `None` (one line on stderr saying the peer's
    /// columns are skipped).
    pub fn detect() -> Option<Self> {
        let out = Command::new("syd").arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if out.status.success() && !version.is_empty() {
            Some(Syd { version })
        } else {
            eprintln!("tsem bench: syd is not on PATH; the peer sandbox's columns are skipped");
            None
        }
    }

    /// syd's tracing mode: every sandbox category off, each call syd hooks still passes
    /// through its supervisor.
    pub fn tracing(cmd: &[String]) -> Vec<String> {
        let mut v: Vec<String> = ["syd", "-poff", "-m", "trace/allow_unsafe_exec_nopie:true"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.push("--".into());
        v.extend(cmd.iter().cloned());
        v
    }

    /// The enforcing profile's rules for a workload working in `dir` (and listening on `port`).
    pub fn rules(dir: &Path, port: Option<u16>) -> Vec<String> {
        let d = dir.display();
        let mut r: Vec<String> = vec![
            "sandbox/lock:off".into(),
            "trace/allow_unsafe_exec_nopie:true".into(),
            // nginx gives its temporary directories to its worker's user.
            "trace/allow_unsafe_chown:true".into(),
            "allow/rpath+/proc/stat".into(),
            "allow/rpath+/sys/devices/system/cpu/online".into(),
            format!("allow/all+{d}/***"),
        ];
        if let Some(p) = port {
            r.push(format!("allow/net/bind+127.0.0.1!{p}"));
        }
        // Last match wins: the denied file stays denied inside the allowed directory.
        r.push(format!("deny/all+{}", denied_path(dir).display()));
        r
    }

    /// The enforcing profile around `cmd`.
    pub fn enforcing(dir: &Path, port: Option<u16>, cmd: &[String]) -> Vec<String> {
        let mut v: Vec<String> = vec!["syd".into(), "-plinux".into()];
        for rule in Syd::rules(dir, port) {
            v.push("-m".into());
            v.push(rule);
        }
        v.push("--".into());
        v.extend(cmd.iter().cloned());
        v
    }

    /// Show by effect that the enforcing profile denies: a file outside it (in `dir`, denied
    /// by its last rule) is read under it, and so is an allowed file beside it.
    pub fn prove_denial(&self, dir: &Path) -> anyhow::Result<Denial> {
        let (secret, public) = (denied_path(dir), dir.join("syd-allowed"));
        std::fs::write(&secret, SECRET)?;
        std::fs::write(&public, "allowed")?;
        let read = |p: &Path| -> anyhow::Result<(bool, String)> {
            let argv = Syd::enforcing(dir, None, &["cat".into(), p.display().to_string()]);
            let out = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()?;
            Ok((
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ))
        };
        let (secret_ok, secret_out) = read(&secret)?;
        let (public_ok, public_out) = read(&public)?;
        let _ = std::fs::remove_file(&public);
        Ok(Denial {
            denied: !secret_ok && !secret_out.contains(SECRET),
            allowed: public_ok && public_out == "allowed",
        })
    }

    /// The peer's description for a benchmark's JSON.
    pub fn json(&self, dir: &Path, port: Option<u16>, denial: &Denial) -> serde_json::Value {
        json!({
            "version": self.version,
            "tracing": "-poff -m trace/allow_unsafe_exec_nopie:true",
            "enforcing": {
                "profile": "linux",
                "rules": Syd::rules(dir, port),
                "denies_a_read_outside_it": denial.denied,
                "allows_a_read_inside_it": denial.allowed,
            },
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The file the enforcing profile denies in the workload's directory.
fn denied_path(dir: &Path) -> std::path::PathBuf {
    dir.join("syd-denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enforcing_profile_denies_its_file_after_allowing_the_directory() {
        let r = Syd::rules(Path::new("/w"), Some(8080));
        let allow = r.iter().position(|x| x == "allow/all+/w/***");
        let deny = r.iter().position(|x| x == "deny/all+/w/syd-denied");
        assert!(allow.is_some() && deny.is_some() && deny > allow, "{r:?}");
        assert!(r.contains(&"allow/net/bind+127.0.0.1!8080".to_string()));
        let argv = Syd::enforcing(Path::new("/w"), None, &["true".into()]);
        assert_eq!(argv[..2], ["syd", "-plinux"]);
        assert_eq!(argv[argv.len() - 2..], ["--", "true"]);
    }

    /// With syd installed, the profile the benchmark times really denies (by effect: the
    /// denied file's bytes never reach the output) and still lets the workload read its own.
    #[test]
    fn syd_s_enforcing_profile_denies_by_effect_when_syd_is_installed() {
        let Some(syd) = Syd::detect() else {
            println!("skipped: syd is not on PATH");
            return;
        };
        let dir = std::env::temp_dir().join(format!("tsem-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = syd.prove_denial(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(d.denied, "the denied file was read under syd's profile");
        assert!(
            d.allowed,
            "an allowed file was not readable under syd's profile"
        );
    }
}
