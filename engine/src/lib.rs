//! umpire's pure core: what a game is, and everything that can be said about one without a
//! clock, a socket or a disk.
//!
//! A game author implements [`Game`]: `decide` turns a command into events or a rejection,
//! `apply` folds an event into the state. [`Match`] wraps a game with what every game has:
//! a version, seats, pending timers and an outcome. Every change is an [`Envelope`] that the
//! server logs before anyone sees it; replaying the envelopes rebuilds the match exactly.
//!
//! # Layout
//! - `ids`: [`Millis`] and [`Seq`].
//! - `game`: the [`Game`] trait, [`Seat`], [`Actor`], [`Outcome`].
//! - `ctx`: [`Ctx`], what `decide` may use: the time, a seeded rng, timers.
//! - `envelope`: [`Envelope`] and [`Body`], the engine's own events.
//! - `matches`: [`Match`], the aggregate; [`Action`], [`MatchError`].
//! - [`protocol`]: the wire messages in both directions and their JSON/MessagePack codecs.
//! - `testing` (feature `testing`): the given/when/then harness.

mod cids;
mod ctx;
mod envelope;
mod game;
mod ids;
mod matches;
pub mod protocol;
#[cfg(feature = "testing")]
pub mod testing;

#[doc(hidden)]
pub mod doc;

pub use ctx::{Ctx, DetRng, TimerId};
pub use envelope::{Body, Envelope, NoticeBody, NoticeEnvelope};
pub use game::{Actor, Game, Millis, Outcome, Seat, Seq, Viewer};
pub use matches::{
    Action, Match, MatchError, PendingTimer, ReplayError, CIDS_KEPT_MS, RECENT_CIDS,
    RECENT_CIDS_PER_PLAYER, RECENT_CIDS_PER_PLAYER_MOST,
};
pub use rand_core;

impl From<Seat> for Actor {
    fn from(seat: Seat) -> Self {
        Actor::Seat(seat)
    }
}
