//! TCP ports for services a test configures by number (nginx, mosquitto, PostgreSQL, swtpm).
//!
//! Probing with `bind(127.0.0.1:0)` and handing the number on races: between the probe and the
//! service's own bind the kernel may give that port to any other socket (every `bind(0)` and
//! every outgoing connection draws from the ephemeral range). So we pick below that range,
//! where the kernel never assigns a port by itself, start from a place drawn per process,
//! never hand the same port out twice in one process, and check that it binds now.
//!
//! # Warning
//! Two processes can still pick the same port at the same instant (they start from different
//! places, so it takes a collision in ~20 000); a service that then fails to bind fails its
//! test loudly rather than talking to the wrong server.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// Lowest port we use: above the well-known and most registered services.
const LOW: u16 = 10_000;

/// Ports handed out by this process.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&p: &u16| p > LOW + 1_000)
        .unwrap_or(32_768)
}

/// A start drawn per process (its pid and the clock), so processes start apart.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // A 64-bit mix (splitmix64's finaliser) spreads nearby pids and times apart.
    let mut z = t ^ (u64::from(std::process::id()) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` consecutive ports on 127.0.0.1, free now and never given before by this process: the
/// first of them. `None` when none is found (a machine with the range in use).
pub fn unused_tcp_ports(n: u16) -> Option<u16> {
    let high = ephemeral_start();
    let span = u64::from(high - LOW - n);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let start = seed() % span;
    for i in 0..span {
        let p = LOW + ((start + i) % span) as u16;
        let ports = p..p + n;
        if ports.clone().any(|q| given.contains(&q)) {
            continue;
        }
        let bound: Vec<_> = ports
            .clone()
            .map_while(|q| TcpListener::bind((Ipv4Addr::LOCALHOST, q)).ok())
            .collect();
        if bound.len() == usize::from(n) {
            given.extend(ports);
            return Some(p);
        }
    }
    None
}

/// One port, as [`unused_tcp_ports`].
///
/// # Panics
/// When no port below the ephemeral range is free.
pub fn unused_tcp_port() -> u16 {
    match unused_tcp_ports(1) {
        Some(p) => p,
        None => panic!("no free TCP port on 127.0.0.1 below the ephemeral range"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_bindable_and_never_repeated() {
        let high = ephemeral_start();
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let p = unused_tcp_ports(2).unwrap();
            assert!((LOW..high - 1).contains(&p), "{p}");
            assert!(seen.insert(p) && seen.insert(p + 1), "{p} given twice");
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
            TcpListener::bind((Ipv4Addr::LOCALHOST, p + 1)).unwrap();
        }
    }

    #[test]
    fn a_port_in_use_is_not_given() {
        let p = unused_tcp_port();
        let _held = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        // Forget it was given, so only the bind check can keep it out.
        GIVEN.lock().unwrap().as_mut().unwrap().remove(&p);
        for _ in 0..200 {
            assert_ne!(unused_tcp_port(), p);
        }
    }
}
