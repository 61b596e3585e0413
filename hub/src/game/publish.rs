//! The one publish step of every stream task, rooms and channels alike: durable events into
//! every subscriber's outbox, never waiting, and new subscribers added after them.

use std::sync::Arc;

use crate::handle::Subscriber;

/// Queue each event for every subscriber, never waiting: a full outbox marks the stream
/// lagging for that session, which then reads what it missed from the log. Subscribers whose
/// session is gone are dropped; returns whether any was.
pub(crate) fn fan_out(
    subscribers: &mut Vec<Subscriber>,
    events: &[Arc<crate::frames::Published>],
    metrics: &crate::metrics::Metrics,
) -> bool {
    let mut gone = false;
    for event in events {
        subscribers.retain(|sub| match sub.outbox.push_event(event) {
            crate::outbox::Pushed::Queued => true,
            crate::outbox::Pushed::Lagged => {
                metrics.subscribers_lagged.inc();
                true
            }
            crate::outbox::Pushed::Closed => {
                gone = true;
                false
            }
        });
    }
    gone
}

/// Add `joiners` after a turn was published (they read it from the log), each session once.
pub(crate) fn register(subscribers: &mut Vec<Subscriber>, joiners: &[Subscriber]) {
    for sub in joiners {
        subscribers.retain(|s| s.session != sub.session);
        subscribers.push(sub.clone());
    }
}
