//! The multi-threaded replay against the single-threaded one: everything a replay leaves
//! behind must be equal, whatever the thread count, reader buffer, block boundaries and
//! descriptions kept or spilled.

use super::*;
use crate::replay::model_stream_with;
use tsem_core::event::Event;
use tsem_core::hash::HashAlg;
use tsem_core::map::Mapping;
use tsem_core::namespace::Config;
use tsem_format::{RecordKind, write_event};

/// What a replay leaves behind, everything its output is made of: the error (message and
/// chain), counts, state, measurement, kept descriptions, spilled forensics in order.
#[derive(Debug, PartialEq)]
struct Outcome {
    error: Option<String>,
    events: u64,
    points: usize,
    forensics: (u64, usize),
    state: Digest,
    measurement: Digest,
    aggregate: Digest,
    kept: (Vec<Event>, Vec<Event>),
    spilled: Vec<Event>,
    logs: u64,
}

/// Replay `text` (through a reader of `buf` bytes) on `threads`: into a namespace keeping
/// descriptions, or sealed (every event forensic) with descriptions spilled.
fn replay(text: &[u8], buf: usize, threads: u8, keep: bool) -> Outcome {
    let mut ns = Namespace::new(Config {
        alg: HashAlg::Sha256,
        mapping: Mapping::Model0,
        keep_descriptions: keep,
    })
    .unwrap();
    let mut stats = StreamStats::default();
    if !keep {
        ns.seal();
        stats.spill = Some(crate::spill::Spill::new().unwrap());
    }
    let mut input = std::io::BufReader::with_capacity(buf, text);
    let r = crate::replay::model_stream_threads(
        &mut ns,
        "t",
        &mut input,
        &mut stats,
        Strictness::Kernel,
        threads,
    );
    let mut spilled = Vec::new();
    if let Some(s) = stats.spill.take() {
        s.for_each(|ev| {
            spilled.push(ev);
            Ok(())
        })
        .unwrap();
    }
    Outcome {
        error: r.err().map(|e| format!("{e:#}")),
        events: ns.events(),
        points: ns.points().len(),
        forensics: (ns.forensics_events(), ns.forensics_points()),
        state: ns.state(),
        measurement: ns.measurement(),
        aggregate: ns.aggregate(),
        kept: (ns.trajectory().to_vec(), ns.forensics().to_vec()),
        spilled,
        logs: stats.log_records,
    }
}

/// `n` synthetic event lines (with repeats), a blank line now and then.
fn lines(n: usize) -> Vec<Vec<u8>> {
    crate::bench::synthetic_events(n, 5)
        .iter()
        .map(|ev| {
            let mut l = Vec::new();
            write_event(&mut l, ev, RecordKind::Trajectory);
            l
        })
        .collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| [&l[..], b"\n"].concat())
        .collect()
}

fn same_both_ways(text: &[u8]) -> Outcome {
    let one = replay(text, 1 << 16, 1, true);
    for (buf, keep) in [
        (1 << 16, true),
        (4096, true),
        (1 << 16, false),
        (977, false),
    ] {
        let reference = if keep {
            &one
        } else {
            &replay(text, buf, 1, keep)
        };
        // 3 and 4: blocks of lines parsed on one and on two threads (`replay_par`).
        for threads in [2, 3, 4] {
            let other = replay(text, buf, threads, keep);
            assert_eq!(
                &other, reference,
                "buffer {buf}, keep {keep}, {threads} threads"
            );
        }
    }
    one
}

/// A cut line at the first line, around every batch boundary (64 events single-threaded, 256
/// handed over when pipelined) and at the very last line: the pipelined replay models exactly
/// the events before it, like the single-threaded one, and fails with its error naming it.
#[test]
fn a_bad_line_stops_both_paths_at_the_same_event() {
    let all = lines(300);
    let whole = same_both_ways(&join(&all));
    assert_eq!((whole.error, whole.events), (None, 300));
    for bad in [1, 2, 63, 64, 65, 127, 128, 129, 192, 193, 256, 299, 300] {
        let mut cut = all.clone();
        let l = &mut cut[bad - 1];
        l.truncate(l.len() / 2);
        let o = same_both_ways(&join(&cut));
        let err = o.error.unwrap();
        assert!(err.starts_with(&format!("t:{bad}: ")), "{err}");
        assert_eq!(o.events, bad as u64 - 1);
        // Without its newline the last line is still read and refused.
        if bad == 300 {
            let mut text = join(&cut);
            text.pop();
            let o = same_both_ways(&text);
            assert_eq!(o.events, 299);
            assert!(o.error.unwrap().starts_with("t:300: "));
        }
    }
}

/// Aggregate records, log records and blank lines between events: an aggregate is set once
/// the events before it are modeled (a second, different one after events is refused with
/// its line), logs are counted, blank lines skipped — the same on both paths.
#[test]
fn aggregate_log_and_blank_lines_in_order() {
    let all = lines(200);
    let agg = |hex: char| {
        format!(
            "{{\"export\": {{\"type\": \"aggregate\"}}, \"aggregate\": {{\"value\": \"{}\"}}}}",
            hex.to_string().repeat(64)
        )
        .into_bytes()
    };
    let log = br#"{"export": {"type": "log"}, "log": {"process": "p", "event": "file_open", "action": "DENY"}}"#.to_vec();
    // The aggregate first (allowed: nothing is modeled yet), a log and blanks among events.
    let mut text = vec![agg('a')];
    for (i, l) in all.iter().enumerate() {
        text.push(l.clone());
        if i % 50 == 7 {
            text.push(log.clone());
            text.push(b"   ".to_vec());
        }
    }
    let o = same_both_ways(&join(&text));
    assert_eq!(o.error, None);
    assert_eq!(o.aggregate, Digest::from_hex(&"a".repeat(64)).unwrap());
    assert_eq!((o.events, o.logs), (200, 4));
    // An aggregate after events: refused, at its line, after the 130 events before it.
    let mut late = join(&all[..130]);
    late.extend_from_slice(&join(&[agg('b')]));
    late.extend_from_slice(&join(&all[130..]));
    let o = same_both_ways(&late);
    assert_eq!(o.events, 130);
    assert!(o.error.unwrap().starts_with("t:131: aggregate record: "));
}

/// A read error (a line that is not whole when the input fails) stops both paths alike.
#[test]
fn a_read_error_names_its_line_on_both_paths() {
    struct Failing<'a>(&'a [u8]);
    impl std::io::Read for Failing<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("device gone"));
            }
            let n = out.len().min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let text = join(&lines(100));
    let run = |threads| {
        let mut ns = Namespace::new(Config::default()).unwrap();
        let mut input = std::io::BufReader::with_capacity(4096, Failing(&text));
        let r = crate::replay::model_stream_threads(
            &mut ns,
            "t",
            &mut input,
            &mut StreamStats::default(),
            Strictness::Kernel,
            threads,
        );
        (format!("{:#}", r.unwrap_err()), ns.events(), ns.state())
    };
    let one = run(1);
    assert!(
        one.0.starts_with("t:101: read error: device gone"),
        "{}",
        one.0
    );
    for threads in [2, 3, 4] {
        assert_eq!(one, run(threads), "{threads} threads");
    }
    // model_stream_with is the single-threaded path itself.
    let mut ns = Namespace::new(Config::default()).unwrap();
    let r = model_stream_with(
        &mut ns,
        "t",
        &mut &text[..],
        &mut StreamStats::default(),
        Strictness::Kernel,
    );
    assert!(r.is_ok() && ns.events() == 100);
}
