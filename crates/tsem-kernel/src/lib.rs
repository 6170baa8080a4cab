//! # tsem-kernel
//!
//! The TSEM kernel backend (spec §5): where `/sys/kernel/security/tsem` exists, tsem drives it
//! instead of modeling in userspace. [`SecurityFs`] writes the control commands (namespace
//! creation with `digest=`, `cache=`, `nsref=`; `base`, `state`, `pseudonym`; `seal`, `enforce`;
//! `trusted`/`untrusted`), loads model files as Quixote does, and reads the internal TMA's
//! files (`measurement`, `state`, `trajectory`, `forensics`, coefficients, counts). The
//! [`external`] module reads an external namespace's export pseudo-file and answers it as its
//! modeling agent. [`sim`] is a simulated securityfs for tests (no TSEM kernel exists here).
//!
//! The root is `/sys/kernel/security/tsem`, or `$TSEM_SECURITYFS` when set (tests point it at
//! the simulation).

// Every `unsafe` block says why it is sound (`// SAFETY:`).
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tsem_core::event::Event;
use tsem_core::hash::{Digest, HashAlg};
use tsem_format::model_file::{Line, ModelFile};

pub mod external;
pub mod launch;
pub mod sim;

/// The kernel's securityfs directory.
pub const DEFAULT_ROOT: &str = "/sys/kernel/security/tsem";
/// The environment variable that moves the root (tests, chroots).
pub const ROOT_ENV: &str = "TSEM_SECURITYFS";
/// Longest control write the kernel accepts, newline included (§5.2).
pub const MAX_CONTROL: usize = 127;

/// Errors of the kernel backend. Each names the securityfs file concerned.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A file could not be opened, read or written.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A control command longer than the kernel accepts.
    #[error("control command of {0} bytes; the kernel accepts at most {MAX_CONTROL}")]
    TooLong(usize),
    /// A file's content is not what §5.1 describes.
    #[error("{path}:{line}: {msg}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

type R<T> = Result<T, KernelError>;

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> KernelError + 'a {
    move |source| KernelError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// `nsref=` of a namespace-creation command: the user namespace the kernel translates the
/// events' uids and gids into (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsRef {
    /// The initial user namespace (the kernel's default).
    Initial,
    /// The creator's (`quixote -u`).
    Current,
}

/// The optional arguments of `internal`, `external` and `export`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsOptions {
    /// `nsref=`.
    pub nsref: Option<NsRef>,
    /// `digest=`: the namespace's hash function.
    pub digest: Option<HashAlg>,
    /// `cache=`: the magazine size.
    pub cache: Option<u32>,
}

/// A control command (§5.2, post-v4 spelling: no `key=`, trust answers by `pid` and `tnum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create an internally modeled namespace for the writer.
    Internal(NsOptions),
    /// Create an externally modeled namespace (the writer's parent is its modeling agent).
    External(NsOptions),
    /// Create an export-only namespace.
    Export(NsOptions),
    /// Seal the model.
    Seal,
    /// Enforce the model.
    Enforce,
    /// Load a valid point.
    State(Digest),
    /// Register a pseudonym.
    Pseudonym(Digest),
    /// Set the base.
    Base(Digest),
    /// Release a task waiting on an export.
    Trusted {
        /// The task's (global) pid.
        pid: u64,
        /// Its task number, as exported.
        tnum: u64,
    },
    /// Discipline a task waiting on an export.
    Untrusted {
        /// The task's pid.
        pid: u64,
        /// Its task number.
        tnum: u64,
    },
    /// Block further model registration (v4+).
    Lock,
}

impl Command {
    /// The line written to `control`, newline included.
    pub fn line(&self) -> String {
        let ns = |verb: &str, o: &NsOptions| {
            let mut s = verb.to_string();
            if let Some(r) = o.nsref {
                s.push_str(match r {
                    NsRef::Initial => " nsref=initial",
                    NsRef::Current => " nsref=current",
                });
            }
            if let Some(d) = o.digest {
                s.push_str(&format!(" digest={}", d.name()));
            }
            if let Some(c) = o.cache {
                s.push_str(&format!(" cache={c}"));
            }
            s
        };
        let mut s = match self {
            Command::Internal(o) => ns("internal", o),
            Command::External(o) => ns("external", o),
            Command::Export(o) => ns("export", o),
            Command::Seal => "seal".into(),
            Command::Enforce => "enforce".into(),
            Command::State(d) => format!("state value={}", d.to_hex()),
            Command::Pseudonym(d) => format!("pseudonym value={}", d.to_hex()),
            Command::Base(d) => format!("base value={}", d.to_hex()),
            Command::Trusted { pid, tnum } => format!("trusted pid={pid} tnum={tnum}"),
            Command::Untrusted { pid, tnum } => format!("untrusted pid={pid} tnum={tnum}"),
            Command::Lock => "lock".into(),
        };
        s.push('\n');
        s
    }
}

/// A TSEM securityfs directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityFs {
    root: PathBuf,
}

impl SecurityFs {
    /// The securityfs of this system, if TSEM is there: `$TSEM_SECURITYFS` when set, else
    /// [`DEFAULT_ROOT`]; None when that directory does not exist.
    pub fn locate() -> Option<Self> {
        let root = std::env::var_os(ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_ROOT), PathBuf::from);
        root.join("control").exists().then(|| Self::at(root))
    }

    /// The securityfs at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Write one command: its own open, one write at offset 0 (§5.2).
    pub fn command(&self, c: &Command) -> R<()> {
        let line = c.line();
        if line.len() > MAX_CONTROL {
            return Err(KernelError::TooLong(line.len()));
        }
        let p = self.path("control");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(io(&p, "open for writing"))?;
        f.write_all(line.as_bytes()).map_err(io(&p, "write"))
    }

    /// Load a model file as the kernel TMA takes it (§7.4): `base`, every `state`, every
    /// `pseudonym`, then `seal` if the file seals. The `aggregate` line is not sent: the
    /// kernel uses its own.
    pub fn load_model(&self, m: &ModelFile) -> R<()> {
        if let Some(b) = m.base() {
            self.command(&Command::Base(b))?;
        }
        let mut seal = false;
        for l in &m.lines {
            match l {
                Line::State(d) => self.command(&Command::State(*d))?,
                Line::Pseudonym(d) => self.command(&Command::Pseudonym(*d))?,
                Line::Seal => seal = true,
                _ => {}
            }
        }
        if seal {
            self.command(&Command::Seal)?;
        }
        Ok(())
    }

    fn read_bytes(&self, rel: &str) -> R<Vec<u8>> {
        let p = self.path(rel);
        std::fs::read(&p).map_err(io(&p, "read"))
    }

    /// A file of hex digests or numbers: text, or an error naming the line of the first byte
    /// that is not UTF-8 (never the bare "stream did not contain valid UTF-8").
    fn read(&self, rel: &str) -> R<String> {
        String::from_utf8(self.read_bytes(rel)?).map_err(|e| {
            let bytes = e.as_bytes();
            let at = e.utf8_error().valid_up_to();
            KernelError::Parse {
                path: self.path(rel),
                line: bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1,
                msg: format!("byte {at} is not UTF-8 (expected hex digests or numbers)"),
            }
        })
    }

    fn one_line(&self, rel: &str) -> R<String> {
        let text = self.read(rel)?;
        let line = text.lines().next().unwrap_or_default().trim().to_string();
        if line.is_empty() {
            return Err(KernelError::Parse {
                path: self.path(rel),
                line: 1,
                msg: "empty".into(),
            });
        }
        Ok(line)
    }

    fn digest_file(&self, rel: &str) -> R<Digest> {
        let line = self.one_line(rel)?;
        Digest::from_hex(&line).map_err(|e| KernelError::Parse {
            path: self.path(rel),
            line: 1,
            msg: format!("not a hex digest: {e:?}"),
        })
    }

    /// `id`: the namespace id (v3: the caller's; post-v4: the orchestrated one, §7.3).
    pub fn id(&self) -> R<u64> {
        let line = self.one_line("id")?;
        line.parse().map_err(|_| KernelError::Parse {
            path: self.path("id"),
            line: 1,
            msg: format!("not a namespace id: {line:?}"),
        })
    }

    /// The id of a namespace created after `before` was read: `id` is polled (every 200 µs,
    /// as Quixote does, §7.3) until it names another namespace, at most `wait`.
    pub fn new_id(&self, before: Option<u64>, wait: std::time::Duration) -> R<u64> {
        let end = std::time::Instant::now() + wait;
        loop {
            match self.id() {
                Ok(id) if Some(id) != before => return Ok(id),
                Ok(_) | Err(KernelError::Io { .. }) if std::time::Instant::now() < end => {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                Ok(id) => {
                    return Err(KernelError::Parse {
                        path: self.path("id"),
                        line: 1,
                        msg: format!(
                            "still {id} after {} s: the new namespace's id never appeared",
                            wait.as_secs()
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `aggregate`: the hardware aggregate.
    pub fn aggregate(&self) -> R<Digest> {
        self.digest_file("aggregate")
    }

    /// The internal TMA's `measurement`.
    pub fn measurement(&self) -> R<Digest> {
        self.digest_file("internal_tma/model0/measurement")
    }

    /// The internal TMA's `state`.
    pub fn state(&self) -> R<Digest> {
        self.digest_file("internal_tma/model0/state")
    }

    /// The descriptions in `trajectory` or `forensics`: the kernel prints a pathname's bytes as
    /// they are (docs/raw-bytes.md), so the file is read as bytes and each line parsed as such.
    fn events(&self, rel: &str) -> R<Vec<Event>> {
        let bytes = self.read_bytes(rel)?;
        let mut parser = tsem_format::RecordParser::new();
        let mut out = Vec::new();
        for (n, l) in record_lines(&bytes) {
            let ev = parser.parse_event(l).map_err(|e| KernelError::Parse {
                path: self.path(rel),
                line: n,
                msg: e.to_string(),
            })?;
            out.push(ev);
        }
        Ok(out)
    }

    /// The internal TMA's `trajectory`: the descriptions of the valid points.
    pub fn trajectory(&self) -> R<Vec<Event>> {
        self.events("internal_tma/model0/trajectory")
    }

    /// The internal TMA's `forensics`: the descriptions of the invalid points.
    pub fn forensics(&self) -> R<Vec<Event>> {
        self.events("internal_tma/model0/forensics")
    }

    /// `trajectory_coefficients` (valid points) or `forensics_coefficients`, in insertion
    /// order, with their `_counts`.
    pub fn points(&self, valid: bool) -> R<Vec<(Digest, u64)>> {
        let kind = if valid { "trajectory" } else { "forensics" };
        let cf = format!("internal_tma/model0/{kind}_coefficients");
        let nf = format!("internal_tma/model0/{kind}_counts");
        let coeffs = self.read(&cf)?;
        let counts = self.read(&nf)?;
        let mut out = Vec::new();
        let mut n = counts.lines();
        for (i, l) in coeffs.lines().enumerate() {
            let bad = |msg: String| KernelError::Parse {
                path: self.path(&cf),
                line: i + 1,
                msg,
            };
            let d = Digest::from_hex(l.trim()).map_err(|e| bad(format!("{e:?}")))?;
            let c = n
                .next()
                .and_then(|c| c.trim().parse().ok())
                .ok_or_else(|| KernelError::Parse {
                    path: self.path(&nf),
                    line: i + 1,
                    msg: "missing or malformed count".into(),
                })?;
            out.push((d, c));
        }
        Ok(out)
    }
}

/// The records of a file of kernel lines, with their 1-based line numbers: split on `\n`
/// (trailing `\r`s dropped), blank lines skipped, every other byte kept as it is, as
/// `tsem replay` reads them.
pub(crate) fn record_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| {
            let end = l.iter().rposition(|b| *b != b'\r').map_or(0, |e| e + 1);
            (i + 1, &l[..end])
        })
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_the_kernel_s() {
        let d = Digest::zero(32);
        let o = NsOptions {
            nsref: Some(NsRef::Current),
            digest: Some(HashAlg::Sha256),
            cache: Some(64),
        };
        assert_eq!(
            Command::Internal(o).line(),
            "internal nsref=current digest=sha256 cache=64\n"
        );
        assert_eq!(Command::External(NsOptions::default()).line(), "external\n");
        assert_eq!(
            Command::State(d).line(),
            format!("state value={}\n", "0".repeat(64))
        );
        assert_eq!(
            Command::Trusted { pid: 5, tnum: 9 }.line(),
            "trusted pid=5 tnum=9\n"
        );
        // The longest command tsem writes fits the kernel's limit even for 64-byte digests.
        let big = Command::Pseudonym(Digest::zero(64)).line();
        assert!(big.len() > MAX_CONTROL);
        let fs = SecurityFs::at("/nonexistent");
        assert!(matches!(
            fs.command(&Command::Pseudonym(Digest::zero(64))),
            Err(KernelError::TooLong(_))
        ));
    }

    #[test]
    fn kernel_files_are_bytes_and_a_bad_hex_file_names_its_line() {
        let root = std::env::temp_dir().join(format!("tsem-kernel-lib-{}", std::process::id()));
        let model0 = root.join("internal_tma/model0");
        std::fs::create_dir_all(&model0).unwrap();
        let fs = SecurityFs::at(&root);
        let lines = [
            tsem_testdata::raw_kernel::file_open_line(b"a\tb", b"/tmp/\xff\x1b"),
            tsem_testdata::raw_kernel::file_open_line(b"cat", b"/x"),
        ];
        // CRLF and blank lines as `tsem replay` takes them; the line numbers are the file's.
        let text = [lines[0].as_slice(), b"\r\n\n", &lines[1], b"\n"].concat();
        std::fs::write(model0.join("forensics"), &text).unwrap();
        let got = fs.forensics().unwrap();
        assert_eq!(got.len(), 2);
        let path = |e: &Event| e.file().map(|f| f.path.pathname.as_bytes().to_vec());
        assert_eq!(path(&got[0]).as_deref(), Some(&b"/tmp/\xff\x1b"[..]));
        std::fs::write(model0.join("trajectory"), b"\n{\"event\": \xff}\n").unwrap();
        let e = fs.trajectory().unwrap_err().to_string();
        assert!(e.contains("model0/trajectory:2: "), "{e}");
        std::fs::write(model0.join("state"), b"\xff\n").unwrap();
        let e = fs.state().unwrap_err().to_string();
        assert!(
            e.ends_with("model0/state:1: byte 0 is not UTF-8 (expected hex digests or numbers)"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
