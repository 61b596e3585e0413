//! A session's outbox: where game tasks put the events and answers meant for one connection.
//!
//! Game tasks never wait on it. Answers are always taken (a session bounds how many requests
//! it has in flight, so they are bounded too); events are taken until `limit` are waiting,
//! after which the game is marked lagging for this session, and the session reads what it
//! missed from the log instead. Memory stays bounded however slow the client.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use umpire_engine::protocol::{GameId, ServerMsg};

use crate::doorbell::Doorbell;
use crate::frames::Published;
use crate::handle::Answer;

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
    pub(crate) session: u64,
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
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        f(&mut self.card.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// What the monitor shows of this connection, and how many events wait for it.
    pub(crate) fn card(&self) -> (Card, usize) {
        let card = self.card.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
        Published::new(game, seq, Bytes::new())
    }

    #[test]
    fn events_past_the_limit_mark_their_game_lagging_once() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push_event(&event(1, 1)), Pushed::Queued);
        assert_eq!(outbox.push_event(&event(1, 2)), Pushed::Queued);
        assert_eq!(outbox.push_event(&event(1, 3)), Pushed::Lagged);
        assert_eq!(outbox.push_event(&event(1, 4)), Pushed::Lagged);
        assert_eq!(outbox.push_event(&event(2, 1)), Pushed::Lagged);
        let (mut items, mut lagged) = (VecDeque::new(), Vec::new());
        outbox.take(&mut items, &mut lagged);
        assert_eq!(items.len(), 2);
        assert_eq!(lagged, vec![1, 2]);
        // Taking made room again.
        assert_eq!(outbox.push_event(&event(1, 5)), Pushed::Queued);
    }

    #[test]
    fn a_closed_outbox_takes_nothing() {
        let outbox = Outbox::new(2);
        outbox.close();
        assert_eq!(outbox.push_event(&event(1, 1)), Pushed::Closed);
        let (mut items, mut lagged) = (VecDeque::new(), Vec::new());
        outbox.take(&mut items, &mut lagged);
        assert!(items.is_empty() && lagged.is_empty());
    }
}
