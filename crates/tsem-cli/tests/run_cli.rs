//! `tsem run` end to end: learn a real multi-process build, enforce it repeatedly with the same
//! state, an adversarial suite in enforce and seal mode, and bad use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Output, Stdio};

use common::{compile, events, pathname_of, run_in, sample_build_tree, stderr, summary, tsem};

const BUILD: &str = "sort words.txt | uniq -c | wc -l > /dev/null && make -s -j2 && ./hello";

#[test]
fn learned_build_enforces_ten_times_with_the_same_state() {
    let d = common::scratch("run", "build");
    let src = d.join("src");
    sample_build_tree(&src);
    let model = d.join("build.model");
    let s0 = d.join("learn.json");
    let o = run_in(
        &src,
        &[
            "run",
            "-o",
            model.to_str().unwrap(),
            "--summary-json",
            s0.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            BUILD,
        ],
    );
    assert!(o.status.success(), "learn failed: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "5\n");
    let learned = summary(&s0);
    for k in [
        "events",
        "points",
        "forensics_events",
        "denied",
        "lost_events",
        "state",
        "measurement",
        "digest",
    ] {
        assert!(!learned[k].is_null(), "summary lacks {k}");
    }
    assert_eq!(learned["lost_events"], 0);
    assert!(learned["events"].as_u64().unwrap() > 100);
    assert!(
        learned["sensor"]["execs"].as_u64().unwrap() >= 8,
        "sh, sort, uniq, wc, make, gcc, cc1, as, ld..."
    );
    for i in 0..10 {
        sample_build_tree(&src);
        let s = d.join(format!("enforce{i}.json"));
        let f = d.join(format!("forensics{i}.json"));
        let o = run_in(
            &src,
            &[
                "run",
                "--enforce",
                "--model",
                model.to_str().unwrap(),
                "--summary-json",
                s.to_str().unwrap(),
                "--forensics",
                f.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                BUILD,
            ],
        );
        let v = summary(&s);
        assert!(
            o.status.success(),
            "run {i}: {} forensics: {:?}",
            stderr(&o),
            events(&f)
        );
        assert_eq!(v["forensics_events"], 0, "run {i}: {:?}", events(&f));
        assert_eq!(v["denied"], 0);
        assert_eq!(v["lost_events"], 0);
        assert_eq!(v["state"], learned["state"], "run {i}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

const PROBE_C: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static char buf[4096];
static const char *pa, *pb;
static volatile int stop;
static void *flip(void *x) {
    (void)x;
    for (unsigned long i = 0; !stop; i++) strcpy(buf, (i & 1) ? pa : pb);
    return 0;
}
int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "connect")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons(atoi(argv[2]));
        a.sin_addr.s_addr = htonl(0x7f000001);
        if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return 100 + errno;
        return 0;
    }
    if (argc == 4 && (!strcmp(argv[1], "swap") || !strcmp(argv[1], "noswap"))) {
        pa = argv[2];
        pb = argv[3];
        strcpy(buf, pa);
        pthread_t t;
        int swap = !strcmp(argv[1], "swap");
        if (swap) pthread_create(&t, 0, flip, 0);
        int leaked = 0;
        for (int i = 0; i < 2000; i++) {
            int fd = open(buf, O_RDONLY);
            if (fd < 0) continue;
            char b[16] = {0};
            if (read(fd, b, 6) == 6 && !memcmp(b, "SECRET", 6)) leaked = 1;
            close(fd);
        }
        stop = 1;
        if (swap) pthread_join(t, 0);
        return leaked ? 50 : 0;
    }
    return 2;
}
"#;

const CASES_SH: &str = r#"
cat allowed.txt > /dev/null || exit 2
cat conf.txt > /dev/null || exit 3
./tool; r=$?; [ $r -eq 126 ] && exit 3
./probe connect "$PORT" || exit 2
true > outdir/x || exit 2
rm -f outdir/x
chmod 644 conf.txt || exit 2
./probe noswap allowed.txt secret.txt || exit 2
case "$1" in
  read) cat secret.txt > /dev/null || exit 3 ;;
  exec) ./evil || exit 3 ;;
  connect) ./probe connect "$PORT2"; r=$?; [ $r -eq 101 ] && exit 3; exit $r ;;
  signal) kill -0 $PPID || exit 3 ;;
  create) true > newdir/x || exit 3 ;;
  chmod) chmod 600 allowed.txt || exit 3 ;;
  swap) ./probe swap allowed.txt secret.txt; exit $? ;;
esac
exit 0
"#;

struct Fixture {
    dir: PathBuf,
    model: PathBuf,
    port: u16,
    port2: u16,
    _listeners: (std::net::TcpListener, std::net::TcpListener),
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = common::scratch("run", name);
        std::fs::write(dir.join("allowed.txt"), "PUBLIC\n").unwrap();
        std::fs::write(dir.join("secret.txt"), "SECRET\n").unwrap();
        std::fs::write(dir.join("conf.txt"), "level=1\n").unwrap();
        std::fs::write(dir.join("cases.sh"), CASES_SH).unwrap();
        std::fs::copy("/bin/true", dir.join("tool")).unwrap();
        std::fs::copy("/bin/true", dir.join("evil")).unwrap();
        std::fs::create_dir(dir.join("outdir")).unwrap();
        std::fs::create_dir(dir.join("newdir")).unwrap();
        std::fs::write(dir.join("probe.c"), PROBE_C).unwrap();
        compile(&dir, "probe.c", "probe", &["-pthread"]);
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (port, port2) = (
            l1.local_addr().unwrap().port(),
            l2.local_addr().unwrap().port(),
        );
        let model = dir.join("cases.model");
        let f = Fixture {
            dir,
            model,
            port,
            port2,
            _listeners: (l1, l2),
        };
        let o = f.run(&["-o", f.model.to_str().unwrap()], "none", "learn");
        assert!(o.status.success(), "learning: {}", stderr(&o));
        f
    }

    fn run(&self, extra: &[&str], case: &str, tag: &str) -> Output {
        let s = self.dir.join(format!("{tag}.summary.json"));
        let fo = self.dir.join(format!("{tag}.forensics.json"));
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--summary-json",
            s.to_str().unwrap(),
            "--forensics",
            fo.to_str().unwrap(),
            "--",
            "sh",
            "cases.sh",
            case,
        ]);
        tsem()
            .args(&args)
            .current_dir(&self.dir)
            .env("PORT", self.port.to_string())
            .env("PORT2", self.port2.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn enforce(&self, case: &str) -> (Output, serde_json::Value, Vec<serde_json::Value>) {
        let o = self.run(
            &["--enforce", "--model", self.model.to_str().unwrap()],
            case,
            case,
        );
        let s = summary(&self.dir.join(format!("{case}.summary.json")));
        let f = events(&self.dir.join(format!("{case}.forensics.json")));
        (o, s, f)
    }
}

fn has(f: &[serde_json::Value], ty: &str, path_part: &str) -> bool {
    f.iter()
        .any(|e| e["event"]["type"] == ty && pathname_of(e).contains(path_part))
}

#[test]
fn adversarial_cases_are_denied_with_eperm_and_named_in_forensics() {
    let fx = Fixture::new("adv");
    // The baseline itself is in the model.
    let (o, s, f) = fx.enforce("none");
    assert!(o.status.success(), "baseline: {} {f:?}", stderr(&o));
    assert_eq!(s["forensics_events"], 0, "{f:?}");

    let (o, s, f) = fx.enforce("read");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("Operation not permitted"));
    assert!(has(&f, "file_open", "/secret.txt"), "{f:?}");
    assert!(s["denied"].as_u64().unwrap() >= 1);

    let (o, _, f) = fx.enforce("exec");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(has(&f, "file_open", "/evil"), "{f:?}");

    let (o, _, f) = fx.enforce("connect");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        f.iter().any(|e| e["event"]["type"] == "socket_connect"),
        "{f:?}"
    );

    let (o, _, f) = fx.enforce("signal");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(f.iter().any(|e| e["event"]["type"] == "task_kill"), "{f:?}");

    let (o, _, f) = fx.enforce("create");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(has(&f, "inode_create", "/newdir/"), "{f:?}");
    assert!(!fx.dir.join("newdir/x").exists());

    let (o, _, f) = fx.enforce("chmod");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(has(&f, "inode_setattr", "/allowed.txt"), "{f:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(fx.dir.join("allowed.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );

    let (o, _, f) = fx.enforce("swap");
    assert_eq!(
        o.status.code(),
        Some(0),
        "the workload read the denied file: {}",
        stderr(&o)
    );
    assert!(
        f.iter()
            .all(|e| e["event"]["type"] != "file_open" || pathname_of(e).ends_with("/secret.txt")),
        "{f:?}"
    );

    // The same path with other contents: a swapped binary and a changed configuration file.
    std::fs::copy("/bin/false", fx.dir.join("tool")).unwrap();
    let (o, _, f) = fx.enforce("none");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(has(&f, "file_open", "/tool"), "{f:?}");
    std::fs::copy("/bin/true", fx.dir.join("tool")).unwrap();
    std::fs::write(fx.dir.join("conf.txt"), "level=9\n").unwrap();
    let (o, _, f) = fx.enforce("none");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(has(&f, "file_open", "/conf.txt"), "{f:?}");
    std::fs::write(fx.dir.join("conf.txt"), "level=1\n").unwrap();
    std::fs::remove_dir_all(&fx.dir).unwrap();
}

#[test]
fn seal_reports_the_same_forensics_and_lets_the_workload_finish() {
    let fx = Fixture::new("seal");
    for case in ["read", "exec", "create", "chmod"] {
        let o = fx.run(
            &["--seal", "--model", fx.model.to_str().unwrap()],
            case,
            case,
        );
        assert_eq!(o.status.code(), Some(0), "{case}: {}", stderr(&o));
        let s = summary(&fx.dir.join(format!("{case}.summary.json")));
        let f = events(&fx.dir.join(format!("{case}.forensics.json")));
        assert!(s["forensics_events"].as_u64().unwrap() >= 1, "{case}");
        assert_eq!(s["denied"], 0);
        let want = match case {
            "read" => ("file_open", "/secret.txt"),
            "exec" => ("file_open", "/evil"),
            "create" => ("inode_create", "/newdir/"),
            _ => ("inode_setattr", "/allowed.txt"),
        };
        assert!(has(&f, want.0, want.1), "{case}: {f:?}");
        let _ = std::fs::remove_file(fx.dir.join("newdir/x"));
        std::fs::set_permissions(
            fx.dir.join("allowed.txt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    std::fs::remove_dir_all(&fx.dir).unwrap();
}

#[test]
fn bad_use_gets_a_clear_message_and_a_nonzero_exit() {
    let d = common::scratch("run", "bad");
    let o = run_in(
        &d,
        &["run", "--enforce", "--model", "missing.model", "--", "true"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.model"), "{}", stderr(&o));

    std::fs::write(d.join("corrupt.model"), "state nothex\nend\n").unwrap();
    let o = run_in(
        &d,
        &["run", "--enforce", "--model", "corrupt.model", "--", "true"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("corrupt.model"), "{}", stderr(&o));

    let o = run_in(&d, &["run", "--", "tsem-no-such-command-xyz"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("command not found: tsem-no-such-command-xyz"),
        "{}",
        stderr(&o)
    );

    let o = run_in(&d, &["run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no command"), "{}", stderr(&o));

    let o = run_in(&d, &["run", "--enforce", "--", "true"]);
    assert!(!o.status.success(), "--enforce needs --model");

    // The benchmark-only mode enforces nothing, so it refuses a model.
    let o = run_in(
        &d,
        &[
            "run",
            "--mechanism-only",
            "--enforce",
            "--model",
            "m.model",
            "--",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));

    let o = run_in(&d, &["run", "--observe", "getattr,stat", "--", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown event class \"stat\""),
        "{}",
        stderr(&o)
    );

    // A digest cache others may write is refused, not trusted.
    let open_dir = d.join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(
        &open_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let store = open_dir.join("digests");
    let o = run_in(
        &d,
        &[
            "run",
            "--digest-cache",
            store.to_str().unwrap(),
            "--",
            "true",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refusing to trust it"),
        "{}",
        stderr(&o)
    );

    // The workload's exit status is tsem's.
    let o = run_in(&d, &["run", "--", "sh", "-c", "exit 17"]);
    assert_eq!(o.status.code(), Some(17));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_digest_cache_across_runs_does_not_change_the_state() {
    let d = common::scratch("run", "dcache");
    let cache = d.join("cache").join("digests");
    let mut states = Vec::new();
    for (i, with_cache) in [false, true, true].into_iter().enumerate() {
        let s = d.join(format!("s{i}.json"));
        let mut args = vec!["run", "--summary-json", s.to_str().unwrap()];
        if with_cache {
            args.extend_from_slice(&["--digest-cache", cache.to_str().unwrap()]);
        } else {
            args.push("--no-digest-cache");
        }
        args.extend_from_slice(&["--", "sh", "-c", "cat /etc/hostname > /dev/null"]);
        let o = run_in(&d, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        states.push(summary(&s)["state"].clone());
    }
    let kept = tsem_sensor::digest_cache::Store::open(&cache, tsem_core::HashAlg::Sha256)
        .unwrap()
        .entries();
    assert!(kept.len() > 3, "{kept:?}");
    // The summary names the store used, and null without one.
    assert_eq!(
        summary(&d.join("s0.json"))["digest_cache"],
        serde_json::Value::Null
    );
    assert_eq!(
        summary(&d.join("s1.json"))["digest_cache"],
        serde_json::json!(cache.to_str().unwrap())
    );
    assert_eq!(states[0], states[1]);
    assert_eq!(states[1], states[2]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// The sensor's caches (digests across runs and within one, a task's descriptors, the
/// description reused for an mmap) never answer for a file that changed: a file rewritten
/// between two opens of one enforced run, with its size kept and its mtime put back so that only
/// its ctime moves, is described with its new digest and the second open is denied. Judged by the
/// effect: the new contents never reach the workload's output.
#[test]
fn a_file_rewritten_between_two_opens_is_described_anew_and_denied() {
    use std::io::Write as _;
    let d = common::scratch("run", "rewritten");
    let data = d.join("data.txt");
    std::fs::write(&data, "AAAA-known\n").unwrap();
    let fifo = d.join("sync.fifo");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
    let cache = d.join("cache").join("digests");
    let model = d.join("data.model");
    // Relative and absolute: an absolute path is described from the names table on its
    // second open (notify/names.rs), a relative one by readlink.
    let abs = std::fs::canonicalize(&data).unwrap();
    let script = format!(
        "cat data.txt; cat '{a}'; read x < sync.fifo; cat data.txt; cat '{a}'",
        a = abs.display()
    );
    let script = script.as_str();
    let start = |extra: &[&str]| {
        let mut args = vec!["run", "--digest-cache", cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        tsem()
            .args(&args)
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Between the two opens: `change` runs while the workload waits on the FIFO.
    let release = |change: &dyn Fn()| {
        // Non-blocking, so that a workload that never reaches the FIFO fails the test
        // instead of hanging it (ENXIO until the reader opens it).
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut tries = 0;
        let mut w = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(w) => break w,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) && tries < 6000 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("the workload never waited on the FIFO: {e}"),
            }
        };
        change();
        w.write_all(b"go\n").unwrap();
    };
    let learn = start(&["-o", model.to_str().unwrap()]);
    release(&|| {});
    let o = learn.wait_with_output().unwrap();
    assert!(o.status.success(), "learning: {}", stderr(&o));
    let m = model.to_str().unwrap();
    // Unchanged, the enforced run reads the file twice: the model holds both opens.
    let same = start(&["--enforce", "--model", m]);
    release(&|| {});
    let o = same.wait_with_output().unwrap();
    assert!(o.status.success(), "unchanged: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "AAAA-known\n".repeat(4));
    let fo = d.join("forensics.json");
    let changed = start(&[
        "--enforce",
        "--model",
        m,
        "--forensics",
        fo.to_str().unwrap(),
    ]);
    release(&|| {
        let before = std::fs::metadata(&data).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"BBBB-evil!\n", 0).unwrap();
        f.set_modified(before).unwrap();
    });
    let o = changed.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "the second open was allowed: {out}");
    assert_eq!(
        out,
        "AAAA-known\n".repeat(2),
        "the rewritten contents were read"
    );
    let f = events(&fo);
    assert!(
        f.iter()
            .any(|e| e["event"]["type"] == "file_open" && pathname_of(e).ends_with("data.txt")),
        "forensics do not name the rewritten file: {f:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// The benchmarks' floor of emulation (`--mechanism-only=emulate`) performs the opens itself and
/// hands them back, as enforcing does, and models nothing; the floor of interception
/// (`--mechanism-only`) continues them. Judged by the effect (the bytes read and written) and
/// by the counters: opens emulated in one, none in the other, no event in either.
#[test]
fn the_emulation_floor_performs_opens_and_models_nothing() {
    let d = common::scratch("run", "floor");
    std::fs::write(d.join("in.txt"), "floor-bytes\n").unwrap();
    let script = "cat in.txt; echo made > out.txt; cat out.txt";
    for (floor, emulates) in [
        ("--mechanism-only=emulate", true),
        ("--mechanism-only", false),
    ] {
        let _ = std::fs::remove_file(d.join("out.txt"));
        let s = d.join("s.json");
        let o = run_in(
            &d,
            &[
                "run",
                floor,
                "--no-digest-cache",
                "--summary-json",
                s.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                script,
            ],
        );
        assert!(o.status.success(), "{floor}: {}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "floor-bytes\nmade\n");
        let s = summary(&s);
        let emulated = s["sensor"]["emulated"].as_u64().unwrap();
        // sh, cat and cat: each opens its libraries, the input and the output file.
        if emulates {
            assert!(emulated >= 6, "{floor}: {emulated} opens emulated");
        } else {
            assert_eq!(emulated, 0, "{floor}");
        }
        assert_eq!(s["sensor"]["events"], 0, "{floor} modeled something");
        assert_eq!(s["events"], 0, "{floor} modeled something");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Learn `script` (run in `cwd`, which waits on `dir`/sync.fifo between its opens) unchanged,
/// then enforce it with `change` made while it waits: its output, whether it succeeded, and
/// its forensic events.
fn enforced_around(
    dir: &std::path::Path,
    cwd: &std::path::Path,
    script: &str,
    change: &dyn Fn(),
    undo: &dyn Fn(),
) -> (String, bool, Vec<serde_json::Value>) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fifo = dir.join("sync.fifo");
    if !fifo.exists() {
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let model = dir.join("around.model");
    let fo = dir.join("around-forensics.json");
    let _ = std::fs::remove_file(&fo);
    let start = |extra: &[&str]| {
        let mut args = vec!["run", "--no-digest-cache"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        tsem()
            .args(&args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let release = |change: &dyn Fn()| {
        let mut tries = 0;
        let mut w = loop {
            // Non-blocking: a workload that never reaches the FIFO fails the test.
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(w) => break w,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) && tries < 6000 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("the workload never waited on the FIFO: {e}"),
            }
        };
        change();
        w.write_all(b"go\n").unwrap();
    };
    let learn = start(&["-o", model.to_str().unwrap()]);
    release(&|| {});
    let o = learn.wait_with_output().unwrap();
    assert!(o.status.success(), "learning: {}", stderr(&o));
    let m = model.to_str().unwrap();
    let run = start(&[
        "--enforce",
        "--model",
        m,
        "--forensics",
        fo.to_str().unwrap(),
    ]);
    release(change);
    let o = run.wait_with_output().unwrap();
    undo();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (out, o.status.success(), events(&fo))
}

/// The pathname of an open is the object's path when it is opened, never a remembered one: the
/// same inode reached by the same path string after (1) its parent directory was renamed (a
/// relative open from inside it) or (2) a symlink was swapped in for a directory of an absolute
/// path (the names table knows that path from the first open: its entry must not answer) is
/// described by its new path, and denied under a model learned without the change. Judged by
/// the effect: the file's bytes are read once, not twice.
#[test]
fn a_renamed_parent_or_a_symlinked_component_is_described_by_the_new_path_and_denied() {
    let d = std::fs::canonicalize(common::scratch("run", "renamed")).unwrap();
    let (a, b, x) = (d.join("a"), d.join("b"), d.join("x"));
    std::fs::create_dir(&a).unwrap();
    std::fs::write(a.join("f.txt"), "same-inode\n").unwrap();
    let denied_with = |f: &[serde_json::Value], tail: &str| {
        f.iter()
            .any(|e| e["event"]["type"] == "file_open" && pathname_of(e).ends_with(tail))
    };
    // (1) The parent renamed by someone else while the task, inside it, waits.
    let (out, ok, f) = enforced_around(
        &d,
        &a,
        "cat f.txt; read x < ../sync.fifo; cat f.txt",
        &|| std::fs::rename(&a, &b).unwrap(),
        &|| std::fs::rename(&b, &a).unwrap(),
    );
    assert_eq!(out, "same-inode\n", "read through the renamed parent");
    assert!(!ok);
    assert!(
        denied_with(&f, "/b/f.txt"),
        "not described by its new path: {f:?}"
    );
    // (2) The same absolute path, its directory now a symlink to where it went.
    let path = a.join("f.txt");
    let script = format!(
        "cat '{p}'; read x < sync.fifo; cat '{p}'",
        p = path.display()
    );
    let (out, ok, f) = enforced_around(
        &d,
        &d,
        &script,
        &|| {
            std::fs::rename(&a, &x).unwrap();
            std::os::unix::fs::symlink("x", &a).unwrap();
        },
        &|| {
            std::fs::remove_file(&a).unwrap();
            std::fs::rename(&x, &a).unwrap();
        },
    );
    assert_eq!(out, "same-inode\n", "read through the swapped-in symlink");
    assert!(!ok);
    assert!(
        denied_with(&f, "/x/f.txt"),
        "not described by its new path: {f:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
