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
    /// What one client may make the hub hold.
    pub limits: Limits,
    /// How long after its connection went away a session that plays or watches a game may
    /// still be resumed.
    pub resume_for: Duration,
    /// How long a session in no game, only in channels, may be resumed. A session that only
    /// followed its own `session` channel is not kept at all, and its channel goes with it.
    pub resume_channels_for: Duration,
    /// How many notices each channel keeps for subscribers who come later (`from`, resume).
    pub channel_history: u64,
    /// How long a connection may stay behind the games it follows (fed from the log because
    /// it read too slowly) before it is closed with 1008 "too far behind". It can resume.
    pub max_behind: Duration,
    /// A game nobody follows and nothing happens in leaves memory after this long; it is
    /// loaded again on its next use, or when its next timer is due (the log's wake-up index
    /// says when). `None`: games stay in memory until they end.
    pub evict_after: Option<Duration>,
    /// Finished games are kept for replays this long after their last event, then removed
    /// from the log with their keys. `None`: kept for ever.
    pub retain_finished: Option<Duration>,
}

/// Bounds on what clients may make the hub hold. Each refusal has its own error code (see
/// `docs/PROTOCOL.md`); every game kind also bounds its own config (seats and the like).
#[derive(Clone, Debug)]
pub struct Limits {
    /// The longest `cid`, in bytes (it is stored with every event and remembered per game).
    /// Longer is `bad_message`.
    pub max_cid_bytes: usize,
    /// Games one connection may be in at once (playing or watching). More is
    /// `limit_reached`; `leave` makes room.
    pub games_per_connection: usize,
    /// Games one connection may create per minute, and one authenticated user across all
    /// their connections. More is `rate_limited`.
    pub creates_per_minute: u32,
    /// Live (unfinished) games one player may have created. More is `limit_reached`. A
    /// guest is one connection, so for guests this is per connection.
    pub live_games_per_player: usize,
    /// Live games in memory on this server. More is `limit_reached`.
    pub max_live_games: usize,
    /// A game nobody has played (no event, no timer pending) for this long ends as
    /// `expired` and leaves memory. `None`: never.
    pub expire_idle_games: Option<Duration>,
    /// Games created per minute from one client address, over all its connections (guests
    /// included). More is `rate_limited`.
    pub creates_per_minute_per_address: u32,
    /// Channel subscriptions per minute from one client address, over all its connections.
    /// More is `rate_limited`.
    pub subscribes_per_minute_per_address: u32,
    /// Resumable sessions the server keeps at once. Entering a game from a connection whose
    /// session is not kept yet is `limit_reached` while there are this many.
    pub max_kept_sessions: usize,
    /// Channel streams on the server. Subscribing to (or publishing on) a channel that has no
    /// stream yet is `limit_reached` while there are this many.
    pub max_channels: usize,
    /// `play` requests one connection may have waiting for a seat at once. More is
    /// `limit_reached`.
    pub plays_per_connection: usize,
    /// Players waiting for a seat (`play`) on this server at once. More is `limit_reached`.
    pub max_waiting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cid_bytes: 64,
            games_per_connection: 256,
            creates_per_minute: 30,
            live_games_per_player: 100,
            max_live_games: 100_000,
            expire_idle_games: Some(Duration::from_secs(24 * 3600)),
            creates_per_minute_per_address: 60,
            subscribes_per_minute_per_address: 120,
            max_kept_sessions: 100_000,
            max_channels: 100_000,
            plays_per_connection: 4,
            max_waiting: 10_000,
        }
    }
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
            limits: Limits::default(),
            resume_for: Duration::from_secs(24 * 3600),
            resume_channels_for: Duration::from_secs(600),
            max_behind: Duration::from_secs(60),
            channel_history: 100,
            evict_after: Some(Duration::from_secs(300)),
            retain_finished: None,
        }
    }
}
