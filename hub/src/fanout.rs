//! How events reach subscribers: a bounded queue per connection that the game task never
//! waits on, and a lag signal for when that queue was full.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};
use umpire_engine::protocol::GameId;

use crate::session::Out;

/// A connection's subscription to one game, as the game's task holds it.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// The session, so it can unsubscribe.
    pub(crate) session: u64,
    /// The session's outgoing queue. The game task only ever `try_send`s into it.
    pub(crate) tx: mpsc::Sender<Out>,
    /// Raised when an event could not be queued; the session then reads the gap from the log.
    pub(crate) lag: Arc<LagSignal>,
}

/// "You missed events of these games": set by game tasks, drained by the session's writer.
///
/// Memory stays bounded: at most one entry per subscribed game, however far behind.
#[derive(Debug, Default)]
pub(crate) struct LagSignal {
    games: Mutex<HashSet<GameId>>,
    pub(crate) notify: Notify,
}

impl LagSignal {
    pub(crate) fn mark(&self, game: GameId) {
        self.games
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(game);
        // notify_one keeps a permit if the writer is busy, so the signal is never lost.
        self.notify.notify_one();
    }

    pub(crate) fn take(&self) -> Vec<GameId> {
        self.games
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect()
    }
}
