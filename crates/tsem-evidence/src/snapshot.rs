//! IMA measurement-list snapshots: cut a list after N entries into a small snapshot that carries the
//! PCR values at the cut, and the remainder; replay the remainder from the snapshot.
//!
//! The snapshot is a versioned text file (see `docs/evidence.md`):
//!
//! ```text
//! tsem-ima-snapshot 1
//! template-alg sha256
//! entries 120
//! last-template-hash <hex>|none
//! next-template-hash <hex>|none
//! boot-aggregate <index> <alg> <hex>|none
//! banks <bank>...                (the banks the snapshot carries)
//! pcr <bank> <pcr> <hex>          (one line per bank and PCR, banks in TPM id order)
//! checksum sha256 <hex>           (SHA-256 of every byte before this line)
//! ```
//!
//! The checksum catches corruption and naive edits. It is not a signature: what makes the PCR values
//! trustworthy is that replaying the remainder from them must reproduce PCRs the TPM quotes.
//! `next-template-hash` is the template hash of the first entry after the cut, so a remainder that
//! starts anywhere else (a gap, or an overlap) is rejected.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use tsem_core::hash::{Digest, HashAlg};

use crate::ima::{self, BootAggregate, ImaError, ImaParser, ParseOptions, PcrBanks};

const MAGIC: &str = "tsem-ima-snapshot";
const VERSION: u32 = 1;
/// A snapshot is a few kilobytes; anything larger is not one.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;
/// Bank × PCR lines accepted.
const MAX_PCR_LINES: usize = 5 * 64;

/// Why a snapshot was rejected or could not be made or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Malformed snapshot text.
    #[error("snapshot line {line}: {field}: {reason}")]
    Format {
        /// 1-based line.
        line: usize,
        /// Field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The snapshot was modified after it was written.
    #[error(
        "snapshot checksum mismatch: recorded {recorded}, content hashes to {computed} (tampered or corrupted)"
    )]
    Checksum {
        /// Checksum in the file.
        recorded: String,
        /// Checksum of the content.
        computed: String,
    },
    /// The snapshot is larger than any real snapshot.
    #[error("snapshot is {0} bytes (at most {MAX_SNAPSHOT_BYTES})")]
    TooLarge(usize),
    /// The remainder does not continue exactly where the snapshot was cut.
    #[error(
        "gap or overlap: the snapshot was cut before an entry with template hash {expected}, the remainder starts with {found}"
    )]
    Gap {
        /// Template hash the snapshot expects first.
        expected: String,
        /// What the remainder starts with.
        found: String,
    },
    /// The remainder uses another template-hash algorithm.
    #[error("the snapshot is of a {snapshot} list, the remainder is {remainder}")]
    Algorithm {
        /// Algorithm of the snapshot.
        snapshot: &'static str,
        /// Algorithm of the remainder.
        remainder: &'static str,
    },
    /// A requested bank is not in the snapshot.
    #[error("the snapshot has no {0} bank")]
    NoSuchBank(&'static str),
    /// The cut is past the end of the list.
    #[error("cannot cut after {at} entries: the list has {entries}")]
    TooShort {
        /// Requested cut.
        at: usize,
        /// Entries in the list.
        entries: usize,
    },
    /// The list itself is invalid.
    #[error(transparent)]
    Ima(#[from] ImaError),
}

/// The state of a list at a cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Template-hash algorithm of the list.
    pub template_alg: HashAlg,
    /// Entries before the cut (counting those of earlier snapshots this one continues).
    pub entries: u64,
    /// Template hash of the last entry before the cut.
    pub last_template_hash: Option<Digest>,
    /// Template hash of the first entry after the cut, if the list had one.
    pub next_template_hash: Option<Digest>,
    /// The list's boot_aggregate entry, if it was before the cut.
    pub boot_aggregate: Option<BootAggregate>,
    /// PCR values at the cut, in every bank tsem supports.
    pub pcrs: PcrBanks,
}

/// Where the remainder starts in the input, next to the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Byte offset of the first entry after the cut.
    pub remainder_offset: usize,
}

impl Snapshot {
    /// Cut `data` after `at` entries. With `prev`, `data` is the remainder of an earlier snapshot
    /// and the new one continues it.
    pub fn take(
        data: &[u8],
        opts: ParseOptions,
        at: usize,
        prev: Option<&Snapshot>,
    ) -> Result<Cut, SnapshotError> {
        let mut parser = ImaParser::new(data, opts)?;
        let talg = parser.template_alg();
        if let Some(p) = prev {
            p.check_continuation(talg, first_hash(data, opts)?)?;
        }
        let r = ima::replay_parser(&mut parser, &HashAlg::ALL, prev.map(|p| &p.pcrs), Some(at))?;
        if r.entries < at {
            return Err(SnapshotError::TooShort {
                at,
                entries: r.entries,
            });
        }
        let next = match parser.next() {
            Some(e) => Some(e?.template_hash),
            None => None,
        };
        let remainder_offset = if at == 0 { 0 } else { r.end_offset };
        let mut pcrs = r.pcrs;
        if let Some(p) = prev {
            for (bank, m) in &p.pcrs {
                let dst = pcrs.entry(*bank).or_default();
                for (k, v) in m {
                    dst.entry(*k).or_insert(*v);
                }
            }
        }
        Ok(Cut {
            snapshot: Snapshot {
                template_alg: talg,
                entries: prev.map_or(0, |p| p.entries).saturating_add(at as u64),
                last_template_hash: r
                    .last_template_hash
                    .or(prev.and_then(|p| p.last_template_hash)),
                next_template_hash: next,
                boot_aggregate: r.boot_aggregate.or(prev.and_then(|p| p.boot_aggregate)),
                pcrs,
            },
            remainder_offset,
        })
    }

    /// Check that a remainder whose first template hash is `first` continues this snapshot.
    pub fn check_continuation(
        &self,
        talg: HashAlg,
        first: Option<Digest>,
    ) -> Result<(), SnapshotError> {
        if talg != self.template_alg {
            return Err(SnapshotError::Algorithm {
                snapshot: self.template_alg.name(),
                remainder: talg.name(),
            });
        }
        let show = |d: Option<Digest>| {
            d.map_or_else(|| String::from("nothing (empty remainder)"), |d| d.to_hex())
        };
        match (self.next_template_hash, first) {
            (Some(want), got) if got != Some(want) => Err(SnapshotError::Gap {
                expected: want.to_hex(),
                found: show(got),
            }),
            // Cut at the end of the list: the continuation cannot be linked by hash, but it must not
            // repeat the last entry.
            (None, Some(got)) if Some(got) == self.last_template_hash && !got.is_zero() => {
                Err(SnapshotError::Gap {
                    expected: String::from("an entry after the cut"),
                    found: got.to_hex(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Replay a remainder from this snapshot into `banks`.
    pub fn replay_remainder(
        &self,
        data: &[u8],
        opts: ParseOptions,
        banks: &[HashAlg],
    ) -> Result<ima::ImaReplay, SnapshotError> {
        for b in banks {
            if !self.pcrs.contains_key(b) {
                return Err(SnapshotError::NoSuchBank(b.bank_name()));
            }
        }
        let (talg, first) = if data.iter().all(u8::is_ascii_whitespace) {
            (self.template_alg, None)
        } else {
            let p = ImaParser::new(
                data,
                ParseOptions {
                    template_alg: opts.template_alg.or(Some(self.template_alg)),
                },
            )?;
            (p.template_alg(), first_hash(data, opts)?)
        };
        self.check_continuation(talg, first)?;
        let mut r = if first.is_none() {
            ima::ImaReplay::empty(ima::ImaFormat::BinaryLe, talg)
        } else {
            let mut p = ImaParser::new(
                data,
                ParseOptions {
                    template_alg: Some(talg),
                },
            )?;
            ima::replay_parser(&mut p, banks, Some(&self.pcrs), None)?
        };
        for b in banks {
            let dst = r.pcrs.entry(*b).or_default();
            if let Some(m) = self.pcrs.get(b) {
                for (k, v) in m {
                    dst.entry(*k).or_insert(*v);
                }
            }
        }
        if r.boot_aggregate.is_none() {
            r.boot_aggregate = self.boot_aggregate;
        }
        Ok(r)
    }

    /// The snapshot file.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let opt = |d: Option<Digest>| d.map_or_else(|| String::from("none"), |d| d.to_hex());
        let _ = writeln!(s, "{MAGIC} {VERSION}");
        let _ = writeln!(s, "template-alg {}", self.template_alg.bank_name());
        let _ = writeln!(s, "entries {}", self.entries);
        let _ = writeln!(s, "last-template-hash {}", opt(self.last_template_hash));
        let _ = writeln!(s, "next-template-hash {}", opt(self.next_template_hash));
        match &self.boot_aggregate {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "boot-aggregate {} {} {}",
                    b.index,
                    b.alg.bank_name(),
                    b.digest
                );
            }
            None => {
                let _ = writeln!(s, "boot-aggregate none");
            }
        }
        let banks: Vec<&str> = self.pcrs.keys().map(|b| b.bank_name()).collect();
        let _ = writeln!(s, "banks {}", banks.join(" "));
        for (bank, m) in &self.pcrs {
            for (pcr, v) in m {
                let _ = writeln!(s, "pcr {} {pcr} {v}", bank.bank_name());
            }
        }
        let sum = HashAlg::Sha256.digest(s.as_bytes());
        let _ = writeln!(s, "checksum sha256 {sum}");
        s
    }

    /// Parse and verify a snapshot file.
    pub fn parse(data: &[u8]) -> Result<Self, SnapshotError> {
        if data.len() > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::TooLarge(data.len()));
        }
        let text = core::str::from_utf8(data).map_err(|e| SnapshotError::Format {
            line: 1 + data
                .get(..e.valid_up_to())
                .map_or(0, |d| d.iter().filter(|&&c| c == b'\n').count()),
            field: "text",
            reason: String::from("not UTF-8"),
        })?;
        let mut lines = Lines {
            it: text.split_inclusive('\n').enumerate(),
            consumed: 0,
        };
        let ferr = |line: usize, field: &'static str, reason: String| SnapshotError::Format {
            line,
            field,
            reason,
        };
        let (n, h) = lines.next_line("header")?;
        if h.first() != Some(&MAGIC) || h.len() != 2 {
            return Err(ferr(n, "header", format!("expected \"{MAGIC} {VERSION}\"")));
        }
        if h.get(1) != Some(&"1") {
            return Err(ferr(
                n,
                "version",
                format!(
                    "unsupported version {:?} (this build reads {VERSION})",
                    h.get(1)
                ),
            ));
        }
        let kv = |(n, v): (usize, Vec<&str>),
                  key: &'static str,
                  arity: usize|
         -> Result<(usize, Vec<String>), SnapshotError> {
            if v.first() != Some(&key) || v.len() != arity + 1 {
                return Err(ferr(
                    n,
                    key,
                    format!("expected \"{key}\" with {arity} value(s)"),
                ));
            }
            Ok((n, v.iter().skip(1).map(|s| String::from(*s)).collect()))
        };
        let alg_of = |n: usize, field: &'static str, s: &str| -> Result<HashAlg, SnapshotError> {
            s.parse::<HashAlg>()
                .map_err(|_| ferr(n, field, format!("unknown hash algorithm {s:?}")))
        };
        let digest_of = |n: usize,
                         field: &'static str,
                         s: &str,
                         alg: HashAlg|
         -> Result<Digest, SnapshotError> {
            Digest::from_hex_len(s, alg.size()).map_err(|e| ferr(n, field, format!("{e}")))
        };
        let opt_digest = |n: usize,
                          field: &'static str,
                          s: &str,
                          alg: HashAlg|
         -> Result<Option<Digest>, SnapshotError> {
            if s == "none" {
                Ok(None)
            } else {
                digest_of(n, field, s, alg).map(Some)
            }
        };
        let (n, v) = kv(lines.next_line("template-alg")?, "template-alg", 1)?;
        let template_alg = alg_of(n, "template-alg", &v[0])?;
        let (n, v) = kv(lines.next_line("entries")?, "entries", 1)?;
        let entries: u64 = v[0]
            .parse()
            .map_err(|_| ferr(n, "entries", format!("not a number: {:?}", v[0])))?;
        let (n, v) = kv(
            lines.next_line("last-template-hash")?,
            "last-template-hash",
            1,
        )?;
        let last_template_hash = opt_digest(n, "last-template-hash", &v[0], template_alg)?;
        let (n, v) = kv(
            lines.next_line("next-template-hash")?,
            "next-template-hash",
            1,
        )?;
        let next_template_hash = opt_digest(n, "next-template-hash", &v[0], template_alg)?;
        let (n, v) = lines.next_line("boot-aggregate")?;
        let boot_aggregate = match v.as_slice() {
            ["boot-aggregate", "none"] => None,
            ["boot-aggregate", idx, alg, hex] => {
                let index = idx
                    .parse()
                    .map_err(|_| ferr(n, "boot-aggregate", format!("bad index {idx:?}")))?;
                let alg = alg_of(n, "boot-aggregate", alg)?;
                // Kept at the size the list logged it, even a wrong one: the check against an
                // event log then fails, as it would have on the whole list.
                let digest =
                    Digest::from_hex(hex).map_err(|e| ferr(n, "boot-aggregate", format!("{e}")))?;
                Some(BootAggregate { index, alg, digest })
            }
            _ => {
                return Err(ferr(
                    n,
                    "boot-aggregate",
                    String::from("expected \"boot-aggregate none\" or index, alg, hex"),
                ));
            }
        };
        let mut pcrs: PcrBanks = BTreeMap::new();
        let (n, v) = lines.next_line("banks")?;
        if v.first() != Some(&"banks") {
            return Err(ferr(
                n,
                "banks",
                String::from("expected \"banks\" and the bank names"),
            ));
        }
        for b in v.iter().skip(1) {
            if pcrs
                .insert(alg_of(n, "banks", b)?, BTreeMap::new())
                .is_some()
            {
                return Err(ferr(n, "banks", format!("{b} listed twice")));
            }
        }
        let mut count = 0usize;
        loop {
            let before = lines.consumed;
            let (n, v) = lines.next_line("checksum")?;
            match v.as_slice() {
                ["pcr", bank, pcr, hex] => {
                    count += 1;
                    if count > MAX_PCR_LINES {
                        return Err(ferr(
                            n,
                            "pcr",
                            format!("more than {MAX_PCR_LINES} PCR lines"),
                        ));
                    }
                    let alg = alg_of(n, "pcr", bank)?;
                    let idx: u32 = pcr
                        .parse()
                        .map_err(|_| ferr(n, "pcr", format!("bad PCR index {pcr:?}")))?;
                    let d = digest_of(n, "pcr", hex, alg)?;
                    let Some(bank_pcrs) = pcrs.get_mut(&alg) else {
                        return Err(ferr(
                            n,
                            "pcr",
                            format!("bank {bank} is not in the banks line"),
                        ));
                    };
                    if bank_pcrs.insert(idx, d).is_some() {
                        return Err(ferr(n, "pcr", format!("{bank} PCR {idx} given twice")));
                    }
                }
                ["checksum", "sha256", hex] => {
                    let recorded = Digest::from_hex_len(hex, 32)
                        .map_err(|e| ferr(n, "checksum", format!("{e}")))?;
                    let computed =
                        HashAlg::Sha256.digest(text.as_bytes().get(..before).unwrap_or(&[]));
                    if recorded != computed {
                        return Err(SnapshotError::Checksum {
                            recorded: recorded.to_hex(),
                            computed: computed.to_hex(),
                        });
                    }
                    if lines.consumed != text.len() {
                        return Err(ferr(
                            n + 1,
                            "end",
                            String::from("data after the checksum line"),
                        ));
                    }
                    break;
                }
                _ => {
                    return Err(ferr(
                        n,
                        "pcr",
                        String::from("expected \"pcr BANK INDEX HEX\" or the checksum line"),
                    ));
                }
            }
        }
        Ok(Snapshot {
            template_alg,
            entries,
            last_template_hash,
            next_template_hash,
            boot_aggregate,
            pcrs,
        })
    }
}

struct Lines<'t, I: Iterator<Item = (usize, &'t str)>> {
    it: I,
    consumed: usize,
}

impl<'t, I: Iterator<Item = (usize, &'t str)>> Lines<'t, I> {
    fn next_line(&mut self, field: &'static str) -> Result<(usize, Vec<&'t str>), SnapshotError> {
        let (i, l) = self.it.next().ok_or(SnapshotError::Format {
            line: 0,
            field,
            reason: String::from("missing (file ends early)"),
        })?;
        let n = i + 1;
        let body = l.strip_suffix('\n').ok_or(SnapshotError::Format {
            line: n,
            field,
            reason: String::from("line not terminated by a newline"),
        })?;
        self.consumed += l.len();
        Ok((n, body.split(' ').collect()))
    }
}

fn first_hash(data: &[u8], opts: ParseOptions) -> Result<Option<Digest>, ImaError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match ImaParser::new(data, opts)?.next() {
        Some(e) => Ok(Some(e?.template_hash)),
        None => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut pcrs = PcrBanks::new();
        pcrs.entry(HashAlg::Sha1)
            .or_default()
            .insert(10, HashAlg::Sha1.digest(b"a"));
        pcrs.entry(HashAlg::Sha256)
            .or_default()
            .insert(10, HashAlg::Sha256.digest(b"a"));
        Snapshot {
            template_alg: HashAlg::Sha1,
            entries: 3,
            last_template_hash: Some(HashAlg::Sha1.digest(b"l")),
            next_template_hash: None,
            boot_aggregate: Some(BootAggregate {
                index: 0,
                alg: HashAlg::Sha256,
                digest: HashAlg::Sha256.digest(b"b"),
            }),
            pcrs,
        }
    }

    #[test]
    fn text_round_trip_and_tamper() {
        let s = sample();
        let t = s.to_text();
        assert_eq!(Snapshot::parse(t.as_bytes()).unwrap(), s);
        let tampered = t.replacen("entries 3", "entries 4", 1);
        assert!(matches!(
            Snapshot::parse(tampered.as_bytes()),
            Err(SnapshotError::Checksum { .. })
        ));
        for cut in 0..t.len() {
            assert!(
                Snapshot::parse(&t.as_bytes()[..cut]).is_err(),
                "prefix {cut} accepted"
            );
        }
        let v2 = t.replacen("tsem-ima-snapshot 1", "tsem-ima-snapshot 2", 1);
        assert!(matches!(
            Snapshot::parse(v2.as_bytes()),
            Err(SnapshotError::Format {
                field: "version",
                ..
            })
        ));
    }
}
