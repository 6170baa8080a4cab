//! The commands: supervised `create`, `start`, `delete`, `run` and `exec`; everything else (and
//! every command on an unsupervised container) is the delegate's own.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use crate::RuntimeError;
use crate::annotations::{self, Supervision};
use crate::cli::{self, Args, CREATE_VALUE_FLAGS, EXEC_VALUE_FLAGS, Globals};
use crate::delegate::Delegate;
use crate::state::{self, Record};
use crate::supervise::{self, Daemon};

/// Run the command line `args` (without the program name); the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let inv = match cli::parse(args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("tsem-runtime: {e}");
            return 2;
        }
    };
    match dispatch(&inv.globals, &inv.command, &inv.args) {
        Ok(code) => code,
        Err(e) => {
            report(&inv.globals, &e.to_string());
            1
        }
    }
}

/// Print an error for the caller: stderr, and the `--log` file runc would write (docker and
/// podman show it).
fn report(g: &Globals, msg: &str) {
    eprintln!("tsem-runtime: {msg}");
    let Some(log) = &g.log else { return };
    let line = if g.log_json {
        serde_json::json!({"level": "error", "msg": format!("tsem-runtime: {msg}")}).to_string()
    } else {
        format!(
            "level=error msg=\"tsem-runtime: {}\"",
            msg.replace('"', "'")
        )
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn dispatch(g: &Globals, cmd: &str, args: &[OsString]) -> Result<i32, RuntimeError> {
    let delegate = Delegate::new(g);
    match cmd {
        "--version" | "-v" => {
            println!("tsem-runtime version {}", env!("CARGO_PKG_VERSION"));
            Ok(code(delegate.status("--version", &[])?))
        }
        "create" => match create(g, &delegate, args)? {
            Created::Unsupervised => Err(delegate.exec("create", args).into()),
            Created::Failed(c) => Ok(c),
            Created::Supervised { .. } => Ok(0),
        },
        "run" => run(g, &delegate, args),
        "start" => {
            let id = id_of(cmd, args, CREATE_VALUE_FLAGS)?;
            let rec = Record::of(&state::base(g), &id)?;
            if rec.exists() && rec.supervisor().is_none() {
                return Err(RuntimeError::SupervisorGone(id));
            }
            Err(delegate.exec("start", args).into())
        }
        "delete" => {
            let id = id_of(cmd, args, &[])?;
            let rec = Record::of(&state::base(g), &id)?;
            let c = code(delegate.status("delete", args)?);
            if c == 0 && rec.exists() {
                // The supervisor writes the model, summary and attestation after the container's
                // end: they are complete when `delete` returns.
                if let Some(pid) = rec.supervisor() {
                    supervise::wait_gone(pid);
                }
                rec.remove()?;
            }
            Ok(c)
        }
        "exec" => {
            let id = id_of(cmd, args, EXEC_VALUE_FLAGS)?;
            if Record::of(&state::base(g), &id)?.exists() {
                return Err(RuntimeError::ExecRefused(id));
            }
            Err(delegate.exec("exec", args).into())
        }
        _ => Err(delegate.exec(cmd, args).into()),
    }
}

fn code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code()
        .unwrap_or_else(|| 128 + s.signal().unwrap_or(libc::SIGKILL))
}

/// The container id: the first positional argument.
fn id_of(cmd: &str, args: &[OsString], value_flags: &[&str]) -> Result<String, RuntimeError> {
    Args::new(args, value_flags)
        .positional()
        .first()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| cli::CliError::NoId(cmd.to_string()).into())
}

/// What `create` did.
enum Created {
    /// Nothing: the container is not supervised (the delegate's `create` is to run).
    Unsupervised,
    /// The delegate's `create` failed with this status (it said why).
    Failed(i32),
    /// Created, its init seized by the supervisor.
    Supervised {
        /// The container's init.
        pid: i32,
        /// The supervisor (our child).
        daemon: Daemon,
        /// The container.
        id: String,
        /// Our record.
        rec: Record,
    },
}

/// The bundle's config.json.
fn read_config(bundle: &std::path::Path) -> Result<serde_json::Value, RuntimeError> {
    let path = bundle.join("config.json");
    let bad = |why: String| RuntimeError::Bundle {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))
}

/// The supervision the bundle asks for, checked: annotations, and namespaces that keep the
/// supervisor out of the container's sight.
fn supervision(config: &serde_json::Value) -> Result<Option<Supervision>, RuntimeError> {
    let Some(sup) = annotations::parse(config)? else {
        return Ok(None);
    };
    let own = |ty: &str| {
        config
            .pointer("/linux/namespaces")
            .and_then(|n| n.as_array())
            .is_some_and(|list| {
                list.iter().any(|n| {
                    n.get("type").and_then(|t| t.as_str()) == Some(ty)
                        // A path joins an existing namespace, which could be the host's.
                        && n.get("path").is_none()
                })
            })
    };
    for (ty, name) in [("pid", "pid"), ("mount", "mount")] {
        if !own(ty) {
            return Err(RuntimeError::SharedNamespace(name));
        }
    }
    Ok(Some(sup))
}

fn create(g: &Globals, delegate: &Delegate, args: &[OsString]) -> Result<Created, RuntimeError> {
    let a = Args::new(args, CREATE_VALUE_FLAGS);
    let id = id_of("create", args, CREATE_VALUE_FLAGS)?;
    let bundle = PathBuf::from(a.value(&["-b", "--bundle"]).unwrap_or_else(|| ".".into()));
    let config = read_config(&bundle)?;
    let Some(sup) = supervision(&config)? else {
        return Ok(Created::Unsupervised);
    };
    let names: Vec<OsString> = config
        .pointer("/process/args")
        .and_then(|v| v.as_array())
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str())
                .map(OsString::from)
                .collect()
        })
        .filter(|v: &Vec<OsString>| !v.is_empty())
        .unwrap_or_else(|| vec![OsString::from(&id)]);
    let rec = Record::of(&state::base(g), &id)?;
    rec.create()?;
    let tsem = supervise::tsem_binary(g.tsem.as_deref());
    let mut run_args = sup.tsem_args();
    // Every supervised container is a named, live namespace: `tsem ctl state ID`, `tsem
    // console ID` (ids docker and podman make are 64 hex digits, a plain name).
    if tsem_core::is_plain_name(&id, 64) {
        run_args.extend([
            "--name".into(),
            OsString::from(&id),
            "--name-if-free".into(),
        ]);
    }
    let mut daemon = match Daemon::start(&tsem, &run_args, &names, &rec.log()) {
        Ok(d) => d,
        Err(e) => {
            let _ = rec.remove();
            return Err(e.into());
        }
    };
    let undo = |daemon: Daemon, created: bool| {
        if created {
            let _ = delegate.status("delete", &["--force".into(), OsString::from(&id)]);
        }
        daemon.abandon();
        let _ = rec.remove();
    };
    // The init's pid from the pid file runc writes anyway (one `runc state` less).
    let pid_file = match a.value(&["--pid-file"]) {
        Some(p) => PathBuf::from(p),
        None => rec.pid_file(),
    };
    let mut create_args = args.to_vec();
    if a.value(&["--pid-file"]).is_none() {
        create_args.splice(
            0..0,
            ["--pid-file".into(), pid_file.clone().into_os_string()],
        );
    }
    let st = match delegate.status("create", &create_args) {
        Ok(s) => s,
        Err(e) => {
            undo(daemon, false);
            return Err(e.into());
        }
    };
    if !st.success() {
        undo(daemon, false);
        return Ok(Created::Failed(code(st)));
    }
    let from_file = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 0);
    let handed = from_file
        .map_or_else(|| delegate.pid(&id), Ok)
        .map_err(RuntimeError::from)
        .and_then(|pid| daemon.hand_over(pid).map(|()| pid).map_err(Into::into));
    let pid = match handed {
        Ok(p) => p,
        Err(e) => {
            undo(daemon, true);
            return Err(e);
        }
    };
    rec.set_supervisor(daemon.pid())?;
    Ok(Created::Supervised {
        pid,
        daemon,
        id,
        rec,
    })
}

/// `run`: create, start and (unless detached) wait for the container's end, then delete it.
/// We are the container init's subreaper, so its status comes to us as `runc run`'s does.
fn run(g: &Globals, delegate: &Delegate, args: &[OsString]) -> Result<i32, RuntimeError> {
    let a = Args::new(args, CREATE_VALUE_FLAGS);
    let detach = a.flag(&["-d", "--detach"]);
    let keep = a.flag(&["--keep"]);
    let create_args = a.without(&["-d", "--detach", "--keep"]);
    if !detach {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let (pid, daemon, id, rec) = match create(g, delegate, &create_args)? {
        Created::Unsupervised => return Err(delegate.exec("run", args).into()),
        Created::Failed(c) => return Ok(c),
        Created::Supervised {
            pid,
            daemon,
            id,
            rec,
        } => (pid, daemon, id, rec),
    };
    let st = delegate.status("start", &[OsString::from(&id)])?;
    if !st.success() {
        let _ = delegate.status("delete", &["--force".into(), OsString::from(&id)]);
        let _ = daemon.wait();
        let _ = rec.remove();
        return Ok(code(st));
    }
    if detach {
        return Ok(0);
    }
    forward_signals(pid);
    let status = wait_child(pid).map_err(|e| RuntimeError::Wait(id.clone(), e))?;
    // The delegate forgets the container while the supervisor writes its outputs.
    let deleting = (!keep)
        .then(|| {
            delegate
                .command("delete", &[OsString::from(&id)])
                .spawn()
                .ok()
        })
        .flatten();
    // Its outputs (model, summary, attestation) are written when it ends; what it says about
    // the run (out-of-model events, refusals) is the caller's to read, as under `tsem run`.
    let _ = daemon.wait();
    if let Ok(words) = std::fs::read(rec.log()) {
        let _ = std::io::stderr().write_all(&words);
    }
    if let Some(mut d) = deleting {
        let _ = d.wait();
    }
    if !keep {
        rec.remove()?;
    }
    Ok(status)
}

/// The container init that [`forward_signals`] hands signals on to.
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes integer arguments.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Hand the signals a foreground `run` gets (Ctrl-C, `kill`, hang-up) on to the container's
/// init, as `runc run` does.
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
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Wait for our child `pid`; its status as a shell reports it.
fn wait_child(pid: i32) -> std::io::Result<i32> {
    loop {
        let mut st = 0;
        // SAFETY: `st` is writable.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            128 + libc::WTERMSIG(st)
        });
    }
}
