//! The pathnames of opened files, known without `readlink(/proc/self/fd/N)` where they provably
//! are the path the task passed.
//!
//! A description's pathname is the absolute path of the object opened, as `d_absolute_path`
//! prints it (spec §3.4; `readlink` of the supervisor's descriptor gives the same bytes). For an
//! absolute path with no empty, `.` or `..` component, walked from the supervisor's own root
//! with `RESOLVE_NO_SYMLINKS` (no symlink and no magic link anywhere in it), the walk went
//! through exactly one dentry per component, each looked up by that component's name in the one
//! before, crossing mounts only downwards; `d_absolute_path` prints those dentries' names, so it
//! prints the path back. The one way a name can differ from the component it was looked up by is
//! a case-insensitive directory (ext4, f2fs or tmpfs `casefold`, vfat...), where the dentry keeps
//! the spelling it was first looked up or created with. So a path is taken as its own pathname
//! only once `readlink` gave exactly it for the same object (device, inode, mount) in this run,
//! and every entry is dropped when a task of the workload changes names (rename, link, unlink,
//! mkdir, rmdir, symlink, mknod) or mounts: such a change is itself a notified call, and the
//! entries go before it is performed. What no entry can follow is a process outside the
//! workload renaming one spelling to another in a case-insensitive directory during the run
//! (trusted, as for the digest store, docs/sensor.md); on every other filesystem the answer is
//! the path itself, by the argument above.
//!
//! The symlink check is the walk itself: a path with an entry is probed with
//! `RESOLVE_NO_SYMLINKS`, and one that fails with `ELOOP` (a symlink swapped in for a
//! component) loses its entry and is walked again as the task would walk it.

use std::collections::HashMap;

use crate::syscalls::Sysno;

/// How many paths are kept (the table is emptied when full: it refills in one pass).
const KEPT: usize = 4096;

/// (device, inode, mount id) of an object.
pub(crate) type Identity = (u64, u64, u64);

/// Paths whose pathname was seen to be the path itself, see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Names {
    known: HashMap<Vec<u8>, Identity>,
    /// Moves whenever the table is emptied, so a pathname read before a change of names is
    /// not recorded after it.
    generation: u64,
}

impl Names {
    /// Whether `path` has an entry (its next probe then forbids symlinks).
    pub(crate) fn has(&self, path: &[u8]) -> bool {
        self.known.contains_key(path)
    }

    /// Whether `path`, probed without symlinks, names the object `id` of its entry.
    pub(crate) fn names(&self, path: &[u8], id: Identity) -> bool {
        self.known.get(path) == Some(&id)
    }

    /// The generation to pass to [`Names::record`] for a pathname read from now on.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// `readlink` gave `pathname` for the object `id` opened by `path` while the table was at
    /// `generation`: keep it if it is the path itself and no change of names came between.
    pub(crate) fn record(&mut self, generation: u64, path: &[u8], pathname: &[u8], id: Identity) {
        if generation != self.generation || path != pathname || !canonical(path) {
            return;
        }
        if self.known.len() >= KEPT {
            self.known.clear();
        }
        self.known.insert(path.to_vec(), id);
    }

    /// Drop `path`'s entry (a symlink now stands in it).
    pub(crate) fn forget(&mut self, path: &[u8]) {
        self.known.remove(path);
    }

    /// Before and after a call of the workload that may change names or mounts (the kernel
    /// performs a continued one after the answer): drop every entry.
    pub(crate) fn before(&mut self, sys: Sysno) {
        if changes_names(sys) {
            self.known.clear();
            self.generation += 1;
        }
    }
}

/// Whether a call can change what name a dentry has or which dentry a name leads to.
pub(crate) fn changes_names(sys: Sysno) -> bool {
    matches!(
        sys,
        Sysno::Rename
            | Sysno::Renameat
            | Sysno::Renameat2
            | Sysno::Link
            | Sysno::Linkat
            | Sysno::Unlink
            | Sysno::Unlinkat
            | Sysno::Rmdir
            | Sysno::Mkdir
            | Sysno::Mkdirat
            | Sysno::Symlink
            | Sysno::Symlinkat
            | Sysno::Mknod
            | Sysno::Mknodat
            | Sysno::Mount
            | Sysno::Umount2
            | Sysno::MoveMount
            | Sysno::Fsmount
            | Sysno::MountSetattr
            | Sysno::PivotRoot
            | Sysno::Chroot
            | Sysno::Unshare
            | Sysno::Setns
    )
}

/// An absolute path with no empty, `.` or `..` component and no trailing slash: the form
/// `d_absolute_path` prints.
pub(crate) fn canonical(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split(|c| *c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn only_canonical_absolute_paths_qualify() {
        assert!(canonical(b"/srv/www/index.html"));
        assert!(canonical(b"/a"));
        for p in [
            &b"/"[..],
            b"a/b",
            b"/a//b",
            b"/a/./b",
            b"/a/../b",
            b"/a/b/",
            b"/a/..",
            b"",
        ] {
            assert!(!canonical(p), "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn entries_need_the_same_path_and_object_and_go_with_a_change_of_names() {
        let mut n = Names::default();
        let id = (8, 12, 30);
        let g = n.generation();
        // readlink gave another spelling (a symlink or a case-insensitive name): not kept.
        n.record(g, b"/d/F", b"/d/f", id);
        assert!(!n.has(b"/d/F"));
        n.record(g, b"/d/f", b"/d/f", id);
        assert!(n.names(b"/d/f", id));
        assert!(!n.names(b"/d/f", (8, 13, 30)), "another inode");
        assert!(!n.names(b"/d/f", (8, 12, 31)), "another mount");
        // A stat changes no name; a rename does, and a pathname read before it is not kept.
        n.before(Sysno::Openat);
        assert!(n.has(b"/d/f"));
        n.before(Sysno::Renameat2);
        assert!(!n.has(b"/d/f"));
        n.record(g, b"/d/f", b"/d/f", id);
        assert!(!n.has(b"/d/f"), "recorded across a rename");
        n.record(n.generation(), b"/d/f", b"/d/f", id);
        n.forget(b"/d/f");
        assert!(!n.has(b"/d/f"));
    }
}
