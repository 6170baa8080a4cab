//! Calls on tasks: signals, ptrace, process groups, limits, scheduling, capabilities, prctl.

use tsem_core::Digest;
use tsem_core::event::{Cell, EventType};

use super::decode::SigTarget;
use super::{Call, Continuation, Fail, Notifier, Reply, lock, verdict};
use crate::event::Counters;
use crate::event::EventHandler;
use crate::procfs::Status;
use crate::sys;

impl<H: EventHandler> Notifier<H> {
    pub(super) fn task_of(&self, pid: i32) -> Option<Digest> {
        let tree = lock(&self.shared.tree);
        tree.get(pid)
            .or_else(|| tree.process(pid))
            .map(|t| t.ident.task_id)
    }

    pub(super) fn sys_kill(
        &mut self,
        call: &mut Call,
        to: SigTarget,
        sig: u32,
    ) -> Result<Reply, Fail> {
        let pid = match to {
            SigTarget::Kill(pid) | SigTarget::Task(pid) => pid,
            SigTarget::Thread { tid, .. } => tid,
        };
        if sig == libc::SIGURG as u32 {
            return Ok(self.no_event("task_kill skips SIGURG (spec §1.3)"));
        }
        let zero = Digest::zero(self.shared.alg.size());
        let (target, cross_ns) = if pid > 0 {
            match self.task_of(pid) {
                Some(t) => (t, 0),
                None => (zero, 1),
            }
        } else {
            // Process-group and broadcast signals: one event for the group as a whole.
            (zero, 0)
        };
        let cell = Cell::TaskKill {
            target,
            sig,
            cross_ns,
        };
        if self.signal_reaches_supervisor(call, to, sig) {
            return Ok(self.ask_then_refuse(call, EventType::TaskKill, cell));
        }
        self.simple(call, EventType::TaskKill, cell)
    }

    pub(super) fn sys_ptrace(
        &mut self,
        call: &mut Call,
        req: u32,
        pid: i32,
    ) -> Result<Reply, Fail> {
        let zero = Digest::zero(self.shared.alg.size());
        if req == libc::PTRACE_TRACEME {
            let parent = lock(&self.shared.tree)
                .get(call.tid)
                .map(|t| t.creator)
                .unwrap_or(0);
            let source = self.task_of(parent).unwrap_or(zero);
            return self.simple(
                call,
                EventType::PtraceTraceme,
                Cell::PtraceTraceme { source },
            );
        }
        if req == libc::PTRACE_ATTACH || req == libc::PTRACE_SEIZE {
            return self.ptrace_attach(call, pid);
        }
        Ok(self
            .no_event("ptrace requests other than attach, seize and traceme act on tracees only"))
    }

    pub(super) fn sys_setpgid(
        &mut self,
        call: &mut Call,
        pid: i32,
        pgid: i32,
    ) -> Result<Reply, Fail> {
        let zero = Digest::zero(self.shared.alg.size());
        let pid = if pid == 0 { call.status.tgid } else { pid };
        let pgid = if pgid == 0 { pid } else { pgid };
        let task = self.task_of(pid).unwrap_or(zero);
        let source = self.task_of(pgid).unwrap_or(zero);
        self.simple(
            call,
            EventType::TaskSetpgid,
            Cell::TaskSetpgid { task, source },
        )
    }

    /// TASK_ID of `pid` as the caller names it (0 = the caller itself).
    pub(super) fn task_arg(&self, call: &Call, pid: i32) -> Digest {
        if pid == 0 {
            return call.task.ident.task_id;
        }
        self.task_of(pid)
            .unwrap_or_else(|| Digest::zero(self.shared.alg.size()))
    }

    /// Events whose CELL is just the target task.
    pub(super) fn task_cell(
        &mut self,
        call: &mut Call,
        ty: EventType,
        pid: i32,
    ) -> Result<Reply, Fail> {
        let task = self.task_arg(call, pid);
        self.simple(call, ty, Cell::Task { task })
    }

    /// task_setrlimit for `setrlimit` and for `prlimit64` with a new limit, then performed by
    /// the supervisor as `prlimit(pid, resource, copy)` (wearing the caller's credentials, so
    /// the kernel's permission checks are the caller's), with the old limits written back when
    /// asked: the kernel never reads the caller's limits again after the verdict.
    pub(super) fn sys_rlimit(
        &mut self,
        call: &mut Call,
        pid: i32,
        resource: u64,
        new: u64,
        old: u64,
    ) -> Result<Reply, Fail> {
        let b = self.read_mem(call.tid, new, 16)?;
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let q = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let (current, max) = (q(0), q(8));
        let task = self.task_arg(call, pid);
        let cell = Cell::TaskSetrlimit {
            task,
            resource: resource as u32,
            current,
            max,
        };
        let mut emulate = self.performs(call);
        // Another process is named in the caller's pid numbers: ours only in our namespace.
        if emulate && pid != 0 && !self.same_pidns(call) {
            call.unfaithful = true;
            call.emulated = false;
            emulate = false;
        }
        if let Some(r) = self.decide(call, EventType::TaskSetrlimit, cell, emulate) {
            return Ok(r);
        }
        // Limits belong to the process (signal_struct), whichever thread sets them.
        let target = if pid == 0 { call.status.tgid } else { pid };
        let r = sys::prlimit(target, resource as u32, Some([current, max]), old != 0);
        let old_limits = match r {
            Ok(o) => o,
            Err(e) => return Ok(Reply::Error(e)),
        };
        if let Some([cur, max]) = old_limits {
            let mut bytes = cur.to_le_bytes().to_vec();
            bytes.extend_from_slice(&max.to_le_bytes());
            self.write_all(call, old, &bytes)?;
        }
        Ok(Reply::Value(0))
    }

    pub(super) fn sys_prlimit(
        &mut self,
        call: &mut Call,
        pid: i32,
        resource: u64,
        new: u64,
        old: u64,
    ) -> Result<Reply, Fail> {
        if pid != 0 && pid != call.status.tgid {
            // Another task's limits: task_prlimit with both credentials (LSM_PRLIMIT_READ = 1,
            // LSM_PRLIMIT_WRITE = 2). securebits are not in /proc and are reported as 0.
            let target = self
                .task
                .status(pid)
                .map_err(|_| Fail::Errno(libc::ESRCH))?;
            if new != 0 && self.is_supervisor(pid) {
                // New limits for the supervisor (too few descriptors, too little memory).
                return Ok(self.refuse());
            }
            let flags = u32::from(old != 0) | (u32::from(new != 0) << 1);
            let cell = Cell::TaskPrlimit {
                cred: tsem_core::event::Creds {
                    ids: call.status.coe,
                    securebits: 0,
                },
                tcred: tsem_core::event::Creds {
                    ids: target.coe,
                    securebits: 0,
                },
                flags,
            };
            let (v, allowed) = self.ask_token(call, EventType::TaskPrlimit, cell);
            let Some(allowed) = allowed else {
                return Ok(Reply::Error(v.errno));
            };
            if new == 0 {
                // Registers only: the pid, the resource, where to write the old limits.
                return Ok(Reply::Continue(Continuation::Allowed(allowed)));
            }
        }
        if new == 0 {
            return Ok(self.no_event("prlimit64 reading the caller's own limits reaches no hook"));
        }
        self.sys_rlimit(call, pid, resource, new, old)
    }

    pub(super) fn sys_setpriority(
        &mut self,
        call: &mut Call,
        which: i32,
        who: i32,
        nice: i32,
    ) -> Result<Reply, Fail> {
        let nice = nice.clamp(-20, 19);
        // PRIO_PGRP and PRIO_USER reach several tasks: one event with a zero target.
        let task = if which == libc::PRIO_PROCESS as i32 {
            self.task_arg(call, who)
        } else {
            Digest::zero(self.shared.alg.size())
        };
        self.simple(
            call,
            EventType::TaskSetnice,
            Cell::TaskValue {
                task,
                value: nice as u32,
            },
        )
    }

    pub(super) fn sys_ioprio(
        &mut self,
        call: &mut Call,
        set: bool,
        which: u64,
        who: i32,
        prio: u32,
    ) -> Result<Reply, Fail> {
        // IOPRIO_WHO_PROCESS = 1; groups and users reach several tasks.
        let task = if which == 1 {
            self.task_arg(call, who)
        } else {
            Digest::zero(self.shared.alg.size())
        };
        if set {
            self.simple(
                call,
                EventType::TaskSetioprio,
                Cell::TaskValue { task, value: prio },
            )
        } else {
            self.simple(call, EventType::TaskGetioprio, Cell::Task { task })
        }
    }

    /// capget: the event names the task the caller's header names; the supervisor then reads
    /// that very task's capabilities with its copy of the header and writes them into the
    /// caller's buffer, so a header rewritten after the check names no other task.
    pub(super) fn sys_capget(
        &mut self,
        call: &mut Call,
        hdr_addr: u64,
        data: u64,
    ) -> Result<Reply, Fail> {
        let hdr = self.read_mem(call.tid, hdr_addr, 8)?;
        let pid = i32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if data == 0 {
            return Ok(self.no_event("capget version probe: no capability is read"));
        }
        let st = if pid == 0 {
            call.status.clone()
        } else {
            self.task
                .status(pid)
                .map_err(|_| Fail::Errno(libc::ESRCH))?
        };
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        let cell = Cell::Capget {
            target: self.task_arg(call, pid),
            effective: st.coe.capeff,
            inheritable: st.capinh,
            permitted: st.capprm,
        };
        // No credential is checked by capget: any task may read any task it can name. The
        // caller's numbers are ours only in our pid namespace.
        let emulate = pid == 0 || self.same_pidns(call);
        call.unfaithful = !emulate;
        call.emulated = emulate;
        if let Some(r) = self.decide(call, EventType::Capget, cell, emulate) {
            return Ok(r);
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&hdr);
        let ours = if pid == 0 { call.tid } else { pid };
        h[4..8].copy_from_slice(&ours.to_le_bytes());
        let (after, r) = sys::capget_of(h);
        if after[..4] != hdr[..4] {
            // The kernel's preferred version, written back on a version it does not know.
            self.write_all(call, hdr_addr, &after[..4])?;
        }
        let d = match r {
            Ok(d) => d,
            Err(e) => return Ok(Reply::Error(e)),
        };
        // _LINUX_CAPABILITY_VERSION_1 has one 32-bit record, the later versions two.
        let words = if hdr[..4] == 0x1998_0330u32.to_le_bytes() {
            12
        } else {
            24
        };
        self.write_all(call, data, &d[..words])?;
        Ok(Reply::Value(0))
    }

    /// Write `bytes` into the caller's memory at `addr`, all or fail (EFAULT, as the kernel's
    /// copy_to_user).
    pub(super) fn write_all(&self, call: &Call, addr: u64, bytes: &[u8]) -> Result<(), Fail> {
        match self.task.write_mem(call.tid, addr, bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(Fail::Errno(libc::EFAULT)),
            Err(e) => Err(Fail::Errno(super::map_mem_err(&e))),
        }
    }

    pub(super) fn sys_prctl(
        &mut self,
        call: &mut Call,
        option: u32,
        args: [u64; 4],
    ) -> Result<Reply, Fail> {
        let mut arg2 = args[0];
        if option == libc::PR_SET_NAME as u32 || option == libc::PR_GET_NAME as u32 {
            arg2 = 0;
        }
        self.simple(
            call,
            EventType::TaskPrctl,
            Cell::TaskPrctl {
                option,
                args: [arg2, args[1], args[2], args[3]],
            },
        )
    }

    pub(super) fn sys_capset(
        &mut self,
        call: &mut Call,
        hdr_addr: u64,
        data_addr: u64,
    ) -> Result<Reply, Fail> {
        let hdr = self.read_mem(call.tid, hdr_addr, 8)?;
        let version = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let words = if version == 0x1998_0330 { 1 } else { 2 };
        let data = self.read_mem(call.tid, data_addr, 12 * words)?;
        let w = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let mut caps = [0u64; 3];
        for k in 0..words {
            for (j, c) in caps.iter_mut().enumerate() {
                *c |= u64::from(w(12 * k + 4 * j)) << (32 * k);
            }
        }
        if !self.valid(call) {
            return Ok(Reply::Gone);
        }
        // cap_user_data_t order: effective, permitted, inheritable.
        let cell = Cell::Capset {
            effective: caps[0],
            inheritable: caps[2],
            permitted: caps[1],
        };
        // Capabilities are set by a task for itself only, so the supervisor cannot perform it.
        // Continued: the kernel reads the data again, and a thread that rewrites it changes
        // this event's cell only; every later event carries the capabilities applied (see
        // `Request::reads_memory`), and the next call of the thread checks them against the
        // claim ([`Self::check_capset`]).
        let before = [
            call.status.coe.capeff,
            call.status.capprm,
            call.status.capinh,
        ];
        let r = self.simple(call, EventType::Capset, cell)?;
        if matches!(r, Reply::Continue(_)) {
            lock(&self.shared.capset_claims).insert(call.tid, (call.task.serial, caps, before));
        }
        Ok(r)
    }

    /// A continued capset checked at the thread's next call: capabilities that are neither
    /// those its event claimed nor those it had (the call failed) were applied from a buffer
    /// rewritten after the verdict. That event lied: counted in `unfaithful`, and the thread is
    /// untrusted from now on (TSEM's answer to a task that left its model). Whether so.
    pub(super) fn check_capset(&self, tid: i32, serial: u64, status: &Status) -> bool {
        let claim = lock(&self.shared.capset_claims).remove(&tid);
        let Some((_, claimed, before)) = claim.filter(|c| c.0 == serial) else {
            return false;
        };
        let now = [status.coe.capeff, status.capprm, status.capinh];
        if now == claimed || now == before {
            return false;
        }
        Counters::bump(&self.shared.counters.unfaithful);
        verdict::taint(&self.shared, tid);
        true
    }
}
