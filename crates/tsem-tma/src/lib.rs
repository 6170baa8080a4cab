//! # tsem-tma
//!
//! The modeling agent (TMA) as its own process, outside the workload's trust domain (spec §7.1,
//! §7.6): `tsem tma serve` holds the namespace, `tsem run --tma ADDR` asks it for every verdict.
//!
//! # Protocol `tsem-tma-1` (a successor of Sancho's framing, docs/tma.md)
//! On a socket (Unix, TCP, vsock) every frame is a big-endian `u32` length and that many bytes
//! (Sancho's framing), at most [`MAX_FRAME`]; a serial line wraps the same payloads in frames
//! of its own ([`serial`]). The session opens with a handshake that authenticates both ends by their
//! Ed25519 keys and binds fresh nonces:
//!
//! ```text
//! C -> S  "tsem-tma-1" client_pub[32] client_nonce[32]
//! S -> C  server_pub[32] server_nonce[32] sig_S("tsem-tma-1 server\0" T)
//! C -> S  sig_C("tsem-tma-1 client\0" T)
//! S -> C  "OK" | "NO " reason
//! T = client_pub client_nonce server_pub server_nonce
//! ```
//!
//! Each end accepts only the peer key it was given. Every later frame is
//! `seq[u64 BE] body sig[64]`, signed by its sender over
//! `"tsem-tma-1 msg\0" session dir seq body` where `session` = SHA-256(T) and `dir` is 0 from
//! client to server, 1 back. Sequence numbers start at 0 and rise by one per direction: a
//! frame replayed, reordered, from another session or altered is refused and ends the session,
//! and the run that depended on it fails closed.

// Every `unsafe` block says why it is sound (`// SAFETY:`).
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io::{Read, Write};

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use tsem_core::HashAlg;

pub mod agent;
pub mod serial;
pub mod transport;
mod tty;
pub mod vsock;

pub use transport::{Addr, Listener, Liveness, connect, watch};

/// Largest frame accepted (a model file travels in one).
pub const MAX_FRAME: usize = 64 << 20;
const MAGIC: &[u8] = b"tsem-tma-1";

/// Errors of the agent protocol. Every one ends the session.
#[derive(Debug, thiserror::Error)]
pub enum TmaError {
    /// The connection failed or closed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer is not who it must be, or its handshake is malformed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A frame that is not the next one of this session from this peer.
    #[error("refused frame: {0}")]
    Frame(String),
    /// A message the agent cannot act on.
    #[error("{0}")]
    Protocol(String),
    /// A key file.
    #[error("{path}: {msg}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
}

type R<T> = Result<T, TmaError>;

/// A byte stream to the peer.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// What a frame is for. Sancho's framing on a connection does not need it (a connection is one
/// session); a serial line carries it so that an agent can tell a new session's hello from the
/// tail of an old one and resynchronise (docs/tma.md, "serial").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The client's first handshake frame (opens a session).
    Hello,
    /// The other handshake frames.
    Handshake,
    /// A signed, sequence-numbered message of an open session.
    Message,
}

/// Frames to and from the peer.
pub trait Transport: Send {
    /// Send one frame.
    fn send(&mut self, kind: Kind, payload: &[u8]) -> R<()>;
    /// Receive the next frame of `kind`.
    fn recv(&mut self, kind: Kind) -> R<Vec<u8>>;
    /// The handshake authenticated session `id` between `me` and `peer` (a transport that
    /// signs or checks something of its own, as a serial line's keepalives, starts now).
    fn bind_session(&mut self, _id: &[u8; 32], _me: &SigningKey, _peer: &VerifyingKey) {}
}

/// Sancho's framing (a big-endian `u32` length, the payload) on a connected byte stream.
pub struct Sancho<S>(pub S);

impl<S: Stream> Transport for Sancho<S> {
    fn send(&mut self, _: Kind, payload: &[u8]) -> R<()> {
        write_frame(&mut self.0, payload)
    }
    fn recv(&mut self, _: Kind) -> R<Vec<u8>> {
        read_frame(&mut self.0)
    }
}

/// Read an Ed25519 private key (PKCS#8 PEM, as `tsem keygen` writes it).
pub fn signing_key(path: &std::path::Path) -> R<SigningKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| TmaError::Key {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| TmaError::Key {
        path: path.display().to_string(),
        msg: format!("not an Ed25519 private key: {e}"),
    })
}

/// Read an Ed25519 public key (SPKI PEM).
pub fn verifying_key(path: &std::path::Path) -> R<VerifyingKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| TmaError::Key {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| TmaError::Key {
        path: path.display().to_string(),
        msg: format!("not an Ed25519 public key: {e}"),
    })
}

/// Write one frame.
pub fn write_frame(s: &mut dyn Stream, payload: &[u8]) -> R<()> {
    if payload.len() > MAX_FRAME {
        return Err(TmaError::Protocol(format!(
            "a {}-byte message is over the {MAX_FRAME}-byte limit",
            payload.len()
        )));
    }
    let mut b = Vec::with_capacity(4 + payload.len());
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    s.write_all(&b)?;
    s.flush()?;
    Ok(())
}

/// Read one frame.
pub fn read_frame(s: &mut dyn Stream) -> R<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(TmaError::Frame(format!(
            "{n}-byte frame, over the {MAX_FRAME}-byte limit"
        )));
    }
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

fn nonce() -> R<[u8; 32]> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n)
        .map_err(|e| TmaError::Io(std::io::Error::other(format!("no randomness: {e}"))))?;
    Ok(n)
}

fn signed(prefix: &[u8], t: &[u8]) -> Vec<u8> {
    let mut m = prefix.to_vec();
    m.extend_from_slice(t);
    m
}

fn sig_of(b: &[u8]) -> R<ed25519_dalek::Signature> {
    let a: [u8; 64] = b
        .try_into()
        .map_err(|_| TmaError::Auth("a signature is 64 bytes".into()))?;
    Ok(ed25519_dalek::Signature::from_bytes(&a))
}

/// An authenticated session: who we are, the peer, the session id and both sequence numbers.
pub struct Session {
    stream: Box<dyn Transport>,
    key: SigningKey,
    peer: VerifyingKey,
    id: [u8; 32],
    /// 0 for the client, 1 for the server: the direction byte of what we send.
    dir: u8,
    sent: u64,
    received: u64,
}

impl Session {
    /// Open a session as the client over a connected byte stream (Sancho's framing).
    pub fn client(stream: Box<dyn Stream>, key: SigningKey, peer: VerifyingKey) -> R<Self> {
        Self::client_over(Box::new(Sancho(stream)), key, peer)
    }

    /// Accept a session as the agent over a connected byte stream (Sancho's framing).
    pub fn server(stream: Box<dyn Stream>, key: SigningKey, peer: VerifyingKey) -> R<Self> {
        Self::server_over(Box::new(Sancho(stream)), key, peer)
    }

    /// Open a session as the client, trusting only `peer` as the agent.
    pub fn client_over(
        mut stream: Box<dyn Transport>,
        key: SigningKey,
        peer: VerifyingKey,
    ) -> R<Self> {
        let cn = nonce()?;
        let cp = key.verifying_key().to_bytes();
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&cp);
        hello.extend_from_slice(&cn);
        stream.send(Kind::Hello, &hello)?;
        let r = stream.recv(Kind::Handshake)?;
        if let Some(why) = r.strip_prefix(b"NO ") {
            return Err(TmaError::Auth(format!(
                "the agent refused us: {}",
                String::from_utf8_lossy(why)
            )));
        }
        if r.len() != 128 {
            return Err(TmaError::Auth(
                "the agent's hello is malformed or it refused us".into(),
            ));
        }
        if r[..32] != peer.to_bytes() {
            return Err(TmaError::Auth(
                "the agent's key is not the one trusted (--tma-peer)".into(),
            ));
        }
        let mut t = Vec::with_capacity(128);
        t.extend_from_slice(&cp);
        t.extend_from_slice(&cn);
        t.extend_from_slice(&r[..64]);
        peer.verify_strict(&signed(b"tsem-tma-1 server\0", &t), &sig_of(&r[64..])?)
            .map_err(|_| TmaError::Auth("the agent's handshake signature is wrong".into()))?;
        let sig = key.sign(&signed(b"tsem-tma-1 client\0", &t));
        stream.send(Kind::Handshake, &sig.to_bytes())?;
        let ok = stream.recv(Kind::Handshake)?;
        if ok != b"OK" {
            return Err(TmaError::Auth(format!(
                "the agent refused us: {}",
                String::from_utf8_lossy(ok.strip_prefix(b"NO ").unwrap_or(&ok))
            )));
        }
        Ok(Self::new(stream, key, peer, &t, 0))
    }

    /// Accept a session as the agent, trusting only `peer` as the client.
    pub fn server_over(
        mut stream: Box<dyn Transport>,
        key: SigningKey,
        peer: VerifyingKey,
    ) -> R<Self> {
        let hello = stream.recv(Kind::Hello)?;
        if hello.len() != MAGIC.len() + 64 || !hello.starts_with(MAGIC) {
            let _ = stream.send(Kind::Handshake, b"NO not a tsem-tma-1 hello");
            return Err(TmaError::Auth("not a tsem-tma-1 hello".into()));
        }
        let cp = &hello[MAGIC.len()..MAGIC.len() + 32];
        let sn = nonce()?;
        let mut t = Vec::with_capacity(128);
        t.extend_from_slice(&hello[MAGIC.len()..]);
        t.extend_from_slice(&key.verifying_key().to_bytes());
        t.extend_from_slice(&sn);
        if cp != peer.to_bytes() {
            let _ = stream.send(
                Kind::Handshake,
                b"NO your key is not the one this agent trusts",
            );
            return Err(TmaError::Auth(
                "the client's key is not the one trusted (--peer)".into(),
            ));
        }
        let sig = key.sign(&signed(b"tsem-tma-1 server\0", &t));
        let mut r = t[64..].to_vec();
        r.extend_from_slice(&sig.to_bytes());
        stream.send(Kind::Handshake, &r)?;
        let cs = stream.recv(Kind::Handshake)?;
        if peer
            .verify_strict(&signed(b"tsem-tma-1 client\0", &t), &sig_of(&cs)?)
            .is_err()
        {
            let _ = stream.send(Kind::Handshake, b"NO handshake signature is wrong");
            return Err(TmaError::Auth(
                "the client's handshake signature is wrong".into(),
            ));
        }
        stream.send(Kind::Handshake, b"OK")?;
        Ok(Self::new(stream, key, peer, &t, 1))
    }

    fn new(
        mut stream: Box<dyn Transport>,
        key: SigningKey,
        peer: VerifyingKey,
        t: &[u8],
        dir: u8,
    ) -> Self {
        let d = HashAlg::Sha256.digest(t);
        let mut id = [0u8; 32];
        id.copy_from_slice(d.as_bytes());
        stream.bind_session(&id, &key, &peer);
        Self {
            stream,
            key,
            peer,
            id,
            dir,
            sent: 0,
            received: 0,
        }
    }

    fn mac_input(&self, dir: u8, seq: u64, body: &[u8]) -> Vec<u8> {
        let mut m = b"tsem-tma-1 msg\0".to_vec();
        m.extend_from_slice(&self.id);
        m.push(dir);
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// The signed frame for `body` at sequence `seq` (exposed for tests of replay refusal).
    pub fn seal_frame(&self, seq: u64, body: &[u8]) -> Vec<u8> {
        let sig = self.key.sign(&self.mac_input(self.dir, seq, body));
        let mut f = seq.to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f.extend_from_slice(&sig.to_bytes());
        f
    }

    /// Send one message.
    pub fn send(&mut self, body: &[u8]) -> R<()> {
        let f = self.seal_frame(self.sent, body);
        self.sent += 1;
        self.stream.send(Kind::Message, &f)
    }

    /// Send an already sealed frame as is (tests: a replay or a reordering).
    pub fn send_raw(&mut self, frame: &[u8]) -> R<()> {
        self.stream.send(Kind::Message, frame)
    }

    /// Receive the next message: the next sequence number, signed by the peer for this
    /// session and direction.
    pub fn recv(&mut self) -> R<Vec<u8>> {
        let f = self.stream.recv(Kind::Message)?;
        if f.len() < 8 + 64 {
            return Err(TmaError::Frame(
                "shorter than a sequence number and a signature".into(),
            ));
        }
        let mut s = [0u8; 8];
        s.copy_from_slice(&f[..8]);
        let seq = u64::from_be_bytes(s);
        let (body, sig) = f[8..].split_at(f.len() - 8 - 64);
        let input = self.mac_input(1 - self.dir, seq, body);
        if self.peer.verify_strict(&input, &sig_of(sig)?).is_err() {
            return Err(TmaError::Frame(
                "bad signature (altered, or from another session or peer)".into(),
            ));
        }
        if seq != self.received {
            return Err(TmaError::Frame(format!(
                "sequence {seq} where {} was due (replayed or reordered)",
                self.received
            )));
        }
        self.received += 1;
        Ok(body.to_vec())
    }
}
