//! Learning that converges whatever the workload creates and however: concurrent creators, a
//! program run from a temporary directory, temporary trees on a tmpfs, under a bind mount and
//! with names that are not UTF-8, FIFOs, symlinks and sockets at random names; the outcome told
//! in words; outputs that are executed stay pinned; a single learning run warns about outputs
//! the next run will find.
//!
//! Runs as root and unprivileged (set TSEM_TEST_DIR to a world-writable directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod learning_common;

use std::path::Path;

use common::{events, pathname_of, stderr};
use learning_common::Workload;

/// Four concurrent writers in one temporary directory: the files they create are numbered in
/// whatever order the scheduler picks, and the directory's name is random.
const PARALLEL: &str = r#"d=$(mktemp -d)
for i in 1 2 3 4; do
  ( for j in 1 2 3; do echo "$i $j" > "$d/part-$i-$j"; cat "$d/part-$i-$j" > /dev/null; done ) &
done
wait
cat "$d"/part-* | wc -l > /dev/null
rm -rf "$d"
"#;

#[test]
fn concurrent_creators_converge_whatever_the_order() {
    let w = Workload::new("parallel", PARALLEL);
    w.learns_and_holds();
    // Without the naming rules the same workload does not converge: the test measures them.
    let o = w.learn_without_rules();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not converged after 3 runs"),
        "{}",
        stderr(&o)
    );

    // `tsem replay` applies the rules the model names: the raw descriptions of another run
    // (sensed without rules) replay into the model; without the rules line they do not.
    let raw = w.root.join("raw.json");
    let o = w.tsem(
        &[
            "run",
            "--rules",
            "none",
            "--trajectory",
            raw.to_str().unwrap(),
            "--",
            "sh",
            "run.sh",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let replay = |model: &Path| -> serde_json::Value {
        let o = w.tsem(
            &[
                "replay",
                "--json",
                "--model",
                model.to_str().unwrap(),
                raw.to_str().unwrap(),
            ],
            &[],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(replay(&w.model)["forensics_points"], 0);
    let text = std::fs::read_to_string(&w.model).unwrap();
    let bare = w.root.join("bare.model");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("# tsem-rules:"))
        .collect();
    std::fs::write(&bare, kept.join("\n") + "\n").unwrap();
    assert!(replay(&bare)["forensics_points"].as_u64().unwrap() > 0);
}

/// A helper program copied into a temporary directory and run, as test suites do with the
/// binaries they build: its TASK_ID would carry the random directory without the naming rules.
/// (It also needs the sensor to close its copy of a written descriptor before the task runs
/// again, else the exec right after the copy fails with ETXTBSY now and then.)
#[test]
fn a_program_run_from_a_temporary_directory_converges() {
    let w = Workload::new(
        "helper",
        "d=$(mktemp -d)\ncp /bin/echo \"$d/helper\"\n\"$d/helper\" hi > /dev/null\nrm -rf \"$d\"\n",
    );
    w.learns_and_holds();
}

/// The outcome in words: the deviation, who became untrusted, what was denied because of it.
#[test]
fn the_outcome_is_told_in_words() {
    let w = Workload::new("words", "");
    // A job that carries on after a failed step (no `set -e`), so the untrusted shell goes on.
    std::fs::write(
        w.dir.join("run.sh"),
        "if [ -n \"${EXTRA_READ:-}\" ]; then read -r x < \"$EXTRA_READ\"; fi\n\
         ls / > /dev/null\nls /usr > /dev/null\n",
    )
    .unwrap();
    w.learn(&[]);
    let secret = w.root.join("never-read.txt");
    let (o, s, _) = w.enforce("words", "--enforce", &[("EXTRA_READ", &secret)]);
    let err = stderr(&o);
    let want = format!(
        "1 out-of-model event: {} opened {}; that task and 2 descendants became untrusted; ",
        std::fs::canonicalize("/bin/sh").unwrap().display(),
        secret.display()
    );
    assert!(err.contains(&want), "{err}");
    let later = s["denied"].as_u64().unwrap() - 1;
    assert!(
        err.contains(&format!("; {later} later operations denied")),
        "{err}"
    );
    assert!(err.contains("ls: Operation not permitted"), "{err}");
}

/// A temporary tree on a filesystem mounted below `/` (the tmpfs at /dev/shm): its DENTRY paths
/// are relative to the tmpfs, its FILE paths absolute, and both must be named alike.
#[test]
fn a_temporary_tree_on_a_mounted_tmpfs_converges() {
    let shm = Path::new("/dev/shm");
    let probe = shm.join(format!("tsem-probe-{}", std::process::id()));
    if std::fs::write(&probe, b"").is_err() {
        eprintln!("skipped: /dev/shm is not writable");
        return;
    }
    let _ = std::fs::remove_file(&probe);
    let w = Workload::new(
        "shm",
        "d=$(mktemp -d -p /dev/shm)\nmkdir \"$d/sub\"\necho data > \"$d/sub/f\"\n\
         cat \"$d/sub/f\" > /dev/null\nrm -rf \"$d\"\n",
    );
    w.learns_and_holds();
    let t = events(&w.root.join("enforce0.trajectory.json"));
    let cat = t
        .iter()
        .filter(|e| e["event"]["type"] == "file_open")
        .map(pathname_of)
        .find(|p| p.starts_with("/dev/shm/"))
        .unwrap_or_default();
    assert!(
        cat.starts_with("/dev/shm/%created:") && !cat.contains("/tmp."),
        "{cat}"
    );
}

/// A temporary tree reached through a bind mount: its DENTRY paths name the bound directory as it
/// lies on its filesystem, its FILE paths the mount point, and both must be named alike (as in
/// a chroot or a container whose root is a bind mount, where this once kept learning from
/// converging).
#[test]
fn a_temporary_tree_under_a_bind_mount_converges() {
    let Some(w) = Workload::new(
        "bind",
        "d=$(mktemp -d -p .)\nmkdir \"$d/sub\"\necho data > \"$d/sub/f\"\n\
         cat \"$d/sub/f\" > /dev/null\nrm -rf \"$d\"\n",
    )
    .bind_mounted() else {
        eprintln!("skipped: no user namespaces (unshare --user --map-root-user --mount failed)");
        return;
    };
    w.learns_and_holds();
    let view = w.view.clone().unwrap();
    let t = events(&w.root.join("enforce0.trajectory.json"));
    let cat: Vec<String> = t
        .iter()
        .filter(|e| e["event"]["type"] == "file_open")
        .map(pathname_of)
        .filter(|p| p.starts_with(view.to_str().unwrap()))
        .collect();
    assert!(!cat.is_empty(), "no open beneath {}", view.display());
    // mktemp's directory, `sub` and `f` were all created by the run: each is named by its
    // creator, none by its random or given name.
    let tree: Vec<&String> = cat.iter().filter(|p| !p.ends_with("/run.sh")).collect();
    assert!(
        !tree.is_empty()
            && tree
                .iter()
                .all(|p| p.matches("/%created:").count() == 3 && !p.contains("/tmp.")),
        "{cat:?}"
    );
}

/// A temporary tree whose names are not UTF-8 (a random `0xff 0x01` directory with a `sub\xff`
/// directory in it) next to a fixture directory `fixture.\xfe` the suite only reads.
const NON_UTF8: &str = r#"d="./scratch.$(printf '\377\001')$$"
mkdir "$d"
sub="$d/$(printf 'sub\377')"
mkdir "$sub"
echo data > "$sub/f"
cat "$sub/f" > /dev/null
cat "fixture.$(printf '\376')/in" > /dev/null
rm -rf "$d"
"#;

/// The naming rules work on the bytes of a path: a created directory whose name is not UTF-8 is
/// named by its creator like any other (learned, then enforced with no forensic event), the
/// fixture's raw name is kept byte for byte and still pins its contents, and the kernel backstop
/// learned alongside refuses none of it when it alone decides.
#[test]
fn a_created_directory_whose_name_is_not_utf8_learns_and_holds() {
    use std::os::unix::ffi::OsStrExt as _;
    let w = Workload::new("nonutf8", NON_UTF8);
    let fixture = w.dir.join(std::ffi::OsStr::from_bytes(b"fixture.\xfe"));
    std::fs::create_dir(&fixture).unwrap();
    std::fs::write(fixture.join("in"), "pinned\n").unwrap();
    w.learns_and_holds();

    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|x| x == needle);
    let model = std::fs::read(&w.model).unwrap();
    let t = std::fs::read(w.root.join("enforce0.trajectory.json")).unwrap();
    let shown = String::from_utf8_lossy(&t);
    assert!(!has(&t, b"scratch."), "the random name reached: {shown}");
    assert!(has(&t, b"/work/%created:"), "{shown}");
    assert!(
        has(&t, b"fixture.\xfe/in"),
        "the fixture's name was not kept: {shown}"
    );
    assert!(
        !has(&model, b"scratch."),
        "{}",
        String::from_utf8_lossy(&model)
    );

    // The backstop learned again from that trajectory (lines not UTF-8 in the kernel's form,
    // names made by the rules): what the run created is anchored on the directory that existed,
    // never on a `%created:` name (no such file exists), and never on the random name.
    let built = w.root.join("built.model");
    let traj = w.root.join("enforce0.trajectory.json");
    let o = w.tsem(
        &[
            "model",
            "build",
            "--backstop",
            "--rules",
            "created-subtree-v1,proc-pid-v1,prctl-args-v1",
            "-o",
            built.to_str().unwrap(),
            traj.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&built).unwrap();
    let landlock: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("landlock "))
        .collect();
    let work = w.dir.to_str().unwrap();
    assert!(
        landlock.iter().any(|l| l.starts_with("landlock fs ")
            && l.ends_with(&format!(" {work}"))
            && l.contains("make-dir")),
        "{landlock:?}"
    );
    assert!(
        !landlock
            .iter()
            .any(|l| l.contains("created") || l.contains("scratch.")),
        "{landlock:?}"
    );

    // The fixture only read stays pinned by its contents.
    std::fs::write(fixture.join("in"), "changed\n").unwrap();
    let (o, s, _) = w.enforce("changed", "--seal", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s["forensics_events"].as_u64().unwrap() >= 1, "{s}");

    // Without the rules the random name reaches the model and learning does not converge.
    std::fs::write(fixture.join("in"), "pinned\n").unwrap();
    let o = w.learn_without_rules();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

/// A FIFO, a symlink and a Unix socket bound at a path, each at a random name, first in the
/// working directory (which exists before the run) and then in a created temporary directory.
const NODES: &str = r#"nodes() {
  f=$(mktemp -u -p "$1" fifo.XXXXXX)
  mkfifo "$f"
  ( echo hi > "$f" & )
  read -r x < "$f"
  rm "$f"
  l=$(mktemp -u -p "$1" link.XXXXXX)
  ln -s "$PWD/run.sh" "$l"
  cat "$l" > /dev/null
  rm "$l"
  s=$(mktemp -u -p "$1" sock.XXXXXX)
  /usr/bin/python3 sock.py "$s"
  rm "$s"
}
nodes "$PWD"
d=$(mktemp -d)
nodes "$d"
rm -rf "$d"
"#;

/// Binds a Unix socket at the path given, listens, connects to it and accepts.
const SOCK_PY: &str = "import socket, sys\n\
s = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(1)\n\
c = socket.socket(socket.AF_UNIX)\nc.connect(sys.argv[1])\na, _ = s.accept()\n\
c.sendall(b'x')\nassert a.recv(1) == b'x'\n";

/// FIFOs, symlinks and sockets are created objects like files and directories: the kernel's
/// inode_mknod and inode_symlink of each (a socket's node comes from its bind) put its creator,
/// not its random name, into every later event, so the workload converges and holds.
#[test]
fn fifos_symlinks_and_sockets_at_random_names_learn_and_hold() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: /usr/bin/python3 is not installed");
        return;
    }
    let w = Workload::new("nodes", NODES);
    std::fs::write(w.dir.join("sock.py"), SOCK_PY).unwrap();
    w.learns_and_holds();
    let t = events(&w.root.join("enforce0.trajectory.json"));
    let binds: Vec<&serde_json::Value> = t
        .iter()
        .filter(|e| {
            e["event"]["type"] == "inode_mknod"
                && e["inode_mknod"]["mode"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("014"))
        })
        .collect();
    assert_eq!(binds.len(), 2, "no socket node in {t:?}");
    // No random name (mktemp's six characters after the prefix) reached a description.
    let text = serde_json::to_string(&t).unwrap();
    for prefix in ["fifo.", "link.", "sock."] {
        let random = text.match_indices(prefix).any(|(i, _)| {
            let rest = &text.as_bytes()[i + prefix.len()..];
            rest.len() >= 6 && rest[..6].iter().all(u8::is_ascii_alphanumeric)
        });
        assert!(!random, "a random {prefix}XXXXXX name: {text}");
    }
}

/// One learning run that leaves files it created says so in one line: the next run finds them
/// (here: `cat out/log` succeeds only from the second run on, a step the first never took).
/// Files it created and removed, and runs under `tsem learn` (which learns again itself), say
/// nothing.
#[test]
fn a_single_learning_run_that_leaves_created_files_says_to_learn_again() {
    let w = Workload::new(
        "single",
        "mkdir -p out\nif [ -f out/log ]; then cat out/log > /dev/null; fi\n\
         date +%s%N >> out/log\necho done > out/status\necho ok > summary.txt\nt=$(mktemp)\n\
         echo x > \"$t\"\nrm \"$t\"\n",
    );
    let m = w.model.to_str().unwrap();
    let o = w.tsem(&["run", "--learn", "-o", m, "--", "sh", "run.sh"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.contains("this run created"))
        .unwrap_or_else(|| panic!("no advice: {err}"));
    assert!(
        line.starts_with("tsem: 1 file and 1 directory this run created are still there (")
            && line.contains(w.dir.join("summary.txt").to_str().unwrap())
            && line.contains(w.dir.join("out").to_str().unwrap())
            && line.matches(", /").count() == 1
            && line.contains("learn again (`tsem learn`"),
        "{line}"
    );
    // What it warns of: enforced as learned from that one run, the second run is denied.
    let (o, s, _) = w.enforce("second", "--enforce", &[]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(s["denied"].as_u64().unwrap() >= 1, "{s}");
    // Learned again from there, nothing more to say about files the run found.
    let o = w.tsem(
        &[
            "run", "--learn", "--model", m, "-o", m, "--", "sh", "run.sh",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("this run created"), "{}", stderr(&o));
    let (o, s, _) = w.enforce("third", "--enforce", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s["forensics_events"], 0, "{s}");
    // `tsem learn` runs the workload until it converges: none of its runs advises it.
    std::fs::remove_dir_all(w.dir.join("out")).unwrap();
    let o = w.tsem(&["learn", "-o", m, "--", "sh", "run.sh"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("this run created"), "{}", stderr(&o));
}

/// Builds `./prog` when it is missing, as an incremental build does, and runs it.
const BUILT: &str = "test -x prog || cc -O2 -o prog prog.c\n./prog > result.txt\n";

/// An executed output stays pinned (docs/learning.md, "What stays pinned"): `./prog` is a
/// pseudonym (the first run built it), so its file digest is zero, but the TASK_ID of the task
/// that runs it hashes its real contents. A different `./prog` put in its place after learning
/// runs as another identity: its first events are forensic, the task is untrusted, and what it
/// tries (writing a marker next to it) is denied — the marker is checked, not only the report.
#[test]
fn a_built_program_replaced_after_learning_is_forensic() {
    if !common::have("cc") {
        eprintln!("skipped: cc is not installed");
        return;
    }
    let w = Workload::new("replaced", BUILT);
    std::fs::write(
        w.dir.join("prog.c"),
        "#include <stdio.h>\nint main(void) { puts(\"42\"); return 0; }\n",
    )
    .unwrap();
    w.learns_and_holds();
    let shown = w.tsem(&["model", "show", w.model.to_str().unwrap()], &[]);
    let prog = w.dir.join("prog");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("{}  (auto: ", prog.display())),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    let marker = w.dir.join("replaced-ran");
    let evil = w.root.join("evil.c");
    std::fs::write(
        &evil,
        format!(
            "#include <stdio.h>\nint main(void) {{ FILE *f = fopen(\"{}\", \"w\"); \
             if (f) fputs(\"x\", f); puts(\"42\"); return 0; }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let built = w.root.join("evil");
    let o = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&built)
        .arg(&evil)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // In place, as `cc -o prog` over an existing file writes it.
    std::fs::write(&prog, std::fs::read(&built).unwrap()).unwrap();
    let (o, s, f) = w.enforce("replaced", "--enforce", &[]);
    assert!(
        !o.status.success(),
        "the replaced program ran: {}",
        stderr(&o)
    );
    assert!(s["forensics_events"].as_u64().unwrap() >= 1, "{s}");
    // Not only what it does differently: what the built program also did (loading its
    // libraries) is out of the model under the new identity.
    let named = marker.to_str().unwrap();
    assert!(
        f.iter()
            .any(|e| e["event"]["process"] == "prog" && pathname_of(e) != named),
        "no forensic event of the replaced program before its own deed: {f:?}"
    );
    assert!(!marker.exists(), "the replaced program wrote its marker");
}

/// A job left running by a process that then exits (a detached helper): it blocks on a FIFO
/// until its parent is gone, so it outlives it in every run.
const DETACHED: &str = r#"f=$(mktemp -u -p "$PWD" go.XXXXXX)
mkfifo "$f"
sh -c '( read -r x < "$1" ) &' sh "$f"
echo go > "$f"
rm "$f"
"#;

/// Learning says when a run had processes that outlived the process that started them (git's
/// detached auto-maintenance, a daemon): what they do races the rest of the workload.
#[test]
fn learning_warns_of_processes_that_outlived_their_parent() {
    let w = Workload::new("detached", DETACHED);
    let m = w.model.to_str().unwrap();
    let o = w.tsem(
        &["learn", "--runs", "2", "-o", m, "--", "sh", "run.sh"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("tsem: learn: run 1: 1 process outlived the process that started it"),
        "{err}"
    );
    let o = w.tsem(&["run", "--learn", "-o", m, "--", "sh", "run.sh"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tsem: 1 process outlived the process that started it"),
        "{}",
        stderr(&o)
    );
    // A workload that waits for what it starts gets no warning.
    std::fs::write(w.dir.join("run.sh"), "( cat run.sh > /dev/null ) &\nwait\n").unwrap();
    let o = w.tsem(&["run", "--learn", "-o", m, "--", "sh", "run.sh"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("outlived"), "{}", stderr(&o));
}
