//! The harness of the learning tests (`learning.rs`, `learning_workloads.rs`): a workload in a
//! scratch directory, learned by `tsem learn` with default options, then enforced.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::common::{self, events, pathname_of, stderr};

/// Enforced runs after learning, per workload.
pub const ENFORCED_RUNS: usize = 10;

/// A workload: a directory with `run.sh` (the CI step) and whatever it works on.
pub struct Workload {
    pub root: PathBuf,
    pub dir: PathBuf,
    pub model: PathBuf,
    /// Where `root` is bind-mounted for every command, in a mount namespace of its own.
    pub view: Option<PathBuf>,
}

/// The last lines of every `run.sh`: an optional read of one more file, to show a deviation.
const EXTRA: &str = "\nif [ -n \"${EXTRA_READ:-}\" ]; then read -r line < \"$EXTRA_READ\"; fi\n";

impl Workload {
    pub fn new(name: &str, script: &str) -> Self {
        let root = common::scratch("learn", name);
        let dir = root.join("work");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.sh"), format!("set -e\n{script}{EXTRA}")).unwrap();
        std::fs::write(root.join("never-read.txt"), "not for this workload\n").unwrap();
        Workload {
            model: root.join("learned.model"),
            root,
            dir,
            view: None,
        }
    }

    /// Every command runs in a user and mount namespace of its own where the workload's
    /// directory is reached through a bind mount (as under a chroot or a container whose root is
    /// a bind mount of a host directory). `None` where user namespaces are not available.
    pub fn bind_mounted(mut self) -> Option<Self> {
        let view = self.root.with_extension("view");
        std::fs::create_dir_all(&view).unwrap();
        let probe = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "true"])
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        self.view = Some(view);
        Some(self)
    }

    pub fn tsem(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut c = match &self.view {
            None => common::tsem(),
            Some(view) => {
                let mut c = std::process::Command::new("unshare");
                c.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
                    .arg(r#"mount --bind "$1" "$2" && cd "$2/work" && shift 2 && exec "$@""#)
                    .arg("sh")
                    .arg(&self.root)
                    .arg(view)
                    .arg(env!("CARGO_BIN_EXE_tsem"));
                c
            }
        };
        c.args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.root)
            .env_remove("EXTRA_READ")
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// `tsem learn` with default options; the learning curve.
    pub fn learn(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["learn", "--json", "-o", self.model.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "run.sh"]);
        let o = self.tsem(&args, &[]);
        assert!(o.status.success(), "learning failed: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `tsem learn` of three runs without the naming rules, into `plain.model`.
    pub fn learn_without_rules(&self) -> Output {
        let plain = self.root.join("plain.model");
        self.tsem(
            &[
                "learn",
                "--rules",
                "none",
                "--runs",
                "3",
                "-o",
                plain.to_str().unwrap(),
                "--",
                "sh",
                "run.sh",
            ],
            &[],
        )
    }

    /// One enforced run: its output, summary and forensics.
    pub fn enforce(
        &self,
        tag: &str,
        mode: &str,
        env: &[(&str, &Path)],
    ) -> (Output, serde_json::Value, Vec<serde_json::Value>) {
        self.enforce_with(&self.model, tag, mode, env)
    }

    pub fn enforce_with(
        &self,
        model: &Path,
        tag: &str,
        mode: &str,
        env: &[(&str, &Path)],
    ) -> (Output, serde_json::Value, Vec<serde_json::Value>) {
        let s = self.root.join(format!("{tag}.summary.json"));
        let f = self.root.join(format!("{tag}.forensics.json"));
        let t = self.root.join(format!("{tag}.trajectory.json"));
        let o = self.tsem(
            &[
                "run",
                mode,
                "--model",
                model.to_str().unwrap(),
                "--summary-json",
                s.to_str().unwrap(),
                "--forensics",
                f.to_str().unwrap(),
                "--trajectory",
                t.to_str().unwrap(),
                "--",
                "sh",
                "run.sh",
            ],
            env,
        );
        (o, common::summary(&s), events(&f))
    }

    /// Learned in at most three runs; then enforced runs with no forensics, no denial and no
    /// lost event; then the same plus one read of a file it never read is denied and named.
    pub fn learns_and_holds(&self) {
        self.learns_and_holds_for(ENFORCED_RUNS);
    }

    /// [`Self::learns_and_holds`] with `runs` enforced runs (a long suite).
    pub fn learns_and_holds_for(&self, runs: usize) {
        let curve = self.learn(&[]);
        assert_eq!(curve["converged"], true, "{curve}");
        assert!(curve["runs"].as_u64().unwrap() <= 3, "{curve}");
        for i in 0..runs {
            let (o, s, f) = self.enforce(&format!("enforce{i}"), "--enforce", &[]);
            assert!(o.status.success(), "run {i}: {} {f:?}", stderr(&o));
            assert_eq!(s["forensics_events"], 0, "run {i}: {f:?}");
            assert_eq!(s["denied"], 0, "run {i}: {s}");
            assert_eq!(s["lost_events"], 0, "run {i}");
        }
        self.backstop_alone_refuses_nothing();
        let secret = self.root.join("never-read.txt");
        let (o, s, f) = self.enforce("extra", "--enforce", &[("EXTRA_READ", &secret)]);
        assert!(!o.status.success(), "the extra read was not denied");
        assert!(s["denied"].as_u64().unwrap() >= 1);
        let named = secret.to_str().unwrap();
        assert!(
            f.iter()
                .any(|e| e["event"]["type"] == "file_open" && pathname_of(e) == named),
            "{f:?}"
        );
        let err = stderr(&o);
        assert!(
            err.contains("1 out-of-model event: ") && err.contains(&format!("opened {named}")),
            "{err}"
        );
    }
}

impl Workload {
    /// The learned model carries the kernel backstop, and the backstop alone (the sensor lets
    /// every call through to the kernel, test switch) refuses nothing of the workload: the access
    /// set learned from one run's raw paths covers the next run's new temporary names.
    pub fn backstop_alone_refuses_nothing(&self) {
        let text = std::fs::read(&self.model).unwrap();
        assert!(
            text.split(|b| *b == b'\n')
                .any(|l| l.starts_with(b"landlock ")),
            "the learned model has no backstop"
        );
        if tsem_sensor::backstop::kernel_abi() < 1 {
            eprintln!("backstop run skipped: the kernel has no Landlock");
            return;
        }
        let o = self.tsem(
            &[
                "run",
                "--backstop-only",
                "--model",
                self.model.to_str().unwrap(),
                "--",
                "sh",
                "run.sh",
            ],
            &[(
                "TSEM_TEST_BACKSTOP_ONLY",
                Path::new("sensor-decides-nothing"),
            )],
        );
        assert!(o.status.success(), "the backstop refused: {}", stderr(&o));
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
            if let Some(v) = &self.view {
                let _ = std::fs::remove_dir(v);
            }
        }
    }
}
