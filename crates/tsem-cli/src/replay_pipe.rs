//! Pipelined replay: a reading thread parses lines into batches of event slots while another
//! thread names and models the batches in input order, so parsing (about half of replay's time)
//! overlaps modeling. Everything replay prints — state, counts, forensic order, the first error
//! by line, with exactly the events before it modeled — is the single-threaded path's
//! (`replay::model_stream_with`), because every step that depends on order (naming rules,
//! modeling, an aggregate record, the spill of forensic descriptions) runs on the modeling
//! thread in the order the lines came, and the reader only parses.
//!
//! Batches are reused: a fixed pool circulates between the two threads (filled ones through a
//! bounded channel, emptied ones back), and each line is parsed into a slot that held an earlier
//! event, so nothing is allocated per event.

use std::io::BufRead;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use tsem_core::hash::Digest;
use tsem_core::namespace::Namespace;
use tsem_format::{Parsed, RecordParser, Strictness};

use crate::replay::{Pending, REPLAY_BATCH, StreamStats, record_text};

/// Events per batch handed over: four of the single-threaded path's batches, so that the threads
/// wake each other (a futex call each way when one waits) once per 256 events, not per 64.
pub(crate) const PIPE_BATCH: usize = 4 * REPLAY_BATCH;
/// Filled batches waiting for the modeling thread: enough to ride out a descheduled thread on a
/// shared machine, few enough that the slots (~150 KiB a batch) stay in the L2 cache.
const DEPTH: usize = 2;
/// Batches in circulation: the queue, one being filled, one being modeled.
const POOL: usize = DEPTH + 2;

/// What ended a batch.
pub(crate) enum End {
    /// It is full (or the input ended): go on.
    More,
    /// An aggregate record on line `n` follows its events.
    Aggregate(usize, Digest),
    /// Reading stopped here: a line did not parse or the input could not be read. The batch's
    /// events (those before the line) are modeled, then this is replay's error.
    Error(anyhow::Error),
}

/// A batch of parsed events and what came after them.
pub(crate) struct Batch {
    pub(crate) pending: Pending,
    /// Log records among the batch's lines (counted only).
    pub(crate) logs: u64,
    pub(crate) end: End,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Batch {
            pending: Pending::default(),
            logs: 0,
            end: End::More,
        }
    }
}

/// Why the reading thread stopped reading lines.
enum Stop {
    /// A line could not be parsed: handed on to the modeling thread in order.
    Line(anyhow::Error),
    /// Line `n` could not be read: likewise.
    Read(usize, std::io::Error),
    /// The modeling thread has stopped (it failed): nothing more is wanted.
    Gone,
}

impl From<(usize, tsem_format::lines::ReadError)> for Stop {
    fn from((n, e): (usize, tsem_format::lines::ReadError)) -> Self {
        Stop::Read(n, e.0)
    }
}

/// The reading side's ends of the two channels, and how many batches it has made.
struct Pool {
    full: SyncSender<Batch>,
    empty: Receiver<Batch>,
    made: usize,
}

impl Pool {
    /// An emptied batch: a returned one, a new one while the pool is not all made, else wait for
    /// one. `None` once the modeling thread has stopped.
    fn take(&mut self) -> Option<Batch> {
        match self.empty.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) if self.made < POOL => {
                self.made += 1;
                Some(Batch::new())
            }
            Err(TryRecvError::Empty) => self.empty.recv().ok(),
        }
    }
}

/// [`crate::replay::model_stream_with`] on two threads: this one reads and parses `input`, a
/// scoped thread models. Same results and errors.
pub fn model_stream_pipelined(
    ns: &mut Namespace,
    name: &str,
    input: &mut dyn BufRead,
    stats: &mut StreamStats,
    strictness: Strictness,
) -> anyhow::Result<()> {
    let (full, full_rx) = std::sync::mpsc::sync_channel::<Batch>(DEPTH);
    let (empty_tx, empty) = std::sync::mpsc::channel::<Batch>();
    std::thread::scope(|s| {
        let modeler = std::thread::Builder::new()
            .name("tsem-replay-model".into())
            .spawn_scoped(s, move || {
                model_batches(ns, name, stats, full_rx, |b| {
                    // The reader may have stopped: then the batch is simply dropped.
                    let _ = empty_tx.send(b);
                })
            })?;
        let mut pool = Pool {
            full,
            empty,
            made: 0,
        };
        read_batches(name, input, strictness, &mut pool);
        // Closing the queue ends the modeling thread's loop once it has modeled what is in it.
        drop(pool);
        modeler
            .join()
            .map_err(|_| anyhow::anyhow!("{name}: the modeling thread panicked"))?
    })
}

/// The reading thread: parse every line into the pool's batches and pass them on, ending with a
/// batch that says why reading stopped.
fn read_batches(name: &str, input: &mut dyn BufRead, strictness: Strictness, pool: &mut Pool) {
    let mut parser = RecordParser::with_strictness(strictness);
    let mut scratch = Vec::with_capacity(2048);
    let Some(mut batch) = pool.take() else {
        return;
    };
    let read = tsem_format::lines::for_each_line(input, &mut scratch, |n, line| {
        let Some(text) = record_text(line) else {
            return Ok(());
        };
        let parsed = parser
            .parse_into(text, batch.pending.slot())
            .map_err(|e| Stop::Line(anyhow::anyhow!("{name}:{n}: {e}")))?;
        match parsed {
            Parsed::Event(_) => {
                batch.pending.commit(n);
                if batch.pending.len == PIPE_BATCH {
                    let next = pool.take().ok_or(Stop::Gone)?;
                    pool.full
                        .send(std::mem::replace(&mut batch, next))
                        .map_err(|_| Stop::Gone)?;
                }
            }
            Parsed::Aggregate(a) => {
                batch.end = End::Aggregate(n, a);
                let next = pool.take().ok_or(Stop::Gone)?;
                pool.full
                    .send(std::mem::replace(&mut batch, next))
                    .map_err(|_| Stop::Gone)?;
            }
            Parsed::Log(_) => batch.logs += 1,
        }
        Ok(())
    });
    batch.end = match read {
        Ok(()) => End::More,
        Err(Stop::Line(e)) => End::Error(e),
        Err(Stop::Read(n, e)) => {
            End::Error(anyhow::Error::new(e).context(format!("{name}:{n}: read error")))
        }
        Err(Stop::Gone) => return,
    };
    // Fails only if the modeling thread has stopped, whose error then is replay's.
    let _ = pool.full.send(batch);
}

/// The modeling thread: name and model each batch in order, as the single-threaded path does
/// when a batch fills, an aggregate record comes, or reading stops.
pub(crate) fn model_batches(
    ns: &mut Namespace,
    name: &str,
    stats: &mut StreamStats,
    full: impl IntoIterator<Item = Batch>,
    mut recycle: impl FnMut(Batch),
) -> anyhow::Result<()> {
    for mut b in full {
        for ev in b.pending.events_mut() {
            stats.name(ev);
        }
        stats.log_records += std::mem::take(&mut b.logs);
        let modeled = b.pending.model(ns, name, stats);
        match std::mem::replace(&mut b.end, End::More) {
            // The line's error, as `read.and(modeled)` there.
            End::Error(e) => return Err(e),
            End::More => modeled?,
            End::Aggregate(n, a) => {
                modeled?;
                // As in the single-threaded path: an export replayed against a model repeats
                // the aggregate the model set.
                if a != ns.aggregate() {
                    ns.set_aggregate(a)
                        .map_err(|e| anyhow::anyhow!("{name}:{n}: aggregate record: {e}"))?;
                }
            }
        }
        recycle(b);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::replay::model_stream_with;
    use tsem_core::event::Event;
    use tsem_core::hash::HashAlg;
    use tsem_core::map::Mapping;
    use tsem_core::namespace::Config;
    use tsem_format::{RecordKind, write_event};

    /// What a replay leaves behind, everything its output is made of: the error (message and
    /// chain), counts, state, measurement, kept descriptions, spilled forensics in order.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        error: Option<String>,
        events: u64,
        points: usize,
        forensics: (u64, usize),
        state: Digest,
        measurement: Digest,
        aggregate: Digest,
        kept: (Vec<Event>, Vec<Event>),
        spilled: Vec<Event>,
        logs: u64,
    }

    /// Replay `text` (through a reader of `buf` bytes) on `threads`: into a namespace keeping
    /// descriptions, or sealed (every event forensic) with descriptions spilled.
    fn replay(text: &[u8], buf: usize, threads: u8, keep: bool) -> Outcome {
        let mut ns = Namespace::new(Config {
            alg: HashAlg::Sha256,
            mapping: Mapping::Model0,
            keep_descriptions: keep,
        })
        .unwrap();
        let mut stats = StreamStats::default();
        if !keep {
            ns.seal();
            stats.spill = Some(crate::spill::Spill::new().unwrap());
        }
        let mut input = std::io::BufReader::with_capacity(buf, text);
        let r = crate::replay::model_stream_threads(
            &mut ns,
            "t",
            &mut input,
            &mut stats,
            Strictness::Kernel,
            threads,
        );
        let mut spilled = Vec::new();
        if let Some(s) = stats.spill.take() {
            s.for_each(|ev| {
                spilled.push(ev);
                Ok(())
            })
            .unwrap();
        }
        Outcome {
            error: r.err().map(|e| format!("{e:#}")),
            events: ns.events(),
            points: ns.points().len(),
            forensics: (ns.forensics_events(), ns.forensics_points()),
            state: ns.state(),
            measurement: ns.measurement(),
            aggregate: ns.aggregate(),
            kept: (ns.trajectory().to_vec(), ns.forensics().to_vec()),
            spilled,
            logs: stats.log_records,
        }
    }

    /// `n` synthetic event lines (with repeats), a blank line now and then.
    fn lines(n: usize) -> Vec<Vec<u8>> {
        crate::bench::synthetic_events(n, 5)
            .iter()
            .map(|ev| {
                let mut l = Vec::new();
                write_event(&mut l, ev, RecordKind::Trajectory);
                l
            })
            .collect()
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| [&l[..], b"\n"].concat())
            .collect()
    }

    fn same_both_ways(text: &[u8]) -> Outcome {
        let one = replay(text, 1 << 16, 1, true);
        for (buf, keep) in [
            (1 << 16, true),
            (4096, true),
            (1 << 16, false),
            (977, false),
        ] {
            let reference = if keep {
                &one
            } else {
                &replay(text, buf, 1, keep)
            };
            // 3 and 4: blocks of lines parsed on one and on two threads (`replay_par`).
            for threads in [2, 3, 4] {
                let other = replay(text, buf, threads, keep);
                assert_eq!(
                    &other, reference,
                    "buffer {buf}, keep {keep}, {threads} threads"
                );
            }
        }
        one
    }

    /// A cut line at the first line, around every batch boundary (64 events single-threaded, 256
    /// handed over when pipelined) and at the very last line: the pipelined replay models exactly
    /// the events before it, like the single-threaded one, and fails with its error naming it.
    #[test]
    fn a_bad_line_stops_both_paths_at_the_same_event() {
        let all = lines(300);
        let whole = same_both_ways(&join(&all));
        assert_eq!((whole.error, whole.events), (None, 300));
        for bad in [1, 2, 63, 64, 65, 127, 128, 129, 192, 193, 256, 299, 300] {
            let mut cut = all.clone();
            let l = &mut cut[bad - 1];
            l.truncate(l.len() / 2);
            let o = same_both_ways(&join(&cut));
            let err = o.error.unwrap();
            assert!(err.starts_with(&format!("t:{bad}: ")), "{err}");
            assert_eq!(o.events, bad as u64 - 1);
            // Without its newline the last line is still read and refused.
            if bad == 300 {
                let mut text = join(&cut);
                text.pop();
                let o = same_both_ways(&text);
                assert_eq!(o.events, 299);
                assert!(o.error.unwrap().starts_with("t:300: "));
            }
        }
    }

    /// Aggregate records, log records and blank lines between events: an aggregate is set once
    /// the events before it are modeled (a second, different one after events is refused with
    /// its line), logs are counted, blank lines skipped — the same on both paths.
    #[test]
    fn aggregate_log_and_blank_lines_in_order() {
        let all = lines(200);
        let agg = |hex: char| {
            format!(
                "{{\"export\": {{\"type\": \"aggregate\"}}, \"aggregate\": {{\"value\": \"{}\"}}}}",
                hex.to_string().repeat(64)
            )
            .into_bytes()
        };
        let log = br#"{"export": {"type": "log"}, "log": {"process": "p", "event": "file_open", "action": "DENY"}}"#.to_vec();
        // The aggregate first (allowed: nothing is modeled yet), a log and blanks among events.
        let mut text = vec![agg('a')];
        for (i, l) in all.iter().enumerate() {
            text.push(l.clone());
            if i % 50 == 7 {
                text.push(log.clone());
                text.push(b"   ".to_vec());
            }
        }
        let o = same_both_ways(&join(&text));
        assert_eq!(o.error, None);
        assert_eq!(o.aggregate, Digest::from_hex(&"a".repeat(64)).unwrap());
        assert_eq!((o.events, o.logs), (200, 4));
        // An aggregate after events: refused, at its line, after the 130 events before it.
        let mut late = join(&all[..130]);
        late.extend_from_slice(&join(&[agg('b')]));
        late.extend_from_slice(&join(&all[130..]));
        let o = same_both_ways(&late);
        assert_eq!(o.events, 130);
        assert!(o.error.unwrap().starts_with("t:131: aggregate record: "));
    }

    /// A read error (a line that is not whole when the input fails) stops both paths alike.
    #[test]
    fn a_read_error_names_its_line_on_both_paths() {
        struct Failing<'a>(&'a [u8]);
        impl std::io::Read for Failing<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("device gone"));
                }
                let n = out.len().min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text = join(&lines(100));
        let run = |threads| {
            let mut ns = Namespace::new(Config::default()).unwrap();
            let mut input = std::io::BufReader::with_capacity(4096, Failing(&text));
            let r = crate::replay::model_stream_threads(
                &mut ns,
                "t",
                &mut input,
                &mut StreamStats::default(),
                Strictness::Kernel,
                threads,
            );
            (format!("{:#}", r.unwrap_err()), ns.events(), ns.state())
        };
        let one = run(1);
        assert!(
            one.0.starts_with("t:101: read error: device gone"),
            "{}",
            one.0
        );
        for threads in [2, 3, 4] {
            assert_eq!(one, run(threads), "{threads} threads");
        }
        // model_stream_with is the single-threaded path itself.
        let mut ns = Namespace::new(Config::default()).unwrap();
        let r = model_stream_with(
            &mut ns,
            "t",
            &mut &text[..],
            &mut StreamStats::default(),
            Strictness::Kernel,
        );
        assert!(r.is_ok() && ns.events() == 100);
    }
}
