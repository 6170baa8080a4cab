//! The workload's outputs, read from its own event descriptions: the paths it creates, writes,
//! renames into place or removes. During learning these become pseudonyms (spec §3.5), so the
//! contents a run leaves behind do not pin the model the next run is held to; the files it only
//! reads are never among them and stay pinned by their digest.
//!
//! Paths beneath a directory the namespace created are left out: the naming rules already name
//! them by their creator and their contents are the zero digest. What the tracker cannot see —
//! whether a path still exists when the run ends — the caller decides (see [`Output::keep`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::event::{Cell, Event, EventType};
use crate::naming::{Dev, Namer};
use crate::raw::RawStr;

/// `O_ACCMODE`.
const O_ACCMODE: u32 = 0o3;
/// `PROT_EXEC`.
const PROT_EXEC: u32 = 4;

/// Why a path is an output (bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Why(u8);

impl Why {
    /// Created (inode_create, inode_mknod, inode_symlink, inode_link).
    pub const CREATED: Self = Self(1);
    /// Opened for writing.
    pub const WRITTEN: Self = Self(2);
    /// Its size or attributes set (truncate).
    pub const TRUNCATED: Self = Self(4);
    /// The target of a rename.
    pub const RENAMED_INTO: Self = Self(8);
    /// Removed (a file that existed before the workload removed it).
    pub const REMOVED: Self = Self(16);

    /// Whether every bit of `o` is set.
    pub fn has(self, o: Self) -> bool {
        self.0 & o.0 == o.0
    }

    /// The reasons in words, comma-separated.
    pub fn words(self) -> String {
        let mut s = String::new();
        for (b, w) in [
            (Self::CREATED, "created"),
            (Self::WRITTEN, "written"),
            (Self::TRUNCATED, "truncated"),
            (Self::RENAMED_INTO, "renamed into place"),
            (Self::REMOVED, "removed"),
        ] {
            if self.has(b) {
                if !s.is_empty() {
                    s.push_str(", ");
                }
                s.push_str(w);
            }
        }
        s
    }
}

impl core::ops::BitOrAssign for Why {
    fn bitor_assign(&mut self, o: Self) {
        self.0 |= o.0;
    }
}

/// What the workload did to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Output {
    /// Why it is an output.
    pub why: Why,
    /// Created during this run (and so absent before it).
    pub created_here: bool,
    /// It existed before the run and the workload removed it.
    pub removed_preexisting: bool,
    /// Executed (bprm_committed_creds).
    pub executed: bool,
    /// Mapped executable (mmap_file with PROT_EXEC).
    pub mapped_exec: bool,
}

impl Output {
    /// Whether the path should become a pseudonym, given whether it exists when the run ends:
    /// a file created and removed within the run never meets the next run, but one that
    /// remains, or one the workload removes although it was there before, does.
    pub fn keep(&self, exists_at_end: bool) -> bool {
        exists_at_end || self.removed_preexisting
    }
}

/// Collects the outputs of one run from its raw event descriptions.
#[derive(Debug, Clone, Default)]
pub struct OutputTracker {
    /// Absolute pathnames (raw bytes, as the kernel gave them) → what was done to them.
    paths: BTreeMap<RawStr, Output>,
    /// Absolute pathnames executed, mapped executable.
    execs: BTreeMap<RawStr, (bool, bool)>,
    /// Directories the run created (outside other created directories) and did not remove:
    /// not outputs (what lies beneath is named by the rules), but the next run finds them.
    dirs: BTreeSet<RawStr>,
    /// Directory entries on devices whose mount the namer has not learnt yet, in order: their
    /// DENTRY paths become absolute only once it is known (a bind-mounted root, a tmpfs), and
    /// are placed then, or at the end as they are.
    pending: Vec<(Dev, RawStr, Entry)>,
    /// How many mounts the namer knew when `pending` was last looked at.
    known: usize,
}

/// What happened to a directory entry.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// Made, set or renamed into: `why`, and whether it was created here.
    Made(Why, bool),
    /// Unlinked or renamed away.
    Gone,
    /// A directory made here.
    Dir,
    /// A directory removed or renamed away.
    DirGone,
}

impl OutputTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observe `ev` as the sensor described it, before `namer` renames it (the namer's state
    /// says which directories the namespace created).
    pub fn observe(&mut self, ev: &Event, namer: &Namer) {
        self.settle(namer, false);
        let ty = ev.header.event_type;
        match &ev.cell {
            Cell::File(f)
                if ty == EventType::FileOpen
                    && f.flags & O_ACCMODE != 0
                    && !namer.beneath_created(f.path.dev, &f.path.pathname, true) =>
            {
                self.add(&f.path.pathname, Why::WRITTEN);
            }
            Cell::File(f) if ty == EventType::BprmCommittedCreds => {
                self.execs.entry(f.path.pathname.clone()).or_default().0 = true;
            }
            Cell::MmapFile {
                file: Some(f),
                prot,
                ..
            } if prot & PROT_EXEC != 0 => {
                self.execs.entry(f.path.pathname.clone()).or_default().1 = true;
            }
            Cell::InodeCreate { dentry, .. } | Cell::InodeMknod { dentry, .. }
                if ty != EventType::InodeMkdir =>
            {
                self.dentry(namer, dentry, Why::CREATED, true);
            }
            Cell::InodeSymlink { dentry, .. } => self.dentry(namer, dentry, Why::CREATED, true),
            Cell::InodeLink(l) => self.dentry(namer, &l.new_dentry, Why::CREATED, true),
            Cell::InodeSetattr { dentry, valid, .. } if valid & 8 != 0 => {
                self.dentry(namer, dentry, Why::TRUNCATED, false);
            }
            Cell::InodeRename(r) => {
                self.entry(namer, &r.old_dentry, Entry::DirGone);
                self.gone(namer, &r.old_dentry);
                self.dentry(namer, &r.new_dentry, Why::RENAMED_INTO, false);
            }
            Cell::InodeDirEntry { dentry, .. } if ty == EventType::InodeUnlink => {
                self.gone(namer, dentry);
            }
            Cell::InodeCreate { dentry, .. } => self.entry(namer, dentry, Entry::Dir),
            Cell::InodeDirEntry { dentry, .. } if ty == EventType::InodeRmdir => {
                self.entry(namer, dentry, Entry::DirGone);
            }
            _ => {}
        }
    }

    fn dentry(&mut self, namer: &Namer, d: &crate::event::Dentry, why: Why, created: bool) {
        self.entry(namer, d, Entry::Made(why, created));
    }

    /// `d` was unlinked or renamed away.
    fn gone(&mut self, namer: &Namer, d: &crate::event::Dentry) {
        self.entry(namer, d, Entry::Gone);
    }

    fn entry(&mut self, namer: &Namer, d: &crate::event::Dentry, e: Entry) {
        if namer.beneath_created(d.path.dev, &d.path.pathname, false) {
            return;
        }
        self.settle(namer, false);
        if namer.knows_mount(d.path.dev) {
            let abs = namer.absolute(d.path.dev, &d.path.pathname);
            self.place(&abs, e);
        } else {
            self.pending.push((d.path.dev, d.path.pathname.clone(), e));
        }
    }

    fn place(&mut self, abs: &[u8], e: Entry) {
        match e {
            Entry::Made(why, created) => {
                let o = self.add(abs, why);
                if created {
                    o.created_here = true;
                }
            }
            Entry::Gone => {
                let o = self.add(abs, Why::REMOVED);
                if !o.created_here {
                    o.removed_preexisting = true;
                }
            }
            Entry::Dir => {
                self.dirs.insert(abs.into());
            }
            Entry::DirGone => {
                self.dirs.remove(abs);
            }
        }
    }

    /// Place the pending entries whose device's mount the namer now knows (all of them, as they
    /// are, when `all`), in their order.
    fn settle(&mut self, namer: &Namer, all: bool) {
        // Only a newly learnt mount can place anything: the pending list is not walked per event.
        if self.pending.is_empty() || (!all && namer.mounts_known() == self.known) {
            return;
        }
        self.known = namer.mounts_known();
        let (ready, wait): (Vec<_>, Vec<_>) = core::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(dev, _, _)| all || namer.knows_mount(*dev));
        self.pending = wait;
        for (dev, path, e) in ready {
            let abs = namer.absolute(dev, &path);
            self.place(&abs, e);
        }
    }

    /// The run is over: what `namer` learnt by now places every entry still pending.
    pub fn finish(&mut self, namer: &Namer) {
        self.settle(namer, true);
    }

    fn add(&mut self, path: &[u8], why: Why) -> &mut Output {
        let o = self.paths.entry(path.into()).or_default();
        o.why |= why;
        o
    }

    /// The directories the run created outside other created directories and did not remove
    /// (as far as it saw: a directory renamed into a created one is kept), in byte order.
    pub fn created_dirs(&self) -> impl Iterator<Item = &RawStr> + '_ {
        self.dirs.iter()
    }

    /// Every output path (its exact bytes), in byte order, with what was done to it (execution
    /// and executable mappings included).
    pub fn outputs(&self) -> impl Iterator<Item = (&RawStr, Output)> + '_ {
        self.paths.iter().map(|(p, o)| {
            let (x, m) = self.execs.get(p).copied().unwrap_or_default();
            (
                p,
                Output {
                    executed: x,
                    mapped_exec: m,
                    ..*o
                },
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Coe, Created, Dentry, EventHeader, FileDesc, Inode, PathRef};
    use crate::hash::HashAlg;
    use crate::naming::RuleSet;

    fn ev(ty: EventType, cell: Cell) -> Event {
        let z = HashAlg::Sha256.null_id();
        Event {
            header: EventHeader::new("t", ty, z, z),
            coe: Coe::default(),
            cell,
        }
    }

    fn path(p: impl AsRef<[u8]>, created: Option<Created>) -> PathRef {
        PathRef {
            dev: Some((8, 1)),
            created,
            path_type: None,
            pathname: p.as_ref().into(),
        }
    }

    fn open(p: impl AsRef<[u8]>, flags: u32) -> Event {
        ev(
            EventType::FileOpen,
            Cell::File(FileDesc {
                flags,
                inode: Inode::default(),
                path: path(p, None),
                digest: HashAlg::Sha256.zero_digest(),
            }),
        )
    }

    fn entry(ty: EventType, p: impl AsRef<[u8]>) -> Event {
        let c = Created {
            owner: HashAlg::Sha256.null_id(),
            instance: 1,
        };
        let d = Dentry {
            inode: None,
            path: path(p, Some(c)),
        };
        match ty {
            EventType::InodeUnlink => ev(
                ty,
                Cell::InodeDirEntry {
                    dir: Inode::default(),
                    dentry: d,
                },
            ),
            _ => ev(
                ty,
                Cell::InodeCreate {
                    dir: Inode::default(),
                    dentry: d,
                    mode: 0o700,
                },
            ),
        }
    }

    fn track(events: &[Event]) -> OutputTracker {
        let mut n = Namer::new(
            RuleSet::DEFAULT,
            HashAlg::Sha256,
            crate::map::Mapping::Model0,
        );
        let mut t = OutputTracker::new();
        for e in events {
            t.observe(e, &n);
            n.apply(&mut e.clone());
        }
        t.finish(&n);
        t
    }

    /// Under a bind-mounted root (dentries carry the bound directory's path on its
    /// filesystem), entries seen before the namer learnt the mount are placed once it has: the
    /// file created and written is one output, at its absolute path, created here.
    #[test]
    fn entries_before_the_mount_is_known_are_placed_after() {
        let c = Created {
            owner: HashAlg::Sha256.null_id(),
            instance: 1,
        };
        let created_open = ev(
            EventType::FileOpen,
            Cell::File(FileDesc {
                flags: 1,
                inode: Inode::default(),
                path: path("/w/out.txt", Some(c)),
                digest: HashAlg::Sha256.zero_digest(),
            }),
        );
        let t = track(&[
            entry(EventType::InodeCreate, "/srv/root/w/out.txt"),
            created_open,
            open("/w/log.txt", 1),
        ]);
        let all: alloc::vec::Vec<_> = t.outputs().collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[1].0, "/w/out.txt");
        assert!(all[1].1.created_here && all[1].1.why.has(Why::CREATED));
        assert!(all[1].1.why.has(Why::WRITTEN));
    }

    #[test]
    fn reads_are_not_outputs_and_writes_are() {
        let t = track(&[open("/etc/hosts", 0), open("/w/report.txt", 1)]);
        let all: alloc::vec::Vec<_> = t.outputs().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "/w/report.txt");
        assert!(all[0].1.why.has(Why::WRITTEN));
    }

    #[test]
    fn temporary_trees_and_transient_files_are_left_out() {
        let t = track(&[
            entry(EventType::InodeMkdir, "/tmp/rnd"),
            entry(EventType::InodeCreate, "/tmp/rnd/db"),
            open("/tmp/rnd/db", 2),
            entry(EventType::InodeCreate, "/w/tmp1"),
            entry(EventType::InodeUnlink, "/w/tmp1"),
        ]);
        let all: alloc::vec::Vec<_> = t.outputs().collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(!all[0].1.keep(false), "created and removed within the run");
        assert!(all[0].1.keep(true));
    }

    /// Directories the run made and left are told (the next run finds them), not those beneath
    /// them, nor those it removed.
    #[test]
    fn created_directories_left_behind_are_told() {
        let t = track(&[
            entry(EventType::InodeMkdir, "/w/out"),
            entry(EventType::InodeMkdir, "/w/out/sub"),
            entry(EventType::InodeMkdir, "/tmp/rnd"),
            ev(
                EventType::InodeRmdir,
                Cell::InodeDirEntry {
                    dir: Inode::default(),
                    dentry: Dentry {
                        inode: None,
                        path: path("/tmp/rnd", None),
                    },
                },
            ),
        ]);
        let dirs: alloc::vec::Vec<_> = t.created_dirs().collect();
        assert_eq!(dirs, ["/w/out"]);
    }

    /// An output's path is its bytes: one that is not UTF-8 is an output like any other, and
    /// one beneath a created directory whose name is not UTF-8 is left out like any other.
    #[test]
    fn outputs_are_tracked_by_their_bytes() {
        let t = track(&[
            open(b"/w/report.\xff", 1),
            entry(EventType::InodeMkdir, b"/tmp/r\xfe"),
            entry(EventType::InodeCreate, b"/tmp/r\xfe/db"),
        ]);
        let all: alloc::vec::Vec<_> = t.outputs().collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].0.as_bytes(), b"/w/report.\xff");
    }
}
