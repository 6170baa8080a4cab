//! `proc-pid-v1`: procfs paths name processes by pid, and pids are assigned anew in every run.

use alloc::vec::Vec;

use crate::raw::RawStr;

/// `/1234/maps` → `/self/maps` for the task's own pid, `/%pid/maps` for any other; the same for
/// `/N/task/M/...`. Pids are assigned anew in every run, so no model can name them. Every other
/// byte of the path is kept as it is (procfs names need not be UTF-8: a `comm`-named entry, a
/// file under `/proc/N/fd/` shown by its target).
pub(super) fn proc_pid(path: &mut RawStr, own: Option<u64>) {
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    if parts.len() < 2 || !parts[0].is_empty() || !numeric(parts[1]) {
        return;
    }
    let name = |c: &[u8], what: &'static [u8]| -> &'static [u8] {
        if own.is_some() && value(c) == own {
            b"self"
        } else {
            what
        }
    };
    let mut out: Vec<&[u8]> = parts.clone();
    out[1] = name(parts[1], b"%pid");
    if parts.len() > 3 && parts[2] == b"task" && numeric(parts[3]) {
        out[3] = name(parts[3], b"%tid");
    }
    *path = out.join(&b'/').into();
}

/// Whether a component is all decimal digits (a pid or a tid, of this task or another).
fn numeric(c: &[u8]) -> bool {
    !c.is_empty() && c.iter().all(u8::is_ascii_digit)
}

/// The number a component of decimal digits spells, if a u64 holds it (a longer one is no pid
/// of this task, but still some pid).
fn value(c: &[u8]) -> Option<u64> {
    c.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_pids_are_self_or_any() {
        for (p, own, want) in [
            (&b"/4242/maps"[..], Some(4242), &b"/self/maps"[..]),
            (b"/4243/maps", Some(4242), b"/%pid/maps"),
            (b"/4242/task/4250/stat", Some(4250), b"/%pid/task/self/stat"),
            (b"/meminfo", Some(1), b"/meminfo"),
            (b"/12x/maps", Some(1), b"/12x/maps"),
            (b"/7/fd/\xff\tx", Some(7), b"/self/fd/\xff\tx"),
            (b"/\xff12/maps", Some(12), b"/\xff12/maps"),
            (b"/99999999999999999999999/maps", Some(1), b"/%pid/maps"),
        ] {
            let mut s = RawStr::from(p);
            proc_pid(&mut s, own);
            assert_eq!(s.as_bytes(), want, "{}", RawStr::from(p));
        }
    }
}
