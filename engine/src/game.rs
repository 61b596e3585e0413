//! The `Game` trait a game author implements, and the small value types it speaks in.

use std::fmt::Debug;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::ctx::Ctx;

pub use crate::ids::{Millis, Seq};

/// A player's place in a match, counted from 0 (Connect Four's red is seat 0, yellow seat 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seat(pub u16);

impl std::fmt::Display for Seat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seat {}", self.0)
    }
}

/// Who caused an event: a seated player, or the server itself (timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A player in this seat.
    Seat(Seat),
    /// umpire itself, firing a timer the game scheduled.
    System,
}

impl Actor {
    /// The seat, if a player acted.
    pub fn seat(self) -> Option<Seat> {
        match self {
            Actor::Seat(seat) => Some(seat),
            Actor::System => None,
        }
    }
}

/// How a match ended. Returned by [`Game::outcome`] and recorded in the `Over` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// One seat won.
    Win(Seat),
    /// Nobody won and nobody can.
    Draw,
    /// The game ended without a winner or a draw (a game-defined ending).
    Ended,
    /// Nobody played the game for longer than the server keeps idle games.
    Expired,
}

/// The rules of one kind of game, as pure functions.
///
/// `decide` turns a command into events (or refuses it) and never mutates; `apply` folds one event
/// into the state and never fails. Everything `decide` learns from the outside world (the time,
/// random numbers, timers) comes from the [`Ctx`] and is written into the events it returns, so
/// replaying the events through `apply` always rebuilds the same state.
///
/// ```
/// use umpire_engine::{Actor, Ctx, Game};
/// use serde::{Deserialize, Serialize};
///
/// /// A shared counter anyone may add to.
/// #[derive(Debug, Default)]
/// struct Counter;
///
/// #[derive(Debug, thiserror::Error, Clone, PartialEq, Serialize)]
/// enum Refused { #[error("the total would overflow")] Overflow }
///
/// impl Game for Counter {
///     const KIND: &'static str = "counter";
///     type Config = ();
///     type State = i64;
///     type Command = i64;                // "add this"
///     type Event = i64;                  // "this was added"
///     type Rejection = Refused;
///
///     fn seats(&self, _: &()) -> u16 { 100 }
///     fn setup(&self, _: &()) -> i64 { 0 }
///     fn decide(&self, total: &i64, _by: Actor, add: &i64, _ctx: &mut Ctx<'_, i64>)
///         -> Result<Vec<i64>, Refused> {
///         total.checked_add(*add).ok_or(Refused::Overflow)?;
///         Ok(vec![*add])
///     }
///     fn apply(&self, total: &mut i64, added: &i64) { *total += added; }
/// }
/// ```
pub trait Game: Send + Sync + Debug + 'static {
    /// The kind's stable name, stored in the log with every game of this kind.
    const KIND: &'static str;
    /// Per-game settings chosen when a game is created; `Default` is used when none are given.
    type Config: Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// Everything the rules need to know. Serialisable for snapshots and equality checks.
    type State: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// What a player (or a timer) asks for. Imperative: `Drop`, `Add`, `Order`.
    type Command: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// What happened. Past tense: `Dropped`, `Added`, `Completed`.
    type Event: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// Why a command was refused. A value shown to the player, not a failure: its `Display`
    /// is the `message` of the `rejected` error, and the value itself, serialized, its
    /// `reason` (`{"overflow": 1}`), for clients to branch on.
    type Rejection: std::error::Error + Clone + PartialEq + Serialize + Send + Sync + 'static;

    /// How many seats a game with this config has. Seats cost memory only once taken.
    fn seats(&self, config: &Self::Config) -> u16;

    /// Refuse a config a client may not ask for (too many seats, a value out of range): the
    /// `create` is answered `bad_message` with this reason. Everything a config holds stays in
    /// memory for the game's life, so bound what a client controls.
    ///
    /// # Errors
    /// Why the config is refused.
    fn check_config(&self, _config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// The state before any event.
    fn setup(&self, config: &Self::Config) -> Self::State;

    /// Validate `command` from `by` against `state` and say what happens, or why not.
    ///
    /// Must not depend on anything but its arguments: time and randomness come from `ctx`.
    ///
    /// # Errors
    /// The game's own [`Game::Rejection`] when the rules refuse the command.
    fn decide(
        &self,
        state: &Self::State,
        by: Actor,
        command: &Self::Command,
        ctx: &mut Ctx<'_, Self::Command>,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Fold one event into the state. Never fails; holds no rules.
    fn apply(&self, state: &mut Self::State, event: &Self::Event);

    /// A seated player's connection went away (`online` false) or came back. The presence
    /// event is logged whatever this returns; the events returned follow it, and `ctx` may
    /// schedule or cancel timers (give an absent player a minute, say). The default does
    /// nothing.
    fn presence(
        &self,
        _state: &Self::State,
        _seat: Seat,
        _online: bool,
        _ctx: &mut Ctx<'_, Self::Command>,
    ) -> Vec<Self::Event> {
        Vec::new()
    }

    /// Whether the game has ended, and how. Checked after every accepted command.
    fn outcome(&self, _state: &Self::State) -> Option<Outcome> {
        None
    }

    /// Whether some of the game's events look different to different viewers. Only then is
    /// [`Game::view`] asked, so a game that hides nothing costs nothing: set it to `true` when
    /// you write `view`.
    const HIDES: bool = false;

    /// What `viewer` may see of `event`: `None` (the default) shows it as it is, `Some(other)`
    /// shows `other` instead (the other player's card face down, say). Applied to everything a
    /// client receives of the game, live, replayed and caught up; the log keeps the whole
    /// event, and a timer's command is seen by everyone. Asked only when [`Game::HIDES`].
    fn view(&self, _event: &Self::Event, _viewer: Viewer) -> Option<Self::Event> {
        None
    }
}

/// Who receives an event: the player in a seat, or a spectator (anyone without a seat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Viewer {
    /// The player in this seat.
    Seat(Seat),
    /// Someone watching without a seat.
    Spectator,
}
