//! The `Hub`: registered game kinds, the registry of live games, and the ways in (Rust calls,
//! transports). Shutdown is ordered here.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use umpire_engine::protocol::GameId;
use umpire_engine::{Actor, Game, Seat, Seq};
use umpire_store::{Log, Role, StreamStatus};

use crate::clock::{Clock, TokioClock};
use crate::commit::Committer;
use crate::config::HubConfig;
use crate::error::{HubError, Result};
use crate::handle::{Created, Inspection, Joined, RoomHandle};
use crate::kind::{Kind, Registered};
use crate::metrics::Metrics;
use crate::session;
use crate::transport::{Connection, Transport};

/// Turns a client's bearer token into a user id.
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// The user the token names.
    ///
    /// # Errors
    /// Why the token is not acceptable, in words for the client.
    fn verify(&self, token: &str) -> std::result::Result<String, String>;
}

/// State shared by the hub's handles, game tasks and sessions.
pub(crate) struct Shared {
    pub(crate) log: Arc<dyn Log>,
    kinds: HashMap<String, Arc<dyn Kind>>,
    /// Live games. A handle whose task stopped is replaced on the next lookup.
    rooms: Mutex<HashMap<GameId, RoomHandle>>,
    pub(crate) committer: Committer,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: HubConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled once, by `Hub::shutdown`: the transports stop accepting, sessions say
    /// goodbye, game tasks finish their queue.
    pub(crate) shutdown: CancellationToken,
    /// Every game task, session and accept loop, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    pub(crate) next_session: AtomicU64,
    pub(crate) auth: Option<Arc<dyn Authenticator>>,
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, HashMap<GameId, RoomHandle>> {
        // Inserts and removals are single operations: a poisoned map is still consistent.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert_room(&self, handle: RoomHandle) {
        self.rooms().insert(handle.game, handle);
    }

    /// The live game `game`, loading it from the log if its task is not running.
    pub(crate) fn room(self: &Arc<Self>, game: GameId) -> Result<RoomHandle> {
        if self.shutdown.is_cancelled() {
            return Err(HubError::Unavailable);
        }
        let mut rooms = self.rooms();
        if let Some(handle) = rooms.get(&game) {
            if !handle.is_closed() {
                return Ok(handle.clone());
            }
        }
        let not_found = || HubError::NotFound(format!("no game {game}"));
        let meta = self.log.meta(game)?.ok_or_else(not_found)?;
        let kind = self.kinds.get(&meta.kind).ok_or_else(not_found)?;
        // Loading under the lock keeps two tasks from ever running one game. It is a few
        // sled reads; a game with a long tail past its snapshot makes others wait that long.
        let handle = kind.load(self, game)?;
        rooms.insert(game, handle.clone());
        Ok(handle)
    }

    /// What `key` opens, and the game's live handle.
    pub(crate) fn open_key(self: &Arc<Self>, key: &str) -> Result<(Role, RoomHandle)> {
        let entry = self
            .log
            .find_key(key)?
            .ok_or_else(|| HubError::NotFound("no game has this key".into()))?;
        Ok((entry.role, self.room(entry.stream)?))
    }

    pub(crate) async fn create(
        self: &Arc<Self>,
        kind: &str,
        config: Value,
        player: String,
    ) -> Result<Created> {
        if self.shutdown.is_cancelled() {
            return Err(HubError::Unavailable);
        }
        let k = self
            .kinds
            .get(kind)
            .ok_or_else(|| HubError::UnknownKind(kind.to_owned()))?;
        Arc::clone(k).create(self, config, player).await
    }
}

/// Builds a [`Hub`]: register every game kind before it starts, since starting restores the
/// games in the log.
#[derive(Debug)]
pub struct HubBuilder {
    log: Arc<dyn Log>,
    kinds: HashMap<String, KindEntry>,
    config: HubConfig,
    clock: Option<Arc<dyn Clock>>,
    metrics: Option<Arc<Metrics>>,
    auth: Option<Arc<dyn Authenticator>>,
}

struct KindEntry(Arc<dyn Kind>);

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kind")
    }
}

impl HubBuilder {
    /// Register a game kind under [`Game::KIND`]. One line per game.
    pub fn register<G: Game>(mut self, game: G) -> Self {
        let kind = Registered {
            game: Arc::new(game),
        };
        self.kinds
            .insert(G::KIND.to_owned(), KindEntry(Arc::new(kind)));
        self
    }

    /// Settings; see [`HubConfig`].
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Where time comes from (default: [`TokioClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Count into these metrics (default: a fresh set), for example to share them with a transport.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Accept `hello` tokens through `auth`.
    pub fn authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Start the hub: restore every unfinished game from the log (snapshot plus tail) and arm
    /// its timers; overdue timers fire at once, in due order. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The log cannot be listed. A single game that cannot be restored is logged and skipped.
    pub async fn start(self) -> Result<Hub> {
        let metrics = self.metrics.unwrap_or_default();
        let committer = Committer::spawn(
            Arc::clone(&self.log),
            self.config.durability,
            Arc::clone(&metrics),
        );
        let shared = Arc::new(Shared {
            kinds: self.kinds.into_iter().map(|(k, v)| (k, v.0)).collect(),
            rooms: Mutex::new(HashMap::new()),
            committer,
            clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
            config: self.config,
            metrics,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_session: AtomicU64::new(0),
            auth: self.auth,
            log: self.log,
        });
        let mut restored = 0;
        for info in shared.log.streams()? {
            if info.meta.status != StreamStatus::Live {
                continue;
            }
            let Some(kind) = shared.kinds.get(&info.meta.kind) else {
                tracing::warn!(game = info.id, kind = %info.meta.kind, "not restored: kind not registered");
                continue;
            };
            match kind.load(&shared, info.id) {
                Ok(handle) => {
                    shared.insert_room(handle);
                    restored += 1;
                }
                Err(e) => tracing::error!(game = info.id, error = %e, "not restored"),
            }
        }
        tracing::info!(games = restored, "hub started");
        Ok(Hub { shared })
    }
}

/// The live runtime: hosts every game, serves connections from any transport.
///
/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("kinds", &self.shared.kinds.keys().collect::<Vec<_>>())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Start building a hub over `log`.
    pub fn builder(log: Arc<dyn Log>) -> HubBuilder {
        HubBuilder {
            log,
            kinds: HashMap::new(),
            config: HubConfig::default(),
            clock: None,
            metrics: None,
            auth: None,
        }
    }

    /// Create a game of `kind` and seat `player` in it. The answer carries the keys to share.
    ///
    /// # Errors
    /// Unknown kind, bad config, storage failure.
    pub async fn create(&self, kind: &str, config: Value, player: &str) -> Result<Created> {
        Shared::create(&self.shared, kind, config, player.to_owned()).await
    }

    /// Seat `player` with a join key (or give back the seat a seat token names).
    ///
    /// # Errors
    /// Unknown key, a watch key, a full game, a finished game.
    pub async fn join(&self, key: &str, player: &str) -> Result<Joined> {
        let (role, handle) = self.shared.open_key(key)?;
        match role {
            Role::Join => handle.join(player.to_owned()).await,
            Role::Seat(seat) => Ok(Joined {
                game: handle.game,
                kind: handle.kind.to_owned(),
                seat: Seat(seat),
                token: key.to_owned(),
            }),
            Role::Watch => Err(HubError::Forbidden("a watch key cannot take a seat".into())),
        }
    }

    /// Submit a game command (JSON, in the game's format) from `seat`. Returns the last seq it
    /// produced, once durable.
    ///
    /// # Errors
    /// The rules refused it, the game is over, the command does not parse, storage failed.
    pub async fn submit(
        &self,
        game: GameId,
        seat: Seat,
        cmd: Value,
        cid: Option<String>,
    ) -> Result<Seq> {
        self.shared
            .room(game)?
            .submit(Actor::Seat(seat), cmd, cid)
            .await
    }

    /// The game's current state.
    ///
    /// # Errors
    /// No such game; storage failure while loading it.
    pub async fn inspect(&self, game: GameId) -> Result<Inspection> {
        self.shared.room(game)?.inspect().await
    }

    /// Serve every connection `transport` accepts, until shutdown.
    pub fn serve<T: Transport>(&self, mut transport: T) {
        let shared = Arc::clone(&self.shared);
        self.shared.tracker.spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    conn = transport.accept() => conn,
                };
                let Some(conn) = conn else { break };
                shared
                    .tracker
                    .spawn(session::run(Arc::clone(&shared), conn));
            }
        });
    }

    /// Serve one connection (for embedders with their own accept loop).
    pub fn connect(&self, conn: Box<dyn Connection>) {
        self.shared
            .tracker
            .spawn(session::run(Arc::clone(&self.shared), conn));
    }

    /// The log the hub writes to.
    pub fn log(&self) -> &Arc<dyn Log> {
        &self.shared.log
    }

    /// The hub's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// A token cancelled when shutdown begins, for transports' accept loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Ids of the games with a running task.
    pub fn live_games(&self) -> Vec<GameId> {
        let mut ids: Vec<GameId> = self
            .shared
            .rooms()
            .iter()
            .filter(|(_, h)| !h.is_closed())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Shut down cleanly:
    /// 1. stop accepting connections and loading games (one token tells everyone);
    /// 2. every game answers the commands already queued, commits, and stops;
    ///    every session sends `closing` and closes with 1001;
    /// 3. wait for all of that, at most `shutdown_grace`;
    /// 4. flush the log.
    ///
    /// # Errors
    /// The final flush failed.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        let grace = self.shared.config.shutdown_grace;
        if tokio::time::timeout(grace, self.shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "some tasks did not finish in time");
        }
        let log = Arc::clone(&self.shared.log);
        tokio::task::spawn_blocking(move || log.sync())
            .await
            .map_err(|e| HubError::Store(e.to_string()))??;
        tracing::info!("hub stopped; log flushed");
        Ok(())
    }
}
