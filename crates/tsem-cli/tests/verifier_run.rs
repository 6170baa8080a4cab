//! `tsem run --verifier --every`: attestations while the workload runs, as separate processes
//! (a `tsem verifier serve` on SQLite and the `tsem run` under test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tsem-verifier/tests/common/mod.rs"]
mod common;
mod verifier_process;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use tsem_verifier::Client;
use verifier_process::text;

fn tsem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tsem"))
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// `tsem run MODE --model MODEL` of `sh job.sh`, attesting as workload `job` to the verifier
/// at `url` every second with `key`.
fn attesting_run<'a>(mode: &'a str, model: &'a Path, url: &'a str, key: &'a Path) -> Vec<&'a str> {
    let mut a = vec!["run", mode, "--model", p(model), "--verifier", url];
    a.extend([
        "--workload",
        "job",
        "--key",
        p(key),
        "--every",
        "1",
        "--",
        "sh",
        "job.sh",
    ]);
    a
}

/// The verdicts in a workload's history, oldest first (enrolment notes and `stale` entries
/// included).
fn verdicts(c: &Client, workload: &str) -> Vec<(String, String)> {
    let h = c.history(workload).unwrap();
    h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["verdict"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Poll (every 100 ms, for at most 120 s) until `done` says yes; the run under test must still be
/// going on at each look unless `running` is `None`.
fn until(mut running: Option<&mut std::process::Child>, mut done: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if done() {
            return;
        }
        if let Some(c) = running.as_deref_mut() {
            assert!(c.try_wait().unwrap().is_none(), "the run ended too early");
        }
        assert!(std::time::Instant::now() < end, "gave up waiting");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A workload: `job.sh` (`script`) in `work/` beside the `words.txt` it sorts, run by `tsem` with
/// `HOME` and `STOP` (a file whose presence ends the script) set, plus `env`.
struct Job {
    dir: TempDir,
    work: std::path::PathBuf,
    stop: std::path::PathBuf,
    env: Vec<(&'static str, std::path::PathBuf)>,
}

impl Job {
    fn new(name: &str, script: &str) -> Job {
        let dir = TempDir::new(name);
        let work = dir.0.join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("words.txt"), "b\na\n").unwrap();
        std::fs::write(work.join("job.sh"), script).unwrap();
        let stop = dir.0.join("stop");
        Job {
            dir,
            work,
            stop,
            env: Vec::new(),
        }
    }

    /// `tsem ARGS` in the workload's directory, with its environment.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = tsem();
        c.args(args)
            .current_dir(&self.work)
            .env("HOME", &self.dir.0)
            .env("STOP", &self.stop)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Learn `job.sh`'s model (with `STOP` made, so the script ends) into `job.model`.
    fn learn(&self) -> std::path::PathBuf {
        let model = self.dir.0.join("job.model");
        std::fs::write(&self.stop, "").unwrap();
        let o = self
            .cmd(&["learn", "-o", p(&model), "--", "sh", "job.sh"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        std::fs::remove_file(&self.stop).unwrap();
        model
    }
}

/// `tsem run --verifier --every 1`: attestations while the workload runs keep the verdict fresh;
/// an out-of-model event mid-run makes the next periodic verdict contraindicated; a run that
/// stopped reporting turns stale. The workload runs until the test says stop, so "while it
/// runs" is checked by the test, not by a clock.
#[test]
fn run_attests_while_it_runs() {
    // `[ -e ]` is the shell's own stat: not a modeled event, so waiting adds no points.
    let script = "sort words.txt > sorted.txt\n\
                  sleep 0.1\n\
                  while [ ! -e \"$STOP\" ]; do\n\
                  if [ -e \"$BAD\" ]; then read -r l < \"$EXTRA_READ\" || true; fi\n\
                  sleep 0.1\n\
                  done\n";
    let mut j = Job::new("run-every", script);
    let other = j.dir.0.join("other.txt");
    std::fs::write(&other, "not for this workload\n").unwrap();
    let bad = j.dir.0.join("bad");
    j.env.push(("BAD", bad.clone()));
    j.env.push(("EXTRA_READ", other));
    let (dir, stop) = (&j.dir, &j.stop);
    let sh = |args: &[&str]| j.cmd(args);
    let model = j.learn();
    let (v, key) = verifier_process::with_job_enrolled(
        &dir.0,
        &model,
        &["--every", "2", "--max-forensics", "0"],
    );
    let c = Client::new(&v.url, None).unwrap();
    let status = || c.status().unwrap()[0].verdict.clone();
    let count = |verdict: &str| {
        verdicts(&c, "job")
            .iter()
            .filter(|(v, _)| v == verdict)
            .count()
    };
    let start = |mode: &str, log: &str| {
        let log = std::fs::File::create(dir.0.join(log)).unwrap();
        sh(&attesting_run(mode, &model, &v.url, &key))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let log = |name: &str| std::fs::read_to_string(dir.0.join(name)).unwrap();

    // A run in its model: two accepted attestations and `affirming` while it runs.
    let mut job = start("--enforce", "a.log");
    until(Some(&mut job), || count("affirming") >= 2);
    assert_eq!(status(), "affirming");
    assert!(job.try_wait().unwrap().is_none(), "the run ended too early");
    std::fs::write(stop, "").unwrap();
    assert!(job.wait().unwrap().success(), "{}", log("a.log"));
    let a = log("a.log");
    assert!(a.contains("attestation 2 (running): affirming"), "{a}");
    assert!(
        a.contains("affirming: verified"),
        "the final attestation: {a}"
    );
    assert!(
        count("affirming") >= 3,
        "the final attestation was not recorded"
    );
    // It stopped reporting: stale after 1.5 x 2 s (status reads the clock).
    until(None, || status() == "stale");

    // A sealed run that makes one out-of-model read once told to: affirming before it, the next
    // periodic verdict contraindicated, while the run goes on.
    std::fs::remove_file(stop).unwrap();
    let before = count("affirming");
    let mut job = start("--seal", "b.log");
    until(Some(&mut job), || count("affirming") > before);
    assert_eq!(count("contraindicated"), 0);
    std::fs::write(&bad, "").unwrap();
    until(Some(&mut job), || count("contraindicated") >= 1);
    assert_eq!(status(), "contraindicated");
    let (_, reason) = verdicts(&c, "job")
        .into_iter()
        .find(|(v, _)| v == "contraindicated")
        .unwrap();
    assert!(reason.contains("forensic"), "{reason}");
    let h = c.history("job").unwrap().to_string();
    assert!(h.contains("other.txt"), "forensics so far not posted: {h}");
    std::fs::write(stop, "").unwrap();
    let exit = job.wait().unwrap();
    assert!(!exit.success(), "{}", log("b.log"));
    assert!(
        log("b.log").contains("(running): contraindicated"),
        "{}",
        log("b.log")
    );
}

/// The requests a verifier has served: `(all, nonce, attestations)` from `GET /v1/health`.
fn served(c: &Client) -> (u64, u64, u64) {
    let h: serde_json::Value = c.call::<(), _>("GET", "/v1/health", None).unwrap();
    let n = |k: &str| h["requests"][k].as_u64().unwrap();
    (n("all"), n("nonce"), n("attestations"))
}

/// `tsem run --verifier --every 1` makes one request per attestation after the first: the
/// verifier's own counters over the whole run show one check that the workload is enrolled,
/// one nonce request, and one post per attestation (each answer carries the next nonce), every
/// post recorded. The test watches the run's log, not the verifier, so that it adds no request.
#[test]
fn run_every_makes_one_request_per_attestation() {
    // The `sleep` before the loop puts sleep's exec in the model (learning runs with STOP made).
    let script = "sort words.txt > sorted.txt\n\
                  sleep 0.1\n\
                  while [ ! -e \"$STOP\" ]; do sleep 0.1; done\n";
    let j = Job::new("run-every-requests", script);
    let (dir, stop) = (&j.dir, &j.stop);
    let sh = |args: &[&str]| j.cmd(args);
    let model = j.learn();
    let (v, key) = verifier_process::with_job_enrolled(&dir.0, &model, &["--every", "2"]);
    let c = Client::new(&v.url, None).unwrap();
    let before = served(&c);
    let log_path = dir.0.join("run.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut job = sh(&attesting_run("--enforce", &model, &v.url, &key))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap();
    until(Some(&mut job), || log().contains("attestation 3 (running)"));
    std::fs::write(stop, "").unwrap();
    assert!(job.wait().unwrap().success(), "{}", log());
    let after = served(&c);
    let log = log();
    assert!(!log.contains("failed"), "{log}");
    // Every periodic attestation, and the final one.
    let made = log.matches("(running): affirming").count() as u64 + 1;
    assert!(made >= 4, "{log}");
    assert!(
        log.contains("affirming: verified"),
        "the final attestation: {log}"
    );
    let accepted = verdicts(&c, "job")
        .iter()
        .filter(|(v, _)| v == "affirming")
        .count() as u64;
    assert_eq!(accepted, made, "{log}");
    assert_eq!(after.1 - before.1, 1, "nonce requests");
    assert_eq!(after.2 - before.2, made, "attestation posts");
    // The enrolment check before the workload starts, the first nonce, the posts; and the
    // health request that read these counters.
    assert_eq!(after.0 - before.0, 1 + 1 + made + 1, "requests in all");
}
