//! Reading a task's identity and credentials from `/proc/<tid>/status`, and the mount table.

use tsem_core::event::Coe;

/// Errors reading procfs.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the task is gone, or no permission).
    #[error("reading {path}: {source}")]
    Read {
        /// The procfs path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A field was missing or malformed.
    #[error("{path}: missing or malformed field {field}")]
    Field {
        /// The procfs path.
        path: String,
        /// The field name.
        field: &'static str,
    },
}

/// The parts of `/proc/<tid>/status` the sensor uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `Name:` (the task's comm).
    pub name: String,
    /// `Tgid:`.
    pub tgid: i32,
    /// `PPid:`.
    pub ppid: i32,
    /// `Umask:`.
    pub umask: u32,
    /// The credentials as TSEM's COE.
    pub coe: Coe,
    /// `Groups:` (supplementary groups).
    pub groups: Vec<u32>,
    /// `CapInh:`.
    pub capinh: u64,
    /// `CapPrm:`.
    pub capprm: u64,
    /// The process's number in the task's own (innermost) pid namespace: the last of `NStgid:`.
    pub ns_tgid: Option<i32>,
    /// The thread's number there: the last of `NSpid:`.
    pub ns_tid: Option<i32>,
}

fn four(v: &str) -> Option<[u32; 4]> {
    let mut it = v.split_whitespace().map(|x| x.parse::<u32>());
    let a = [
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next()?.ok()?,
    ];
    Some(a)
}

/// Parse the text of a status file. `path` only labels errors.
pub fn parse_status(text: &str, path: &str) -> Result<Status, ProcError> {
    let err = |field| ProcError::Field {
        path: path.to_string(),
        field,
    };
    let mut s = Status::default();
    let (mut have_uid, mut have_gid, mut have_cap, mut have_tgid) = (false, false, false, false);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            // comm may hold any byte but '\n'; the kernel escapes nothing but '\\' and '\n' here.
            "Name" => s.name = v.replace("\\\\", "\\").replace("\\n", "\n"),
            "Tgid" => {
                s.tgid = v.parse().map_err(|_| err("Tgid"))?;
                have_tgid = true;
            }
            "PPid" => s.ppid = v.parse().map_err(|_| err("PPid"))?,
            "Umask" => s.umask = u32::from_str_radix(v, 8).map_err(|_| err("Umask"))?,
            "Uid" => {
                let [r, e, sv, fs] = four(v).ok_or_else(|| err("Uid"))?;
                (s.coe.uid, s.coe.euid, s.coe.suid, s.coe.fsuid) = (r, e, sv, fs);
                have_uid = true;
            }
            "Gid" => {
                let [r, e, sv, fs] = four(v).ok_or_else(|| err("Gid"))?;
                (s.coe.gid, s.coe.egid, s.coe.sgid, s.coe.fsgid) = (r, e, sv, fs);
                have_gid = true;
            }
            "CapEff" => {
                s.coe.capeff = u64::from_str_radix(v, 16).map_err(|_| err("CapEff"))?;
                have_cap = true;
            }
            "CapInh" => s.capinh = u64::from_str_radix(v, 16).map_err(|_| err("CapInh"))?,
            "CapPrm" => s.capprm = u64::from_str_radix(v, 16).map_err(|_| err("CapPrm"))?,
            "NStgid" => s.ns_tgid = v.split_whitespace().last().and_then(|x| x.parse().ok()),
            "NSpid" => s.ns_tid = v.split_whitespace().last().and_then(|x| x.parse().ok()),
            "Groups" => {
                s.groups = v
                    .split_whitespace()
                    .filter_map(|g| g.parse().ok())
                    .collect();
            }
            _ => {}
        }
    }
    if !have_uid {
        return Err(err("Uid"));
    }
    if !have_gid {
        return Err(err("Gid"));
    }
    if !have_cap {
        return Err(err("CapEff"));
    }
    if !have_tgid {
        return Err(err("Tgid"));
    }
    Ok(s)
}

/// Read `/proc/<tid>/status`.
pub fn read_status(tid: i32) -> Result<Status, ProcError> {
    let path = format!("/proc/{tid}/status");
    let text = read_proc_text(&path).map_err(|source| ProcError::Read {
        path: path.clone(),
        source,
    })?;
    parse_status(&text, &path)
}

/// The text of a small procfs file, in as few calls as it takes: open, one read into a page
/// (a status file is about 1.5 KiB), the read that finds the end, close. `read_to_string`
/// first asks the size (`statx`, which procfs answers with 0) and then reads in growing
/// steps from 32 bytes on: five more calls for every new task's credentials.
pub fn read_proc_text(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Device major.
    pub major: u32,
    /// Device minor.
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: String,
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type (`ext4`, `tmpfs`, `fuse.sshfs`, ...).
    pub fstype: String,
    /// Mount source.
    pub source: String,
}

fn unescape(s: &str) -> String {
    // mountinfo octal-escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        if f.len() < 5 || p.len() < 2 {
            continue;
        }
        let Some((ma, mi)) = f[2].split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        out.push(Mount {
            major,
            minor,
            root: unescape(f[3]),
            mount_point: unescape(f[4]),
            fstype: p[0].to_string(),
            source: unescape(p[1]),
        });
    }
    out
}

/// The mount of device (`major`, `minor`) whose mount point is the longest prefix of `path`.
pub fn mount_for<'a>(
    mounts: &'a [Mount],
    major: u32,
    minor: u32,
    path: &[u8],
) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| m.major == major && m.minor == minor && under(path, m.mount_point.as_bytes()))
        .max_by_key(|m| m.mount_point.len())
}

fn under(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// `dentry_path_raw()` of absolute `path` on `m`: the path from the filesystem's root.
/// The path's bytes are kept as they are (a name need not be UTF-8).
pub fn dentry_path(m: &Mount, path: &[u8]) -> Vec<u8> {
    let rest = if m.mount_point == "/" {
        path
    } else {
        &path[m.mount_point.len().min(path.len())..]
    };
    let mut s = if m.root == "/" {
        Vec::new()
    } else {
        m.root.as_bytes().to_vec()
    };
    s.extend_from_slice(rest);
    if s.is_empty() {
        s.push(b'/');
    }
    s
}

/// One file-backed line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// PROT_* bits from the permissions column.
    pub prot: u32,
    /// Device major.
    pub major: u32,
    /// Device minor.
    pub minor: u32,
    /// Inode.
    pub ino: u64,
    /// Path as printed.
    pub path: String,
    /// The address range as printed (`start-end`, hex), which names the mapping under
    /// `/proc/<pid>/map_files/`.
    pub range: String,
}

/// The file-backed mappings of a maps file (anonymous and `[special]` lines are skipped).
pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(_off), Some(dev), Some(ino)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let path = it.next().unwrap_or("").trim_start();
        let Ok(ino) = ino.parse::<u64>() else {
            continue;
        };
        if ino == 0 || !path.starts_with('/') {
            continue;
        }
        let Some((ma, mi)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (u32::from_str_radix(ma, 16), u32::from_str_radix(mi, 16))
        else {
            continue;
        };
        let b = perms.as_bytes();
        let mut prot = 0;
        if b.first() == Some(&b'r') {
            prot |= libc::PROT_READ as u32;
        }
        if b.get(1) == Some(&b'w') {
            prot |= libc::PROT_WRITE as u32;
        }
        if b.get(2) == Some(&b'x') {
            prot |= libc::PROT_EXEC as u32;
        }
        out.push(MapEntry {
            prot,
            major,
            minor,
            ino,
            path: path.to_string(),
            range: range.to_string(),
        });
    }
    out
}

/// The processes descending from `pid` now (children, theirs, ...), from `/proc/*/stat`. A
/// process forked meanwhile can be missed: callers that must stop a tree repeat until empty.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<i32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((p, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(q) = frontier.pop() {
        for (c, _) in parent_of.iter().filter(|(_, pp)| *pp == q) {
            out.push(*c);
            frontier.push(*c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t42\nNgid:\t0\nPid:\t43\nPPid:\t7\n\
TracerPid:\t0\nUid:\t1000\t1001\t1002\t1003\nGid:\t100\t101\t102\t103\nFDSize:\t64\nGroups:\t4 24 27 \n\
CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t000001ffffffffff\n";

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS, "x").unwrap();
        assert_eq!(s.name, "cat");
        assert_eq!((s.tgid, s.ppid, s.umask), (42, 7, 0o022));
        assert_eq!(
            (s.coe.uid, s.coe.euid, s.coe.suid, s.coe.fsuid),
            (1000, 1001, 1002, 1003)
        );
        assert_eq!(
            (s.coe.gid, s.coe.egid, s.coe.sgid, s.coe.fsgid),
            (100, 101, 102, 103)
        );
        assert_eq!(s.coe.capeff, 0x1ff_ffff_ffff);
        assert_eq!(s.groups, vec![4, 24, 27]);
        assert_eq!((s.ns_tgid, s.ns_tid), (None, None));
        // A task in a container's pid namespace: its numbers there are the last of each list.
        let nested = format!("{STATUS}NStgid:\t42\t1\nNSpid:\t43\t2\n");
        let s = parse_status(&nested, "x").unwrap();
        assert_eq!((s.tgid, s.ns_tgid, s.ns_tid), (42, Some(1), Some(2)));
    }

    #[test]
    fn status_missing_field_is_an_error() {
        let t = STATUS.replace("CapEff", "CapXxx");
        assert!(matches!(
            parse_status(&t, "x"),
            Err(ProcError::Field {
                field: "CapEff",
                ..
            })
        ));
        let t = STATUS.replace("Uid:\t1000\t1001\t1002\t1003", "Uid:\t1000");
        assert!(matches!(
            parse_status(&t, "x"),
            Err(ProcError::Field { field: "Uid", .. })
        ));
    }

    #[test]
    fn own_status_parses() {
        let s = read_status(std::process::id() as i32).unwrap();
        assert_eq!(s.tgid, std::process::id() as i32);
    }

    #[test]
    fn maps_lines() {
        let t = "55d0a000-55d0b000 r--p 00000000 fe:01 1311 /usr/bin/cat\n\
                 55d0b000-55d0f000 r-xp 00001000 fe:01 1311 /usr/bin/cat\n\
                 55d11000-55d12000 rw-p 00005000 fe:01 1311 /usr/bin/cat\n\
                 7f00-7f01 rw-p 00000000 00:00 0 \n\
                 7ffd-7ffe r-xp 00000000 00:00 0                          [vdso]\n";
        let m = parse_maps(t);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].prot, m[1].prot, m[2].prot), (1, 5, 3));
        assert_eq!((m[0].major, m[0].minor, m[0].ino), (0xfe, 1, 1311));
        assert_eq!(m[0].path, "/usr/bin/cat");
    }

    #[test]
    fn mountinfo_and_dentry_path() {
        let t = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                 30 22 0:25 / /tmp rw - tmpfs tmpfs rw\n\
                 31 22 254:0 /srv/data /mnt/my\\040data rw - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 3);
        assert_eq!(m[2].mount_point, "/mnt/my data");
        let tmp = mount_for(&m, 0, 25, b"/tmp/x/y").unwrap();
        assert_eq!(dentry_path(tmp, b"/tmp/x/y"), b"/x/y");
        assert_eq!(dentry_path(tmp, b"/tmp"), b"/");
        // Names that are not UTF-8 are kept byte for byte.
        assert_eq!(dentry_path(tmp, b"/tmp/\xff\x01/y"), b"/\xff\x01/y");
        let root = mount_for(&m, 254, 0, b"/etc/passwd").unwrap();
        assert_eq!(dentry_path(root, b"/etc/passwd"), b"/etc/passwd");
        let bind = mount_for(&m, 254, 0, b"/mnt/my data/f").unwrap();
        assert_eq!(dentry_path(bind, b"/mnt/my data/f"), b"/srv/data/f");
        assert!(mount_for(&m, 0, 25, b"/tmpfoo").is_none());
    }

    #[test]
    fn proc_text_is_read_whole_past_its_first_page() {
        let own = read_proc_text("/proc/self/status").unwrap();
        assert!(own.starts_with("Name:") && own.ends_with('\n'));
        assert_eq!(
            read_status(std::process::id() as i32).unwrap().tgid,
            std::process::id() as i32
        );
        // Longer than the first buffer: a regular file of 10 000 bytes comes back whole.
        let dir = std::env::temp_dir().join(format!("tsem-proctext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("long");
        let text: String = (0..10_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        std::fs::write(&f, &text).unwrap();
        let back = read_proc_text(f.to_str().unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back, text);
    }
}
