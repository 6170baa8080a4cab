//! Replay with the parsing split over several threads: this thread cuts the input into blocks of
//! whole lines, `workers` threads parse blocks (block `k` on worker `k % workers`) into batches
//! of event slots, and a modeling thread takes the batches block by block, in input order, and
//! models them as the pipelined and single-threaded paths do (`replay_pipe::model_batches`). So
//! the output is theirs: naming, modeling, aggregates and spills run on one thread in line
//! order; a parse or read error ends the stream at its line, the events before it modeled.
//!
//! Blocks and batches are pooled and reused; a line is copied once, into its block.

use std::io::{BufRead, ErrorKind};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};

use tsem_core::namespace::Namespace;
use tsem_format::{Parsed, RecordParser, Strictness};

use crate::replay::{StreamStats, record_text};
use crate::replay_pipe::{Batch, End, PIPE_BATCH, model_batches};

/// Bytes of input per block (a few hundred lines): large enough that handing one over costs
/// little per line, small enough to be parsed from the L2 cache. Tests use blocks shorter than
/// a line, so that every block grows to take a whole line and most hold one or two.
const BLOCK: usize = if cfg!(test) { 700 } else { 1 << 18 };
/// Blocks queued per worker, and batches queued per worker for the modeling thread.
const DEPTH: usize = 2;

/// Whole lines of input, or the read error that stopped reading.
struct Block {
    bytes: Vec<u8>,
    /// Lines before the block's first.
    before: usize,
    /// Reading failed at this line (after the block's lines, if any).
    error: Option<(usize, std::io::Error)>,
}

/// A batch and whether it is its block's last.
struct Piece {
    batch: Batch,
    last: bool,
}

/// [`crate::replay::model_stream_with`] with `workers` parsing threads and a modeling thread;
/// same results and errors.
pub fn model_stream_parallel(
    ns: &mut Namespace,
    name: &str,
    input: &mut dyn BufRead,
    stats: &mut StreamStats,
    strictness: Strictness,
    workers: usize,
) -> anyhow::Result<()> {
    let workers = workers.max(1);
    let (spent_tx, spent) = channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let mut blocks = Vec::new();
        let mut pieces = Vec::new();
        let mut empties = Vec::new();
        let mut parsers = Vec::new();
        for w in 0..workers {
            let (block_tx, block_rx) = sync_channel::<Block>(DEPTH);
            let (piece_tx, piece_rx) = sync_channel::<Piece>(DEPTH);
            let (empty_tx, empty_rx) = channel::<Batch>();
            let spent_tx = spent_tx.clone();
            parsers.push(
                std::thread::Builder::new()
                    .name(format!("tsem-replay-parse-{w}"))
                    .spawn_scoped(s, move || {
                        parse_blocks(name, strictness, block_rx, piece_tx, empty_rx, spent_tx)
                    })?,
            );
            blocks.push(block_tx);
            pieces.push(piece_rx);
            empties.push(empty_tx);
        }
        drop(spent_tx);
        let modeler = std::thread::Builder::new()
            .name("tsem-replay-model".into())
            .spawn_scoped(s, move || {
                let from = std::cell::Cell::new(0);
                let mut order = InOrder { pieces, at: 0 };
                let batches = std::iter::from_fn(|| {
                    let (w, b) = order.next()?;
                    from.set(w);
                    Some(b)
                });
                model_batches(ns, name, stats, batches, |b| {
                    // Back to the worker it came from; one that has stopped drops it.
                    if let Some(tx) = empties.get(from.get()) {
                        let _ = tx.send(b);
                    }
                })
            })?;
        split(input, &blocks, &spent);
        // Closing the block queues ends the parsers, whose closing ends the modeling thread.
        drop(blocks);
        // A parser that panicked closed its queue early: the modeling thread took that for the
        // end of the input, so its result must not be believed.
        let mut parsed = true;
        for p in parsers {
            // Every parser is joined, whatever an earlier one did.
            parsed &= p.join().is_ok();
        }
        let modeled = modeler
            .join()
            .map_err(|_| anyhow::anyhow!("{name}: the modeling thread panicked"))?;
        anyhow::ensure!(parsed, "{name}: a parsing thread panicked");
        modeled
    })
}

/// Batches in input order: worker `at`'s until its block's last, then the next worker's.
struct InOrder {
    pieces: Vec<Receiver<Piece>>,
    at: usize,
}

impl InOrder {
    /// The next batch and the worker it came from.
    fn next(&mut self) -> Option<(usize, Batch)> {
        let w = self.at;
        let p = self.pieces.get(w)?.recv().ok()?;
        if p.last {
            self.at = (w + 1) % self.pieces.len();
        }
        Some((w, p.batch))
    }
}

/// Cut `input` into blocks of whole lines for the workers, round robin, each with the number of
/// lines before it; a read error goes, in order, as a block of its own.
fn split(input: &mut dyn BufRead, blocks: &[SyncSender<Block>], spent: &Receiver<Vec<u8>>) {
    let mut made = 0usize;
    let mut fresh = || match spent.try_recv() {
        Ok(mut v) => {
            v.clear();
            Some(v)
        }
        Err(TryRecvError::Empty) if made < blocks.len() * (DEPTH + 2) + 2 => {
            made += 1;
            Some(Vec::with_capacity(BLOCK + 4096))
        }
        Err(TryRecvError::Empty) => spent.recv().ok().map(|mut v| {
            v.clear();
            v
        }),
        Err(TryRecvError::Disconnected) => None,
    };
    let (mut lines, mut k) = (0usize, 0usize);
    let Some(mut cur) = fresh() else { return };
    let mut size = BLOCK;
    loop {
        // Fill the block to its size or the end of the input.
        let mut error = None;
        let mut eof = false;
        while cur.len() < size {
            let buf = match input.fill_buf() {
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
            let n = buf.len().min(size - cur.len()).max(1);
            cur.extend_from_slice(&buf[..n]);
            input.consume(n);
        }
        // The block ends after its last newline, or holds everything that is left at the end;
        // a line longer than a block makes the block grow.
        let cut = if eof || error.is_some() {
            match error {
                // The bytes after the last newline are the line being read when reading failed.
                Some(_) => cur.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
                None => cur.len(),
            }
        } else {
            match cur.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => {
                    size += BLOCK;
                    continue;
                }
            }
        };
        size = BLOCK;
        let Some(mut next) = fresh() else { return };
        next.extend_from_slice(&cur[cut..]);
        cur.truncate(cut);
        let here = lines;
        lines += cur.iter().filter(|&&b| b == b'\n').count();
        let error = error.map(|e| (lines + 1, e));
        let last = eof || error.is_some();
        let block = Block {
            bytes: std::mem::replace(&mut cur, next),
            before: here,
            error,
        };
        let Some(tx) = blocks.get(k % blocks.len()) else {
            return;
        };
        if tx.send(block).is_err() || last {
            return;
        }
        k += 1;
    }
}

/// A parsing thread: every block it is given, parsed into batches handed to the modeling
/// thread, the block's last batch marked; stops after a block that ends in an error.
fn parse_blocks(
    name: &str,
    strictness: Strictness,
    blocks: Receiver<Block>,
    pieces: SyncSender<Piece>,
    empty: Receiver<Batch>,
    spent: Sender<Vec<u8>>,
) {
    let mut parser = RecordParser::with_strictness(strictness);
    let mut scratch = Vec::new();
    let mut made = 0usize;
    let mut take = || match empty.try_recv() {
        Ok(b) => Some(b),
        Err(TryRecvError::Empty) if made < DEPTH + 2 => {
            made += 1;
            Some(Batch::new())
        }
        Err(TryRecvError::Empty) => empty.recv().ok(),
        Err(TryRecvError::Disconnected) => None,
    };
    for block in blocks {
        let Some(mut batch) = take() else { return };
        let mut input = &block.bytes[..];
        let read = tsem_format::lines::for_each_line(&mut input, &mut scratch, |n, line| {
            let n = block.before + n;
            let Some(text) = record_text(line) else {
                return Ok(());
            };
            let parsed = parser
                .parse_into(text, batch.pending.slot())
                .map_err(|e| Stop::Line(anyhow::anyhow!("{name}:{n}: {e}")))?;
            let full = match parsed {
                Parsed::Event(_) => {
                    batch.pending.commit(n);
                    batch.pending.len == PIPE_BATCH
                }
                Parsed::Aggregate(a) => {
                    batch.end = End::Aggregate(n, a);
                    true
                }
                Parsed::Log(_) => {
                    batch.logs += 1;
                    false
                }
            };
            if full {
                let next = take().ok_or(Stop::Gone)?;
                let piece = Piece {
                    batch: std::mem::replace(&mut batch, next),
                    last: false,
                };
                pieces.send(piece).map_err(|_| Stop::Gone)?;
            }
            Ok(())
        });
        let stop = match read {
            Ok(()) => match block.error {
                Some((n, e)) => {
                    batch.end = End::Error(
                        anyhow::Error::new(e).context(format!("{name}:{n}: read error")),
                    );
                    true
                }
                None => false,
            },
            Err(Stop::Line(e)) => {
                batch.end = End::Error(e);
                true
            }
            // A block in memory cannot fail to be read.
            Err(Stop::Read) | Err(Stop::Gone) => return,
        };
        let _ = spent.send(block.bytes);
        if pieces.send(Piece { batch, last: true }).is_err() || stop {
            return;
        }
    }
}

/// Why a worker stopped parsing a block.
enum Stop {
    Line(anyhow::Error),
    Read,
    Gone,
}

impl From<(usize, tsem_format::lines::ReadError)> for Stop {
    fn from(_: (usize, tsem_format::lines::ReadError)) -> Self {
        Stop::Read
    }
}
