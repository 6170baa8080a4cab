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

mod file;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tsem_core::{Digest, HashAlg};

/// What a cached digest is valid for: any change of contents changes ctime (and mtime/size).
/// Ordered field by field, as a version 2 store's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// A run's digests: those of the store's file as it was opened, and those the run added.
#[derive(Debug, Default)]
pub struct Digests {
    base: file::Base,
    added: DigestMap,
}

impl Digests {
    /// The digest of `k`, if known.
    pub fn get(&self, k: &DigestKey) -> Option<Digest> {
        self.added.get(k).copied().or_else(|| self.base.get(k))
    }

    /// Whether the digest of `k` is known.
    pub fn contains_key(&self, k: &DigestKey) -> bool {
        self.get(k).is_some()
    }

    /// Keep the digest `d` of `k` (a key the store already holds keeps its digest: the same).
    pub fn insert(&mut self, k: DigestKey, d: Digest) {
        if self.base.get(&k).is_none() {
            self.added.insert(k, d);
        }
    }

    /// How many digests are known.
    pub fn len(&self) -> usize {
        self.base.len() + self.added.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every known digest.
    pub fn entries(&self) -> Vec<(DigestKey, Digest)> {
        let mut v = self.base.entries();
        v.extend(self.added.iter().map(|(k, d)| (*k, *d)));
        v
    }
}

/// Digests shared by the notification and tracer threads of one run.
pub type DigestCache = Arc<Mutex<Digests>>;

/// The digests for `alg` a store file's `bytes` hold (either version), as a run reads them.
pub fn store_entries(bytes: Vec<u8>, alg: HashAlg) -> Vec<(DigestKey, Digest)> {
    file::Base::of(file::Bytes::Owned(bytes), alg).entries()
}

/// The digest of `k` a store file's `bytes` give, as a run looks it up.
pub fn store_lookup(bytes: Vec<u8>, alg: HashAlg, k: &DigestKey) -> Option<Digest> {
    file::Base::of(file::Bytes::Owned(bytes), alg).get(k)
}

/// The bytes of a (version 2) store holding `entries`.
pub fn store_bytes(
    entries: impl IntoIterator<Item = (DigestKey, Digest)>,
    alg: HashAlg,
) -> Vec<u8> {
    file::render(entries, alg)
}

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
/// The file (version 2: records sorted by key) is mapped, not parsed: a run touches only the
/// pages its lookups need ([`file`]). The describers share the run's cache and only add to it;
/// a save writes the file only if the run added a digest.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    alg: HashAlg,
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
        let base = match std::fs::symlink_metadata(&path) {
            Ok(m) => {
                if !m.is_file() {
                    return Err(StoreError::Insecure {
                        path,
                        why: "not a regular file".into(),
                    });
                }
                check_owner(&path, &m)?;
                protected.file = Some((m.dev(), m.ino()));
                std::fs::File::open(&path)
                    .map(|f| file::Base::read(&f, alg))
                    .unwrap_or_default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => file::Base::Empty,
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(Self {
            path,
            alg,
            cache: Arc::new(Mutex::new(Digests {
                base,
                added: DigestMap::default(),
            })),
            protected,
        })
    }

    /// The run's digest cache, holding the file's digests: shared by the describers, which
    /// only add to it.
    pub fn cache(&self) -> DigestCache {
        Arc::clone(&self.cache)
    }

    /// Every digest the run knows (the file's as opened and the run's own).
    pub fn entries(&self) -> DigestMap {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries()
            .into_iter()
            .collect()
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the run's digests that `keep` accepts back, merged with what other runs wrote
    /// meanwhile, atomically (mode 0600), if the run added any. Entries changed less than two
    /// seconds ago are left out.
    pub fn save(&self, keep: &dyn Fn(&DigestKey) -> bool) -> Result<(), StoreError> {
        let (added, used): (DigestMap, Vec<DigestKey>) = {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            // Nothing new: leave the file (and the other runs' additions) alone, unless it is
            // a version 1 store, parsed whole by every run until it is written again.
            if c.added.is_empty() && !matches!(c.base, file::Base::Text(_)) {
                return Ok(());
            }
            let added = c
                .added
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, d)| (*k, *d))
                .collect();
            (added, c.entries().into_iter().map(|(k, _)| k).collect())
        };
        let now = now_secs();
        let current = std::fs::File::open(&self.path)
            .map(|f| file::Base::read(&f, self.alg))
            .unwrap_or_default();
        let mut all: DigestMap = current.entries().into_iter().collect();
        all.extend(added);
        all.retain(|k, _| k.ctime.0 < now - 2);
        if all.len() > MAX_ENTRIES {
            // Keep what this run used; drop what others left.
            let used: std::collections::HashSet<DigestKey> = used.into_iter().collect();
            all.retain(|k, _| used.contains(k));
        }
        self.replace_with(&file::render(all, self.alg))
    }
}

impl Store {
    /// Write `bytes` as the store's new contents, atomically (a private temporary file, mode
    /// 0600, renamed over the store).
    fn replace_with(&self, bytes: &[u8]) -> Result<(), StoreError> {
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
            f.write_all(bytes)?;
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
        let own = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries()
            .into_iter()
            .filter(|(k, _)| keep(k) && k.ctime.0 < now - 2);
        self.replace_with(&file::render(own, self.alg))
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

/// A key for tests: inode `n` of device 1, changed at `ctime`.
#[cfg(test)]
pub(crate) fn test_key(n: u64, ctime: i64) -> DigestKey {
    DigestKey {
        dev: 1,
        ino: n,
        ctime: (ctime, 5),
        mtime: (ctime, 5),
        size: 10,
    }
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

    use super::test_key as key;

    /// The inode numbers a store at `p` holds, sorted.
    fn inos(p: &Path) -> Vec<u64> {
        let mut v: Vec<u64> = Store::open(p, HashAlg::Sha256)
            .unwrap()
            .entries()
            .keys()
            .map(|k| k.ino)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_text_store_is_read_and_saved_sorted() {
        let d = scratch("v1");
        let p = d.join("digests");
        let a = HashAlg::Sha256.digest(b"a");
        std::fs::write(
            &p,
            format!("v1 sha256 1 7 1000 5 1000 5 10 {}\n", a.to_hex()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Store::open(&p, HashAlg::Sha256).unwrap();
        assert_eq!(s.cache().lock().unwrap().get(&key(7, 1000)), Some(a));
        // Rewritten at the first save, even by a run that added nothing.
        s.save(&|_: &DigestKey| true).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(b"tsemdc2\n"));
        let s = Store::open(&p, HashAlg::Sha256).unwrap();
        assert_eq!(s.cache().lock().unwrap().get(&key(7, 1000)), Some(a));
        s.cache().lock().unwrap().insert(key(8, 1000), a);
        s.save(&|_: &DigestKey| true).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(b"tsemdc2\n"));
        assert_eq!(inos(&p), [7, 8]);
        std::fs::remove_dir_all(&d).unwrap();
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
        assert_eq!(inos(&p), [1, 3, 4]);
        // A run that adds nothing leaves the file alone.
        let before = std::fs::metadata(&p).unwrap().ino();
        s4.save(&all).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), before);
        // A run whose kernel re-read a decided path keeps only its own digests.
        s4.cache().lock().unwrap().insert(key(6, 1000), a);
        s4.save_own(&|k: &DigestKey| k.ino != 3).unwrap();
        assert_eq!(inos(&p), [1, 4, 6]);
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
