//! A small blocking HTTP/1.1 client for the verifier's API, used by `tsem attest --verifier`,
//! `tsem verifier enroll` and `status`: JSON in and out, bounded reads. `http://` (the server
//! accepts it only on loopback) keeps its connection open between requests (a connection set up
//! per request cost more than the appraisal itself, docs/verifier.md "Performance"); `https://`
//! with a CA given uses one connection per request.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
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
        /// Its machine-readable kind, when it gave one ([`crate::protocol::ErrorBody::kind`]).
        kind: Option<String>,
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
    /// The open plain-HTTP connection, shared by clones (one request at a time on it).
    conn: Arc<Mutex<Option<TcpStream>>>,
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
            conn: Arc::new(Mutex::new(None)),
        })
    }

    /// The base URL (`http://HOST:PORT`).
    pub fn url(&self) -> &str {
        &self.base
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
            let (msg, kind) = match serde_json::from_str::<crate::protocol::ErrorBody>(text) {
                Ok(e) => (e.error, e.kind),
                Err(_) => (crate::protocol::one_line(text), None),
            };
            return Err(ClientError::Status {
                url: self.base.clone(),
                code,
                msg,
                kind,
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
        let connect = || -> std::io::Result<TcpStream> {
            let s = TcpStream::connect_timeout(&addr, self.timeout)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            s.set_nodelay(true)?;
            Ok(s)
        };
        if self.tls.is_none() {
            return self.keep_alive(connect, method, path, body);
        }
        let s = connect().map_err(io)?;
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

    /// One request on the kept connection (opened if there is none). A kept connection the
    /// server closed while idle fails before a byte of the answer arrives; then, and only then,
    /// the request is sent once more on a new connection: the server never saw the first one.
    fn keep_alive(
        &self,
        connect: impl Fn() -> std::io::Result<TcpStream>,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, String), ClientError> {
        let io = |source| ClientError::Io {
            url: self.base.clone(),
            source,
        };
        let mut kept = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut reused = kept.is_some();
        loop {
            let mut s = match kept.take() {
                Some(s) => s,
                None => connect().map_err(io)?,
            };
            let raw = self.request_bytes(method, path, body, "keep-alive");
            let got = s
                .write_all(&raw)
                .and_then(|()| s.flush())
                .and_then(|()| read_response(&mut s));
            match got {
                Ok(Some((raw, reusable))) => {
                    if reusable {
                        *kept = Some(s);
                    }
                    return self.parse_response(&raw);
                }
                Ok(None) if reused => reused = false,
                Err(e) if reused && is_stale(&e) => reused = false,
                Ok(None) => {
                    return Err(self.response_error("connection closed without an answer".into()));
                }
                Err(e) => return Err(io(e)),
            }
        }
    }

    fn request_bytes(&self, method: &str, path: &str, body: Option<&[u8]>, conn: &str) -> Vec<u8> {
        let body = body.unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: {conn}\r\n\
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
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn exchange(
        &self,
        mut s: impl Read + Write,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Vec<u8>> {
        s.write_all(&self.request_bytes(method, path, body, "close"))?;
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

/// A connection the peer closed or reset before answering.
fn is_stale(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}

/// Read one response from a kept connection: `None` when it closed before the first byte, else
/// the raw response and whether the connection can carry another request (the server did not
/// say `Connection: close` and gave a `Content-Length`; otherwise the body runs to the end).
fn read_response(s: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if raw.len() as u64 > MAX_RESPONSE {
            return Err(std::io::Error::other("response headers too long"));
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(raw.get(..head_end).unwrap_or_default()).to_lowercase();
    let mut length = None;
    let mut close = false;
    for l in head.split("\r\n") {
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse::<u64>().ok();
        } else if let Some(v) = l.strip_prefix("connection:") {
            close = v.trim() == "close";
        }
    }
    match length {
        Some(n) if n <= MAX_RESPONSE => {
            let want = head_end + n as usize;
            while raw.len() < want {
                let k = s.read(&mut buf)?;
                if k == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                raw.extend_from_slice(buf.get(..k).unwrap_or_default());
            }
            Ok(Some((raw, !close)))
        }
        _ => {
            (&mut *s).take(MAX_RESPONSE).read_to_end(&mut raw)?;
            Ok(Some((raw, false)))
        }
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

    /// A server that answers one request per connection and then closes it: the client keeps
    /// the connection, finds it closed on the next request, and sends that request once more on
    /// a new connection; the server sees each request exactly once.
    #[test]
    fn a_kept_connection_closed_by_the_server_is_replaced() {
        use std::io::BufRead as _;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for i in 0..2 {
                let (s, _) = l.accept().unwrap();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                seen.push(line.trim().to_string());
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h == "\r\n" {
                        break;
                    }
                }
                let body = format!("{{\"n\": {i}}}");
                let mut s = s;
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                // Then close, as a server whose idle timeout passed would.
            }
            seen
        });
        let c = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let a: serde_json::Value = c.call::<(), _>("GET", "/one", None).unwrap();
        let b: serde_json::Value = c.call::<(), _>("GET", "/two", None).unwrap();
        assert_eq!((a["n"].as_u64(), b["n"].as_u64()), (Some(0), Some(1)));
        assert_eq!(
            server.join().unwrap(),
            ["GET /one HTTP/1.1", "GET /two HTTP/1.1"]
        );
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
