//! The hub's and the transports' counters, in a Prometheus registry.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label naming an error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The wire error code.
    pub code: String,
}

/// A count as a gauge's value.
pub(crate) fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Everything umpire counts. Cheap to update from any task; render with [`Metrics::render`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections accepted since start.
    pub connections: Counter,
    /// Messages received from clients.
    pub messages_in: Counter,
    /// Messages sent to clients.
    pub messages_out: Counter,
    /// Bytes received from clients.
    pub bytes_in: Counter,
    /// Bytes sent to clients.
    pub bytes_out: Counter,
    /// Commands the rules accepted.
    pub commands_accepted: Counter,
    /// Requests refused, by error code.
    pub commands_rejected: Family<CodeLabel, Counter>,
    /// Events appended to the log.
    pub events_appended: Counter,
    /// Games with a live task.
    pub live_games: Gauge,
    /// Unfinished games out of memory, to be loaded on use or when a timer is due.
    pub sleeping_games: Gauge,
    /// Channel streams in the log (counted against `max_channels`).
    pub channels: Gauge,
    /// Sessions kept in the log for resuming (counted against `max_kept_sessions`).
    pub kept_sessions: Gauge,
    /// Games reserved or open (with a free seat) in the lobbies this node runs.
    pub lobby_games: Gauge,
    /// Players waiting for a seat (`play`) on this node.
    pub waiting_players: Gauge,
    /// Times a subscriber's queue was full and it switched to catch-up from the log.
    pub subscribers_lagged: Counter,
    /// Connections closed for staying too far behind.
    pub subscribers_dropped: Counter,
    /// Failed attempts to write or flush the log (each commit and probe counts once).
    pub storage_errors: Counter,
    flush_seconds: Histogram,
    flush_waiters: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("umpire");
        let m = Metrics {
            connections_open: Gauge::default(),
            connections: Counter::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            commands_accepted: Counter::default(),
            commands_rejected: Family::default(),
            events_appended: Counter::default(),
            live_games: Gauge::default(),
            sleeping_games: Gauge::default(),
            channels: Gauge::default(),
            kept_sessions: Gauge::default(),
            lobby_games: Gauge::default(),
            waiting_players: Gauge::default(),
            subscribers_lagged: Counter::default(),
            subscribers_dropped: Counter::default(),
            storage_errors: Counter::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
            flush_waiters: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections_open",
            "Connections open now",
            m.connections_open.clone(),
        );
        registry.register("connections", "Connections accepted", m.connections.clone());
        registry.register(
            "messages_in",
            "Messages received from clients",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Messages sent to clients",
            m.messages_out.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register("bytes_out", "Bytes sent to clients", m.bytes_out.clone());
        registry.register(
            "commands_accepted",
            "Commands accepted",
            m.commands_accepted.clone(),
        );
        registry.register(
            "commands_rejected",
            "Requests refused, by error code",
            m.commands_rejected.clone(),
        );
        registry.register(
            "events_appended",
            "Events appended to the log",
            m.events_appended.clone(),
        );
        registry.register(
            "live_games",
            "Games with a running task",
            m.live_games.clone(),
        );
        registry.register(
            "sleeping_games",
            "Unfinished games out of memory, loaded on use or when a timer is due",
            m.sleeping_games.clone(),
        );
        registry.register("channels", "Channel streams in the log", m.channels.clone());
        registry.register(
            "kept_sessions",
            "Sessions kept in the log for resuming",
            m.kept_sessions.clone(),
        );
        registry.register(
            "lobby_games",
            "Games reserved or open with a free seat in this node's lobbies",
            m.lobby_games.clone(),
        );
        registry.register(
            "waiting_players",
            "Players waiting for a seat (play) on this node",
            m.waiting_players.clone(),
        );
        registry.register(
            "subscribers_lagged",
            "Times a subscriber fell behind and switched to catch-up from the log",
            m.subscribers_lagged.clone(),
        );
        registry.register(
            "subscribers_dropped",
            "Connections closed for staying too far behind",
            m.subscribers_dropped.clone(),
        );
        registry.register(
            "storage_errors",
            "Failed attempts to write or flush the log",
            m.storage_errors.clone(),
        );
        registry.register(
            "flush_seconds",
            "Time one log flush took",
            m.flush_seconds.clone(),
        );
        registry.register(
            "flush_waiters",
            "Game batches made durable (a flush serves one or more)",
            m.flush_waiters.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count a refusal under its wire code.
    pub fn rejected(&self, code: umpire_engine::protocol::ErrorCode) {
        self.commands_rejected
            .get_or_create(&CodeLabel {
                code: code.as_str().to_owned(),
            })
            .inc();
    }

    pub(crate) fn flushed(&self, took: Duration, waiters: usize) {
        self.flush_seconds.observe(took.as_secs_f64());
        self.flush_waiters.inc_by(waiters as u64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
