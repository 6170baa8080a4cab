//! The workload's task tree as the tracer sees it: TASK_ID inheritance on fork/clone, new
//! identities at exec, untrusted marks, exits.
//!
//! Pure bookkeeping fed by the ptrace loop and read by the notification loop, so it can be tested
//! without processes.

use std::collections::HashMap;

use tsem_core::Digest;

/// The TSEM identity of a task (spec §1.5, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// TASK_ID.
    pub task_id: Digest,
    /// The parent's TASK_ID at fork (PTASK_ID).
    pub p_task_id: Digest,
    /// Task instance, renewed at each exec.
    pub ttd: u64,
    /// The parent's instance at fork.
    pub p_ttd: u64,
}

/// One traced task (thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Thread group (process) id.
    pub tgid: i32,
    /// Thread id of the task that created this one (0 for the root).
    pub creator: i32,
    /// TSEM identity.
    pub ident: Identity,
    /// Marked untrusted by the modeling layer; inherited by descendants.
    pub untrusted: bool,
    /// Whether the task has executed a program since the sensor started following it.
    pub execed: bool,
    /// Unique per task ever followed and renewed at each exec: caches keyed by it never serve
    /// a reused thread id or credentials from before an exec.
    pub serial: u64,
}

impl Task {
    /// A task of process `tgid` with the all-zero identity of one that predates modeling (or
    /// was never seen being created).
    pub fn unknown(tgid: i32, digest_size: usize, serial: u64) -> Self {
        let z = Digest::zero(digest_size);
        Task {
            tgid,
            creator: 0,
            ident: Identity {
                task_id: z,
                p_task_id: z,
                ttd: 0,
                p_ttd: 0,
            },
            untrusted: false,
            execed: false,
            serial,
        }
    }
}

/// The executable a task was allowed to exec, checked again at the exec stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedExec {
    /// Device of the approved file.
    pub dev: u64,
    /// Inode of the approved file.
    pub ino: u64,
    /// Its digest.
    pub digest: Digest,
    /// The task's comm before the exec (events before the exec commits carry it).
    pub comm: Option<String>,
}

/// The task tree.
#[derive(Debug, Default)]
pub struct Tree {
    tasks: HashMap<i32, Task>,
    next_ttd: u64,
    next_serial: u64,
    approved: HashMap<i32, ApprovedExec>,
    /// Tasks ever followed.
    pub tasks_seen: u64,
    /// Exec stops seen.
    pub execs: u64,
    /// Processes that outlived the one that started them (detached background work, daemons,
    /// jobs left running), counted as they end.
    pub outlived: u64,
}

impl Tree {
    /// A tree whose root task `pid` has the all-zero identity of a task that predates modeling.
    pub fn new(pid: i32, digest_size: usize) -> Self {
        let mut t = Tree::default();
        t.tasks.insert(pid, Task::unknown(pid, digest_size, 1));
        t.next_serial = 1;
        t.tasks_seen = 1;
        t
    }

    /// The task `tid`, if followed.
    pub fn get(&self, tid: i32) -> Option<&Task> {
        self.tasks.get(&tid)
    }

    /// Number of live tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when no task is left.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Thread ids of every live task.
    pub fn tids(&self) -> Vec<i32> {
        self.tasks.keys().copied().collect()
    }

    /// Record a new task `child` created by `parent` (a thread of process `tgid`, or a new
    /// process when `tgid == child`). TSEM's task_alloc: the child inherits the parent's TASK_ID
    /// as both its TASK_ID and PTASK_ID, and the parent's instance as its p_ttd.
    pub fn clone_task(&mut self, parent: i32, child: i32, tgid: i32) -> bool {
        let Some(p) = self.tasks.get(&parent) else {
            return false;
        };
        let t = Task {
            tgid,
            creator: parent,
            ident: Identity {
                task_id: p.ident.task_id,
                p_task_id: p.ident.task_id,
                ttd: p.ident.ttd,
                p_ttd: p.ident.ttd,
            },
            untrusted: p.untrusted,
            execed: false,
            // Its own: a child that reuses the thread id of one that ended is another task, and
            // the status cache (`notify::Shared::status`) keyed by its serial must not serve
            // it the ended one's credentials.
            serial: self.next_serial + 1,
        };
        self.next_serial += 1;
        self.tasks.insert(child, t);
        self.tasks_seen += 1;
        true
    }

    /// An exec completed in `tid` (formerly thread `former`, when a non-leader thread executed).
    /// The other threads of the process are gone. Returns the task, with a fresh `ttd`, for the
    /// caller to set the new TASK_ID.
    pub fn exec(&mut self, tid: i32, former: i32) -> Option<&mut Task> {
        let mut t = self
            .tasks
            .remove(&former)
            .or_else(|| self.tasks.remove(&tid))?;
        let tgid = t.tgid;
        self.tasks.retain(|_, o| o.tgid != tgid);
        self.next_ttd += 1;
        t.ident.ttd = self.next_ttd;
        t.tgid = tid;
        t.execed = true;
        self.next_serial += 1;
        t.serial = self.next_serial;
        self.execs += 1;
        if former != tid
            && let Some(a) = self.approved.remove(&former)
        {
            self.approved.insert(tid, a);
        }
        self.tasks.insert(tid, t);
        self.tasks.get_mut(&tid)
    }

    /// [`Self::exit`], counting a process that ends after the task that started it in
    /// `outlived`.
    pub fn exit_counting_orphans(&mut self, tid: i32) -> Option<Task> {
        let t = self.exit(tid)?;
        if t.tgid == tid && t.creator != 0 && !self.tasks.contains_key(&t.creator) {
            self.outlived += 1;
        }
        Some(t)
    }

    /// Forget `tid` (it ended).
    pub fn exit(&mut self, tid: i32) -> Option<Task> {
        self.approved.remove(&tid);
        self.tasks.remove(&tid)
    }

    /// Mark `tid` untrusted (its future children inherit the mark).
    pub fn taint(&mut self, tid: i32) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.untrusted = true;
        }
    }

    /// Remember the executable `tid` was allowed to execute.
    pub fn approve_exec(&mut self, tid: i32, a: ApprovedExec) {
        self.approved.insert(tid, a);
    }

    /// The executable `tid` was allowed to execute, consumed.
    pub fn take_approved(&mut self, tid: i32) -> Option<ApprovedExec> {
        self.approved.remove(&tid)
    }

    /// The first live task of process `tgid` (for signals addressed to a process).
    pub fn process(&self, tgid: i32) -> Option<&Task> {
        self.tasks
            .get(&tgid)
            .or_else(|| self.tasks.values().find(|t| t.tgid == tgid))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn d(b: u8) -> Digest {
        Digest::from_slice(&[b; 32]).unwrap()
    }

    #[test]
    fn fork_exec_inheritance() {
        let mut t = Tree::new(10, 32);
        let first = t.exec(10, 10).unwrap();
        assert_eq!(first.ident.ttd, 1);
        first.ident.task_id = d(1);
        assert!(t.clone_task(10, 11, 11));
        let c = t.get(11).unwrap();
        assert_eq!(
            (
                c.ident.task_id,
                c.ident.p_task_id,
                c.ident.ttd,
                c.ident.p_ttd
            ),
            (d(1), d(1), 1, 1)
        );
        let c = t.exec(11, 11).unwrap();
        assert_eq!(c.ident.ttd, 2);
        assert_eq!(c.ident.p_task_id, d(1));
        c.ident.task_id = d(2);
        // A second exec keeps p_task_id and renews ttd.
        let c = t.exec(11, 11).unwrap();
        assert_eq!(
            (c.ident.p_task_id, c.ident.ttd, c.ident.p_ttd),
            (d(1), 3, 1)
        );
        assert!(!t.clone_task(99, 100, 100));
    }

    #[test]
    fn exec_from_thread_replaces_the_group() {
        let mut t = Tree::new(10, 32);
        t.clone_task(10, 12, 10);
        t.clone_task(10, 13, 10);
        t.approve_exec(
            13,
            ApprovedExec {
                dev: 1,
                ino: 2,
                digest: d(3),
                comm: None,
            },
        );
        let e = t.exec(10, 13).unwrap();
        assert_eq!(e.tgid, 10);
        assert_eq!(t.len(), 1);
        assert_eq!(t.take_approved(10).unwrap().ino, 2);
        assert!(t.get(12).is_none());
    }

    #[test]
    fn taint_is_inherited() {
        let mut t = Tree::new(10, 32);
        t.taint(10);
        t.clone_task(10, 11, 11);
        assert!(t.get(11).unwrap().untrusted);
        assert!(t.exit(11).is_some());
        assert!(t.exit(11).is_none());
    }
}
