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
    Ok(Some(Supervision {
        mode,
        model,
        model_out: output("org.tsem.model-out")?,
        summary: output("org.tsem.summary")?,
        trajectory: output("org.tsem.trajectory")?,
        forensics: output("org.tsem.forensics")?,
        attest,
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
            // The Landlock backstop is applied by `tsem run` to the process it spawns; an
            // attached container has none (docs/containers.md).
            Mode::Enforce => a.extend(["--enforce".into(), "--no-backstop".into()]),
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
            [
                "run",
                "--model",
                "/m",
                "--output",
                "/tmp/m",
                "--enforce",
                "--no-backstop"
            ]
        );
    }
}
