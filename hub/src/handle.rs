//! `RoomHandle`: clonable, kind-agnostic, the only way into a game's task; what the task is
//! asked ([`RoomMsg`]) and how it answers ([`Answer`], delivered through a [`ReplyTo`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use umpire_engine::protocol::GameId;
use umpire_engine::{Actor, Outcome, Seat, Seq};

use crate::doorbell::Doorbell;
use crate::error::{HubError, Result};
use crate::outbox::Outbox;

/// A seat taken in a game.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Joined {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// The seat.
    pub seat: Seat,
    /// A secret that takes this seat back later.
    pub token: String,
}

/// A game just created, with the creator in its first seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Created {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// Lets others take a seat.
    pub join: String,
    /// Lets others watch.
    pub watch: String,
    /// The creator's seat.
    pub seat: Seat,
    /// Takes the creator's seat back later.
    pub token: String,
}

/// A game's state as the hub sees it, for embedders, tools and tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    /// The kind.
    pub kind: String,
    /// The seq of the last applied event.
    pub version: Seq,
    /// The game's own state, as JSON.
    pub state: Value,
    /// The whole match (state, seats, timers) as JSON: equal matches give equal values.
    pub whole: Value,
    /// Who holds each seat.
    pub seats: Vec<Option<String>>,
    /// Pending timers.
    pub timers: usize,
    /// How it ended, if it has.
    pub outcome: Option<Outcome>,
}

/// A session, as game tasks know it.
pub(crate) type SessionId = u64;

/// A session's subscription to one game, as the game's task holds it.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session: SessionId,
    pub(crate) outbox: Arc<Outbox>,
    /// The seat the session plays in this game (set by the game task when it seats the
    /// session); `None` for a spectator. A seat with a subscriber is online.
    pub(crate) seat: Option<Seat>,
}

/// A seat taken, as the game task reports it.
#[derive(Clone, Debug)]
pub(crate) struct Seated {
    pub(crate) joined: Joined,
    /// The join and watch keys, for the creator's first answer only.
    pub(crate) invite: Option<(String, String)>,
    /// The join and watch keys again, for a player who took their seat back.
    pub(crate) keys: Option<(String, String)>,
    /// The durable head when the seat was taken: the subscriber reads up to here from the log.
    pub(crate) head: Seq,
}

/// What a game task answers.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A command: the last seq it produced, durable.
    Command { game: GameId, result: Result<Seq> },
    /// A seat taken (a create, a join, a seat token).
    Seated {
        game: GameId,
        result: Result<Seated>,
    },
    /// Watching, from `from`; the head is where the log ends for now.
    Watching {
        game: GameId,
        kind: &'static str,
        from: Seq,
        result: Result<Seq>,
    },
    /// A seat given up (its `Left` seq), or watching stopped (`None`).
    Left {
        game: GameId,
        result: Result<Option<Seq>>,
    },
    /// Following again after the game's task was restarted; the head is where the log ends.
    Followed { game: GameId, result: Result<Seq> },
    /// What a player asking for a rematch of the finished `game` should do.
    Rematch {
        game: GameId,
        result: Result<RematchPlan>,
    },
}

/// The way to a finished game's rematch.
#[derive(Debug, Clone)]
pub(crate) enum RematchPlan {
    /// Nobody started it: create a game of `kind` with `config`, then report it.
    Create { kind: String, config: Value },
    /// It exists: take a seat with this join key.
    Join { key: String },
}

impl Answer {
    /// The game's durable head, known once the turn that answers is committed.
    pub(crate) fn set_head(&mut self, version: Seq) {
        match self {
            Answer::Seated {
                result: Ok(seated), ..
            } => seated.head = version,
            Answer::Watching {
                result: Ok(head), ..
            }
            | Answer::Followed {
                result: Ok(head), ..
            } => *head = version,
            _ => {}
        }
    }

    /// Every answer fails with `e` (the turn's events could not be made durable).
    pub(crate) fn fail(&mut self, e: &HubError) {
        match self {
            Answer::Command { result, .. } => *result = Err(e.clone()),
            Answer::Seated { result, .. } => *result = Err(e.clone()),
            Answer::Watching { result, .. } => *result = Err(e.clone()),
            Answer::Left { result, .. } => *result = Err(e.clone()),
            Answer::Followed { result, .. } => *result = Err(e.clone()),
            Answer::Rematch { result, .. } => *result = Err(e.clone()),
        }
    }
}

/// Where a game task sends an answer: to a Rust caller waiting on it, or into a session's
/// outbox, in order with the events it sends that session.
///
/// Dropped unanswered by a panic (in the game's code, while its task held the request), it
/// answers "unavailable" by itself: no client waits for ever. (Dropped otherwise, whoever
/// dropped it answers.)
#[derive(Debug)]
pub(crate) struct ReplyTo(Option<Target>);

#[derive(Debug)]
enum Target {
    Caller(oneshot::Sender<Answer>),
    Session {
        outbox: Arc<Outbox>,
        r#ref: Option<Value>,
    },
}

impl ReplyTo {
    /// To a Rust caller waiting on `tx` (dropped, the caller hears "unavailable").
    pub(crate) fn caller(tx: oneshot::Sender<Answer>) -> Self {
        ReplyTo(Some(Target::Caller(tx)))
    }

    /// Into a session's outbox, answering its request `r#ref`.
    pub(crate) fn session(outbox: Arc<Outbox>, r#ref: Option<Value>) -> Self {
        ReplyTo(Some(Target::Session { outbox, r#ref }))
    }

    pub(crate) fn send(mut self, answer: Answer) {
        match self.0.take() {
            Some(Target::Caller(tx)) => {
                let _ = tx.send(answer);
            }
            Some(Target::Session { outbox, r#ref }) => outbox.push_answer(r#ref, answer),
            None => {}
        }
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Some(Target::Session { outbox, r#ref }) = self.0.take() {
            let result = Err(HubError::Unavailable);
            outbox.push_answer(r#ref, Answer::Command { game: 0, result });
        }
    }
}

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

/// Answer every request of a turn that could not be made durable with `e`.
pub(crate) fn fail_all(answers: Vec<(ReplyTo, Answer)>, e: &HubError) {
    for (reply, mut answer) in answers {
        answer.fail(e);
        reply.send(answer);
    }
}

impl RoomMsg {
    /// Answer the message with `e` instead of handling it (its game stopped).
    pub(crate) fn fail(self, game: GameId, e: &HubError) {
        let (reply, answer) = match self {
            RoomMsg::Submit { reply, .. } | RoomMsg::Publish { reply, .. } => (
                reply,
                Answer::Command {
                    game,
                    result: Ok(0),
                },
            ),
            RoomMsg::Join { reply, .. } | RoomMsg::Reclaim { reply, .. } => {
                let result = Err(e.clone());
                (reply, Answer::Seated { game, result })
            }
            RoomMsg::Watch { reply, from, .. } => {
                let answer = Answer::Watching {
                    game,
                    kind: "",
                    from,
                    result: Ok(0),
                };
                (reply, answer)
            }
            RoomMsg::Leave { reply, .. } => (
                reply,
                Answer::Left {
                    game,
                    result: Ok(None),
                },
            ),
            RoomMsg::Follow { reply, .. } => (
                reply,
                Answer::Followed {
                    game,
                    result: Ok(0),
                },
            ),
            RoomMsg::Rematch { reply, .. } => (
                reply,
                Answer::Rematch {
                    game,
                    result: Ok(RematchPlan::Join { key: String::new() }),
                },
            ),
            // Nobody waits for these, or the waiter sees its channel dropped.
            RoomMsg::Unsubscribe { .. }
            | RoomMsg::RematchReady { .. }
            | RoomMsg::Inspect { .. }
            | RoomMsg::Summary { .. } => return,
        };
        let mut answer = answer;
        answer.fail(e);
        reply.send(answer);
    }
}

/// What a game's task is asked to do.
#[derive(Debug)]
pub(crate) enum RoomMsg {
    /// A game command (JSON, in the game's format).
    Submit {
        by: Actor,
        cmd: Value,
        cid: Option<String>,
        reply: ReplyTo,
    },
    /// Take a free seat (or the seat `player` already holds) and optionally subscribe.
    Join {
        player: String,
        sub: Option<Subscriber>,
        reply: ReplyTo,
    },
    /// Take back `seat` with the seat token `token`, and optionally subscribe.
    Reclaim {
        seat: Seat,
        token: String,
        /// Who asks: the seat's holder, or anyone if a guest holds it.
        player: String,
        sub: Option<Subscriber>,
        reply: ReplyTo,
    },
    /// Subscribe a spectator.
    Watch {
        sub: Subscriber,
        from: Seq,
        reply: ReplyTo,
    },
    /// Give up `seat` and stop sending to `session`.
    Leave {
        seat: Seat,
        session: SessionId,
        reply: ReplyTo,
    },
    /// Subscribe a session that followed the game's previous task; answered with the head.
    Follow { sub: Subscriber, reply: ReplyTo },
    /// Append a notice to a channel (channels only).
    Publish { data: Value, reply: ReplyTo },
    /// A player asks for a rematch of this (finished) game.
    Rematch { reply: ReplyTo },
    /// The rematch a player was told to create exists (`None`: creating it failed).
    RematchReady {
        next: Option<(GameId, String, String)>,
    },
    /// Stop sending to `session`.
    Unsubscribe { session: SessionId },
    /// Report the game's state.
    Inspect { reply: oneshot::Sender<Inspection> },
    /// Report what the monitor lists (`created` is filled in by the hub, from the log).
    Summary {
        reply: oneshot::Sender<crate::admin::GameSummary>,
    },
}

/// A game task's inbox. Unbounded: every sender bounds what it has in flight (sessions their
/// requests, Rust callers by waiting for the answer). Nothing is allocated while it is empty,
/// which is most of the time for most games.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: Mutex<(VecDeque<RoomMsg>, bool)>,
    bell: Doorbell,
    /// The task ended for good (the game expired, or is finished and idle), not on a failure:
    /// it is loaded again only when someone asks for it.
    retired: AtomicBool,
}

impl Inbox {
    fn queue(&self) -> MutexGuard<'_, (VecDeque<RoomMsg>, bool)> {
        // Each change is one push, pop or flag: a poisoned queue is still a queue.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `msg` for the task, or give it back if the task has stopped.
    fn send(&self, msg: RoomMsg) -> std::result::Result<(), RoomMsg> {
        let mut queue = self.queue();
        if queue.1 {
            return Err(msg);
        }
        queue.0.push_back(msg);
        drop(queue);
        self.bell.ring();
        Ok(())
    }

    /// Move up to `max` messages into `into`.
    pub(crate) fn take(&self, max: usize, into: &mut VecDeque<RoomMsg>) {
        self.bell.reset();
        let mut queue = self.queue();
        let n = queue.0.len().min(max);
        into.extend(queue.0.drain(..n));
        if !queue.0.is_empty() {
            // More than a turn takes: the next turn must not wait for a ring.
            self.bell.ring();
        } else if queue.0.capacity() > 64 {
            queue.0 = VecDeque::new();
        }
    }

    /// Wait until something may have been queued since the last `take`.
    pub(crate) async fn ready(&self) {
        self.bell.wait().await;
    }

    /// Refuse further messages; return those still queued.
    pub(crate) fn close(&self) -> VecDeque<RoomMsg> {
        let mut queue = self.queue();
        queue.1 = true;
        std::mem::take(&mut queue.0)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.queue().1
    }

    /// Close, and wake the task so that it sees it: it ends once it finds the inbox closed
    /// and empty. Messages still queued are answered `unavailable`.
    pub(crate) fn stop(&self, game: GameId) {
        for msg in self.close() {
            msg.fail(game, &HubError::Unavailable);
        }
        self.bell.ring();
    }

    /// Close, marked as retired, if nothing is queued (the game leaves memory); `false`, and
    /// still open, if something is.
    pub(crate) fn evict(&self) -> bool {
        let mut queue = self.queue();
        if !queue.0.is_empty() {
            return false;
        }
        self.retired.store(true, Ordering::Release);
        queue.1 = true;
        true
    }

    /// Mark the task as ending for good. Before [`Inbox::close`], so that whoever sees it
    /// closed also sees why.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// The way into one game's task.
#[derive(Clone, Debug)]
pub(crate) struct RoomHandle {
    pub(crate) game: GameId,
    inbox: Arc<Inbox>,
    /// The last seq that is durable and published. Written only by the task.
    head: Arc<AtomicU64>,
    /// What each viewer may see of the game's events (`None` for a channel: everyone sees all).
    views: Option<Arc<dyn crate::frames::Views>>,
}

impl RoomHandle {
    pub(crate) fn new(
        game: GameId,
        inbox: Arc<Inbox>,
        head: Arc<AtomicU64>,
        views: Option<Arc<dyn crate::frames::Views>>,
    ) -> Self {
        RoomHandle {
            game,
            inbox,
            head,
            views,
        }
    }

    /// The stored event at `seq`, read back from the log, ready to be shown to each viewer.
    pub(crate) fn published(
        &self,
        seq: Seq,
        record: bytes::Bytes,
    ) -> Arc<crate::frames::Published> {
        match &self.views {
            Some(views) => crate::frames::Published::viewed(self.game, seq, record, views),
            None => crate::frames::Published::new(self.game, seq, record),
        }
    }

    /// Whether the task has stopped (then the registry loads the game again).
    pub(crate) fn is_closed(&self) -> bool {
        self.inbox.is_closed()
    }

    /// Whether the task ended for good rather than on a failure: it is not restarted by
    /// itself, only loaded when someone asks for the game.
    pub(crate) fn is_retired(&self) -> bool {
        self.inbox.retired.load(Ordering::Acquire)
    }

    /// The last durable, published seq.
    pub(crate) fn head(&self) -> Seq {
        self.head.load(Ordering::Acquire)
    }

    /// Queue a message for the task.
    ///
    /// # Errors
    /// [`HubError::Unavailable`] if the task has stopped; the message is dropped.
    pub(crate) fn send(&self, msg: RoomMsg) -> Result<()> {
        self.inbox.send(msg).map_err(|_| HubError::Unavailable)
    }

    /// Queue a message for the task, or give it back if the task has stopped.
    pub(crate) fn try_send(&self, msg: RoomMsg) -> std::result::Result<(), RoomMsg> {
        self.inbox.send(msg)
    }

    /// Ask the task and wait for its answer (for Rust callers).
    pub(crate) async fn ask(&self, make: impl FnOnce(ReplyTo) -> RoomMsg) -> Result<Answer> {
        let (reply, answer) = oneshot::channel();
        self.send(make(ReplyTo::caller(reply)))?;
        answer.await.map_err(|_| HubError::Unavailable)
    }

    /// Stop the task (a channel whose stream is being removed).
    pub(crate) fn stop(&self) {
        self.inbox.stop(self.game);
    }

    pub(crate) fn unsubscribe(&self, session: SessionId) {
        // If the task has stopped there is nothing to unsubscribe from.
        let _ = self.send(RoomMsg::Unsubscribe { session });
    }
}
