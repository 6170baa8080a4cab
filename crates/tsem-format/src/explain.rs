//! Explaining forensic events: for an event outside the model, the nearest event the model was
//! learned from and the exact fields in which they differ, so a denial can be understood (and the
//! narrowest model change chosen) without reading raw coefficients.

use tsem_core::event::Event;
use tsem_core::raw::escape;

use crate::event_json::{RecordKind, event_to_json};
use crate::json::{Document, Member, Value};

/// One differing field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// Dotted path, e.g. `file_open.file.path.pathname`.
    pub field: String,
    /// The forensic event's value, escaped for people (`None`: the field is absent).
    pub ours: Option<String>,
    /// The nearest in-model event's value.
    pub theirs: Option<String>,
}

/// Why an event is outside the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Index of the nearest candidate.
    pub nearest: usize,
    /// Fields of the COE and CELL that differ (the header's bookkeeping fields are ignored).
    pub differences: Vec<FieldDiff>,
}

/// Leaf fields of an event, as (dotted path, value), without the header's bookkeeping (pid,
/// numbers, times) that never enters a coefficient.
fn leaves(ev: &Event) -> Vec<(String, String)> {
    let line = event_to_json(ev, RecordKind::Trajectory);
    // Values are the kernel's bytes; they are compared and shown in their escaped rendering,
    // which is one-to-one, so equal renderings mean equal bytes.
    let mut doc = Document::new();
    let mut out = Vec::new();
    if doc.parse(&line).is_ok() {
        walk(&doc, doc.root(), "", &mut out);
    }
    const IGNORED: [&str; 8] = [
        "event.pid",
        "event.tnum",
        "event.context",
        "event.number",
        "event.ts",
        "event.ttd",
        "event.p_ttd",
        "event.process",
    ];
    out.retain(|(k, _)| !IGNORED.contains(&k.as_str()));
    out
}

fn walk(doc: &Document<'_>, members: &[Member<'_>], prefix: &str, out: &mut Vec<(String, String)>) {
    for m in members {
        let key = escape(m.key);
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        match m.value {
            Value::Obj { start, len } => walk(doc, doc.members(start, len), &path, out),
            v @ Value::Str { .. } => {
                let shown = v.as_bytes().map(|b| escape(&b).to_string());
                out.push((path, shown.unwrap_or_default()))
            }
        }
    }
}

fn diff(a: &[(String, String)], b: &[(String, String)]) -> Vec<FieldDiff> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.iter().find(|(kb, _)| kb == k) {
            Some((_, vb)) if vb == v => {}
            other => d.push(FieldDiff {
                field: k.clone(),
                ours: Some(v.clone()),
                theirs: other.map(|(_, vb)| vb.clone()),
            }),
        }
    }
    for (k, v) in b {
        if !a.iter().any(|(ka, _)| ka == k) {
            d.push(FieldDiff {
                field: k.clone(),
                ours: None,
                theirs: Some(v.clone()),
            });
        }
    }
    d
}

/// The object an event is about, when it has one path (file, dentry).
fn object_path(ev: &Event) -> Option<&tsem_core::event::PathRef> {
    use tsem_core::event::Cell;
    if let Some(f) = ev.file() {
        return Some(&f.path);
    }
    match &ev.cell {
        Cell::InodeCreate { dentry, .. }
        | Cell::InodeMknod { dentry, .. }
        | Cell::InodeSymlink { dentry, .. }
        | Cell::InodeDirEntry { dentry, .. }
        | Cell::InodeSetattr { dentry, .. }
        | Cell::InodeSetxattr { dentry, .. }
        | Cell::InodeXattr { dentry, .. }
        | Cell::InodeGetattr(dentry)
        | Cell::Dentry(dentry) => Some(&dentry.path),
        _ => None,
    }
}

/// The candidate of the same event type nearest to `ev`: one about the same path first (a read
/// of `/etc/hostname` is explained by an earlier read of `/etc/hostname`, however many other
/// fields a library load shares with it), then the one differing in the fewest fields; and those
/// fields. `None` if no candidate has the same type.
pub fn explain(ev: &Event, candidates: &[Event]) -> Option<Explanation> {
    let ours = leaves(ev);
    let path = object_path(ev).map(|p| &p.pathname);
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.event_type() == ev.event_type())
        .map(|(i, c)| {
            let other_path = path.is_some() && object_path(c).map(|p| &p.pathname) != path;
            (i, other_path, diff(&ours, &leaves(c)))
        })
        .min_by_key(|(_, other_path, d)| (*other_path, d.len()))
        .map(|(i, _, d)| (i, d))
        .map(|(nearest, differences)| Explanation {
            nearest,
            differences,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_event;

    const A: &str = r#"{"event": {"context": "1", "number": "3", "process": "cat", "type": "file_open", "ttd": "5", "p_ttd": "5", "task_id": "00", "p_task_id": "00", "ts": "1"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x0"}, "file_open": {"file": {"flags": "32768", "inode": {"uid": "0", "gid": "0", "mode": "0100644", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "00000000000000000000000000000000"}, "path": {"type": "root", "pathname": "/etc/passwd"}, "digest": "aa"}}}"#;

    #[test]
    fn names_the_differing_fields_of_the_nearest_event() {
        let allowed = parse_event(A).unwrap();
        let other_file = parse_event(
            &A.replace("/etc/passwd", "/etc/shadow")
                .replace("\"aa\"", "\"bb\""),
        )
        .unwrap();
        let swapped = parse_event(
            &A.replace("\"aa\"", "\"cc\"")
                .replace("\"ts\": \"1\"", "\"ts\": \"9\""),
        )
        .unwrap();
        let e = explain(&swapped, &[other_file, allowed]).unwrap();
        assert_eq!(e.nearest, 1);
        // Same path first, even when another file's read shares more fields.
        let lib = parse_event(&A.replace("/etc/passwd", "/lib/libc.so.6")).unwrap();
        let hostname = parse_event(
            &A.replace("/etc/passwd", "/etc/hostname")
                .replace("\"32768\"", "\"32769\"")
                .replace("0100644", "0100600"),
        )
        .unwrap();
        let read = parse_event(
            &A.replace("/etc/passwd", "/etc/hostname")
                .replace("\"aa\"", "\"dd\""),
        )
        .unwrap();
        assert_eq!(explain(&read, &[lib, hostname]).unwrap().nearest, 1);
        assert_eq!(
            e.differences,
            vec![FieldDiff {
                field: "file_open.file.digest".into(),
                ours: Some("cc".into()),
                theirs: Some("aa".into())
            }]
        );
    }
}
