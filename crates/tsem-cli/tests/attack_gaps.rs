//! Attacks on the gaps of issue 9, classes 5-8, each run under `tsem run --enforce` with a model
//! learned from its benign variant, and judged by its effect (what the attack program prints,
//! creates, or gets through to a listener outside the run) and by the summary (forensics or
//! denials counted). The attack program is `attack_gaps.c`, compiled at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::{is_root, stderr};

/// A directory with the compiled attack program, shared by the runs of one test.
struct Lab {
    dir: PathBuf,
    runs: usize,
}

impl Lab {
    fn new(name: &str) -> Self {
        let dir = common::scratch("gaps", name);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attack_gaps.c");
        common::compile(&dir, src.to_str().unwrap(), "attack", &["-pthread"]);
        std::fs::write(dir.join("secret.txt"), "SECRET-BYTES\n").unwrap();
        std::fs::write(dir.join("data.txt"), "public\n").unwrap();
        std::fs::create_dir(dir.join("outside")).unwrap();
        Lab { dir, runs: 0 }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// `tsem run EXTRA --summary-json S -- ./attack ARGS`; returns stdout and the summary.
    fn run(&mut self, extra: &[&str], args: &[&str]) -> (String, serde_json::Value, Output) {
        self.runs += 1;
        let summary = self.dir.join(format!("run{}.summary.json", self.runs));
        let o = common::tsem()
            .arg("run")
            .args(extra)
            .args(["--no-digest-cache", "--summary-json"])
            .arg(&summary)
            .arg("--")
            .arg("./attack")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let s = common::summary_or_null(&summary);
        (String::from_utf8_lossy(&o.stdout).into_owned(), s, o)
    }

    /// Learn `args` into `model`.
    fn learn(&mut self, model: &str, args: &[&str]) -> String {
        let m = self.path(model);
        let (out, s, o) = self.run(&["-o", m.to_str().unwrap()], args);
        assert!(o.status.success(), "learning {args:?}: {}", stderr(&o));
        assert_eq!(s["lost_events"], 0, "{s}");
        out
    }

    /// Enforce `model` on `args`.
    fn enforce(&mut self, model: &str, args: &[&str]) -> (String, serde_json::Value) {
        let m = self.path(model);
        let (out, s, o) = self.run(&["--enforce", "--model", m.to_str().unwrap()], args);
        assert!(s.is_object(), "no summary: {}", stderr(&o));
        (out, s)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The summary counted the attack: an out-of-model event or a refused call.
fn counted(s: &serde_json::Value) -> bool {
    s["forensics_events"].as_u64().unwrap_or(0) >= 1 || s["denied"].as_u64().unwrap_or(0) >= 1
}

#[test]
fn creates_through_a_dangling_symlink_are_described_where_they_land() {
    let mut lab = Lab::new("creat");
    std::os::unix::fs::symlink("outside/created", lab.path("dangling")).unwrap();
    lab.learn("m", &["creat", "plain.txt"]);
    let (out, s) = lab.enforce("m", &["creat", "dangling"]);
    assert!(
        !lab.path("outside/created").exists(),
        "created through the link: {out}"
    );
    assert!(counted(&s), "{s}");
    // The create is performed by the supervisor when the model allows it.
    std::fs::remove_file(lab.path("plain.txt")).unwrap();
    let out = lab.learn("m2", &["creat", "dangling"]);
    assert!(out.contains("creat=") && !out.contains("creat=-1"), "{out}");
    assert_eq!(
        std::fs::read_to_string(lab.path("outside/created")).unwrap(),
        "PWNED\n"
    );
}

#[test]
fn links_of_open_files_are_described_and_refused() {
    let mut lab = Lab::new("link");
    lab.learn("m", &["link_fd", "benign"]);
    let (out, s) = lab.enforce("m", &["link_fd", "attack"]);
    assert!(out.contains("open=3 "), "{out}");
    assert!(!lab.path("outside/by_fd").exists(), "{out}");
    assert!(!lab.path("outside/by_proc").exists(), "{out}");
    // The /proc/self/fd path is described for every user; AT_EMPTY_PATH only where the
    // kernel's own rule (CAP_DAC_READ_SEARCH) lets it reach the hook.
    assert!(counted(&s), "{s} {out}");
    if !is_root() {
        assert!(out.contains("linkat_empty=-1 errno=2"), "{out}");
    }
}

#[test]
fn relative_unix_connects_use_the_checked_address() {
    let mut lab = Lab::new("unix");
    let good = std::os::unix::net::UnixListener::bind(lab.path("good.sock")).unwrap();
    let evil = std::os::unix::net::UnixListener::bind(lab.path("evil.sock")).unwrap();
    evil.set_nonblocking(true).unwrap();
    good.set_nonblocking(true).unwrap();
    lab.learn("m", &["unix", "good.sock"]);
    while good.accept().is_ok() {}
    let (out, s) = lab.enforce("m", &["unix", "good.sock", "evil.sock"]);
    assert!(
        evil.accept().is_err(),
        "a flipped address reached the unchecked socket: {out}"
    );
    assert!(counted(&s), "{s} {out}");
}

#[test]
fn sends_with_a_destination_are_modeled() {
    let mut lab = Lab::new("send");
    let allowed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    allowed.set_nonblocking(true).unwrap();
    let tcp_ok = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_bad = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp_bad.set_nonblocking(true).unwrap();
    let port = |p: u16| p.to_string();
    let (a, t) = (
        port(allowed.local_addr().unwrap().port()),
        port(target.local_addr().unwrap().port()),
    );
    let (ta, tb) = (
        port(tcp_ok.local_addr().unwrap().port()),
        port(tcp_bad.local_addr().unwrap().port()),
    );
    for (mode, good, bad) in [("udp", &a, &t), ("udp_msg", &a, &t), ("tfo", &ta, &tb)] {
        let model = format!("{mode}.model");
        let out = lab.learn(&model, &[mode, good]);
        assert!(out.contains(&format!("{mode}=10 ")), "benign {mode}: {out}");
        let (out, s) = lab.enforce(&model, &[mode, bad]);
        assert!(counted(&s), "{mode}: {s} {out}");
        assert!(out.contains(&format!("{mode}=-1 errno=1")), "{mode}: {out}");
    }
    let mut buf = [0u8; 64];
    assert!(
        target.recv(&mut buf).is_err(),
        "a datagram reached the target"
    );
    assert!(
        allowed.recv(&mut buf).is_ok(),
        "the benign datagram arrived"
    );
    assert!(tcp_bad.accept().is_err(), "TCP Fast Open connected");
}

#[test]
fn sysv_ipc_keys_and_bpf_are_refused_or_modeled() {
    let mut lab = Lab::new("ipc");
    // A segment and a key of this user outside the run, holding secrets.
    let key = 0x7453_0000 + (std::process::id() as i32 & 0xffff);
    // SAFETY: plain SysV calls on a segment this test owns.
    let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0);
    // SAFETY: attaching the segment just created; written within its 4096 bytes.
    unsafe {
        let p = libc::shmat(id, std::ptr::null(), 0) as *mut u8;
        std::ptr::copy_nonoverlapping(c"SECRET-SHM".as_ptr().cast::<u8>(), p, 11);
        libc::shmdt(p.cast());
    }
    let desc = format!("tsem-secret-{}", std::process::id());
    let cdesc = std::ffi::CString::new(desc.clone()).unwrap();
    // SAFETY: add_key with NUL-terminated strings and a payload of the given length.
    let k = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            cdesc.as_ptr(),
            b"SECRET-KEY".as_ptr(),
            10usize,
            -4i32, // KEY_SPEC_USER_KEYRING
        )
    };
    lab.learn("m", &["none"]);
    let (out, s) = lab.enforce("m", &["shm", &key.to_string()]);
    // SAFETY: removing the segment this test created.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    assert!(!out.contains("SECRET-SHM"), "{out}");
    assert!(out.contains("shmget=-1 errno=1"), "{out}");
    assert!(s["sensor"]["refused"].as_u64().unwrap() >= 1, "{s}");
    assert!(counted(&s), "{s}");

    let (out, s) = lab.enforce("m", &["keys", &desc]);
    if k >= 0 {
        assert!(!out.contains("SECRET-KEY"), "{out}");
    }
    assert!(out.contains("request_key=-1 errno=1"), "{out}");
    assert!(out.contains("keyctl_read=-1 errno=1"), "{out}");
    assert!(
        out.contains("add_key=-1 errno=1"),
        "key_alloc is not in the model: {out}"
    );
    assert!(!out.contains("BPF-OK"), "{out}");
    assert!(s["forensics_events"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["sensor"]["refused"].as_u64().unwrap() >= 2, "{s}");
}

#[test]
fn descriptors_from_outside_are_modeled_or_closed() {
    let mut lab = Lab::new("fds");
    let sock = lab.path("srv.sock");
    let mut server = Command::new(lab.path("attack"))
        .args(["serve", sock.to_str().unwrap(), "secret.txt", "3"])
        .current_dir(&lab.dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    server
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    let out = lab.learn("m", &["fetch", sock.to_str().unwrap(), "B"]);
    assert!(out.contains("recvmsg=1 "), "{out}");
    let (out, s) = lab.enforce("m", &["fetch", sock.to_str().unwrap(), "A"]);
    // When the model has it, the descriptor arrives and works.
    let allowed = lab.learn("m2", &["fetch", sock.to_str().unwrap(), "A"]);
    let _ = server.wait();
    assert!(allowed.contains("RECEIVED:SECRET-BYTES"), "{allowed}");
    let inside = lab.learn("m3", &["pass_fd"]);
    assert!(inside.contains("PASSED:public"), "{inside}");
    assert!(
        !out.contains("SECRET-BYTES"),
        "a received descriptor was read: {out}"
    );
    assert!(
        out.contains("recvmsg=1 ") && out.contains("ctrunc=1"),
        "{out}"
    );
    assert!(counted(&s), "{s}");

    // Inherited descriptors: closed unless kept.
    let tsem = env!("CARGO_BIN_EXE_tsem");
    let run = |keep: bool| {
        let keep = if keep { "--keep-fd 3" } else { "" };
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 3<secret.txt; exec {tsem} run --no-digest-cache {keep} -- ./attack inherited"
            ))
            .current_dir(&lab.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let closed = run(false);
    assert!(!closed.contains("SECRET-BYTES"), "{closed}");
    assert!(closed.contains("INHERITED=-1 errno=9"), "{closed}");
    assert!(run(true).contains("INHERITED:SECRET-BYTES"));
}

#[test]
fn memfd_code_is_measured() {
    let mut lab = Lab::new("memfd");
    lab.learn("m", &["memfd", "benign"]);
    let (out, s) = lab.enforce("m", &["memfd", "attack"]);
    assert!(!out.contains("MARKER-RAN"), "swapped memfd code ran: {out}");
    assert!(out.contains("seal=0 "), "{out}");
    assert!(counted(&s), "{s}");
    // Unsealed, its contents could change after the measurement: refused, and counted.
    let (out, s) = lab.enforce("m", &["memfd", "unsealed"]);
    assert!(!out.contains("MARKER-RAN"), "{out}");
    assert!(out.contains("execveat=-1 errno=13"), "{out}");
    assert!(s["sensor"]["refused"].as_u64().unwrap() >= 1, "{s}");
    // Kernel-exact digests (zero for tmpfs) cannot tell the two apart: the switch is real.
    let m = lab.path("exact.model");
    let (_, _, o) = lab.run(
        &["--kernel-exact-digests", "-o", m.to_str().unwrap()],
        &["memfd", "benign"],
    );
    assert!(o.status.success());
    let (out, _, _) = lab.run(
        &[
            "--kernel-exact-digests",
            "--enforce",
            "--model",
            m.to_str().unwrap(),
        ],
        &["memfd", "attack"],
    );
    assert!(out.contains("MARKER-RAN"), "{out}");
}

#[test]
fn stores_through_a_dirty_shared_mapping_are_not_served_from_the_cache() {
    let mut lab = Lab::new("stale");
    // On tmpfs every data file has TSEM's zero digest (pseudo-filesystem rule), so a change of
    // contents is invisible by design there: this test needs a disk-backed directory.
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&lab.dir)
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&fs.stdout).trim(),
        "tmpfs",
        "{}: put TMPDIR (or TSEM_TEST_DIR) on a disk filesystem, as scripts/test.sh does",
        lab.dir.display()
    );
    std::fs::write(lab.path("conf.txt"), "level=1\n").unwrap();
    // The workload opens conf.txt for writing, so learning would make it a pseudonym (its
    // contents free, docs/learning.md); the digest is what this test is about: keep it pinned.
    let m = lab.path("m");
    let (out, _, o) = lab.run(
        &["--no-auto-pseudonyms", "-o", m.to_str().unwrap()],
        &["stale", "benign"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("CONF:level=1"), "{out}");
    let (out, s) = lab.enforce("m", &["stale", "attack"]);
    assert!(!out.contains("CONF:level=9"), "stale digest served: {out}");
    assert!(counted(&s), "{s}");

    // Nor is the digest of a file opened for writing persisted for later runs, even when it
    // did not change in this one; the program's own digest is (the store works).
    let cache = lab.path("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = cache.join("digests");
    // The store leaves out files changed in the last two seconds (their ctime may not have
    // moved yet): let ours age past that, so only the rule under test can leave one out.
    for f in ["attack", "data.txt"] {
        let changed = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(
                    std::os::unix::fs::MetadataExt::ctime(&m) as u64 + 3,
                )
        };
        while std::time::SystemTime::now() < changed(&lab.path(f)) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let o = Command::new(env!("CARGO_BIN_EXE_tsem"))
        .args([
            "run",
            "--digest-cache",
            store.to_str().unwrap(),
            "--",
            "./attack",
        ])
        .arg("rw_open")
        .current_dir(&lab.dir)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("DATA:public"),
        "{}",
        stderr(&o)
    );
    let kept = tsem_sensor::digest_cache::Store::open(&store, tsem_core::HashAlg::Sha256)
        .unwrap()
        .entries();
    let ino =
        |p: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(lab.path(p)).unwrap());
    let has = |i: u64| kept.keys().any(|k| k.ino == i);
    assert!(has(ino("attack")), "{kept:?}");
    assert!(!has(ino("data.txt")), "{kept:?}");
}

#[test]
fn code_mapped_executable_is_not_rewritten() {
    let mut lab = Lab::new("code");
    let mut code = vec![0xb8u8, 0x01, 0, 0, 0, 0xc3];
    code.resize(4096, 0xcc);
    std::fs::write(lab.path("code.bin"), &code).unwrap();
    std::fs::set_permissions(lab.path("code.bin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    for write_first in [false, true] {
        let mut args = vec!["code", "benign"];
        if write_first {
            args.push("first");
        }
        let out = lab.learn("m", &args);
        assert!(!out.contains("MARKER-CODE"), "{out}");
        args[1] = "attack";
        let (out, s) = lab.enforce("m", &args);
        assert!(!out.contains("MARKER-CODE"), "rewritten code ran: {out}");
        assert!(counted(&s), "{s} {out}");
        assert_eq!(std::fs::read(lab.path("code.bin")).unwrap(), code);
    }
}

#[test]
fn sends_and_receives_the_supervisor_performs_keep_their_semantics() {
    let mut lab = Lab::new("recvwait");
    let out = lab.learn("m", &["recv_wait"]);
    assert!(out.contains("recv_signal=-1 errno=4"), "{out}");
    assert!(out.contains("recv_timeout=-1 errno=11"), "{out}");
    // A blocking send larger than the socket buffer is performed whole.
    let out = lab.learn("m2", &["big_send"]);
    assert!(out.contains("big_sendmsg=1048576 "), "{out}");
    assert!(out.contains("read_total=1048576"), "{out}");
}
