//! `prctl-args-v1` end to end: glibc's variadic `prctl` leaves whatever the argument registers
//! held in the arguments an option does not use, and TSEM hashes arg4 and arg5. A program that
//! probes the capability bounding set (as setpriv and nginx do) must hold to a model learned
//! from one run in every later run, under address randomization, with the rule; without it
//! (`--rules none`, plain TSEM) every run deviates. Runs as any user (no privilege needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{compile, events, have, s, scratch, stderr, summary, tsem};

/// First a raw `prctl` with a per-run random value in arg3..arg5, then the libc call
/// `prctl(PR_CAPBSET_READ, CAP_CHOWN)`, whose unused arguments hold whatever the registers kept
/// (the random value, or the return address the `syscall` instruction leaves in rcx).
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <linux/capability.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noinline)) static long fill(unsigned long rnd)
{
	return syscall(SYS_prctl, PR_CAPBSET_READ, (unsigned long)CAP_CHOWN, rnd, rnd, rnd);
}

int main(void)
{
	unsigned long rnd = 0;
	if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return 2;
	long raw = fill(rnd | 1);
	int r = prctl(PR_CAPBSET_READ, CAP_CHOWN);
	printf("%ld %d\n", raw, r);
	return r < 0 ? 1 : 0;
}
"#;

struct Probe {
    dir: PathBuf,
    prog: PathBuf,
}

impl Probe {
    fn new(name: &str) -> Option<Self> {
        if !have("cc") {
            eprintln!("skipped: cc is not installed");
            return None;
        }
        let dir = scratch("prctl", name);
        std::fs::write(dir.join("probe.c"), PROBE).unwrap();
        compile(&dir, "probe.c", "probe", &[]);
        let prog = dir.join("probe");
        Some(Self { dir, prog })
    }

    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// `tsem run ARGS -- probe` with a summary, trajectory and forensics named after `tag`.
    fn run(&self, tag: &str, args: &[&str]) -> (Output, serde_json::Value) {
        let sum = self.p(&format!("{tag}.summary.json"));
        let o = tsem()
            .args(["run", "--no-digest-cache"])
            .args(args)
            .args(["--summary-json", s(&sum)])
            .args(["--trajectory", s(&self.p(&format!("{tag}.trajectory")))])
            .args(["--forensics", s(&self.p(&format!("{tag}.forensics")))])
            .arg("--")
            .arg(&self.prog)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (o, summary(&sum))
    }

    /// The bare run's output: what every faithful supervised run prints too.
    fn bare(&self) -> String {
        let o = std::process::Command::new(&self.prog).output().unwrap();
        assert!(o.status.success(), "bare: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    }
}

/// A JSON number or a decimal string.
fn num(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The (option, arg2, arg4, arg5) of every task_prctl in a trajectory or forensics file.
fn prctls(path: &Path) -> Vec<(u64, u64, u64, u64)> {
    events(path)
        .iter()
        .filter_map(|e| {
            let c = e.get("task_prctl")?;
            Some((
                num(&c["option"]),
                num(&c["arg2"]),
                num(&c["arg4"]),
                num(&c["arg5"]),
            ))
        })
        .collect()
}

/// Learned once with the default rules, then enforced three times: no forensic event, no
/// denial, the program's own output. The learned trajectory shows the probes with their
/// unused arguments zeroed and the capability kept, and `tsem replay` of a run's raw
/// descriptions (made without the rule) against the model applies the model's rules.
#[test]
fn a_capability_probe_with_garbage_arguments_holds_under_the_rule() {
    let Some(w) = Probe::new("rule") else { return };
    let bare = w.bare();
    let model = w.p("model");
    let (o, sum) = w.run("learn", &["-o", s(&model)]);
    assert!(o.status.success(), "learn: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), bare);
    assert_eq!(sum["lost_events"], 0, "{sum}");
    let text = std::fs::read_to_string(&model).unwrap();
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("# tsem-rules:") && l.contains("prctl-args-v1")),
        "{text}"
    );
    let probes = prctls(&w.p("learn.trajectory"));
    // A trajectory holds each point once: the two probes, with their different garbage, are one
    // point, CAP_CHOWN kept and arg4/arg5 zeroed.
    let capbset: Vec<_> = probes.iter().filter(|p| p.0 == 23).collect();
    assert_eq!(capbset, [&(23, 0, 0, 0)], "{probes:?}");
    for i in 0..3 {
        let tag = format!("enforce{i}");
        let (o, sum) = w.run(&tag, &["--model", s(&model), "--enforce"]);
        assert!(o.status.success(), "{tag}: {}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), bare, "{tag}");
        assert_eq!(sum["forensics_events"], 0, "{tag}: {sum}");
        assert_eq!(sum["denied"], 0, "{tag}: {sum}");
        assert_eq!(sum["lost_events"], 0, "{tag}: {sum}");
        assert!(events(&w.p(&format!("{tag}.forensics"))).is_empty());
    }

    // A run described raw (no rules): its probes carry the random value.
    let (o, _) = w.run("raw", &["--rules", "none", "-o", s(&w.p("raw.model"))]);
    assert!(o.status.success(), "raw: {}", stderr(&o));
    let raw = prctls(&w.p("raw.trajectory"));
    let garbage = raw
        .iter()
        .filter(|p| p.0 == 23 && (p.2 != 0 || p.3 != 0))
        .count();
    assert!(garbage >= 1, "the raw probes carry their garbage: {raw:?}");
    // Replayed against the model, the model's rules name it as learned: its state.
    let replay = |m: &Path, traj: &Path| -> serde_json::Value {
        let o = tsem()
            .args(["replay", "--json", "--model", s(m), s(traj)])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "replay: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let r = replay(&model, &w.p("raw.trajectory"));
    assert_eq!(r["forensics_events"], 0, "{r}");
    assert_eq!(r["state"], r["model_state"], "{r}");
    let r = replay(&model, &w.p("learn.trajectory"));
    assert_eq!(r["forensics_events"], 0, "{r}");
    assert_eq!(r["state"], r["model_state"], "{r}");
}

/// The same workload as plain TSEM (`--rules none`): the random unused arguments reach the
/// coefficients, so every enforced run deviates. Shows the test above can fail.
#[test]
fn without_the_rule_every_run_deviates() {
    let Some(w) = Probe::new("none") else { return };
    let model = w.p("model");
    let (o, _) = w.run("learn", &["--rules", "none", "-o", s(&model)]);
    assert!(o.status.success(), "learn: {}", stderr(&o));
    let text = std::fs::read_to_string(&model).unwrap();
    assert!(!text.contains("tsem-rules"), "{text}");
    for i in 0..3 {
        let tag = format!("enforce{i}");
        let (_, sum) = w.run(&tag, &["--model", s(&model), "--enforce"]);
        assert!(
            sum["forensics_events"].as_u64().unwrap() > 0,
            "{tag}: {sum}"
        );
        let f = prctls(&w.p(&format!("{tag}.forensics")));
        assert!(
            f.iter().any(|p| p.0 == 23),
            "{tag}: the probe is the deviation: {f:?}"
        );
    }
}
