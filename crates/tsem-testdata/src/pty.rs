//! A null-modem cable between two pseudo-terminals: what one end's program writes to its tty
//! the other end's reads from its own, relayed by two threads between the masters. Tests can put
//! bytes on the line (noise) and flip one byte of the n-th frame of a kind (see
//! `tsem_tma::serial` for the frame layout) as it passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Flip one payload byte of the `nth` (1-based) frame of `kind` passing in one direction.
#[derive(Debug, Clone, Copy)]
pub struct Flip {
    /// The frame's kind byte.
    pub kind: u8,
    /// Which one of them (1 is the first).
    pub nth: usize,
}

struct Direction {
    /// The flip asked for, frames of its kind seen since, bytes still to pass before the flip.
    flip: Mutex<(Option<Flip>, usize, Option<usize>)>,
    flipped: AtomicBool,
}

/// The cable. Each end is a pseudo-terminal device path for a program to open.
pub struct NullModem {
    /// One end's device.
    pub a: PathBuf,
    /// The other end's device.
    pub b: PathBuf,
    masters: [Arc<File>; 2],
    dirs: [Arc<Direction>; 2],
}

fn pty() -> (File, PathBuf) {
    use rustix::pty::OpenptFlags;
    let m = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(&m).unwrap();
    rustix::pty::unlockpt(&m).unwrap();
    let path = rustix::pty::ptsname(&m, Vec::new()).unwrap();
    let path = PathBuf::from(path.to_string_lossy().into_owned());
    // Raw from the start, so that nothing is echoed or edited before a program configures it.
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .unwrap();
    let mut t = rustix::termios::tcgetattr(&slave).unwrap();
    t.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &t).unwrap();
    (File::from(m), path)
}

use std::os::unix::fs::OpenOptionsExt as _;

fn relay(from: Arc<File>, to: Arc<File>, d: Arc<Direction>) {
    let mut buf = [0u8; 4096];
    // The last five bytes passed (a frame's marker and kind).
    let mut window = [0u8; 5];
    loop {
        let n = match (&*from).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            // No program has this end open (EIO): a cable with nothing plugged in.
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
        };
        {
            let mut st = d.flip.lock().unwrap();
            let (flip, seen, countdown) = &mut *st;
            if let Some(f) = *flip {
                for b in &mut buf[..n] {
                    if let Some(c) = *countdown {
                        if c == 0 {
                            *b ^= 0x20;
                            d.flipped.store(true, Ordering::SeqCst);
                            *flip = None;
                            *countdown = None;
                            break;
                        }
                        *countdown = Some(c - 1);
                        continue;
                    }
                    window.rotate_left(1);
                    window[4] = *b;
                    if window == [0x7e, b'T', b'M', b'A', f.kind] {
                        *seen += 1;
                        if *seen == f.nth {
                            // Past the length and the header's checksum, ten bytes into the
                            // payload.
                            *countdown = Some(8 + 10);
                        }
                    }
                }
            }
        }
        // Bytes nobody reads are lost, as on a real line.
        let _ = (&*to).write_all(&buf[..n]);
    }
}

/// A pseudo-terminal whose far end nobody reads (a line that stops taking bytes once its
/// buffer is full): the master, to keep it open, and the device.
pub fn unplugged() -> (File, PathBuf) {
    pty()
}

impl NullModem {
    /// Two pseudo-terminals joined.
    pub fn new() -> Self {
        let (ma, a) = pty();
        let (mb, b) = pty();
        let masters = [Arc::new(ma), Arc::new(mb)];
        let dirs = [0, 1].map(|_| {
            Arc::new(Direction {
                flip: Mutex::new((None, 0, None)),
                flipped: AtomicBool::new(false),
            })
        });
        // dirs[0]: from a's program to b's; dirs[1]: back.
        for (i, (from, to)) in [(0, 1), (1, 0)].into_iter().enumerate() {
            let (f, t, d) = (masters[from].clone(), masters[to].clone(), dirs[i].clone());
            std::thread::spawn(move || relay(f, t, d));
        }
        Self {
            a,
            b,
            masters,
            dirs,
        }
    }

    /// Put `bytes` on the line towards `a`'s program (`to_a`) or `b`'s.
    pub fn inject(&self, to_a: bool, bytes: &[u8]) {
        (&*self.masters[if to_a { 0 } else { 1 }])
            .write_all(bytes)
            .unwrap();
    }

    /// Flip a byte of a frame travelling from `a` to `b` (`from_a`) or back.
    pub fn flip(&self, from_a: bool, f: Flip) {
        let d = &self.dirs[if from_a { 0 } else { 1 }];
        d.flipped.store(false, Ordering::SeqCst);
        *d.flip.lock().unwrap() = (Some(f), 0, None);
    }

    /// Whether the last flip asked for happened.
    pub fn flipped(&self, from_a: bool) -> bool {
        self.dirs[if from_a { 0 } else { 1 }]
            .flipped
            .load(Ordering::SeqCst)
    }
}

impl Default for NullModem {
    fn default() -> Self {
        Self::new()
    }
}
