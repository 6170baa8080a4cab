//! TCG PC Client platform firmware event logs: parsing and PCR replay.
//!
//! Two formats exist (TCG PC Client Platform Firmware Profile, §10):
//!
//! - **SHA1-only legacy**: every record is a `TCG_PCClientPCREvent` (`pcrIndex`, `eventType`,
//!   a 20-byte SHA-1 digest, `eventDataSize`, event data).
//! - **Crypto-agile**: the first record is a legacy record of type `EV_NO_ACTION` whose data is a
//!   `TCG_EfiSpecIDEventStruct` ("Spec ID Event03"), which lists every PCR bank with its digest size.
//!   Every later record is a `TCG_PCR_EVENT2` carrying one digest per bank.
//!
//! Everything is little-endian. Parsing is zero-copy: events borrow their digests and data from the
//! input.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use tsem_core::hash::{Digest, HashAlg, extend};
use tsem_core::state::hardware_aggregate;

use crate::efi;
use crate::reader::{Reader, Short};

mod spec_id;
mod warning;
use spec_id::parse_spec_id;
pub use warning::{Warning, WarningKind, alg_label};

/// `EV_NO_ACTION`: informational; never extended into a PCR.
pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// `EV_SEPARATOR`.
pub const EV_SEPARATOR: u32 = 0x0000_0004;
/// PCR index of records that belong to no PCR (e.g. trailing vendor records); never extended.
pub const PCR_NONE: u32 = 0xFFFF_FFFF;
/// `EV_EFI_HCRTM_EVENT`: the H-CRTM measurement, PCR 0's first extend from `00..04`.
pub const EV_EFI_HCRTM_EVENT: u32 = 0x8000_0010;
/// Intel TXT `EVTYPE_HASH_START`: the `_TPM_Hash_Start` measurement that opens a dynamic launch.
pub const EVTYPE_TXT_HASH_START: u32 = 0x0000_0402;
/// First and last PCR reset by a dynamic (D-RTM) launch.
pub const DRTM_PCRS: core::ops::RangeInclusive<u32> = 17..=22;

/// Signature of the crypto-agile Spec ID event.
const SPEC_ID_03: &[u8; 16] = b"Spec ID Event03\0";
/// Signature of the StartupLocality `EV_NO_ACTION` event.
const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";
/// A Spec ID table larger than this is not a real platform; refusing it bounds the allocation.
const MAX_ALGORITHMS: u32 = 32;

/// Why an event log was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    /// The input has no bytes at all.
    #[error("empty event log")]
    Empty,
    /// A field runs past the end of the input.
    #[error(
        "event {index} at byte {offset}: {field} truncated at byte {at}: needs {need} bytes, {have} left"
    )]
    Truncated {
        /// Record index (0 is the first record of the file).
        index: usize,
        /// Byte offset of the record.
        offset: usize,
        /// Field being read.
        field: &'static str,
        /// Byte offset of the field.
        at: usize,
        /// Bytes needed.
        need: u64,
        /// Bytes left.
        have: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("event {index} at byte {offset}: {field}: {reason}")]
    Invalid {
        /// Record index.
        index: usize,
        /// Byte offset of the record.
        offset: usize,
        /// Field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A bank was requested that the log does not carry.
    #[error("the log has no {bank} bank (it has: {have})")]
    NoSuchBank {
        /// Requested bank.
        bank: &'static str,
        /// Banks present.
        have: String,
    },
}

/// Which of the two record formats the log uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LogFormat {
    /// Every record is a SHA-1 `TCG_PCClientPCREvent`.
    #[serde(rename = "tcg-sha1-legacy")]
    Sha1Legacy,
    /// A Spec ID Event03 header followed by `TCG_PCR_EVENT2` records.
    #[serde(rename = "tcg-crypto-agile")]
    CryptoAgile,
}

impl LogFormat {
    /// Stable machine name (`tcg-sha1-legacy` or `tcg-crypto-agile`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1Legacy => "tcg-sha1-legacy",
            Self::CryptoAgile => "tcg-crypto-agile",
        }
    }
}

/// One `{algorithmId, digestSize}` pair of the Spec ID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmSize {
    /// TPM2 `TPM_ALG_ID`.
    pub alg_id: u16,
    /// Digest size in bytes.
    pub digest_size: u16,
}

/// The crypto-agile `TCG_EfiSpecIDEventStruct`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIdEvent<'a> {
    /// `platformClass` (0 client, 1 server).
    pub platform_class: u32,
    /// `specVersionMinor`.
    pub spec_version_minor: u8,
    /// `specVersionMajor`.
    pub spec_version_major: u8,
    /// `specErrata`.
    pub spec_errata: u8,
    /// `uintnSize` (1 = 32-bit UINTN, 2 = 64-bit).
    pub uintn_size: u8,
    /// Every bank the log carries, in log order.
    pub algorithms: Vec<AlgorithmSize>,
    /// `vendorInfo`.
    pub vendor_info: &'a [u8],
}

/// One digest of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDigest<'a> {
    /// TPM2 `TPM_ALG_ID`.
    pub alg_id: u16,
    /// The digest bytes.
    pub digest: &'a [u8],
}

impl EventDigest<'_> {
    /// The hash function, if tsem supports it.
    pub fn alg(&self) -> Option<HashAlg> {
        HashAlg::from_tpm_alg_id(self.alg_id)
    }
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// Index in the file (the header record is 0).
    pub index: usize,
    /// Byte offset of the record.
    pub offset: usize,
    /// `pcrIndex`.
    pub pcr: u32,
    /// `eventType`.
    pub event_type: u32,
    /// One digest per bank (one SHA-1 digest in the legacy format).
    pub digests: Vec<EventDigest<'a>>,
    /// Event data.
    pub data: &'a [u8],
}

impl<'a> Event<'a> {
    /// The digest for `alg`, if the record has one.
    pub fn digest(&self, alg: HashAlg) -> Option<&'a [u8]> {
        let id = alg.tpm_alg_id();
        self.digests
            .iter()
            .find(|d| d.alg_id == id)
            .map(|d| d.digest)
    }

    /// Whether replay extends this record into a PCR.
    pub fn is_extended(&self) -> bool {
        self.event_type != EV_NO_ACTION && self.pcr != PCR_NONE
    }
}

/// A parsed event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog<'a> {
    /// Record format.
    pub format: LogFormat,
    /// The Spec ID header of a crypto-agile log.
    pub spec_id: Option<SpecIdEvent<'a>>,
    /// Every record, header included.
    pub events: Vec<Event<'a>>,
    /// Bytes of all-0x00 or all-0xFF fill after the last record (logs copied from an ACPI area).
    pub trailing_padding: usize,
    /// Spec violations the parser tolerated, in record order.
    pub warnings: Vec<Warning>,
}

pub(super) fn truncated(
    index: usize,
    offset: usize,
    field: &'static str,
) -> impl Fn(Short) -> EventLogError {
    move |s| EventLogError::Truncated {
        index,
        offset,
        field,
        at: s.offset,
        need: s.need,
        have: s.have,
    }
}

/// Trailing fill: at least one minimal record's worth of 0x00 or 0xFF. Shorter runs are a truncated
/// record, not fill, so that a cut inside a record's leading zero bytes is still an error.
fn is_fill(rest: &[u8], min_record: usize) -> bool {
    if rest.len() < min_record {
        return false;
    }
    match rest.first() {
        Some(&b) if b == 0 || b == 0xFF => rest.iter().all(|&x| x == b),
        _ => false,
    }
}

impl<'a> EventLog<'a> {
    /// Parse a whole log. Never panics; rejects anything that is not exactly a sequence of records
    /// (optionally followed by fill bytes).
    pub fn parse(data: &'a [u8]) -> Result<Self, EventLogError> {
        if data.is_empty() {
            return Err(EventLogError::Empty);
        }
        let mut r = Reader::new(data);
        let header = parse_legacy(&mut r, 0)?;
        let mut warnings = Vec::new();
        let spec_id = if header.event_type == EV_NO_ACTION
            && header.pcr == 0
            && header.data.len() >= 16
            && header.data.starts_with(SPEC_ID_03)
        {
            // The header record is at offset 0; its data starts after the 32-byte legacy header.
            let body = data.get(32..).unwrap_or(&[]);
            let (spec, used) = parse_spec_id(body, &header)?;
            if let Some(past) = used.checked_sub(header.data.len()).filter(|&n| n > 0) {
                // tpm2-tools finds the first TCG_PCR_EVENT2 after vendorInfo, not after
                // eventDataSize; parse_spec_id has checked that those bytes exist.
                r.take(past as u64).map_err(truncated(0, 0, "vendorInfo"))?;
                warnings.push(Warning {
                    index: 0,
                    offset: 0,
                    kind: WarningKind::SpecIdPastEventSize {
                        declared: header.data.len() as u32,
                        structure: used,
                    },
                });
            }
            Some(spec)
        } else {
            None
        };
        let format = if spec_id.is_some() {
            LogFormat::CryptoAgile
        } else {
            LogFormat::Sha1Legacy
        };
        let mut events = Vec::new();
        events.push(header);
        let mut trailing_padding = 0;
        let min_record = match &spec_id {
            Some(s) => {
                12 + s
                    .algorithms
                    .iter()
                    .map(|a| usize::from(a.digest_size) + 2)
                    .sum::<usize>()
                    + 4
            }
            None => 32,
        };
        while !r.is_empty() {
            if is_fill(r.rest(), min_record) {
                trailing_padding = r.remaining();
                break;
            }
            let index = events.len();
            let ev = match &spec_id {
                Some(spec) => parse_agile(&mut r, index, &spec.algorithms, &mut warnings)?,
                None => parse_legacy(&mut r, index)?,
            };
            events.push(ev);
        }
        Ok(Self {
            format,
            spec_id,
            events,
            trailing_padding,
            warnings,
        })
    }

    /// The banks the log carries, in log order (unknown algorithm ids are skipped).
    pub fn banks(&self) -> Vec<HashAlg> {
        match &self.spec_id {
            None => alloc::vec![HashAlg::Sha1],
            Some(s) => {
                let mut v: Vec<HashAlg> = Vec::new();
                for a in &s.algorithms {
                    if let Some(alg) = HashAlg::from_tpm_alg_id(a.alg_id)
                        && !v.contains(&alg)
                    {
                        v.push(alg);
                    }
                }
                v
            }
        }
    }

    /// Algorithm ids of the Spec ID table that tsem cannot hash (their digests are parsed but not
    /// replayed).
    pub fn unknown_algorithms(&self) -> Vec<u16> {
        self.spec_id
            .iter()
            .flat_map(|s| s.algorithms.iter())
            .filter(|a| HashAlg::from_tpm_alg_id(a.alg_id).is_none())
            .map(|a| a.alg_id)
            .collect()
    }
}

fn parse_legacy<'a>(r: &mut Reader<'a>, index: usize) -> Result<Event<'a>, EventLogError> {
    let offset = r.offset();
    let pcr = r.u32_le().map_err(truncated(index, offset, "pcrIndex"))?;
    let event_type = r.u32_le().map_err(truncated(index, offset, "eventType"))?;
    let digest = r.take(20).map_err(truncated(index, offset, "digest"))?;
    let size = r
        .u32_le()
        .map_err(truncated(index, offset, "eventDataSize"))?;
    let data = r
        .take(u64::from(size))
        .map_err(truncated(index, offset, "event"))?;
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests: alloc::vec![EventDigest {
            alg_id: HashAlg::Sha1.tpm_alg_id(),
            digest
        }],
        data,
    })
}

/// A `TCG_PCR_EVENT2`. Its own digest count and algorithm ids say which banks it extends
/// (tpm2-tools and go-tpm-tools read it so): a declared bank it lacks, or a known algorithm the
/// Spec ID event does not declare, is a warning, not an error.
fn parse_agile<'a>(
    r: &mut Reader<'a>,
    index: usize,
    algs: &[AlgorithmSize],
    warnings: &mut Vec<Warning>,
) -> Result<Event<'a>, EventLogError> {
    let offset = r.offset();
    let t = |f| truncated(index, offset, f);
    let invalid = |field, reason| EventLogError::Invalid {
        index,
        offset,
        field,
        reason,
    };
    let pcr = r.u32_le().map_err(t("pcrIndex"))?;
    let event_type = r.u32_le().map_err(t("eventType"))?;
    let count = r.u32_le().map_err(t("digests.count"))?;
    let mut digests = Vec::with_capacity(algs.len());
    let mut undeclared = Vec::new();
    // Every digest takes at least 3 bytes, so `count` is bounded by the input; duplicates are
    // refused, so `digests` never outgrows the declared and known algorithms.
    for _ in 0..count {
        let alg_id = r.u16_le().map_err(t("digests.hashAlg"))?;
        let size = match algs.iter().find(|a| a.alg_id == alg_id) {
            Some(spec) => usize::from(spec.digest_size),
            None => match HashAlg::from_tpm_alg_id(alg_id) {
                Some(alg) => {
                    undeclared.push(alg_id);
                    alg.size()
                }
                None => {
                    return Err(invalid(
                        "digests.hashAlg",
                        alloc::format!(
                            "algorithm 0x{alg_id:04x} is not in the Spec ID event and its size is \
                             unknown"
                        ),
                    ));
                }
            },
        };
        if digests.iter().any(|d: &EventDigest<'_>| d.alg_id == alg_id) {
            return Err(invalid(
                "digests.hashAlg",
                alloc::format!("algorithm 0x{alg_id:04x} appears twice"),
            ));
        }
        let digest = r.take(size as u64).map_err(t("digests.digest"))?;
        digests.push(EventDigest { alg_id, digest });
    }
    let size = r.u32_le().map_err(t("eventSize"))?;
    let data = r.take(u64::from(size)).map_err(t("event"))?;
    let ev = Event {
        index,
        offset,
        pcr,
        event_type,
        digests,
        data,
    };
    // Records that are never extended may carry any digests without consequence.
    if ev.is_extended() {
        let mut warn = |kind| {
            warnings.push(Warning {
                index,
                offset,
                kind,
            })
        };
        for a in algs {
            if !ev.digests.iter().any(|d| d.alg_id == a.alg_id) {
                warn(WarningKind::MissingDigest { alg_id: a.alg_id });
            }
        }
        for alg_id in undeclared {
            warn(WarningKind::UndeclaredAlgorithm { alg_id });
        }
    }
    Ok(ev)
}

/// A logged digest that differs from the digest of content the event type defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMismatch {
    /// Record index.
    pub index: usize,
    /// Byte offset of the record.
    pub offset: usize,
    /// PCR of the record.
    pub pcr: u32,
    /// Event type.
    pub event_type: u32,
    /// Bank of the digest.
    pub bank: HashAlg,
    /// Digest in the log.
    pub logged: Digest,
    /// Digest of the event content.
    pub computed: Digest,
}

/// The result of replaying a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Record format of the log.
    pub format: LogFormat,
    /// Number of records (header included).
    pub events: usize,
    /// Replayed banks, in log order.
    pub banks: Vec<HashAlg>,
    /// Final value of every PCR the log extends, per bank.
    pub pcrs: BTreeMap<HashAlg, BTreeMap<u32, Digest>>,
    /// Locality from a StartupLocality event (PCR 0's initial value), if any.
    pub startup_locality: Option<u8>,
    /// Index of the `EV_EFI_HCRTM_EVENT` that opened PCR 0 (an H-CRTM start: PCR 0 starts at
    /// `00..04` whatever the StartupLocality said), if any.
    pub hcrtm: Option<usize>,
    /// Number of dynamic launches seen (each resets PCRs 17–22).
    pub dynamic_launches: usize,
    /// Digests that do not match content the event type defines; the replay still uses the logged
    /// digest, as the TPM did.
    pub digest_mismatches: Vec<DigestMismatch>,
    /// Spec ID algorithm ids that were not replayed.
    pub unknown_algorithms: Vec<u16>,
    /// Number of (record, bank) digests whose content is defined and was checked.
    pub digests_checked: usize,
    /// Spec violations tolerated by the parser and the replay, in record order.
    pub warnings: Vec<Warning>,
}

impl Replay {
    /// The locality byte PCR 0 starts with: 4 after an H-CRTM (TPM 2.0 Library Part 1 §34.3),
    /// else the StartupLocality event's, else none (zero).
    pub fn pcr0_locality(&self) -> Option<u8> {
        if self.hcrtm.is_some() {
            Some(4)
        } else {
            self.startup_locality
        }
    }

    /// Value of `pcr` in `alg` at the start of the boot: PCR 0 holds the start-up locality (4 for
    /// an H-CRTM), every other PCR (including the D-RTM PCRs 17–22, which the dynamic launch
    /// resets) is zero.
    pub fn initial_value(&self, alg: HashAlg, pcr: u32) -> Digest {
        let mut bytes = [0u8; tsem_core::hash::MAX_DIGEST];
        let n = alg.size();
        if pcr == 0
            && let (Some(loc), Some(last)) = (self.pcr0_locality(), bytes.get_mut(n - 1))
        {
            *last = loc;
        }
        Digest::from_slice(bytes.get(..n).unwrap_or(&[])).unwrap_or_else(|| alg.null_id())
    }

    /// Final value of `pcr` in `alg` (the initial value if the log never extends it).
    pub fn pcr(&self, alg: HashAlg, pcr: u32) -> Digest {
        self.pcrs
            .get(&alg)
            .and_then(|m| m.get(&pcr))
            .copied()
            .unwrap_or_else(|| self.initial_value(alg, pcr))
    }

    /// PCRs `0..n` of `alg`.
    pub fn pcr_values(&self, alg: HashAlg, n: u32) -> Vec<Digest> {
        (0..n).map(|i| self.pcr(alg, i)).collect()
    }

    /// The TSEM hardware aggregate of `alg`: `HF(PCR0 || … || PCR7)` (spec §4.1).
    pub fn aggregate(&self, alg: HashAlg) -> Digest {
        hardware_aggregate(alg, &self.pcr_values(alg, 8))
    }

    /// Error unless the log carries `alg`.
    pub fn require_bank(&self, alg: HashAlg) -> Result<(), EventLogError> {
        if self.banks.contains(&alg) {
            Ok(())
        } else {
            Err(EventLogError::NoSuchBank {
                bank: alg.bank_name(),
                have: self
                    .banks
                    .iter()
                    .map(|b| b.bank_name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

/// Replay every bank of `log`.
///
/// Rules: `EV_NO_ACTION` records and records for PCR 0xFFFFFFFF are never extended; a StartupLocality
/// event (on PCR 0, before PCR 0 is first extended) sets PCR 0's initial value to `00..0L`; an
/// `EV_EFI_HCRTM_EVENT` as PCR 0's first extend is an H-CRTM start: PCR 0 starts at `00..04`
/// whatever the StartupLocality (as tpm2-tools and tpm2-tss replay it); the D-RTM
/// PCRs 17–22 start at zero (a dynamic launch resets them), and a further TXT `HASH_START` on PCR 17
/// after PCR 17 was extended is a new launch and resets 17–22 again.
pub fn replay(log: &EventLog<'_>) -> Replay {
    let banks = log.banks();
    let mut out = Replay {
        format: log.format,
        events: log.events.len(),
        banks: banks.clone(),
        pcrs: BTreeMap::new(),
        startup_locality: None,
        hcrtm: None,
        dynamic_launches: 0,
        digest_mismatches: Vec::new(),
        unknown_algorithms: log.unknown_algorithms(),
        digests_checked: 0,
        warnings: log.warnings.clone(),
    };
    let mut pcr0_extended = false;
    let mut pcr17_extended = false;
    for ev in &log.events {
        if ev.event_type == EV_NO_ACTION {
            if ev.pcr == 0
                && !pcr0_extended
                && ev.data.len() == 17
                && ev.data.starts_with(STARTUP_LOCALITY)
                && let Some(&loc) = ev.data.get(16)
            {
                out.startup_locality = Some(loc);
            }
            continue;
        }
        if ev.pcr == PCR_NONE {
            continue;
        }
        if ev.pcr == 0 && ev.event_type == EV_EFI_HCRTM_EVENT {
            let mut warn = |kind| {
                out.warnings.push(Warning {
                    index: ev.index,
                    offset: ev.offset,
                    kind,
                })
            };
            if ev.data != b"HCRTM" {
                warn(WarningKind::HcrtmData);
            }
            if pcr0_extended {
                warn(WarningKind::LateHcrtm);
            } else {
                out.hcrtm = Some(ev.index);
            }
        }
        if ev.pcr == 17 && ev.event_type == EVTYPE_TXT_HASH_START {
            if pcr17_extended {
                for m in out.pcrs.values_mut() {
                    m.retain(|p, _| !DRTM_PCRS.contains(p));
                }
            }
            out.dynamic_launches += 1;
        }
        pcr0_extended |= ev.pcr == 0;
        pcr17_extended |= ev.pcr == 17;
        let known = efi::known_content(ev.event_type, ev.data);
        for &alg in &banks {
            let Some(raw) = ev.digest(alg) else { continue };
            // Sizes were validated against the Spec ID table, so this cannot fail for known banks.
            let Some(d) = Digest::from_slice(raw) else {
                continue;
            };
            let cur = out.pcr(alg, ev.pcr);
            out.pcrs
                .entry(alg)
                .or_default()
                .insert(ev.pcr, extend(alg, &cur, &d));
            if let Some(k) = &known {
                out.digests_checked += 1;
                let computed = alg.digest(k.primary);
                let alt_ok = k.alternative.is_some_and(|a| alg.digest(a) == d);
                if computed != d && !alt_ok {
                    out.digest_mismatches.push(DigestMismatch {
                        index: ev.index,
                        offset: ev.offset,
                        pcr: ev.pcr,
                        event_type: ev.event_type,
                        bank: alg,
                        logged: d,
                        computed,
                    });
                }
            }
        }
    }
    // Parser and replay warnings interleave by record.
    out.warnings.sort_by_key(|w| w.index);
    out
}

/// A one-line description of a record for listings.
pub fn describe(ev: &Event<'_>) -> String {
    if ev.index == 0 && ev.event_type == EV_NO_ACTION && ev.data.starts_with(SPEC_ID_03) {
        return "Spec ID Event03 (crypto-agile header)".to_string();
    }
    // Strings as the JSON decodes them (UTF-16 command lines included), escaped for a terminal.
    match crate::payload::decode_data(ev.event_type, ev.data) {
        crate::payload::Payload::Text { text, .. } => {
            alloc::format!("\"{}\"", crate::payload::escape(&text))
        }
        crate::payload::Payload::Guid { guid } => alloc::format!("GUID {guid}"),
        _ => efi::describe(ev.event_type, ev.data),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn legacy_record(pcr: u32, ty: u32, digest: [u8; 20], data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&pcr.to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&digest);
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn legacy_log_replays_sha1_and_checks_separator() {
        let sep = [0u8; 4];
        let good: [u8; 20] = HashAlg::Sha1.digest(&sep).padded();
        let mut log = legacy_record(0, 8, [1; 20], b"crtm");
        log.extend(legacy_record(0, EV_SEPARATOR, good, &sep));
        log.extend(legacy_record(1, EV_SEPARATOR, [9; 20], &sep));
        let mut padded = log.clone();
        padded.extend([0u8; 40]);
        assert_eq!(EventLog::parse(&padded).unwrap().trailing_padding, 40);
        padded.truncate(log.len() + 7);
        assert!(
            EventLog::parse(&padded).is_err(),
            "7 zero bytes are a truncated record, not fill"
        );
        let parsed = EventLog::parse(&log).unwrap();
        assert_eq!(parsed.format, LogFormat::Sha1Legacy);
        let r = replay(&parsed);
        assert_eq!(r.digest_mismatches.len(), 1);
        assert_eq!(r.digest_mismatches[0].index, 2);
        let z = HashAlg::Sha1.null_id();
        let one = Digest::from_slice(&[1; 20]).unwrap();
        let p0 = extend(
            HashAlg::Sha1,
            &extend(HashAlg::Sha1, &z, &one),
            &Digest::from_slice(&good).unwrap(),
        );
        assert_eq!(r.pcr(HashAlg::Sha1, 0), p0);
        assert!(r.require_bank(HashAlg::Sha256).is_err());
    }

    #[test]
    fn truncation_names_field_and_offset() {
        let log = legacy_record(0, 8, [1; 20], b"crtm");
        let e = EventLog::parse(&log[..log.len() - 1]).unwrap_err();
        match e {
            EventLogError::Truncated {
                index: 0,
                offset: 0,
                field: "event",
                at: 32,
                need: 4,
                have: 3,
            } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(EventLog::parse(&[]), Err(EventLogError::Empty));
    }
}
