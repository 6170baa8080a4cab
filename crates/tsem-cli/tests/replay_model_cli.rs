//! `tsem replay` and `tsem model` against the real TSEM capture in `shared/conformance/tsem/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

#[test]
fn process_1_replays_inside_test_model() {
    let d = process_dir();
    let v = json(&run(&[
        "replay",
        "--json",
        "--model",
        s(&d.join("test.model")),
        s(&d.join("process_1.json")),
    ]));
    assert_eq!(v["events"], 155);
    assert_eq!(v["forensics_events"], 0);
    assert_eq!(v["forensics_points"], 0);
    assert_eq!(v["points"], 196);
    for key in ["state", "measurement", "aggregate"] {
        assert_eq!(v[key].as_str().unwrap().len(), 64, "{key}");
    }
    assert_eq!(v["digest"], "sha256");
    // Every event is in the model, so the state is the model's own state.
    assert_eq!(v["state"], v["model_state"]);
}

#[test]
fn forensics_captures_against_models() {
    let d = process_dir();
    let counts = [2, 2, 5, 1, 1, 1];
    for n in 2..=7usize {
        let f = d.join(format!("process_{n}.json"));
        for (model, absorbs) in [
            ("test.model", false),
            ("test.model.up2", n <= 4),
            ("test.model.up3", n <= 6),
        ] {
            let v = json(&run(&[
                "replay",
                "--json",
                "--model",
                s(&d.join(model)),
                s(&f),
            ]));
            assert_eq!(v["events"], counts[n - 2], "process_{n}");
            let expect = if absorbs { 0 } else { counts[n - 2] };
            assert_eq!(v["forensics_events"], expect, "process_{n} against {model}");
        }
    }
}

#[test]
fn model_build_writes_the_first_155_state_lines_in_order() {
    let d = process_dir();
    let t = tmpdir("build");
    let out = t.join("M");
    let o = run(&[
        "model",
        "build",
        "-o",
        s(&out),
        s(&d.join("process_1.json")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("state "))
        .map(String::from)
        .collect();
    let theirs: Vec<String> = std::fs::read_to_string(d.join("test.model"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("state "))
        .take(155)
        .map(String::from)
        .collect();
    assert_eq!(ours.len(), 155);
    assert_eq!(ours, theirs);
    // The learned model's state equals the state of a replay of the same trajectory.
    let shown = json(&run(&["model", "show", "--json", s(&out)]));
    let replayed = json(&run(&["replay", "--json", s(&d.join("process_1.json"))]));
    assert_eq!(shown["state"], replayed["state"]);
    assert_eq!(shown["points"], 155);
}

#[test]
fn stdin_is_accepted() {
    let d = process_dir();
    let input = std::fs::read(d.join("process_1.json")).unwrap();
    let v = json(&run_stdin(&["replay", "--json", "-"], &input));
    assert_eq!(v["events"], 155);
    assert_eq!(v["points"], 155);
}

#[test]
fn bad_input_gives_one_line_errors() {
    let d = process_dir();
    let t = tmpdir("bad");
    let lines: Vec<String> = std::fs::read_to_string(d.join("process_1.json"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();

    // A truncated JSON line.
    let trunc = t.join("trunc.json");
    std::fs::write(
        &trunc,
        format!("{}\n{}\n", lines[0], &lines[1][..lines[1].len() / 2]),
    )
    .unwrap();
    fails_with(
        &run(&["replay", s(&trunc)]),
        "trunc.json:2: JSON syntax error",
    );

    // An unknown event type.
    let unknown = t.join("unknown.json");
    std::fs::write(
        &unknown,
        lines[2].replace("\"type\": \"file_open\"", "\"type\": \"file_opened\""),
    )
    .unwrap();
    fails_with(
        &run(&["replay", s(&unknown)]),
        "unknown.json:1: field `event.type`: unknown event type",
    );

    // A bad hex field.
    let badhex = t.join("badhex.json");
    std::fs::write(&badhex, lines[2].replace("59474588a312", "59474588a31z")).unwrap();
    fails_with(
        &run(&["replay", s(&badhex)]),
        "badhex.json:1: field `file_open.file.digest`: bad hex",
    );

    // A model file with a flipped byte in a directive, and one with a flipped byte that breaks UTF-8.
    let model = std::fs::read(d.join("test.model")).unwrap();
    let mut flipped = model.clone();
    let at = model.windows(6).position(|w| w == b"\nstate").unwrap() + 1;
    flipped[at] ^= 0x01; // 's' -> 'r'
    let m1 = t.join("flipped.model");
    std::fs::write(&m1, &flipped).unwrap();
    fails_with(
        &run(&["replay", "--model", s(&m1), s(&d.join("process_1.json"))]),
        "flipped.model: line 2: directive: unknown directive \"rtate\"",
    );
    let mut flipped = model.clone();
    flipped[at + 10] ^= 0x80;
    let m2 = t.join("flipped2.model");
    std::fs::write(&m2, &flipped).unwrap();
    fails_with(
        &run(&["replay", "--model", s(&m2), s(&d.join("process_1.json"))]),
        "flipped2.model: line 2: line: invalid UTF-8",
    );

    // A missing file and a wrong-size aggregate.
    fails_with(
        &run(&["replay", s(&t.join("nope.json"))]),
        "nope.json: cannot open",
    );
    fails_with(
        &run(&["replay", "--aggregate", "00", s(&trunc)]),
        "--aggregate: expected 32 bytes",
    );
    // Usage errors are clap's: exit status 2 and the reason.
    let o = run(&["replay", "--digest", "md5", s(&trunc)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown hash function"));
}

#[test]
fn a_signed_model_with_a_flipped_hex_digit_is_refused() {
    let d = process_dir();
    let t = tmpdir("signed");
    let key = t.join("k");
    assert!(run(&["keygen", "-o", s(&key)]).status.success());
    let signed = t.join("signed.model");
    let o = sign(&key, &signed, &d.join("test.model"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ok = run(&["model", "verify", "--key", s(&t.join("k.pub")), s(&signed)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The signed model still replays.
    let v = json(&run(&[
        "replay",
        "--json",
        "--model",
        s(&signed),
        s(&d.join("process_1.json")),
    ]));
    assert_eq!(v["forensics_events"], 0);

    let text = std::fs::read_to_string(&signed).unwrap();
    let line = text.lines().find(|l| l.starts_with("state ")).unwrap();
    let last = line.chars().last().unwrap();
    let swapped = if last == '0' { '1' } else { '0' };
    let tampered = t.join("tampered.model");
    std::fs::write(
        &tampered,
        text.replacen(line, &format!("{}{swapped}", &line[..line.len() - 1]), 1),
    )
    .unwrap();
    fails_with(
        &run(&["model", "verify", s(&tampered)]),
        "signature does not match",
    );
    fails_with(
        &run(&[
            "replay",
            "--model",
            s(&tampered),
            s(&d.join("process_1.json")),
        ]),
        "signature does not match",
    );

    // Pinning another key is refused.
    let other = t.join("other");
    assert!(run(&["keygen", "-o", s(&other)]).status.success());
    fails_with(
        &run(&[
            "model",
            "verify",
            "--key",
            s(&t.join("other.pub")),
            s(&signed),
        ]),
        "different ed25519 key",
    );
}

#[test]
fn rsa_signatures_as_quixote_sign_model_makes_them() {
    let d = process_dir();
    let t = tmpdir("rsa");
    let key = t.join("rsa.pem");
    let keygen_out = std::process::Command::new("openssl")
        .args(["genrsa", "-out", s(&key), "2048"])
        .output();
    let Ok(keygen_out) = keygen_out else {
        panic!("openssl is required for this test (apt-get install openssl)")
    };
    assert!(keygen_out.status.success());
    let signed = t.join("rsa.model");
    let o = sign(&key, &signed, &d.join("test.model"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(
        text.starts_with("key "),
        "the key line comes first, as sign-model writes it"
    );
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("signature ")
    );
    // Check the signature independently with openssl over the documented signed data.
    let mut data = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with("signature ")) {
        data.extend_from_slice(l.as_bytes());
        data.push(0);
    }
    std::fs::write(t.join("data"), &data).unwrap();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let sig = b64(text
        .lines()
        .last()
        .unwrap()
        .strip_prefix("signature ")
        .unwrap());
    std::fs::write(t.join("sig"), sig).unwrap();
    std::fs::write(
        t.join("pub.pem"),
        b64(text.lines().next().unwrap().strip_prefix("key ").unwrap()),
    )
    .unwrap();
    let v = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            s(&t.join("pub.pem")),
            "-signature",
            s(&t.join("sig")),
            s(&t.join("data")),
        ])
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "openssl rejects our signature: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    assert!(run(&["model", "verify", s(&signed)]).status.success());
}

#[test]
fn diff_and_merge() {
    let d = process_dir();
    let t = tmpdir("merge");
    let v = json(&run(&[
        "model",
        "diff",
        "--json",
        "--events",
        s(&d.join("process_2.json")),
        s(&d.join("test.model")),
        s(&d.join("test.model.up2")),
    ]));
    assert_eq!(v["only_in_a"].as_array().unwrap().len(), 0);
    let only_b = v["only_in_b"].as_array().unwrap();
    assert!(!only_b.is_empty());
    // The two process_2 forensics points are described from the events given.
    let described = only_b.iter().filter(|p| p["event"].is_string()).count();
    assert_eq!(described, 2);
    let differ = run(&[
        "model",
        "diff",
        "--exit-code",
        s(&d.join("test.model")),
        s(&d.join("test.model.up2")),
    ]);
    assert_eq!(differ.status.code(), Some(1));

    let out = t.join("merged");
    let o = run(&[
        "model",
        "merge",
        "-o",
        s(&out),
        s(&d.join("test.model.up2")),
        s(&d.join("test.model.up3")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pts = |p: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("state "))
            .map(String::from)
            .collect()
    };
    let union: std::collections::BTreeSet<String> = pts(&d.join("test.model.up2"))
        .union(&pts(&d.join("test.model.up3")))
        .cloned()
        .collect();
    assert_eq!(pts(&out), union);
    for n in 2..=6 {
        let v = json(&run(&[
            "replay",
            "--json",
            "--model",
            s(&out),
            s(&d.join(format!("process_{n}.json"))),
        ]));
        assert_eq!(v["forensics_events"], 0, "process_{n}");
    }
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["replay", "--help"],
        vec!["model", "--help"],
        vec!["model", "build", "--help"],
        vec!["model", "diff", "--help"],
        vec!["bench", "model", "--help"],
        vec!["keygen", "--help"],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn the_shipped_sample_replays() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/quickstart.trajectory"
    );
    let v = json(&run(&["replay", "--json", sample]));
    assert_eq!(v["events"], 110);
    assert_eq!(v["points"], 110);
    assert_eq!(v["forensics_events"], 0);
    // The state of a learned model equals the state of replaying what it was learned from.
    let t = tmpdir("sample");
    let m = t.join("m");
    assert!(
        run(&["model", "build", "-o", s(&m), sample])
            .status
            .success()
    );
    assert_eq!(
        json(&run(&["model", "show", "--json", s(&m)]))["state"],
        v["state"]
    );
    let again = json(&run(&["replay", "--json", "--model", s(&m), sample]));
    assert_eq!(again["forensics_events"], 0);
    assert_eq!(again["state"], v["state"]);
}

#[test]
fn model_build_reports_the_learning_curve_and_gates_on_convergence() {
    let d = process_dir();
    let t = tmpdir("converge");
    let (p1, p2) = (d.join("process_1.json"), d.join("process_2.json"));
    let out = t.join("m");
    let v = json(&run(&[
        "model",
        "build",
        "--json",
        "-o",
        s(&out),
        s(&p1),
        s(&p2),
        s(&p1),
    ]));
    let runs: Vec<u64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["new_points"].as_u64().unwrap())
        .collect();
    assert_eq!(runs, vec![155, 2, 0]);
    assert_eq!(v["points"], 157);
    assert!(
        run(&[
            "model",
            "build",
            "--require-converged",
            "1",
            "-o",
            s(&out),
            s(&p1),
            s(&p2),
            s(&p1)
        ])
        .status
        .success()
    );
    let _ = std::fs::remove_file(&out);
    let o = run(&[
        "model",
        "build",
        "--require-converged",
        "2",
        "-o",
        s(&out),
        s(&p1),
        s(&p2),
        s(&p1),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("has not converged"));
    assert!(!out.exists(), "no model is written when the gate refuses");
}

#[test]
fn forensics_are_explained_against_the_learning_run() {
    let d = process_dir();
    let v = json(&run(&[
        "replay",
        "--json",
        "--model",
        s(&d.join("test.model")),
        "--explain",
        s(&d.join("process_1.json")),
        s(&d.join("process_5.json")),
    ]));
    let f = v["forensics"].as_array().unwrap();
    assert_eq!(f.len(), 1);
    // process_5 is bash opening /root/.bash_history after it changed: the same path, other
    // contents. The explanation names exactly that.
    let diffs: Vec<&str> = f[0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(diffs, vec!["file_open.file.digest"]);
    assert!(
        f[0]["nearest"]
            .as_str()
            .unwrap()
            .contains("/root/.bash_history")
    );
}

#[test]
fn spilled_forensics_print_what_kept_descriptions_print() {
    // Replay keeps forensic descriptions in a scratch file by default; --keep-descriptions keeps
    // them in memory. Everything printed, text and JSON, must be the same either way.
    let d = process_dir();
    let p1 = d.join("process_1.json");
    let mut forensic = 0;
    for n in 2..=7usize {
        let f = d.join(format!("process_{n}.json"));
        for model in ["test.model", "test.model.up2"] {
            let m = d.join(model);
            for form in [&["--json"][..], &[][..]] {
                let mut args = vec!["replay", "--model", s(&m)];
                args.extend(form);
                args.extend(["--explain", s(&p1), s(&f)]);
                let spilled = run(&args);
                args.push("--keep-descriptions");
                let kept = run(&args);
                assert!(spilled.status.success() && kept.status.success());
                assert_eq!(
                    String::from_utf8_lossy(&spilled.stdout),
                    String::from_utf8_lossy(&kept.stdout),
                    "process_{n} against {model} {form:?}"
                );
                if form.is_empty() {
                    forensic += String::from_utf8_lossy(&spilled.stdout)
                        .matches("forensic: ")
                        .count();
                }
            }
        }
    }
    assert!(
        forensic >= 6,
        "the captures make forensic points ({forensic})"
    );

    // Without a writable temp directory the descriptions stay in memory, with a warning.
    let (m, f) = (d.join("test.model"), d.join("process_4.json"));
    let args = ["replay", "--model", s(&m), s(&f)];
    let kept = run(&args);
    let no_tmp = tsem()
        .args(args)
        .env("TMPDIR", d.join("no-such-directory"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(no_tmp.status.success());
    assert_eq!(no_tmp.stdout, kept.stdout);
    assert!(String::from_utf8_lossy(&no_tmp.stderr).contains("keeping descriptions in memory"));
}

/// `tsem model sign --key KEY -o OUT MODEL`.
fn sign(
    key: &std::path::Path,
    out: &std::path::Path,
    model: &std::path::Path,
) -> std::process::Output {
    run(&["model", "sign", "--key", s(key), "-o", s(out), s(model)])
}

/// `--threads 2` (parsing pipelined with modeling) and 3 and 4 (blocks of lines parsed on one or
/// two threads) print what `--threads 1` prints, byte for byte, with the same exit status: every capture, as text and JSON, keeping descriptions or
/// spilling them, against a model with explanations, through stdin, and with a cut line at the
/// first line, around the 64-event batch boundaries and at the very last line.
#[test]
fn pipelined_replay_prints_what_single_threaded_replay_prints() {
    let d = process_dir();
    let model = d.join("test.model");
    let learned = d.join("process_1.json");
    let both = |args: &[&str], stdin: Option<&[u8]>| {
        let out = |threads: &str| {
            let mut a = vec!["replay", "--threads", threads];
            a.extend_from_slice(args);
            match stdin {
                Some(input) => run_stdin(&a, input),
                None => run(&a),
            }
        };
        let one = out("1");
        for threads in ["2", "3", "4"] {
            let other = out(threads);
            assert_eq!(
                (&one.stdout, &one.stderr, one.status.code()),
                (&other.stdout, &other.stderr, other.status.code()),
                "replay --threads {threads} {args:?}"
            );
        }
        one
    };
    let mut all = Vec::new();
    let mut captures: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    captures.sort();
    assert!(captures.len() >= 7);
    for f in &captures {
        all.extend(std::fs::read(f).unwrap());
        let f = s(f);
        assert!(both(&[f], None).status.success());
        both(&["--json", f], None);
        both(&["--json", "--keep-descriptions", f], None);
        both(
            &["--json", "--mapping", "v3", "--digest", "sha384", f],
            None,
        );
        both(&["--model", s(&model), "--explain", s(&learned), f], None);
        both(
            &["--json", "--model", s(&model), "--keep-descriptions", f],
            None,
        );
    }
    let v = json(&both(&["--json", "-"], Some(&all)));
    assert!(v["events"].as_u64().unwrap() > 155);
    both(
        &["--keep-descriptions", "--model", s(&model), "-"],
        Some(&all),
    );

    let lines: Vec<&[u8]> = all
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let t = tmpdir("pipelined-cut");
    // The lines with line `bad` (1-based) cut to a `div`th of its length, the lines after it
    // kept or dropped.
    let cut = |lines: &[&[u8]], bad: usize, div: usize, rest: bool| -> Vec<u8> {
        let after = if rest { &lines[bad..] } else { &[][..] };
        lines[..bad]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == bad {
                    &l[..l.len() / div]
                } else {
                    *l
                }
            })
            .chain(after.iter().copied())
            .flat_map(|l| [l, b"\n"].concat())
            .collect()
    };
    for bad in [1, 63, 64, 65, 128, 129, lines.len()] {
        let text = cut(&lines, bad, 2, false);
        let p = t.join(format!("cut{bad}.json"));
        std::fs::write(&p, &text).unwrap();
        let o = both(&["--json", s(&p)], None);
        fails_with(&o, &format!("cut{bad}.json:{bad}: "));
        both(&["--json", "-"], Some(&text));
    }

    // Many blocks of lines (the captures twelve times over, ~30 of the release build's 64 KiB
    // blocks): kept and spilled descriptions, from a file and from stdin, and a line cut short
    // in every fifth block or so, which stops every thread count at the same event.
    let many: Vec<u8> = all.repeat(12);
    let p = t.join("many.json");
    std::fs::write(&p, &many).unwrap();
    let twelve = json(&both(&["--json", "--model", s(&model), s(&p)], None));
    assert_eq!(
        twelve["events"].as_u64().unwrap(),
        12 * v["events"].as_u64().unwrap()
    );
    both(
        &["--json", "--keep-descriptions", "--model", s(&model), "-"],
        Some(&many),
    );
    both(&["--json", "--model", s(&model), "-"], Some(&many));
    let many_lines: Vec<&[u8]> = many
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for bad in (1..many_lines.len()).step_by(397) {
        let text = cut(&many_lines, bad, 3, true);
        let p = t.join(format!("many-cut{bad}.json"));
        std::fs::write(&p, &text).unwrap();
        let o = both(&["--json", s(&p)], None);
        fails_with(&o, &format!("many-cut{bad}.json:{bad}: "));
        let o = both(&["--keep-descriptions", "--json", "-"], Some(&text));
        fails_with(&o, &format!("-:{bad}: "));
    }
}
