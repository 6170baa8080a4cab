//! Attacks on the supervisor and on what the sensor sees of the workload (issue 9, classes 1,
//! 2, 3, 4 and 9), each run by `tsem run --enforce` under a model learned from the same
//! program doing nothing, and judged by its effect (what the attack printed, whether the
//! supervisor or an outside process was reached), then by the summary's counters. The attack
//! programs are compiled from `tests/attack/attack.c` at test time. Every test also passes as
//! an unprivileged user (run from a world-writable directory with `TSEM_TEST_DIR` set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{compile, is_root};

/// What one `tsem run` did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    summary: serde_json::Value,
    /// The supervisor was seen stopped (and was continued by the test).
    supervisor_stopped: bool,
}

impl Run {
    fn sensor(&self, k: &str) -> u64 {
        self.summary["sensor"][k].as_u64().unwrap()
    }
    fn top(&self, k: &str) -> u64 {
        self.summary[k].as_u64().unwrap()
    }
}

/// Whether process `pid` is stopped (state T in /proc/<pid>/stat).
fn stopped(pid: u32) -> bool {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
}

struct Lab {
    dir: PathBuf,
    model: PathBuf,
}

impl Lab {
    /// The attack program built in a fresh directory, and a model of it doing nothing.
    fn new(name: &str) -> Self {
        let dir = common::scratch("attack", name);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attack/attack.c");
        std::fs::copy(&src, dir.join("attack.c")).unwrap();
        compile(&dir, "attack.c", "attack", &["-pthread"]);
        let model = dir.join("noop.model");
        let lab = Lab { dir, model };
        let r = lab.tsem(
            &["-o", lab.model.to_str().unwrap()],
            &["./attack", "noop"],
            "learn",
        );
        assert_eq!(r.code, Some(0), "learning: {}", r.stderr);
        assert_eq!(r.stdout, "ok\n");
        lab
    }

    /// `tsem run EXTRA --summary-json ... -- CMD` in the lab directory, in a process group of
    /// its own (so a group signal of the workload reaches no test process). A supervisor
    /// stopped by the workload is seen, recorded and continued, so the run always ends.
    fn tsem(&self, extra: &[&str], cmd: &[&str], tag: &str) -> Run {
        let s = self.dir.join(format!("{tag}.summary.json"));
        let mut child = common::tsem()
            .arg("run")
            .args(extra)
            .args(
                (!extra.iter().any(|a| a.starts_with("--digest-cache")))
                    .then_some("--no-digest-cache"),
            )
            .args(["--summary-json", s.to_str().unwrap(), "--"])
            .args(cmd)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut supervisor_stopped = false;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if stopped(pid) {
                supervisor_stopped = true;
                let _ = Command::new("kill")
                    .args(["-CONT", "--", &format!("-{pid}")])
                    .status();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        let summary = common::summary_or_null(&s);
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary,
            supervisor_stopped,
        }
    }

    /// Whether this user may create user namespaces here (tested outside tsem); the attacks
    /// that change credentials or roots need one. Where it may not, they say so and pass.
    fn userns(&self, test: &str) -> bool {
        let ok = Command::new(self.dir.join("attack"))
            .arg("userns_probe")
            .status()
            .unwrap()
            .success();
        if !ok {
            eprintln!("{test}: skipped: this kernel refuses user namespaces to this user");
        }
        ok
    }

    fn enforce(&self, cmd: &[&str], tag: &str) -> Run {
        self.tsem(
            &["--enforce", "--model", self.model.to_str().unwrap()],
            cmd,
            tag,
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Attacks on the supervisor itself must neither reach it nor go unrecorded.
fn assert_no_leak(r: &Run, what: &str) {
    assert!(
        !r.stdout.contains("LEAK"),
        "{what}: the attack reached the supervisor: {}",
        r.stdout
    );
    assert!(!r.supervisor_stopped, "{what}: the supervisor was stopped");
}

#[test]
fn the_supervisors_descriptors_cannot_be_taken() {
    let lab = Lab::new("pidfd");
    let r = lab.enforce(&["./attack", "pidfd", "ppid"], "pidfd");
    assert_no_leak(&r, "pidfd_getfd");
    assert!(r.stdout.contains("pidfd_open: errno 1"), "{}", r.stdout);
    // pidfd_open has no TSEM event: the refusal is the sensor's own.
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
}

#[test]
fn the_supervisors_memory_cannot_be_read_or_written() {
    let lab = Lab::new("vm");
    let r = lab.enforce(&["./attack", "vm", "ppid"], "vm");
    assert_no_leak(&r, "process_vm_readv");
    assert!(
        r.stdout.contains("process_vm_readv: errno 1"),
        "{}",
        r.stdout
    );
    assert!(r.top("forensics_events") >= 1, "{}", r.summary);
    assert!(r.sensor("refused") >= 1, "{}", r.summary);

    let r = lab.enforce(&["./attack", "mem", "ppid"], "mem");
    assert_no_leak(&r, "/proc/<supervisor>/mem");
    assert!(r.stdout.contains("open mem: errno 1"), "{}", r.stdout);
    assert!(r.top("forensics_events") >= 1, "{}", r.summary);
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
}

#[test]
fn the_supervisors_descriptors_cannot_be_reopened_through_proc() {
    let lab = Lab::new("magic");
    // Learning: nothing of the supervisor is reached in any mode, and our own links work.
    let r = lab.tsem(&[], &["./attack", "magic", "ppid"], "magic");
    assert_no_leak(&r, "magic links");
    assert!(r.stdout.contains("ok-self"), "{} {}", r.stdout, r.stderr);
    // Enforcing: each link of the supervisor is refused by the sensor, and counted.
    let r = lab.enforce(&["./attack", "magic", "ppid"], "magic-enforce");
    assert_no_leak(&r, "magic links, enforcing");
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
    assert!(r.top("denied") >= 1, "{}", r.summary);
}

#[test]
fn the_supervisor_cannot_be_traced() {
    let lab = Lab::new("ptrace");
    let r = lab.enforce(&["./attack", "ptrace", "ppid"], "ptrace");
    assert_no_leak(&r, "ptrace");
    assert_decided(&r);
}

#[test]
fn the_supervisor_cannot_be_stopped() {
    let lab = Lab::new("stop");
    for target in ["ppid", "group"] {
        let r = lab.enforce(&["./attack", "stop", target], target);
        assert_no_leak(&r, target);
        assert!(r.stdout.contains("kill: errno 1"), "{target}: {}", r.stdout);
        assert!(r.top("forensics_events") >= 1, "{target}: {}", r.summary);
        assert!(r.sensor("refused") >= 1, "{target}: {}", r.summary);
    }
    // Learning does not open the door either: the refusal holds in every mode.
    let r = lab.tsem(&[], &["./attack", "stop", "ppid"], "learn-stop");
    assert_no_leak(&r, "learn");
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
}

#[test]
fn outside_processes_cannot_be_signalled_through_a_pidfd() {
    let lab = Lab::new("pidsig");
    let mut outsider = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = outsider.id().to_string();
    let r = lab.enforce(&["./attack", "pidsig", &pid], "pidsig");
    let alive = outsider.try_wait().unwrap().is_none();
    let _ = outsider.kill();
    let _ = outsider.wait();
    assert!(alive, "the outside process was killed: {}", r.stdout);
    assert!(!r.stdout.contains("LEAK"), "{}", r.stdout);
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
}

/// A `/proc/<pid>` directory is a pidfd to `pidfd_send_signal`: the workload may not hold one
/// of a process outside it (another thread could swap it in after a checked signal), and a
/// signal through its own is a task_kill like any other.
#[test]
fn outside_processes_cannot_be_signalled_through_a_proc_directory() {
    let lab = Lab::new("procsig");
    let mut outsider = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = outsider.id().to_string();
    let r = lab.enforce(&["./attack", "procsig", &pid], "procsig");
    let alive = outsider.try_wait().unwrap().is_none();
    let _ = outsider.kill();
    let _ = outsider.wait();
    assert!(alive, "the outside process was killed: {}", r.stdout);
    assert!(!r.stdout.contains("LEAK"), "{}", r.stdout);
    assert!(r.stdout.contains("open pid dir: errno 1"), "{}", r.stdout);
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
    assert!(r.top("denied") >= 1, "{}", r.summary);
    // The supervisor's own directory likewise.
    let r = lab.enforce(&["./attack", "procsig", "ppid"], "procsig-ppid");
    assert_no_leak(&r, "procsig");
    assert!(r.top("denied") >= 1, "{}", r.summary);
}

/// A parent takes its child's descriptor of a secret (pidfd_getfd) and reads the secret from
/// the child's memory (process_vm_readv), in a workload whose model holds the child's read
/// only: both are ptrace_access_check events out of the model, denied.
#[test]
fn a_parent_cannot_steal_what_its_child_holds() {
    let lab = Lab::new("steal");
    std::fs::write(lab.dir.join("secret.txt"), "SECRET-CHILD-HELD\n").unwrap();
    let model = lab.dir.join("steal.model");
    let r = lab.tsem(
        &["-o", model.to_str().unwrap()],
        &["./attack", "steal", "secret.txt", "learn"],
        "learn-steal",
    );
    assert!(
        r.stdout.contains("child status 0"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    let r = lab.tsem(
        &["--enforce", "--model", model.to_str().unwrap()],
        &["./attack", "steal", "secret.txt", "attack"],
        "steal",
    );
    assert!(
        r.stdout.contains("child status 0"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    assert!(
        !r.stdout.contains("SECRET-CHILD-HELD") && !r.stdout.contains("LEAK"),
        "the child's secret was stolen: {}",
        r.stdout
    );
    assert!(r.stdout.contains("pidfd_getfd: errno"), "{}", r.stdout);
    assert!(r.stdout.contains("process_vm_readv: errno"), "{}", r.stdout);
    assert_decided(&r);
}

#[test]
fn untraced_children_are_never_created() {
    let lab = Lab::new("untraced");
    let marker = "UNTRACED-CHILD-RAN";
    let r = lab.enforce(&["./attack", "untraced", marker], "untraced");
    assert!(
        !r.stdout.contains(marker),
        "an untraced child ran: {}",
        r.stdout
    );
    assert!(r.stdout.contains("clone3: errno 38"), "{}", r.stdout);
    assert!(r.stdout.contains("clone: errno 1"), "{}", r.stdout);
    // clone has no TSEM event: the refusal is the sensor's own.
    assert!(r.sensor("refused") >= 1, "{}", r.summary);
    // Learning does not allow it either.
    let r = lab.tsem(&[], &["./attack", "untraced", marker], "learn-untraced");
    assert!(!r.stdout.contains(marker), "{}", r.stdout);
}

/// The attack was an out-of-model event, and it was denied (counted, not only failed).
fn assert_decided(r: &Run) {
    assert!(r.top("forensics_events") >= 1, "{}", r.summary);
    assert!(r.top("denied") >= 1, "{}", r.summary);
}

/// The workload ended well, never saw the secret, and its read was an out-of-model event that
/// was denied.
fn assert_secret_unread_and_decided(r: &Run) {
    assert_eq!(r.code, Some(0), "{} {}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains("SECRET"),
        "the secret was read: {}",
        r.stdout
    );
    assert_decided(r);
}

#[test]
fn reads_after_a_credential_change_are_decided() {
    let lab = Lab::new("userns");
    if !lab.userns("reads_after_a_credential_change_are_decided") {
        return;
    }
    std::fs::write(lab.dir.join("secret.txt"), "SECRET-AFTER-USERNS\n").unwrap();
    let r = lab.enforce(&["./attack", "userns_read", "secret.txt"], "userns");
    assert_secret_unread_and_decided(&r);
}

#[test]
fn reads_after_a_root_change_are_decided() {
    let lab = Lab::new("chroot");
    if !lab.userns("reads_after_a_root_change_are_decided") {
        return;
    }
    std::fs::create_dir(lab.dir.join("jail")).unwrap();
    std::fs::write(lab.dir.join("jail/secret.txt"), "SECRET-IN-JAIL\n").unwrap();
    let r = lab.enforce(
        &["./attack", "chroot_read", "jail", "/secret.txt"],
        "chroot",
    );
    assert_secret_unread_and_decided(&r);
}

#[test]
fn a_swapped_elf_interpreter_never_runs_undescribed() {
    let lab = Lab::new("interp");
    if !lab.userns("a_swapped_elf_interpreter_never_runs_undescribed") {
        return;
    }
    let ld = "/lib64/ld-linux-x86-64.so.2";
    let myld = lab.dir.join("myld");
    std::fs::copy(ld, &myld).unwrap();
    std::fs::copy(ld, lab.dir.join("src")).unwrap();
    std::fs::write(
        lab.dir.join("marker.c"),
        "#include <unistd.h>\nint main(void){write(1,\"INTERP-RAN\\n\",11);return 0;}\n",
    )
    .unwrap();
    let linker = format!("-Wl,--dynamic-linker={}", myld.display());
    compile(&lab.dir, "marker.c", "marker", &[&linker]);
    let cmd = ["./attack", "interp", "src", "myld", "./marker"];
    // The model holds the whole attack with the interpreter's own bytes in place...
    let model = lab.dir.join("interp.model");
    let r = lab.tsem(&["-o", model.to_str().unwrap()], &cmd, "learn-interp");
    assert!(r.stdout.contains("status"), "{} {}", r.stdout, r.stderr);
    if is_root() {
        // The mapped interpreter was described from the mapping itself, so it could run.
        assert!(r.stdout.contains("INTERP-RAN"), "{} {}", r.stdout, r.stderr);
    }
    // ...and then another interpreter is bound there.
    let mut evil = std::fs::read(ld).unwrap();
    evil.extend_from_slice(b"evil");
    std::fs::write(lab.dir.join("src"), evil).unwrap();
    // Enforcing, the bind mount itself is refused: its strings would be read again by the
    // kernel after the verdict, and the supervisor cannot mount for the task.
    let r = lab.tsem(
        &["--enforce", "--model", model.to_str().unwrap()],
        &cmd,
        "interp",
    );
    assert!(
        r.stdout.contains("mount: errno 1"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    assert!(
        !r.stdout.contains("INTERP-RAN"),
        "the swapped interpreter ran: {}",
        r.stdout
    );
    assert!(r.sensor("unfaithful") >= 1, "{}", r.summary);
    assert!(r.top("denied") >= 1, "{}", r.summary);
    // Sealed, the mount is continued (recorded): the swapped interpreter is then caught at
    // the exec stop.
    let r = lab.tsem(
        &["--seal", "--model", model.to_str().unwrap()],
        &cmd,
        "interp-seal",
    );
    assert!(r.stdout.contains("status"), "{} {}", r.stdout, r.stderr);
    if is_root() {
        // Described from the mapped file itself (map_files), and out of the model.
        assert!(r.top("forensics_events") >= 1, "{}", r.summary);
    } else {
        // Unprivileged, map_files is out of reach: the task is killed before its first
        // instruction, as it is whenever the mapped file does not match the verdict.
        assert!(
            !r.stdout.contains("INTERP-RAN"),
            "the swapped interpreter ran: {}",
            r.stdout
        );
        assert!(r.sensor("exec_mismatch") >= 1, "{}", r.summary);
        assert!(r.top("denied") >= 1, "{}", r.summary);
    }
}

#[test]
fn an_executable_rewritten_in_the_run_can_be_run() {
    let lab = Lab::new("etxtbsy");
    // The second cp rewrites an existing file through a descriptor the sensor opened, and the
    // exec follows at once: a descriptor the supervisor still held (it used to keep them, then
    // closed them only after the task was already running again) made it fail with ETXTBSY.
    let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
                  rm -f t2; cp /bin/true t2 && cp /bin/true t2 && ./t2 && echo RAN; done";
    let r = lab.tsem(&[], &["sh", "-c", script], "etxtbsy");
    assert_eq!(r.stdout, "RAN\n".repeat(20), "{}", r.stderr);
}

#[test]
fn maps_of_files_just_opened_are_described_the_same_way_every_time() {
    let lab = Lab::new("openmap");
    let shm = PathBuf::from(format!("/dev/shm/tsem-openmap-{}", std::process::id()));
    let disk = lab.dir.join("mapped");
    for f in [&shm, &disk] {
        std::fs::write(f, vec![7u8; 4096]).unwrap();
    }
    let model = lab.dir.join("openmap.model");
    let traj = lab.dir.join("openmap.trajectory");
    let cmd = |f: &Path| {
        vec![
            "sh".to_string(),
            "-c".to_string(),
            format!(
                "./attack openmap {} && ./attack openmap mapped",
                f.display()
            ),
        ]
    };
    let argv = cmd(&shm);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let r = lab.tsem(
        &[
            "-o",
            model.to_str().unwrap(),
            "--trajectory",
            traj.to_str().unwrap(),
        ],
        &argv,
        "learn-openmap",
    );
    assert_eq!(r.stdout, "mapped\nmapped\n", "{}", r.stderr);
    let t = std::fs::read_to_string(&traj).unwrap();
    // TSEM skips mmap_file on pseudo filesystems (tmpfs), whichever path described it; the
    // file on disk is an event.
    let shm_name = shm.file_name().unwrap().to_str().unwrap();
    assert!(
        !t.lines()
            .any(|l| l.contains("\"mmap_file\"") && l.contains(shm_name)),
        "a tmpfs mapping was described"
    );
    assert!(
        t.lines()
            .any(|l| l.contains("\"mmap_file\"") && l.contains("/mapped"))
    );
    for i in 0..5 {
        let r = lab.tsem(
            &["--enforce", "--model", model.to_str().unwrap()],
            &argv,
            &format!("openmap{i}"),
        );
        assert_eq!(r.code, Some(0), "run {i}: {}", r.stderr);
        assert_eq!(r.top("forensics_events"), 0, "run {i}: {}", r.summary);
    }
    let _ = std::fs::remove_file(&shm);
}

#[test]
fn o_tmpfile_opens_are_enforceable() {
    let lab = Lab::new("tmpfile");
    let model = lab.dir.join("tmpfile.model");
    let r = lab.tsem(
        &["-o", model.to_str().unwrap()],
        &["./attack", "tmpfile"],
        "learn-tmpfile",
    );
    assert_eq!(r.stdout, "tmpfile\n", "{}", r.stderr);
    for i in 0..3 {
        let r = lab.tsem(
            &["--enforce", "--model", model.to_str().unwrap()],
            &["./attack", "tmpfile"],
            &format!("tmpfile{i}"),
        );
        assert_eq!(r.stdout, "tmpfile\n", "run {i}: {}", r.stderr);
        assert_eq!(r.top("forensics_events"), 0, "run {i}: {}", r.summary);
    }
}

/// Whether the store holds the digest `hex`, as text (a line appended) or as the bytes of a record.
fn stored(store: &std::path::Path, hex: &str) -> bool {
    let file = std::fs::read(store).unwrap();
    let raw: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let has = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    has(hex.as_bytes()) || has(&raw)
}

#[test]
fn the_digest_store_is_out_of_reach_after_a_credential_change() {
    let lab = Lab::new("store");
    if !lab.userns("the_digest_store_is_out_of_reach_after_a_credential_change") {
        return;
    }
    let store = lab.dir.join("cache/digests");
    let store_arg = format!("--digest-cache={}", store.display());
    // Two runs, so the store exists and holds entries.
    for tag in ["store0", "store1"] {
        let r = lab.tsem(&[&store_arg], &["./attack", "noop"], tag);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let forged_digest = "ab".repeat(32);
    let forged = format!("v1 sha256 1 2 1 0 1 0 7 {forged_digest}\n");
    // In every mode, learning included.
    let r = lab.tsem(
        &[&store_arg],
        &[
            "./attack",
            "userns_append",
            store.to_str().unwrap(),
            &forged,
        ],
        "store",
    );
    assert!(!r.stdout.contains("LEAK"), "{}", r.stdout);
    assert!(
        r.stdout.contains("open for append: errno 1"),
        "{}",
        r.stdout
    );
    assert!(r.sensor("protected") >= 1, "{}", r.summary);
    assert!(!stored(&store, &forged_digest), "a forged entry was stored");
    // Enforcing: refused and counted as a denial.
    let r = lab.tsem(
        &[
            &store_arg,
            "--enforce",
            "--model",
            lab.model.to_str().unwrap(),
        ],
        &[
            "./attack",
            "userns_append",
            store.to_str().unwrap(),
            &forged,
        ],
        "store-enforce",
    );
    assert!(!r.stdout.contains("LEAK"), "{}", r.stdout);
    assert!(r.top("denied") >= 1, "{}", r.summary);
    assert!(!stored(&store, &forged_digest), "a forged entry was stored");
}

/// utimes on a path a second thread flips between a file the model lets the workload touch
/// and one it does not: the supervisor performs the call on the object it described, so the
/// other file's times never change, and a flip it read is denied.
#[test]
fn a_flipping_utimes_path_never_touches_the_other_file() {
    use std::os::unix::fs::MetadataExt;
    let lab = Lab::new("flip");
    for f in ["public", "secret"] {
        std::fs::write(lab.dir.join(f), "").unwrap();
    }
    let model = lab.dir.join("flip.model");
    let cmd = |mode| ["./attack", "flip_utimes", "public", "secret", mode];
    let r = lab.tsem(
        &["-o", model.to_str().unwrap()],
        &cmd("learn"),
        "learn-flip",
    );
    assert!(r.stdout.contains("utimes: 0"), "{} {}", r.stdout, r.stderr);
    let before = std::fs::metadata(lab.dir.join("secret")).unwrap().mtime();
    // Each flip it reads is denied and the task keeps running (no taint), so that every one
    // of the calls races.
    let r = lab.tsem(
        &[
            "--enforce",
            "--on-forensic",
            "deny",
            "--model",
            model.to_str().unwrap(),
        ],
        &cmd("attack"),
        "flip",
    );
    assert!(
        !r.stdout.contains("refused 0\n"),
        "no flip was seen: {} {}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("refused "), "{} {}", r.stdout, r.stderr);
    let after = std::fs::metadata(lab.dir.join("secret")).unwrap().mtime();
    assert_eq!(before, after, "the other file's times were set");
    assert_ne!(after, 1_000_000_000);
    assert_decided(&r);
}

/// setrlimit with a limit a second thread flips between the modeled value and another: the
/// supervisor applies its own copy of the limit it described (`prlimit`), so the other value
/// is never applied, and a flip it read is denied.
#[test]
fn a_flipping_rlimit_is_never_applied() {
    let lab = Lab::new("fliprl");
    let model = lab.dir.join("fliprl.model");
    let r = lab.tsem(
        &["-o", model.to_str().unwrap()],
        &["./attack", "flip_rlimit", "learn"],
        "learn-fliprl",
    );
    assert!(
        r.stdout.contains("setrlimit: 0"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    let r = lab.tsem(
        &[
            "--enforce",
            "--on-forensic",
            "deny",
            "--model",
            model.to_str().unwrap(),
        ],
        &["./attack", "flip_rlimit", "attack"],
        "fliprl",
    );
    assert!(r.stdout.contains("refused "), "{} {}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains("LEAK"),
        "an unmodeled limit was applied: {}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("refused 0\n"),
        "no flip was seen: {}",
        r.stdout
    );
    assert_decided(&r);
}

/// `setxattrat` reaches inode_setxattr by a number the sensor does not decode: the filter
/// answers ENOSYS (callers fall back to setxattr, which is modeled), so no xattr is set
/// undescribed. A refusal of the filter itself is not counted (nothing reaches the sensor).
#[test]
fn xattrs_cannot_be_set_by_a_newer_number() {
    let lab = Lab::new("xattrat");
    let f = lab.dir.join("target.txt");
    std::fs::write(&f, "x").unwrap();
    let r = lab.enforce(&["./attack", "setxattrat", "target.txt"], "xattrat");
    assert!(!r.stdout.contains("LEAK"), "{}", r.stdout);
    assert!(r.stdout.contains("setxattrat: errno 38"), "{}", r.stdout);
    let path = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated strings and a writable buffer of its length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"user.tsem".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(n < 0, "the xattr was set: {:?}", &buf[..n.max(0) as usize]);
}
