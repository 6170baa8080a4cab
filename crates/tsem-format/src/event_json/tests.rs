use super::*;
use tsem_core::event::Cell;

#[test]
fn numbers_follow_strtoll_base0() {
    assert_eq!(parse_num(b"0100755"), Some(0o100755));
    assert_eq!(parse_num(b"0x1ffffffffff"), Some(0x1ffffffffff));
    assert_eq!(parse_num(b"0"), Some(0));
    assert_eq!(parse_num(b"-1"), Some(u64::MAX));
    assert_eq!(parse_num(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_num(b""), None);
    assert_eq!(parse_num(b"12a"), None);
    assert_eq!(parse_num(b"0x"), None);
    assert_eq!(parse_num(b"09"), None);
    assert_eq!(parse_num(b"0x+1"), None);
    assert_eq!(parse_num(b"18446744073709551616"), None);
    assert_eq!(
        parse_num(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
    assert_eq!(parse_num(b"0xffffffffffffffff"), Some(u64::MAX));
    assert_eq!(parse_num(b"0x10000000000000000"), None);
    assert_eq!(parse_num(b"01777777777777777777777"), Some(u64::MAX));
    assert_eq!(parse_num(b"02000000000000000000000"), None);
    assert_eq!(parse_num(b"-0x8000000000000000"), Some(1 << 63));
}

const LINE: &str = r#"{"event": {"context": "1", "number": "3", "process": "quixote", "type": "file_open", "ttd": "1095", "p_ttd": "1095", "task_id": "8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb", "p_task_id": "8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb", "ts": "1316795"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x1ffffffffff"}, "file_open": {"file": {"flags": "32800", "inode": {"uid": "0", "gid": "0", "mode": "0100755", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "e896110b42b24dbca89c7caa36961685"}, "path": {"dev": {"major": "8", "minor": "3"}, "type": "root", "pathname": "/usr/bin/bash"}, "digest": "59474588a312b6b6e73e5a42a59bf71e62b55416b6c9d5e4a6e1c630c2a9ecd4"}}}"#;

#[test]
fn round_trips_a_trajectory_line() {
    let ev = parse_event(LINE).unwrap();
    assert_eq!(event_to_json(&ev, RecordKind::Trajectory), LINE.as_bytes());
}

#[test]
fn errors_name_the_field() {
    let err = |line: &str| parse_event(line).unwrap_err().to_string();
    let e = err(&LINE.replace("\"0100755\"", "\"0100x55\""));
    assert!(
        e.starts_with("field `file_open.file.inode.mode`: not a number"),
        "{e}"
    );
    let e = err(&LINE.replace("\"type\": \"file_open\"", "\"type\": \"file_opem\""));
    assert!(e.contains("unknown event type"), "{e}");
    let e = err(&LINE.replace("\"sda3\"", "\"sda3\", \"extra\": \"1\""));
    assert!(
        e.contains("`file_open.file.inode.extra`: unknown field"),
        "{e}"
    );
    let e = err(&LINE.replace("\"ts\": \"1316795\"", "\"ts\": \"1316795\", \"ts\": \"1\""));
    assert!(e.contains("`event.ts`: duplicate key"), "{e}");
    let e = err(&LINE.replace("59474588", "5947458z"));
    assert!(e.contains("file_open.file.digest"), "{e}");
}

#[test]
fn export_records() {
    let agg = r#"{"export": {"type": "aggregate"}, "aggregate": {"value": "00ff"}}"#;
    assert_eq!(
        parse_record(agg).unwrap(),
        Record::Aggregate(Digest::from_hex("00ff").unwrap())
    );
    let log = r#"{"export": {"type": "log"}, "log": {"process": "cat", "event": "file_open", "action": "DENY"}}"#;
    assert!(matches!(parse_record(log).unwrap(), Record::Log(_)));
    let ev = format!(r#"{{"export": {{"type": "event"}}, {}"#, &LINE[1..]);
    let Record::Event { kind, event } = parse_record(&ev).unwrap() else {
        panic!()
    };
    assert_eq!(kind, RecordKind::Event);
    assert_eq!(event_to_json(&event, RecordKind::Event), ev.as_bytes());
}

/// LINE with the comm and the pathname replaced by raw bytes the kernel may print.
fn raw_line(comm: &[u8], pathname: &[u8]) -> Vec<u8> {
    let l = LINE
        .replace("\"quixote\"", "\"COMM\"")
        .replace("/usr/bin/bash", "PATH");
    let (a, rest) = l.split_once("COMM").unwrap();
    let (b, c) = rest.split_once("PATH").unwrap();
    [a.as_bytes(), comm, b.as_bytes(), pathname, c.as_bytes()].concat()
}

#[test]
fn kernel_bytes_read_and_re_emit_byte_for_byte() {
    // The kernel escapes a quote and a backslash (`\\\"` in the line); the rest is raw.
    let line = raw_line(b"a\tb\x01", b"/tmp/\xff\xfe\tx\x01y\x7f\\\\\\\"q");
    let ev = parse_event(&line).unwrap();
    assert_eq!(ev.header.process, *b"a\tb\x01".as_slice());
    let Cell::File(f) = &ev.cell else { panic!() };
    assert_eq!(
        f.path.pathname,
        *b"/tmp/\xff\xfe\tx\x01y\x7f\\\"q".as_slice()
    );
    assert_eq!(event_to_json(&ev, RecordKind::Trajectory), line);
}

#[test]
fn strict_json_reads_and_writes_only_rfc_8259() {
    let line = raw_line(b"cat", b"/tmp/a\tb");
    let mut strict = RecordParser::with_strictness(Strictness::Json);
    let e = strict.parse(&line).unwrap_err().to_string();
    assert!(
        e.contains("in `file_open.file.path.pathname`: unescaped control character"),
        "{e}"
    );
    // Written strictly, the tab is an escape, and the strict reader gives the same event.
    let ev = parse_event(&line).unwrap();
    let mut out = Vec::new();
    write_event_json(&mut out, &ev, RecordKind::Trajectory).unwrap();
    assert!(
        std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""pathname": "/tmp/a\u0009b""#)
    );
    assert_eq!(strict.parse_event(&out).unwrap(), ev);
    // Bytes that are not UTF-8 have no strict spelling: refused, naming the field.
    let ev = parse_event(&raw_line(b"cat", b"/tmp/\xff")).unwrap();
    let mut out = b"kept".to_vec();
    let e = write_event_json(&mut out, &ev, RecordKind::Trajectory)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("field `file_open.file.path.pathname`: byte 5 is not UTF-8"),
        "{e}"
    );
    assert!(e.contains(r#""/tmp/\xff""#), "{e}");
    assert_eq!(out, b"kept");
    let e = strict
        .parse(&raw_line(b"cat", b"/tmp/\xff"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in `file_open.file.path.pathname`: invalid UTF-8"),
        "{e}"
    );
}

#[test]
fn errors_show_raw_bytes_escaped() {
    let l = raw_line(b"cat", b"/x");
    let at = l.windows(9).position(|w| w == b"\"0100755\"").unwrap();
    let line = [&l[..at], b"\"01\xff\t\"", &l[at + 9..]].concat();
    let e = parse_event(&line).unwrap_err().to_string();
    assert!(
        e.starts_with(r#"field `file_open.file.inode.mode`: not a number: "01\xff\t""#),
        "{e}"
    );
}
