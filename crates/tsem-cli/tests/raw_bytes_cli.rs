//! `tsem` on kernel exports that carry raw bytes (invalid UTF-8, raw control characters) in
//! pathnames, comms and module names: replayed to the coefficients computed over those bytes (by
//! an independent Python program), shown escaped to people, refused by `--strict-json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use tsem_testdata::raw_kernel::{file_open_line, kmod_line, python_coefficient};

const PATHNAMES: &[&[u8]] = &[
    b"/tmp/a\tb",
    b"/tmp/\x01\xff\xfe",
    b"/memfd:\x8f\xff\x00\x1b[31m (deleted)",
    b"/home/u/\"q\"\\x\tend\xc3",
];
const KMOD: &[u8] = b"net-pf-\x01\xff\t-x";

/// One capture: a line per pathname, then a module request; returns the file.
fn capture(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = Vec::new();
    for p in PATHNAMES {
        text.extend_from_slice(&file_open_line(b"a\tb\x01\xff", p));
        text.push(b'\n');
    }
    text.extend_from_slice(&kmod_line(b"modprobe", KMOD));
    text.push(b'\n');
    let f = dir.join("raw.json");
    std::fs::write(&f, text).unwrap();
    f
}

/// Bytes a terminal would act on or could not show: control characters other than a newline,
/// and anything that is not UTF-8.
fn assert_printable(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("output is UTF-8");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "raw control character in {text:?}"
    );
}

#[test]
fn model_build_learns_the_coefficients_of_the_raw_bytes() {
    let d = tmpdir("rawbytes-build");
    let f = capture(&d);
    let m = d.join("M");
    let o = run(&["model", "build", "-o", s(&m), s(&f)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let states: Vec<String> = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("state ").map(String::from))
        .collect();
    let mut want = Vec::new();
    for p in PATHNAMES {
        let Some(c) = python_coefficient("file_open", p) else {
            return;
        };
        want.push(c);
    }
    want.push(python_coefficient("kernel_module_request", KMOD).unwrap());
    assert_eq!(states, want);

    let v = json(&run(&["replay", "--json", "--model", s(&m), s(&f)]));
    assert_eq!(v["events"], PATHNAMES.len() + 1);
    assert_eq!(v["forensics_events"], 0);
}

#[test]
fn raw_bytes_are_shown_escaped() {
    let d = tmpdir("rawbytes-show");
    // The model knows /tmp/abc; the capture opens /tmp/a<TAB>b<0xff> instead.
    let known = d.join("known.json");
    std::fs::write(&known, file_open_line(b"cat", b"/tmp/abc")).unwrap();
    let m = d.join("M");
    let o = run(&["model", "build", "-o", s(&m), s(&known)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let odd = d.join("odd.json");
    std::fs::write(&odd, file_open_line(b"c\x1b]0;x\x07", b"/tmp/a\tb\xff")).unwrap();

    let o = run(&["replay", "--model", s(&m), "--explain", s(&known), s(&odd)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_printable(&o.stdout);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(r"forensic: file_open process=c\x1b]0;x\x07 /tmp/a\tb\xff digest="),
        "{out}"
    );
    assert!(
        out.contains(r"differs: file_open.file.path.pathname = /tmp/a\tb\xff (model: /tmp/abc)"),
        "{out}"
    );

    let v = json(&run(&[
        "replay",
        "--json",
        "--model",
        s(&m),
        "--explain",
        s(&known),
        s(&odd),
    ]));
    let diff = &v["forensics"][0]["differences"];
    assert!(
        diff.as_array()
            .unwrap()
            .iter()
            .any(|x| x["ours"] == r"/tmp/a\tb\xff"),
        "{v}"
    );
}

#[test]
fn errors_name_file_line_and_field_with_bytes_escaped() {
    let d = tmpdir("rawbytes-err");
    let f = d.join("bad.json");
    let good = file_open_line(b"cat", b"/tmp/\xff");
    let at = good.windows(9).position(|w| w == b"\"0100755\"").unwrap();
    let bad = [&good[..at], b"\"01\xff\x01\"", &good[at + 9..]].concat();
    std::fs::write(&f, [good.as_slice(), b"\n", &bad, b"\n"].concat()).unwrap();
    let o = run(&["replay", s(&f)]);
    fails_with(
        &o,
        &format!(
            r#"{}:2: field `file_open.file.inode.mode`: not a number: "01\xff\x01""#,
            f.display()
        ),
    );
    assert_printable(&o.stderr);
}

#[test]
fn strict_json_refuses_raw_bytes_naming_file_line_and_field() {
    let d = tmpdir("rawbytes-strict");
    let f = capture(&d);
    let o = run(&["replay", "--strict-json", s(&f)]);
    // The first raw control character of the first line is the tab in the comm.
    let first = file_open_line(b"a\tb\x01\xff", PATHNAMES[0]);
    let at = first.iter().position(|&b| b == b'\t').unwrap();
    fails_with(
        &o,
        &format!(
            "{}:1: JSON syntax error at byte {at} in `event.process`: unescaped control character \
             in a string (strict JSON)",
            f.display()
        ),
    );
    // Plain-text lines are strict JSON and replay the same either way.
    let plain = d.join("plain.json");
    std::fs::write(&plain, file_open_line(b"cat", b"/tmp/x")).unwrap();
    let strict = json(&run(&["replay", "--json", "--strict-json", s(&plain)]));
    let kernel = json(&run(&["replay", "--json", s(&plain)]));
    assert_eq!(strict["state"], kernel["state"]);
}

#[test]
fn trajectories_we_write_are_strict_json_and_replay_strictly() {
    // A workload opens a file whose name holds a tab; its trajectory line must still be strict
    // JSON (the tab as \u0009), and replaying our own file in strict mode must reproduce the model.
    let d = tmpdir("rawbytes-run");
    let odd = d.join("a\tb");
    std::fs::write(&odd, "x").unwrap();
    let t = d.join("T");
    let m = d.join("M");
    let o = run(&[
        "run",
        "-o",
        s(&m),
        "--trajectory",
        s(&t),
        "--",
        "cat",
        s(&odd),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"x");
    let text = std::fs::read(&t).unwrap();
    let want = format!("{}/a\\u0009b", d.display());
    let mut opened = 0;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("strict JSON");
        if v["file_open"]["file"]["path"]["pathname"] == format!("{}/a\tb", d.display()) {
            opened += 1;
            assert!(
                std::str::from_utf8(line).unwrap().contains(&want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
    assert!(opened > 0, "no file_open of {}", odd.display());
    let v = json(&run(&[
        "replay",
        "--json",
        "--strict-json",
        "--model",
        s(&m),
        s(&t),
    ]));
    assert_eq!(v["forensics_events"], 0);
    assert_eq!(v["state"], v["model_state"]);
}
