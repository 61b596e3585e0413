//! The way back from a game's task: a session's outbox, where game tasks put the events and
//! answers meant for one connection, and the answers themselves ([`Answer`], delivered through
//! a [`ReplyTo`]; [`Created`], [`Joined`] and [`Inspection`] for Rust callers).
//!
//! Game tasks never wait on it. Answers are always taken (a session bounds how many requests
//! it has in flight, so they are bounded too); events are taken until `limit` are waiting,
//! after which the game is marked lagging for this session, and the session reads what it
//! missed from the log instead. Memory stays bounded however slow the client.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use umpire_engine::protocol::{GameId, ServerMsg};
use umpire_engine::{Outcome, Seat, Seq};

use crate::doorbell::Doorbell;
use crate::error::{HubError, Result};
use crate::frames::Published;

/// What a game task put in an outbox.
#[derive(Debug)]
pub(crate) enum Item {
    /// An event of a game the session subscribed to.
    Event(Arc<Published>),
    /// The answer to a request, with the request's `ref`.
    Answer(Box<(Option<Value>, Answer)>),
    /// A message about a game that is not in its log (how many watch it), shared by every
    /// session it goes to.
    Notice(Arc<ServerMsg>),
}

/// What happened to a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Dropped; the session will read it from the log.
    Lagged,
    /// The session is gone: stop pushing to it.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Item>,
    /// Events in `items`.
    events: usize,
    /// Games whose events were dropped since the session last looked.
    lagged: Vec<GameId>,
    closed: bool,
    /// Another connection resumed this session: it must close, and never save again.
    taken: bool,
}

/// What the monitor shows of a connection, kept up to date by its session.
#[derive(Debug, Default, Clone)]
pub(crate) struct Card {
    pub(crate) session: crate::SessionId,
    pub(crate) peer: String,
    pub(crate) opened: umpire_engine::Millis,
    pub(crate) user: Option<String>,
    pub(crate) games: usize,
    pub(crate) behind_since: Option<umpire_engine::Millis>,
    /// The session's public id (its `session:<sid>` channel), so that housekeeping knows
    /// which session channels still have a connection.
    pub(crate) sid: String,
}

/// One session's outbox. Shared (in an `Arc`) by the session and every game it follows.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    card: Mutex<Card>,
    /// Rung by every push; the session waits on it.
    bell: Doorbell,
    limit: usize,
}

impl Outbox {
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            card: Mutex::default(),
            bell: Doorbell::default(),
            limit: limit.max(1),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is a single push, swap or flag: never half done.
        crate::lock(&self.state)
    }

    /// Queue an event, or mark its game lagging if the queue is full. Never waits.
    pub(crate) fn push_event(&self, event: &Arc<Published>) -> Pushed {
        let mut state = self.state();
        if state.closed {
            return Pushed::Closed;
        }
        let pushed = if state.events < self.limit {
            state.items.push_back(Item::Event(Arc::clone(event)));
            state.events += 1;
            Pushed::Queued
        } else {
            if !state.lagged.contains(&event.game) {
                state.lagged.push(event.game);
            }
            Pushed::Lagged
        };
        drop(state);
        self.wake();
        pushed
    }

    /// Queue an answer. Never refused while the session lives.
    pub(crate) fn push_answer(&self, r#ref: Option<Value>, answer: Answer) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        state
            .items
            .push_back(Item::Answer(Box::new((r#ref, answer))));
        drop(state);
        self.wake();
    }

    /// Queue a notice, unless the queue is full: a notice is only news, and the next one
    /// says it again.
    pub(crate) fn push_notice(&self, notice: &Arc<ServerMsg>) {
        let mut state = self.state();
        if state.closed || state.events >= self.limit {
            return;
        }
        state.items.push_back(Item::Notice(Arc::clone(notice)));
        state.events += 1;
        drop(state);
        self.wake();
    }

    /// Move everything queued into `items` (which should be empty) and the lagging games into
    /// `lagged`. The two deques swap, so their allocations are reused.
    /// Returns whether another connection resumed this session meanwhile.
    pub(crate) fn take(&self, items: &mut VecDeque<Item>, lagged: &mut Vec<GameId>) -> bool {
        let mut state = self.state();
        // Everything rung for so far is taken now: no reason to wake for it again.
        self.bell.reset();
        std::mem::swap(&mut state.items, items);
        state.events = 0;
        lagged.append(&mut state.lagged);
        // A burst grew the queue: give the memory back rather than keep it per connection.
        if state.items.capacity() > 256 {
            state.items = VecDeque::new();
        }
        state.taken
    }

    /// Change what the monitor shows of this connection.
    pub(crate) fn update_card(&self, f: impl FnOnce(&mut Card)) {
        f(&mut crate::lock(&self.card));
    }

    /// What the monitor shows of this connection, and how many events wait for it.
    pub(crate) fn card(&self) -> (Card, usize) {
        let card = crate::lock(&self.card).clone();
        (card, self.state().events)
    }

    /// Wake the session: something was queued (or, at shutdown, it should look).
    pub(crate) fn wake(&self) {
        self.bell.ring();
    }

    /// Wait until something may have been queued since the session last looked.
    pub(crate) async fn ready(&self) {
        self.bell.wait().await;
    }

    /// Another connection resumed this session: from now on it neither saves nor sends.
    pub(crate) fn take_over(&self) {
        self.state().taken = true;
        self.wake();
    }

    /// Run `f` (the session's save) unless the session was taken over, atomically with
    /// [`Outbox::take_over`]: a save never lands after the connection that took over
    /// removed the record.
    pub(crate) fn unless_taken<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let state = self.state();
        (!state.taken).then(f)
    }

    /// The session is gone: drop everything and refuse more.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.items = VecDeque::new();
        state.lagged = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(game: GameId, seq: u64) -> Arc<Published> {
        Published::new(game, Seq(seq), Bytes::new())
    }

    #[test]
    fn events_past_the_limit_mark_their_game_lagging_once() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push_event(&event(GameId(1), 1)), Pushed::Queued);
        assert_eq!(outbox.push_event(&event(GameId(1), 2)), Pushed::Queued);
        assert_eq!(outbox.push_event(&event(GameId(1), 3)), Pushed::Lagged);
        assert_eq!(outbox.push_event(&event(GameId(1), 4)), Pushed::Lagged);
        assert_eq!(outbox.push_event(&event(GameId(2), 1)), Pushed::Lagged);
        let (mut items, mut lagged) = (VecDeque::new(), Vec::new());
        outbox.take(&mut items, &mut lagged);
        assert_eq!(items.len(), 2);
        assert_eq!(lagged, vec![1, 2]);
        // Taking made room again.
        assert_eq!(outbox.push_event(&event(GameId(1), 5)), Pushed::Queued);
    }

    #[test]
    fn a_closed_outbox_takes_nothing() {
        let outbox = Outbox::new(2);
        outbox.close();
        assert_eq!(outbox.push_event(&event(GameId(1), 1)), Pushed::Closed);
        let (mut items, mut lagged) = (VecDeque::new(), Vec::new());
        outbox.take(&mut items, &mut lagged);
        assert!(items.is_empty() && lagged.is_empty());
    }
}

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
    /// Where the lobby of `kind` puts a player asking to play.
    Play {
        kind: &'static str,
        result: Result<PlayPlan>,
    },
}

/// Where `play` puts a player.
#[derive(Debug, Clone)]
pub(crate) enum PlayPlan {
    /// A new game, reserved in the lobby as `ticket`: create it (with `config`), then report
    /// it to the lobby.
    Create { ticket: u64, config: Value },
    /// A place in `ticket`'s game: take a seat with this join key. With what was asked, to
    /// ask again if the game filled or ended meanwhile (`tries` times so far).
    Join {
        ticket: u64,
        key: String,
        /// The seat a matchmaker's group gave, taken if it is free.
        seat: Option<umpire_engine::Seat>,
        config: Value,
        props: Value,
        tries: u8,
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
            Answer::Play { result, .. } => *result = Err(e.clone()),
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
    /// Back over the bus to request `id` of node `node`.
    Remote {
        bus: Arc<dyn crate::bus::Bus>,
        node: String,
        id: u64,
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

    /// Back over `bus` to request `id` of node `node`.
    pub(crate) fn remote(bus: Arc<dyn crate::bus::Bus>, node: String, id: u64) -> Self {
        ReplyTo(Some(Target::Remote { bus, node, id }))
    }

    /// Whether the request came from another node (a follower must not forward it again).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.0, Some(Target::Remote { .. }))
    }

    pub(crate) fn send(mut self, answer: Answer) {
        match self.0.take() {
            Some(Target::Remote { bus, node, id }) => {
                crate::game::remote::reply(&bus, &node, id, answer);
            }
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
            outbox.push_answer(
                r#ref,
                Answer::Command {
                    game: GameId(0),
                    result,
                },
            );
        }
    }
}

/// Answer every request of a turn that could not be made durable with `e`.
pub(crate) fn fail_all(answers: Vec<(ReplyTo, Answer)>, e: &HubError) {
    for (reply, mut answer) in answers {
        answer.fail(e);
        reply.send(answer);
    }
}
