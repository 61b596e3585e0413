//! umpire's live runtime. It hosts games, one task each; makes their events durable with a
//! group commit before anyone sees them; fans them out to subscribers through bounded queues;
//! fires timers; restores everything from the log on start. It knows no socket: transports
//! hand it [`Connection`]s.
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
//! # Layout
//! - `hub`: [`Hub`], [`HubBuilder`], the registry of live games, shutdown.
//! - `room`: the game task: decide, append, commit, publish, answer.
//! - `handle`: the task's handle and what it answers ([`Created`], [`Joined`], [`Inspection`]).
//! - `kind`: game kinds behind one object-safe trait.
//! - `commit`: group commit.
//! - `session`: one connection: requests in, answers and events out, catch-up from the log.
//! - `fanout`: per-subscriber queues and the lag signal.
//! - `frames`: events encoded once per wire format ([`Published`], [`Frame`]).
//! - `transport`: the [`Transport`] and [`Connection`] traits transports implement.
//! - [`client`]: a protocol client over any transport's [`client::Wire`].
//! - `clock`, `config`, `keys`, `metrics`, `error`.

pub mod client;
mod clock;
mod commit;
mod config;
mod error;
mod fanout;
mod frames;
mod handle;
mod hub;
mod keys;
mod kind;
mod metrics;
mod room;
mod session;
mod transport;

pub use clock::{Clock, TokioClock};
pub use config::{Durability, HubConfig};
pub use error::{HubError, Result};
pub use frames::{Frame, Published};
pub use handle::{Created, Inspection, Joined};
pub use hub::{Authenticator, Hub, HubBuilder};
pub use metrics::{CodeLabel, Metrics};
pub use transport::{
    Closed, Connection, ConnectionReader, ConnectionWriter, Incoming, Peer, Transport,
};
