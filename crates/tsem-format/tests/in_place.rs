//! The in-place reader (replay's fast path) against the tokenizing reader it stands in for, on
//! real capture lines (`shared/conformance/tsem/`) and random mutations of them: wherever the
//! fast path gives a record, the tokenizing reader gives the same one; and the public reader
//! (fast path, then the tokenizing reader on anything it gives up on) gives exactly the
//! tokenizing reader's record or error — message, dotted field and offset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use tsem_core::event::Event;
use tsem_format::event_json::reference::{parse_in_place_only, parse_tokenized_only};
use tsem_format::{Record, RecordParser, Strictness, parse_record};
use tsem_testdata::shared_dir as shared;

/// Every line of every capture in the conformance directory.
fn capture_lines() -> Vec<Vec<u8>> {
    let d = shared().join("conformance/tsem/process");
    assert!(
        d.is_dir(),
        "conformance data missing at {} (set TSEM_SHARED)",
        d.display()
    );
    let mut lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names {
        let text = std::fs::read(&p).unwrap();
        lines.extend(
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    assert!(lines.len() > 100, "only {} capture lines", lines.len());
    lines
}

/// The agreement every line must show, whatever it is.
fn agree(line: &[u8], parser: &mut RecordParser) -> Result<(), TestCaseError> {
    let reference = parse_tokenized_only(line, Strictness::Kernel);
    if let Some(fast) = parse_in_place_only(line) {
        prop_assert_eq!(
            Ok(&fast),
            reference.as_ref(),
            "in place vs tokenized on {:?}",
            String::from_utf8_lossy(line)
        );
    }
    prop_assert_eq!(&parse_record(line), &reference);
    prop_assert_eq!(&parser.parse(line), &reference);
    // Replay parses into a slot that held the previous line's event: what it held never shows.
    let mut slot = used_slot();
    let via_slot = parser
        .parse_into(line, &mut slot)
        .map(|p| p.into_record(slot));
    prop_assert_eq!(&via_slot, &reference);
    Ok(())
}

/// A slot as replay reuses it: holding another line's event (the last capture line's, a
/// different event type from most, with a pid, long strings and a created-file owner or not).
fn used_slot() -> Event {
    static LAST: std::sync::OnceLock<Event> = std::sync::OnceLock::new();
    LAST.get_or_init(|| {
        let lines = capture_lines();
        let mut ev = tsem_format::parse_event(lines.last().unwrap()).unwrap();
        ev.header.pid = Some(4242);
        ev.header.process = "a-long-process-name-past-the-inline-size".into();
        ev
    })
    .clone()
}

#[test]
fn every_capture_line_is_read_in_place_as_the_tokenizer_reads_it() {
    for line in capture_lines() {
        let fast = parse_in_place_only(&line).unwrap_or_else(|| {
            panic!(
                "the fast path gave up on a capture line: {}",
                String::from_utf8_lossy(&line)
            )
        });
        assert!(matches!(fast, Record::Event { .. }));
        assert_eq!(
            Ok(fast),
            parse_tokenized_only(&line, Strictness::Kernel),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
}

/// A line in another key order, with a duplicate or an unknown key is not the kernel's order:
/// the fast path gives up, and the reader's answer is still the tokenizer's (accepted or
/// rejected with the field named).
#[test]
fn reordered_duplicate_and_unknown_keys_fall_back_with_the_same_answer() {
    let line = capture_lines().swap_remove(0);
    let text = String::from_utf8(line).unwrap();
    let cases = [
        // "context" and "number" swapped: accepted by both readers, by the slow one.
        text.replacen(
            r#""context": "1", "number": "1""#,
            r#""number": "1", "context": "1""#,
            1,
        ),
        text.replacen(r#""uid": "0", "#, r#""uid": "0", "uid": "0", "#, 1),
        text.replacen(r#""uid": "0", "#, r#""uid": "0", "xyz": "0", "#, 1),
        text.replacen(r#""cap": "8""#, r#""cap": "\u0038""#, 1),
    ];
    let mut parser = RecordParser::new();
    // The pre-v2 spelling `cap` of `capeff` is another key the typed layer asks for, in order.
    let cap = text.replacen(r#""capeff""#, r#""cap""#, 1);
    let fast = parse_in_place_only(cap.as_bytes()).expect("`cap` is read in place");
    assert_eq!(
        Ok(fast),
        parse_tokenized_only(cap.as_bytes(), Strictness::Kernel)
    );
    for (i, case) in cases.iter().enumerate() {
        assert_ne!(case, &text, "case {i} did not change the line");
        assert!(
            parse_in_place_only(case.as_bytes()).is_none(),
            "case {i}: the fast path should give up"
        );
        let reference = parse_tokenized_only(case.as_bytes(), Strictness::Kernel);
        assert_eq!(parser.parse(case), reference, "case {i}");
        match i {
            0 | 3 => assert!(reference.is_ok(), "case {i}: {reference:?}"),
            1 => assert_eq!(
                reference.unwrap_err().to_string(),
                "field `COE.uid`: duplicate key"
            ),
            _ => assert_eq!(
                reference.unwrap_err().to_string(),
                "field `COE.xyz`: unknown field"
            ),
        }
    }
}

/// Bytes that steer a JSON reader: structure, escapes, whitespace, digits, a non-UTF-8 byte.
const STEER: &[u8] = b"\"\\{}:, \t0x9aZ\xff-";

#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Replace(prop::sample::Index, u8),
    /// Copy a span of the line (a member, a key, part of a value) elsewhere in it.
    Splice(
        prop::sample::Index,
        prop::sample::Index,
        prop::sample::Index,
    ),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![prop::sample::select(STEER), any::<u8>()];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        (any::<prop::sample::Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), byte).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(line: &mut Vec<u8>, m: &Mutation) {
    if line.is_empty() {
        return;
    }
    match m {
        Mutation::Delete(i) => {
            line.remove(i.index(line.len()));
        }
        Mutation::Insert(i, b) => line.insert(i.index(line.len() + 1), *b),
        Mutation::Replace(i, b) => {
            let at = i.index(line.len());
            line[at] = *b;
        }
        Mutation::Splice(from, len, to) => {
            let start = from.index(line.len());
            let end = start + len.index(line.len() - start).min(80);
            let span = line[start..=end.min(line.len() - 1)].to_vec();
            let at = to.index(line.len() + 1);
            line.splice(at..at, span);
        }
        Mutation::Truncate(i) => line.truncate(i.index(line.len())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_capture_lines_get_the_tokenizers_answer(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        // Read once per process: proptest runs the body thousands of times.
        static LINES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let lines = LINES.get_or_init(capture_lines);
        let mut line = lines[pick.index(lines.len())].clone();
        for m in &muts {
            apply(&mut line, m);
        }
        agree(&line, &mut RecordParser::new())?;
    }
}
