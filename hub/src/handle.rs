//! `RoomHandle`: clonable, kind-agnostic, and the only way into a game's task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use umpire_engine::protocol::GameId;
use umpire_engine::{Actor, Outcome, Seat, Seq};

use crate::error::{HubError, Result};
use crate::fanout::Subscriber;

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

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// What a game's task is asked to do.
#[derive(Debug)]
pub(crate) enum RoomMsg {
    Submit {
        by: Actor,
        cmd: Value,
        cid: Option<String>,
        reply: Reply<Seq>,
    },
    Join {
        player: String,
        reply: Reply<Joined>,
    },
    Leave {
        seat: Seat,
        session: u64,
        reply: Reply<Seq>,
    },
    Subscribe {
        sub: Subscriber,
        reply: Reply<Seq>,
    },
    Unsubscribe {
        session: u64,
    },
    Inspect {
        reply: Reply<Inspection>,
    },
}

/// The way into one game's task.
#[derive(Clone, Debug)]
pub(crate) struct RoomHandle {
    pub(crate) game: GameId,
    pub(crate) kind: &'static str,
    tx: mpsc::Sender<RoomMsg>,
    /// The last seq that is durable and published. Written only by the task.
    head: Arc<AtomicU64>,
}

impl RoomHandle {
    pub(crate) fn new(
        game: GameId,
        kind: &'static str,
        tx: mpsc::Sender<RoomMsg>,
        head: Arc<AtomicU64>,
    ) -> Self {
        RoomHandle {
            game,
            kind,
            tx,
            head,
        }
    }

    /// Whether the task has stopped (then the registry loads the game again).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The last durable, published seq.
    pub(crate) fn head(&self) -> Seq {
        self.head.load(Ordering::Acquire)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> RoomMsg) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| HubError::Unavailable)?;
        answer.await.map_err(|_| HubError::Unavailable)?
    }

    pub(crate) async fn submit(&self, by: Actor, cmd: Value, cid: Option<String>) -> Result<Seq> {
        self.ask(|reply| RoomMsg::Submit {
            by,
            cmd,
            cid,
            reply,
        })
        .await
    }

    pub(crate) async fn join(&self, player: String) -> Result<Joined> {
        self.ask(|reply| RoomMsg::Join { player, reply }).await
    }

    pub(crate) async fn leave(&self, seat: Seat, session: u64) -> Result<Seq> {
        self.ask(|reply| RoomMsg::Leave {
            seat,
            session,
            reply,
        })
        .await
    }

    /// Register `sub`; returns the head: events after it will be pushed, events up to it are
    /// in the log.
    pub(crate) async fn subscribe(&self, sub: Subscriber) -> Result<Seq> {
        self.ask(|reply| RoomMsg::Subscribe { sub, reply }).await
    }

    pub(crate) fn unsubscribe(&self, session: u64) {
        // Best effort: if the inbox is full, the task drops the subscriber at its next
        // publish anyway, when the session's queue turns out closed.
        let _ = self.tx.try_send(RoomMsg::Unsubscribe { session });
    }

    pub(crate) async fn inspect(&self) -> Result<Inspection> {
        self.ask(|reply| RoomMsg::Inspect { reply }).await
    }
}
