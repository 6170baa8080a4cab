//! The supervisor performs opens, creates and renames for tasks whose credentials are not its
//! own by wearing theirs (a root `tsem run` of a workload that drops privileges): each case runs
//! bare, then learned and enforced under tsem, and its outcome (what it printed, its exit
//! status, the files it made and who owns them) must be the bare one, with no call refused as
//! `unfaithful`. Root only: as another user the test prints one line and passes (an unprivileged
//! supervisor cannot wear other ids, and its workload cannot take them either).
//!
//! The workloads run under `setarch -R`: setpriv probes the capability bounding set with
//! `prctl` calls whose unused arguments are whatever its registers held (addresses in its
//! libraries), which TSEM describes; without address randomization they are the same in every
//! run, so one learned run covers the next.
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
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
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
            None => Command::new("setarch"),
            Some(args) => {
                let mut c = tsem();
                c.args(["run", "--no-digest-cache"])
                    .args(args)
                    .args(["--", "setarch"]);
                c
            }
        };
        c.args(["-R", "sh", s(&self.script)])
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
