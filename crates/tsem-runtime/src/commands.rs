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
            Created::Supervised => Ok(0),
        },
        "run" => crate::run::run(g, &delegate, args),
        crate::handover::COMMAND => Ok(crate::handover::hook(args)),
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

pub(crate) fn code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code()
        .unwrap_or_else(|| 128 + s.signal().unwrap_or(libc::SIGKILL))
}

/// The container id: the first positional argument.
pub(crate) fn id_of(
    cmd: &str,
    args: &[OsString],
    value_flags: &[&str],
) -> Result<String, RuntimeError> {
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
    Supervised,
}

/// The bundle's config.json, with the `--tsem-default` annotations it does not set itself.
pub(crate) fn read_config(
    g: &Globals,
    bundle: &std::path::Path,
) -> Result<serde_json::Value, RuntimeError> {
    let path = bundle.join("config.json");
    let bad = |why: String| RuntimeError::Bundle {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if g.defaults.is_empty() {
        return Ok(config);
    }
    let Some(obj) = config.as_object_mut() else {
        return Err(bad("not a JSON object".into()));
    };
    let ann = obj
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    let Some(ann) = ann.as_object_mut() else {
        return Err(bad("annotations: not an object".into()));
    };
    for (k, v) in &g.defaults {
        ann.entry(k.clone())
            .or_insert_with(|| serde_json::Value::from(v.clone()));
    }
    Ok(config)
}

/// The supervision the bundle asks for, checked: annotations, and namespaces that keep the
/// supervisor out of the container's sight.
pub(crate) fn supervision(config: &serde_json::Value) -> Result<Option<Supervision>, RuntimeError> {
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
    let config = read_config(g, &bundle)?;
    let Some(sup) = supervision(&config)? else {
        return Ok(Created::Unsupervised);
    };
    let (mut daemon, rec) = start_supervisor(g, &id, &config, &sup, true)?;
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
    if let Err(e) = handed {
        undo(daemon, true);
        return Err(e);
    }
    rec.set_supervisor(daemon.pid())?;
    Ok(Created::Supervised)
}

/// Start the supervisor of container `id` (its record created): ready for the container's init
/// when this returns if `wait` (else [`Daemon::ready`] is the caller's to call).
pub(crate) fn start_supervisor(
    g: &Globals,
    id: &str,
    config: &serde_json::Value,
    sup: &Supervision,
    wait: bool,
) -> Result<(Daemon, Record), RuntimeError> {
    let (launch, rec) = supervisor_launch(g, id, config, sup)?;
    match launch.start(wait) {
        Ok(d) => Ok((d, rec)),
        Err(e) => {
            let _ = rec.remove();
            Err(e.into())
        }
    }
}

/// How to start the supervisor of container `id`, whose record is created.
pub(crate) struct Launch {
    tsem: PathBuf,
    args: Vec<OsString>,
    names: Vec<OsString>,
    log: PathBuf,
}

impl Launch {
    /// Start the daemon; with `wait`, until it has checked its model and outputs.
    pub(crate) fn start(&self, wait: bool) -> Result<Daemon, crate::supervise::SuperviseError> {
        if wait {
            Daemon::start(&self.tsem, &self.args, &self.names, &self.log)
        } else {
            Daemon::spawn(&self.tsem, &self.args, &self.names, &self.log)
        }
    }
}

/// Create container `id`'s record and say how its supervisor starts.
pub(crate) fn supervisor_launch(
    g: &Globals,
    id: &str,
    config: &serde_json::Value,
    sup: &Supervision,
) -> Result<(Launch, Record), RuntimeError> {
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
        .unwrap_or_else(|| vec![OsString::from(id)]);
    let rec = Record::of(&state::base(g), id)?;
    rec.create()?;
    let tsem = supervise::tsem_binary(g.tsem.as_deref());
    let mut run_args = sup.tsem_args();
    let backstop_only = g.backstop_only && run_args.iter().any(|a| a == "--enforce");
    if backstop_only {
        run_args.push("--backstop-only".into());
    }
    // Every supervised container is a named, live namespace: `tsem ctl state ID`, `tsem
    // console ID` (ids docker and podman make are 64 hex digits, a plain name). Not under the
    // test switch, which takes no live access.
    if tsem_core::is_plain_name(id, 64) && !backstop_only {
        run_args.extend(["--name".into(), OsString::from(id), "--name-if-free".into()]);
    }
    let log = rec.log();
    Ok((
        Launch {
            tsem,
            args: run_args,
            names,
            log,
        },
        rec,
    ))
}
