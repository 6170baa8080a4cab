//! File digests kept across runs, and the sensor's guard around them.
//!
//! The kernel TSEM hashes a file once and keeps the digest in the inode's security blob until the
//! file changes; a userspace sensor that starts afresh every run would hash every executable and
//! library of the workload again (gcc's `cc1` alone is 33 MB). The store keeps digests keyed by
//! (device, inode, ctime, mtime, size) in one file per user, so a later run reuses them.
//!
//! # Warning
//! Whoever can write the store can make a changed file pass as its old contents. So:
//! - the store and its directory must belong to the supervising user and be writable by nobody
//!   else (checked when it is opened, [`StoreError::Insecure`]);
//! - the workload never gets at it: the supervisor refuses (EPERM, counted in `protected`) any
//!   open of the store, any entry operation inside its directory, any change of the directory's
//!   attributes, and any rename or removal of the directory or one of its ancestors (which would
//!   let the workload put another store in its place), in every mode, learning included;
//! - files changed in the last two seconds are not persisted: their ctime may not have moved yet
//!   when a write in the same clock tick follows the hash.
//!
//! Users and processes outside the workload that run as the same user are trusted, as they can
//! already change the model files and the `tsem` binary.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tsem_core::{Digest, HashAlg};

/// What a cached digest is valid for: any change of contents changes ctime (and mtime/size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigestKey {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Change time (seconds, nanoseconds); userspace cannot set it.
    pub ctime: (i64, i64),
    /// Modification time.
    pub mtime: (i64, i64),
    /// Size in bytes.
    pub size: i64,
}

impl DigestKey {
    /// The key of the file `st` describes.
    pub fn of(st: &libc::stat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
            ctime: (st.st_ctime, st.st_ctime_nsec),
            mtime: (st.st_mtime, st.st_mtime_nsec),
            size: st.st_size,
        }
    }
}

/// Digests by what they are valid for.
pub type DigestMap = HashMap<DigestKey, Digest, foldhash::fast::RandomState>;

/// Digests shared by the notification and tracer threads of one run.
pub type DigestCache = Arc<Mutex<DigestMap>>;

/// Errors opening or writing a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory could not be created or inspected.
    #[error("digest cache {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The store or its directory can be changed by someone other than the supervising user.
    #[error("digest cache {path}: {why}; refusing to trust it")]
    Insecure {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Inodes the workload must not touch, so it cannot forge the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    /// The store file as it is during the run.
    pub file: Option<(u64, u64)>,
    /// Its directory: no entry may be created, removed or renamed in it.
    pub dir: Option<(u64, u64)>,
    /// The directory and every ancestor up to `/`: none may be renamed, removed or replaced.
    pub chain: Vec<(u64, u64)>,
}

impl Protected {
    /// Whether the object `st` may not be opened or have its attributes changed.
    pub fn object(&self, st: &libc::stat) -> bool {
        let id = (st.st_dev, st.st_ino);
        self.file == Some(id) || self.dir == Some(id)
    }

    /// Whether entries of the directory `st` may not be created, removed or renamed.
    pub fn directory(&self, st: &libc::stat) -> bool {
        self.dir == Some((st.st_dev, st.st_ino))
    }

    /// Whether the entry `st` may not be removed, renamed or replaced.
    pub fn entry(&self, st: &libc::stat) -> bool {
        let id = (st.st_dev, st.st_ino);
        self.file == Some(id) || self.chain.contains(&id)
    }
}

/// A digest store on disk, checked and guarded, and the run's digest cache it fills.
///
/// The file's digests are read straight into the run's cache ([`Store::cache`]), which the
/// describers share and only ever add to; a save writes the file only if the run added some.
/// Reading is start-up time of every run: one map, no copy (a parse per line into a `Vec`, then
/// a copy of the map for the run and another at its end, cost ~2.5 ms of a 5 ms `tsem run --
/// /bin/true` with 2 400 files stored).
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    alg: HashAlg,
    /// How many digests the file held at open.
    loaded: usize,
    /// The run's digests: the file's and the run's own.
    cache: DigestCache,
    /// What the supervisor keeps the workload away from.
    pub protected: Protected,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_owner(path: &Path, m: &std::fs::Metadata) -> Result<(), StoreError> {
    let me = crate::sys::geteuid();
    if m.uid() != me {
        return Err(StoreError::Insecure {
            path: path.to_path_buf(),
            why: format!("owned by uid {}, not {me}", m.uid()),
        });
    }
    if m.mode() & 0o022 != 0 {
        return Err(StoreError::Insecure {
            path: path.to_path_buf(),
            why: format!("writable by group or others (mode {:o})", m.mode() & 0o7777),
        });
    }
    Ok(())
}

/// The default store for `alg`: `$XDG_CACHE_HOME/tsem/digests-ALG`, else
/// `$HOME/.cache/tsem/digests-ALG`; `None` without either.
pub fn default_path(alg: HashAlg) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("tsem").join(format!("digests-{}", alg.name())))
}

/// Where the store goes when [`default_path`] cannot be used (no `HOME`, or one that is not the
/// user's): `$XDG_RUNTIME_DIR/tsem/digests-ALG`, then `/var/tmp/tsem-EUID/digests-ALG`. Each is
/// checked by [`Store::open`] like any store, so a directory someone else made is refused.
pub fn fallback_paths(alg: HashAlg) -> Vec<PathBuf> {
    let file = format!("digests-{}", alg.name());
    let me = crate::sys::geteuid();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|d| PathBuf::from(d).join("tsem").join(&file));
    runtime
        .into_iter()
        .chain([PathBuf::from(format!("/var/tmp/tsem-{me}")).join(&file)])
        .collect()
}

impl Store {
    /// Open (creating its directory, mode 0700) the store at `path` for `alg`, check who can
    /// change it, read it, and collect the inodes to guard. Malformed lines and entries of other
    /// hash functions are skipped: a damaged store only costs hashing again.
    pub fn open(path: &Path, alg: HashAlg) -> Result<Self, StoreError> {
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().map_err(io(path))?.join(path)
        };
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        let dm = std::fs::metadata(&dir).map_err(io(&dir))?;
        check_owner(&dir, &dm)?;
        let mut protected = Protected {
            file: None,
            dir: Some((dm.dev(), dm.ino())),
            chain: Vec::new(),
        };
        let mut cur = Some(dir.as_path());
        while let Some(d) = cur {
            let m = std::fs::metadata(d).map_err(io(d))?;
            protected.chain.push((m.dev(), m.ino()));
            cur = d.parent();
        }
        let text = match std::fs::symlink_metadata(&path) {
            Ok(m) => {
                if !m.is_file() {
                    return Err(StoreError::Insecure {
                        path,
                        why: "not a regular file".into(),
                    });
                }
                check_owner(&path, &m)?;
                protected.file = Some((m.dev(), m.ino()));
                std::fs::read_to_string(&path).unwrap_or_default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        let entries = parse_entries(&text, alg);
        Ok(Self {
            path,
            alg,
            loaded: entries.len(),
            cache: Arc::new(Mutex::new(entries)),
            protected,
        })
    }

    /// The run's digest cache, holding the file's digests: shared by the describers, which
    /// only add to it.
    pub fn cache(&self) -> DigestCache {
        Arc::clone(&self.cache)
    }

    /// A copy of the run's digests.
    pub fn entries(&self) -> DigestMap {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The run's digests that `keep` accepts, or `None` if the run added none to the file's.
    fn added(&self, keep: &dyn Fn(&DigestKey) -> bool) -> Option<DigestMap> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Nothing is ever removed from the cache, so its size says whether anything was added.
        (cache.len() != self.loaded).then(|| {
            cache
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, d)| (*k, *d))
                .collect()
        })
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the run's digests that `keep` accepts back, merged with what other runs wrote
    /// meanwhile, atomically (mode 0600), if the run added any. Entries changed less than two
    /// seconds ago are left out.
    pub fn save(&self, keep: &dyn Fn(&DigestKey) -> bool) -> Result<(), StoreError> {
        let Some(cache) = self.added(keep) else {
            // Nothing new: leave the file (and the other runs' additions) alone.
            return Ok(());
        };
        let now = now_secs();
        let mut all = std::fs::read_to_string(&self.path)
            .map(|t| parse_entries(&t, self.alg))
            .unwrap_or_default();
        all.extend(cache.iter().map(|(k, d)| (*k, *d)));
        all.retain(|k, _| k.ctime.0 < now - 2);
        if all.len() > MAX_ENTRIES {
            // Keep what this run used; drop what others left.
            all.retain(|k, _| cache.contains_key(k));
        }
        let text = render_entries(&all, self.alg);
        self.replace_with(&text)
    }
}

impl Store {
    /// Write `text` as the store's new contents, atomically (a private temporary file, mode
    /// 0600, renamed over the store).
    fn replace_with(&self, text: &str) -> Result<(), StoreError> {
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(&self.path)(e)
        })
    }

    /// Replace the store with the run's digests that `keep` accepts, without reading the file
    /// back: for a run in which
    /// the kernel re-read a path the supervisor had decided on (a continued call of a task with
    /// other credentials, see `Counters::unfaithful`), so whatever the workload may have put
    /// in the file through such a call is dropped, not merged. Entries changed less than two
    /// seconds ago are left out, as in [`Store::save`].
    pub fn save_own(&self, keep: &dyn Fn(&DigestKey) -> bool) -> Result<(), StoreError> {
        let now = now_secs();
        let own: DigestMap = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| keep(k) && k.ctime.0 < now - 2)
            .map(|(k, d)| (*k, *d))
            .collect();
        let text = render_entries(&own, self.alg);
        self.replace_with(&text)
    }
}

/// Seconds since the epoch now; a clock set before the epoch reads as the far future.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(i64::MAX)
}

/// More than this many entries and a save keeps only the current run's.
const MAX_ENTRIES: usize = 200_000;

/// The store's text: one `v1 ALG dev ino ctime_s ctime_ns mtime_s mtime_ns size HEX` line per
/// file. Written with `write!` into one buffer: a run that adds a digest rewrites the whole
/// store, so this is on the path of every such run's exit.
pub fn render_entries(cache: &DigestMap, alg: HashAlg) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(cache.len() * (alg.size() * 2 + 80));
    for (k, d) in cache {
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "v1 {} {} {} {} {} {} {} {} ",
            alg.name(),
            k.dev as i64,
            k.ino as i64,
            k.ctime.0,
            k.ctime.1,
            k.mtime.0,
            k.mtime.1,
            k.size,
        );
        push_hex(&mut text, d.as_bytes());
        text.push('\n');
    }
    text
}

fn push_hex(text: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        text.push(HEX[usize::from(b >> 4)] as char);
        text.push(HEX[usize::from(b & 15)] as char);
    }
}

/// The entries of a store's text for `alg`. Lines that are malformed or of another hash function
/// are skipped: a damaged store only costs hashing again.
pub fn parse_entries(text: &str, alg: HashAlg) -> DigestMap {
    // Every run reads the whole store before its workload starts, so this is start-up time:
    // fields read in place, no allocation per line (a `split(' ')` into a Vec per line, each
    // field checked as UTF-8 and parsed, made a store of 2 400 files cost ~3 ms of every start).
    let mut out =
        DigestMap::with_capacity_and_hasher(text.len() / (alg.size() * 2 + 60), Default::default());
    for line in text.split('\n') {
        if let Some((k, d)) = parse_line(line.as_bytes(), alg) {
            out.insert(k, d);
        }
    }
    out
}

/// One line of the store: exactly ten fields separated by single spaces.
fn parse_line(line: &[u8], alg: HashAlg) -> Option<(DigestKey, Digest)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut rest = line
        .strip_prefix(b"v1 ")?
        .strip_prefix(alg.name().as_bytes())?
        .strip_prefix(b" ")?;
    let mut n = || -> Option<i64> {
        let (v, tail) = leading_int(rest)?;
        rest = tail.strip_prefix(b" ")?;
        Some(v)
    };
    let (dev, ino, cs, cn, ms, mn, size) = (n()?, n()?, n()?, n()?, n()?, n()?, n()?);
    // The digest is the rest of the line: a space in it is a bad hex digit.
    let d = Digest::from_hex_bytes(rest).ok()?;
    if d.len() != alg.size() {
        return None;
    }
    let key = DigestKey {
        dev: dev as u64,
        ino: ino as u64,
        ctime: (cs, cn),
        mtime: (ms, mn),
        size,
    };
    Some((key, d))
}

/// The integer at the start of `b` as `str::parse::<i64>` reads it (an optional sign, at least
/// one digit, no overflow), and what follows it.
fn leading_int(b: &[u8]) -> Option<(i64, &[u8])> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut mag: u64 = 0;
    for &c in &digits[..len] {
        mag = mag.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    let v = if neg {
        0i64.checked_sub_unsigned(mag)?
    } else {
        i64::try_from(mag).ok()?
    };
    Some((v, &digits[len..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tsem-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn key(n: u64, ctime: i64) -> DigestKey {
        DigestKey {
            dev: 1,
            ino: n,
            ctime: (ctime, 5),
            mtime: (ctime, 5),
            size: 10,
        }
    }

    #[test]
    fn lines_are_read_exactly_as_written_and_anything_else_is_skipped() {
        let alg = HashAlg::Sha256;
        let a = alg.digest(b"a");
        let mut m = DigestMap::default();
        m.insert(key(1, 1000), a);
        m.insert(
            DigestKey {
                dev: u64::MAX,
                ino: 7,
                ctime: (-5, 999_999_999),
                mtime: (i64::MIN, 0),
                size: i64::MAX,
            },
            alg.digest(b"b"),
        );
        let text = render_entries(&m, alg);
        assert_eq!(parse_entries(&text, alg), m);
        let hex = a.to_hex();
        let good = format!("v1 sha256 1 2 3 4 5 6 7 {hex}");
        // What `str::parse::<i64>` accepts is accepted (a sign), and CRLF line ends.
        let ok = [good.clone(), format!("v1 sha256 +1 2 3 4 5 6 7 {hex}\r")];
        for l in &ok {
            assert_eq!(parse_entries(l, alg).len(), 1, "{l}");
        }
        let bad = [
            format!("v1 sha256 1 2 3 4 5 6 {hex}"),
            format!("{good} 8"),
            format!("v1  sha256 1 2 3 4 5 6 7 {hex}"),
            format!("v2 sha256 1 2 3 4 5 6 7 {hex}"),
            format!("v1 sha512 1 2 3 4 5 6 7 {hex}"),
            format!("v1 sha256 1 2 x 4 5 6 7 {hex}"),
            format!("v1 sha256 1 2 3 4 5 6 99999999999999999999 {hex}"),
            format!("v1 sha256 1 2 3 4 5 6 7 {}", &hex[2..]),
            format!("v1 sha256 1 2 3 4 5 6 7 {}zz", &hex[2..]),
            format!("{good} "),
            String::new(),
        ];
        for l in &bad {
            assert!(parse_entries(l, alg).is_empty(), "{l}");
        }
        let mixed = format!("{}\n{}\n{}", bad[0], ok[0], bad[5]);
        assert_eq!(parse_entries(&mixed, alg).len(), 1);
    }

    #[test]
    fn round_trip_merge_and_fresh_files() {
        let d = scratch("rt");
        let p = d.join("c").join("digests");
        let s = Store::open(&p, HashAlg::Sha256).unwrap();
        assert!(s.entries().is_empty());
        let dm = std::fs::metadata(d.join("c")).unwrap();
        assert_eq!(dm.permissions().mode() & 0o777, 0o700);
        assert_eq!(s.protected.dir, Some((dm.dev(), dm.ino())));
        let root = std::fs::metadata("/").unwrap();
        assert!(s.protected.chain.contains(&(root.dev(), root.ino())));
        let a = HashAlg::Sha256.digest(b"a");
        let all = |_: &DigestKey| true;
        s.cache().lock().unwrap().insert(key(1, 1000), a);
        // Changed just now: its ctime may not have moved yet, so it is not persisted.
        s.cache().lock().unwrap().insert(key(2, i64::MAX / 2), a);
        s.save(&all).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Two later runs at once, each adding its own entry (one the workload wrote, which
        // `keep` refuses): both runs' kept entries survive.
        let s2 = Store::open(&p, HashAlg::Sha256).unwrap();
        let s3 = Store::open(&p, HashAlg::Sha256).unwrap();
        assert_eq!(s2.entries().len(), 1);
        assert_eq!(s2.entries().get(&key(1, 1000)), Some(&a));
        assert!(s2.protected.file.is_some());
        s2.cache().lock().unwrap().insert(key(3, 1000), a);
        s3.cache().lock().unwrap().insert(key(4, 1000), a);
        s3.cache().lock().unwrap().insert(key(5, 1000), a);
        s2.save(&all).unwrap();
        s3.save(&|k: &DigestKey| k.ino != 5).unwrap();
        let s4 = Store::open(&p, HashAlg::Sha256).unwrap();
        let mut inos: Vec<u64> = s4.entries().keys().map(|k| k.ino).collect();
        inos.sort();
        assert_eq!(inos, [1, 3, 4]);
        // A run that adds nothing leaves the file alone.
        let before = std::fs::metadata(&p).unwrap().ino();
        s4.save(&all).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), before);
        // A run whose kernel re-read a decided path keeps only its own digests.
        s4.cache().lock().unwrap().insert(key(6, 1000), a);
        s4.save_own(&|k: &DigestKey| k.ino != 3).unwrap();
        let mut inos: Vec<u64> = Store::open(&p, HashAlg::Sha256)
            .unwrap()
            .entries()
            .keys()
            .map(|k| k.ino)
            .collect();
        inos.sort();
        assert_eq!(inos, [1, 4, 6]);
        // Another hash function's entries are not served; garbage lines are skipped.
        assert!(
            Store::open(&p, HashAlg::Sha512)
                .unwrap()
                .entries()
                .is_empty()
        );
        std::fs::write(&p, "v1 sha256 1 2 x\ngarbage\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            Store::open(&p, HashAlg::Sha256)
                .unwrap()
                .entries()
                .is_empty()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn writable_by_others_is_refused() {
        let d = scratch("perm");
        let p = d.join("digests");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Store::open(&p, HashAlg::Sha256).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Store::open(&p, HashAlg::Sha256).unwrap_err();
        assert!(e.to_string().contains("mode 777"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn guard_decisions() {
        let root = std::fs::File::open("/").unwrap();
        let mut st = crate::sys::fstat(std::os::fd::AsFd::as_fd(&root)).unwrap();
        let p = Protected {
            file: Some((1, 10)),
            dir: Some((1, 9)),
            chain: vec![(1, 9), (1, 2), (1, 1)],
        };
        st.st_dev = 1;
        st.st_ino = 10;
        assert!(p.object(&st) && p.entry(&st) && !p.directory(&st));
        st.st_ino = 9;
        assert!(p.object(&st) && p.entry(&st) && p.directory(&st));
        st.st_ino = 2;
        assert!(!p.object(&st) && p.entry(&st) && !p.directory(&st));
        st.st_ino = 3;
        assert!(!p.object(&st) && !p.entry(&st) && !p.directory(&st));
    }
}
