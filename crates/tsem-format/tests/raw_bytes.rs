//! Kernel exports carry raw bytes: a pathname, a comm or a module name may hold invalid UTF-8 and
//! unescaped control characters. Such lines are read, mapped over the raw bytes (checked by an
//! independent Python computation), re-emitted byte for byte, and refused only in strict mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tsem_core::event::Cell;
use tsem_core::hash::HashAlg;
use tsem_core::map::{Mapper, Mapping};
use tsem_format::{
    Record, RecordKind, RecordParser, Strictness, event_to_json, parse_event, parse_record,
};
use tsem_testdata::raw_kernel::{file_open_line, kmod_line, python_coefficient};

/// Pathnames as the kernel may print them: an anonymous file's garbage name, a raw tab, raw 0x01
/// and 0xff bytes, a quote and a backslash (escaped by the kernel), a lone UTF-8 lead byte.
const PATHNAMES: &[&[u8]] = &[
    b"/tmp/a\tb",
    b"/tmp/\x01\xff\xfe",
    b"/memfd:\x8f\xff\x00\x1b[31m (deleted)",
    b"/home/u/\"q\"\\x\tend\xc3",
    "/home/u/caf\u{e9}\u{202e}txt.exe".as_bytes(),
];

#[test]
fn raw_pathnames_map_to_the_coefficient_over_their_bytes() {
    let mut m = Mapper::new(HashAlg::Sha256, Mapping::Model0);
    for p in PATHNAMES {
        let line = file_open_line(b"a\tb\x01\xff", p);
        let ev = parse_event(&line).unwrap();
        let Cell::File(f) = &ev.cell else { panic!() };
        assert_eq!(f.path.pathname.as_bytes(), *p);
        assert_eq!(ev.header.process.as_bytes(), b"a\tb\x01\xff");
        let Some(want) = python_coefficient("file_open", p) else {
            return;
        };
        assert_eq!(m.coefficient(&ev).to_hex(), want, "pathname {p:?}");
    }
    let name = b"net-pf-\x01\xff\t-x";
    let ev = parse_event(&kmod_line(b"modprobe", name)).unwrap();
    let Some(want) = python_coefficient("kernel_module_request", name) else {
        return;
    };
    assert_eq!(m.coefficient(&ev).to_hex(), want);
}

#[test]
fn raw_lines_re_emit_byte_for_byte() {
    let mut parser = RecordParser::new();
    for p in PATHNAMES {
        for line in [file_open_line(b"c\x01\xff", p), kmod_line(b"\tm", p)] {
            let Record::Event { kind, event } = parser.parse(&line).unwrap() else {
                panic!()
            };
            assert_eq!(kind, RecordKind::Event);
            assert_eq!(event_to_json(&event, kind), line, "pathname {p:?}");
            assert_eq!(parse_record(&line).unwrap(), Record::Event { kind, event });
        }
    }
}

#[test]
fn strict_json_refuses_raw_bytes_naming_the_field() {
    let mut strict = RecordParser::with_strictness(Strictness::Json);
    let e = strict
        .parse(&file_open_line(b"cat", b"/tmp/a\tb"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in `file_open.file.path.pathname`: unescaped control character"),
        "{e}"
    );
    let e = strict
        .parse(&file_open_line(b"c\xffat", b"/tmp/x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("in `event.process`: invalid UTF-8"), "{e}");
    // The same record in plain text is strict JSON.
    strict.parse(&file_open_line(b"cat", b"/tmp/x")).unwrap();
}
