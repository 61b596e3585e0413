//! The one publish step of every stream task, rooms and channels alike: durable events into
//! every subscriber's outbox, never waiting, and new subscribers added after them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use umpire_engine::Seq;

use crate::frames::Published;
use crate::game::runtime::Runtime;
use crate::handle::Subscriber;
use crate::metrics::Metrics;
use crate::outbox::{Answer, ReplyTo};

/// The tail of every turn of a stream task, once its records are durable up to `durable`:
/// count them, move the head, announce the new version to other nodes, publish each event to
/// every subscriber, then add `joiners` (they read this turn's events from the log, not from
/// here), then answer each request with the head. Returns whether a subscriber's session was
/// gone. `wrote`: this task wrote the events (a follower publishes what its leader wrote:
/// neither counted nor announced again).
#[allow(clippy::too_many_arguments)]
pub(crate) fn publish(
    subscribers: &mut Vec<Subscriber>,
    head: &AtomicU64,
    durable: Seq,
    events: &[Arc<Published>],
    joiners: &[Subscriber],
    answers: Vec<(ReplyTo, Answer)>,
    rt: &Runtime,
    wrote: bool,
) -> bool {
    let metrics = &*rt.metrics;
    head.store(durable.0, Ordering::Release);
    if wrote {
        metrics.events_appended.inc_by(events.len() as u64);
        if let Some(first) = events.first() {
            rt.bus.announce(first.game, durable);
        }
    }
    let gone = fan_out(subscribers, events, metrics);
    register(subscribers, joiners);
    for (reply, mut answer) in answers {
        answer.set_head(durable);
        reply.send(answer);
    }
    gone
}

/// Queue each event for every subscriber, never waiting: a full outbox marks the stream
/// lagging for that session, which then reads what it missed from the log. Subscribers whose
/// session is gone are dropped; returns whether any was.
fn fan_out(
    subscribers: &mut Vec<Subscriber>,
    events: &[Arc<Published>],
    metrics: &Metrics,
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
fn register(subscribers: &mut Vec<Subscriber>, joiners: &[Subscriber]) {
    for sub in joiners {
        subscribers.retain(|s| s.session != sub.session);
        subscribers.push(sub.clone());
    }
}
