//! `run` of a supervised container: one `runc run` (where `create`, `start` and `delete` would be
//! three runc invocations) on a private copy of the bundle's config that adds the hand-over hook
//! ([`crate::handover`]). runc waits for the container, forwards signals to it, returns its exit
//! status and deletes it, as without tsem; the supervisor's outputs are complete when `run`
//! returns.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::RuntimeError;
use crate::cli::{Args, CREATE_VALUE_FLAGS, Globals};
use crate::commands::{code, id_of, read_config, supervision, supervisor_launch};
use crate::delegate::Delegate;
use crate::handover::{self, Listener};
use crate::state::Record;

/// `run [-d] [--keep] -b BUNDLE ... ID`.
pub fn run(g: &Globals, delegate: &Delegate, args: &[OsString]) -> Result<i32, RuntimeError> {
    let a = Args::new(args, CREATE_VALUE_FLAGS);
    let id = id_of("run", args, CREATE_VALUE_FLAGS)?;
    let bundle = PathBuf::from(a.value(&["-b", "--bundle"]).unwrap_or_else(|| ".".into()));
    let config = read_config(g, &bundle)?;
    let Some(sup) = supervision(&config)? else {
        return Err(delegate.exec("run", args).into());
    };
    let detach = a.flag(&["-d", "--detach"]);
    let keep = a.flag(&["--keep"]);
    // runc sets the container up while the supervisor loads its model: the hook waits for it
    // (its refusal then fails the hook, and nothing of the container runs). runc is started
    // first: it is the container's path, while the supervisor has runc's whole set-up (20 ms and
    // more) to get ready; each spawn waits for its program's exec.
    let (launch, rec) = supervisor_launch(g, &id, &config, &sup)?;
    // Held until runc has ended: the hook runs from it.
    let hook = crate::hookbin::Hook::load();
    let runc = (|| {
        let exe = match &hook {
            Some(h) => h.path(),
            None => std::env::current_exe().map_err(|e| RuntimeError::Bundle {
                path: "tsem-runtime".into(),
                why: e.to_string(),
            })?,
        };
        let private = private_bundle(&bundle, config, &rec, &id, &exe)?;
        let listener = Listener::bind(&rec.handover_socket())?;
        let runc = delegate.spawn("run", &with_bundle(args, &private))?;
        Ok::<_, RuntimeError>((runc, listener))
    })();
    let (mut runc, listener) = match runc {
        Ok(r) => r,
        Err(e) => {
            let _ = rec.remove();
            return Err(e);
        }
    };
    let mut daemon = match launch.start(false) {
        Ok(d) => d,
        Err(e) => {
            // No supervisor: the hook's connection is refused, so runc kills the init and
            // fails the run before the container's program runs.
            drop(listener);
            let _ = runc.wait();
            let _ = rec.remove();
            return Err(e.into());
        }
    };
    rec.set_supervisor(daemon.pid())?;
    let runc_pid = runc.id() as i32;
    forward_signals(runc_pid);
    let handed = wait_hook(listener, runc_pid, &mut daemon);
    let status = runc.wait().map_err(|e| RuntimeError::Wait(id.clone(), e))?;
    drop(hook);
    if detach && status.success() {
        return Ok(0);
    }
    // Its outputs (model, summary, attestation) are written when it ends; what it says about
    // the run (out-of-model events, refusals) is the caller's to read, as under `tsem run`.
    let _ = daemon.wait();
    if !detach && let Ok(words) = std::fs::read(rec.log()) {
        let _ = std::io::stderr().write_all(&words);
    }
    if !keep || !status.success() {
        rec.remove()?;
    }
    match handed {
        // runc said why it failed; ours is why the hook failed.
        Some(Err(e)) if !status.success() => Err(e.into()),
        _ => Ok(code(status)),
    }
}

/// Serve the hand-over hook until it has been served or runc has ended: `None` when the hook
/// never came (runc failed before it, and said why).
fn wait_hook(
    listener: Listener,
    runc: i32,
    daemon: &mut crate::supervise::Daemon,
) -> Option<Result<i32, handover::HandoverError>> {
    // SAFETY: pidfd_open takes integer arguments; the result is a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, runc, 0) } as i32;
    let mut fds = [
        libc::pollfd {
            fd: listener.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let n = if pidfd < 0 { 1 } else { 2 };
    let served = loop {
        // SAFETY: `fds` holds `n` valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), n, -1) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break None;
        }
        if fds[0].revents != 0 {
            break Some(listener.serve(daemon));
        }
        if fds[1].revents != 0 {
            break None;
        }
    };
    if pidfd >= 0 {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(pidfd) };
    }
    served
}

/// Write the private bundle in `rec`: the caller's config with paths relative to the bundle
/// made absolute (runc resolves them from the bundle directory, which is now ours) and the
/// hand-over hook (the program `exe`) first among the `createRuntime` hooks.
fn private_bundle(
    bundle: &Path,
    mut config: serde_json::Value,
    rec: &Record,
    id: &str,
    exe: &Path,
) -> Result<PathBuf, RuntimeError> {
    let bad = |path: &Path, why: String| RuntimeError::Bundle {
        path: path.display().to_string(),
        why,
    };
    let origin = std::fs::canonicalize(bundle).map_err(|e| bad(bundle, e.to_string()))?;
    let absolute = |p: &serde_json::Value| -> Option<serde_json::Value> {
        let s = p.as_str()?;
        (!Path::new(s).is_absolute()).then(|| origin.join(s).display().to_string().into())
    };
    if let Some(root) = config.pointer_mut("/root/path")
        && let Some(abs) = absolute(root)
    {
        *root = abs;
    }
    // runc (specconv) takes a relative source of a bind mount from the bundle directory.
    if let Some(mounts) = config.pointer_mut("/mounts").and_then(|m| m.as_array_mut()) {
        for m in mounts {
            let bind = m
                .get("options")
                .and_then(|o| o.as_array())
                .is_some_and(|o| {
                    o.iter()
                        .any(|x| x.as_str() == Some("bind") || x.as_str() == Some("rbind"))
                });
            if let Some(src) = m.get_mut("source")
                && bind
                && let Some(abs) = absolute(src)
            {
                *src = abs;
            }
        }
    }
    let hook = serde_json::json!({
        "path": exe.display().to_string(),
        "args": [
            "tsem-runtime",
            handover::COMMAND,
            rec.handover_socket().display().to_string(),
            id,
        ],
    });
    let Some(obj) = config.as_object_mut() else {
        return Err(bad(&origin.join("config.json"), "not a JSON object".into()));
    };
    let hooks = obj.entry("hooks").or_insert_with(|| serde_json::json!({}));
    let Some(hooks) = hooks.as_object_mut() else {
        return Err(bad(
            &origin.join("config.json"),
            "hooks: not an object".into(),
        ));
    };
    let create_runtime = hooks
        .entry("createRuntime")
        .or_insert_with(|| serde_json::json!([]));
    let Some(list) = create_runtime.as_array_mut() else {
        return Err(bad(
            &origin.join("config.json"),
            "hooks.createRuntime: not an array".into(),
        ));
    };
    list.insert(0, hook);
    let dir = rec.bundle();
    let path = dir.join("config.json");
    let text = serde_json::to_vec(&config).map_err(|e| bad(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| bad(&path, e.to_string()))?;
    Ok(dir)
}

/// `args` with the bundle given as `private` (first, replacing any `-b`/`--bundle`).
fn with_bundle(args: &[OsString], private: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["--bundle".into(), private.as_os_str().to_owned()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            out.push(a.clone());
            out.extend(it.cloned());
            break;
        }
        let name = s.split_once('=').map_or(&*s, |(n, _)| n);
        if name == "-b" || name == "--bundle" {
            if !s.contains('=') {
                it.next();
            }
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// runc's pid, to which [`forward_signals`] hands signals on.
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A terminal's signals (Ctrl-C) reach runc, in our process group, already: sent by the
    // kernel. Only those sent to us alone are handed on.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    if !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL {
        return;
    }
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes integer arguments.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Hand the signals a foreground `run` gets (`kill`, hang-up) on to runc, which hands them to
/// the container's init.
fn forward_signals(pid: i32) {
    FORWARD_TO.store(pid, std::sync::atomic::Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: an all-zero sigaction is valid; the handler only makes an async-signal-safe
        // call; SA_RESTART keeps our waitpid going.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_config_has_absolute_paths_and_the_hook_first() {
        let dir = std::env::temp_dir().join(format!("tsem-runtime-private-{}", std::process::id()));
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let rec = Record::of(&dir.join("records"), "c1").unwrap();
        rec.create().unwrap();
        let config = serde_json::json!({
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/data", "source": "data", "options": ["rbind", "ro"]},
                {"destination": "/proc", "source": "proc", "type": "proc"},
                {"destination": "/abs", "source": "/srv/x", "options": ["bind"]},
            ],
            "hooks": {"createRuntime": [{"path": "/bin/true"}], "poststop": [{"path": "/x"}]},
        });
        let private =
            private_bundle(&bundle, config, &rec, "c1", Path::new("/x/tsem-runtime")).unwrap();
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(private.join("config.json")).unwrap()).unwrap();
        let b = std::fs::canonicalize(&bundle).unwrap();
        assert_eq!(c["root"]["path"], b.join("rootfs").display().to_string());
        assert_eq!(
            c["mounts"][0]["source"],
            b.join("data").display().to_string()
        );
        assert_eq!(c["mounts"][1]["source"], "proc");
        assert_eq!(c["mounts"][2]["source"], "/srv/x");
        let hooks = c["hooks"]["createRuntime"].as_array().unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0]["path"], "/x/tsem-runtime");
        assert_eq!(hooks[0]["args"][1], handover::COMMAND);
        assert_eq!(hooks[0]["args"][3], "c1");
        assert_eq!(hooks[1]["path"], "/bin/true");
        assert_eq!(c["hooks"]["poststop"][0]["path"], "/x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_bundle_is_replaced_by_the_private_one() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_bundle(
                &os(&["-b", "/b", "--pid-file", "/p", "id"]),
                Path::new("/q")
            ),
            os(&["--bundle", "/q", "--pid-file", "/p", "id"])
        );
        assert_eq!(
            with_bundle(&os(&["--bundle=/b", "-d", "id"]), Path::new("/q")),
            os(&["--bundle", "/q", "-d", "id"])
        );
    }
}
