//! The `org.tsem.*` annotations of a bundle's config.json: what to do with the container, checked
//! before anything is created, and the `tsem run` arguments they become.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A bad or missing annotation value (one line, naming the annotation).
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    /// An annotation that is not one of ours.
    #[error("unknown annotation {0} (known: {known})", known = KNOWN.join(", "))]
    Unknown(String),
    /// `org.tsem.mode` is not learn, seal or enforce.
    #[error("org.tsem.mode: {0:?} is not learn, seal or enforce")]
    Mode(String),
    /// A value is required with another.
    #[error("{0} needs {1}")]
    Needs(&'static str, &'static str),
    /// A path that must be absolute (the runtime runs in a directory of the caller's choosing).
    #[error("{0}: {1:?} is not an absolute host path")]
    Relative(&'static str, String),
    /// An input file that cannot be read.
    #[error("{0}: cannot read {1}: {2}")]
    Unreadable(&'static str, String, std::io::Error),
    /// An output whose directory does not exist.
    #[error("{0}: the directory of {1} does not exist")]
    NoDir(&'static str, String),
    /// org.tsem.* given without org.tsem.mode.
    #[error("{0} given without org.tsem.mode")]
    NoMode(String),
    /// The nonce is not 8 to 64 bytes of hex.
    #[error("org.tsem.nonce: {0:?} is not 8 to 64 bytes of hex")]
    Nonce(String),
    /// An export destination the supervisor cannot stream to.
    #[error(
        "org.tsem.export: {0:?} is not an absolute file path, unix:ABSOLUTE_PATH or \
         mqtt://HOST:PORT/TOPIC"
    )]
    Export(String),
    /// A deviation policy that is not one, or not one a container can have.
    #[error(
        "org.tsem.on-forensic: {0:?} is not untrust, deny or kill (a container's restart is its \
         runtime's: --restart, restart policies)"
    )]
    Policy(String),
}

const KNOWN: &[&str] = &[
    "org.tsem.mode",
    "org.tsem.model",
    "org.tsem.model-out",
    "org.tsem.summary",
    "org.tsem.trajectory",
    "org.tsem.forensics",
    "org.tsem.attest",
    "org.tsem.nonce",
    "org.tsem.key",
    "org.tsem.export",
    "org.tsem.on-forensic",
];

/// What tsem does with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Learn a model (extending `org.tsem.model` when given).
    Learn,
    /// Seal the model: out-of-model events are forensics, allowed.
    Seal,
    /// Enforce the model: out-of-model events fail with EPERM.
    Enforce,
}

/// The supervision a container's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    /// The mode.
    pub mode: Mode,
    /// `org.tsem.model`.
    pub model: Option<PathBuf>,
    /// `org.tsem.model-out`.
    pub model_out: Option<PathBuf>,
    /// `org.tsem.summary`.
    pub summary: Option<PathBuf>,
    /// `org.tsem.trajectory`.
    pub trajectory: Option<PathBuf>,
    /// `org.tsem.forensics`.
    pub forensics: Option<PathBuf>,
    /// `org.tsem.attest`, `org.tsem.nonce`, `org.tsem.key`.
    pub attest: Option<(PathBuf, String, PathBuf)>,
    /// `org.tsem.export`: where every event description is streamed as it happens.
    pub export: Option<String>,
    /// `org.tsem.on-forensic`: what a deviation costs (`untrust`, `deny`, `kill`).
    pub on_forensic: Option<String>,
}

/// Read the supervision from a config.json's `annotations` (`None`: no `org.tsem.mode`, the
/// container runs unsupervised).
pub fn parse(config: &serde_json::Value) -> Result<Option<Supervision>, AnnotationError> {
    let Some(map) = config.get("annotations").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
    for k in map.keys() {
        if k.starts_with("org.tsem.") && !KNOWN.contains(&k.as_str()) {
            return Err(AnnotationError::Unknown(k.clone()));
        }
    }
    let Some(mode) = get("org.tsem.mode") else {
        return match map.keys().find(|k| k.starts_with("org.tsem.")) {
            Some(k) => Err(AnnotationError::NoMode(k.clone())),
            None => Ok(None),
        };
    };
    let mode = match mode.as_str() {
        "learn" => Mode::Learn,
        "seal" => Mode::Seal,
        "enforce" => Mode::Enforce,
        _ => return Err(AnnotationError::Mode(mode)),
    };
    let input = |k: &'static str| -> Result<Option<PathBuf>, AnnotationError> {
        let Some(v) = get(k) else { return Ok(None) };
        let p = absolute(k, &v)?;
        std::fs::File::open(&p).map_err(|e| AnnotationError::Unreadable(k, v, e))?;
        Ok(Some(p))
    };
    let output = |k: &'static str| -> Result<Option<PathBuf>, AnnotationError> {
        let Some(v) = get(k) else { return Ok(None) };
        let p = absolute(k, &v)?;
        if !p.parent().is_some_and(Path::is_dir) {
            return Err(AnnotationError::NoDir(k, v));
        }
        Ok(Some(p))
    };
    let model = input("org.tsem.model")?;
    if mode != Mode::Learn && model.is_none() {
        return Err(AnnotationError::Needs(
            "org.tsem.mode=seal/enforce",
            "org.tsem.model",
        ));
    }
    let attest = match (
        output("org.tsem.attest")?,
        get("org.tsem.nonce"),
        input("org.tsem.key")?,
    ) {
        (None, None, None) => None,
        (Some(out), Some(nonce), Some(key)) => {
            let hex = nonce.len() % 2 == 0 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex || !(16..=128).contains(&nonce.len()) {
                return Err(AnnotationError::Nonce(nonce));
            }
            Some((out, nonce, key))
        }
        _ => {
            return Err(AnnotationError::Needs(
                "org.tsem.attest",
                "org.tsem.nonce and org.tsem.key (all three together)",
            ));
        }
    };
    let export = get("org.tsem.export");
    if let Some(e) = &export {
        let ok = if let Some(p) = e.strip_prefix("unix:") {
            p.starts_with('/')
        } else if let Some(rest) = e.strip_prefix("mqtt://") {
            rest.split_once('/').is_some_and(|(h, t)| {
                h.rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                    && !t.is_empty()
            })
        } else {
            e.starts_with('/')
        };
        if !ok {
            return Err(AnnotationError::Export(e.clone()));
        }
    }
    let on_forensic = get("org.tsem.on-forensic");
    if let Some(p) = &on_forensic {
        if !matches!(p.as_str(), "untrust" | "deny" | "kill") {
            return Err(AnnotationError::Policy(p.clone()));
        }
        if mode == Mode::Learn {
            return Err(AnnotationError::Needs(
                "org.tsem.on-forensic",
                "org.tsem.mode=seal or enforce",
            ));
        }
    }
    Ok(Some(Supervision {
        mode,
        model,
        model_out: output("org.tsem.model-out")?,
        summary: output("org.tsem.summary")?,
        trajectory: output("org.tsem.trajectory")?,
        forensics: output("org.tsem.forensics")?,
        attest,
        export,
        on_forensic,
    }))
}

fn absolute(k: &'static str, v: &str) -> Result<PathBuf, AnnotationError> {
    let p = PathBuf::from(v);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(AnnotationError::Relative(k, v.to_string()))
    }
}

impl Supervision {
    /// The `tsem run` arguments of the supervisor daemon (before `--attach-fd` and the `--`).
    pub fn tsem_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["run".into()];
        let mut path = |flag: &str, p: &Option<PathBuf>| {
            if let Some(p) = p {
                a.push(flag.into());
                a.push(p.into());
            }
        };
        path("--model", &self.model);
        path("--output", &self.model_out);
        path("--summary-json", &self.summary);
        path("--trajectory", &self.trajectory);
        path("--forensics", &self.forensics);
        match self.mode {
            Mode::Learn if self.model.is_some() => a.push("--learn".into()),
            Mode::Learn => {}
            Mode::Seal => a.push("--seal".into()),
            // With the model's Landlock backstop, applied by the container's program to itself
            // before its first instruction (docs/containers.md).
            Mode::Enforce => a.push("--enforce".into()),
        }
        if let Some(e) = &self.export {
            a.extend(["--export".into(), e.into()]);
        }
        if let Some(p) = &self.on_forensic {
            a.extend(["--on-forensic".into(), p.into()]);
        }
        if let Some((out, nonce, key)) = &self.attest {
            a.extend([
                "--attest".into(),
                out.into(),
                "--nonce".into(),
                nonce.into(),
                "--key".into(),
                key.into(),
            ]);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_mode_is_unsupervised_and_strays_are_refused() {
        assert_eq!(parse(&json!({})).unwrap(), None);
        assert_eq!(parse(&json!({"annotations": {"a": "b"}})).unwrap(), None);
        let e = parse(&json!({"annotations": {"org.tsem.model": "/x"}})).unwrap_err();
        assert!(e.to_string().contains("without org.tsem.mode"), "{e}");
        let e = parse(&json!({"annotations": {"org.tsem.mod": "learn"}})).unwrap_err();
        assert!(
            e.to_string().contains("unknown annotation org.tsem.mod"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_annotation() {
        let bad =
            |a: serde_json::Value| parse(&json!({ "annotations": a })).unwrap_err().to_string();
        assert!(bad(json!({"org.tsem.mode": "teach"})).starts_with("org.tsem.mode:"));
        assert!(bad(json!({"org.tsem.mode": "enforce"})).contains("needs org.tsem.model"));
        assert!(
            bad(json!({"org.tsem.mode": "enforce", "org.tsem.model": "m"}))
                .contains("not an absolute")
        );
        assert!(
            bad(json!({"org.tsem.mode": "seal", "org.tsem.model": "/nonexistent/m"}))
                .starts_with("org.tsem.model: cannot read")
        );
        assert!(
            bad(json!({"org.tsem.mode": "learn", "org.tsem.model-out": "/nonexistent/d/m"}))
                .contains("does not exist")
        );
        assert!(
            bad(json!({"org.tsem.mode": "learn", "org.tsem.attest": "/tmp/a"}))
                .contains("all three")
        );
        for e in ["out.jsonl", "unix:rel", "mqtt://broker/t", "mqtt://h:1"] {
            assert!(
                bad(json!({"org.tsem.mode": "learn", "org.tsem.export": e}))
                    .starts_with("org.tsem.export:"),
                "{e}"
            );
        }
        let enforce = |p: &str| {
            json!({"org.tsem.mode": "enforce", "org.tsem.model": "/dev/null",
                   "org.tsem.on-forensic": p})
        };
        assert!(bad(enforce("restart")).contains("its runtime's"));
        assert!(bad(enforce("lenient")).starts_with("org.tsem.on-forensic:"));
        assert!(
            bad(json!({"org.tsem.mode": "learn", "org.tsem.on-forensic": "deny"}))
                .contains("needs org.tsem.mode=seal or enforce")
        );
    }

    #[test]
    fn export_and_policy_become_tsem_run_arguments() {
        let s = parse(&json!({"annotations": {
            "org.tsem.mode": "enforce", "org.tsem.model": "/dev/null",
            "org.tsem.export": "mqtt://127.0.0.1:1883/tsem/c1", "org.tsem.on-forensic": "deny"}}))
        .unwrap()
        .unwrap();
        let a = s.tsem_args();
        let w = |f: &str| {
            a.iter()
                .position(|x| x == f)
                .map(|i| a[i + 1].to_string_lossy().into_owned())
        };
        assert_eq!(
            w("--export").as_deref(),
            Some("mqtt://127.0.0.1:1883/tsem/c1")
        );
        assert_eq!(w("--on-forensic").as_deref(), Some("deny"));
    }

    #[test]
    fn learn_and_enforce_become_tsem_run_arguments() {
        let s = parse(&json!({"annotations": {
            "org.tsem.mode": "learn", "org.tsem.model-out": "/tmp/m"}}))
        .unwrap()
        .unwrap();
        assert_eq!(s.tsem_args(), ["run", "--output", "/tmp/m"]);
        let s = Supervision {
            mode: Mode::Enforce,
            model: Some("/m".into()),
            ..s
        };
        assert_eq!(
            s.tsem_args(),
            ["run", "--model", "/m", "--output", "/tmp/m", "--enforce",]
        );
    }
}
