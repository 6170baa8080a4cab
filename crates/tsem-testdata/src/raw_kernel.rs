//! Synthetic kernel-export lines that carry raw bytes, and an independent check of their
//! coefficients.
//!
//! The TSEM kernel prints a pathname, a comm or a module name with `%s`: its bytes as they are
//! (post-v4 escapes only `"` and `\`). These builders write such lines byte by byte, and
//! [`python_coefficient`] computes the coefficient the kernel would give with Python's `hashlib`
//! from the raw string itself (never from the line or from tsem), over exactly the bytes
//! docs/tsem-spec.md §1.4 and §3.1 prescribe.

use std::process::Command;

/// TASK_ID of the synthetic task.
pub const TASK_ID: &str = "8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb";
/// PTASK_ID of the synthetic task.
pub const P_TASK_ID: &str = "59474588a312b6b6e73e5a42a59bf71e62b55416b6c9d5e4a6e1c630c2a9ecd4";
/// Digest of the opened file's contents.
pub const FILE_DIGEST: &str = "575c788d0a2a1ab7d9f7e1dbd8b4a1b3b2f1c0d9e8f7a6b5c4d3e2f1a0b9c8d7";

/// `s` as the post-v4 kernel prints it inside quotes: `"` and `\` escaped, every other byte raw.
fn kernel_str(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn header(comm: &[u8], event: &str) -> Vec<u8> {
    [
        br#"{"export": {"type": "event"}, "event": {"pid": "100", "tnum": "7", "context": "1", "number": "3", "process": ""#.as_slice(),
        &kernel_str(comm),
        format!(
            r#"", "type": "{event}", "ttd": "483", "p_ttd": "483", "task_id": "{TASK_ID}", "p_task_id": "{P_TASK_ID}", "ts": "202360"}}, "COE": {{"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x1ffffffffff"}}, "#
        )
        .as_bytes(),
    ]
    .concat()
}

/// A `file_open` event export record (post-v4 layout) whose comm and pathname are raw bytes.
pub fn file_open_line(comm: &[u8], pathname: &[u8]) -> Vec<u8> {
    [
        header(comm, "file_open").as_slice(),
        br#""file_open": {"file": {"flags": "32800", "inode": {"uid": "0", "gid": "0", "mode": "0100755", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "e896110b42b24dbca89c7caa36961685"}, "path": {"dev": {"major": "8", "minor": "3"}, "type": "root", "pathname": ""#,
        &kernel_str(pathname),
        format!(r#""}}, "digest": "{FILE_DIGEST}"}}}}}}"#).as_bytes(),
    ]
    .concat()
}

/// A `kernel_module_request` event export record whose module name is raw bytes.
pub fn kmod_line(comm: &[u8], kmod_name: &[u8]) -> Vec<u8> {
    [
        header(comm, "kernel_module_request").as_slice(),
        br#""kernel_module_request": {"kmod_name": ""#,
        &kernel_str(kmod_name),
        br#""}}"#,
    ]
    .concat()
}

/// The Python program behind [`python_coefficient`] (argv: event, hex of the raw string, TASK_ID,
/// PTASK_ID, file digest). COE: eight u32 ids and u64 capeff; file_open's CELL: u32 flags, INODE
/// (uid, gid, mode, s_magic, s_id[32], s_uuid[16]), dev major/minor, STR(type), STR(pathname),
/// digest; kernel_module_request's CELL: STR(kmod_name); coefficient: the raw event name,
/// PTASK_ID, TASK_ID, HF(COE), HF(CELL). Integers little-endian, STR = u32 length || bytes.
pub const PYTHON: &str = "import hashlib,struct,sys
h=lambda b:hashlib.sha256(b).digest()
S=lambda b:struct.pack('<I',len(b))+b
k,raw,T,P,D=sys.argv[1],*map(bytes.fromhex,sys.argv[2:6])
coe=struct.pack('<8IQ',0,0,0,0,0,0,0,0,0x1ffffffffff)
cell=(struct.pack('<5I',32800,0,0,0o100755,0xef53)+b'sda3'.ljust(32,b'\\0')+bytes.fromhex('e896110b42b24dbca89c7caa36961685')+struct.pack('<2I',8,3)+S(b'root')+S(raw)+D) if k=='file_open' else S(raw)
print(h(k.encode()+P+T+h(coe)+h(cell)).hex())";

/// The model0/sha256 coefficient of [`file_open_line`] (`event` = `file_open`, `raw` = the
/// pathname) or [`kmod_line`] (`kernel_module_request`, the module name), computed by `python3`.
/// `None` (after printing one line saying so) when python3 is not installed.
pub fn python_coefficient(event: &str, raw: &[u8]) -> Option<String> {
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let out = match Command::new("python3")
        .args(["-c", PYTHON, event, &hex, TASK_ID, P_TASK_ID, FILE_DIGEST])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: python3 is not available to check coefficients ({e})");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
