//! Replaying a list: template-hash verification, PCR values, the boot_aggregate check and the
//! order-invariant TSEM state.

use super::*;

/// A parsed list, for callers that want every entry at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaList<'a> {
    /// Encoding.
    pub format: ImaFormat,
    /// Template-hash algorithm.
    pub template_alg: HashAlg,
    /// Entries in order.
    pub entries: Vec<ImaEntry<'a>>,
}

impl<'a> ImaList<'a> {
    /// Parse a whole list.
    pub fn parse(data: &'a [u8], opts: ParseOptions) -> Result<Self, ImaError> {
        let p = ImaParser::new(data, opts)?;
        let (format, template_alg) = (p.format(), p.template_alg());
        let entries = p.collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            format,
            template_alg,
            entries,
        })
    }
}

/// A logged template hash that is not the hash of the entry's template data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMismatch {
    /// Entry index.
    pub index: usize,
    /// Byte offset of the entry.
    pub offset: usize,
    /// Hash in the list.
    pub logged: Digest,
    /// Hash of the template data.
    pub computed: Digest,
}

/// PCR values per bank: `{bank: {pcr: value}}`.
pub type PcrBanks = BTreeMap<HashAlg, BTreeMap<u32, Digest>>;

/// The boot_aggregate entry of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootAggregate {
    /// Entry index.
    pub index: usize,
    /// Hash algorithm of the digest.
    pub alg: HashAlg,
    /// The digest.
    pub digest: Digest,
}

/// Result of replaying a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaReplay {
    /// Encoding of the list.
    pub format: ImaFormat,
    /// Template-hash algorithm.
    pub template_alg: HashAlg,
    /// Number of entries.
    pub entries: usize,
    /// Number of violations (zero template hash, extended as all-0xFF).
    pub violations: usize,
    /// Number of template-hash mismatches.
    pub template_hash_mismatches: usize,
    /// The first [`MAX_MISMATCH_DETAILS`] mismatches.
    pub mismatch_details: Vec<TemplateMismatch>,
    /// Final PCR values of every requested bank, for every PCR the list extends (and every PCR
    /// of the starting values).
    pub pcrs: PcrBanks,
    /// The boot_aggregate entry, if the list has one.
    pub boot_aggregate: Option<BootAggregate>,
    /// Template hash of the first entry.
    pub first_template_hash: Option<Digest>,
    /// Template hash of the last entry.
    pub last_template_hash: Option<Digest>,
    /// Byte offset just past the last entry replayed (where a snapshot cut puts the remainder).
    pub end_offset: usize,
}

impl ImaReplay {
    /// The replay of no entries: nothing extended yet.
    pub fn empty(format: ImaFormat, template_alg: HashAlg) -> Self {
        Self {
            format,
            template_alg,
            entries: 0,
            violations: 0,
            template_hash_mismatches: 0,
            mismatch_details: Vec::new(),
            pcrs: BTreeMap::new(),
            boot_aggregate: None,
            first_template_hash: None,
            last_template_hash: None,
            end_offset: 0,
        }
    }
}

/// Replay a whole list into `banks`, starting each PCR from `start` (a snapshot) or zero.
///
/// Each bank re-hashes the template data with its own algorithm; a violation extends all-0xFF.
/// Stops after `limit` entries if given.
pub fn replay(
    data: &[u8],
    opts: ParseOptions,
    banks: &[HashAlg],
    start: Option<&PcrBanks>,
    limit: Option<usize>,
) -> Result<ImaReplay, ImaError> {
    let mut parser = ImaParser::new(data, opts)?;
    replay_parser(&mut parser, banks, start, limit)
}

/// Lists smaller than this are replayed on one thread: spawning costs more than it saves.
#[cfg(feature = "std")]
pub(super) const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// [`replay`] over an already positioned parser; `parser` ends after the last entry replayed.
///
/// With the `std` feature, banks of a large list are replayed on parallel threads (each bank's
/// chain is independent); the result is the same as on one thread.
pub fn replay_parser(
    parser: &mut ImaParser<'_>,
    banks: &[HashAlg],
    start: Option<&PcrBanks>,
    limit: Option<usize>,
) -> Result<ImaReplay, ImaError> {
    let mut uniq: Vec<HashAlg> = Vec::new();
    for &b in banks {
        if !uniq.contains(&b) {
            uniq.push(b);
        }
    }
    #[cfg(feature = "std")]
    {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(uniq.len());
        if threads > 1 && parser.data.len().saturating_sub(parser.pos) >= PARALLEL_MIN_BYTES {
            return replay_parallel(parser, &uniq, threads, start, limit);
        }
    }
    replay_chain(parser, &uniq, start, limit, true)
}

/// Deal `banks` round-robin over `threads` groups, the template's own bank first (it goes to
/// the first group, which also checks the template hashes).
#[cfg(feature = "std")]
pub(super) fn bank_groups(
    banks: &[HashAlg],
    template: HashAlg,
    threads: usize,
) -> Vec<Vec<HashAlg>> {
    let ordered = banks
        .iter()
        .filter(|b| **b == template)
        .chain(banks.iter().filter(|b| **b != template));
    let mut groups: Vec<Vec<HashAlg>> = alloc::vec![Vec::new(); threads.max(1)];
    let n = groups.len();
    for (i, b) in ordered.enumerate() {
        if let Some(g) = groups.get_mut(i % n) {
            g.push(*b);
        }
    }
    groups
}

/// Split `banks` over `threads` threads. The calling thread takes the group holding the
/// template-hash bank (if requested) and does the verification; the others only extend.
#[cfg(feature = "std")]
pub(super) fn replay_parallel(
    parser: &mut ImaParser<'_>,
    banks: &[HashAlg],
    threads: usize,
    start: Option<&PcrBanks>,
    limit: Option<usize>,
) -> Result<ImaReplay, ImaError> {
    let groups = bank_groups(banks, parser.template_alg(), threads);
    let (main, others) = groups.split_first().ok_or(ImaError::Empty)?;
    std::thread::scope(|s| {
        let handles: Vec<_> = others
            .iter()
            .map(|g| {
                let mut p = parser.clone();
                s.spawn(move || replay_chain(&mut p, g, start, limit, false))
            })
            .collect();
        let mut out = replay_chain(parser, main, start, limit, true)?;
        for h in handles {
            // A worker parses the same bytes as the main thread, so it fails only where the main
            // thread already did; a panic cannot happen, but is reported rather than propagated.
            let r = h.join().map_err(|_| {
                ImaError::UnknownFormat(String::from("replay worker thread failed"))
            })??;
            out.pcrs.extend(r.pcrs);
        }
        Ok(out)
    })
}

pub(super) fn replay_chain(
    parser: &mut ImaParser<'_>,
    uniq: &[HashAlg],
    start: Option<&PcrBanks>,
    limit: Option<usize>,
    verify: bool,
) -> Result<ImaReplay, ImaError> {
    let mut rp = Replayer::new(parser.format(), parser.template_alg(), uniq, start, verify);
    rp.out.end_offset = parser.offset();
    let limit = limit.unwrap_or(usize::MAX);
    while rp.out.entries < limit {
        let Some(e) = parser.next() else { break };
        rp.push(&e?);
    }
    Ok(rp.finish())
}

/// Replay state, fed one entry at a time by the in-memory and the streaming paths.
pub(super) struct Replayer {
    talg: HashAlg,
    verify: bool,
    /// PCR values per bank in small vectors: a list touches one or two PCRs.
    state: Vec<(HashAlg, Vec<(u32, Digest)>)>,
    out: ImaReplay,
}

impl Replayer {
    fn new(
        format: ImaFormat,
        talg: HashAlg,
        banks: &[HashAlg],
        start: Option<&PcrBanks>,
        verify: bool,
    ) -> Self {
        let state = banks
            .iter()
            .map(|&b| {
                let init = start
                    .and_then(|s| s.get(&b))
                    .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect());
                (b, init.unwrap_or_default())
            })
            .collect();
        let out = ImaReplay::empty(format, talg);
        Self {
            talg,
            verify,
            state,
            out,
        }
    }

    fn push(&mut self, e: &ImaEntry<'_>) {
        let (talg, out) = (self.talg, &mut self.out);
        out.entries += 1;
        out.end_offset = e.offset + e.len;
        out.first_template_hash.get_or_insert(e.template_hash);
        out.last_template_hash = Some(e.template_hash);
        let violation = e.is_violation();
        let mut own = None;
        if violation {
            out.violations += 1;
        } else if self.verify {
            let computed = e.template_hash_in(talg);
            if computed != e.template_hash {
                out.template_hash_mismatches += 1;
                if out.mismatch_details.len() < MAX_MISMATCH_DETAILS {
                    out.mismatch_details.push(TemplateMismatch {
                        index: e.index,
                        offset: e.offset,
                        logged: e.template_hash,
                        computed,
                    });
                }
            }
            own = Some(computed);
        }
        // The kernel logs the boot_aggregate first; looking only there keeps field splitting out of
        // the hot loop.
        if out.entries == 1
            && e.file_name() == Some(b"boot_aggregate".as_slice())
            && let Some(fd) = e.file_digest()
            && let (Some(alg), Some(digest)) = (fd.alg(), Digest::from_slice(fd.digest))
        {
            out.boot_aggregate = Some(BootAggregate {
                index: e.index,
                alg,
                digest,
            });
        }
        for (alg, pcrs) in &mut self.state {
            let value = if violation {
                Digest::ones(alg.size())
            } else if *alg == talg
                && let Some(c) = own
            {
                c
            } else {
                e.template_hash_in(*alg)
            };
            match pcrs.iter_mut().find(|(p, _)| *p == e.pcr) {
                Some((_, cur)) => *cur = extend(*alg, cur, &value),
                None => pcrs.push((e.pcr, extend(*alg, &alg.null_id(), &value))),
            }
        }
    }

    fn finish(mut self) -> ImaReplay {
        for (alg, pcrs) in self.state {
            self.out.pcrs.insert(alg, pcrs.into_iter().collect());
        }
        self.out
    }
}

/// Window size of the streaming replay: large enough that refills are rare, small enough that a
/// list of any length is replayed in bounded memory.
#[cfg(feature = "std")]
pub(super) const STREAM_CHUNK: usize = 1 << 20;

/// Replay a list read from `src` (of known format and algorithm) through a bounded window, so
/// that a list of any size needs memory for its largest entry only. Offsets, indices and lines in
/// errors and results are those of the whole stream.
#[cfg(feature = "std")]
pub fn replay_read<R: std::io::Read>(
    src: R,
    format: ImaFormat,
    alg: HashAlg,
    banks: &[HashAlg],
    verify: bool,
) -> Result<ImaReplay, ImaError> {
    replay_read_window(src, format, alg, banks, verify, STREAM_CHUNK)
}

/// [`replay_read`] with a window of `window` bytes to start with (it grows to fit an entry).
#[cfg(feature = "std")]
pub fn replay_read_window<R: std::io::Read>(
    mut src: R,
    format: ImaFormat,
    alg: HashAlg,
    banks: &[HashAlg],
    verify: bool,
    window: usize,
) -> Result<ImaReplay, ImaError> {
    let io = |e: std::io::Error| ImaError::Io(alloc::format!("{e}"));
    let mut want = window.max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(want);
    let (mut base, mut index, mut line) = (0usize, 0usize, 0usize);
    let mut eof = false;
    let mut rp = Replayer::new(format, alg, banks, None, verify);
    loop {
        while !eof && buf.len() < want {
            let old = buf.len();
            buf.resize(want, 0);
            let n = src.read(buf.get_mut(old..).unwrap_or(&mut [])).map_err(io);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    buf.truncate(old);
                    return Err(e);
                }
            };
            buf.truncate(old + n);
            eof = n == 0;
        }
        let mut p = ImaParser {
            base,
            index,
            line,
            partial: !eof,
            ..ImaParser::with_format(&buf, format, alg)
        };
        loop {
            match p.next() {
                None => break,
                Some(Ok(e)) => rp.push(&e),
                // The window ends inside this entry: read more and parse it again.
                Some(Err(ImaError::Truncated { .. })) if !eof => break,
                Some(Err(e)) => return Err(e),
            }
        }
        let used = p.pos;
        (index, line) = (p.index, p.line);
        if eof {
            break;
        }
        if used == 0 && buf.len() >= want {
            // One entry is larger than the window; the bytes are really there, so grow.
            want = want.saturating_mul(2);
        }
        buf.drain(..used);
        base += used;
    }
    Ok(rp.finish())
}

/// [`detect`] on the first few MiB of the file at `path`.
#[cfg(feature = "std")]
pub fn detect_path(
    path: &std::path::Path,
    opts: ParseOptions,
) -> Result<(ImaFormat, HashAlg), ImaError> {
    use std::io::Read as _;
    let io = |e: std::io::Error| ImaError::Io(alloc::format!("{}: {e}", path.display()));
    let mut head = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(4 * STREAM_CHUNK as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    detect(&head, opts)
}

/// Replay the list in the file at `path` without holding it in memory: the banks are split over
/// threads, each streaming the file with [`replay_read`]. A list that grows while it is read (a
/// live securityfs file) gives threads different entry counts; that is reported as
/// [`ImaError::Io`], and the caller should read the file once and use [`replay`].
#[cfg(feature = "std")]
pub fn replay_path(
    path: &std::path::Path,
    opts: ParseOptions,
    banks: &[HashAlg],
) -> Result<ImaReplay, ImaError> {
    let io = |e: std::io::Error| ImaError::Io(alloc::format!("{}: {e}", path.display()));
    let (format, alg) = detect_path(path, opts)?;
    let mut uniq: Vec<HashAlg> = Vec::new();
    for &b in banks {
        if !uniq.contains(&b) {
            uniq.push(b);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(uniq.len())
        .max(1);
    let groups = bank_groups(&uniq, alg, threads);
    let (main, others) = groups.split_first().ok_or(ImaError::Empty)?;
    std::thread::scope(|s| {
        let handles: Vec<_> = others
            .iter()
            .map(|g| {
                s.spawn(move || {
                    let f = std::fs::File::open(path).map_err(io)?;
                    replay_read(f, format, alg, g, false)
                })
            })
            .collect();
        let f = std::fs::File::open(path).map_err(io)?;
        let mut out = replay_read(f, format, alg, main, true)?;
        for h in handles {
            let r = h
                .join()
                .map_err(|_| ImaError::Io(String::from("replay worker thread failed")))??;
            if r.entries != out.entries {
                return Err(ImaError::Io(alloc::format!(
                    "{}: the list changed while it was read ({} and {} entries)",
                    path.display(),
                    out.entries,
                    r.entries
                )));
            }
            out.pcrs.extend(r.pcrs);
        }
        Ok(out)
    })
}

/// Outcome of checking a boot_aggregate against an event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootAggregateCheck {
    /// `Some(true)` if it matches, `Some(false)` if it does not (or cannot be shown to),
    /// `None` if the list has no boot_aggregate entry.
    pub ok: Option<bool>,
    /// Which variant matched or why it failed.
    pub detail: String,
}

/// Check a list's boot_aggregate against a replayed event log. The kernel hashes PCRs 0–7 for
/// SHA-1 and, since 5.8, PCRs 0–9 for other banks; older kernels hash 0–7 in every bank, so both
/// variants are accepted.
pub fn check_boot_aggregate(
    ba: Option<&BootAggregate>,
    log: &eventlog::Replay,
) -> BootAggregateCheck {
    let Some(ba) = ba else {
        return BootAggregateCheck {
            ok: None,
            detail: String::from("the list has no boot_aggregate entry"),
        };
    };
    if !log.banks.contains(&ba.alg) {
        return BootAggregateCheck {
            ok: Some(false),
            detail: format!(
                "the event log has no {} bank to check the boot_aggregate against",
                ba.alg.bank_name()
            ),
        };
    }
    let pcrs = log.pcr_values(ba.alg, 10);
    let a8 = hardware_aggregate(ba.alg, pcrs.get(..8).unwrap_or(&[]));
    let a10 = hardware_aggregate(ba.alg, &pcrs);
    if a8 == ba.digest {
        BootAggregateCheck {
            ok: Some(true),
            detail: format!("{} over PCR 0-7", ba.alg),
        }
    } else if a10 == ba.digest {
        BootAggregateCheck {
            ok: Some(true),
            detail: format!("{} over PCR 0-9", ba.alg),
        }
    } else {
        BootAggregateCheck {
            ok: Some(false),
            detail: format!(
                "boot_aggregate {} is neither {} (PCR 0-7) nor {} (PCR 0-9)",
                ba.digest, a8, a10
            ),
        }
    }
}

/// The TSEM-style order-invariant state of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImaState {
    /// Hash algorithm (the list's template-hash algorithm).
    pub alg: HashAlg,
    /// Number of entries.
    pub entries: usize,
    /// Number of distinct template hashes.
    pub unique: usize,
    /// The state.
    pub state: Digest,
}

/// The order-invariant state over the list's unique template hashes, computed with
/// [`tsem_core::state::state_of`] from `base` and `aggregate` (zero if not given).
pub fn state(
    data: &[u8],
    opts: ParseOptions,
    base: Option<Digest>,
    aggregate: Option<Digest>,
) -> Result<ImaState, ImaError> {
    let parser = ImaParser::new(data, opts)?;
    let alg = parser.template_alg();
    let mut points = Vec::new();
    for e in parser {
        points.push(e?.template_hash);
    }
    let entries = points.len();
    let base = base.unwrap_or_else(|| alg.null_id());
    let aggregate = aggregate.unwrap_or_else(|| alg.null_id());
    let state = state_of(alg, &base, &aggregate, &mut points);
    points.dedup();
    Ok(ImaState {
        alg,
        entries,
        unique: points.len(),
        state,
    })
}
