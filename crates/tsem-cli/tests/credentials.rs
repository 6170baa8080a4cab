//! The supervisor performs opens, creates and renames for tasks whose credentials are not its
//! own by wearing theirs (a root `tsem run` of a workload that drops privileges): each case runs
//! bare, then learned and enforced under tsem, and its outcome (what it printed, its exit
//! status, the files it made and who owns them) must be the bare one, with no call refused as
//! `unfaithful`. Root only: as another user the test prints one line and passes (an unprivileged
//! supervisor cannot wear other ids, and its workload cannot take them either).
//!
//! The workloads run with address randomization on: setpriv and nginx probe the capability
//! bounding set with `prctl` calls whose unused arguments are whatever their registers held
//! (addresses in their libraries, other in every run). The learned models carry the naming rule
//! `prctl-args-v1`, which leaves those arguments out, so one learned run covers the next.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{s, scratch, summary, tsem};

/// Whether the test can run (root); else one line says why.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: wearing a workload's credentials needs a root supervisor");
    }
    root
}

/// A workload: a shell script in a directory of its own, and a reset of what it writes.
struct Case {
    dir: PathBuf,
    script: PathBuf,
}

/// What a run did, as its user sees it.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn of(o: &Output) -> Self {
        Self {
            status: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            // The workload's own words: not tsem's advice after a learning run (files it left,
            // processes that outlived their parent).
            stderr: String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| {
                    !(l.starts_with("tsem: ")
                        && (l.contains(" this run created ") || l.contains(" outlived ")))
                })
                .map(|l| format!("{l}\n"))
                .collect(),
        }
    }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Case {
    fn new(name: &str, script: &str) -> Self {
        let dir = scratch("credentials", name);
        chmod(&dir, 0o755);
        let path = dir.join("run.sh");
        std::fs::write(&path, script.replace("$D", s(&dir))).unwrap();
        Self { dir, script: path }
    }

    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// A file with `text`, owner, group and mode.
    fn file(&self, name: &str, text: &str, uid: u32, gid: u32, mode: u32) {
        let p = self.p(name);
        std::fs::write(&p, text).unwrap();
        chown(&p, uid, gid);
        chmod(&p, mode);
    }

    /// An empty directory `name` owned by `uid`, emptied before every run.
    fn owned_dir(&self, name: &str, uid: u32) {
        let p = self.p(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        chown(&p, uid, uid);
        chmod(&p, 0o755);
    }

    fn command(&self, tsem_args: Option<&[&str]>) -> Command {
        let mut c = match tsem_args {
            None => Command::new("sh"),
            Some(args) => {
                let mut c = tsem();
                c.args(["run", "--no-digest-cache"])
                    .args(args)
                    .args(["--", "sh"]);
                c
            }
        };
        c.arg(s(&self.script))
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null());
        c
    }

    fn bare(&self) -> Outcome {
        Outcome::of(&self.command(None).output().unwrap())
    }

    /// One run under tsem with `args`; its outcome and summary.
    fn supervised(&self, tag: &str, args: &[&str]) -> (Outcome, serde_json::Value) {
        let sum = self.p(&format!("{tag}.summary.json"));
        let mut all = args.to_vec();
        all.extend(["--summary-json", s(&sum)]);
        let o = self.command(Some(&all)).output().unwrap();
        (Outcome::of(&o), summary(&sum))
    }

    /// Bare, learned, then enforced twice: every supervised outcome is the bare one, nothing is
    /// refused as unfaithful, and the enforced runs stay in the model. `reset` runs before each
    /// run, `check` after each (the effects on files).
    fn faithful(&self, reset: impl Fn(), check: impl Fn(&str)) -> Outcome {
        reset();
        let bare = self.bare();
        check("bare");
        let model = self.p("model");
        reset();
        let (learned, sum) = self.supervised("learn", &["-o", s(&model)]);
        assert_eq!(learned, bare, "learning: not the bare outcome");
        assert_eq!(sum["sensor"]["unfaithful"], 0, "learning: {sum}");
        assert!(sum["sensor"]["emulated"].as_u64().unwrap() > 0, "{sum}");
        check("learn");
        for i in 0..2 {
            reset();
            let forensics = self.p(&format!("enforce{i}.forensics"));
            let (enforced, sum) = self.supervised(
                &format!("enforce{i}"),
                &[
                    "--model",
                    s(&model),
                    "--enforce",
                    "--forensics",
                    s(&forensics),
                ],
            );
            assert_eq!(enforced, bare, "enforced run {i}: not the bare outcome");
            assert_eq!(sum["sensor"]["unfaithful"], 0, "enforced run {i}: {sum}");
            assert_eq!(sum["forensics_events"], 0, "enforced run {i}: {sum}");
            assert_eq!(sum["denied"], 0, "enforced run {i}: {sum}");
            assert_eq!(sum["lost_events"], 0, "enforced run {i}: {sum}");
            check(&format!("enforce{i}"));
        }
        bare
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const NOBODY: u32 = 65534;

#[test]
fn a_workload_that_drops_to_nobody_reads_writes_and_is_refused_as_nobody() {
    if !privileged() {
        return;
    }
    let case = Case::new(
        "nobody",
        "setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c '\
         cat $D/nobody.txt; \
         echo made > $D/own/new.txt && mv $D/own/new.txt $D/own/renamed.txt && mkdir $D/own/sub; \
         cat $D/root.txt; echo end'\n",
    );
    case.file("nobody.txt", "nobody's own words\n", NOBODY, NOBODY, 0o600);
    case.file("root.txt", "root's own words\n", 0, 0, 0o600);
    let bare = case.faithful(
        || case.owned_dir("own", NOBODY),
        |run| {
            // Ownership is the effect of the fsuid the creating thread wore.
            let renamed = case.p("own/renamed.txt");
            assert_eq!(
                std::fs::read_to_string(&renamed).unwrap(),
                "made\n",
                "{run}"
            );
            assert_eq!(std::fs::metadata(&renamed).unwrap().uid(), NOBODY, "{run}");
            assert_eq!(std::fs::metadata(&renamed).unwrap().gid(), NOBODY, "{run}");
            assert!(!case.p("own/new.txt").exists(), "{run}: not renamed");
            assert_eq!(
                std::fs::metadata(case.p("own/sub")).unwrap().uid(),
                NOBODY,
                "{run}"
            );
        },
    );
    // What the bare run (and so every supervised one) did: nobody's file read, root's refused
    // by the kernel's own check.
    assert_eq!(bare.stdout, "nobody's own words\nend\n");
    assert!(
        bare.stderr.contains("root.txt: Permission denied"),
        "{bare:?}"
    );
    assert!(!bare.stdout.contains("root's own words"));
}

#[test]
fn a_supplementary_group_reads_what_only_the_group_may() {
    if !privileged() {
        return;
    }
    let case = Case::new(
        "group",
        "setpriv --reuid=65534 --regid=65534 --groups=4242 -- cat $D/group.txt\n\
         setpriv --reuid=65534 --regid=65534 --clear-groups -- cat $D/group.txt\n\
         echo end\n",
    );
    case.file("group.txt", "the group's words\n", 0, 4242, 0o640);
    let bare = case.faithful(|| {}, |_| {});
    assert_eq!(bare.stdout, "the group's words\nend\n");
    assert_eq!(
        bare.stderr.matches("group.txt: Permission denied").count(),
        1,
        "{bare:?}"
    );
}

#[test]
fn root_without_dac_capabilities_is_refused_another_users_file() {
    if !privileged() {
        return;
    }
    let case = Case::new(
        "caps",
        "cat $D/other.txt\n\
         setpriv --inh-caps=-all --bounding-set=-dac_override,-dac_read_search -- \
         sh -c 'cat $D/other.txt; cat $D/public.txt; echo made > $D/made.txt'\n\
         echo end\n",
    );
    case.file("other.txt", "user 1000's words\n", 1000, 1000, 0o600);
    case.file("public.txt", "everyone's words\n", 1000, 1000, 0o644);
    let bare = case.faithful(
        || {
            let _ = std::fs::remove_file(case.p("made.txt"));
        },
        |run| {
            let m = std::fs::metadata(case.p("made.txt")).unwrap();
            assert_eq!((m.uid(), m.gid()), (0, 0), "{run}");
        },
    );
    // Full root reads it; root without the two capabilities does not, but reads the public file.
    assert_eq!(
        bare.stdout, "user 1000's words\neveryone's words\nend\n",
        "{bare:?}"
    );
    assert_eq!(
        bare.stderr.matches("other.txt: Permission denied").count(),
        1,
        "{bare:?}"
    );
}

#[test]
fn a_file_the_caller_may_only_write_is_described_with_its_contents_digest() {
    if !privileged() {
        return;
    }
    // The kernel hashes what a file holds at security_file_open whatever its opener may read:
    // the supervisor reads it for the digest with its own capabilities, not the worn ones.
    let case = Case::new(
        "writeonly",
        "setpriv --reuid=65534 --regid=65534 --clear-groups -- \
         sh -c 'echo x | dd of=$D/wo.txt conv=notrunc,nocreat status=none'\n",
    );
    case.file("wo.txt", "hello\n", NOBODY, NOBODY, 0o200);
    // A sealed run against the model of another workload: every event is a forensic one and
    // its description is kept in full (learning would make the written path a pseudonym).
    let other = case.p("other.model");
    let o = tsem()
        .args(["run", "--learn", "-o", s(&other), "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let forensics = case.p("forensics.json");
    let (_, sum) = case.supervised(
        "seal",
        &["--seal", "--model", s(&other), "--forensics", s(&forensics)],
    );
    assert_eq!(sum["sensor"]["unfaithful"], 0, "{sum}");
    assert_eq!(
        std::fs::read_to_string(case.p("wo.txt")).unwrap(),
        "x\nllo\n"
    );
    let text = std::fs::read_to_string(&forensics).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("wo.txt") && l.contains("file_open"))
        .unwrap_or_else(|| panic!("no file_open of wo.txt: {text}"));
    let hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    assert!(
        line.contains(hello),
        "not the digest of its contents: {line}"
    );
}

/// The nginx binary, or None (the test is skipped) when it is not installed.
fn nginx() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var_os("TSEM_REQUIRE_NGINX").is_some() {
            panic!("nginx is not installed and TSEM_REQUIRE_NGINX is set");
        }
        eprintln!("skipped: nginx not installed (Debian package nginx-light)");
    }
    found
}

/// GET `path` from 127.0.0.1:`port`: the status and body, or None when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    c.write_all(format!("GET /{path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .ok()?;
    let mut resp = String::new();
    c.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    Some((status, body))
}

/// The uids of the processes whose parent is `pid`.
fn children_uids(pid: i32) -> Vec<u32> {
    let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
        return Vec::new();
    };
    list.split_whitespace()
        .filter_map(|c| std::fs::metadata(format!("/proc/{c}")).ok())
        .map(|m| m.uid())
        .collect()
}

#[test]
fn nginx_whose_workers_run_as_nobody_is_learned_and_enforced() {
    if !privileged() {
        return;
    }
    let Some(nginx) = nginx() else { return };
    let case = Case::new("nginx", "");
    let port = tsem_testdata::port::unused_tcp_port();
    const PAGES: [(&str, &str); 2] = [
        ("index.html", "the index page\n"),
        ("other.html", "another page\n"),
    ];
    std::fs::create_dir(case.p("www")).unwrap();
    chmod(&case.p("www"), 0o755);
    for (page, text) in PAGES {
        case.file(&format!("www/{page}"), text, 0, 0, 0o644);
    }
    // A root master that reads the configuration and opens the logs, and one worker that
    // drops to nobody and serves (opens the pages, accepts, writes temporary files).
    let conf = format!(
        "daemon off;\nuser nobody nogroup;\nworker_processes 1;\npid nginx.pid;\n\
         error_log error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path tmp;\nproxy_temp_path tmp;\n\
         fastcgi_temp_path tmp;\nuwsgi_temp_path tmp;\nscgi_temp_path tmp;\n\
         server {{ listen 127.0.0.1:{port}; root www; }}\n}}\n"
    );
    std::fs::write(case.p("nginx.conf"), conf).unwrap();
    let prefix = format!("{}/", case.dir.display());
    let model = case.p("model");
    // Learned from a first start (the logs are created), then two more (they exist); then
    // enforced twice.
    let learn_first = vec!["-o", s(&model)];
    let learn_more = vec!["--learn", "--model", s(&model), "-o", s(&model)];
    let enforce = vec!["--model", s(&model), "--enforce"];
    let runs = [&learn_first, &learn_more, &learn_more, &enforce, &enforce];
    for (i, args) in runs.into_iter().enumerate() {
        let sum = case.p(&format!("nginx{i}.json"));
        let forensics = case.p(&format!("nginx{i}.forensics"));
        // With address randomization on: the capability probe's unused prctl arguments are
        // addresses that move from run to run, which prctl-args-v1 leaves out of the model.
        let mut child = tsem()
            .args(["run", "--no-digest-cache"])
            .args(args)
            .args(["--summary-json", s(&sum), "--forensics", s(&forensics)])
            .arg("--")
            .arg(&nginx)
            .args(["-p", &prefix, "-c", s(&case.p("nginx.conf"))])
            .args(["-e", s(&case.p("error.log"))])
            .current_dir(&case.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A deadline for a server that never comes up, not a measurement.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while get(port, PAGES[0].0).is_none() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("run {i}: tsem ended ({st}) before nginx served");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {i}: never served"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for round in 0..3 {
            for (page, text) in PAGES {
                assert_eq!(
                    get(port, page),
                    Some((200, text.to_string())),
                    "run {i}, round {round}: {page}"
                );
            }
        }
        let master: i32 = std::fs::read_to_string(case.p("nginx.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            children_uids(master),
            vec![NOBODY],
            "run {i}: the worker does not run as nobody"
        );
        // SAFETY: kill has no memory preconditions.
        assert_eq!(unsafe { libc::kill(master, libc::SIGQUIT) }, 0);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {i}: {err}");
        let v = summary(&sum);
        assert_eq!(v["sensor"]["unfaithful"], 0, "run {i}: {v}");
        assert_eq!(v["forensics_events"], 0, "run {i}: {err}");
        assert_eq!(v["denied"], 0, "run {i}: {v}");
        assert_eq!(v["lost_events"], 0, "run {i}: {v}");
    }
}

/// Two threads open a root-only file again and again while the main thread drops the process
/// to nobody (glibc's `setresuid` makes every thread change its own credentials, each by its
/// own call). Once the drop has returned, no thread may open the file any more: the supervisor
/// must wear what each caller holds at its call, never credentials cached from before.
const DROP_RACE: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int dropped;
static const char *path;

static void *reader(void *out) {
    long after = 0;
    for (int i = 0; i < 400; i++) {
        int was = atomic_load(&dropped);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            after += was;
            close(fd);
        }
    }
    *(long *)out = after;
    return 0;
}

int main(int argc, char **argv) {
    path = argv[1];
    pthread_t t[2];
    long after[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], 0, reader, &after[i]);
    int fd = open(path, O_RDONLY);
    printf("before the drop: %s\n", fd >= 0 ? "opened" : strerror(errno));
    if (setgroups(0, 0) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) {
        perror("drop");
        return 2;
    }
    atomic_store(&dropped, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], 0);
    fd = open(path, O_RDONLY);
    printf("after the drop: %s\n", fd >= 0 ? "opened" : strerror(errno));
    printf("opened by the threads after the drop: %ld\n", after[0] + after[1]);
    return 0;
}
"#;

#[test]
fn no_thread_opens_as_root_after_the_process_dropped_to_nobody() {
    if !privileged() {
        return;
    }
    let case = Case::new("race", "");
    std::fs::write(case.p("race.c"), DROP_RACE).unwrap();
    common::compile(&case.dir, "race.c", "race", &["-pthread"]);
    case.file("root.txt", "root's own words\n", 0, 0, 0o600);
    let want = "before the drop: opened\nafter the drop: Permission denied\n\
                opened by the threads after the drop: 0\n";
    let run = |tsem_args: Option<&[&str]>| {
        let mut c = match tsem_args {
            None => Command::new(case.p("race")),
            Some(args) => {
                let mut c = tsem();
                c.args(["run", "--no-digest-cache"])
                    .args(args)
                    .arg("--")
                    .arg(case.p("race"));
                c
            }
        };
        let o = c.arg(case.p("root.txt")).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(run(None), want, "bare");
    for i in 0..3 {
        let sum = case.p(&format!("race{i}.json"));
        assert_eq!(
            run(Some(&["--learn", "--summary-json", s(&sum)])),
            want,
            "run {i}"
        );
        let v = summary(&sum);
        assert_eq!(v["sensor"]["unfaithful"], 0, "run {i}: {v}");
        assert!(
            v["sensor"]["emulated"].as_u64().unwrap() > 0,
            "run {i}: {v}"
        );
    }
}
