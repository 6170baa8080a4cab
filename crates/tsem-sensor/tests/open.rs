//! Opens: verdicts reach the workload as errno, emulated opens deliver the file measured, and a
//! thread swapping the path during an open never obtains the denied file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Recorder, errno_exit, pathname, run_helper, scratch};
use tsem_core::HashAlg;
use tsem_core::event::{Cell, EventType};

/// The workload side, selected by `TSEM_HELPER`.
#[test]
fn helper() {
    let Ok(mode) = std::env::var("TSEM_HELPER") else {
        return;
    };
    let arg = |k: &str| std::env::var(k).unwrap_or_default();
    let code = match mode.as_str() {
        // Open FILE and check it holds EXPECT.
        "read" => errno_exit((|| {
            let mut s = String::new();
            std::fs::File::open(arg("FILE"))?.read_to_string(&mut s)?;
            if s != arg("EXPECT") {
                std::process::exit(2);
            }
            Ok(())
        })()),
        // Relative open from the cwd and openat() relative to a directory descriptor.
        "relative" => errno_exit((|| {
            let mut s = String::new();
            std::fs::File::open("rel.txt")?.read_to_string(&mut s)?;
            let dir = std::fs::File::open("sub")?;
            use std::os::fd::AsRawFd;
            let fd =
                unsafe { libc::openat(dir.as_raw_fd(), c"inner.txt".as_ptr(), libc::O_RDONLY) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            f.read_to_string(&mut s)?;
            if s != "relinner" {
                std::process::exit(2);
            }
            Ok(())
        })()),
        // O_PATH handles as the kernel gives them: on a file, on a symbolic link itself
        // (O_NOFOLLOW) and on a directory; then the file opened from the directory handle and
        // reopened for reading through /proc/self/fd, each an open of its own.
        "opath" => errno_exit((|| {
            use std::os::fd::{FromRawFd as _, OwnedFd};
            let open = |p: &std::ffi::CStr, flags: i32| {
                let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            };
            let kind = |fd: &OwnedFd| {
                use std::os::fd::AsRawFd as _;
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH)
                };
                assert_eq!(r, 0, "fstat of an O_PATH handle");
                st.st_mode & libc::S_IFMT
            };
            let file = open(c"rel.txt", libc::O_PATH)?;
            assert_eq!(kind(&file), libc::S_IFREG);
            let link = open(c"link", libc::O_PATH | libc::O_NOFOLLOW)?;
            assert_eq!(kind(&link), libc::S_IFLNK);
            let dir = open(c"sub", libc::O_PATH | libc::O_DIRECTORY)?;
            assert_eq!(kind(&dir), libc::S_IFDIR);
            use std::os::fd::AsRawFd as _;
            let inner =
                unsafe { libc::openat(dir.as_raw_fd(), c"inner.txt".as_ptr(), libc::O_RDONLY) };
            if inner < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut s = String::new();
            unsafe { std::fs::File::from_raw_fd(inner) }.read_to_string(&mut s)?;
            std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?
                .read_to_string(&mut s)?;
            if s != "innerrel" {
                std::process::exit(2);
            }
            Ok(())
        })()),
        // fchmodat2(AT_SYMLINK_NOFOLLOW) of a symbolic link: the kernel says EOPNOTSUPP.
        "lchmod" => {
            const SYS_FCHMODAT2: libc::c_long = 452;
            let r = unsafe {
                libc::syscall(
                    SYS_FCHMODAT2,
                    libc::AT_FDCWD,
                    c"link".as_ptr(),
                    0o600,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if r == 0 {
                0
            } else {
                100 + std::io::Error::last_os_error().raw_os_error().unwrap_or(99)
            }
        }
        // Create, write, reopen with O_TRUNC and append.
        "create" => errno_exit((|| {
            std::fs::write("new.txt", b"abc")?;
            let mut f = std::fs::OpenOptions::new().append(true).open("new.txt")?;
            std::io::Write::write_all(&mut f, b"def")?;
            if std::fs::read("new.txt")? != b"abcdef" {
                std::process::exit(2);
            }
            let e = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open("new.txt");
            if e.map_err(|e| e.raw_os_error()).err() != Some(Some(libc::EEXIST)) {
                std::process::exit(3);
            }
            Ok(())
        })()),
        // One thread flips the path buffer between ALLOWED and DENIED (same length) while the
        // main thread opens it again and again; reading DENIED's contents is a failure (50).
        "swap" => {
            let allowed = arg("ALLOWED");
            let denied = arg("DENIED");
            assert_eq!(allowed.len(), denied.len());
            let mut buf = allowed.clone().into_bytes();
            buf.push(0);
            let buf: &'static mut [u8] = Box::leak(buf.into_boxed_slice());
            let p = buf.as_mut_ptr() as usize;
            let stop = Arc::new(AtomicBool::new(false));
            let st = Arc::clone(&stop);
            let (a, d) = (allowed.clone().into_bytes(), denied.into_bytes());
            let flipper = std::thread::spawn(move || {
                let mut i = 0u64;
                while !st.load(Ordering::Relaxed) {
                    let src = if i.is_multiple_of(2) { &d } else { &a };
                    for (k, b) in src.iter().enumerate() {
                        unsafe { std::ptr::write_volatile((p as *mut u8).add(k), *b) };
                    }
                    i += 1;
                }
            });
            let mut got_secret = false;
            let mut opened = 0;
            for _ in 0..3000 {
                let fd = unsafe { libc::open(p as *const libc::c_char, libc::O_RDONLY) };
                if fd >= 0 {
                    opened += 1;
                    let mut b = [0u8; 16];
                    let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 16) };
                    if n > 0 && b[..n as usize].starts_with(b"SECRET") {
                        got_secret = true;
                    }
                    unsafe { libc::close(fd) };
                }
            }
            stop.store(true, Ordering::Relaxed);
            flipper.join().unwrap();
            if got_secret {
                50
            } else if opened == 0 {
                51
            } else {
                0
            }
        }
        other => panic!("unknown helper mode {other}"),
    };
    std::process::exit(code);
}

#[test]
fn denied_open_fails_with_eperm_and_allowed_open_gets_the_file() {
    let d = scratch("deny");
    let f = d.join("secret.txt");
    std::fs::write(&f, b"top secret").unwrap();
    let p = std::fs::canonicalize(&f)
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let rec = Recorder {
        deny_paths: vec![p.clone()],
        ..Recorder::default()
    };
    let r = run_helper(
        "read",
        &[("FILE", &p), ("EXPECT", "top secret")],
        None,
        rec.clone(),
    );
    assert_eq!(r.exit.code(), 100 + libc::EPERM, "stats {:?}", r.stats);
    assert_eq!(r.stats.lost, 0);
    assert!(r.stats.denied >= 1);

    let rec = Recorder::default();
    let r = run_helper(
        "read",
        &[("FILE", &p), ("EXPECT", "top secret")],
        None,
        rec.clone(),
    );
    assert_eq!(r.exit.code(), 0);
    let ev: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| pathname(e).as_deref() == Some(p.as_str()))
        .collect();
    assert_eq!(ev.len(), 1, "exactly one file_open of the file");
    let e = &ev[0];
    assert_eq!(e.event.header.event_type, EventType::FileOpen);
    assert!(e.emulated);
    let Cell::File(file) = &e.event.cell else {
        panic!()
    };
    let magic = file.inode.s_magic;
    if !tsem_sensor::describe::PSEUDO_MAGICS.contains(&magic) {
        assert_eq!(file.digest, HashAlg::Sha256.digest(b"top secret"));
    }
    assert_eq!(
        file.flags & 0o100000,
        0o100000,
        "O_LARGEFILE as the kernel holds it"
    );
    assert_eq!(e.event.coe.uid, unsafe { libc::getuid() });
    assert_eq!(r.stats.lost, 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn relative_opens_resolve_against_the_targets_cwd_and_dirfd() {
    let d = scratch("rel");
    std::fs::write(d.join("rel.txt"), b"rel").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/inner.txt"), b"inner").unwrap();
    // A same-named file in the supervisor's cwd would be found if resolution were wrong.
    let rec = Recorder::default();
    let r = run_helper("relative", &[], Some(&d), rec.clone());
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    let inner = std::fs::canonicalize(d.join("sub/inner.txt")).unwrap();
    assert!(
        rec.events()
            .iter()
            .any(|e| pathname(e).as_deref() == Some(&*inner.to_string_lossy()))
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn created_files_are_reported_with_instance_and_owner() {
    let d = scratch("create");
    let rec = Recorder::default();
    let r = run_helper("create", &[], Some(&d), rec.clone());
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    let evs = rec.events();
    let creates: Vec<_> = evs
        .iter()
        .filter(|e| e.event.header.event_type == EventType::InodeCreate)
        .collect();
    assert_eq!(creates.len(), 1);
    let Cell::InodeCreate { dentry, mode, .. } = &creates[0].event.cell else {
        panic!()
    };
    assert_eq!(dentry.path.created.map(|c| c.instance), Some(1));
    assert_eq!(mode & libc::S_IFMT, libc::S_IFREG);
    // Later opens of the created file carry the created marker and a zero digest.
    let new = std::fs::canonicalize(d.join("new.txt"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let opens: Vec<_> = evs
        .iter()
        .filter(|e| pathname(e).as_deref() == Some(new.as_str()))
        .collect();
    assert!(opens.len() >= 3, "{} opens", opens.len());
    for o in opens {
        let Cell::File(f) = &o.event.cell else {
            panic!()
        };
        assert!(f.path.created.is_some());
        assert_eq!(f.digest, HashAlg::Sha256.zero_digest());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn swapping_the_path_during_open_never_yields_the_denied_file() {
    let d = scratch("swap");
    // Same-length names so the flipping thread always leaves a valid string.
    std::fs::write(d.join("aaaa.txt"), b"PUBLIC").unwrap();
    std::fs::write(d.join("bbbb.txt"), b"SECRET").unwrap();
    let dc = std::fs::canonicalize(&d).unwrap();
    let allowed = dc.join("aaaa.txt").to_string_lossy().into_owned();
    let denied = dc.join("bbbb.txt").to_string_lossy().into_owned();
    assert_eq!(allowed.len(), denied.len());
    let rec = Recorder {
        deny_paths: vec![denied.clone()],
        ..Recorder::default()
    };
    let r = run_helper(
        "swap",
        &[("ALLOWED", &allowed), ("DENIED", &denied)],
        None,
        rec.clone(),
    );
    eprintln!("swap stats: {:?}", r.stats);
    assert_eq!(
        r.exit.code(),
        0,
        "the workload obtained the denied file; stats {:?}",
        r.stats
    );
    assert_eq!(r.stats.lost, 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn o_path_handles_are_the_kernels_and_what_is_opened_through_them_is_described() {
    let d = scratch("opath");
    std::fs::write(d.join("rel.txt"), "rel").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/inner.txt"), "inner").unwrap();
    std::os::unix::fs::symlink("rel.txt", d.join("link")).unwrap();
    let rec = Recorder::default();
    let r = run_helper("opath", &[], Some(&d), rec.clone());
    assert_eq!(r.exit.code(), 0, "stats {:?}", r.stats);
    assert_eq!(r.stats.lost, 0);
    let root = std::fs::canonicalize(&d).unwrap();
    let opened: Vec<String> = rec
        .events()
        .iter()
        .filter(|e| e.event.header.event_type == EventType::FileOpen)
        .filter_map(pathname)
        .collect();
    for f in ["sub/inner.txt", "rel.txt"] {
        let p = root.join(f).display().to_string();
        assert!(opened.contains(&p), "{p} not described: {opened:?}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_links_mode_is_refused_before_any_event_as_the_kernel_refuses_it() {
    let d = scratch("lchmod");
    std::os::unix::fs::symlink("missing", d.join("link")).unwrap();
    // The kernel's answer first (fchmodat2 is Linux 6.6).
    let bare = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["helper", "--exact", "--quiet"])
        .env("TSEM_HELPER", "lchmod")
        .current_dir(&d)
        .status()
        .unwrap();
    if bare.code() == Some(100 + libc::ENOSYS) {
        println!("skipped: no fchmodat2 in this kernel");
        return;
    }
    assert_eq!(bare.code(), Some(100 + libc::EOPNOTSUPP));
    let rec = Recorder::default();
    let r = run_helper("lchmod", &[], Some(&d), rec.clone());
    assert_eq!(r.exit.code(), 100 + libc::EOPNOTSUPP, "stats {:?}", r.stats);
    assert!(
        !rec.events()
            .iter()
            .any(|e| e.event.header.event_type == EventType::InodeSetattr),
        "an inode_setattr the kernel never reaches"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
