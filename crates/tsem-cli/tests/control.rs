//! `tsem run --name` / `tsem ctl` and `tsem console`, end to end on real workloads that wait on
//! FIFOs the test controls, so that what is asked mid-run is asked at a known point. Runs as
//! root and as nobody (scripts/test.sh); the socket directory is a private one under the test's
//! scratch directory (XDG_RUNTIME_DIR). The export tests are in `control_export`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control_common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use control_common::{WAITER, World, lines, read_json, replay, same_state, stderr};

#[test]
fn a_named_run_answers_while_it_runs_and_its_socket_goes_with_it() {
    let w = World::new("named");
    let fifo2 = w.mkfifo("fifo2");
    let mut run = w.start(
        &[
            "--name",
            "web",
            "--trajectory",
            "t.jsonl",
            "--summary-json",
            "s.json",
        ],
        &format!("{WAITER}; read y < fifo2"),
    );
    let fifo = w.wait_up("web", &mut run);
    let sock = w.rt.join("tsem/web.sock");
    let dm = std::fs::metadata(w.rt.join("tsem")).unwrap();
    assert_eq!(dm.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);

    let list = w.ctl_json(&["list", "--json"]);
    let runs = list[0].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["name"], "web");
    assert_eq!(runs[0]["pid"], run.id());
    assert_eq!(runs[0]["command"][0], "sh");

    // The workload is blocked on the FIFO: what ctl says is one consistent moment.
    let state = w.ctl_json(&["state", "web", "--json"]).remove(0);
    assert_eq!(state["mode"], "free");
    assert!(state["events"].as_u64().unwrap() > 0);
    let points = w.ctl_json(&["points", "web", "--json"]);
    assert_eq!(points.len() as u64, state["points"].as_u64().unwrap());
    assert!(points.iter().all(|p| p["valid"] == true));
    let traj = w.ctl(&["trajectory", "web", "--json"]);
    assert!(traj.status.success());
    std::fs::write(w.p("mid.jsonl"), &traj.stdout).unwrap();
    assert_eq!(lines(&traj.stdout).len(), points.len());
    // The descriptions so far replay to the state so far, bit for bit.
    same_state(&replay(None, &[&w.p("mid.jsonl")]), &state);
    // And the model so far holds exactly those points.
    let o = w.ctl(&["model", "web", "-o", "mid.model"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = std::fs::read_to_string(w.p("mid.model")).unwrap();
    assert_eq!(
        model.lines().filter(|l| l.starts_with("state ")).count(),
        points.len()
    );
    let r = replay(Some(&w.p("mid.model")), &[&w.p("mid.jsonl")]);
    assert_eq!(r["forensics_events"], 0);
    assert_eq!(r["model_state"], state["model_state"]);
    // Text forms name what happened.
    let text = String::from_utf8(w.ctl(&["trajectory", "web"]).stdout).unwrap();
    assert!(text.contains("/etc/hostname"), "{text}");

    // A follower gets what exists now before the workload goes on, then the rest as it comes.
    let mut follow = w
        .cmd()
        .args(["ctl", "trajectory", "web", "--json", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(out).split(b'\n') {
            if tx.send(l.unwrap()).is_err() {
                return;
            }
        }
    });
    // The timeout only guards against a hang: each line awaited here exists already.
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no line {what}"))
    };
    let mut got: Vec<Vec<u8>> = (0..points.len()).map(|_| next("of those so far")).collect();
    w.release(fifo);
    // The workload went on (`ls /`) and now waits on fifo2: the run is alive, and the follower
    // has the lines of what it did meanwhile, as they happened, not at the end.
    let fifo2 = w.wait_on("web", &fifo2, &mut run);
    let now = w.ctl_json(&["state", "web", "--json"]).remove(0);
    let total = now["points"].as_u64().unwrap() as usize;
    assert!(total > points.len(), "`ls /` made no new point: {now}");
    while got.len() < total {
        got.push(next("of the events after the release, while the run waits"));
    }
    assert!(run.try_wait().unwrap().is_none());
    let live = got.concat();
    assert!(
        String::from_utf8_lossy(&live).contains("\"ls\""),
        "the lines followed while the run waits do not show `ls`"
    );
    w.release(fifo2);
    let o = w.finish(run);
    reader.join().unwrap();
    assert!(follow.wait().unwrap().success());
    got.extend(rx.try_iter());
    let file = std::fs::read(w.p("t.jsonl")).unwrap();
    let followed: Vec<u8> = got
        .iter()
        .flat_map(|l| [l.as_slice(), b"\n"].concat())
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&followed),
        String::from_utf8_lossy(&file),
        "followed lines differ from the trajectory"
    );
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    // The run is over: its socket is gone and nothing is listed.
    assert!(!sock.exists());
    assert_eq!(w.ctl_json(&["list", "--json"])[0], serde_json::json!([]));
    let e = w.ctl(&["state", "web"]);
    assert!(!e.status.success());
    assert!(stderr(&e).contains("no running tsem named \"web\""));
    // The summary's keys include every key ctl state gives (the same object).
    let s = read_json(&w.p("s.json"));
    for k in state.as_object().unwrap().keys() {
        assert!(s.get(k).is_some(), "summary lacks {k}");
    }
}

#[test]
fn the_workload_is_refused_its_own_run_s_socket() {
    let w = World::new("self");
    let exe = env!("CARGO_BIN_EXE_tsem");
    let script = format!(
        "{exe} ctl state me --json > asked.out 2> asked.err; read x < fifo; \
         {exe} ctl model me -o stolen.model 2>> asked.err; true"
    );
    let mut run = w.start(&["--name", "me"], &script);
    let fifo = w.wait_up("me", &mut run);
    // While it waits, the owner is served.
    assert_eq!(w.ctl_json(&["state", "me", "--json"]).len(), 1);
    w.release(fifo);
    w.finish(run);
    assert_eq!(std::fs::read(w.p("asked.out")).unwrap(), b"");
    let err = std::fs::read_to_string(w.p("asked.err")).unwrap();
    assert_eq!(
        err.matches("is a task of the workload under this run")
            .count(),
        2,
        "{err}"
    );
    assert!(!w.p("stolen.model").exists());
}

#[test]
fn another_user_is_refused_by_the_directory_and_by_peer_credentials() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to act as a second user");
        return;
    }
    let w = World::new("other");
    let mut run = w.start(&["--name", "shared"], WAITER);
    let fifo = w.wait_up("shared", &mut run);
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_tsem"))
            .args(["ctl", "state", "shared", "--json"])
            .env("XDG_RUNTIME_DIR", &w.rt)
            .output()
            .unwrap()
    };
    // Everything on the way is root's alone: the file system refuses.
    let o = as_nobody();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // Opened up by mistake, the socket still refuses a peer of another uid.
    for (p, mode) in [
        (w.dir.clone(), 0o711),
        (w.rt.clone(), 0o711),
        (w.rt.join("tsem"), 0o711),
        (w.rt.join("tsem/shared.sock"), 0o666),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let o = as_nobody();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("uid 65534 is not the owner of this run"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
    w.release(fifo);
    w.finish(run);
}

#[test]
fn with_forensics_the_model_absorbs_exactly_the_sealed_run_s_forensics() {
    let w = World::new("forensics");
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "-o", "base.model", "--"])
        .args(["sh", "-c", "cat /etc/hostname > /dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let script = "cat /etc/hostname > /dev/null; cat /etc/passwd > /dev/null; read x < fifo";
    let mut run = w.start(
        &[
            "--name",
            "sealed",
            "--model",
            "base.model",
            "--forensics",
            "f.jsonl",
            "--on-forensic",
            "deny",
        ],
        script,
    );
    let fifo = w.wait_up("sealed", &mut run);
    let state = w.ctl_json(&["state", "sealed", "--json"]).remove(0);
    assert_eq!(state["mode"], "sealed");
    // The deviation policy is part of the live state (sealed: recorded, nothing refused).
    assert_eq!(state["on_forensic"], "deny");
    assert_eq!(
        (state["restarts"].as_u64(), state["denied"].as_u64()),
        (Some(0), Some(0))
    );
    let nf = state["forensics_points"].as_u64().unwrap();
    assert!(nf > 0);
    let f = w.ctl(&["forensics", "sealed", "--json"]);
    std::fs::write(w.p("mid-f.jsonl"), &f.stdout).unwrap();
    assert_eq!(lines(&f.stdout).len() as u64, nf);
    let pts = w.ctl_json(&["points", "sealed", "--json"]);
    assert_eq!(
        pts.iter().filter(|p| p["valid"] == false).count() as u64,
        nf
    );
    let o = w.ctl(&[
        "model",
        "sealed",
        "--with-forensics",
        "-o",
        "absorbed.model",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = w.ctl(&["model", "sealed", "-o", "plain.model"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let count = |p: &str| {
        std::fs::read_to_string(w.p(p))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("state "))
            .count() as u64
    };
    assert_eq!(count("plain.model"), count("base.model"));
    assert_eq!(count("absorbed.model"), count("base.model") + nf);
    // The forensics so far are in the absorbed model and in no other.
    let r = replay(Some(&w.p("absorbed.model")), &[&w.p("mid-f.jsonl")]);
    assert_eq!(r["forensics_events"], 0);
    let r = replay(Some(&w.p("plain.model")), &[&w.p("mid-f.jsonl")]);
    assert_eq!(r["forensics_points"], nf);
    // The absorbed model's state is the state the sealed run has so far.
    assert_eq!(r["state"], state["state"]);
    w.release(fifo);
    w.finish(run);
}

/// A tmux server of its own (socket under the test's directory) for one session `c`.
struct Tmux<'a> {
    w: &'a World,
}

impl Tmux<'_> {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        // tmux runs the command with $SHELL, else the user's login shell: for nobody that is
        // nologin, which would end the session before the console draws anything.
        c.env("TMUX_TMPDIR", &self.w.dir)
            .env("SHELL", "/bin/sh")
            .args(["-f", "/dev/null", "-L", "tsem-console-test"]);
        c
    }

    fn start(&self, cmd: &str) {
        let o = self
            .cmd()
            .args(["new-session", "-d", "-s", "c", "-x", "250", "-y", "50", cmd])
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // tmux daemonizes onto /dev/null: where that is not the device, it fails here.
        assert!(o.status.success(), "tmux: {}", stderr(&o));
    }

    fn capture(&self) -> String {
        let o = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "c"])
            .output()
            .unwrap();
        if o.status.success() {
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            format!("(no pane: {})", String::from_utf8_lossy(&o.stderr).trim())
        }
    }

    /// The screen once it shows every one of `all` (drawn within a few redraws; the bound only
    /// guards against a hang), or as it is then.
    fn screen_with(&self, all: &[&str]) -> String {
        let mut screen = String::new();
        for _ in 0..600 {
            screen = self.capture();
            if all.iter().all(|s| screen.contains(s)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        screen
    }

    fn gone(&self) -> bool {
        for _ in 0..600 {
            let alive = self
                .cmd()
                .args(["has-session", "-t", "c"])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if !alive {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// The console's line output, read on a thread as it comes.
struct ConsoleLines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ConsoleLines {
    fn new(out: std::process::ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                if tx.send(l.unwrap()).is_err() {
                    return;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Read until a line satisfies `done` (given the lines so far and its index); the timeout
    /// only guards against a hang.
    fn until(&mut self, what: &str, done: impl Fn(&[String], usize) -> bool) {
        loop {
            let l = self
                .rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {what} in: {:#?}", self.seen));
            self.seen.push(l);
            if done(&self.seen, self.seen.len() - 1) {
                return;
            }
        }
    }

    fn rest(&mut self) -> Vec<String> {
        self.seen.extend(self.rx.iter());
        self.seen.clone()
    }
}

/// Where the near miss (`data` opened for appending, learned only for reading) is among the
/// console's lines: its forensic line, then its nearest in-model event (the learned read of
/// the same file) and the field that differs.
fn near_miss_explained(l: &[String]) -> bool {
    (0..l.len()).any(|i| {
        l[i].starts_with("forensic: file_open process=sh ")
            && l[i].contains("/data digest=")
            && l.get(i + 1).is_some_and(|n| {
                n.starts_with("  nearest in-model: file_open process=sh ")
                    && n.contains("/data digest=")
            })
            && l[i + 2..]
                .iter()
                .take_while(|d| d.starts_with("  differs: "))
                .any(|d| d.starts_with("  differs: file_open.file.flags = "))
    })
}

#[test]
fn the_console_shows_the_live_counters_in_tmux_and_quits_on_q() {
    let have_tmux = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let w = World::new("console");
    let fifo2 = w.mkfifo("fifo2");
    std::fs::write(w.p("data"), "some data\n").unwrap();
    // The model: a read of /etc/hostname and of `data`; its trajectory explains the forensics.
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "-o", "base.model"])
        .args(["--trajectory", "base.jsonl", "--"])
        .args(["sh", "-c", "cat /etc/hostname > /dev/null; read l < data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Sealed: /etc/passwd is out of the model, and `data` opened for appending is a near miss
    // (the same file, other flags). After the first release it goes on (`ls /`) and waits again.
    let script = "cat /etc/hostname > /dev/null; cat /etc/passwd > /dev/null; read l < data; \
                  echo more >> data; read x < fifo; ls / > /dev/null; read y < fifo2";
    let mut run = w.start(&["--name", "tui", "--model", "base.model"], script);
    let fifo = w.wait_up("tui", &mut run);
    let state = w.ctl_json(&["state", "tui", "--json"]).remove(0);
    let counters = format!("events {} (", state["events"].as_u64().unwrap());

    // Without a terminal: lines, the same counters, the forensic events explained.
    let mut lines_mode = w
        .cmd()
        .args(["console", "tui", "--explain", "base.jsonl"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lm = ConsoleLines::new(lines_mode.stdout.take().unwrap());
    lm.until("counters line", |_, _| true);
    assert!(lm.seen[0].starts_with(&counters), "{:?}", lm.seen);
    assert!(lm.seen[0].contains("mode sealed"), "{:?}", lm.seen);
    lm.until("explained near miss", |l, _| near_miss_explained(l));

    let tmux = Tmux { w: &w };
    if have_tmux {
        tmux.start(&format!(
            "env TERM=xterm-256color XDG_RUNTIME_DIR={} {} console tui --explain {}",
            w.rt.display(),
            env!("CARGO_BIN_EXE_tsem"),
            w.p("base.jsonl").display()
        ));
        let screen = tmux.screen_with(&[&counters, "/etc/passwd", "differs: file_open.file.flags"]);
        assert!(screen.contains(&counters), "{screen}");
        assert!(screen.contains("tsem console: tui"), "{screen}");
        assert!(
            screen.contains("forensic: file_open process=cat /etc/passwd"),
            "{screen}"
        );
        // The pane's borders off, each line as the line output has it.
        let shown: Vec<String> = screen
            .lines()
            .map(|l| l.trim_matches('│').trim_end().to_string())
            .collect();
        assert!(near_miss_explained(&shown), "{screen}");
        assert!(
            screen.contains(state["state"].as_str().unwrap()),
            "{screen}"
        );
    } else {
        eprintln!("skipped the terminal half: tmux not installed");
    }

    // The workload goes on and waits again: both views count its new events while it lives.
    w.release(fifo);
    let fifo2 = w.wait_on("tui", &fifo2, &mut run);
    let now = w.ctl_json(&["state", "tui", "--json"]).remove(0);
    assert!(now["events"].as_u64() > state["events"].as_u64(), "{now}");
    let grown = format!("events {} (", now["events"].as_u64().unwrap());
    lm.until("grown counters", |l, i| l[i].starts_with(&grown));
    if have_tmux {
        let screen = tmux.screen_with(&[&grown]);
        assert!(screen.contains(&grown), "{screen}");
        tmux.cmd()
            .args(["send-keys", "-t", "c", "q"])
            .status()
            .unwrap();
        assert!(
            tmux.gone(),
            "the console did not quit on q: {}",
            tmux.capture()
        );
    }
    assert!(run.try_wait().unwrap().is_none());

    w.release(fifo2);
    w.finish(run);
    let all = lm.rest();
    assert!(lines_mode.wait().unwrap().success());
    assert!(
        all.iter()
            .any(|l| l.starts_with("forensic: file_open process=cat /etc/passwd")),
        "{all:#?}"
    );
    assert_eq!(
        all.last().map(String::as_str),
        Some("run ended"),
        "{all:#?}"
    );
}

#[test]
fn without_xdg_runtime_dir_a_user_s_sockets_go_to_a_private_tmp_directory() {
    // SAFETY: no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        eprintln!("skipped: root's fallback is /run/tsem, not to be touched by a test");
        return;
    }
    let w = World::new("fallback");
    let name = format!("fallback-{}", std::process::id());
    let mut c = w.cmd();
    c.env_remove("XDG_RUNTIME_DIR")
        .args([
            "run",
            "--no-digest-cache",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            WAITER,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut run = c.spawn().unwrap();
    let dir = PathBuf::from(format!("/tmp/tsem-{uid}"));
    let sock = dir.join(format!("{name}.sock"));
    loop {
        if sock.exists() {
            break;
        }
        assert!(run.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = std::fs::symlink_metadata(&dir).unwrap();
    assert!(m.is_dir() && m.uid() == uid && m.mode() & 0o777 == 0o700);
    let o = w
        .cmd()
        .env_remove("XDG_RUNTIME_DIR")
        .args(["ctl", "state", &name, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&w.fifo)
        .unwrap();
    f.write_all(b"go\n").unwrap();
    drop(f);
    w.finish(run);
    assert!(!sock.exists());
}

#[test]
fn a_name_in_use_or_malformed_fails_the_run_before_the_workload_starts() {
    let w = World::new("names");
    let mut first = w.start(&["--name", "dup"], WAITER);
    let fifo = w.wait_up("dup", &mut first);
    for (name, why) in [
        ("dup", "a running tsem already has this name"),
        ("../escape", "bad name"),
        (".hidden", "bad name"),
    ] {
        let o = w
            .cmd()
            .args(["run", "--no-digest-cache", "--name", name, "--"])
            .args(["sh", "-c", "touch ran"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert!(!w.p("ran").exists(), "{name}: the workload ran");
    }
    // tsem-runtime's containers ask for their id only if it is free: such a run goes on
    // unnamed, saying so.
    let o = w
        .cmd()
        .args([
            "run",
            "--no-digest-cache",
            "--name",
            "dup",
            "--name-if-free",
            "--",
        ])
        .args(["sh", "-c", "touch ran"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("runs unnamed"), "{}", stderr(&o));
    assert!(w.p("ran").exists(), "the workload did not run");
    // The first run is untouched by the attempts.
    assert_eq!(
        w.ctl_json(&["list", "--json"])[0].as_array().unwrap().len(),
        1
    );
    w.release(fifo);
    w.finish(first);
    // A socket left by a run that was killed is not a run: listed as nothing, and replaced.
    let stale = w.rt.join("tsem/dup.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert_eq!(w.ctl_json(&["list", "--json"])[0], serde_json::json!([]));
    let o = w
        .cmd()
        .args(["run", "--no-digest-cache", "--name", "dup", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists());
}
