//! What every game task runs on: the log and its writer, the clock, the settings, the
//! metrics, and the shutdown signal. Game tasks see this and nothing else of the hub.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use umpire_engine::protocol::GameId;
use umpire_store::Log;

use crate::clock::Clock;
use crate::config::HubConfig;
use crate::health::StorageHealth;
use crate::metrics::Metrics;
use crate::owners::Owners;
use crate::writer::Writer;

/// The game tasks' view of the hub.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// For reads: loading a game, catching a subscriber up. Writes go through `writer`.
    pub(crate) log: Arc<dyn Log>,
    pub(crate) writer: Writer,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Whether the log can be written; set by the writer.
    pub(crate) health: Arc<StorageHealth>,
    /// Cancelled once, by `Hub::shutdown`: game tasks answer what is queued and stop,
    /// sessions say goodbye, transports stop accepting.
    pub(crate) shutdown: CancellationToken,
    /// Every game task and session, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Live games per creator.
    pub(crate) owners: Arc<Owners>,
    /// Games whose task ended for good (expired, or finished and idle): the registry
    /// forgets them. A game stopped by a storage failure is not here: it is restarted.
    pub(crate) retired: Mutex<Vec<GameId>>,
}
