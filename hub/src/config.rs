//! The hub's settings.

use std::time::Duration;

/// When an appended event counts as safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Flush as soon as any game asks, sharing one flush among every game waiting (group
    /// commit). A command is acknowledged, and its events sent, only after the flush.
    Sync,
    /// Wait this long to gather more games before each flush: fewer flushes, more latency.
    /// Still acknowledged only after the flush.
    Batched(Duration),
    /// Never wait for a flush (sled still flushes in the background). For tests and
    /// benchmarks: a crash loses acknowledged events.
    None,
}

/// Settings for a [`crate::Hub`].
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// See [`Durability`]. Default: `Sync`.
    pub durability: Durability,
    /// Events queued per connection before it is switched to catch-up from the log.
    pub queue_len: usize,
    /// Requests one connection may have waiting for a game's answer; past it, the transport
    /// stops reading that connection until answers come back.
    pub max_in_flight: usize,
    /// The most commands a game takes into one append and flush.
    pub max_batch: usize,
    /// Save a snapshot of a game after this many events since the last one.
    pub snapshot_every: u64,
    /// How long shutdown waits for games and connections to finish.
    pub shutdown_grace: Duration,
    /// Refuse everything but `hello` and `ping` until a connection has authenticated.
    pub require_auth: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            durability: Durability::Sync,
            queue_len: 256,
            max_in_flight: 64,
            max_batch: 256,
            snapshot_every: 500,
            shutdown_grace: Duration::from_secs(10),
            require_auth: false,
        }
    }
}
