//! What every game task runs on: the log and its writer, the clock, the settings, the
//! metrics, and the shutdown signal. Game tasks see this and nothing else of the hub.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use umpire_engine::protocol::GameId;
use umpire_store::LogRead;

use crate::clock::Clock;
use crate::config::HubConfig;
use crate::game::keys::Seeds;
use crate::game::owners::Owners;
use crate::metrics::Metrics;
use crate::storage::health::StorageHealth;
use crate::storage::sleepers::Wakes;
use crate::storage::writer::Writer;

/// The game tasks' view of the hub.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// For reads: loading a game, catching a subscriber up. Writes go through `writer`.
    pub(crate) log: Arc<dyn LogRead>,
    pub(crate) writer: Writer,
    /// What crosses to other nodes serving the same log.
    pub(crate) bus: Arc<dyn crate::bus::Bus>,
    /// Requests forwarded to other nodes, waiting for their answers.
    pub(crate) pending: crate::game::remote::Pending,
    pub(crate) clock: Arc<dyn Clock>,
    /// Where new games' rng seeds come from.
    pub(crate) seeds: Seeds,
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Whether the log can be written; set by the writer.
    pub(crate) health: Arc<StorageHealth>,
    /// Cancelled once, by `Hub::shutdown`: game tasks answer what is queued and stop,
    /// sessions say goodbye, transports stop accepting.
    pub(crate) shutdown: CancellationToken,
    /// Every game task and session, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Games being created, per creator (the log counts the rest).
    pub(crate) owners: Arc<Owners>,
    /// Games whose task ended for good (expired, or finished and idle): the registry
    /// forgets them. A game stopped by a storage failure is not here: it is restarted.
    pub(crate) retired: Mutex<Vec<GameId>>,
    /// When games not in memory need loading (their timers, their expiry).
    pub(crate) wakes: Arc<Wakes>,
    /// Games stopped by a panic in their code: not loaded again until the server restarts.
    pub(crate) panicked: Mutex<HashSet<GameId>>,
    /// What the lobbies share: the games they list, the players waiting.
    pub(crate) lobbies: crate::game::lobby::Lobbies,
}

impl Runtime {
    /// A game left memory for good or for now: the registry forgets its handle.
    pub(crate) fn retire(&self, game: GameId) {
        crate::lock(&self.retired).push(game);
        self.wakes.nudge();
    }

    /// A panic in `game`'s code stopped it: it stays stopped until the server restarts.
    pub(crate) fn quarantine(&self, game: GameId) {
        tracing::error!(
            %game,
            "the game's code panicked; the game stays stopped until the server restarts"
        );
        crate::lock(&self.panicked).insert(game);
    }

    /// How long a node holds a game it leads without renewing, in ms (see `crate::bus`).
    pub(crate) fn lease_ms(&self) -> umpire_engine::Millis {
        u64::try_from(self.bus.lease().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a panic stopped `game`.
    pub(crate) fn has_panicked(&self, game: GameId) -> bool {
        crate::lock(&self.panicked).contains(&game)
    }
}
