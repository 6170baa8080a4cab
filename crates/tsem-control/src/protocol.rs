//! What a client and a run's control server say to each other.
//!
//! The client sends one request line, a JSON object: `{"op": OP, "follow": BOOL,
//! "with_forensics": BOOL}` with OP one of `info`, `state`, `points`, `trajectory`, `forensics`,
//! `model`. The server answers with one header line, `{"ok": true}` or `{"error": "why"}`, then
//! the payload, one line each, and closes the connection when it is complete (with `follow`:
//! when the run ends or the client goes away). Payload lines are:
//!
//! - `info`: one object (name, pid, command, mode, started, export);
//! - `state`: the summary object (`tsem replay --json` keys), one more after each change with
//!   `follow`;
//! - `points`: `{"coefficient": HEX, "valid": BOOL}` per point, first-seen order;
//! - `trajectory` / `forensics`: the description lines of the points, exactly as the files
//!   `tsem run --trajectory/--forensics` writes (strict JSON where the bytes allow);
//! - `model`: the lines of a model file.

use serde_json::{Value, json};

/// A request that is not one we know.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not a JSON object.
    #[error("request is not a JSON object: {0}")]
    Json(String),
    /// The operation is missing or unknown.
    #[error("unknown operation {0:?}")]
    UnknownOp(String),
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Who the run is.
    Info,
    /// The summary.
    State,
    /// The coefficients.
    Points,
    /// Descriptions of the valid points.
    Trajectory,
    /// Descriptions of the forensic points.
    Forensics,
    /// The model so far.
    Model {
        /// Fold the forensic points in.
        with_forensics: bool,
    },
}

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// What.
    pub query: Query,
    /// Keep sending what is new until the run ends.
    pub follow: bool,
}

impl Query {
    fn op(self) -> &'static str {
        match self {
            Query::Info => "info",
            Query::State => "state",
            Query::Points => "points",
            Query::Trajectory => "trajectory",
            Query::Forensics => "forensics",
            Query::Model { .. } => "model",
        }
    }
}

impl Request {
    /// The request line (without the newline).
    pub fn to_line(self) -> String {
        let with_forensics = matches!(
            self.query,
            Query::Model {
                with_forensics: true
            }
        );
        json!({"op": self.query.op(), "follow": self.follow, "with_forensics": with_forensics})
            .to_string()
    }

    /// Parse a request line.
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let v: Value =
            serde_json::from_slice(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
        let Some(obj) = v.as_object() else {
            return Err(ProtocolError::Json("not an object".into()));
        };
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
        let op = obj.get("op").and_then(Value::as_str).unwrap_or_default();
        let query = match op {
            "info" => Query::Info,
            "state" => Query::State,
            "points" => Query::Points,
            "trajectory" => Query::Trajectory,
            "forensics" => Query::Forensics,
            "model" => Query::Model {
                with_forensics: flag("with_forensics"),
            },
            other => return Err(ProtocolError::UnknownOp(other.to_string())),
        };
        Ok(Self {
            query,
            follow: flag("follow"),
        })
    }
}

/// The success header line.
pub fn ok_line() -> String {
    json!({"ok": true}).to_string()
}

/// An error header line.
pub fn error_line(msg: &str) -> String {
    json!({"error": msg}).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_ones_are_named() {
        for q in [
            Query::Info,
            Query::State,
            Query::Points,
            Query::Trajectory,
            Query::Forensics,
            Query::Model {
                with_forensics: true,
            },
            Query::Model {
                with_forensics: false,
            },
        ] {
            for follow in [false, true] {
                let r = Request { query: q, follow };
                assert_eq!(Request::parse(r.to_line().as_bytes()).unwrap(), r);
            }
        }
        let e = Request::parse(br#"{"op":"shutdown"}"#).unwrap_err();
        assert!(e.to_string().contains("shutdown"));
        assert!(Request::parse(b"[1]").is_err());
        assert!(Request::parse(b"{").is_err());
    }
}
