//! `tsem run` on a TSEM kernel, against the simulated securityfs (`TSEM_SECURITYFS`) fed the
//! real captures: the workload creates its namespace through `control`, tsem loads test.model,
//! and the simulated kernel models process_1.json when the workload asks (internal TMA), or
//! exports it to tsem, which answers every task as the external modeling agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{process_dir, s, scratch, summary, tsem};
use tsem_core::event::Event;
use tsem_core::namespace::{Config, Namespace};
use tsem_kernel::sim::Simulator;
use tsem_testdata::raw_kernel::{file_open_line, python_coefficient};

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
    let mut events = Vec::new();
    for f in files {
        events.extend(Simulator::events_of(&process_dir().join(f)).unwrap());
    }
    world_of(scratch("kernel", name), events)
}

/// A simulated kernel in `dir` whose workload's activity is `events`.
fn world_of(dir: PathBuf, events: Vec<Event>) -> (PathBuf, Simulator, String) {
    let sim = Simulator::start(&dir.join("securityfs")).unwrap();
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
fn the_kernel_enforces_and_tsem_reports_its_forensics_as_the_core_s_replay_does() {
    let files = ["process_1.json", "process_2.json"];
    let (dir, sim, script) = world("internal-enforce", &files);
    let (sum, traj, foren) = (dir.join("s.json"), dir.join("T"), dir.join("F"));
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel",
            "--model",
            s(&model_path()),
            "--enforce",
            "--kernel-nsref",
            "current",
            "--kernel-cache",
            "64",
            "--summary-json",
            s(&sum),
            "--trajectory",
            s(&traj),
            "--forensics",
            s(&foren),
        ],
        &script,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(sim.errors(), Vec::<String>::new());
    // Created with the options asked, loaded, sealed, then enforced.
    let cmds = sim.commands();
    let create = "internal nsref=current digest=sha256 cache=64";
    assert_eq!(cmds[0], create, "{cmds:?}");
    let at = |c: &str| cmds.iter().position(|x| x == c);
    assert!(
        at("seal") < at("enforce") && at("enforce").is_some(),
        "{cmds:?}"
    );
    let v = summary(&sum);
    assert_eq!(v["create_command"], create);
    assert_eq!(v["mode"], "enforcing");
    // What tsem's own replay says of the same events under test.model.
    let model = model_path();
    let mut args = vec!["replay", "--json", "--model", s(&model)];
    let paths: Vec<PathBuf> = files.iter().map(|f| process_dir().join(f)).collect();
    args.extend(paths.iter().map(|p| s(p)));
    let replay = common::json(&common::run(&args));
    assert!(replay["forensics_events"].as_u64().unwrap() > 0, "{replay}");
    for k in [
        "state",
        "measurement",
        "forensics_events",
        "forensics_points",
    ] {
        assert_eq!(v[k], replay[k], "{k}");
    }
    // The forensics file holds exactly the forensic points: one description each, and with
    // test.model they give the replay's state (the state covers every point).
    assert_eq!(
        common::events(&foren).len() as u64,
        replay["forensics_points"].as_u64().unwrap()
    );
    let back = common::json(&common::run(&[
        "replay",
        "--json",
        "--model",
        s(&model_path()),
        s(&foren),
    ]));
    assert_eq!(back["state"], replay["state"]);
    assert_eq!(back["forensics_points"], replay["forensics_points"]);
    // Every valid point was loaded, so the kernel's trajectory (points first seen after the
    // load) is empty, and so is what tsem wrote of it.
    let ktraj = std::fs::read(sim.root().join("internal_tma/model0/trajectory")).unwrap();
    assert!(ktraj.is_empty());
    assert_eq!(std::fs::read(&traj).unwrap(), ktraj);
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
            "--kernel-nsref",
            "initial",
            "--kernel-cache",
            "256",
        ],
        &script,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(sim.errors(), Vec::<String>::new());
    let create = "external nsref=initial digest=sha256 cache=256";
    assert_eq!(sim.commands()[0], create);
    let v = summary(&sum);
    assert_eq!(v["backend"], "kernel-external");
    assert_eq!(v["create_command"], create);
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
    // The kernel namespace's options are never dropped for the sensor: not with --backend
    // sensor (a usage error), not under auto without a kernel, nor with a sensor-only option.
    let out = run(
        &dir,
        &sim,
        &["--backend", "sensor", "--kernel-cache", "8"],
        &script,
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    common::fails_with(
        &out,
        "--kernel-cache is an option of the kernel namespace: not with --backend sensor",
    );
    let out = tsem()
        .args(["run", "--kernel-nsref", "current", "--", "true"])
        .env("TSEM_SECURITYFS", dir.join("nothing-here"))
        .output()
        .unwrap();
    common::fails_with(&out, "--kernel-nsref: no TSEM securityfs");
    let out = run(
        &dir,
        &sim,
        &["--kernel-nsref", "current", "--keep-fd", "3"],
        &script,
    );
    common::fails_with(&out, "--keep-fd is not available with the kernel backend");
    let out = run(&dir, &sim, &["--kernel-cache", "0"], &script);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
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

/// The `state` lines of the model `tsem model build` learns from `events_file`.
fn built_states(dir: &Path, events_file: &Path) -> Vec<String> {
    let m = dir.join(format!(
        "{}.model",
        events_file.file_name().unwrap().to_string_lossy()
    ));
    let out = common::run(&["model", "build", "-o", s(&m), s(events_file)]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("state ").map(String::from))
        .collect()
}

/// The pathnames of [`raw_world`]'s two opens, as a kernel prints them (`%s`): a raw tab and
/// an 0xff byte; an anonymous file's garbage name with an escape sequence.
const RAW_PATHS: [&[u8]; 2] = [b"/tmp/a\tb\xff", b"/memfd:\x8f\xff\x1b[31m (deleted)"];

/// A simulated kernel whose workload opens [`RAW_PATHS`].
fn raw_world(name: &str) -> (PathBuf, Simulator, String) {
    let dir = scratch("kernel", name);
    let capture = dir.join("raw.json");
    let lines = [
        file_open_line(b"a\tb\xff", RAW_PATHS[0]),
        file_open_line(b"cat", RAW_PATHS[1]),
    ];
    std::fs::write(&capture, lines.join(&b'\n')).unwrap();
    let events = Simulator::events_of(&capture).unwrap();
    assert_eq!(events.len(), 2);
    world_of(dir, events)
}

#[test]
fn the_kernel_s_files_are_read_as_bytes_whatever_its_pathnames_hold() {
    let Some(first) = python_coefficient("file_open", RAW_PATHS[0]) else {
        return;
    };
    let second = python_coefficient("file_open", RAW_PATHS[1]).unwrap();
    let not_utf8 = |b: &[u8]| std::str::from_utf8(b).is_err();

    // Learning: the kernel's trajectory holds both opens' raw bytes; tsem reads it and writes
    // it back byte for byte (the kernel's form: such lines cannot be strict JSON).
    let (dir, sim, script) = raw_world("raw-learn");
    let (traj, learned) = (dir.join("T"), dir.join("M"));
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel",
            "--trajectory",
            s(&traj),
            "-o",
            s(&learned),
        ],
        &script,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(sim.errors(), Vec::<String>::new());
    let ktraj = std::fs::read(sim.root().join("internal_tma/model0/trajectory")).unwrap();
    assert!(not_utf8(&ktraj) && ktraj.contains(&b'\t') && ktraj.contains(&0x1b));
    assert_eq!(std::fs::read(&traj).unwrap(), ktraj);
    // Replayed, the written trajectory gives the coefficients of the raw bytes, which are also
    // the points the kernel reported.
    let want = vec![first.clone(), second.clone()];
    assert_eq!(built_states(&dir, &traj), want);
    let states: Vec<String> = std::fs::read_to_string(&learned)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("state ").map(String::from))
        .collect();
    assert_eq!(states, want);

    // Sealed with a model of the first open only: the second is the kernel's forensics.
    let (dir, sim, script) = raw_world("raw-sealed");
    let model = dir.join("M");
    std::fs::write(
        &model,
        format!("aggregate {}\nstate {first}\nseal\nend\n", "0".repeat(64)),
    )
    .unwrap();
    let (sum, foren) = (dir.join("s.json"), dir.join("F"));
    let out = run(
        &dir,
        &sim,
        &[
            "--backend",
            "kernel",
            "--model",
            s(&model),
            "--summary-json",
            s(&sum),
            "--forensics",
            s(&foren),
        ],
        &script,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(sim.errors(), Vec::<String>::new());
    assert_eq!(summary(&sum)["forensics_events"], 1);
    let kforen = std::fs::read(sim.root().join("internal_tma/model0/forensics")).unwrap();
    assert!(not_utf8(&kforen) && kforen.contains(&0x1b));
    assert_eq!(std::fs::read(&foren).unwrap(), kforen);
    assert_eq!(built_states(&dir, &foren), vec![second]);
}

#[test]
fn a_command_that_cannot_be_run_in_a_kernel_namespace_exits_as_in_the_shell() {
    let (dir, sim, _) = world("exec", &[]);
    for (backend, cmd, code, msg) in [
        (
            "kernel",
            "tsem-no-such-command-xyz",
            127,
            "tsem: command not found: tsem-no-such-command-xyz",
        ),
        (
            "kernel-external",
            "/nonexistent/cmd",
            127,
            "tsem: cannot execute /nonexistent/cmd: No such file or directory (os error 2)",
        ),
    ] {
        let out = tsem()
            .args(["run", "--backend", backend, "--", cmd])
            .env("TSEM_SECURITYFS", sim.root())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", common::stderr(&out));
        assert_eq!(common::stderr(&out).trim_end(), msg);
    }
    // A command not in PATH is found missing before any namespace is made; the other's was
    // created and the workload released before its exec failed.
    let created: Vec<String> = sim
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("internal ") || c.starts_with("external "))
        .collect();
    assert_eq!(created, ["external digest=sha256"]);
    assert_eq!(sim.errors(), Vec::<String>::new());
}
