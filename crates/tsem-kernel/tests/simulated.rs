//! The kernel backend against the simulated securityfs, fed the real captures in
//! ../shared/conformance/tsem: an internal namespace set up through `control` and fed
//! `process_1.json` has test.model's state; an external namespace's export file is read and
//! answered as its modeling agent (in-model events released, out-of-model ones disciplined).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use tsem_core::hash::HashAlg;
use tsem_core::namespace::Mode;
use tsem_core::namespace::{Config, Namespace};
use tsem_core::policy::Policy;
use tsem_format::{ModelFile, RecordKind, write_event};
use tsem_kernel::external::{ExportFile, ExternalTma, Setup};
use tsem_kernel::sim::Simulator;
use tsem_kernel::{Command, NsOptions, NsRef, SecurityFs};

fn process(f: &str) -> PathBuf {
    tsem_testdata::shared_dir()
        .join("conformance/tsem/process")
        .join(f)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tsem-kernel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn model() -> ModelFile {
    ModelFile::parse_bytes(&std::fs::read(process("test.model")).unwrap()).unwrap()
}

/// What the userspace core says: test.model loaded, sealed, the events modeled.
fn expected(files: &[&str]) -> Namespace {
    let mut ns = Namespace::new(Config::default()).unwrap();
    model().load_into(&mut ns, None).unwrap();
    ns.seal();
    for f in files {
        for (i, e) in Simulator::events_of(&process(f))
            .unwrap()
            .iter()
            .enumerate()
        {
            ns.model(4000 + (i as u64 % 7), e).unwrap();
        }
    }
    ns
}

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn an_internal_namespace_fed_process_1_has_test_model_s_state() {
    let sim = Simulator::start(&scratch("internal")).unwrap();
    let fs = SecurityFs::at(sim.root());
    fs.command(&Command::Internal(NsOptions {
        nsref: Some(NsRef::Initial),
        digest: Some(HashAlg::Sha256),
        cache: Some(64),
    }))
    .unwrap();
    let m = model();
    fs.load_model(&m).unwrap();
    let events = Simulator::events_of(&process("process_1.json")).unwrap();
    assert_eq!(events.len(), 155);
    sim.feed(&events, WAIT);
    assert_eq!(sim.errors(), Vec::<String>::new());
    assert_eq!(fs.id().unwrap(), 1);
    // Every model line went through control: base/state/pseudonym lines, then seal.
    let cmds = sim.commands();
    assert_eq!(
        cmds[0], "internal nsref=initial digest=sha256 cache=64",
        "{cmds:?}"
    );
    assert_eq!(cmds.last().map(String::as_str), Some("seal"));
    let want = expected(&["process_1.json"]);
    assert_eq!(fs.state().unwrap(), want.state());
    assert_eq!(fs.measurement().unwrap(), want.measurement());
    // process_1 stays inside test.model: no forensics, the model's points, counted.
    assert!(fs.forensics().unwrap().is_empty());
    assert!(fs.points(false).unwrap().is_empty());
    let points = fs.points(true).unwrap();
    assert_eq!(points.len(), want.points().len());
    assert_eq!(
        points.iter().map(|p| p.1).sum::<u64>(),
        want.points().iter().map(|p| p.1).sum::<u64>()
    );
    // The state is the model's own: loading test.model alone gives it.
    assert_eq!(fs.state().unwrap(), expected(&[]).state());
}

#[test]
fn the_external_export_file_is_read_and_answered_as_the_modeling_agent() {
    let sim = Simulator::start(&scratch("external")).unwrap();
    let fs = SecurityFs::at(sim.root());
    fs.command(&Command::External(NsOptions::default()))
        .unwrap();
    assert!(sim.settle(1, WAIT));
    let id = fs.id().unwrap();
    let mut export = ExportFile::open(&fs, id).unwrap();
    let mut tma = ExternalTma::with_setup(Setup {
        config: Config::default(),
        model: Some(model()),
        mode: Mode::Sealed,
        policy: Policy::Untrust,
    })
    .unwrap();

    // process_1 (in the model), then process_2 (not), as the workload's tasks raise them.
    let mut events = Simulator::events_of(&process("process_1.json")).unwrap();
    events.extend(Simulator::events_of(&process("process_2.json")).unwrap());
    let n = events.len();
    let feeder = std::thread::scope(|s| {
        let h = s.spawn(|| sim.feed(&events, WAIT));
        let mut handled = 0;
        // The aggregate record, then one per event.
        while handled < n + 1 {
            if let Some(line) = export.next(100).unwrap() {
                tma.handle(&fs, &export, &line).unwrap();
                handled += 1;
            }
        }
        h.join().unwrap()
    });
    assert_eq!(sim.errors(), Vec::<String>::new());
    assert_eq!(feeder.len(), n);
    let want = expected(&["process_1.json", "process_2.json"]);
    assert_eq!(tma.ns.state(), want.state());
    assert!(
        want.forensics_events() > 0,
        "process_2 must leave test.model"
    );
    // Each task was answered by pid and tnum; disciplined exactly for the forensic events.
    let untrusted = feeder.iter().filter(|a| !a.trusted).count() as u64;
    assert_eq!(untrusted, tma.counts.untrusted);
    assert_eq!(tma.counts.trusted + tma.counts.untrusted, n as u64);
    assert!(feeder[..155].iter().all(|a| a.trusted));
    assert!(untrusted >= want.forensics_events());
    assert_eq!(sim.answers(), feeder);
}

#[test]
fn malformed_files_and_records_name_the_file_and_line() {
    let sim = Simulator::start(&scratch("malformed")).unwrap();
    let fs = SecurityFs::at(sim.root());
    std::fs::write(sim.root().join("id"), "x\n").unwrap();
    let e = fs.id().unwrap_err().to_string();
    assert!(
        e.contains("/id:1:") && e.contains("not a namespace id"),
        "{e}"
    );
    fs.command(&Command::External(NsOptions::default()))
        .unwrap();
    assert!(sim.settle(1, WAIT));
    let export = ExportFile::open(&fs, 1).unwrap();
    let mut tma = ExternalTma::new(Namespace::new(Config::default()).unwrap());
    let e = tma
        .handle(
            &fs,
            &export,
            b"{\"export\": {\"type\": \"event\"}, \"event\": {}",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("external_tma/1:1:"), "{e}");
    // A command the kernel refuses shows as the simulator's error.
    std::fs::OpenOptions::new()
        .write(true)
        .open(sim.root().join("control"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"state value=zz\n"))
        .unwrap();
    assert!(sim.settle(2, WAIT));
    assert_eq!(sim.errors().len(), 1, "{:?}", sim.errors());
}

#[test]
fn log_records_are_modeled_as_the_spec_and_tsem_replay_do() {
    // Spec §7.3 step 8: `log` → model. A post-v4 log record carries the untrusted task's event
    // description: the agent models it (and answers nothing: nobody waits); a v3 one names only
    // the process and the event type, so there is nothing to hash and it is counted.
    let sim = Simulator::start(&scratch("log")).unwrap();
    let fs = SecurityFs::at(sim.root());
    fs.command(&Command::External(NsOptions::default()))
        .unwrap();
    assert!(sim.settle(1, WAIT));
    let export = ExportFile::open(&fs, fs.id().unwrap()).unwrap();
    let mut tma = ExternalTma::with_setup(Setup {
        config: Config::default(),
        model: Some(model()),
        mode: Mode::Sealed,
        policy: Policy::Untrust,
    })
    .unwrap();
    // A released event of process_1, then a log record of process_2's first out-of-model one.
    let mut want = expected(&[]);
    let mut released = Simulator::events_of(&process("process_1.json")).unwrap()[0].clone();
    released.header.pid = Some(4000);
    released.header.tnum = Some(1_000_000);
    assert!(!want.model(4000, &released).unwrap().forensic);
    let logged = Simulator::events_of(&process("process_2.json"))
        .unwrap()
        .into_iter()
        .find(|e| want.clone().model(4001, e).unwrap().forensic)
        .unwrap();
    want.model(4001, &logged).unwrap();
    let mut lines = vec![
        format!(
            "{{\"export\": {{\"type\": \"aggregate\"}}, \"aggregate\": {{\"value\": \"{}\"}}}}",
            "0".repeat(64)
        )
        .into_bytes(),
    ];
    for (e, kind) in [(&released, RecordKind::Event), (&logged, RecordKind::Log)] {
        let mut l = Vec::new();
        write_event(&mut l, e, kind);
        lines.push(l);
    }
    lines.push(
        br#"{"export": {"type": "log"}, "log": {"process": "cat", "event": "file_open", "action": "LOG"}}"#
            .to_vec(),
    );
    for l in &lines {
        tma.handle(&fs, &export, l).unwrap();
    }
    assert!(sim.settle(2, WAIT));
    assert_eq!(sim.errors(), Vec::<String>::new());
    assert_eq!(tma.counts.records, 4);
    assert_eq!((tma.counts.trusted, tma.counts.untrusted), (1, 0));
    assert_eq!(tma.counts.logs, 2);
    // The log record's event is in the agent's namespace: a forensic point, in the state.
    assert_eq!(tma.ns.events(), 2);
    assert_eq!(tma.ns.forensics_events(), 1);
    assert_eq!(tma.ns.state(), want.state());
    assert_ne!(want.state(), expected(&[]).state());
    // Read as `tsem replay` reads them (every record with a description modeled, whatever its
    // export type): the same state.
    let mut replay = expected(&[]);
    let mut parser = tsem_format::RecordParser::new();
    for l in &lines {
        if let Ok(tsem_format::Record::Event { event, .. }) = parser.parse(l) {
            replay.model(1, &event).unwrap();
        }
    }
    assert_eq!(replay.state(), tma.ns.state());
}
