//! The handlers against a fake target task (`target::TargetTask`), without a kernel: a target
//! that dies mid-call, a path buffer that flips between reads, a credential or root change,
//! arguments that cannot be decoded. Files are real (under `$TMPDIR`): the supervisor performs
//! opens itself, and what it opened is the effect checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tsem_core::HashAlg;
use tsem_core::event::{Cell, EventType};

use super::target::{Ident, Link, TargetTask};
use super::{Call, Notifier, Reply, Shared};
use crate::event::{EventHandler, RawEvent, Verdict};
use crate::procfs::{self, Status};
use crate::sys::{self, Notif};
use crate::syscalls::Sysno;
use crate::tree::Tree;

/// The task's id; it is the root of the supervisor's tree.
const TID: i32 = 4242;
/// Where the fake's memory starts; each region lies in a page of its own.
const BASE: u64 = 0x10_0000;

/// A region of the fake's memory. Each read that starts at `addr` returns the next version
/// (the last one stays): a buffer another thread rewrites between two reads.
struct Region {
    addr: u64,
    versions: Vec<Vec<u8>>,
    reads: usize,
}

/// The target task, faked: memory regions, a working directory and root under `$TMPDIR`, a
/// status, and a switch that makes it die.
struct Fake {
    mem: Mutex<Vec<Region>>,
    status: Mutex<Status>,
    cwd: PathBuf,
    root: Mutex<Option<PathBuf>>,
    /// What stands for its user namespace (the supervisor's unless a test changes it).
    userns: Mutex<String>,
    dead: AtomicBool,
    accesses: AtomicUsize,
}

fn gone() -> io::Error {
    io::Error::from_raw_os_error(libc::ESRCH)
}

impl Fake {
    fn new(cwd: PathBuf) -> Arc<Self> {
        let mut status = procfs::read_status(std::process::id() as i32).unwrap();
        status.tgid = TID;
        Arc::new(Fake {
            mem: Mutex::new(Vec::new()),
            status: Mutex::new(status),
            cwd,
            root: Mutex::new(None),
            userns: Mutex::new("/proc/self/ns/user".into()),
            dead: AtomicBool::new(false),
            accesses: AtomicUsize::new(0),
        })
    }

    /// Put `versions` at page `page` of the fake's memory; its address.
    fn put(&self, page: u64, versions: &[&[u8]]) -> u64 {
        let addr = BASE + page * 4096;
        self.mem.lock().unwrap().push(Region {
            addr,
            versions: versions.iter().map(|v| v.to_vec()).collect(),
            reads: 0,
        });
        addr
    }

    fn reads_at(&self, addr: u64) -> usize {
        let mem = self.mem.lock().unwrap();
        mem.iter().find(|r| r.addr == addr).map_or(0, |r| r.reads)
    }

    /// One more access; an error when the task is gone.
    fn touch(&self) -> io::Result<()> {
        self.accesses.fetch_add(1, Ordering::SeqCst);
        if self.dead.load(Ordering::SeqCst) {
            return Err(gone());
        }
        Ok(())
    }
}

/// The notifier owns its target; the test keeps a handle on the same fake.
struct Handle(Arc<Fake>);

impl TargetTask for Handle {
    fn read_mem(&self, _tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.touch()?;
        let mut mem = self.0.mem.lock().unwrap();
        for r in mem.iter_mut() {
            let cur = &r.versions[r.reads.min(r.versions.len() - 1)];
            if addr >= r.addr && addr < r.addr + cur.len() as u64 {
                let off = (addr - r.addr) as usize;
                let n = buf.len().min(cur.len() - off);
                buf[..n].copy_from_slice(&cur[off..off + n]);
                if addr == r.addr {
                    r.reads += 1;
                }
                return Ok(n);
            }
        }
        Err(io::Error::from_raw_os_error(libc::EFAULT))
    }

    fn write_mem(&self, _tid: i32, _addr: u64, buf: &[u8]) -> io::Result<usize> {
        self.0.touch()?;
        Ok(buf.len())
    }

    fn status(&self, _tid: i32) -> io::Result<Status> {
        self.0.touch()?;
        Ok(self.0.status.lock().unwrap().clone())
    }

    fn open_link(&self, _tid: i32, link: Link) -> io::Result<OwnedFd> {
        self.0.touch()?;
        let dir = |p: &PathBuf| sys::open(&p.to_string_lossy(), libc::O_PATH | libc::O_DIRECTORY);
        match link {
            Link::Cwd => dir(&self.0.cwd),
            Link::Root => dir(&self.0.root.lock().unwrap().clone().unwrap_or("/".into())),
            Link::Fd(_) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    fn read_link(&self, _tid: i32, link: Link) -> io::Result<Vec<u8>> {
        self.0.touch()?;
        let root = self.0.root.lock().unwrap().clone().unwrap_or("/".into());
        match link {
            Link::Cwd => Ok(self.0.cwd.as_os_str().as_bytes().to_vec()),
            Link::Root => Ok(root.as_os_str().as_bytes().to_vec()),
            Link::Fd(_) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    fn identity(&self, _tid: i32, what: Ident) -> Option<(u64, u64)> {
        self.0.touch().ok()?;
        let own = |p: &str| super::stat_of(p);
        match what {
            Ident::Root => match self.0.root.lock().unwrap().clone() {
                Some(r) => own(&r.to_string_lossy()),
                None => own("/proc/self/root"),
            },
            Ident::MntNs => own("/proc/self/ns/mnt"),
            Ident::NetNs => own("/proc/self/ns/net"),
            Ident::PidNs => own("/proc/self/ns/pid"),
            Ident::UserNs => own(&self.0.userns.lock().unwrap().clone()),
        }
    }

    fn file(&self, _tgid: i32, _fd: i32) -> io::Result<OwnedFd> {
        self.0.touch()?;
        Err(io::Error::from_raw_os_error(libc::EBADF))
    }

    fn pidfd(&self, _tgid: i32) -> io::Result<OwnedFd> {
        self.0.touch()?;
        Err(io::Error::from_raw_os_error(libc::ESRCH))
    }

    fn id_valid(&self, _listener: BorrowedFd<'_>, _id: u64) -> bool {
        self.0.touch().is_ok()
    }
}

/// Allows every event and keeps it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<RawEvent>>>);

impl EventHandler for Recorder {
    fn on_event(&mut self, ev: &RawEvent) -> Verdict {
        self.0.lock().unwrap().push(ev.clone());
        Verdict::allow()
    }
}

impl Recorder {
    fn events(&self) -> Vec<RawEvent> {
        self.0.lock().unwrap().clone()
    }
}

/// A directory of its own under `$TMPDIR`, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tsem-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stat(path: &str) -> (u64, u64) {
    super::stat_of(path).unwrap()
}

fn notifier(fake: &Arc<Fake>, enforcing: bool) -> (Notifier<Recorder>, Recorder) {
    let rec = Recorder::default();
    let alg = HashAlg::Sha256;
    let shared = Arc::new(Shared {
        tree: Mutex::new(Tree::new(TID, alg.size())),
        handler: Mutex::new(rec.clone()),
        counters: Default::default(),
        alg,
        mapping: tsem_core::map::Mapping::default(),
        digests: Default::default(),
        own_userns: stat("/proc/self/ns/user").1,
        own_root: stat("/proc/self/root"),
        view: crate::view::View::host(),
        own_netns: stat("/proc/self/ns/net").1,
        protected: Default::default(),
        objects: Default::default(),
        status: Default::default(),
        capset_claims: Default::default(),
        names: Default::default(),
        injected: Default::default(),
        stop: sys::eventfd().unwrap(),
        mechanism_only: false,
        floor_emulates_opens: false,
        observe: crate::syscalls::Observe::ALL,
        hash_pseudo_exec: true,
        recv_blocks: false,
        enforcing,
        own_mntns: stat("/proc/self/ns/mnt").1,
        fs_varies: Default::default(),
        ending: Default::default(),
    });
    // The listener is never used: the tests stop before the answer is sent.
    let listener = sys::eventfd().unwrap();
    let n = Notifier::with_task(listener, shared, Box::new(Handle(Arc::clone(fake))));
    (n, rec)
}

fn notif(sys: Sysno, args: [u64; 6]) -> Notif {
    Notif {
        id: 1,
        pid: TID as u32,
        nr: sys.nr() as i32,
        arch: 0,
        args,
    }
}

/// The call as the loop would make it, then its answer (never sent).
fn run(n: &mut Notifier<Recorder>, sys: Sysno, args: [u64; 6]) -> (Option<Call>, Reply) {
    match n.begin(notif(sys, args)) {
        Ok(mut call) => {
            n.wear(&mut call).unwrap();
            let r = n.dispatch(&mut call);
            (Some(call), r)
        }
        Err(_) => (None, Reply::Error(libc::EPERM)),
    }
}

fn read_all(fd: &OwnedFd) -> Vec<u8> {
    let mut f = std::fs::File::from(fd.as_fd().try_clone_to_owned().unwrap());
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

const AT_FDCWD: u64 = libc::AT_FDCWD as u64;

#[test]
fn a_target_that_dies_mid_call_is_never_continued() {
    let dir = Dir::new("dead");
    let fake = Fake::new(dir.0.clone());
    let path = fake.put(0, &[b"file\0"]);
    let (mut n, _rec) = notifier(&fake, true);
    let mut needed = 0;
    for &sys in Sysno::ALL {
        fake.dead.store(false, Ordering::SeqCst);
        let Ok(mut call) = n.begin(notif(sys, [path; 6])) else {
            panic!("{}: refused while alive", sys.name());
        };
        n.wear(&mut call).unwrap();
        // The task dies after its notification was received: every read fails from now on.
        fake.dead.store(true, Ordering::SeqCst);
        fake.accesses.store(0, Ordering::SeqCst);
        let reply = n.dispatch(&mut call);
        if fake.accesses.load(Ordering::SeqCst) == 0 {
            // Decided from the registers alone: nothing of the task was needed.
            continue;
        }
        needed += 1;
        assert!(
            matches!(reply, Reply::Gone | Reply::Error(_)),
            "{}: a call that needed its dead target was answered otherwise than Gone or an error",
            sys.name()
        );
    }
    assert!(needed > 40, "only {needed} handlers reached the target");
    // A task already gone when its call arrives: its credentials cannot be read, nothing can
    // be described, and the call is refused and counted as lost.
    fake.dead.store(true, Ordering::SeqCst);
    let before = n.shared.counters.snapshot().lost;
    assert!(
        n.begin(notif(Sysno::Openat, [AT_FDCWD, path, 0, 0, 0, 0]))
            .is_err()
    );
    assert_eq!(n.shared.counters.snapshot().lost, before + 1);
}

#[test]
fn a_path_that_flips_is_described_and_performed_from_one_copy() {
    let dir = Dir::new("flip");
    std::fs::write(dir.0.join("public"), b"public bytes").unwrap();
    std::fs::write(dir.0.join("secret"), b"secret bytes").unwrap();
    let fake = Fake::new(dir.0.clone());
    // Another thread of the task rewrites the buffer right after the first read.
    let path = fake.put(0, &[b"public\0", b"secret\0"]);
    let (mut n, rec) = notifier(&fake, true);
    let (_, reply) = run(&mut n, Sysno::Openat, [AT_FDCWD, path, 0, 0, 0, 0]);
    let Reply::AddFd(fd, _) = reply else {
        panic!("the open was not performed by the supervisor");
    };
    assert_eq!(fake.reads_at(path), 1, "the path was read more than once");
    assert_eq!(
        read_all(&fd),
        b"public bytes",
        "the file opened is not the one read"
    );
    let events = rec.events();
    assert_eq!(events.len(), 1);
    let Cell::File(f) = &events[0].event.cell else {
        panic!("not a file_open: {:?}", events[0].event.cell);
    };
    assert!(f.path.pathname.to_str().unwrap().ends_with("/public"));
    assert!(events[0].emulated);
}

/// Whether this process may switch a thread's credentials (root, as the tests run in CI;
/// not as uid 65534).
fn may_wear() -> bool {
    let setid_pcap = (1u64 << 6) | (1 << 7) | (1 << 8);
    sys::thread_creds().unwrap().capeff & setid_pcap == setid_pcap
}

/// `openat(AT_FDCWD, name, O_WRONLY|O_CREAT, 0644)`.
const CREATE: [u64; 2] = [(libc::O_WRONLY | libc::O_CREAT) as u64, 0o644];

#[test]
fn a_credential_change_is_described_with_the_new_coe() {
    let dir = Dir::new("creds");
    std::fs::write(dir.0.join("public"), b"public bytes").unwrap();
    std::fs::write(dir.0.join("private"), b"root's only").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.0.join("private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fake = Fake::new(dir.0.clone());
    let path = fake.put(0, &[b"public\0"]);
    let private = fake.put(1, &[b"private\0"]);
    let made = fake.put(2, &[b"made\0"]);
    let worn = may_wear();
    let (mut n, rec) = notifier(&fake, true);
    // Described once with the supervisor's credentials: its status is now cached.
    let (_, first) = run(&mut n, Sysno::Openat, [AT_FDCWD, path, 0, 0, 0, 0]);
    assert!(matches!(first, Reply::AddFd(..)));
    let (_, r) = run(&mut n, Sysno::Setresuid, [1234, 1234, 1234, 0, 0, 0]);
    assert!(matches!(r, Reply::Continue(_)));
    {
        let mut s = fake.status.lock().unwrap();
        s.coe.uid = 1234;
        s.coe.euid = 1234;
        s.coe.suid = 1234;
        s.coe.fsuid = 1234;
        // setresuid away from root clears the effective capabilities.
        s.coe.capeff = 0;
    }
    let (_, reply) = run(&mut n, Sysno::Openat, [AT_FDCWD, path, 0, 0, 0, 0]);
    let events = rec.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].event.coe.euid, 1234,
        "the event carries the old COE"
    );
    assert_eq!(events[1].event.coe.fsuid, 1234);
    let (_, denied) = run(&mut n, Sysno::Openat, [AT_FDCWD, private, 0, 0, 0, 0]);
    let (_, created) = run(
        &mut n,
        Sysno::Openat,
        [AT_FDCWD, made, CREATE[0], CREATE[1], 0, 0],
    );
    // Back to the test thread's own credentials before looking at the effects.
    sys::wear_own().unwrap();
    if worn {
        // The thread wore uid 1234 for these calls: the file everyone may read is opened,
        // root's own is refused by the kernel's own check (EACCES, not the sensor's EPERM),
        // and what is created belongs to uid 1234.
        let Reply::AddFd(fd, _) = reply else {
            panic!("the public file was not opened as uid 1234");
        };
        assert_eq!(read_all(&fd), b"public bytes");
        assert!(matches!(denied, Reply::Error(libc::EACCES)), "root's file");
        assert!(matches!(created, Reply::AddFd(..)));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(dir.0.join("made")).unwrap().uid(), 1234);
        assert_eq!(n.shared.counters.snapshot().unfaithful, 0);
    } else {
        // The supervisor cannot open as uid 1234: refused when enforcing, never performed
        // with its own credentials.
        assert!(matches!(reply, Reply::Error(libc::EPERM)));
        assert!(matches!(denied, Reply::Error(libc::EPERM)));
        assert!(matches!(created, Reply::Error(libc::EPERM)));
        assert!(!dir.0.join("made").exists());
        assert_eq!(n.shared.counters.snapshot().unfaithful, 3);
    }
}

/// A `prctl` that only reads (`PR_GET_NAME`, which busybox calls in every applet) keeps the
/// task's cached status; a rename (`PR_SET_NAME`) drops it, and the next event names the task
/// as its status then says. The fake's status changes after the first open: an event that still
/// carries the first name was described from the cache.
#[test]
fn a_prctl_that_only_reads_keeps_the_cached_status_and_a_rename_drops_it() {
    let dir = Dir::new("prctl");
    std::fs::write(dir.0.join("public"), b"public bytes").unwrap();
    let fake = Fake::new(dir.0.clone());
    let path = fake.put(0, &[b"public\0"]);
    let name = fake.put(1, &[b"renamed\0"]);
    let (mut n, rec) = notifier(&fake, false);
    let open = [AT_FDCWD, path, 0, 0, 0, 0];
    run(&mut n, Sysno::Openat, open);
    let first = rec.events()[0].event.header.process.clone();
    fake.status.lock().unwrap().name = "renamed".into();
    // The high half of the register is not the kernel's `int` option.
    let get_name = (1u64 << 32) | libc::PR_GET_NAME as u64;
    let (_, r) = run(&mut n, Sysno::Prctl, [get_name, 1 << 40, 0, 0, 0, 0]);
    assert!(matches!(r, Reply::Continue(_)));
    run(&mut n, Sysno::Openat, open);
    let (_, r) = run(
        &mut n,
        Sysno::Prctl,
        [libc::PR_SET_NAME as u64, name, 0, 0, 0, 0],
    );
    assert!(matches!(r, Reply::Continue(_)));
    run(&mut n, Sysno::Openat, open);
    let names: Vec<_> = rec
        .events()
        .iter()
        .filter(|e| e.event.header.event_type == EventType::FileOpen)
        .map(|e| e.event.header.process.clone())
        .collect();
    assert_eq!(names.len(), 3);
    assert_eq!(names[1], first, "PR_GET_NAME dropped the cached status");
    assert_eq!(&*names[2], b"renamed", "PR_SET_NAME kept a stale status");
}

#[test]
fn a_call_whose_credentials_cannot_be_worn_is_refused_when_enforcing() {
    let dir = Dir::new("userns");
    std::fs::write(dir.0.join("public"), b"public bytes").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fake = Fake::new(dir.0.clone());
    let path = fake.put(0, &[b"public\0"]);
    let made = fake.put(1, &[b"made\0"]);
    {
        // A task in another user namespace: its uid 1234 and its capabilities are that
        // namespace's, which no credentials of the supervisor's namespace stand for.
        let mut s = fake.status.lock().unwrap();
        s.coe.euid = 1234;
        s.coe.fsuid = 1234;
        s.coe.capeff = 0;
        *fake.userns.lock().unwrap() = dir.0.to_string_lossy().into_owned();
    }
    for enforcing in [true, false] {
        let (mut n, rec) = notifier(&fake, enforcing);
        let (_, opened) = run(&mut n, Sysno::Openat, [AT_FDCWD, path, 0, 0, 0, 0]);
        let (_, created) = run(
            &mut n,
            Sysno::Openat,
            [AT_FDCWD, made, CREATE[0], CREATE[1], 0, 0],
        );
        // Nothing was worn: the thread keeps its own credentials.
        assert_eq!(
            sys::thread_creds().unwrap().fsuid,
            procfs::read_status(sys::gettid()).unwrap().coe.fsuid
        );
        assert_eq!(n.shared.counters.snapshot().unfaithful, 2);
        // Described and decided all the same, with the task's COE.
        let events = rec.events();
        assert!(!events.is_empty());
        assert!(
            events
                .iter()
                .all(|e| e.event.coe.fsuid == 1234 && !e.emulated)
        );
        if enforcing {
            assert!(matches!(opened, Reply::Error(libc::EPERM)), "opened");
            assert!(matches!(created, Reply::Error(libc::EPERM)), "created");
            assert!(
                !dir.0.join("made").exists(),
                "created with other credentials"
            );
        } else {
            // Learning: the kernel runs the call with the task's own credentials.
            assert!(matches!(opened, Reply::Continue(_)));
            assert!(matches!(created, Reply::Continue(_)));
        }
    }
}

#[test]
fn a_root_change_resolves_paths_in_the_new_root() {
    let dir = Dir::new("root");
    std::fs::create_dir(dir.0.join("jail")).unwrap();
    std::fs::write(dir.0.join("jail/inside"), b"jailed bytes").unwrap();
    let fake = Fake::new(dir.0.join("jail"));
    let path = fake.put(0, &[b"/inside\0"]);
    let (mut n, rec) = notifier(&fake, true);
    let (_, r) = run(&mut n, Sysno::Chroot, [path, 0, 0, 0, 0, 0]);
    assert!(matches!(r, Reply::Continue(_)));
    *fake.root.lock().unwrap() = Some(dir.0.join("jail"));
    let (_, reply) = run(&mut n, Sysno::Openat, [AT_FDCWD, path, 0, 0, 0, 0]);
    let Reply::AddFd(fd, _) = reply else {
        panic!("/inside was not opened in the task's root");
    };
    assert_eq!(read_all(&fd), b"jailed bytes");
    assert_eq!(rec.events().len(), 1);
    assert_eq!(rec.events()[0].event.header.event_type, EventType::FileOpen);
}

#[test]
fn an_undecodable_argument_is_refused_and_counted() {
    let dir = Dir::new("undecodable");
    let fake = Fake::new(dir.0.clone());
    let long = vec![b'a'; 8192];
    let unterminated = fake.put(0, &[&long]);
    let how = fake.put(4, &[&[0u8; 8]]);
    let dot = fake.put(5, &[b".\0"]);
    let (mut n, rec) = notifier(&fake, true);
    let cases: [(Sysno, [u64; 6], i32); 4] = [
        // A path with no NUL within PATH_MAX.
        (
            Sysno::Openat,
            [AT_FDCWD, unterminated, 0, 0, 0, 0],
            libc::ENAMETOOLONG,
        ),
        // A pointer to nothing.
        (
            Sysno::Openat,
            [AT_FDCWD, BASE + 64 * 4096, 0, 0, 0, 0],
            libc::EFAULT,
        ),
        (Sysno::Mkdir, [0, 0o755, 0, 0, 0, 0], libc::EFAULT),
        // An open_how too small to be one.
        (Sysno::Openat2, [AT_FDCWD, dot, how, 8, 0, 0], libc::EINVAL),
    ];
    for (i, (sys, args, errno)) in cases.into_iter().enumerate() {
        let (_, reply) = run(&mut n, sys, args);
        assert!(
            matches!(reply, Reply::Error(e) if e == errno),
            "{}: not refused with {errno}",
            sys.name()
        );
        assert_eq!(n.shared.counters.snapshot().undecodable, i as u64 + 1);
    }
    assert!(
        rec.events().is_empty(),
        "an undecodable call reached the model"
    );
}

/// A call whose event is read from the caller's memory and that the supervisor cannot perform
/// (a mount) is decided, then refused when enforcing: the kernel would read the strings again.
/// Learning continues it, counted in `unfaithful` either way.
#[test]
fn a_memory_event_the_supervisor_cannot_perform_is_never_continued_when_enforcing() {
    let dir = Dir::new("mount");
    std::fs::create_dir(dir.0.join("mnt")).unwrap();
    let fake = Fake::new(dir.0.clone());
    let src = fake.put(0, &[b"none\0"]);
    let path = fake.put(1, &[b"mnt\0"]);
    let fstype = fake.put(2, &[b"tmpfs\0"]);
    for enforcing in [true, false] {
        let (mut n, rec) = notifier(&fake, enforcing);
        let (_, reply) = run(&mut n, Sysno::Mount, [src, path, fstype, 0, 0, 0]);
        assert_eq!(rec.events().len(), 1, "the mount was not described");
        assert_eq!(rec.events()[0].event.header.event_type, EventType::SbMount);
        assert_eq!(n.shared.counters.snapshot().unfaithful, 1);
        if enforcing {
            assert!(
                matches!(reply, Reply::Error(libc::EPERM)),
                "an enforced mount reached the kernel"
            );
        } else {
            assert!(
                matches!(reply, Reply::Continue(_)),
                "learning refused a mount"
            );
        }
    }
}

/// Whether `dir`'s filesystem takes `user.` xattrs (tmpfs since 6.6, ext4, xfs, btrfs).
fn user_xattrs(dir: &std::path::Path) -> bool {
    let p = dir.join("probe");
    std::fs::write(&p, b"").unwrap();
    let f = std::fs::File::open(&p).unwrap();
    let ok = sys::set_xattr(sys::XattrOn::File(f.as_fd()), c"user.probe", b"1", 0).is_ok();
    let _ = std::fs::remove_file(&p);
    ok
}

/// setxattr with a name and value another thread rewrites after the supervisor read them: the
/// value described is the value set, and the path described is the file set.
#[test]
fn a_flipping_xattr_value_and_path_are_set_from_one_copy() {
    let dir = Dir::new("xattr");
    if !user_xattrs(&dir.0) {
        println!("skipped: {} takes no user xattrs", dir.0.display());
        return;
    }
    std::fs::write(dir.0.join("public"), b"").unwrap();
    std::fs::write(dir.0.join("secret"), b"").unwrap();
    let fake = Fake::new(dir.0.clone());
    let path = fake.put(0, &[b"public\0", b"secret\0"]);
    let name = fake.put(1, &[b"user.tag\0", b"user.other\0"]);
    let value = fake.put(2, &[b"good", b"evil"]);
    let (mut n, rec) = notifier(&fake, true);
    let (_, reply) = run(&mut n, Sysno::Setxattr, [path, name, value, 4, 0, 0]);
    assert!(matches!(reply, Reply::Value(0)), "setxattr not performed");
    let get = |file: &str, attr: &std::ffi::CStr| {
        let f = std::fs::File::open(dir.0.join(file)).unwrap();
        sys::get_xattr(sys::XattrOn::File(f.as_fd()), attr, 64).map(|(_, b)| b)
    };
    assert_eq!(get("public", c"user.tag"), Ok(b"good".to_vec()));
    assert!(get("public", c"user.other").is_err());
    assert!(get("secret", c"user.tag").is_err());
    let events = rec.events();
    assert_eq!(events.len(), 1);
    let Cell::InodeSetxattr { value, .. } = &events[0].event.cell else {
        panic!("not an inode_setxattr: {:?}", events[0].event.cell);
    };
    assert_eq!(value, b"good");
}

/// utimes with a path another thread rewrites: the times land on the file described.
#[test]
fn a_flipping_utimes_path_touches_the_file_described() {
    use std::os::unix::fs::MetadataExt;
    let dir = Dir::new("utimes");
    std::fs::write(dir.0.join("public"), b"").unwrap();
    std::fs::write(dir.0.join("secret"), b"").unwrap();
    let fake = Fake::new(dir.0.clone());
    let path = fake.put(0, &[b"public\0", b"secret\0"]);
    // struct timeval[2]: atime 1000 s, mtime 2000 s.
    let mut tv = Vec::new();
    for s in [1000i64, 0, 2000, 0] {
        tv.extend_from_slice(&s.to_le_bytes());
    }
    let times = fake.put(1, &[&tv]);
    let (mut n, _rec) = notifier(&fake, true);
    let (_, reply) = run(&mut n, Sysno::Utimes, [path, times, 0, 0, 0, 0]);
    assert!(matches!(reply, Reply::Value(0)), "utimes not performed");
    let mtime = |f: &str| std::fs::metadata(dir.0.join(f)).unwrap().mtime();
    assert_eq!(mtime("public"), 2000);
    assert_ne!(mtime("secret"), 2000);
}

/// A capset is continued (no task sets another's capabilities), so the kernel reads its buffer
/// again: capabilities applied that are neither the event's nor the old ones (the buffer was
/// rewritten after the verdict) make the event a lie, found at the thread's next call, counted
/// in `unfaithful`, and the thread is untrusted from then on.
#[test]
fn a_capset_applied_other_than_described_is_counted_and_untrusts_the_thread() {
    let dir = Dir::new("capset");
    let fake = Fake::new(dir.0.clone());
    let (eff, prm, inh) = {
        let s = fake.status.lock().unwrap();
        (s.coe.capeff, s.capprm, s.capinh)
    };
    let claimed = eff ^ 1;
    let data: Vec<u8> = [claimed, prm, inh, claimed >> 32, prm >> 32, inh >> 32]
        .iter()
        .flat_map(|w| (*w as u32).to_le_bytes())
        .collect();
    let hdr = fake.put(0, &[&[0x22, 0x05, 0x08, 0x20, 0, 0, 0, 0]]);
    let data = fake.put(1, &[&data]);
    // What the kernel applied: the claim, nothing (the call failed), or another set.
    for (applied, lie) in [(claimed, false), (eff, false), (eff ^ 2, true)] {
        let (mut n, rec) = notifier(&fake, true);
        fake.status.lock().unwrap().coe.capeff = eff;
        let (_, r) = run(&mut n, Sysno::Capset, [hdr, data, 0, 0, 0, 0]);
        assert!(matches!(r, Reply::Continue(_)), "capset not continued");
        let Cell::Capset { effective, .. } = rec.events()[0].event.cell else {
            panic!("not a capset event");
        };
        assert_eq!(effective, claimed);
        fake.status.lock().unwrap().coe.capeff = applied;
        // The thread's next call (one continued with no event: nothing else is counted).
        let (_, r) = run(
            &mut n,
            Sysno::Setresuid,
            [u64::MAX, u64::MAX, u64::MAX, 0, 0, 0],
        );
        assert!(
            matches!(r, Reply::Continue(_) | Reply::Error(_)),
            "{applied:#x}"
        );
        let untrusted = super::lock(&n.shared.tree)
            .get(TID)
            .is_some_and(|t| t.untrusted);
        assert_eq!(untrusted, lie, "applied {applied:#x}");
        assert_eq!(n.shared.counters.snapshot().unfaithful, u64::from(lie));
    }
    fake.status.lock().unwrap().coe.capeff = eff;
}

/// A thread id that a new task reuses after the first one ended names another task: its calls
/// are described and performed with its own credentials, never the ended one's that the status
/// cache held (the cache is keyed by the task's serial, which each new task gets afresh).
#[test]
fn a_reused_thread_id_is_described_with_its_own_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("reused");
    std::fs::write(dir.0.join("private"), b"the first task's only").unwrap();
    std::fs::set_permissions(
        dir.0.join("private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fake = Fake::new(dir.0.clone());
    let private = fake.put(0, &[b"private\0"]);
    let (mut n, rec) = notifier(&fake, true);
    const CHILD: i32 = TID + 1;
    let open = |n: &mut Notifier<Recorder>| {
        let Ok(mut call) = n.begin(Notif {
            pid: CHILD as u32,
            ..notif(Sysno::Openat, [AT_FDCWD, private, 0, 0, 0, 0])
        }) else {
            panic!("the child's credentials were not read");
        };
        n.wear(&mut call).unwrap();
        n.dispatch(&mut call)
    };
    // A child with the test's own credentials opens the file it owns.
    super::lock(&n.shared.tree).clone_task(TID, CHILD, CHILD);
    let first = open(&mut n);
    sys::wear_own().unwrap();
    let Reply::AddFd(fd, _) = first else {
        panic!("the owner's open was not performed");
    };
    assert_eq!(read_all(&fd), b"the first task's only");
    // It ends, and a task of uid 1234 is created with the same thread id.
    super::lock(&n.shared.tree).exit(CHILD);
    {
        let mut s = fake.status.lock().unwrap();
        s.coe.uid = 1234;
        s.coe.euid = 1234;
        s.coe.suid = 1234;
        s.coe.fsuid = 1234;
        s.coe.capeff = 0;
    }
    super::lock(&n.shared.tree).clone_task(TID, CHILD, CHILD);
    let second = open(&mut n);
    sys::wear_own().unwrap();
    // Refused: by the kernel's own check when the thread wore uid 1234 (EACCES), by the
    // sensor when it cannot (EPERM). With the ended task's credentials it was opened.
    assert!(
        matches!(second, Reply::Error(libc::EACCES | libc::EPERM)),
        "the new task opened the file with the ended one's credentials"
    );
    let events = rec.events();
    assert!(
        events[1..].iter().all(|e| e.event.coe.euid == 1234),
        "the new task's event carries the ended one's COE"
    );
}
