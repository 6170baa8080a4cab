//! "No call the filter sees continues without a verdict on its event", carried by the types.
//!
//! A handler lets the kernel run a call only with [`Reply::Continue`](super::Reply), which holds
//! a [`Continuation`]: either [`Allowed`], which nothing but [`model`] can make (its field is
//! private to this module, and `model` is the one place the modeling layer is asked), or
//! [`Continuation::NoEvent`] with the reason the call reaches no TSEM hook, spelled out where it
//! is used. A new handler that continues a call without asking the model does not compile
//! unless it states why there is nothing to ask.

use super::{Shared, lock};
use crate::event::{Counters, EventHandler, RawEvent, Verdict};

/// Proof that the model allowed an event of the call being answered.
#[derive(Debug)]
pub(crate) struct Allowed(());

/// Why the kernel may run a call the sensor saw.
#[derive(Debug)]
pub(crate) enum Continuation {
    /// The model allowed the call's event.
    Allowed(Allowed),
    /// The call reaches no TSEM hook the sensor models; the reason.
    NoEvent(
        #[expect(
            dead_code,
            reason = "read by people: each call site states why it has no event"
        )]
        &'static str,
    ),
}

/// Ask the modeling layer about `raw`: its verdict, and the proof of it when it allows.
pub(super) fn model<H: EventHandler>(
    shared: &Shared<H>,
    raw: &RawEvent,
) -> (Verdict, Option<Allowed>) {
    let v = submit(shared, raw);
    let allowed = v.allow.then_some(Allowed(()));
    (v, allowed)
}

/// The one path from the sensor into the modeling layer, for the notifier's events and the
/// tracer's (exec stops) alike: count the event, ask the handler, apply a tainting verdict to
/// the task tree, count a denial.
pub(crate) fn submit<H: EventHandler>(shared: &Shared<H>, raw: &RawEvent) -> Verdict {
    Counters::bump(&shared.counters.events);
    let v = lock(&shared.handler).on_event(raw);
    if v.taint {
        taint(shared, raw.tid);
    }
    if !v.allow {
        Counters::bump(&shared.counters.denied);
    }
    shared.after_verdict(&v);
    v
}

/// Mark `tid` untrusted in the task tree: its descendants inherit the mark, and every later
/// event of theirs carries it to the model (`RawEvent::untrusted`). The model decides when a
/// task is tainted (`crate::modeler::verdict_for`); the sensor only when a call would escape
/// it (`CLONE_UNTRACED`).
pub(crate) fn taint<H>(shared: &Shared<H>, tid: i32) {
    lock(&shared.tree).taint(tid);
}
