//! A minimal MQTT 3.1.1 publisher: CONNECT, QoS 0 PUBLISH, PINGREQ, DISCONNECT.
//!
//! Why not a crate: the maintained clients (rumqttc, paho-mqtt) bring an async runtime or a C
//! library for what the exporter needs here, fire-and-forget publishing from one blocking writer
//! thread, and that is five fixed packet layouts (MQTT 3.1.1, OASIS standard, §3.1, §3.2, §3.3,
//! §3.12, §3.14). QoS 0 is what quixote-export uses: the broker acknowledges nothing, so what we
//! count as exported is what the TCP connection accepted.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The topic cannot be published to.
    #[error("bad MQTT topic {0:?}: it must be non-empty UTF-8 without + or # (and under 64 KiB)")]
    Topic(String),
    /// Connecting or talking to the broker failed.
    #[error("MQTT broker {addr}: {source}")]
    Io {
        /// host:port.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The broker refused the connection.
    #[error("MQTT broker {addr} refused the connection: {why}")]
    Refused {
        /// host:port.
        addr: String,
        /// CONNACK's return code, explained.
        why: String,
    },
}

/// Seconds of silence after which the broker may drop us; we ping at half of it.
pub const KEEPALIVE: u16 = 60;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// PINGREQ, so an idle exporter is not dropped (the PINGRESP is left unread: two bytes).
pub const PINGREQ: [u8; 2] = [0xc0, 0];
/// DISCONNECT: the broker ends the session cleanly.
pub const DISCONNECT: [u8; 2] = [0xe0, 0];

/// Check that `topic` can be published to (no wildcards, within the length field).
pub fn check_topic(topic: &str) -> Result<(), MqttError> {
    if topic.is_empty() || topic.len() > 65535 || topic.contains(['+', '#', '\0']) {
        return Err(MqttError::Topic(topic.to_string()));
    }
    Ok(())
}

/// Connect to `host:port` as `client_id` (clean session) and wait for the broker's CONNACK;
/// returns the connection, ready for PUBLISH packets.
pub fn connect(host: &str, port: u16, client_id: &str) -> Result<TcpStream, MqttError> {
    let addr = format!("{host}:{port}");
    let io = |source| MqttError::Io {
        addr: addr.clone(),
        source,
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for a in (host, port).to_socket_addrs().map_err(io)? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| io(last))?;
    stream.set_nodelay(true).map_err(io)?;
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0x02); // clean session, no will, no credentials
    body.extend_from_slice(&KEEPALIVE.to_be_bytes());
    put_str(&mut body, client_id.as_bytes());
    let mut pkt = Vec::new();
    packet(&mut pkt, 0x10, &[&body]);
    stream.write_all(&pkt).map_err(io)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(io)?;
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).map_err(io)?;
    stream.set_read_timeout(None).map_err(io)?;
    if ack[0] != 0x20 || ack[1] != 2 {
        return Err(MqttError::Refused {
            addr,
            why: format!("not a CONNACK: {ack:02x?}"),
        });
    }
    if ack[3] != 0 {
        let why = match ack[3] {
            1 => "unacceptable protocol version",
            2 => "identifier rejected",
            3 => "server unavailable",
            4 => "bad user name or password",
            5 => "not authorized",
            _ => "unknown return code",
        };
        return Err(MqttError::Refused {
            addr,
            why: format!("{why} ({})", ack[3]),
        });
    }
    Ok(stream)
}

/// Append a QoS 0 PUBLISH of `payload` to `topic` to `out`.
pub fn publish(out: &mut Vec<u8>, topic: &[u8], payload: &[u8]) {
    let mut t = Vec::with_capacity(topic.len() + 2);
    put_str(&mut t, topic);
    packet(out, 0x30, &[&t, payload]);
}

/// A length-prefixed string or binary field.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&s[..usize::from(n)]);
}

/// A packet: the fixed header (type and flags, the remaining length as a variable-length
/// integer) then the parts.
fn packet(out: &mut Vec<u8>, first: u8, parts: &[&[u8]]) {
    out.push(first);
    let mut n: usize = parts.iter().map(|p| p.len()).sum();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    for p in parts {
        out.extend_from_slice(p);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn remaining_lengths_use_the_spec_s_variable_length_encoding() {
        // MQTT 3.1.1 §2.2.3 table 2.4 boundaries.
        for (n, enc) in [
            (0usize, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            packet(&mut out, 0x30, &[&vec![0u8; n]]);
            assert_eq!(&out[1..1 + enc.len()], &enc[..], "length {n}");
            assert_eq!(out.len(), 1 + enc.len() + n);
        }
    }

    #[test]
    fn a_wildcard_topic_is_refused_before_connecting() {
        let e = check_topic("a/#").unwrap_err();
        assert!(matches!(e, MqttError::Topic(_)), "{e}");
    }
}
