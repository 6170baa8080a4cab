//! runc's command line: global flags, then a command and its arguments. The global flags runc
//! knows are accepted and handed on to the delegate; `--delegate` and `--tsem` are ours.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// A command line runc would not accept either.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A global flag this runtime does not know.
    #[error("unknown global flag {0}")]
    UnknownFlag(String),
    /// A global flag without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// No command.
    #[error("no command (create, start, state, kill, delete, run, exec, features, ...)")]
    NoCommand,
    /// `--tsem-default` without `org.tsem.KEY=VALUE`.
    #[error("--tsem-default {0:?}: expected org.tsem.KEY=VALUE")]
    BadDefault(String),
    /// The command needs a container id.
    #[error("{0}: no container id")]
    NoId(String),
}

/// Global flags with a value, runc's (handed on) and ours.
const VALUE_FLAGS: &[&str] = &["--root", "--log", "--log-format", "--criu", "--rootless"];
const BOOL_FLAGS: &[&str] = &["--systemd-cgroup", "--debug"];

/// The global settings.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// runc's global flags as given, handed on to the delegate.
    pub forward: Vec<OsString>,
    /// `--root`: the delegate's state directory.
    pub root: Option<PathBuf>,
    /// `--log`: where errors are written for the caller (docker, podman read it).
    pub log: Option<PathBuf>,
    /// `--log-format json`.
    pub log_json: bool,
    /// `--delegate PATH`: the runtime that sets containers up (default `runc`).
    pub delegate: Option<PathBuf>,
    /// `--tsem PATH`: the `tsem` binary the supervisor runs (default: beside this one).
    pub tsem: Option<PathBuf>,
    /// `--tsem-default KEY=VALUE`: an annotation every container gets unless its own config
    /// sets KEY (docker 20.10 has no `--annotation`; `runtimeArgs` in daemon.json give these).
    pub defaults: Vec<(String, String)>,
    /// `--tsem-test-backstop-only` (hidden, tests only): enforcing supervisors run with
    /// `tsem run --backstop-only`, which itself needs its consent variable in the environment.
    pub backstop_only: bool,
}

/// A parsed invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The global settings.
    pub globals: Globals,
    /// The command (`create`, `start`, ...; `--version`, `--help` too).
    pub command: String,
    /// Its arguments, as given.
    pub args: Vec<OsString>,
}

/// Parse `args` (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Invocation, CliError> {
    let mut g = Globals::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        if !s.starts_with('-') || s == "--version" || s == "-v" || s == "--help" || s == "-h" {
            return Ok(Invocation {
                globals: g,
                command: s,
                args: it.collect(),
            });
        }
        let (name, inline) = match s.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(OsString::from(v))),
            None => (s.clone(), None),
        };
        let ours = name == "--delegate" || name == "--tsem" || name == "--tsem-default";
        if name == "--tsem-test-backstop-only" {
            g.backstop_only = true;
            continue;
        }
        if BOOL_FLAGS.contains(&name.as_str()) {
            if name == "--systemd-cgroup" || name == "--debug" {
                g.forward.push(a);
            }
            continue;
        }
        if !ours && !VALUE_FLAGS.contains(&name.as_str()) {
            return Err(CliError::UnknownFlag(s));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| CliError::MissingValue(name.clone()))?,
        };
        match name.as_str() {
            "--delegate" => g.delegate = Some(value.into()),
            "--tsem" => g.tsem = Some(value.into()),
            "--tsem-default" => {
                let v = value.to_string_lossy();
                let Some((k, v)) = v.split_once('=') else {
                    return Err(CliError::BadDefault(v.into_owned()));
                };
                if !k.starts_with("org.tsem.") {
                    return Err(CliError::BadDefault(format!("{k}={v}")));
                }
                g.defaults.push((k.to_string(), v.to_string()));
            }
            _ => {
                match name.as_str() {
                    "--root" => g.root = Some(value.clone().into()),
                    "--log" => g.log = Some(value.clone().into()),
                    "--log-format" => g.log_json = value == "json",
                    _ => {}
                }
                g.forward.push(name.into());
                g.forward.push(value);
            }
        }
    }
    Err(CliError::NoCommand)
}

/// The arguments of a command: flags (some with a value) and positional arguments.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    args: &'a [OsString],
    value_flags: &'a [&'a str],
}

/// Flags with a value of `create` and `run`.
pub const CREATE_VALUE_FLAGS: &[&str] = &[
    "-b",
    "--bundle",
    "--console-socket",
    "--pid-file",
    "--preserve-fds",
];

/// Flags with a value of `exec`.
pub const EXEC_VALUE_FLAGS: &[&str] = &[
    "--console-socket",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--additional-gids",
    "-g",
    "--process",
    "-p",
    "--pid-file",
    "--process-label",
    "--apparmor",
    "--cap",
    "-c",
    "--preserve-fds",
    "--cgroup",
];

impl<'a> Args<'a> {
    /// `args`, where the flags in `value_flags` take a value.
    pub fn new(args: &'a [OsString], value_flags: &'a [&'a str]) -> Self {
        Self { args, value_flags }
    }

    fn name(a: &OsStr) -> String {
        let s = a.to_string_lossy();
        s.split_once('=')
            .map_or(s.to_string(), |(n, _)| n.to_string())
    }

    /// The value of the flag named by any of `names`.
    pub fn value(&self, names: &[&str]) -> Option<OsString> {
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            let s = a.to_string_lossy();
            if s == "--" {
                return None;
            }
            let n = Self::name(a);
            if names.contains(&n.as_str()) {
                return match s.split_once('=') {
                    Some((_, v)) => Some(v.into()),
                    None => it.next().cloned(),
                };
            }
            if self.value_flags.contains(&n.as_str()) && !s.contains('=') {
                it.next();
            }
        }
        None
    }

    /// Whether a flag named by any of `names` is given (`-d`, `--detach`, `--detach=true`).
    pub fn flag(&self, names: &[&str]) -> bool {
        self.positions().0.iter().any(|i| {
            let a = &self.args[*i];
            names.contains(&Self::name(a).as_str()) && !a.to_string_lossy().ends_with("=false")
        })
    }

    /// Indices of the flags (with their values) and of the positional arguments.
    fn positions(&self) -> (Vec<usize>, Vec<usize>) {
        let (mut flags, mut pos) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < self.args.len() {
            let s = self.args[i].to_string_lossy();
            if s == "--" {
                pos.extend(i + 1..self.args.len());
                break;
            }
            if s.starts_with('-') && s.len() > 1 {
                flags.push(i);
                if self
                    .value_flags
                    .contains(&Self::name(&self.args[i]).as_str())
                    && !s.contains('=')
                {
                    i += 1;
                }
            } else {
                pos.push(i);
            }
            i += 1;
        }
        (flags, pos)
    }

    /// The positional arguments.
    pub fn positional(&self) -> Vec<&'a OsString> {
        self.positions()
            .1
            .into_iter()
            .map(|i| &self.args[i])
            .collect()
    }

    /// The arguments without the flags named by any of `names` (flags without values).
    pub fn without(&self, names: &[&str]) -> Vec<OsString> {
        self.args
            .iter()
            .filter(|a| !names.contains(&Self::name(a).as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn podman_and_docker_command_lines_parse() {
        let inv = parse(os(&[
            "--root",
            "/run/r",
            "--log=/l",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "c1",
        ]))
        .unwrap();
        assert_eq!(inv.command, "create");
        assert_eq!(inv.globals.root, Some("/run/r".into()));
        assert_eq!(inv.globals.log, Some("/l".into()));
        assert!(inv.globals.log_json);
        assert_eq!(
            inv.globals.forward,
            os(&[
                "--root",
                "/run/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "--systemd-cgroup"
            ])
        );
        let a = Args::new(&inv.args, CREATE_VALUE_FLAGS);
        assert_eq!(a.value(&["-b", "--bundle"]), Some("/b".into()));
        assert_eq!(a.positional(), [&OsString::from("c1")]);
        assert!(parse(os(&["--bogus", "x"])).is_err());
        let inv = parse(os(&[
            "--tsem-default",
            "org.tsem.mode=learn",
            "--tsem-default=org.tsem.model-out=/m=1",
            "state",
            "c",
        ]))
        .unwrap();
        assert_eq!(
            inv.globals.defaults,
            [
                ("org.tsem.mode".to_string(), "learn".to_string()),
                ("org.tsem.model-out".to_string(), "/m=1".to_string())
            ]
        );
        assert!(inv.globals.forward.is_empty());
        assert!(parse(os(&["--tsem-default", "mode=learn", "state", "c"])).is_err());
        assert!(parse(os(&["--tsem-default", "org.tsem.mode", "state", "c"])).is_err());
        assert!(parse(os(&["--root"])).is_err());
    }

    #[test]
    fn run_flags_are_found_and_removed() {
        let v = os(&["-b=/b", "-d", "--keep", "--pid-file", "/p", "id"]);
        let a = Args::new(&v, CREATE_VALUE_FLAGS);
        assert!(a.flag(&["-d", "--detach"]));
        assert!(!a.flag(&["--no-pivot"]));
        assert_eq!(a.value(&["-b", "--bundle"]), Some("/b".into()));
        assert_eq!(
            a.without(&["-d", "--detach", "--keep"]),
            os(&["-b=/b", "--pid-file", "/p", "id"])
        );
    }
}
