//! Replay on several threads by ordered completion. Every thread does the same thing: it takes
//! the next block of whole lines from the input (under the input's lock, so blocks are numbered
//! in input order), parses it into batches of event slots, hands the parsed block in, and then,
//! if no other thread is modeling, names and models every parsed block that is next in input
//! order before it goes back to parsing. So parsing (the larger half of replay's work) runs on
//! every thread at once, and the work of the modeling half moves to whichever thread is free,
//! instead of one thread parsing while another waits for it.
//!
//! Everything replay prints — state, counts, forensic order, the first error by line, with
//! exactly the events before it modeled — is the single-threaded path's
//! (`replay::model_stream_with`): every step that depends on order (naming rules, modeling, an
//! aggregate record, the spill of forensic descriptions) runs under one lock, block after block
//! in input order, and a parse or read error ends the stream at its line.
//!
//! Memory is bounded: a fixed pool of blocks circulates (a thread that finds none free waits for
//! the modeling to return one), each line is copied once, into its block, and parsed into a slot
//! that held an earlier event, so nothing is allocated per event.

use std::io::{BufRead, ErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};

use tsem_core::hash::Digest;
use tsem_core::namespace::Namespace;
use tsem_format::{Parsed, RecordParser, Strictness};

use crate::replay::{Pending, REPLAY_BATCH, StreamStats, record_text};

/// Bytes of input per block (~85 kernel lines): large enough that taking one costs little per
/// line, small enough that its events' slots stay in the L2 cache between the parse and the
/// modeling. Tests use blocks shorter than a line, so that every block grows to take a whole
/// line and most hold one or two.
const BLOCK: usize = if cfg!(test) { 700 } else { 1 << 16 };
/// Events per batch handed to the core: four of the single-threaded path's batches.
const BATCH: usize = 4 * REPLAY_BATCH;
/// Blocks per thread in circulation: one being parsed, the rest parsed and waiting for their
/// turn to be modeled while another thread's earlier block is still being parsed.
const PER_THREAD: usize = 3;

/// What ended a batch.
pub(crate) enum End {
    /// It is full (or its block ended): go on.
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
    fn new() -> Self {
        Batch {
            pending: Pending::default(),
            logs: 0,
            end: End::More,
        }
    }

    /// Empty again, its slots kept to be parsed into.
    fn reset(&mut self) {
        self.pending.len = 0;
        self.logs = 0;
        self.end = End::More;
    }
}

/// A block of whole lines and, once parsed, its batches.
struct Work {
    bytes: Vec<u8>,
    /// Its place in the input: blocks are modeled in this order.
    seq: usize,
    /// Lines before the block's first.
    before: usize,
    /// Reading failed at this line (after the block's lines, if any).
    error: Option<(usize, std::io::Error)>,
    batches: Vec<Batch>,
    /// Batches of `batches` that hold this block's events.
    used: usize,
}

impl Work {
    fn new() -> Self {
        Work {
            bytes: Vec::with_capacity(BLOCK + 4096),
            seq: 0,
            before: 0,
            error: None,
            batches: Vec::new(),
            used: 0,
        }
    }
}

/// The input and where reading stands; only the thread holding its lock reads.
struct Input<'a> {
    reader: &'a mut (dyn BufRead + Send),
    /// The bytes after the last block's last newline: the start of the next block.
    carry: Vec<u8>,
    lines: usize,
    /// Blocks taken so far (the next block's number).
    seq: usize,
    /// The input ended, failed, or a line did not parse: no more blocks.
    done: bool,
}

/// Parsed blocks waiting for their turn, and the pool of free ones.
struct Ring {
    /// Parsed block `seq` at `seq % slots.len()`; at most `slots.len()` blocks exist, all at or
    /// after `next`, so they never collide.
    slots: Vec<Option<Work>>,
    /// The block to model next.
    next: usize,
    free: Vec<Work>,
    made: usize,
}

/// The modeling side, held by whichever thread models.
struct Modeler<'a> {
    ns: &'a mut Namespace,
    stats: &'a mut StreamStats,
    /// The first error, which ends the stream.
    result: anyhow::Result<()>,
}

struct Shared<'a> {
    name: &'a str,
    input: Mutex<Input<'a>>,
    ring: Mutex<Ring>,
    /// A block was returned to the pool, or the stream stopped.
    freed: Condvar,
    model: Mutex<Modeler<'a>>,
    /// Modeling failed (or a thread panicked): nothing more is read, parsed or modeled.
    stop: AtomicBool,
    panicked: AtomicBool,
}

/// A lock whose holder panicked is still taken: the `panicked` flag already says the result
/// cannot be believed, and the other threads must be able to wind down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`crate::replay::model_stream_with`] on `threads` threads, all parsing and taking turns at
/// modeling; same results and errors.
pub fn model_stream_parallel(
    ns: &mut Namespace,
    name: &str,
    input: &mut (dyn BufRead + Send),
    stats: &mut StreamStats,
    strictness: Strictness,
    threads: usize,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let pool = PER_THREAD * threads;
    let sh = Shared {
        name,
        input: Mutex::new(Input {
            reader: input,
            carry: Vec::new(),
            lines: 0,
            seq: 0,
            done: false,
        }),
        ring: Mutex::new(Ring {
            slots: (0..pool).map(|_| None).collect(),
            next: 0,
            free: Vec::new(),
            made: 0,
        }),
        freed: Condvar::new(),
        model: Mutex::new(Modeler {
            ns,
            stats,
            result: Ok(()),
        }),
        stop: AtomicBool::new(false),
        panicked: AtomicBool::new(false),
    };
    let spawned = std::thread::scope(|s| -> std::io::Result<bool> {
        let mut others = Vec::new();
        for t in 1..threads {
            let sh = &sh;
            let spawned = std::thread::Builder::new()
                .name(format!("tsem-replay-{t}"))
                .spawn_scoped(s, move || sh.work(strictness));
            match spawned {
                Ok(h) => others.push(h),
                Err(e) => {
                    // The threads already started stop at their next block.
                    sh.halt();
                    return Err(e);
                }
            }
        }
        sh.work(strictness);
        // Every thread is joined, whatever an earlier one did; a panic was flagged by its guard.
        let mut joined = true;
        for h in others {
            joined &= h.join().is_ok();
        }
        Ok(joined)
    })?;
    anyhow::ensure!(
        spawned && !sh.panicked.load(Ordering::SeqCst),
        "{name}: a replay thread panicked"
    );
    // A block handed in after the last modeling turn ended is modeled now.
    sh.model_ready();
    let taken = lock(&sh.input).seq;
    let stopped = sh.stop.load(Ordering::SeqCst);
    let next = lock(&sh.ring).next;
    let result = sh
        .model
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .result;
    // Fail closed: without an error, every block read must have been modeled.
    anyhow::ensure!(
        result.is_err() || stopped || next == taken,
        "{name}: {} of {taken} blocks of lines were not modeled",
        taken.saturating_sub(next)
    );
    result
}

/// Why a thread stopped parsing a block.
enum Stop {
    Line(anyhow::Error),
    Read,
}

impl From<(usize, tsem_format::lines::ReadError)> for Stop {
    fn from(_: (usize, tsem_format::lines::ReadError)) -> Self {
        Stop::Read
    }
}

/// Flags a panic of its thread so that the others stop and the result is refused.
struct PanicGuard<'s, 'a>(&'s Shared<'a>);

impl Drop for PanicGuard<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.panicked.store(true, Ordering::SeqCst);
            self.0.halt();
        }
    }
}

impl Shared<'_> {
    /// One thread's part: take a block, parse it, hand it in, model what is ready; until the
    /// input is done or the stream stopped.
    fn work(&self, strictness: Strictness) {
        let _guard = PanicGuard(self);
        let mut parser = RecordParser::with_strictness(strictness);
        let mut scratch = Vec::new();
        while let Some(mut w) = self.take_free() {
            if !self.read_block(&mut w) {
                self.give_back(w);
                return;
            }
            if !self.parse(&mut w, &mut parser, &mut scratch) {
                // No block after this one will be modeled.
                lock(&self.input).done = true;
            }
            self.hand_in(w);
            self.model_ready();
        }
    }

    /// Stop everything: no more reading, parsing or modeling; wake the threads waiting for a
    /// free block.
    fn halt(&self) {
        let _ring = lock(&self.ring);
        self.stop.store(true, Ordering::SeqCst);
        self.freed.notify_all();
    }

    /// A free block, or `None` once the stream has stopped.
    fn take_free(&self) -> Option<Work> {
        let mut ring = lock(&self.ring);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(w) = ring.free.pop() {
                return Some(w);
            }
            if ring.made < ring.slots.len() {
                ring.made += 1;
                return Some(Work::new());
            }
            ring = self
                .freed
                .wait(ring)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, w: Work) {
        lock(&self.ring).free.push(w);
        self.freed.notify_one();
    }

    /// Fill `w` with the next block of whole lines and number it; `false` if there is none.
    /// The block ends after its last newline, or holds everything left at the end of the input;
    /// a line longer than a block makes the block grow. A read error ends the input: the block
    /// holds the whole lines before it and names the line that could not be read.
    fn read_block(&self, w: &mut Work) -> bool {
        let mut guard = lock(&self.input);
        let input = &mut *guard;
        if input.done || self.stop.load(Ordering::SeqCst) {
            return false;
        }
        w.bytes.clear();
        w.bytes.extend_from_slice(&input.carry);
        input.carry.clear();
        w.error = None;
        let mut size = BLOCK;
        let cut = loop {
            let mut error = None;
            let mut eof = false;
            while w.bytes.len() < size {
                let buf = match input.reader.fill_buf() {
                    Ok(b) => b,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                };
                if buf.is_empty() {
                    eof = true;
                    break;
                }
                let n = buf.len().min(size - w.bytes.len());
                w.bytes.extend_from_slice(&buf[..n]);
                input.reader.consume(n);
            }
            let after_newline = memchr::memrchr(b'\n', &w.bytes).map(|i| i + 1);
            if let Some(e) = error {
                input.done = true;
                // The bytes after the last newline are the line being read when reading failed.
                let cut = after_newline.unwrap_or(0);
                let lines = input.lines + memchr::memchr_iter(b'\n', &w.bytes[..cut]).count();
                w.error = Some((lines + 1, e));
                break cut;
            }
            if eof {
                input.done = true;
                if w.bytes.is_empty() {
                    return false;
                }
                break w.bytes.len();
            }
            match after_newline {
                Some(cut) => break cut,
                None => size += BLOCK,
            }
        };
        input.carry.extend_from_slice(&w.bytes[cut..]);
        w.bytes.truncate(cut);
        w.before = input.lines;
        input.lines += memchr::memchr_iter(b'\n', &w.bytes).count();
        w.seq = input.seq;
        input.seq += 1;
        true
    }

    /// Parse `w`'s lines into its batches; a line that does not parse ends the block (and the
    /// stream) with its error, as does the read error after the block's lines. `false` if the
    /// block ends the stream so.
    fn parse(&self, w: &mut Work, parser: &mut RecordParser, scratch: &mut Vec<u8>) -> bool {
        let name = self.name;
        let before = w.before;
        let batches = &mut w.batches;
        let mut cur = 0;
        fresh(batches, cur);
        let mut input = &w.bytes[..];
        let read = tsem_format::lines::for_each_line(&mut input, scratch, |n, line| {
            let n = before + n;
            let Some(text) = record_text(line) else {
                return Ok(());
            };
            let Some(b) = batches.get_mut(cur) else {
                return Err(Stop::Read);
            };
            let parsed = parser
                .parse_into(text, b.pending.slot())
                .map_err(|e| Stop::Line(anyhow::anyhow!("{name}:{n}: {e}")))?;
            let full = match parsed {
                Parsed::Event(_) => {
                    b.pending.commit(n);
                    b.pending.len == BATCH
                }
                Parsed::Aggregate(a) => {
                    b.end = End::Aggregate(n, a);
                    true
                }
                Parsed::Log(_) => {
                    b.logs += 1;
                    false
                }
            };
            if full {
                cur += 1;
                fresh(batches, cur);
            }
            Ok(())
        });
        let end = match read {
            Ok(()) => w
                .error
                .take()
                .map(|(n, e)| anyhow::Error::new(e).context(format!("{name}:{n}: read error"))),
            Err(Stop::Line(e)) => Some(e),
            // A block in memory cannot fail to be read, and its batch is always there.
            Err(Stop::Read) => Some(anyhow::anyhow!("{name}: replay lost its place in a block")),
        };
        w.used = cur + 1;
        let Some(e) = end else { return true };
        if let Some(b) = batches.get_mut(cur) {
            b.end = End::Error(e);
        }
        false
    }

    /// A parsed block joins the ring.
    fn hand_in(&self, w: Work) {
        let mut ring = lock(&self.ring);
        let at = w.seq % ring.slots.len();
        if let Some(slot) = ring.slots.get_mut(at) {
            *slot = Some(w);
        }
    }

    /// Whether the block to model next has been handed in.
    fn ready(&self) -> bool {
        let ring = lock(&self.ring);
        let at = ring.next % ring.slots.len();
        matches!(ring.slots.get(at), Some(Some(w)) if w.seq == ring.next)
    }

    /// Take the block to model next out of the ring, if it has been handed in.
    fn take_ready(&self) -> Option<Work> {
        let mut ring = lock(&self.ring);
        let next = ring.next;
        let at = next % ring.slots.len();
        ring.slots.get_mut(at)?.take_if(|w| w.seq == next)
    }

    /// Unless another thread is modeling: model every block that is next in order and ready.
    /// A block handed in while this thread held the modeling lock (its thread found the lock
    /// taken and went on) is seen by the check after the lock is let go.
    fn model_ready(&self) {
        loop {
            let mut m = match self.model.try_lock() {
                Ok(m) => m,
                Err(TryLockError::WouldBlock) => return,
                // A panic while modeling: its guard has stopped the stream.
                Err(TryLockError::Poisoned(_)) => return,
            };
            while let Some(mut w) = self.take_ready() {
                if m.result.is_ok() && !self.stop.load(Ordering::SeqCst) {
                    let m = &mut *m;
                    let used = w.used.min(w.batches.len());
                    let r = model_batches(
                        m.ns,
                        self.name,
                        m.stats,
                        w.batches.get_mut(..used).unwrap_or(&mut []),
                    );
                    if r.is_err() {
                        m.result = r;
                        self.halt();
                    }
                }
                let mut ring = lock(&self.ring);
                ring.next += 1;
                ring.free.push(w);
                drop(ring);
                self.freed.notify_one();
            }
            drop(m);
            if !self.ready() {
                return;
            }
        }
    }
}

/// Batch `i` of `batches`, made if need be, emptied.
fn fresh(batches: &mut Vec<Batch>, i: usize) {
    while batches.len() <= i {
        batches.push(Batch::new());
    }
    if let Some(b) = batches.get_mut(i) {
        b.reset();
    }
}

/// Name and model each batch in order, as the single-threaded path does when a batch fills, an
/// aggregate record comes, or reading stops.
fn model_batches(
    ns: &mut Namespace,
    name: &str,
    stats: &mut StreamStats,
    batches: &mut [Batch],
) -> anyhow::Result<()> {
    for b in batches {
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
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "replay_par_tests.rs"]
mod tests;
