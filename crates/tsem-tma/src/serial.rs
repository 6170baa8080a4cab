//! `serial:DEVICE[,BAUD]`: the agent protocol on a serial line (a UART, a USB adapter, a
//! virtio console, a pseudo-terminal).
//!
//! A line is one byte stream with no connection set-up, no end and no hang-up: it carries line
//! noise and the tail of a session whose client died, and one session follows another on it. So
//! every frame carries a marker, its kind (and so its direction) and checksums:
//!
//! ```text
//! 7E 'T' 'M' 'A'  kind[1]  len[u32 BE]  crc32(marker kind len)[u32 BE]  payload[len]  crc32(payload)[u32 BE]
//! ```
//!
//! Outside a session the reader skips anything that is not a whole, intact frame of the kind it
//! waits for (noise, an old session's tail, its own echo) and resynchronises on the next marker.
//! Inside a session nothing is skipped: a corrupt byte, a lost byte or a stray frame ends the
//! session at once (the header's checksum means a damaged length is never waited for), and the
//! frames' Ed25519 signatures and sequence numbers do the rest as on a socket. An agent that meets
//! a new client's hello in the middle of a session ends that session and answers the hello (the
//! old client is gone). The agent sends a keepalive frame every second so that a client whose
//! workload asks nothing still learns within [`SILENCE`] that its agent is gone: a line has no
//! hang-up to watch. In a session a keepalive is `n[u64 BE] sig` signed by the agent over
//! `"tsem-tma-1 alive\0" session n`, and the client counts only one with a new `n`: nobody else
//! on the line can keep a workload alive after its agent died.
//!
//! The device is opened without becoming our controlling terminal, locked with `flock` (one
//! tsem at a time; not `TIOCEXCL`, which on a pseudo-terminal outlives a killed holder and then
//! shuts every later non-root session out), put in raw mode (no echo, no line editing, no
//! software or hardware flow control, modem lines ignored, 8 bits) at the baud rate, and its
//! input flushed.

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::tty::{open_device, write_all};
use crate::{Kind, MAX_FRAME, TmaError, Transport};

pub use crate::tty::speed;

type R<T> = Result<T, TmaError>;

/// The baud rate when none is given.
pub const DEFAULT_BAUD: u32 = 115_200;
/// How often the agent says it is alive.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// A client that hears nothing from its agent this long counts it as gone.
pub const SILENCE: Duration = Duration::from_secs(10);

const MARKER: [u8; 4] = [0x7e, b'T', b'M', b'A'];
const HEADER: usize = 13;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Which end of the line we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `tsem tma serve`: answers sessions, sends keepalives.
    Agent,
    /// `tsem run --tma`: opens one session.
    Client,
}

// Kind bytes: lower case from the client, upper case from the agent, so that an end never takes
// its own echo for its peer.
fn kind_byte(role: Role, kind: Kind) -> u8 {
    match (role, kind) {
        (Role::Client, Kind::Hello) => b'H',
        (Role::Client, Kind::Handshake) => b'a',
        (Role::Client, Kind::Message) => b'm',
        (Role::Agent, Kind::Hello | Kind::Handshake) => b'A',
        (Role::Agent, Kind::Message) => b'M',
    }
}
const KEEPALIVE_KIND: u8 = b'K';
const KINDS: &[u8] = b"HamAMK";

/// One frame on the line.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + payload.len() + 4);
    f.extend_from_slice(&MARKER);
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    let h = CRC.checksum(&f);
    f.extend_from_slice(&h.to_be_bytes());
    f.extend_from_slice(payload);
    f.extend_from_slice(&CRC.checksum(payload).to_be_bytes());
    f
}

/// What the reader found on the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// An intact frame.
    Frame(u8, Vec<u8>),
    /// Bytes that are no intact frame (what is wrong with them).
    Garbage(String),
}

/// Cuts a byte stream into frames, resynchronising on the marker after anything else.
#[derive(Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Deframer {
    /// Bytes read from the line.
    pub fn push(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// The next frame or stretch of garbage, if the bytes so far hold one.
    pub fn next_found(&mut self) -> Option<Found> {
        let b = &self.buf;
        let start = b
            .windows(MARKER.len())
            .position(|w| w == MARKER)
            .unwrap_or_else(|| {
                // Keep a tail that may be the start of a marker.
                let keep = (1..MARKER.len())
                    .rev()
                    .find(|k| b.len() >= *k && b[b.len() - k..] == MARKER[..*k])
                    .unwrap_or(0);
                b.len() - keep
            });
        if start > 0 {
            self.buf.drain(..start);
            return Some(Found::Garbage(format!("{start} bytes outside any frame")));
        }
        if b.len() < HEADER {
            return None;
        }
        let len = be32(&b[5..9]) as usize;
        if CRC.checksum(&b[..9]) != be32(&b[9..13]) || !KINDS.contains(&b[4]) || len > MAX_FRAME {
            self.buf.drain(..1);
            return Some(Found::Garbage("a damaged frame header".into()));
        }
        if b.len() < HEADER + len + 4 {
            return None;
        }
        let payload = &b[HEADER..HEADER + len];
        if CRC.checksum(payload) != be32(&b[HEADER + len..]) {
            self.buf.drain(..1);
            return Some(Found::Garbage(format!(
                "a {len}-byte frame whose checksum is wrong"
            )));
        }
        let f = Found::Frame(b[4], payload.to_vec());
        self.buf.drain(..HEADER + len + 4);
        Some(f)
    }
}

enum Event {
    Found(Found),
    Closed(String),
}

struct Shared {
    role: Role,
    writer: Arc<Mutex<std::fs::File>>,
    rx: Mutex<Receiver<Event>>,
    /// A hello met inside a session: the next session's.
    pending: Mutex<Option<Vec<u8>>>,
    /// When the agent last said it is alive (an intact frame before a session, a keepalive
    /// signed for the session in one).
    heard: Arc<Mutex<Instant>>,
    binding: Binding,
    closed: Arc<AtomicBool>,
    timeout: Option<Duration>,
    /// Set when the last handle goes: the reader and keepalive threads end, closing the device.
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An open serial line (clones share it).
#[derive(Clone)]
pub struct Line(Arc<Shared>);

/// The session a line's keepalives belong to: the agent signs them with `key`, the client
/// checks them with `peer`; `next` is the agent's next number, the lowest the client accepts.
struct Bound {
    id: [u8; 32],
    key: Option<SigningKey>,
    peer: Option<VerifyingKey>,
    next: u64,
}

type Binding = Arc<Mutex<Option<Bound>>>;

fn alive_input(id: &[u8; 32], n: u64) -> Vec<u8> {
    let mut m = b"tsem-tma-1 alive\0".to_vec();
    m.extend_from_slice(id);
    m.extend_from_slice(&n.to_be_bytes());
    m
}

/// The agent's next keepalive: `n sig(n)` for the bound session, empty before any.
fn keepalive(binding: &Binding) -> Vec<u8> {
    let mut b = binding.lock().ok();
    let Some(Some(Bound {
        id,
        key: Some(key),
        next,
        ..
    })) = b.as_deref_mut()
    else {
        return encode(KEEPALIVE_KIND, &[]);
    };
    let n = *next;
    *next += 1;
    let mut p = n.to_be_bytes().to_vec();
    p.extend_from_slice(&key.sign(&alive_input(id, n)).to_bytes());
    encode(KEEPALIVE_KIND, &p)
}

/// Whether a keepalive says the agent is alive: before a session any does; in one, only the
/// agent's signature over this session and a number not seen before (a recorded keepalive
/// replayed by someone on the line keeps nothing alive).
fn alive(binding: &Binding, p: &[u8]) -> bool {
    let mut b = binding.lock().ok();
    let Some(Some(Bound {
        id,
        peer: Some(peer),
        next,
        ..
    })) = b.as_deref_mut()
    else {
        return true;
    };
    if p.len() != 8 + 64 {
        return false;
    }
    let n = u64::from_be_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]]);
    let Ok(sig) = <[u8; 64]>::try_from(&p[8..]) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    if n < *next || peer.verify_strict(&alive_input(id, n), &sig).is_err() {
        return false;
    }
    *next = n + 1;
    true
}

fn reader(
    mut f: std::fs::File,
    tx: Sender<Event>,
    heard: Arc<Mutex<Instant>>,
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    binding: Binding,
) {
    let mut d = Deframer::default();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        // Wake up now and then to see whether the line was let go: a reader blocked in read
        // would keep the device open, locked, and taking the next user's bytes.
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, 200) };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if n <= 0 {
            continue;
        }
        let why = match f.read(&mut buf) {
            Ok(0) => "the line closed".to_string(),
            Ok(n) => {
                d.push(&buf[..n]);
                while let Some(found) = d.next_found() {
                    if let Found::Frame(KEEPALIVE_KIND, p) = &found {
                        if alive(&binding, p)
                            && let Ok(mut h) = heard.lock()
                        {
                            *h = Instant::now();
                        }
                        continue;
                    }
                    if tx.send(Event::Found(found)).is_err() {
                        return;
                    }
                }
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(e) => format!("the line failed: {e}"),
        };
        closed.store(true, Ordering::SeqCst);
        let _ = tx.send(Event::Closed(why));
        return;
    }
}

impl Line {
    /// Open and configure `path` at `baud` as `role`; a client's replies that take longer than
    /// `timeout` fail.
    pub fn open(
        path: &std::path::Path,
        baud: u32,
        role: Role,
        timeout: Option<Duration>,
    ) -> R<Self> {
        let f = open_device(path, baud)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let heard = Arc::new(Mutex::new(Instant::now()));
        let closed = Arc::new(AtomicBool::new(false));
        let rf = f.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let binding: Binding = Arc::new(Mutex::new(None));
        let (h, c, st, b) = (heard.clone(), closed.clone(), stop.clone(), binding.clone());
        let mut threads = vec![std::thread::spawn(move || reader(rf, tx, h, c, st, b))];
        let writer = Arc::new(Mutex::new(f));
        if role == Role::Agent {
            let (w, st, b) = (writer.clone(), stop.clone(), binding.clone());
            threads.push(std::thread::spawn(move || {
                let mut last = Instant::now();
                while !st.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() >= KEEPALIVE {
                        last = Instant::now();
                        let k = keepalive(&b);
                        if let Ok(mut f) = w.lock() {
                            let _ = write_all(&mut f, &k, None);
                        }
                    }
                }
            }));
        }
        Ok(Self(Arc::new(Shared {
            role,
            writer,
            rx: Mutex::new(rx),
            pending: Mutex::new(None),
            heard,
            closed,
            timeout,
            binding,
            stop,
            threads,
        })))
    }

    /// Whether the agent is gone: the line closed, or no keepalive for [`SILENCE`].
    pub fn agent_lost(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
            || self
                .0
                .heard
                .lock()
                .map(|h| h.elapsed() > SILENCE)
                .unwrap_or(true)
    }

    /// Whether the line itself failed or closed (no session can follow).
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }

    fn next_event(&self, deadline: Option<Instant>) -> R<Event> {
        let rx = self
            .0
            .rx
            .lock()
            .map_err(|_| TmaError::Protocol("serial reader poisoned".into()))?;
        let r = match deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        r.map_err(|e| {
            TmaError::Io(match e {
                RecvTimeoutError::Timeout => std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no reply within {} s",
                        self.0.timeout.unwrap_or_default().as_secs()
                    ),
                ),
                RecvTimeoutError::Disconnected => std::io::Error::other("the line closed"),
            })
        })
    }
}

impl Transport for Line {
    fn send(&mut self, kind: Kind, payload: &[u8]) -> R<()> {
        let f = encode(kind_byte(self.0.role, kind), payload);
        let mut w = self
            .0
            .writer
            .lock()
            .map_err(|_| TmaError::Protocol("serial writer poisoned".into()))?;
        write_all(&mut w, &f, self.0.timeout.map(|t| Instant::now() + t))?;
        Ok(())
    }

    fn bind_session(&mut self, id: &[u8; 32], me: &SigningKey, peer: &VerifyingKey) {
        let b = match self.0.role {
            Role::Agent => Bound {
                id: *id,
                key: Some(me.clone()),
                peer: None,
                next: 0,
            },
            Role::Client => Bound {
                id: *id,
                key: None,
                peer: Some(*peer),
                next: 0,
            },
        };
        if let Ok(mut slot) = self.0.binding.lock() {
            *slot = Some(b);
        }
        if let Ok(mut h) = self.0.heard.lock() {
            *h = Instant::now();
        }
    }

    fn recv(&mut self, kind: Kind) -> R<Vec<u8>> {
        let me = self.0.role;
        let peer = match me {
            Role::Agent => Role::Client,
            Role::Client => Role::Agent,
        };
        let want = kind_byte(peer, kind);
        if kind == Kind::Hello
            && let Some(h) = self.0.pending.lock().ok().and_then(|mut p| p.take())
        {
            return Ok(h);
        }
        let deadline = self.0.timeout.map(|t| Instant::now() + t);
        loop {
            let found = match self.next_event(deadline)? {
                Event::Closed(why) => return Err(TmaError::Io(std::io::Error::other(why))),
                Event::Found(f) => f,
            };
            match found {
                Found::Frame(k, p) if k == want => return Ok(p),
                // A new client: this session (if any) is over, the next one starts with it.
                Found::Frame(b'H', p) if me == Role::Agent && kind != Kind::Hello => {
                    if let Ok(mut slot) = self.0.pending.lock() {
                        *slot = Some(p);
                    }
                    return Err(TmaError::Frame(
                        "a new session's hello: the client of this one is gone".into(),
                    ));
                }
                // Before a session: noise, an old session's tail, our own echo.
                _ if kind != Kind::Message => {}
                Found::Frame(k, _) => {
                    return Err(TmaError::Frame(format!(
                        "a {:?} frame where the session's next message was due",
                        k as char
                    )));
                }
                Found::Garbage(g) => {
                    return Err(TmaError::Frame(format!("the line is corrupted ({g})")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn all(d: &mut Deframer) -> Vec<Found> {
        std::iter::from_fn(|| d.next_found()).collect()
    }

    #[test]
    fn frames_are_found_after_noise_and_across_reads() {
        let mut line = b"noise\x7eTM".to_vec();
        line.extend(encode(b'H', b"hello"));
        line.extend(encode(b'M', b""));
        let mut d = Deframer::default();
        let mut got = vec![];
        // One byte at a time: a frame split across reads is still found.
        for b in &line {
            d.push(&[*b]);
            got.extend(all(&mut d));
        }
        let frames: Vec<_> = got
            .iter()
            .filter(|f| matches!(f, Found::Frame(..)))
            .collect();
        assert_eq!(
            frames,
            [
                &Found::Frame(b'H', b"hello".to_vec()),
                &Found::Frame(b'M', vec![])
            ]
        );
        assert!(matches!(got[0], Found::Garbage(_)));
    }

    #[test]
    fn any_flipped_bit_is_found_without_waiting_for_more_bytes() {
        let f = encode(b'M', b"a signed message");
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                let mut d = Deframer::default();
                d.push(&g);
                let first = d.next_found();
                // Damage is reported from the bytes at hand: a damaged length never makes the
                // reader wait for bytes that will not come.
                assert!(
                    matches!(first, Some(Found::Garbage(_))),
                    "byte {i} bit {bit}: {first:?}"
                );
                assert!(
                    !all(&mut d).iter().any(|x| matches!(x, Found::Frame(..))),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    fn key() -> SigningKey {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        SigningKey::from_bytes(&b)
    }

    fn payload(frame: &[u8]) -> Vec<u8> {
        let mut d = Deframer::default();
        d.push(frame);
        match d.next_found() {
            Some(Found::Frame(KEEPALIVE_KIND, p)) => p,
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn in_a_session_only_the_agent_s_fresh_signed_keepalives_count() {
        let (agent, stranger) = (key(), key());
        let bind = |id: [u8; 32], key: Option<SigningKey>, peer: Option<VerifyingKey>| {
            Arc::new(Mutex::new(Some(Bound {
                id,
                key,
                peer,
                next: 0,
            })))
        };
        let sender = bind([1; 32], Some(agent.clone()), None);
        let client = bind([1; 32], None, Some(agent.verifying_key()));
        let (k0, k1) = (payload(&keepalive(&sender)), payload(&keepalive(&sender)));
        // Before any session, any keepalive will do; in one, an unsigned one does not.
        assert!(alive(&Arc::new(Mutex::new(None)), &[]));
        assert!(!alive(&client, &[]));
        assert!(alive(&client, &k0));
        // Replayed: the same number again.
        assert!(!alive(&client, &k0));
        assert!(alive(&client, &k1));
        // Signed for another session, or by another key.
        let other = bind([2; 32], Some(agent.clone()), None);
        let _ = keepalive(&other);
        let _ = keepalive(&other);
        assert!(!alive(&client, &payload(&keepalive(&other))));
        let forged = bind([1; 32], Some(stranger), None);
        for _ in 0..5 {
            let _ = keepalive(&forged);
        }
        assert!(!alive(&client, &payload(&keepalive(&forged))));
        // A damaged one.
        let mut k2 = payload(&keepalive(&sender));
        k2[3] ^= 1;
        assert!(!alive(&client, &k2));
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_garbage() {
        let mut f = MARKER.to_vec();
        f.push(b'M');
        f.extend_from_slice(&((MAX_FRAME + 1) as u32).to_be_bytes());
        let h = CRC.checksum(&f);
        f.extend_from_slice(&h.to_be_bytes());
        let mut d = Deframer::default();
        d.push(&f);
        assert_eq!(
            d.next_found(),
            Some(Found::Garbage("a damaged frame header".into()))
        );
    }
}
