//! The TASK_IDs a CELL names, for renaming them consistently.

use crate::event::{Cell, IpcPerm, PathRef, Sock};
use crate::hash::Digest;

/// Apply `f` to every TASK_ID a CELL names (creators, owners, targets).
pub(super) fn map_task_ids(cell: &mut Cell, f: impl Fn(&mut Digest)) {
    let sock = |s: &mut Sock| f(&mut s.owner);
    let perm = |p: &mut IpcPerm| f(&mut p.owner);
    let path = |p: &mut PathRef| {
        if let Some(c) = &mut p.created {
            f(&mut c.owner);
        }
    };
    match cell {
        Cell::File(x) | Cell::FileCmd { file: x, .. } | Cell::KernelReadFile { file: x, .. } => {
            path(&mut x.path)
        }
        Cell::MmapFile { file: Some(x), .. } => path(&mut x.path),
        Cell::SockPair { a, b } => {
            sock(a);
            sock(b);
        }
        Cell::SockAddr { sock: s, .. }
        | Cell::Sock(s)
        | Cell::SockValue { sock: s, .. }
        | Cell::SockOpt { sock: s, .. }
        | Cell::NetlinkSend { sock: s, .. } => sock(s),
        Cell::TaskKill { target: t, .. }
        | Cell::PtraceAccess { child: t, .. }
        | Cell::PtraceTraceme { source: t }
        | Cell::Capget { target: t, .. }
        | Cell::Task { task: t }
        | Cell::TaskValue { task: t, .. }
        | Cell::TaskSetrlimit { task: t, .. } => f(t),
        Cell::TaskSetpgid { task, source } => {
            f(task);
            f(source);
        }
        Cell::IpcValue { perm: p, .. }
        | Cell::SemSemop { perm: p, .. }
        | Cell::IpcPermission { perm: p, .. } => perm(p),
        Cell::MsgRcv {
            perm: p, target, ..
        } => {
            perm(p);
            f(target);
        }
        Cell::InodeCreate { dentry: d, .. }
        | Cell::InodeMknod { dentry: d, .. }
        | Cell::InodeSymlink { dentry: d, .. }
        | Cell::InodeDirEntry { dentry: d, .. }
        | Cell::Dentry(d)
        | Cell::InodeGetattr(d)
        | Cell::SbUmount { mnt: d, .. }
        | Cell::InodeSetattr { dentry: d, .. }
        | Cell::InodeSetxattr { dentry: d, .. }
        | Cell::InodeXattr { dentry: d, .. } => path(&mut d.path),
        Cell::InodeLink(l) => {
            path(&mut l.old_dentry.path);
            path(&mut l.new_dentry.path);
        }
        Cell::InodeRename(r) => {
            path(&mut r.old_dentry.path);
            path(&mut r.new_dentry.path);
        }
        _ => {}
    }
}
