//! The client side of the control socket (`tsem ctl`).

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::paths::{PathError, SOCKET_SUFFIX};
use crate::protocol::Request;

/// Why a question could not be asked or was not answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The runtime directory or the name.
    #[error(transparent)]
    Path(#[from] PathError),
    /// No run of that name.
    #[error("no running tsem named {name:?} ({}: {source}); see tsem ctl list", path.display())]
    NotRunning {
        /// The name asked for.
        name: String,
        /// Its socket.
        path: PathBuf,
        /// What connecting said.
        source: std::io::Error,
    },
    /// The run refused or did not understand the request.
    #[error("{name}: {msg}")]
    Refused {
        /// The run.
        name: String,
        /// Its answer.
        msg: String,
    },
    /// The connection broke or the answer is malformed.
    #[error("{name}: {msg}")]
    Protocol {
        /// The run.
        name: String,
        /// What went wrong.
        msg: String,
    },
}

/// Ask the run named `name`; returns the payload lines to read.
pub fn ask(name: &str, req: Request) -> Result<Box<dyn BufRead + Send>, ClientError> {
    let dir = crate::paths::runtime_dir_path();
    let path = crate::paths::socket_path(&dir, name)?;
    ask_at(name, &path, req)
}

/// Ask the run whose socket is `path`.
pub fn ask_at(
    name: &str,
    path: &Path,
    req: Request,
) -> Result<Box<dyn BufRead + Send>, ClientError> {
    let mut s = UnixStream::connect(path).map_err(|source| ClientError::NotRunning {
        name: name.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let proto = |msg: String| ClientError::Protocol {
        name: name.to_string(),
        msg,
    };
    // The server may refuse before reading; a failed send then is not the error to report.
    let sent = writeln!(s, "{}", req.to_line());
    let mut r = BufReader::new(s);
    let mut header = Vec::new();
    r.read_until(b'\n', &mut header)
        .map_err(|e| proto(format!("reading the answer: {e}")))?;
    if header.is_empty() {
        return Err(proto(match sent {
            Err(e) => format!("sending the request: {e}"),
            Ok(()) => "the run closed the connection without answering".into(),
        }));
    }
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| proto(format!("malformed answer header: {e}")))?;
    if let Some(msg) = v.get("error").and_then(|m| m.as_str()) {
        return Err(ClientError::Refused {
            name: name.to_string(),
            msg: msg.to_string(),
        });
    }
    if v.get("ok").and_then(|o| o.as_bool()) != Some(true) {
        return Err(proto(format!("unexpected answer header {v}")));
    }
    Ok(Box::new(r))
}

/// The names of the sockets in the runtime directory (live or stale), sorted.
pub fn names() -> Result<Vec<(String, PathBuf)>, ClientError> {
    let Some(dir) = crate::paths::existing_runtime_dir()? else {
        return Ok(Vec::new());
    };
    let rd = std::fs::read_dir(&dir).map_err(|source| PathError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let name = n.strip_suffix(SOCKET_SUFFIX)?.to_string();
            crate::paths::check_name(&name).ok()?;
            Some((name, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}
