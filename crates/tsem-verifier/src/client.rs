//! A small blocking HTTP/1.1 client for the verifier's API, used by `tsem attest --verifier`,
//! `tsem verifier enroll` and `status`: one request per connection, JSON in and out, bounded
//! reads. `http://` (the server accepts it only on loopback) or `https://` with a CA given.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{Appraisal, Enrolment, NonceGrant, Post, Status};

/// Largest response read (the history of a busy workload is the largest).
const MAX_RESPONSE: u64 = 64 << 20;

/// A failed request, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("verifier URL {url:?}: {msg}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        msg: String,
    },
    /// The connection failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        source: std::io::Error,
    },
    /// The verifier answered with an error.
    #[error("{url}: HTTP {code}: {msg}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        code: u16,
        /// The verifier's one-line error.
        msg: String,
    },
    /// The CA cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The answer is not HTTP or not the JSON expected.
    #[error("{url}: bad response: {msg}")]
    Response {
        /// The URL.
        url: String,
        /// What is wrong.
        msg: String,
    },
}

/// A verifier at a base URL (`http://HOST:PORT`).
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    port: u16,
    base: String,
    token: Option<String>,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// For an `http://` `url`, with an optional admin token.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_ca(url, token, None)
    }

    /// For `url`; an `https://` URL needs `ca`, the PEM file of the CA(s) to trust.
    pub fn with_ca(
        url: &str,
        token: Option<String>,
        ca: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let bad = |msg: &str| ClientError::Url {
            url: url.to_string(),
            msg: msg.to_string(),
        };
        let (rest, tls) = if let Some(r) = url.strip_prefix("http://") {
            (r, None)
        } else if let Some(r) = url.strip_prefix("https://") {
            let Some(ca) = ca else {
                return Err(bad("https needs the CA certificate to trust (--ca-cert)"));
            };
            (r, Some(Arc::new(crate::tls::client_config(ca)?)))
        } else {
            return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('@') || authority.is_empty() {
            return Err(bad("expected http://HOST:PORT with no path"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse().map_err(|_| bad("the port is not a number"))?;
                (h.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => (
                authority.trim_start_matches('[').trim_end_matches(']'),
                if tls.is_some() { 443 } else { 80 },
            ),
        };
        Ok(Self {
            host: host.to_string(),
            port,
            base: format!(
                "{}://{authority}",
                if tls.is_some() { "https" } else { "http" }
            ),
            token,
            timeout: Duration::from_secs(60),
            tls,
        })
    }

    /// Enrol a workload (admin).
    pub fn enroll(&self, e: &Enrolment) -> Result<serde_json::Value, ClientError> {
        self.call("POST", "/v1/enroll", Some(e))
    }

    /// A fresh nonce for `workload`.
    pub fn nonce(&self, workload: &str) -> Result<NonceGrant, ClientError> {
        self.call::<(), _>("POST", &format!("/v1/workloads/{workload}/nonce"), None)
    }

    /// Post an attestation for appraisal.
    pub fn post(&self, workload: &str, p: &Post) -> Result<Appraisal, ClientError> {
        self.call(
            "POST",
            &format!("/v1/workloads/{workload}/attestations"),
            Some(p),
        )
    }

    /// Ask for a credential-activation challenge for `workload`'s AK.
    pub fn activation_challenge(
        &self,
        workload: &str,
        r: &crate::protocol::ActivationRequest,
    ) -> Result<crate::protocol::ActivationChallenge, ClientError> {
        self.call(
            "POST",
            &format!("/v1/workloads/{workload}/activation"),
            Some(r),
        )
    }

    /// Answer challenge `id` with the credential the TPM recovered.
    pub fn activation_answer(
        &self,
        workload: &str,
        id: &str,
        a: &crate::protocol::ActivationAnswer,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(
            "POST",
            &format!("/v1/workloads/{workload}/activation/{id}"),
            Some(a),
        )
    }

    /// Post raw bytes as an attestation (for tests of what a hostile client can send).
    pub fn post_raw(&self, workload: &str, body: &[u8]) -> Result<Appraisal, ClientError> {
        let (code, text) = self.request(
            "POST",
            &format!("/v1/workloads/{workload}/attestations"),
            Some(body),
        )?;
        self.decode(code, &text)
    }

    /// Every workload's standing.
    pub fn status(&self) -> Result<Vec<Status>, ClientError> {
        #[derive(serde::Deserialize)]
        struct All {
            workloads: Vec<Status>,
        }
        self.call::<(), All>("GET", "/v1/status", None)
            .map(|a| a.workloads)
    }

    /// One workload's history (JSON as served).
    pub fn history(&self, workload: &str) -> Result<serde_json::Value, ClientError> {
        self.call::<(), _>("GET", &format!("/v1/workloads/{workload}/history"), None)
    }

    /// A JSON request and its JSON answer.
    pub fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| self.response_error(e.to_string()))?;
        let (code, text) = self.request(method, path, body.as_deref())?;
        self.decode(code, &text)
    }

    fn decode<T: DeserializeOwned>(&self, code: u16, text: &str) -> Result<T, ClientError> {
        if !(200..300).contains(&code) {
            let msg = serde_json::from_str::<crate::protocol::ErrorBody>(text)
                .map(|e| e.error)
                .unwrap_or_else(|_| crate::protocol::one_line(text));
            return Err(ClientError::Status {
                url: self.base.clone(),
                code,
                msg,
            });
        }
        serde_json::from_str(text).map_err(|e| self.response_error(e.to_string()))
    }

    fn response_error(&self, msg: String) -> ClientError {
        ClientError::Response {
            url: self.base.clone(),
            msg,
        }
    }

    /// One request on its own connection: `(status, body)`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, String), ClientError> {
        let io = |source| ClientError::Io {
            url: self.base.clone(),
            source,
        };
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| self.response_error(format!("{} resolves to nothing", self.host)))?;
        let s = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let raw = match &self.tls {
            None => self.exchange(s, method, path, body),
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| self.response_error(format!("server name: {e}")))?;
                let conn = rustls::ClientConnection::new(cfg.clone(), name)
                    .map_err(|e| self.response_error(format!("TLS: {e}")))?;
                self.exchange(rustls::StreamOwned::new(conn, s), method, path, body)
            }
        }
        .map_err(io)?;
        self.parse_response(&raw)
    }

    fn exchange(
        &self,
        mut s: impl Read + Write,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Vec<u8>> {
        let body = body.unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\
             Accept: application/json\r\nContent-Length: {}\r\n",
            self.host,
            self.port,
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = &self.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        s.flush()?;
        let mut raw = Vec::new();
        match s.take(MAX_RESPONSE).read_to_end(&mut raw) {
            Ok(_) => Ok(raw),
            // A TLS peer that closes without close_notify: the body's length is checked anyway.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
            Err(e) => Err(e),
        }
    }

    fn parse_response(&self, raw: &[u8]) -> Result<(u16, String), ClientError> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.response_error("no end of headers".into()))?;
        let head = std::str::from_utf8(raw.get(..end).unwrap_or_default())
            .map_err(|_| self.response_error("headers are not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        let code: u16 = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| self.response_error(format!("status line {status:?}")))?;
        let mut chunked = false;
        let mut length = None;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            if k.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked" {
                chunked = true;
            } else if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = raw.get(end + 4..).unwrap_or_default().to_vec();
        if chunked {
            body = dechunk(&body).ok_or_else(|| self.response_error("bad chunked body".into()))?;
        } else if let Some(n) = length {
            if body.len() < n {
                return Err(
                    self.response_error(format!("truncated body: {} of {n} bytes", body.len()))
                );
            }
            body.truncate(n);
        }
        String::from_utf8(body)
            .map(|b| (code, b))
            .map_err(|_| self.response_error("body is not UTF-8".into()))
    }
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(b.get(..nl)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = b.get(nl + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = Client::new("http://127.0.0.1:8080/", None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
        let c = Client::new("http://[::1]:9", None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 9));
        assert!(Client::new("https://x:1", None).is_err());
        assert!(Client::with_ca("https://x:1", None, Some(Path::new("/nonexistent"))).is_err());
        assert!(Client::new("ftp://x", None).is_err());
        assert!(Client::new("http://x:1/path", None).is_err());
    }

    #[test]
    fn responses() {
        let c = Client::new("http://127.0.0.1:1", None).unwrap();
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(c.parse_response(r).unwrap(), (200, "{}".into()));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(c.parse_response(r).unwrap(), (200, "{}".into()));
        assert!(c.parse_response(b"garbage").is_err());
        assert!(
            c.parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}")
                .is_err()
        );
    }
}
