//! `proc-pid-v1`: procfs paths name processes by pid, and pids are assigned anew in every run.

use alloc::string::String;
use alloc::vec::Vec;

/// `/1234/maps` → `/self/maps` for the task's own pid, `/%pid/maps` for any other; the same for
/// `/N/task/M/...`. Pids are assigned anew in every run, so no model can name them.
pub(super) fn proc_pid(path: &mut String, own: Option<u64>) {
    let numeric = |c: &str| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
    let name = |c: &str, what: &str| -> String {
        if own.is_some_and(|p| c.parse::<u64>().ok() == Some(p)) {
            "self".into()
        } else {
            alloc::format!("%{what}")
        }
    };
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 2 || !parts[0].is_empty() || !numeric(parts[1]) {
        return;
    }
    let mut out: Vec<String> = parts.iter().map(|p| String::from(*p)).collect();
    out[1] = name(parts[1], "pid");
    if parts.len() > 3 && parts[2] == "task" && numeric(parts[3]) {
        out[3] = name(parts[3], "tid");
    }
    *path = out.join("/");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_pids_are_self_or_any() {
        for (p, own, want) in [
            ("/4242/maps", Some(4242), "/self/maps"),
            ("/4243/maps", Some(4242), "/%pid/maps"),
            ("/4242/task/4250/stat", Some(4250), "/%pid/task/self/stat"),
            ("/meminfo", Some(1), "/meminfo"),
            ("/12x/maps", Some(1), "/12x/maps"),
        ] {
            let mut s = String::from(p);
            proc_pid(&mut s, own);
            assert_eq!(s, want);
        }
    }
}
