//! `tsem run` on a TSEM kernel, against the simulated securityfs (`TSEM_SECURITYFS`) fed the
//! real captures: the workload creates its namespace through `control`, tsem loads test.model,
//! and the simulated kernel models process_1.json when the workload asks (internal TMA), or
//! exports it to tsem, which answers every task as the external modeling agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{process_dir, s, scratch, summary, tsem};
use tsem_core::namespace::{Config, Namespace};
use tsem_kernel::sim::Simulator;

fn model_path() -> PathBuf {
    process_dir().join("test.model")
}

/// What the userspace core says: test.model loaded, sealed, the captures modeled.
fn expected(files: &[&str]) -> Namespace {
    let m = tsem_format::ModelFile::parse_bytes(&std::fs::read(model_path()).unwrap()).unwrap();
    let mut ns = Namespace::new(Config::default()).unwrap();
    m.load_into(&mut ns, None).unwrap();
    ns.seal();
    for f in files {
        for (i, e) in Simulator::events_of(&process_dir().join(f))
            .unwrap()
            .iter()
            .enumerate()
        {
            ns.model(4000 + (i as u64 % 7), e).unwrap();
        }
    }
    ns
}

/// A simulated kernel whose workload's activity is `files`, and the workload asking for it.
fn world(name: &str, files: &[&str]) -> (PathBuf, Simulator, String) {
    let dir = scratch("kernel", name);
    let sim = Simulator::start(&dir.join("securityfs")).unwrap();
    let mut events = Vec::new();
    for f in files {
        events.extend(Simulator::events_of(&process_dir().join(f)).unwrap());
    }
    let go = dir.join("go");
    sim.serve_workload(&go, events).unwrap();
    let script = format!("echo go > {0}; read x < {0}.done", go.display());
    (dir, sim, script)
}

fn run(dir: &Path, sim: &Simulator, args: &[&str], script: &str) -> Output {
    tsem()
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .env("TSEM_SECURITYFS", sim.root())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_kernel_models_the_workload_and_tsem_reads_its_state() {
    let (dir, sim, script) = world("internal", &["process_1.json"]);
    let sum = dir.join("s.json");
    let traj = dir.join("model.out");
    // No --backend: a securityfs is there, so tsem uses the kernel.
    let out = run(
        &dir,
        &sim,
        &[
            "--model",
            s(&model_path()),
            "--summary-json",
            s(&sum),
            "-o",
            s(&traj),
        ],
        &script,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(sim.errors(), Vec::<String>::new());
    let v = summary(&sum);
    assert_eq!(v["backend"], "kernel");
    assert_eq!(v["namespace_id"], 1);
    let want = expected(&["process_1.json"]);
    assert_eq!(v["state"], want.state().to_hex());
    assert_eq!(v["measurement"], want.measurement().to_hex());
    assert_eq!(v["forensics_events"], 0);
    assert!(v.get("events").is_none(), "the kernel gives no event count");
    assert_eq!(v["mode"], "sealed");
    // The commands as the kernel got them: the workload's creation, the model, the seal.
    let cmds = sim.commands();
    assert_eq!(cmds[0], "internal digest=sha256");
    assert!(cmds.iter().any(|c| c.starts_with("state value=")));
    assert_eq!(cmds.last().map(String::as_str), Some("seal"));
    // The model read back from the kernel has test.model's points.
    let back = std::fs::read_to_string(&traj).unwrap();
    assert_eq!(
        back.lines().filter(|l| l.starts_with("state ")).count(),
        want.points().len()
    );
}

#[test]
fn tsem_answers_the_kernel_s_exports_as_the_external_modeling_agent() {
    let (dir, sim, script) = world("external", &["process_1.json", "process_2.json"]);
    let sum = dir.join("s.json");
    let forensics = dir.join("forensics.txt");
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel-external",
            "--model",
            s(&model_path()),
            "--summary-json",
            s(&sum),
            "--forensics",
            s(&forensics),
        ],
        &script,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(sim.errors(), Vec::<String>::new());
    let v = summary(&sum);
    assert_eq!(v["backend"], "kernel-external");
    let want = expected(&["process_1.json", "process_2.json"]);
    assert_eq!(v["state"], want.state().to_hex());
    assert_eq!(v["forensics_events"], want.forensics_events());
    let answers = sim.answers();
    let n = answers.len() as u64;
    assert_eq!(n, want.events());
    let untrusted = answers.iter().filter(|a| !a.trusted).count() as u64;
    assert_eq!(v["tma"]["untrusted"], untrusted);
    assert_eq!(v["tma"]["trusted"], n - untrusted);
    // process_1 is in the model: its tasks were all released.
    assert!(answers[..155].iter().all(|a| a.trusted));
    assert!(untrusted >= want.forensics_events() && untrusted > 0);
    assert_eq!(
        common::events(&forensics).len(),
        want.forensics().len(),
        "the forensics file holds the out-of-model descriptions"
    );
}

#[test]
fn the_kernel_backend_refuses_what_only_the_sensor_does_and_needs_a_securityfs() {
    let (dir, sim, script) = world("refused", &[]);
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel",
            "--model",
            s(&model_path()),
            "--on-forensic",
            "deny",
        ],
        &script,
    );
    common::fails_with(
        &out,
        "--on-forensic deny (a TSEM kernel refuses an event only",
    );
    // kill and restart need tsem to answer the events: only as the external agent.
    for (backend, policy, why) in [
        ("kernel", "kill", "--backend kernel-external can"),
        ("kernel", "restart", "--backend kernel-external can"),
        ("kernel-external", "deny", "--on-forensic deny"),
    ] {
        let out = run(
            &dir,
            &sim,
            &[
                "--backend",
                backend,
                "--model",
                s(&model_path()),
                "--on-forensic",
                policy,
            ],
            &script,
        );
        common::fails_with(&out, why);
    }
    // A model made under naming rules: the kernel hashes raw descriptions, so its points would
    // not be the model's (a learned model with prctl-args-v1 deviates at every prctl probe).
    let ruled = dir.join("ruled.model");
    let mut text = b"# tsem-rules: prctl-args-v1\n".to_vec();
    text.extend(std::fs::read(model_path()).unwrap());
    std::fs::write(&ruled, text).unwrap();
    for backend in ["kernel", "kernel-external"] {
        let out = run(
            &dir,
            &sim,
            &["--backend", backend, "--model", s(&ruled), "--enforce"],
            &script,
        );
        common::fails_with(&out, "a --model with naming rules");
    }
    let out = tsem()
        .args(["run", "--backend", "kernel", "--", "true"])
        .env("TSEM_SECURITYFS", dir.join("nothing-here"))
        .output()
        .unwrap();
    common::fails_with(&out, "no TSEM securityfs");
    assert!(sim.commands().is_empty(), "nothing reached the kernel");
}

/// Where the first out-of-model event of `files` falls under test.model (sealed).
fn first_forensic(files: &[&str]) -> usize {
    let m = tsem_format::ModelFile::parse_bytes(&std::fs::read(model_path()).unwrap()).unwrap();
    let mut ns = Namespace::new(Config::default()).unwrap();
    m.load_into(&mut ns, None).unwrap();
    ns.seal();
    let mut i = 0;
    for f in files {
        for e in Simulator::events_of(&process_dir().join(f)).unwrap() {
            if ns.model(4000 + (i as u64 % 7), &e).unwrap().forensic {
                return i;
            }
            i += 1;
        }
    }
    panic!("{files:?} has no out-of-model event");
}

#[test]
fn as_the_external_agent_tsem_kills_the_workload_at_its_first_deviation() {
    let files = ["process_1.json", "process_2.json"];
    let (dir, sim, script) = world("kill", &files);
    let sum = dir.join("s.json");
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel-external",
            "--model",
            s(&model_path()),
            "--enforce",
            "--on-forensic",
            "kill",
            "--summary-json",
            s(&sum),
        ],
        &format!("{script}; echo after > after"),
    );
    // Killed by the policy (SIGKILL), as the sensor's `kill` ends a run.
    assert_eq!(out.status.code(), Some(137), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("--on-forensic kill: an out-of-model event"),
        "{}",
        common::stderr(&out)
    );
    // The effect: the workload's next command never ran.
    assert!(!dir.join("after").exists(), "the workload ran on");
    let v = summary(&sum);
    assert_eq!(v["on_forensic"], "kill");
    assert_eq!(v["policy_kills"], 1);
    assert_eq!(v["restarts"], 0);
    // Every task before the deviation was released; the deviating one and every later one of
    // the dying workload were refused (`untrusted`, enforced).
    let first = first_forensic(&files);
    let answers = sim.answers();
    assert!(answers.len() > first, "{} answers", answers.len());
    assert!(answers[..first].iter().all(|a| a.trusted));
    assert!(answers[first..].iter().all(|a| !a.trusted));
}

#[test]
fn as_the_external_agent_tsem_restarts_the_workload_in_a_new_namespace() {
    let (dir, sim, script) = world("restart", &["process_1.json", "process_2.json"]);
    let sum = dir.join("s.json");
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel-external",
            "--model",
            s(&model_path()),
            "--enforce",
            "--on-forensic",
            "restart",
            "--max-restarts",
            "1",
            "--summary-json",
            s(&sum),
        ],
        &format!("echo started >> started; {script}; echo after > after"),
    );
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(
        err.contains("starting it again in a new kernel namespace (1 of at most 1)"),
        "{err}"
    );
    assert!(err.contains("stays killed"), "{err}");
    // It came back once (a second incarnation started), and neither ran past its deviation.
    assert_eq!(
        std::fs::read_to_string(dir.join("started")).unwrap(),
        "started\nstarted\n"
    );
    assert!(!dir.join("after").exists());
    let v = summary(&sum);
    assert_eq!(v["restarts"], 1);
    assert_eq!(v["policy_kills"], 2);
    assert_eq!(v["namespace_id"], 2, "the second incarnation's namespace");
    let cmds = sim.commands();
    let n = |c: &str| cmds.iter().filter(|x| x.as_str() == c).count();
    assert_eq!(n("external digest=sha256"), 2, "{cmds:?}");
    assert_eq!(n("enforce"), 2, "{cmds:?}");
}
