//! umpire's live runtime. It hosts games, one task each; makes their events durable with a
//! group commit before anyone sees them; fans them out to subscribers through bounded
//! outboxes; fires timers; restores everything from the log on start. It knows no socket:
//! transports drive a [`Session`] per connection.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use umpire_hub::Hub;
//! use umpire_store::MemLog;
//! # use umpire_engine::doc::Counter;
//!
//! let hub = Hub::builder(Arc::new(MemLog::new())).register(Counter).start().await?;
//! let game = hub.create("counter", serde_json::Value::Null, "ada").await?;
//! let seq = hub.submit(game.game, game.seat, serde_json::json!(5), None).await?;
//! assert_eq!(seq, 3); // Created, Seated, then the addition
//! assert_eq!(hub.inspect(game.game).await?.state, serde_json::json!(5));
//! hub.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Follow a command
//!
//! A client sends `{"type":"command","game":7,"cmd":{"column":3}}`:
//!
//! 1. The transport decodes the frame and calls [`Session::handle`]. The session finds its
//!    seat in game 7 and queues `RoomMsg::Submit` in the game task's inbox
//!    (`RoomHandle::send`). It does not wait.
//! 2. The game task (`Room::run`) takes the message with every other one waiting, parses the
//!    command as the game's type and runs `Match::execute` (the game's `decide`, then
//!    `apply`), encoding each new envelope once, as MessagePack (`Room::absorb`).
//! 3. At the end of the turn it hands the records to the log writer (`Writer::write`) and
//!    waits. The writer thread applies every game's waiting turn as one atomic write and
//!    flushes once (`writer::run`): the group commit.
//! 4. Durable, the task publishes each event (`publish::fan_out`): one shared [`Published`] per
//!    event, pushed into the outbox of every subscribed session (`Outbox::push_event`),
//!    never waiting; then it puts the `ok` into the sender's outbox (`ReplyTo::send`).
//! 5. Each session's [`Session::next`] takes from its outbox, checks each game's seqs
//!    (filling any gap from the log), and gives the transport frames: events encoded once
//!    per wire format for everyone (`Published::json`), then the `ok`.
//!
//! # Layout
//! Read top to bottom: the hub, then a connection, then the tasks that own streams, then the
//! seams between them, then storage and the leaves.
//! - `hub`: [`Hub`], [`HubBuilder`], the Rust API, start and shutdown order.
//! - `background`: the hub's own tasks (restart after a storage failure, wake sleeping games,
//!   housekeeping of sessions and session channels, retention).
//! - `session/`: one connection. `mod.rs` [`Session`], the request side; `feed` the sending
//!   side (order, gaps, catch-up from the log); `resume` sessions kept and taken back;
//!   `quota` creates per minute; `shared` what all sessions share ([`Authenticator`],
//!   [`GroupPolicy`], the open sessions).
//! - `game/`: the tasks that own streams. `room` a game's task (decide, write, wait, publish,
//!   answer); `channel` a channel's; `publish` the fan-out both share; `registry` kinds and
//!   live streams (create, load, look up by key); `kind` game kinds behind one object-safe
//!   trait; `runtime` what the tasks run on; `keys`, `owners`, `retention`.
//! - `handle`: the way in: `RoomHandle`, its inbox and messages, subscribers.
//! - `outbox`: the way back: a session's bounded queue, and the answers ([`Created`],
//!   [`Joined`], [`Inspection`]).
//! - `frames`: events encoded once per wire format ([`Published`], [`Frame`], [`Format`]).
//! - `storage/`: `writer` the log writer and group commit (the only holder of the log's
//!   write half: every write is one of its jobs); `health` whether the log can be written
//!   ([`Health`]); `sleepers` the wake-up queue of games out of memory.
//! - `bus`: the seam to other nodes serving the same log ([`Bus`], [`LocalBus`]).
//! - `doorbell`: how a queue tells its one reader to look again.
//! - `admin`, `clock`, `config`, `metrics`, `error`: leaves.

mod admin;
mod background;
mod bus;
mod clock;
mod config;
mod doorbell;
mod error;
mod frames;
mod game;
mod handle;
mod hub;
mod matchmaker;
mod metrics;
mod outbox;
mod session;
mod storage;

/// Lock `mutex`, also after a panic poisoned it: every value the hub keeps under a lock is
/// changed by whole operations (an insert, a removal, a push), so a poisoned one is still
/// consistent.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

pub use admin::{ConnectionSummary, GameSummary, History};
pub use bus::{Bus, Inbound, LocalBus, MemBus, MemNode, Placement};
pub use clock::{Clock, TokioClock};
pub use config::{Durability, HubConfig, Limits};
pub use error::{
    BadChannel, Denied, Held, HubError, Malformed, Missing, Panic, Quota, Result, Unauthenticated,
};
pub use frames::{Format, Frame, Published};
pub use game::channel::{facility_channel, is_facility, Audience, MAX_FACILITY};
pub use game::lobby::{lobby_record_decodes, OpenGame};
pub use handle::SessionId;
pub use hub::{Hub, HubBuilder};
pub use matchmaker::{FirstCome, Matchmaker, Waiting};
pub use metrics::{CodeLabel, Metrics};
pub use outbox::{Created, Inspection, Joined};
pub use session::shared::{Authenticator, GroupPolicy};
pub use session::{Outgoing, Peer, Session, MAX_GROUPS, MAX_USER_BYTES};
pub use storage::health::Health;
pub use umpire_engine::protocol::GameId;
pub use umpire_engine::Seq;
