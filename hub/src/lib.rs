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
//! 4. Durable, the task publishes each event (`handle::fan_out`): one shared [`Published`] per
//!    event, pushed into the outbox of every subscribed session (`Outbox::push_event`),
//!    never waiting; then it puts the `ok` into the sender's outbox (`ReplyTo::send`).
//! 5. Each session's [`Session::next`] takes from its outbox, checks each game's seqs
//!    (filling any gap from the log), and gives the transport frames: events encoded once
//!    per wire format for everyone (`Published::json`), then the `ok`.
//!
//! # Layout
//! - `hub`: [`Hub`], [`HubBuilder`], the Rust API, shutdown.
//! - `registry`: registered kinds and live games; create, load, look up by key.
//! - `kind`: game kinds behind one object-safe trait; starting and loading games.
//! - `room`: the game task: decide, write, wait, publish, answer.
//! - `handle`: the task's handle, its messages, its answers ([`Created`], [`Joined`],
//!   [`Inspection`]).
//! - `runtime`: what game tasks run on (log, writer, clock, config, metrics, shutdown).
//! - `writer`: the log writer and group commit; reopening a log that failed.
//! - `health`: whether the log can be written ([`Health`]).
//! - `wakeup`: how the writer hears of a finished commit without queueing behind sockets.
//! - `outbox`: a session's bounded queue of events and answers.
//! - `doorbell`: how a queue tells its one reader to look again.
//! - `frames`: events encoded once per wire format ([`Published`], [`Frame`], [`Format`]).
//! - `session`: [`Session`], the request side of a connection.
//! - `feed`: the sending side of a session: order, gaps, catch-up from the log.
//! - `clock`, `config`, `keys`, `metrics`, `error`.

mod admin;
mod channel;
mod clock;
mod config;
mod doorbell;
mod error;
mod feed;
mod frames;
mod handle;
mod health;
mod hub;
mod keys;
mod kind;
mod metrics;
mod outbox;
mod owners;
mod quota;
mod registry;
mod resume;
mod retention;
mod room;
mod runtime;
mod session;
mod wakes;
mod wakeup;
mod writer;

pub use admin::{ConnectionSummary, GameSummary, History};
pub use clock::{Clock, TokioClock};
pub use config::{Durability, HubConfig, Limits};
pub use error::{HubError, Result};
pub use frames::{Format, Frame, Published};
pub use handle::{Created, Inspection, Joined};
pub use health::Health;
pub use hub::{Authenticator, GroupPolicy, Hub, HubBuilder};
pub use metrics::{CodeLabel, Metrics};
pub use session::{Outgoing, Peer, Session};
