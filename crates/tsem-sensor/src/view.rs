//! Where a run's pathnames are named from.
//!
//! `tsem run` names an object as the kernel's `d_absolute_path` does: from the root of the mount
//! namespace, which is what `readlink` of the supervisor's descriptor prints, with the
//! supervisor's own mount table placing dentry paths ([`View::host`]).
//!
//! A container (tsem-runtime) is named from its own root ([`View::container`]), so that the
//! same image gives the same model in any bundle directory and on any host. The kernel's naming
//! gives that only where the host's root is its filesystem's root: the runtime's `pivot_root`
//! then leaves the container's root at the top of its mount namespace. Where the host's root is
//! itself a directory bound onto `/` (a chroot, a build or CI container), `pivot_root` attaches
//! the container's root where that directory was, and every readlink of a container object
//! carries the directory's path (`/var/tmp/root/etc/app.conf` for `/etc/app.conf`) — and a
//! Landlock rule learned from it would name nothing inside the container. So a container's view
//! strips the text `readlink(/proc/<pid>/root)` prints for the container's root (`/` on an
//! ordinary host, where nothing changes), and places dentry paths with the container's own mount
//! table (`/proc/<pid>/mountinfo`, whose mount points the kernel prints from the container's
//! root), in which the container's root filesystem is rooted at the container's root.

use std::os::fd::{AsFd as _, OwnedFd};

use crate::procfs::{self, Mount};
use crate::sys;

/// How a run names paths (module documentation). Cheap to clone: one per describer.
#[derive(Debug, Clone, Default)]
pub struct View {
    container: Option<Container>,
}

#[derive(Debug, Clone)]
struct Container {
    /// The container's first task: its root and mount table.
    pid: i32,
    /// `readlink(/proc/<pid>/root)` as the supervisor reads it.
    prefix: Vec<u8>,
}

impl View {
    /// Names as the kernel gives them, from the supervisor's namespace.
    pub fn host() -> Self {
        Self::default()
    }

    /// Names from the root of `pid`, a container's first task after its runtime pivoted into
    /// the container's root.
    pub fn container(pid: i32) -> std::io::Result<Self> {
        let prefix = sys::readlink(&format!("/proc/{pid}/root"))?;
        Ok(Self {
            container: Some(Container { pid, prefix }),
        })
    }

    /// Whether paths are named from a container's root.
    pub fn is_container(&self) -> bool {
        self.container.is_some()
    }

    /// The path `readlink` printed for an object, in this view: in a container's, the part below
    /// the container's root (an object outside it, a pipe or a memfd keeps its text).
    pub fn name(&self, text: Vec<u8>) -> Vec<u8> {
        match &self.container {
            Some(c) => below(&c.prefix, text),
            None => text,
        }
    }

    /// The mount table paths are placed with; `None` when it cannot be read (the container's
    /// first task is gone: the caller keeps the table it had).
    pub fn mounts(&self) -> Option<Vec<Mount>> {
        let Some(c) = &self.container else {
            return procfs::read_proc_text("/proc/self/mountinfo")
                .ok()
                .map(|t| procfs::parse_mountinfo(&t));
        };
        let text = procfs::read_proc_text(&format!("/proc/{}/mountinfo", c.pid)).ok()?;
        Some(rooted(procfs::parse_mountinfo(&text)))
    }

    /// A directory of this view opened for reading (a mount point, to ask its filesystem's
    /// UUID): in a container's view, walked in the container's root.
    pub fn open_dir(&self, path: &str) -> Option<OwnedFd> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        let Some(c) = &self.container else {
            return sys::open(path, flags).ok();
        };
        let root = sys::open(&format!("/proc/{}/root", c.pid), libc::O_PATH).ok()?;
        let path = std::ffi::CString::new(path).ok()?;
        sys::openat2(
            Some(root.as_fd()),
            &path,
            (flags | libc::O_CLOEXEC) as u64,
            0,
            libc::RESOLVE_IN_ROOT,
        )
        .ok()
    }
}

/// `text` below `prefix` (both as readlink prints them), or `text` itself when it is not below.
fn below(prefix: &[u8], text: Vec<u8>) -> Vec<u8> {
    if prefix == b"/" {
        return text;
    }
    match text.strip_prefix(prefix) {
        Some([]) => b"/".to_vec(),
        Some(rest) if rest.first() == Some(&b'/') => rest.to_vec(),
        _ => text,
    }
}

/// A container's mount table with its root filesystem rooted at the container's root (the mount
/// in effect at `/`, the last listed there): its dentry paths are then the container's paths,
/// whatever directory of the host's filesystem the bundle lies in.
fn rooted(mut mounts: Vec<Mount>) -> Vec<Mount> {
    if let Some(m) = mounts.iter_mut().rev().find(|m| m.mount_point == "/") {
        m.root = "/".into();
    }
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd as _;

    #[test]
    fn only_whole_components_below_the_root_are_stripped() {
        let p = b"/var/tmp/root";
        assert_eq!(below(p, b"/var/tmp/root/etc/x".to_vec()), b"/etc/x");
        assert_eq!(below(p, b"/var/tmp/root".to_vec()), b"/");
        assert_eq!(
            below(p, b"/var/tmp/rootfs/etc/x".to_vec()),
            b"/var/tmp/rootfs/etc/x"
        );
        assert_eq!(
            below(p, b"/memfd:x (deleted)".to_vec()),
            b"/memfd:x (deleted)"
        );
        assert_eq!(below(p, b"pipe:[12]".to_vec()), b"pipe:[12]");
        assert_eq!(below(b"/", b"/etc/x".to_vec()), b"/etc/x");
        assert_eq!(View::host().name(b"/a".to_vec()), b"/a");
    }

    #[test]
    fn the_container_root_filesystem_is_rooted_at_its_root() {
        let m = rooted(procfs::parse_mountinfo(
            "1 0 8:1 /var/tmp/root/bundle/rootfs / rw - ext4 /dev/sda1 rw\n\
             2 1 0:5 / /proc rw - proc proc rw\n\
             3 1 8:1 /srv/data /data rw - ext4 /dev/sda1 rw\n",
        ));
        assert_eq!(m[0].root, "/");
        assert_eq!(procfs::dentry_path(&m[0], b"/tmp/x"), b"/tmp/x");
        // A volume keeps its place in its filesystem, as the kernel names it.
        assert_eq!(procfs::dentry_path(&m[2], b"/data/x"), b"/srv/data/x");
        assert_eq!(procfs::dentry_path(&m[1], b"/proc/1/status"), b"/1/status");
    }

    #[test]
    fn a_task_of_our_own_root_is_named_as_the_kernel_names_it() {
        // This process's root reads as `/` to itself: its names are unchanged.
        let v = View::container(std::process::id() as i32).unwrap();
        assert!(v.is_container());
        let f = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
        let text = sys::readlink(&format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
        assert_eq!(v.name(text.clone()), text);
        assert!(
            v.mounts()
                .is_some_and(|m| m.iter().any(|m| m.mount_point == "/"))
        );
        assert!(v.open_dir("/").is_some());
    }
}
