//! What an attestation asserts about a modeling namespace, and the canonical bytes that are signed.
//!
//! # Canonical encoding (version 1)
//! The signature (and, with a TPM, the quote's `extraData`) covers a length-prefixed binary encoding
//! of the claims, never the JSON text, so that re-serializing the JSON (key order, whitespace, number
//! formatting) cannot change what was signed and no JSON canonicalization is needed:
//!
//! ```text
//! "tsem-attestation-1\0"
//! bytes(nonce) str(hash) str(mapping) str(mode)
//! bytes(state) bytes(measurement) bytes(aggregate) bytes(base) opt(bytes(model))
//! u64(events) u64(points) u64(forensics_events) list(bytes(forensic point)) u64(denied)
//! u64(lost_events) str(host) str(workload) u64(time) str(tool)
//! opt(u32(tpm_pcr)) opt(bytes(tpm_pcr_prior))
//! [str(on_forensic)]
//! ```
//!
//! The last item is present only when the claims name a deviation policy (`on_forensic`,
//! [`tsem_core::policy`]); claims without it (older files) keep their encoding, and mean
//! `untrust`, TSEM's semantics.
//!
//! `bytes(x)` and `str(x)` are a big-endian `u32` length followed by the bytes (UTF-8 for strings),
//! `u64`/`u32` are big-endian, `opt(x)` is `0x00` for absent or `0x01` followed by `x`, and `list(x)`
//! is a big-endian `u32` count followed by the items. Forensic points are sorted ascending (memcmp).

use serde::{Deserialize, Serialize};
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::Mapping;
use tsem_core::namespace::{Mode, Namespace};
use tsem_core::policy::Policy;

/// Domain separation for the signed bytes; also the `format` of the JSON file.
pub const FORMAT: &str = "tsem-attestation-1";

/// Shortest nonce accepted: a verifier's nonce must be unpredictable to defeat replays.
pub const MIN_NONCE: usize = 8;
/// Longest nonce accepted.
pub const MAX_NONCE: usize = 64;

/// Problems with claims or their fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A hex field that does not decode.
    #[error("{field}: not hex: {msg}")]
    Hex {
        /// The field.
        field: &'static str,
        /// Why.
        msg: String,
    },
    /// A nonce of a length outside `MIN_NONCE..=MAX_NONCE`.
    #[error("nonce: {0} bytes; a nonce must be {MIN_NONCE} to {MAX_NONCE} bytes")]
    NonceLength(usize),
    /// An unknown hash function name.
    #[error("hash: unknown hash function {0:?}")]
    Hash(String),
    /// A digest whose size does not fit the hash function.
    #[error("{field}: {got}-byte digest, but {alg} digests are {expected} bytes")]
    DigestSize {
        /// The field.
        field: &'static str,
        /// The hash function.
        alg: &'static str,
        /// Expected size.
        expected: usize,
        /// Size found.
        got: usize,
    },
    /// Forensic points that are not sorted and unique, or whose number disagrees.
    #[error("forensic_points: {0}")]
    ForensicPoints(&'static str),
    /// An unknown deviation policy.
    #[error("on_forensic: {0}")]
    Policy(String),
}

/// Identity of who is attesting what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The host (e.g. `hostname machine-id`); see [`host_identity`].
    pub host: String,
    /// The workload (e.g. its command line or a name chosen by the operator).
    pub workload: String,
}

/// Everything the attester asserts. Field order is the order of the canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The verifier's nonce (hex).
    pub nonce: String,
    /// Hash function of the namespace (`sha256`, ...).
    pub hash: String,
    /// Coefficient layout (`model0`, `v3`, `quixote-compat`).
    pub mapping: String,
    /// Modeling mode at attestation time (`free`, `sealed`, `enforcing`).
    pub mode: String,
    /// The order-invariant state over every point, valid and forensic (hex).
    pub state: String,
    /// The time-ordered measurement (hex).
    pub measurement: String,
    /// The hardware aggregate seeding the state (hex).
    pub aggregate: String,
    /// The base (hex).
    pub base: String,
    /// Digest of the model in force ([`crate::model_digest`]), or null when modeling freely.
    pub model: Option<String>,
    /// Events modeled.
    pub events: u64,
    /// Points (valid and forensic).
    pub points: u64,
    /// Events that hit a forensic point.
    pub forensics_events: u64,
    /// The forensic points' coefficients, sorted ascending (hex). The verifier needs them to
    /// recompute the state; their number is bounded by the forensics policy, not by run time.
    pub forensic_points: Vec<String>,
    /// Events denied.
    pub denied: u64,
    /// Events the sensor could not deliver to the namespace (any loss makes the state unprovable).
    pub lost_events: u64,
    /// Host identity.
    pub host: String,
    /// Workload identity.
    pub workload: String,
    /// Seconds since the Unix epoch when the attestation was made.
    pub time: u64,
    /// Producer (`tsem <version>`).
    pub tool: String,
    /// The PCR the state was extended into, when quoted by a TPM.
    pub tpm_pcr: Option<u32>,
    /// That PCR's SHA-256 value just before the extension (hex), when quoted by a TPM.
    pub tpm_pcr_prior: Option<String>,
    /// What a forensic event cost the workload (`untrust`, `deny`, `kill`, `restart`); absent in
    /// older attestations, which means `untrust`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_forensic: Option<String>,
}

/// What to attest besides the namespace itself.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The verifier's nonce (raw bytes, `MIN_NONCE..=MAX_NONCE` long).
    pub nonce: Vec<u8>,
    /// Events lost by the sensor (ring overflows, dropped notifications, ...).
    pub lost_events: u64,
    /// Host and workload identity.
    pub identity: Identity,
    /// Digest of the model in force ([`crate::model_digest`]), if a model was loaded.
    pub model: Option<Digest>,
    /// Seconds since the Unix epoch ([`now_unix`]).
    pub time: u64,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Free => "free",
        Mode::Sealed => "sealed",
        Mode::Enforcing => "enforcing",
    }
}

/// Lowercase hex.
pub fn to_hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(H[usize::from(x >> 4)]));
        s.push(char::from(H[usize::from(x & 15)]));
    }
    s
}

/// Decode hex (either case), naming `field` on error.
pub fn from_hex(field: &'static str, s: &str) -> Result<Vec<u8>, ClaimsError> {
    let bad = |msg: &str| ClaimsError::Hex {
        field,
        msg: msg.to_string(),
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad("odd number of digits"));
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| match (nib(p[0]), nib(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(bad("non-hex digit")),
        })
        .collect()
}

/// Parse a nonce given as hex and check its length.
pub fn parse_nonce(hex: &str) -> Result<Vec<u8>, ClaimsError> {
    let n = from_hex("nonce", hex)?;
    if !(MIN_NONCE..=MAX_NONCE).contains(&n.len()) {
        return Err(ClaimsError::NonceLength(n.len()));
    }
    Ok(n)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `hostname machine-id` of this machine, from `/proc/sys/kernel/hostname` and `/etc/machine-id`
/// (each omitted if unreadable).
///
/// # Warning
/// This is the attester's say-so: it is signed, so it cannot be altered in transit, but a verifier
/// should bind hosts to keys (or AKs), not trust the name alone.
pub fn host_identity() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    [
        read("/proc/sys/kernel/hostname"),
        read("/etc/machine-id").map(|m| format!("machine-id={m}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

impl Claims {
    /// The claims for a finished namespace. The TPM fields are left empty.
    pub fn from_namespace(ns: &Namespace, cx: &Context) -> Result<Self, ClaimsError> {
        Self::from_observed(&crate::Observed::of(ns), cx)
    }

    /// The claims for what was observed of a namespace (finished, or live: see
    /// [`crate::Observed`]). The TPM fields are left empty.
    pub fn from_observed(o: &crate::Observed, cx: &Context) -> Result<Self, ClaimsError> {
        if !(MIN_NONCE..=MAX_NONCE).contains(&cx.nonce.len()) {
            return Err(ClaimsError::NonceLength(cx.nonce.len()));
        }
        let mut forensic = o.forensic_points.clone();
        forensic.sort_unstable();
        Ok(Self {
            nonce: to_hex(&cx.nonce),
            hash: o.config.alg.name().to_string(),
            mapping: o.config.mapping.name().to_string(),
            mode: mode_name(o.mode).to_string(),
            state: o.state.to_hex(),
            measurement: o.measurement.to_hex(),
            aggregate: o.aggregate.to_hex(),
            base: o.base.to_hex(),
            model: cx.model.map(|d| d.to_hex()),
            events: o.events,
            points: o.points,
            forensics_events: o.forensics_events,
            forensic_points: forensic.iter().map(|d| d.to_hex()).collect(),
            denied: o.denied,
            lost_events: cx.lost_events,
            host: cx.identity.host.clone(),
            workload: cx.identity.workload.clone(),
            time: cx.time,
            tool: concat!("tsem ", env!("CARGO_PKG_VERSION")).to_string(),
            tpm_pcr: None,
            tpm_pcr_prior: None,
            on_forensic: Some(o.policy.name().to_string()),
        })
    }

    /// The deviation policy claimed (a missing field is `untrust`).
    pub fn policy(&self) -> Result<Policy, ClaimsError> {
        match &self.on_forensic {
            None => Ok(Policy::Untrust),
            Some(p) => p
                .parse()
                .map_err(|e: tsem_core::policy::PolicyError| ClaimsError::Policy(e.to_string())),
        }
    }

    /// The hash function.
    pub fn alg(&self) -> Result<HashAlg, ClaimsError> {
        self.hash
            .parse::<HashAlg>()
            .map_err(|_| ClaimsError::Hash(self.hash.clone()))
    }

    /// The nonce bytes.
    pub fn nonce_bytes(&self) -> Result<Vec<u8>, ClaimsError> {
        from_hex("nonce", &self.nonce)
    }

    /// A digest field of the namespace's size.
    pub fn digest(&self, field: &'static str, hex: &str) -> Result<Digest, ClaimsError> {
        let alg = self.alg()?;
        let b = from_hex(field, hex)?;
        if b.len() != alg.size() {
            return Err(ClaimsError::DigestSize {
                field,
                alg: alg.name(),
                expected: alg.size(),
                got: b.len(),
            });
        }
        Digest::from_slice(&b).ok_or(ClaimsError::DigestSize {
            field,
            alg: alg.name(),
            expected: alg.size(),
            got: b.len(),
        })
    }

    /// The forensic points, checked to be sorted, unique and of the right size.
    pub fn forensic_digests(&self) -> Result<Vec<Digest>, ClaimsError> {
        let v = self
            .forensic_points
            .iter()
            .map(|h| self.digest("forensic_points", h))
            .collect::<Result<Vec<_>, _>>()?;
        if v.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ClaimsError::ForensicPoints(
                "not sorted ascending and unique",
            ));
        }
        Ok(v)
    }

    /// The canonical bytes that are signed (see the module documentation). Hex fields are decoded
    /// so that letter case cannot make two encodings of one claim.
    pub fn canonical(&self) -> Result<Vec<u8>, ClaimsError> {
        let mut o = Vec::with_capacity(512 + 80 * self.forensic_points.len());
        o.extend_from_slice(FORMAT.as_bytes());
        o.push(0);
        let bytes = |o: &mut Vec<u8>, b: &[u8]| {
            o.extend_from_slice(&(b.len() as u32).to_be_bytes());
            o.extend_from_slice(b);
        };
        let u64b = |o: &mut Vec<u8>, x: u64| o.extend_from_slice(&x.to_be_bytes());
        bytes(&mut o, &self.nonce_bytes()?);
        bytes(&mut o, self.hash.as_bytes());
        bytes(&mut o, self.mapping.as_bytes());
        bytes(&mut o, self.mode.as_bytes());
        for (f, h) in [
            ("state", &self.state),
            ("measurement", &self.measurement),
            ("aggregate", &self.aggregate),
            ("base", &self.base),
        ] {
            bytes(&mut o, &from_hex(f, h)?);
        }
        match &self.model {
            None => o.push(0),
            Some(m) => {
                o.push(1);
                bytes(&mut o, &from_hex("model", m)?);
            }
        }
        u64b(&mut o, self.events);
        u64b(&mut o, self.points);
        u64b(&mut o, self.forensics_events);
        o.extend_from_slice(&(self.forensic_points.len() as u32).to_be_bytes());
        for p in &self.forensic_points {
            bytes(&mut o, &from_hex("forensic_points", p)?);
        }
        u64b(&mut o, self.denied);
        u64b(&mut o, self.lost_events);
        bytes(&mut o, self.host.as_bytes());
        bytes(&mut o, self.workload.as_bytes());
        u64b(&mut o, self.time);
        bytes(&mut o, self.tool.as_bytes());
        match self.tpm_pcr {
            None => o.push(0),
            Some(p) => {
                o.push(1);
                o.extend_from_slice(&p.to_be_bytes());
            }
        }
        match &self.tpm_pcr_prior {
            None => o.push(0),
            Some(p) => {
                o.push(1);
                bytes(&mut o, &from_hex("tpm_pcr_prior", p)?);
            }
        }
        if let Some(p) = &self.on_forensic {
            bytes(&mut o, self.policy()?.name().as_bytes());
            debug_assert_eq!(p, self.policy()?.name());
        }
        Ok(o)
    }
}

/// The mapping named in claims, if known.
pub fn mapping_of(name: &str) -> Option<Mapping> {
    name.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        assert_eq!(from_hex("x", "00ffA5").unwrap(), vec![0, 255, 0xa5]);
        assert_eq!(to_hex(&[0, 255, 0xa5]), "00ffa5");
        assert!(from_hex("x", "0").is_err());
        assert!(from_hex("x", "zz").is_err());
        assert!(parse_nonce("00").is_err());
        assert!(parse_nonce(&"ab".repeat(65)).is_err());
        assert_eq!(parse_nonce(&"ab".repeat(8)).unwrap().len(), 8);
    }

    #[test]
    fn canonical_ignores_hex_case_but_not_values() {
        let ns = Namespace::new(Default::default()).unwrap();
        let cx = Context {
            nonce: vec![7; 16],
            ..Default::default()
        };
        let c = Claims::from_namespace(&ns, &cx).unwrap();
        let mut upper = c.clone();
        upper.state = upper.state.to_uppercase();
        assert_eq!(c.canonical().unwrap(), upper.canonical().unwrap());
        let mut other = c.clone();
        other.lost_events = 1;
        assert_ne!(c.canonical().unwrap(), other.canonical().unwrap());
        // Moving bytes between adjacent strings must change the encoding (length prefixes).
        let mut a = c.clone();
        a.host = "ab".into();
        a.workload = "c".into();
        let mut b = c.clone();
        b.host = "a".into();
        b.workload = "bc".into();
        assert_ne!(a.canonical().unwrap(), b.canonical().unwrap());
    }
}
