//! The `Hub`: how it is built and started, its Rust API, sessions for transports, and the
//! order of shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use umpire_engine::protocol::GameId;
use umpire_engine::{Actor, Game, Seat, Seq};
use umpire_store::{Log, LogRead};

use crate::clock::{Clock, TokioClock};
use crate::config::HubConfig;
use crate::error::{HubError, Missing, Panic, Result};
use crate::game::keys::Seeds;
use crate::game::kind::{Kind, Registered};
use crate::game::registry::Registry;
use crate::game::runtime::Runtime;
use crate::handle::RoomMsg;
use crate::metrics::Metrics;
use crate::outbox::{Answer, Created, Inspection, Joined, ReplyTo};
use crate::session::shared::{Authenticator, GroupPolicy, Inner, Sessions};
use crate::session::{Peer, Session};
use crate::storage::health::{Health, StorageHealth, Watched};
use crate::storage::writer::Writer;

/// Builds a [`Hub`]: register every game kind before it starts, since starting restores the
/// games in the log.
#[derive(Debug)]
pub struct HubBuilder {
    log: Arc<dyn Log>,
    kinds: Vec<KindEntry>,
    config: HubConfig,
    clock: Option<Arc<dyn Clock>>,
    metrics: Option<Arc<Metrics>>,
    auth: Option<Arc<dyn Authenticator>>,
    groups: Option<Arc<dyn GroupPolicy>>,
    seeds: Seeds,
    bus: Option<Arc<dyn crate::bus::Bus>>,
    matchmakers: std::collections::HashMap<String, MatchmakerEntry>,
}

struct MatchmakerEntry(Arc<dyn crate::Matchmaker>);

impl std::fmt::Debug for MatchmakerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Matchmaker")
    }
}

struct KindEntry(Arc<dyn Kind>);

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl HubBuilder {
    /// The seam to the other nodes serving the same log (default: [`crate::LocalBus`], one
    /// node). See [`crate::Bus`].
    pub fn bus(mut self, bus: Arc<dyn crate::bus::Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Register a game kind under [`Game::KIND`]. One line per game.
    pub fn register<G: Game>(mut self, game: G) -> Self {
        self.kinds.retain(|k| k.0.name() != G::KIND);
        self.kinds.push(KindEntry(Arc::new(Registered {
            game: Arc::new(game),
        })));
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

    /// Give new games rng seeds from a fixed sequence that starts at `seed` instead of the
    /// operating system's random numbers, so that the same commands give the same log. For
    /// tests only: whoever knows `seed` can predict every game's dice.
    pub fn seeds(mut self, seed: u64) -> Self {
        self.seeds = Seeds::Fixed(seed.into());
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

    /// Decide who plays with whom in games of `kind` (see [`crate::Matchmaker`]): `play`
    /// then waits for `matchmaker` to group the player instead of seating them at once.
    pub fn matchmaker(mut self, kind: &str, matchmaker: Arc<dyn crate::Matchmaker>) -> Self {
        self.matchmakers
            .insert(kind.to_owned(), MatchmakerEntry(matchmaker));
        self
    }

    /// Let connections into `group:<name>` channels as `policy` says.
    pub fn groups(mut self, policy: Arc<dyn GroupPolicy>) -> Self {
        self.groups = Some(policy);
        self
    }

    /// Start the hub: start the log writer, restore every unfinished game from the log
    /// (snapshot plus tail) and arm its timers; overdue timers fire at once, in due order.
    /// Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The log cannot be listed. A single game that cannot be restored is logged and
    /// skipped.
    pub async fn start(self) -> Result<Hub> {
        let metrics = self.metrics.unwrap_or_default();
        let health = Arc::new(StorageHealth::default());
        let watched = Arc::new(Watched::new(self.log, Arc::clone(&health)));
        // The write half to the writer alone; everything else reads.
        let log: Arc<dyn LogRead> = Arc::clone(&watched) as Arc<dyn LogRead>;
        let writer = Writer::start(
            watched,
            self.config.durability,
            Arc::clone(&metrics),
            Arc::clone(&health),
        );
        let rt = Arc::new(Runtime {
            log,
            writer,
            bus: self.bus.unwrap_or_else(|| Arc::new(crate::bus::LocalBus)),
            clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
            seeds: self.seeds,
            config: self.config,
            metrics,
            health,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            owners: Arc::default(),
            retired: std::sync::Mutex::default(),
            wakes: Arc::default(),
            panicked: std::sync::Mutex::default(),
            lobbies: crate::game::lobby::Lobbies::default(),
            pending: crate::game::remote::Pending::default(),
        });
        let matchmakers = self
            .matchmakers
            .into_iter()
            .map(|(kind, m)| (kind, m.0))
            .collect();
        let registry = Registry::new(
            rt,
            self.kinds.into_iter().map(|k| k.0).collect(),
            matchmakers,
        );
        let started = std::time::Instant::now();
        let found = registry.index().await?;
        let rt = &registry.rt;
        let expired = crate::session::resume::expire(&*rt.log, &rt.writer, rt.clock.now()).await?;
        let sessions = rt.log.session_count().await?;
        tracing::info!(
            channels = found.channels,
            due_now = found.due,
            sessions,
            expired,
            took = ?started.elapsed(),
            "hub started; games load on first use or when due"
        );
        let kept_gauge = registry.rt.metrics.kept_sessions.clone();
        let inner = Arc::new_cyclic(|weak| Inner {
            registry,
            auth: self.auth,
            groups: self.groups,
            sessions: Sessions::new(kept_gauge),
            creates: crate::session::quota::PerUser::default(),
            address_creates: crate::session::quota::PerUser::default(),
            address_subscribes: crate::session::quota::PerUser::default(),
            hears: Arc::new(Hears {
                inner: weak.clone(),
            }),
        });
        let hears: std::sync::Weak<dyn crate::bus::Inbound> = Arc::downgrade(&inner.hears);
        inner.registry.rt.bus.attach(hears);
        inner
            .sessions
            .set_kept(usize::try_from(sessions).unwrap_or(usize::MAX));
        let rt = &inner.registry.rt;
        // Nobody is connected yet: every session channel whose session is not kept is gone.
        inner
            .registry
            .remove_session_channels(&std::collections::HashSet::new(), rt.clock.now(), 0)
            .await?;
        tokio::spawn(crate::background::revive(Arc::downgrade(&inner)));
        tokio::spawn(crate::background::housekeep(Arc::downgrade(&inner)));
        tokio::spawn(crate::background::wake(Arc::downgrade(&inner)));
        if inner.registry.rt.config.retain_finished.is_some() {
            tokio::spawn(crate::background::retain(Arc::downgrade(&inner)));
        }
        Ok(Hub { inner })
    }
}

/// The live runtime: hosts every game, serves connections from any transport.
///
/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("kinds", &self.inner.registry.kinds().collect::<Vec<_>>())
            .field("config", &self.rt().config)
            .finish_non_exhaustive()
    }
}

/// Wait for a game's answer to a Rust caller.
async fn answer(wait: oneshot::Receiver<Answer>) -> Result<Answer> {
    wait.await.map_err(|_| HubError::Unavailable)
}

impl Hub {
    /// Start building a hub over `log`.
    pub fn builder(log: Arc<dyn Log>) -> HubBuilder {
        HubBuilder {
            log,
            kinds: Vec::new(),
            config: HubConfig::default(),
            clock: None,
            metrics: None,
            auth: None,
            groups: None,
            seeds: Seeds::default(),
            bus: None,
            matchmakers: std::collections::HashMap::new(),
        }
    }

    pub(crate) fn rt(&self) -> &Arc<Runtime> {
        &self.inner.registry.rt
    }

    /// Create a game of `kind` and seat `player` in it. The answer carries the keys to share.
    /// The embedding server is trusted: a player's limit on unfinished games does not apply
    /// here (the server's limit on live games does).
    ///
    /// # Errors
    /// Unknown kind, bad config, storage failure, the server at its limit of live games.
    pub async fn create(&self, kind: &str, config: Value, player: &str) -> Result<Created> {
        let (reply, wait) = oneshot::channel();
        self.inner
            .registry
            .create(
                kind,
                config,
                player.to_owned(),
                None,
                None,
                ReplyTo::caller(reply),
            )
            .await?;
        match answer(wait).await? {
            Answer::Seated { result, .. } => {
                let seated = result?;
                let (join, watch) = seated.invite.unwrap_or_default();
                Ok(Created {
                    game: seated.joined.game,
                    kind: seated.joined.kind,
                    join,
                    watch,
                    seat: seated.joined.seat,
                    token: seated.joined.token,
                })
            }
            _ => Err(HubError::Unavailable),
        }
    }

    /// Seat `player` with a join key (or give back the seat a seat token names).
    ///
    /// # Errors
    /// Unknown key, a watch key, a full game, a finished game.
    pub async fn join(&self, key: &str, player: &str) -> Result<Joined> {
        let (reply, wait) = oneshot::channel();
        self.inner
            .registry
            .join(key, player.to_owned(), None, None, ReplyTo::caller(reply))
            .await?;
        match answer(wait).await? {
            Answer::Seated { result, .. } => Ok(result?.joined),
            _ => Err(HubError::Unavailable),
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
        let (reply, wait) = oneshot::channel();
        let msg = RoomMsg::Submit {
            by: Actor::Seat(seat),
            cmd,
            cid,
            reply: ReplyTo::caller(reply),
        };
        self.inner.registry.send(game, msg).await?;
        match answer(wait).await? {
            Answer::Command { result, .. } => result,
            _ => Err(HubError::Unavailable),
        }
    }

    /// Publish `data` on `channel` (`broadcast`, `user:<id>`, `group:<name>`,
    /// `session:<id>`): every subscriber gets it as a `notice` event, and the channel keeps
    /// the last [`HubConfig::channel_history`] for subscribers who come later. Returns the
    /// notice's seq in the channel, durable.
    ///
    /// # Errors
    /// Not a channel name, data over 64 KiB, storage failure.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<Seq> {
        crate::game::channel::access(channel)?;
        crate::game::channel::check_data(&data)?;
        let handle = self.inner.registry.channel(channel).await?;
        match handle.ask(|reply| RoomMsg::Publish { data, reply }).await? {
            Answer::Command { result, .. } => result,
            _ => Err(HubError::Unavailable),
        }
    }

    /// The data of the last notice kept on `channel`; `None` if nothing was published on it
    /// (or all of it was forgotten).
    ///
    /// # Errors
    /// Not a channel's name; the log cannot be read.
    pub async fn last_notice(&self, channel: &str) -> Result<Option<Value>> {
        crate::game::channel::access(channel)?;
        let log = &self.inner.registry.rt.log;
        let key = crate::game::channel::index_key(channel);
        let Some(entry) = log.find_key(&key).await? else {
            return Ok(None);
        };
        let version = log.version(entry.stream).await?;
        if version == 0 {
            return Ok(None);
        }
        let page = log.read(entry.stream, version, 1).await?;
        Ok(page.into_iter().next().and_then(|(_, record)| {
            let env: umpire_engine::NoticeEnvelope = rmp_serde::from_slice(&record).ok()?;
            let umpire_engine::NoticeBody::Notice { data, .. } = env.body;
            Some(data)
        }))
    }

    /// Changes each time this node makes a channel's stream (a first publish on it). A
    /// facility's channels exist only once something was published on them (a subscribe is
    /// refused `not_found` before): a transport holding a subscriber that waits for one
    /// subscribes again when this changes, and now and then for channels other nodes made.
    pub fn channels_made(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.registry.channels_made()
    }

    /// The game's current state.
    ///
    /// # Errors
    /// No such game; storage failure while loading it.
    pub async fn inspect(&self, game: GameId) -> Result<Inspection> {
        let (reply, wait) = oneshot::channel();
        self.inner
            .registry
            .send(game, RoomMsg::Inspect { reply })
            .await?;
        wait.await.map_err(|_| HubError::Unavailable)
    }

    /// A session for a new connection: the transport hands it what the client sends and
    /// sends what it gives back (see [`Session`]).
    pub fn session(&self, peer: Peer) -> Session {
        let id = self.inner.sessions.next_id();
        Session::new(Arc::clone(&self.inner), id, peer)
    }

    /// The open games of `kind` (or of every kind), oldest first, at most 100 per kind: the
    /// games created by `play` or `create` with `open` that have a free seat.
    ///
    /// # Errors
    /// No such kind; the log cannot be read.
    pub async fn open_games(&self, kind: Option<&str>) -> Result<Vec<crate::OpenGame>> {
        let kinds: Vec<String> = match kind {
            Some(kind) => vec![kind.to_owned()],
            None => self.inner.registry.kinds().map(str::to_owned).collect(),
        };
        let mut all = Vec::new();
        for kind in kinds {
            let lobby = self.inner.registry.lobby(&kind).await?;
            let (tx, rx) = oneshot::channel();
            lobby.send(RoomMsg::OpenGames { reply: tx })?;
            all.extend(rx.await.map_err(|_| HubError::Unavailable)?);
        }
        Ok(all)
    }

    /// Players waiting for a seat on this node (`play`, answered yet by their lobby).
    pub fn waiting_players(&self) -> usize {
        usize::try_from(self.rt().metrics.waiting_players.get()).unwrap_or(0)
    }

    /// Remove the finished games whose last event is older than
    /// [`HubConfig::retain_finished`] (none if it is `None`), with their keys; a game being
    /// replayed right now is kept. The hub does this by itself every hour; returns how many.
    ///
    /// # Errors
    /// The log cannot be listed or written.
    pub async fn prune_finished(&self) -> Result<usize> {
        crate::background::prune_finished(Arc::clone(&self.inner)).await
    }

    /// What the monitor lists of the games in memory: at most `limit`, lowest ids first.
    pub async fn game_summaries(&self, limit: usize) -> Vec<crate::GameSummary> {
        let mut asked = Vec::new();
        for game in self.live_games().into_iter().take(limit) {
            let (reply, wait) = oneshot::channel();
            // A game that left memory since the list was made is not loaded just to be shown.
            if let Some(handle) = self.inner.registry.loaded(game) {
                if handle.send(RoomMsg::Summary { reply }).is_ok() {
                    asked.push(wait);
                }
            }
        }
        let mut summaries = Vec::new();
        for wait in asked {
            // A game that left memory meanwhile is left out.
            if let Ok(mut summary) = wait.await {
                if let Ok(Some(meta)) = self.rt().log.meta(summary.game.0).await {
                    summary.created = meta.created;
                }
                summaries.push(summary);
            }
        }
        summaries
    }

    /// A game's events (the first `max`) and its state after seq `at` (default: the last),
    /// read from the log whether or not the game is in memory.
    ///
    /// # Errors
    /// No such game (channels have no state), its kind is not registered, the log cannot be read.
    pub async fn history(
        &self,
        game: GameId,
        at: Option<Seq>,
        max: usize,
    ) -> Result<crate::History> {
        let inner = Arc::clone(&self.inner);
        let replayed = AssertUnwindSafe(async move {
            let registry = &inner.registry;
            let log = &*registry.rt.log;
            let not_found = || HubError::NotFound(Missing::Game(game));
            let meta = log.meta(game.0).await?.ok_or_else(not_found)?;
            let kind = registry.kind(&meta.kind).ok_or_else(not_found)?;
            let version = log.version(game.0).await?;
            let events = log
                .read(game.0, 1, max)
                .await?
                .iter()
                .map(|(_, bytes)| rmp_serde::from_slice::<Value>(bytes).unwrap_or(Value::Null))
                .collect();
            let at = at
                .unwrap_or(Seq(version))
                .clamp(Seq(1), Seq(version.max(1)));
            let state = kind.state_at(log, game, at.0).await?;
            Ok(crate::History {
                game,
                kind: meta.kind,
                version: Seq(version),
                events,
                at,
                state,
            })
        });
        replayed
            .catch_unwind()
            .await
            .map_err(|_| HubError::Panicked(Panic::Replaying(game)))?
    }

    /// Every open connection: its peer, user, games, and how far behind it is.
    pub fn connections(&self) -> Vec<crate::ConnectionSummary> {
        self.inner.sessions.list(self.rt().clock.now())
    }

    /// Games out of memory with a wake-up armed (loaded on use or when due).
    pub fn sleeping_games(&self) -> usize {
        self.rt().wakes.len()
    }

    /// The log the hub writes to, to read: its writes all go through the hub's writer.
    pub fn log(&self) -> &Arc<dyn LogRead> {
        &self.rt().log
    }

    /// The hub's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.rt().metrics
    }

    /// A token cancelled when shutdown begins, for transports' accept loops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.rt().shutdown.clone()
    }

    /// Whether the hub is serving: [`Health::Ok`], or why not.
    pub fn health(&self) -> Health {
        if self.rt().shutdown.is_cancelled() {
            return Health::Stopping;
        }
        self.rt().health.get()
    }

    /// Ids of the games with a running task.
    pub fn live_games(&self) -> Vec<GameId> {
        self.inner.registry.live()
    }

    /// Shut down cleanly:
    /// 1. stop accepting connections, requests and new games (transports watch the token);
    /// 2. every game answers the commands already queued, makes them durable, and stops;
    ///    every session sends the answers it is owed, then `closing`, then closes with 1001;
    /// 3. wait for all of that, at most `shutdown_grace`;
    /// 4. flush the log.
    ///
    /// # Errors
    /// The final flush failed.
    pub async fn shutdown(&self) -> Result<()> {
        let rt = self.rt();
        rt.shutdown.cancel();
        self.inner.sessions.stop();
        rt.tracker.close();
        let grace = rt.config.shutdown_grace;
        if tokio::time::timeout(grace, rt.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "some games or connections did not finish in time");
        }
        rt.writer.sync().await?;
        tracing::info!("hub stopped; log flushed");
        Ok(())
    }
}

/// What the bus delivers, handed to the game tasks: announcements and answers to the
/// followers, requests and presence to the leaders, a lost lease to its task.
#[derive(Debug)]
struct Hears {
    inner: std::sync::Weak<Inner>,
}

impl Hears {
    /// Queue `msg` for `game`'s task if it runs here.
    fn tell(&self, game: umpire_engine::protocol::GameId, msg: crate::handle::RoomMsg) {
        if let Some(handle) = self
            .inner
            .upgrade()
            .and_then(|inner| inner.registry.task(game))
        {
            let _ = handle.try_send(msg);
        }
    }
}

impl crate::bus::Inbound for Hears {
    fn announced(&self, stream: umpire_engine::protocol::GameId, version: Seq, by: &str) {
        let by = by.to_owned();
        self.tell(stream, crate::handle::RoomMsg::Announced { version, by });
    }

    fn received(&self, msg: Vec<u8>) {
        use crate::game::remote::{BusMsg, WireAnswer, WireError};
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        match BusMsg::decode(&msg) {
            Some(BusMsg::Request {
                from,
                id,
                game,
                req,
            }) => {
                let bus = Arc::clone(&inner.registry.rt.bus);
                tokio::spawn(async move {
                    let reply = crate::outbox::ReplyTo::remote(Arc::clone(&bus), from.clone(), id);
                    if let Err(e) = inner.registry.send(game, req.into_msg(reply)).await {
                        // The message (and its reply) went with the failure: answer here.
                        let msg = BusMsg::Reply {
                            id,
                            answer: WireAnswer::Command(Err(WireError::from(&e))),
                        };
                        bus.send(&from, msg.encode());
                    }
                });
            }
            Some(BusMsg::Reply { id, answer }) => {
                if let Some(game) = inner.registry.rt.pending.close(id) {
                    let answer = Box::new(answer);
                    self.tell(game, crate::handle::RoomMsg::Answered { id, answer });
                }
            }
            Some(BusMsg::Presence {
                node,
                game,
                seats,
                spectators,
                for_ms,
            }) => {
                let until = inner.registry.rt.clock.now().saturating_add(for_ms);
                let seats = seats.into_iter().map(umpire_engine::Seat).collect();
                let msg = crate::handle::RoomMsg::Presence {
                    node,
                    seats,
                    spectators,
                    until,
                };
                self.tell(game, msg);
            }
            Some(BusMsg::Audience { game, spectators }) => {
                self.tell(game, crate::handle::RoomMsg::Audience { spectators });
            }
            Some(BusMsg::Rematch { game, next }) => {
                self.tell(game, crate::handle::RoomMsg::RematchTold { next });
            }
            None => tracing::warn!(
                bytes = msg.len(),
                "a message from another node does not decode"
            ),
        }
    }

    fn lost(&self, stream: umpire_engine::protocol::GameId) {
        self.tell(stream, crate::handle::RoomMsg::Lost);
    }
}
