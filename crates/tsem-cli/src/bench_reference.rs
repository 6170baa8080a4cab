//! The reference supervisor (`samples/refsup/refsup.c`): the smallest seccomp user-notification
//! supervisor that does what tsem's sensor must do at the least, compiled at bench time with the
//! C compiler the sample build needs anyway, so that `tsem bench run` measures the mechanism's
//! own floors independently of tsem's code.
//!
//! `refsup continue` answers every notification of the calls it notifies (open, openat, creat,
//! execve, an mmap of a descriptor: the sample build's notifications) with CONTINUE: the floor
//! of interception. `refsup emulate` also performs every open and hands the file back with
//! `ADDFD|SEND`, as an enforcing sensor must: the floor of emulation. Neither traces, describes
//! or decides anything.
//!
//! # Warning
//! The reference notifies fewer calls than tsem (the sample build makes ~750 of its kind against
//! tsem's ~765), starts no tracer, and performs opens with its own credentials: it is a
//! measuring instrument for workloads run as its own user, never a sandbox.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

const SOURCE: &str = include_str!("../../../samples/refsup/refsup.c");

/// The compiled reference and what one emulating run of the workload counted.
pub struct Reference {
    bin: PathBuf,
    /// Notifications and emulated opens of the check run (its stderr's last line), if one ran.
    counts: Option<(u64, u64)>,
}

impl Reference {
    /// Compile the reference into `dir` and run `cmd` under `refsup emulate` once, from `dir`,
    /// after `reset` (which puts the workload's directory back as a timed run finds it): an
    /// error says why its columns are empty (no compiler, the workload failed under it).
    pub fn prepare(dir: &Path, cmd: &[String], reset: &dyn Fn()) -> Result<Self, String> {
        let r = Self::compile(dir)?;
        let (argv0, rest) = r.argv("emulate", cmd);
        reset();
        let out = Command::new(argv0)
            .args(rest)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run it: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("the workload failed under it ({})", out.status));
        }
        let counts = err
            .lines()
            .rev()
            .find_map(parse_counts)
            .ok_or_else(|| format!("it printed no counts: {}", err.trim()))?;
        Ok(Reference {
            counts: Some(counts),
            ..r
        })
    }

    /// Compile the reference into `dir`, without a check run (for a server, whose every
    /// response the benchmark's client checks instead).
    pub fn compile(dir: &Path) -> Result<Self, String> {
        let src = dir.join("refsup.c");
        let bin = dir.join("refsup");
        std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
        let cc = Command::new("cc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&bin)
            .arg(&src)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cc: {e}"))?;
        if !cc.status.success() {
            return Err(format!(
                "cc could not compile it: {}",
                String::from_utf8_lossy(&cc.stderr).trim()
            ));
        }
        Ok(Reference { bin, counts: None })
    }

    /// The command line of `cmd` under the reference in `mode` (`continue` or `emulate`).
    fn argv(&self, mode: &str, cmd: &[String]) -> (String, Vec<String>) {
        let mut rest = vec![mode.to_string(), "--".to_string()];
        rest.extend(cmd.iter().cloned());
        (self.bin.to_string_lossy().into_owned(), rest)
    }

    /// The two variants, `reference-continue` and `reference-emulate`.
    pub fn variants(&self, cmd: &[String]) -> [Vec<String>; 2] {
        ["continue", "emulate"].map(|m| {
            let (a, mut rest) = self.argv(m, cmd);
            rest.insert(0, a);
            rest
        })
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "source": "samples/refsup/refsup.c",
            "notifications": self.counts.map(|c| c.0),
            "opens_emulated": self.counts.map(|c| c.1),
        })
    }

    /// One line for the text report.
    pub fn line(&self) -> String {
        match self.counts {
            Some((n, e)) => format!(
                "reference supervisor (samples/refsup/refsup.c): {n} notifications, {e} opens \
                 emulated in its check run"
            ),
            None => "reference supervisor: samples/refsup/refsup.c".to_string(),
        }
    }
}

/// "refsup: N notifications, E opens emulated".
fn parse_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("refsup: ")?;
    let (n, rest) = rest.split_once(" notifications, ")?;
    let e = rest.strip_suffix(" opens emulated")?;
    Some((n.parse().ok()?, e.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_the_reference_s_last_line_only_when_whole() {
        assert_eq!(
            parse_counts("refsup: 750 notifications, 258 opens emulated"),
            Some((750, 258))
        );
        assert_eq!(parse_counts("refsup: 750 notifications"), None);
        assert_eq!(
            parse_counts("refsup: x notifications, 1 opens emulated"),
            None
        );
        assert_eq!(parse_counts("make: *** error"), None);
    }

    /// The reference really performs the opens it reports: a file is read through it, the
    /// emulated opens are counted, and a file it cannot open is refused as the kernel would.
    #[test]
    fn the_reference_emulates_opens_and_the_workload_reads_through_them() {
        if Command::new("cc").arg("--version").output().is_err() {
            eprintln!("skipped: no C compiler");
            return;
        }
        let dir = std::env::temp_dir().join(format!("tsem-refsup-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.txt"), "through the reference\n").unwrap();
        let cmd: Vec<String> = ["sh", "-c", "cat data.txt && ! cat missing.txt 2>/dev/null"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = Reference::prepare(&dir, &cmd, &|| ()).unwrap();
        // sh's and cat's libraries, data.txt; missing.txt is answered ENOENT, not emulated.
        let (notified, emulated) = r.counts.unwrap();
        assert!(emulated >= 3, "{:?}", r.counts);
        assert!(notified > emulated, "{:?}", r.counts);
        let [_, emulate] = r.variants(&cmd);
        let out = Command::new(&emulate[0])
            .args(&emulate[1..])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "through the reference\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
