//! Attaching to a process the sensor did not spawn (`tsem_sensor::attach`, what tsem-runtime does
//! with a container's init): the filter is installed at its next exec, before the program's first
//! instruction, and the program then runs normally under it. Judged by the effect: the denied
//! file's bytes are not printed, the allowed one's are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use common::{Recorder, pathname};
use tsem_sensor::{Exit, SensorConfig};

#[test]
fn attached_process_runs_its_next_program_under_the_filter() {
    // A shell that waits for a line, then becomes cat: the exec the supervisor takes over at.
    let mut target = Command::new("/bin/sh")
        .args(["-c", "read x; exec /bin/cat /etc/hostname /etc/passwd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    let rec = Recorder {
        deny_paths: vec!["/etc/hostname".into()],
        ..Recorder::default()
    };
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let seen = rec.clone();
    // The tracer is the thread that seizes: attach runs in a thread of its own.
    let sup = std::thread::spawn(move || {
        tsem_sensor::attach::attach(theirs.into(), &SensorConfig::default(), rec)
    });
    let mut b = [0u8; 1];
    ours.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"v");
    ours.write_all(&(target.id() as i32).to_ne_bytes()).unwrap();
    ours.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"r", "not seized");
    target.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut out = String::new();
    target
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    target
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // The tracer, a thread of the target's parent, reaps it: its status is in the report.
    let report = sup.join().unwrap().unwrap();
    let _ = target.wait();

    assert!(
        out.contains("root:"),
        "cat did not run normally: {out:?} {err:?}"
    );
    assert!(
        hostname.trim().is_empty() || !out.contains(hostname.trim()),
        "the denied file was read: {out:?}"
    );
    assert!(err.contains("Operation not permitted"), "{err:?}");
    assert_eq!(report.exit, Exit::Code(1));
    assert_eq!(report.stats.lost, 0);
    let paths: Vec<String> = seen.events().iter().filter_map(pathname).collect();
    assert!(paths.iter().any(|p| p == "/etc/passwd"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p == "/bin/cat" || p.ends_with("/cat")),
        "{paths:?}"
    );
    assert_eq!(seen.execs().len(), 1, "the exec of cat");
}

#[test]
fn attach_ends_quietly_when_no_process_is_handed_over() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let sup = std::thread::spawn(move || {
        tsem_sensor::attach::attach(theirs.into(), &SensorConfig::default(), Recorder::default())
    });
    let mut ours = ours;
    let mut b = [0u8; 1];
    ours.read_exact(&mut b).unwrap();
    drop(ours);
    let e = sup.join().unwrap().err().unwrap();
    assert!(
        matches!(e, tsem_sensor::attach::AttachError::Abandoned),
        "{e}"
    );
}
