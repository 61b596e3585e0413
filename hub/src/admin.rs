//! What the monitor page shows: the games in memory, a game's log with its state at any seq,
//! and the open connections. Read-only; the transport guards it with the admin token.

use serde::Serialize;
use serde_json::Value;
use umpire_engine::protocol::GameId;
use umpire_engine::{Millis, Seq};

/// A game in memory, as the monitor lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GameSummary {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// Who holds each seat.
    pub players: Vec<Option<String>>,
    /// Seats whose player is connected.
    pub online: Vec<u16>,
    /// Connections watching without a seat.
    pub spectators: u64,
    /// The seq of its last event.
    pub version: Seq,
    /// When it was created, in ms since the epoch.
    pub created: Millis,
    /// When its last event happened.
    pub last_event: Millis,
    /// Timers pending.
    pub timers: usize,
    /// Whether it is over.
    pub over: bool,
}

/// A game's log for the monitor's replay: its events and its state after one of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct History {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// The seq of its last event.
    pub version: Seq,
    /// Its events from seq 1, as JSON (at most the number asked for).
    pub events: Vec<Value>,
    /// The seq the state is at.
    pub at: Seq,
    /// The game's state after event `at`, replayed by its rules.
    pub state: Value,
}

/// An open connection, as the monitor lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionSummary {
    /// The session's number in this process.
    pub session: crate::SessionId,
    /// What the transport calls the peer (its address).
    pub peer: String,
    /// The signed-in user, if any.
    pub user: Option<String>,
    /// When it opened, in ms since the epoch.
    pub opened: Millis,
    /// Games and channels it follows.
    pub games: usize,
    /// Events queued for it, not yet sent.
    pub queued: usize,
    /// How long it has been behind (fed from the log because it read too slowly), if it is.
    pub behind_ms: Option<u64>,
}
