//! The way into a game's task: `RoomHandle`, clonable and kind-agnostic; its inbox; what the
//! task is asked ([`RoomMsg`]); the subscribers it holds. Answers go back through the outbox
//! (`outbox.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::oneshot;
use umpire_engine::protocol::GameId;
use umpire_engine::{Actor, Seat, Seq};

use crate::doorbell::Doorbell;
use crate::error::{HubError, Result};
use crate::outbox::{Answer, Inspection, Outbox, RematchPlan, ReplyTo};

/// A connection's session, numbered by the hub from 1 as sessions open (not its resume token
/// and not its public `sid`): what logs, `/admin` and game tasks name it by. A number on the
/// wire.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A session's subscription to one game, as the game's task holds it.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session: SessionId,
    pub(crate) outbox: Arc<Outbox>,
    /// The seat the session plays in this game (set by the game task when it seats the
    /// session); `None` for a spectator. A seat with a subscriber is online.
    pub(crate) seat: Option<Seat>,
}

impl RoomMsg {
    /// Answer the message with `e` instead of handling it (its game stopped).
    pub(crate) fn fail(self, game: GameId, e: &HubError) {
        let (reply, answer) = match self {
            RoomMsg::Submit { reply, .. } | RoomMsg::Publish { reply, .. } => (
                reply,
                Answer::Command {
                    game,
                    result: Ok(Seq(0)),
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
                    result: Ok(Seq(0)),
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
                    result: Ok(Seq(0)),
                },
            ),
            RoomMsg::Rematch { reply, .. } => (
                reply,
                Answer::Rematch {
                    game,
                    result: Ok(RematchPlan::Join { key: String::new() }),
                },
            ),
            RoomMsg::Play { reply, .. } => (
                reply,
                Answer::Play {
                    kind: "",
                    result: Err(HubError::Unavailable),
                },
            ),
            // Nobody waits for these, or the waiter sees its channel dropped.
            RoomMsg::Unsubscribe { .. }
            | RoomMsg::Announced { .. }
            | RoomMsg::Answered { .. }
            | RoomMsg::Lost
            | RoomMsg::Presence { .. }
            | RoomMsg::Audience { .. }
            | RoomMsg::RematchTold { .. }
            | RoomMsg::RematchReady { .. }
            | RoomMsg::Opened { .. }
            | RoomMsg::Listed { .. }
            | RoomMsg::Players { .. }
            | RoomMsg::Cancel { .. }
            | RoomMsg::OpenGames { .. }
            | RoomMsg::LeaveIfWaiting { .. }
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
    /// Take a free seat (`seat` if it is free: a matchmaker's seating), or the seat `player`
    /// already holds, and optionally subscribe.
    Join {
        player: String,
        seat: Option<Seat>,
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
    /// (A follower) the stream is durable up to `version`, as node `by` said.
    Announced { version: Seq, by: String },
    /// (A follower) the leader answered forwarded request `id`.
    Answered {
        id: u64,
        answer: Box<crate::game::remote::WireAnswer>,
    },
    /// (The leader) this node no longer holds the game: another node took it over.
    Lost,
    /// (The leader) node `node` plays `seats` of the game and has `spectators`, until
    /// `until`.
    Presence {
        node: String,
        seats: std::collections::BTreeSet<Seat>,
        spectators: u64,
        until: u64,
    },
    /// (A follower) the spectator count, all nodes together.
    Audience { spectators: u64 },
    /// (A follower) the leader says the rematch exists.
    RematchTold { next: (GameId, String, String) },
    /// (A lobby) a player asks to play.
    Play {
        ask: Box<crate::game::lobby::PlayAsk>,
        reply: ReplyTo,
    },
    /// (A lobby) the game reserved as `ticket` exists (`None`: creating it failed).
    Opened {
        ticket: u64,
        opened: Option<(GameId, String, String)>,
    },
    /// (A lobby) list `game`, created private by `player` (`create` with `open`).
    Listed {
        game: GameId,
        config: Value,
        player: String,
        join: String,
        watch: String,
    },
    /// (A lobby) the listed `game`'s players now, and whether it is over.
    Players {
        game: GameId,
        players: Vec<String>,
        over: bool,
    },
    /// (A lobby) `session` stops waiting to play.
    Cancel { session: SessionId },
    /// (A lobby) the open games.
    OpenGames {
        reply: oneshot::Sender<Vec<crate::game::lobby::OpenGame>>,
    },
    /// Give up `seat` if the game has not started (a seat is free) and is not over: a
    /// waiting player's connection closed.
    LeaveIfWaiting { seat: Seat, session: SessionId },
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
        crate::lock(&self.queue)
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
        Seq(self.head.load(Ordering::Acquire))
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
