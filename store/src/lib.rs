//! umpire's append-only log of streams.
//!
//! A stream is an ordered sequence of opaque records numbered from 1: a game, or a channel.
//! The store knows nothing of games; it keeps records, stream metadata, the key index
//! (join and watch keys, seat tokens), snapshots, kept sessions and the indexes its queries
//! read, and makes them durable on [`Log::commit`] or [`Log::sync`]. Both halves are async
//! traits, so that a networked backend fits behind them; a backend written as blocking
//! methods becomes one with [`blocking_log!`].
//!
//! # Layout
//! - `log`: the [`Log`] trait (the write half), its read half [`LogRead`], and their value
//!   types.
//! - `blocking`: [`blocking_log!`] and the blocking pool's runner; `nudge`: waking the
//!   committing task through the reactor.
//! - `record`: the format-version byte in front of every stored value.
//! - `sled_log`: [`SledLog`], the default backend.
//! - `mem_log`: [`MemLog`], for tests and embedders that persist nothing.
//! - `error`: [`StoreError`] and [`Refused`].
//! - [`contract`]: the tests every backend must pass, for a backend's own tests to run.

#[doc(hidden)]
pub mod blocking;
pub mod contract;
mod error;
mod log;
mod mem_log;
#[doc(hidden)]
pub mod nudge;
mod record;
mod sled_log;
mod wal;

pub use bytes::Bytes;
pub use error::{Refused, Result, StoreError};
pub use log::{
    KeyEntry, Log, LogRead, Role, SessionEntry, SideWrite, StreamId, StreamInfo, StreamMeta,
    StreamStatus, Wake, WakeChange, Write,
};
pub use mem_log::MemLog;
pub use record::{fuzz_record, FORMAT_VERSION};
pub use sled_log::{SledLog, SledOptions};

/// A position in a stream; the first record is 1, and 0 means "empty".
pub type Seq = u64;
