//! Lifecycle: exec tracking and TASK_ID inheritance, forks, double forks and orphans, threads,
//! signals reaching the workload, denied execs, and emulated directory operations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Recorder, pathname, run_helper, run_helper_with, run_sh, scratch};
use tsem_core::Digest;
use tsem_core::event::EventType;

#[test]
fn helper() {
    let Ok(mode) = std::env::var("TSEM_HELPER") else {
        return;
    };
    let code = match mode.as_str() {
        // Four threads each open a file; the events must name the threads.
        "threads" => {
            let hs: Vec<_> = (0..4)
                .map(|_| std::thread::spawn(|| std::fs::read("/etc/hostname").is_ok() as i32))
                .collect();
            let ok: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            if ok == 4 { 0 } else { 1 }
        }
        // Read and list extended attributes of a file (their absence is fine).
        "xattr" => {
            std::fs::write("f", b"x").unwrap();
            let mut buf = [0u8; 64];
            unsafe {
                libc::getxattr(
                    c"f".as_ptr(),
                    c"user.tsem".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    64,
                );
                libc::listxattr(c"f".as_ptr(), buf.as_mut_ptr().cast(), 64);
            }
            0
        }
        "socketpair" => match std::os::unix::net::UnixStream::pair() {
            Ok(_) => 0,
            Err(_) => 1,
        },
        // Bind a Unix socket under umask 077 (the path is absolute so the sensor performs it).
        "bind_unix" => {
            unsafe { libc::umask(0o077) };
            let p = std::env::current_dir().unwrap().join("s.sock");
            match std::os::unix::net::UnixListener::bind(p) {
                Ok(_) => 0,
                Err(_) => 1,
            }
        }
        // Connect (blocking) to 127.0.0.1:PORT and send "hello".
        "connect" => {
            let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(mut s) => {
                    std::io::Write::write_all(&mut s, b"hello").unwrap();
                    0
                }
                Err(_) => 1,
            }
        }
        // Notified calls under a storm of signals whose handler lacks SA_RESTART: chmod and
        // kill never fail with EINTR natively, so none may here. Prints the EINTR count.
        "eintr" => {
            static ALARMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            extern "C" fn on_alarm(_: libc::c_int) {
                ALARMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            std::fs::write("f", b"x").unwrap();
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_alarm as *const () as usize;
                sa.sa_flags = 0; // no SA_RESTART
                libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
                let tick = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 100,
                };
                let it = libc::itimerval {
                    it_interval: tick,
                    it_value: tick,
                };
                libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
            }
            let (mut eintr, mut other) = (0, 0);
            for i in 0..10000 {
                let r = if i % 2 == 0 {
                    unsafe { libc::chmod(c"f".as_ptr(), 0o644) }
                } else {
                    unsafe { libc::kill(libc::getpid(), 0) }
                };
                if r != 0 {
                    match std::io::Error::last_os_error().raw_os_error() {
                        Some(libc::EINTR) => eintr += 1,
                        _ => other += 1,
                    }
                }
            }
            let alarms = ALARMS.load(std::sync::atomic::Ordering::Relaxed);
            std::fs::write("result", format!("{eintr} {other} {alarms}")).unwrap();
            if eintr == 0 && other == 0 { 0 } else { 1 }
        }
        // io_uring and open_by_handle_at would act unseen: both must be refused with EPERM.
        "refused" => {
            let mut params = [0u8; 120];
            let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
            let ring_err = std::io::Error::last_os_error().raw_os_error();
            let h = unsafe { libc::syscall(libc::SYS_open_by_handle_at, -100, 0usize, 0) };
            let h_err = std::io::Error::last_os_error().raw_os_error();
            let ok = ring == -1
                && ring_err == Some(libc::EPERM)
                && h == -1
                && h_err == Some(libc::EPERM);
            if ok { 0 } else { 1 }
        }
        // Every member of the stat family on a file and a symlink in the cwd; prints what each
        // returned so the test can compare with the native values.
        "getattr" => {
            use std::os::unix::fs::MetadataExt;
            std::fs::write("f", b"twelve bytes").unwrap();
            let _ = std::fs::remove_file("l");
            std::os::unix::fs::symlink("f", "l").unwrap();
            let mut out = String::new();
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            let mut line = |name: &str, r: i32, st: &libc::stat| {
                out.push_str(&format!(
                    "{name} {r} {} {} {:o}\n",
                    st.st_ino, st.st_size, st.st_mode
                ));
            };
            let r = unsafe { libc::stat(c"f".as_ptr(), &mut st) };
            line("stat", r, &st);
            let r = unsafe { libc::lstat(c"l".as_ptr(), &mut st) };
            line("lstat", r, &st);
            let r = unsafe { libc::fstatat(libc::AT_FDCWD, c"l".as_ptr(), &mut st, 0) };
            line("fstatat", r, &st);
            let file = std::fs::File::open("f").unwrap();
            let r = unsafe { libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&file), &mut st) };
            line("fstat", r, &st);
            let mut sx: libc::statx = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::statx(
                    libc::AT_FDCWD,
                    c"l".as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                    libc::STATX_BASIC_STATS,
                    &mut sx,
                )
            };
            out.push_str(&format!(
                "statx {r} {} {} {:o}\n",
                sx.stx_ino, sx.stx_size, sx.stx_mode
            ));
            let m = std::fs::metadata("missing-file");
            out.push_str(&format!("missing {}\n", m.is_err()));
            let _ = file.metadata().map(|m| m.ino());
            std::fs::write("result", out).unwrap();
            0
        }
        // ioctl, fcntl (with a record lock) and flock on one file.
        "filecmds" => {
            let f = std::fs::File::create("locked").unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            let mut n: libc::c_int = 0;
            let r1 = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
            let r2 = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as i16;
            fl.l_whence = libc::SEEK_SET as i16;
            let r3 = unsafe { libc::fcntl(fd, libc::F_SETLK, &fl) };
            let r4 = unsafe { libc::flock(fd, libc::LOCK_SH) };
            let ok = r1 == 0 && r2 >= 0 && r3 == 0 && r4 == 0;
            if ok { 0 } else { 1 }
        }
        // setsockopt, getsockname, getpeername and shutdown on one end of a socket pair.
        "sockq" => {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
            let one: libc::c_int = 1;
            let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            let p = (&mut addr as *mut libc::sockaddr_un).cast();
            let r = unsafe {
                [
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_KEEPALIVE,
                        (&one as *const libc::c_int).cast(),
                        4,
                    ),
                    libc::getsockname(fd, p, &mut len),
                    libc::getpeername(fd, p, &mut len),
                    libc::shutdown(fd, libc::SHUT_WR),
                ]
            };
            if r == [0; 4] { 0 } else { 1 }
        }
        other => panic!("unknown helper mode {other}"),
    };
    std::process::exit(code);
}

#[test]
fn exec_identities_follow_the_tree() {
    let rec = Recorder::default();
    let r = run_sh("/bin/true && /bin/sh -c '/bin/true'", None, rec.clone());
    assert_eq!(r.exit.code(), 0);
    let execs = rec.execs();
    // sh, true, sh, true (dash may exec the last command in place; at least 3 execs).
    assert!(execs.len() >= 3, "{} execs", execs.len());
    let zero = Digest::zero(32);
    assert_eq!(execs[0].p_task_id, zero, "the root predates modeling");
    assert_ne!(execs[0].task_id, zero);
    // Every later exec descends from an earlier one: its PTASK_ID is a TASK_ID seen before.
    for (i, e) in execs.iter().enumerate().skip(1) {
        assert!(
            execs[..i].iter().any(|p| p.task_id == e.p_task_id),
            "exec {i} has an unknown parent"
        );
    }
    let ttds: Vec<u64> = execs.iter().map(|e| e.ttd).collect();
    let mut sorted = ttds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ttds.len(), "every exec gets a fresh ttd");
    // The same program with the same parent identity and credentials gets the same TASK_ID.
    let trues: Vec<_> = execs
        .iter()
        .filter(|e| e.exe.path.pathname.ends_with("/true"))
        .collect();
    assert_eq!(trues.len(), 2);
    assert_eq!(r.stats.lost, 0);
    assert_eq!(r.stats.exec_mismatch, 0);
    // What the kernel itself opens and maps during exec is reported from the exec stop: the ELF
    // interpreter's file_open and the segments of the program, with the exec open flags.
    let evs = rec.events();
    let true_path = &trues[0].exe.path.pathname;
    assert!(
        evs.iter()
            .any(|e| e.event.header.event_type == EventType::FileOpen
                && pathname(e).is_some_and(|p| p.contains("ld-linux"))
                && matches!(&e.event.cell, tsem_core::event::Cell::File(f) if f.flags == 32800))
    );
    assert!(evs.iter().any(|e| matches!(&e.event.cell,
        tsem_core::event::Cell::MmapFile { file: Some(f), prot: 5, .. } if &f.path.pathname == true_path)));
}

/// The status the tracer reads at an exec stop is where the task's next calls start from (the
/// shared status cache): the program's first opens carry its own name and credentials, never
/// those of the image it replaced, which the cache held for the same thread id before.
#[test]
fn the_calls_after_an_exec_are_described_with_the_new_image() {
    let dir = scratch("after-exec");
    let file = dir.join("data");
    std::fs::write(&file, b"bytes").unwrap();
    let rec = Recorder::default();
    let script = format!("cat {0} > /dev/null; exec cat {0}", file.display());
    let r = run_sh(&script, None, rec.clone());
    assert_eq!(r.exit.code(), 0);
    let target = file.display().to_string();
    let opens: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| e.event.header.event_type == EventType::FileOpen)
        .collect();
    // The shell's own opens (the redirection) carry its name; both cats' opens carry "cat",
    // the one exec'd in place of the shell (same thread id, status cached as "sh") included.
    assert!(opens.iter().any(|e| &*e.event.header.process == b"sh"));
    let cats: Vec<_> = opens
        .iter()
        .filter(|e| pathname(e).as_deref() == Some(target.as_str()))
        .map(|e| e.event.header.process.to_string())
        .collect();
    assert_eq!(cats, ["cat", "cat"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn double_fork_orphans_are_followed_to_the_end() {
    let d = scratch("orphan");
    let marker = d.join("marker");
    std::fs::write(&marker, b"m").unwrap();
    let m = std::fs::canonicalize(&marker)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // The grandchild outlives its parent: it is reparented to the supervisor (subreaper) and
    // must still be followed until it opens the marker.
    let script = format!("( sh -c 'sleep 0.2; cat {m} > /dev/null' & ) ; exit 3");
    let rec = Recorder::default();
    let r = run_sh(&script, None, rec.clone());
    assert_eq!(r.exit.code(), 3);
    let opened: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| pathname(e).as_deref() == Some(m.as_str()))
        .collect();
    assert_eq!(opened.len(), 1, "the orphan's open was seen");
    let cat = rec
        .execs()
        .into_iter()
        .find(|e| e.exe.path.pathname.ends_with("/cat"))
        .unwrap();
    assert_eq!(opened[0].event.header.task_id, cat.task_id);
    assert!(r.stats.tasks >= 4, "tasks {}", r.stats.tasks);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn threads_are_attributed_to_their_process() {
    let rec = Recorder::default();
    let r = run_helper("threads", &[], None, rec.clone());
    assert_eq!(r.exit.code(), 0);
    let evs: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| pathname(e).as_deref() == Some("/etc/hostname"))
        .collect();
    assert_eq!(evs.len(), 4);
    let tgid = evs[0].tgid;
    assert!(evs.iter().all(|e| e.tgid == tgid));
    let mut tids: Vec<i32> = evs.iter().map(|e| e.tid).collect();
    tids.sort_unstable();
    tids.dedup();
    assert_eq!(tids.len(), 4, "each thread is named");
    assert!(tids.iter().all(|t| *t != tgid));
}

/// A stopped and continued child must die of the SIGTERM sent after the SIGCONT, in a loop of
/// fresh children (the stops race each new child's first ptrace stop), and a trap must run.
#[test]
fn signals_and_stops_reach_the_workload() {
    let rec = Recorder::default();
    let script = "trap 'exit 7' USR1; i=0; while [ $i -lt 20 ]; do i=$((i+1)); \
                  sleep 5 & p=$!; kill -STOP $p; kill -CONT $p; kill -TERM $p; wait $p; \
                  test $? -eq 143 || exit 1; done; kill -USR1 $$; sleep 5";
    let r = run_sh(script, None, rec.clone());
    assert_eq!(r.exit.code(), 7);
    let kills = rec
        .events()
        .into_iter()
        .filter(|e| e.event.header.event_type == EventType::TaskKill)
        .count();
    assert!(kills >= 61, "{kills} task_kill events");
}

/// Both ways of waiting for notifications follow a multi-process workload to its end (the
/// epoll one is what kernels before 6.11 get).
#[test]
fn both_wait_modes_serve_and_end() {
    for wait in [tsem_sensor::WaitMode::Epoll, tsem_sensor::WaitMode::Recv] {
        let rec = Recorder::default();
        let cfg = tsem_sensor::SensorConfig {
            wait,
            ..Default::default()
        };
        let argv: Vec<std::ffi::OsString> = vec![
            "/bin/sh".into(),
            "-c".into(),
            "for i in 1 2 3 4 5 6; do (cat /etc/hostname > /dev/null &); done; wait".into(),
        ];
        let r = tsem_sensor::run(&argv, &cfg, rec.clone()).unwrap();
        assert_eq!(r.exit.code(), 0, "{wait:?}");
        assert_eq!(r.stats.lost, 0);
        assert!(r.stats.execs >= 7, "{wait:?}: {} execs", r.stats.execs);
        let opens = rec
            .events()
            .iter()
            .filter(|e| pathname(e).is_some_and(|p| p == "/etc/hostname"))
            .count();
        assert_eq!(opens, 6, "{wait:?}");
    }
}

/// By default the run follows a background descendant to its end; with `end_with_leader` it
/// ends with the first process and the descendant is killed.
#[test]
fn the_run_ends_with_the_leader_on_request() {
    let script = "sleep 30 & echo started";
    for end in [true, false] {
        let cfg = tsem_sensor::SensorConfig {
            end_with_leader: end,
            ..Default::default()
        };
        let argv: Vec<std::ffi::OsString> = vec![
            "/bin/sh".into(),
            "-c".into(),
            if end {
                script.into()
            } else {
                "sleep 0.3 & echo started".into()
            },
        ];
        let t = std::time::Instant::now();
        let r = tsem_sensor::run(&argv, &cfg, Recorder::default()).unwrap();
        assert_eq!(r.exit.code(), 0);
        let took = t.elapsed();
        if end {
            // Not a speed bound: waiting for the sleep takes at least 30 s, so anything less
            // means it was killed.
            assert!(took < std::time::Duration::from_secs(30), "{took:?}");
        } else {
            assert!(
                took >= std::time::Duration::from_millis(300),
                "the background sleep was not waited for: {took:?}"
            );
        }
    }
}

/// With `Observe` ioctl, fcntl and lock, those calls are events naming the open file and the
/// command (a record lock also passes file_lock with its type); denied, they fail with EPERM.
#[test]
fn ioctl_fcntl_and_locks_are_observed_on_request() {
    use tsem_core::event::Cell;
    let run = |observe: tsem_sensor::Observe, deny: Option<EventType>| {
        let d = scratch("filecmds");
        let mut rec = Recorder::default();
        rec.deny_types.extend(deny);
        let cfg = tsem_sensor::SensorConfig {
            observe,
            cwd: Some(d.clone()),
            ..Default::default()
        };
        let r = run_helper_with("filecmds", cfg, rec.clone());
        std::fs::remove_dir_all(&d).unwrap();
        (r, rec)
    };
    let cmds = |rec: &Recorder, ty: EventType| -> Vec<u32> {
        rec.events()
            .iter()
            .filter(|e| e.event.header.event_type == ty)
            .filter_map(|e| match &e.event.cell {
                Cell::FileCmd { file, cmd } if file.path.pathname.ends_with("/locked") => {
                    Some(*cmd)
                }
                _ => None,
            })
            .collect()
    };
    let (r, rec) = run(tsem_sensor::Observe::ALL, None);
    assert_eq!(r.exit.code(), 0, "{:?}", r.stats);
    assert_eq!(r.stats.lost, 0);
    assert_eq!(
        cmds(&rec, EventType::FileIoctl),
        vec![libc::FIONREAD as u32]
    );
    // (The standard library may add fcntls of its own on the file.)
    let fcntls = cmds(&rec, EventType::FileFcntl);
    for c in [libc::F_GETFD, libc::F_SETLK] {
        assert!(fcntls.contains(&(c as u32)), "{c} not in {fcntls:?}");
    }
    // The record lock's type, then flock's LOCK_SH as the kernel translates it.
    assert_eq!(
        cmds(&rec, EventType::FileLock),
        vec![libc::F_WRLCK as u32, libc::F_RDLCK as u32]
    );

    let (r, _) = run(tsem_sensor::Observe::ALL, Some(EventType::FileLock));
    assert_eq!(r.exit.code(), 1, "a denied lock must fail");

    let (r, rec) = run(tsem_sensor::Observe::default(), None);
    assert_eq!(r.exit.code(), 0);
    for ty in [
        EventType::FileIoctl,
        EventType::FileFcntl,
        EventType::FileLock,
    ] {
        assert!(cmds(&rec, ty).is_empty(), "{ty:?} without being asked for");
    }
}

/// With `Observe::socket`, socket queries and options are events on the caller's socket.
#[test]
fn socket_queries_are_observed_on_request() {
    use tsem_core::event::Cell;
    for observe in [true, false] {
        let rec = Recorder::default();
        let cfg = tsem_sensor::SensorConfig {
            observe: tsem_sensor::Observe {
                socket: observe,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = run_helper_with("sockq", cfg, rec.clone());
        assert_eq!(r.exit.code(), 0, "{:?}", r.stats);
        let evs = rec.events();
        let of = |ty: EventType| {
            evs.iter()
                .filter(|e| e.event.header.event_type == ty)
                .map(|e| e.event.cell.clone())
                .collect::<Vec<_>>()
        };
        if !observe {
            assert!(of(EventType::SocketSetsockopt).is_empty());
            continue;
        }
        assert!(of(EventType::SocketSetsockopt).iter().any(|c| matches!(c,
            Cell::SockOpt { sock, level, optname }
                if sock.family == libc::AF_UNIX as u32
                    && *level == libc::SOL_SOCKET as u32
                    && *optname == libc::SO_KEEPALIVE as u32)));
        assert_eq!(of(EventType::SocketGetsockname).len(), 1);
        assert_eq!(of(EventType::SocketGetpeername).len(), 1);
        assert!(of(EventType::SocketShutdown).iter().any(|c| matches!(c,
            Cell::SockValue { value, .. } if *value == libc::SHUT_WR as u32)));
    }
}

/// With `Observe::getattr`, the stat family is described as inode_getattr and answered by the
/// supervisor with exactly what the kernel would have returned; a denial is EPERM. Without it,
/// no such event exists.
#[test]
fn the_stat_family_is_observed_on_request() {
    use std::os::unix::fs::MetadataExt;
    let run = |observe: bool, deny: bool| {
        let d = scratch(&format!("getattr-{observe}-{deny}"));
        let mut rec = Recorder::default();
        if deny {
            rec.deny_types.push(EventType::InodeGetattr);
        }
        let cfg = tsem_sensor::SensorConfig {
            observe: tsem_sensor::Observe {
                getattr: observe,
                ..Default::default()
            },
            cwd: Some(d.clone()),
            ..Default::default()
        };
        let r = run_helper_with("getattr", cfg, rec.clone());
        (d, r, rec)
    };

    let (d, r, rec) = run(true, false);
    assert_eq!(r.exit.code(), 0, "{:?}", r.stats);
    assert_eq!(r.stats.lost, 0);
    let f = std::fs::metadata(d.join("f")).unwrap();
    let l = std::fs::symlink_metadata(d.join("l")).unwrap();
    let expect = format!(
        "stat 0 {fi} 12 {fm:o}\nlstat 0 {li} {ls} {lm:o}\nfstatat 0 {fi} 12 {fm:o}\n\
         fstat 0 {fi} 12 {fm:o}\nstatx 0 {li} {ls} {lm:o}\nmissing true\n",
        fi = f.ino(),
        fm = f.mode(),
        li = l.ino(),
        ls = l.size(),
        lm = l.mode(),
    );
    assert_eq!(std::fs::read_to_string(d.join("result")).unwrap(), expect);
    let getattrs: Vec<String> = rec
        .events()
        .iter()
        .filter(|e| e.event.header.event_type == EventType::InodeGetattr)
        .filter_map(|e| match &e.event.cell {
            tsem_core::event::Cell::InodeGetattr(dn) => Some(dn.path.pathname.to_string()),
            _ => None,
        })
        .collect();
    for name in ["/f", "/l"] {
        assert!(
            getattrs.iter().any(|p| p.ends_with(name)),
            "no inode_getattr of {name} in {getattrs:?}"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();

    // Denied: every stat fails with EPERM (the helper then exits non-zero).
    let (d, r, _) = run(true, true);
    assert_ne!(r.exit.code(), 0);
    assert!(r.stats.denied > 0);
    std::fs::remove_dir_all(&d).unwrap();

    // Not asked for: the stat family stays in the kernel.
    let (d, r, rec) = run(false, false);
    assert_eq!(r.exit.code(), 0);
    assert!(
        !rec.events()
            .iter()
            .any(|e| e.event.header.event_type == EventType::InodeGetattr)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// A signal that lands before the supervisor has received a notification abandons it; the
/// tracer turns the kernel's -ERESTARTSYS into a restart, so the caller never sees EINTR.
#[test]
fn notified_calls_never_fail_with_eintr() {
    let d = scratch("eintr");
    let rec = Recorder::default();
    let r = run_helper("eintr", &[], Some(&d), rec.clone());
    let result = std::fs::read_to_string(d.join("result")).unwrap();
    let v: Vec<u64> = result.split(' ').map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], 0, "{} of 10000 calls failed with EINTR", v[0]);
    assert_eq!(v[1], 0, "{} calls failed otherwise", v[1]);
    assert!(
        v[2] >= 100,
        "only {} signals arrived: the race was not exercised",
        v[2]
    );
    assert_eq!(r.exit.code(), 0, "{:?}", r.stats);
    assert_eq!(r.stats.lost, 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn calls_the_sensor_cannot_see_are_refused() {
    let r = run_helper("refused", &[], None, Recorder::default());
    assert_eq!(
        r.exit.code(),
        0,
        "io_uring_setup or open_by_handle_at was not refused"
    );
}

#[test]
fn fifo_opens_block_until_the_other_end_without_stalling_the_sensor() {
    let d = scratch("fifo");
    let rec = Recorder::default();
    // The reader's open blocks until the writer's open, which needs its own notification
    // answered meanwhile.
    let r = run_sh(
        "mkfifo f; (sleep 0.1; echo hi > f) & read x < f; test \"$x\" = hi",
        Some(&d),
        rec.clone(),
    );
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    assert!(
        rec.events()
            .iter()
            .any(|e| e.event.header.event_type == EventType::InodeMknod)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn blocking_connect_is_performed_by_the_sensor() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let rec = Recorder::default();
    let r = run_helper("connect", &[("PORT", &port.to_string())], None, rec.clone());
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    let (mut s, _) = l.accept().unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut s, &mut got).unwrap();
    assert_eq!(got, "hello");
    let ev = rec
        .events()
        .into_iter()
        .find(|e| e.event.header.event_type == EventType::SocketConnect)
        .unwrap();
    assert!(ev.emulated);
    let tsem_core::event::Cell::SockAddr { sock, addr } = &ev.event.cell else {
        panic!()
    };
    assert_eq!(sock.family, libc::AF_INET as u32);
    assert_ne!(
        sock.owner,
        Digest::zero(32),
        "the socket's creator is known"
    );
    assert!(
        matches!(addr, Some(tsem_core::event::SockAddr::Inet { port: p, .. }) if *p == port.to_be())
    );
}

#[test]
fn unix_socket_nodes_get_the_callers_umask() {
    let d = scratch("unixbind");
    let rec = Recorder::default();
    let r = run_helper("bind_unix", &[], Some(&d), rec.clone());
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("s.sock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "umask 077 applies to the socket node");
    let ev = rec
        .events()
        .into_iter()
        .find(|e| e.event.header.event_type == EventType::SocketBind)
        .unwrap();
    assert!(ev.emulated);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn task_events_are_described() {
    let rec = Recorder::default();
    let r = run_sh(
        "ulimit -n 256 && nproc > /dev/null && nice -n 5 true",
        None,
        rec.clone(),
    );
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    let evs = rec.events();
    let find = |t: EventType| evs.iter().find(|e| e.event.header.event_type == t).cloned();
    let rl = find(EventType::TaskSetrlimit).expect("ulimit -n is task_setrlimit");
    let tsem_core::event::Cell::TaskSetrlimit {
        resource,
        current,
        task,
        ..
    } = rl.event.cell
    else {
        panic!()
    };
    assert_eq!((resource, current), (libc::RLIMIT_NOFILE, 256));
    assert_eq!(task, rl.event.header.task_id, "the shell's own limit");
    assert!(
        find(EventType::TaskGetscheduler).is_some(),
        "nproc reads its affinity"
    );
    let nice = find(EventType::TaskSetnice).expect("nice is task_setnice");
    assert!(matches!(
        nice.event.cell,
        tsem_core::event::Cell::TaskValue { value: 5, .. }
    ));
    let rec = Recorder::default();
    let xd = scratch("xattr");
    let r = run_helper("xattr", &[], Some(&xd), rec.clone());
    assert_eq!(r.exit.code(), 0);
    std::fs::remove_dir_all(&xd).unwrap();
    let types: Vec<EventType> = rec
        .events()
        .iter()
        .map(|e| e.event.header.event_type)
        .collect();
    for t in [EventType::InodeGetxattr, EventType::InodeListxattr] {
        assert!(types.contains(&t), "missing {t:?}");
    }
    let rec = Recorder::default();
    let r = run_helper("socketpair", &[], None, rec.clone());
    assert_eq!(r.exit.code(), 0);
    let sp = rec
        .events()
        .into_iter()
        .find(|e| e.event.header.event_type == EventType::SocketSocketpair)
        .unwrap();
    let tsem_core::event::Cell::SockPair { a, b } = sp.event.cell else {
        panic!()
    };
    assert_eq!(
        (a.family, b.family),
        (libc::AF_UNIX as u32, libc::AF_UNIX as u32)
    );
    assert_eq!(a.owner, sp.event.header.task_id);
}

#[test]
fn denied_exec_fails_with_eperm() {
    let rec = Recorder {
        deny_paths: vec!["/usr/bin/true".into()],
        ..Recorder::default()
    };
    let r = run_sh(
        "/usr/bin/true; echo $? >/dev/null; /usr/bin/true || exit 42",
        None,
        rec,
    );
    assert_eq!(r.exit.code(), 42);
    assert!(r.stats.denied >= 2);
}

#[test]
fn directory_operations_are_emulated_and_described() {
    let d = scratch("dirops");
    let rec = Recorder::default();
    let r = run_sh(
        "mkdir d && touch d/f && chmod 600 d/f && mv d/f d/g && ln d/g d/h && ln -s g d/s && rm d/g d/h d/s && rmdir d",
        Some(&d),
        rec.clone(),
    );
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    let types: Vec<EventType> = rec
        .events()
        .iter()
        .map(|e| e.event.header.event_type)
        .collect();
    for t in [
        EventType::InodeMkdir,
        EventType::InodeCreate,
        EventType::InodeSetattr,
        EventType::InodeRename,
        EventType::InodeLink,
        EventType::InodeSymlink,
        EventType::InodeUnlink,
        EventType::InodeRmdir,
    ] {
        assert!(types.contains(&t), "missing {t:?} in {types:?}");
    }
    assert!(!d.join("d").exists());
    // Files the supervisor creates get the mode the caller's umask, as it is at the time of the
    // call, allows.
    let r = run_sh(
        "umask 077; true > a; umask 022; true > b; mkdir c",
        Some(&d),
        Recorder::default(),
    );
    assert_eq!(r.exit.code(), 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| std::fs::metadata(d.join(n)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("a"), mode("b"), mode("c")), (0o600, 0o644, 0o755));
    // With a denial, the directory is not created and the workload sees EPERM.
    let rec = Recorder {
        deny_types: vec![EventType::InodeMkdir],
        ..Recorder::default()
    };
    let r = run_sh("mkdir d2 2>/dev/null; test ! -e d2", Some(&d), rec);
    assert_eq!(r.exit.code(), 0);
    std::fs::remove_dir_all(&d).unwrap();
}
