//! Asking the model about a call's event and turning the verdict into an answer: the only
//! way a handler reaches [`Reply::Continue`] is through these (see `verdict.rs`).

use std::os::fd::AsFd;

use tsem_core::event::{Cell, Event, EventHeader, EventType};

use super::target::Ident;
use super::{Allowed, Call, Continuation, Fail, Notifier, Reply, lock, verdict};
use crate::event::{Counters, EventHandler, RawEvent, Verdict};
use crate::sys::{self};

impl<H: EventHandler> Notifier<H> {
    pub(super) fn valid(&self, call: &Call) -> bool {
        self.task.id_valid(self.fd.as_fd(), call.n.id)
    }

    /// Make this thread wear the caller's credentials for the whole call (its path walks and
    /// permission checks are then the caller's), when it can: the caller is in the supervisor's
    /// user namespace (elsewhere its ids and capabilities mean something else), and the
    /// supervisor may switch (root, or `CAP_SETUID`, `CAP_SETGID`, `CAP_SETPCAP` and the
    /// caller's capabilities among its permitted ones). Otherwise the thread wears its own and
    /// [`Self::same_creds`] says whether they are the caller's anyway.
    ///
    /// The credentials are those of the status read for this call. The caller is blocked in
    /// the call, and a task's credentials change only by its own calls (each re-reads the
    /// status, `Sysno::invalidates_status`) or exec, so they are still its own when the
    /// supervisor acts. Only an error that leaves the thread with credentials nobody chose
    /// ends the loop (the workload is then killed).
    pub(super) fn wear(&mut self, call: &mut Call) -> Result<(), super::NotifyError> {
        let want = sys::Creds::of(&call.status.coe, &call.status.groups);
        let r = if self.same_userns(call.tid) {
            sys::wear(&want)
        } else {
            sys::wear_own()
        };
        match r {
            Ok(()) => call.worn = sys::wears(&want),
            Err(e @ sys::WearError::Stuck(_)) => return Err(super::NotifyError::Credentials(e)),
            // The thread wears its own credentials again.
            Err(_) => call.worn = false,
        }
        Ok(())
    }

    /// Whether the thread wears exactly the caller's credentials, so that it may perform the
    /// call for it.
    pub(super) fn same_creds(&self, call: &Call) -> bool {
        call.worn && sys::wears(&sys::Creds::of(&call.status.coe, &call.status.groups))
    }

    /// Whether the caller is in the supervisor's user namespace (cached as [`Self::same_root`]).
    fn same_userns(&mut self, tid: i32) -> bool {
        if let Some(Some(u)) = lock(&self.shared.status).get(&tid).map(|c| c.3) {
            return u;
        }
        let u = self
            .task
            .identity(tid, Ident::UserNs)
            .is_some_and(|s| s.1 == self.shared.own_userns);
        if let Some(c) = lock(&self.shared.status).get_mut(&tid) {
            c.3 = Some(u);
        }
        u
    }

    pub(super) fn same_root(&mut self, tid: i32) -> bool {
        if let Some(Some(r)) = lock(&self.shared.status).get(&tid).map(|c| c.2) {
            return r;
        }
        // The same root directory in another mount namespace is another tree of mounts.
        let r = self.task.identity(tid, Ident::Root) == Some(self.shared.own_root)
            && self.task.identity(tid, Ident::MntNs).map(|s| s.1) == Some(self.shared.own_mntns);
        if let Some(c) = lock(&self.shared.status).get_mut(&tid) {
            c.2 = Some(r);
        }
        r
    }

    pub(super) fn header(&self, call: &Call, ty: EventType) -> EventHeader {
        EventHeader {
            pid: Some(call.status.tgid as u64),
            tnum: None,
            context: None,
            number: None,
            process: call.status.name.clone().into(),
            event_type: ty,
            ttd: call.task.ident.ttd,
            p_ttd: call.task.ident.p_ttd,
            task_id: call.task.ident.task_id,
            p_task_id: call.task.ident.p_task_id,
            ts: sys::boottime_ns(),
        }
    }

    /// Hand one event to the modeling layer.
    pub(super) fn ask(&mut self, call: &mut Call, ty: EventType, cell: Cell) -> Verdict {
        self.ask_token(call, ty, cell).0
    }

    /// [`Self::ask`], with the proof of an allowing verdict, which a continued call needs.
    pub(super) fn ask_token(
        &mut self,
        call: &mut Call,
        ty: EventType,
        cell: Cell,
    ) -> (Verdict, Option<Allowed>) {
        let event = Event {
            header: self.header(call, ty),
            coe: call.status.coe,
            cell,
        };
        let raw = RawEvent {
            seq: call.seq,
            tid: call.tid,
            tgid: call.status.tgid,
            syscall: call.sys,
            args: call.n.args,
            untrusted: call.task.untrusted,
            emulated: call.emulated,
            event,
        };
        // The model and what a verdict does (killing the workload) are the supervisor's own.
        let (v, allowed) = sys::inspecting(|| verdict::model(&self.shared, &raw));
        // Later events of this call carry the mark the tree now has.
        call.task.untrusted |= v.taint;
        (v, allowed)
    }

    /// Continue a call that reaches no TSEM hook the sensor models (`why`), counted in
    /// `unmodeled`.
    pub(super) fn no_event(&self, why: &'static str) -> Reply {
        Counters::bump(&self.shared.counters.unmodeled);
        Reply::Continue(Continuation::NoEvent(why))
    }

    /// The answer to a call the supervisor cannot perform as the task would: EPERM when
    /// enforcing (the kernel would re-read what was decided, with other credentials), else
    /// CONTINUE after its verdict. Counted in `unfaithful` either way.
    pub(super) fn unfaithful_reply(&self, why: Continuation) -> Reply {
        Counters::bump(&self.shared.counters.unfaithful);
        if self.shared.enforcing {
            Reply::Error(libc::EPERM)
        } else {
            Reply::Continue(why)
        }
    }

    /// Whether the supervisor may perform `call` itself (it wears the task's credentials),
    /// recorded in the call: an allowed call it may not perform gets [`Self::unfaithful_reply`]
    /// (see [`Self::decide`] and [`Self::gate`]).
    pub(super) fn performs(&self, call: &mut Call) -> bool {
        call.unfaithful = !self.same_creds(call);
        call.emulated = !call.unfaithful;
        call.emulated
    }

    /// After an allowing verdict (`why`) and before the supervisor performs anything: the
    /// answer for a call it cannot perform faithfully, if this is one.
    pub(super) fn gate(&self, call: &Call, why: Continuation) -> Option<Reply> {
        call.unfaithful.then(|| self.unfaithful_reply(why))
    }

    /// Ask about an event the kernel then runs (continued) unless it is denied.
    ///
    /// Only a call whose event holds nothing but registers and descriptors is continued here
    /// (`Request::reads_memory`, `memory.rs`). One whose event was read from the caller's
    /// memory, which the kernel would read again after the verdict, is refused when
    /// enforcing ([`Self::unfaithful_reply`]): its handler must perform it on the supervisor's
    /// copy to let it run. A learning run continues it (counted in `unfaithful`), so that
    /// what it cannot perform is still learned.
    pub(super) fn simple(
        &mut self,
        call: &mut Call,
        ty: EventType,
        cell: Cell,
    ) -> Result<Reply, Fail> {
        let (v, allowed) = self.ask_token(call, ty, cell);
        Ok(match allowed {
            Some(a) if call.req.reads_memory() => self.unfaithful_reply(Continuation::Allowed(a)),
            Some(a) => Reply::Continue(Continuation::Allowed(a)),
            None => Reply::Error(v.errno),
        })
    }

    /// Ask about an event; when it is allowed, either the supervisor performs the operation
    /// (`emulate`: `None`, go on) or the kernel runs it (`Some(Continue)`). `Some` ends the call.
    pub(super) fn decide(
        &mut self,
        call: &mut Call,
        ty: EventType,
        cell: Cell,
        emulate: bool,
    ) -> Option<Reply> {
        let (v, allowed) = self.ask_token(call, ty, cell);
        let Some(a) = allowed else {
            return Some(Reply::Error(v.errno));
        };
        // Not performed: continued only as `simple` would continue it.
        if call.unfaithful || (!emulate && call.req.reads_memory()) {
            return Some(self.unfaithful_reply(Continuation::Allowed(a)));
        }
        (!emulate).then_some(Reply::Continue(Continuation::Allowed(a)))
    }

    pub(super) fn verdict_reply(v: Verdict) -> Option<Reply> {
        (!v.allow).then_some(Reply::Error(v.errno))
    }
}
