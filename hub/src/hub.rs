//! The `Hub`: how it is built and started, its Rust API, sessions for transports, and the
//! order of shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use umpire_engine::protocol::GameId;
use umpire_engine::{Actor, Game, Seat, Seq};
use umpire_store::Log;

use crate::clock::{Clock, TokioClock};
use crate::config::HubConfig;
use crate::error::{HubError, Result};
use crate::handle::{Answer, Created, Inspection, Joined, ReplyTo, RoomMsg};
use crate::health::{Health, StorageHealth, Watched};
use crate::keys::Seeds;
use crate::kind::{Kind, Registered};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::session::{Peer, Session};
use crate::writer::Writer;

/// Turns a client's bearer token into a user id.
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// The user the token names.
    ///
    /// # Errors
    /// Why the token is not acceptable, in words for the client.
    fn verify(&self, token: &str) -> std::result::Result<String, String>;
}

/// Who may subscribe to which `group:<name>` channel: the embedding server decides (a team,
/// a lobby, a guild). Without a policy nobody may.
pub trait GroupPolicy: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the connection of `user` (`None`: a guest) may receive `group`'s notices.
    fn may_subscribe(&self, user: Option<&str>, group: &str) -> bool;
}

/// What the hub's clones and sessions share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) auth: Option<Arc<dyn Authenticator>>,
    pub(crate) groups: Option<Arc<dyn GroupPolicy>>,
    pub(crate) sessions: Sessions,
    /// Games each authenticated user created in the last minute.
    pub(crate) creates: crate::quota::PerUser,
    /// Games created from each client address in the last minute.
    pub(crate) address_creates: crate::quota::PerUser,
    /// Channel subscriptions from each client address in the last minute.
    pub(crate) address_subscribes: crate::quota::PerUser,
}

/// The open sessions, so that shutdown can wake each one: a session waits on its outbox
/// alone, which keeps the wait for the next event cheap.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    next: AtomicU64,
    stopping: AtomicBool,
    /// By session token.
    open: Mutex<HashMap<String, Weak<Outbox>>>,
    /// Sessions kept in the log for resuming, counted against `max_kept_sessions`: counted
    /// at start and by each housekeeping pass, and kept up to date in between by the
    /// sessions that save and remove their records.
    kept: AtomicUsize,
}

impl Sessions {
    fn open_map(&self) -> MutexGuard<'_, HashMap<String, Weak<Outbox>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn open(&self, token: &str, outbox: &Arc<Outbox>) {
        self.open_map()
            .insert(token.to_owned(), Arc::downgrade(outbox));
    }

    pub(crate) fn close(&self, token: &str) {
        self.open_map().remove(token);
    }

    /// A connection resumed the session `token`: if a connection still holds it (its end
    /// has not been noticed yet), that one is closed and never saves it again.
    pub(crate) fn take_over(&self, token: &str) {
        let old = self.open_map().remove(token);
        if let Some(outbox) = old.as_ref().and_then(Weak::upgrade) {
            outbox.take_over();
        }
    }

    /// Every open connection, for the monitor.
    pub(crate) fn list(&self, now: umpire_engine::Millis) -> Vec<crate::admin::ConnectionSummary> {
        let outboxes: Vec<Arc<Outbox>> =
            self.open_map().values().filter_map(Weak::upgrade).collect();
        let mut list: Vec<_> = outboxes
            .iter()
            .map(|outbox| {
                let (card, queued) = outbox.card();
                crate::admin::ConnectionSummary {
                    session: card.session,
                    peer: card.peer,
                    user: card.user,
                    opened: card.opened,
                    games: card.games,
                    queued,
                    behind_ms: card.behind_since.map(|since| now.saturating_sub(since)),
                }
            })
            .collect();
        list.sort_by_key(|c| c.session);
        list
    }

    /// The sessions kept for resuming, as last counted.
    pub(crate) fn kept(&self) -> usize {
        self.kept.load(Ordering::Acquire)
    }

    /// Count one session record more, if fewer than `max` are kept.
    pub(crate) fn try_keep(&self, max: usize) -> bool {
        self.kept
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Count one session record fewer.
    pub(crate) fn forget_kept(&self) {
        let _ = self
            .kept
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// The kept sessions, as a pass over the log counted them.
    pub(crate) fn set_kept(&self, kept: usize) {
        self.kept.store(kept, Ordering::Release);
    }

    /// The public ids of the sessions of every open connection.
    pub(crate) fn sids(&self) -> std::collections::HashSet<String> {
        let outboxes: Vec<Arc<Outbox>> =
            self.open_map().values().filter_map(Weak::upgrade).collect();
        outboxes.iter().map(|o| o.card().0.sid).collect()
    }

    /// Whether shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Tell every session that shutdown has begun.
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for outbox in self.open_map().values().filter_map(Weak::upgrade) {
            outbox.wake();
        }
    }
}

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
}

struct KindEntry(Arc<dyn Kind>);

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl HubBuilder {
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
        let log: Arc<dyn Log> = Arc::new(Watched::new(self.log, Arc::clone(&health)));
        let writer = Writer::start(
            Arc::clone(&log),
            self.config.durability,
            Arc::clone(&metrics),
            Arc::clone(&health),
        );
        let rt = Arc::new(Runtime {
            log,
            writer,
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
            parked: std::sync::Mutex::default(),
            panicked: std::sync::Mutex::default(),
        });
        let registry = Registry::new(rt, self.kinds.into_iter().map(|k| k.0).collect());
        let started = std::time::Instant::now();
        let found = registry.index()?;
        let rt = &registry.rt;
        let kept = crate::resume::prune(&*rt.log, rt.clock.now(), &rt.config);
        let sessions = kept.count;
        tracing::info!(
            games = found.games,
            timers = found.timers,
            due_now = found.due,
            sessions,
            took = ?started.elapsed(),
            "hub started; games load on first use"
        );
        let inner = Arc::new(Inner {
            registry,
            auth: self.auth,
            groups: self.groups,
            sessions: Sessions::default(),
            creates: crate::quota::PerUser::default(),
            address_creates: crate::quota::PerUser::default(),
            address_subscribes: crate::quota::PerUser::default(),
        });
        inner.sessions.set_kept(kept.count);
        let rt = &inner.registry.rt;
        rt.metrics.kept_sessions.set(gauge(kept.count));
        // Nobody is connected yet: every session channel whose session is not kept is gone.
        inner
            .registry
            .remove_session_channels(&kept.sids, rt.clock.now(), 0)?;
        tokio::spawn(revive(Arc::downgrade(&inner)));
        tokio::spawn(housekeep(Arc::downgrade(&inner)));
        tokio::spawn(wake(Arc::downgrade(&inner)));
        if inner.registry.rt.config.retain_finished.is_some() {
            tokio::spawn(retain(Arc::downgrade(&inner)));
        }
        Ok(Hub { inner })
    }
}

/// Each time the log works again after failing, restart the games that stopped on the
/// failure, so that their timers fire without waiting for a player to come back.
async fn revive(inner: Weak<Inner>) {
    loop {
        let Some((recovered, shutdown)) = inner.upgrade().map(|i| {
            let rt = &i.registry.rt;
            (Arc::clone(&rt.health), rt.shutdown.clone())
        }) else {
            return;
        };
        tokio::select! {
            () = recovered.recovered() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let revived = inner.registry.revive();
        tracing::info!(
            games = revived,
            "games stopped by the storage failure restarted"
        );
    }
}

/// Load each game not in memory when its wake-up (a timer, idle expiry) is due; forget the
/// handles of games that left memory.
async fn wake(inner: Weak<Inner>) {
    loop {
        let Some(hub) = inner.upgrade() else {
            return;
        };
        let due = hub.registry.take_due();
        if !due.is_empty() {
            // Loading reads the log: many games due at once (a folder from before the index,
            // a wave of timers) must not hold a worker thread that long.
            let loader = Arc::clone(&hub);
            let _ = tokio::task::spawn_blocking(move || loader.registry.wake(due)).await;
        }
        let rt = &hub.registry.rt;
        let wakes = Arc::clone(&rt.wakes);
        let (due, shutdown) = (wakes.next_in(rt.clock.now()), rt.shutdown.clone());
        // Holds no strong reference while it waits: a hub dropped without shutdown ends it.
        drop(hub);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wakes.changed() => {}
            () = async {
                match due {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// A session channel younger than this is never removed: its session may have opened after
/// housekeeping listed the connected ones.
const SESSION_CHANNEL_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often kept sessions and session channels are looked over: a quarter of the shorter
/// resume time, between a second and five minutes.
fn housekeeping_every(config: &crate::HubConfig) -> std::time::Duration {
    (config.resume_for.min(config.resume_channels_for) / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(300),
    )
}

/// Remove kept sessions past their time and the channels of sessions that are gone, every
/// [`housekeeping_every`].
async fn housekeep(inner: Weak<Inner>) {
    loop {
        let Some(hub) = inner.upgrade() else {
            return;
        };
        let rt = &hub.registry.rt;
        let (every, shutdown) = (housekeeping_every(&rt.config), rt.shutdown.clone());
        drop(hub);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let Some(hub) = inner.upgrade() else {
            return;
        };
        // Reads every kept session: off the async workers.
        let pass = tokio::task::spawn_blocking(move || housekeeping_pass(&hub)).await;
        match pass {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "housekeeping did not finish"),
            Err(e) => tracing::error!(error = %e, "housekeeping failed"),
        }
    }
}

/// One pass of [`housekeep`].
fn housekeeping_pass(hub: &Inner) -> Result<()> {
    let rt = &hub.registry.rt;
    // Connected before the pass and after it: a session that closes while its record is
    // being looked for is in the first list, one that opens meanwhile in the second.
    let mut sessions = hub.sessions.sids();
    let kept = crate::resume::prune(&*rt.log, rt.clock.now(), &rt.config);
    hub.sessions.set_kept(kept.count);
    rt.metrics.kept_sessions.set(gauge(kept.count));
    sessions.extend(kept.sids);
    sessions.extend(hub.sessions.sids());
    let min_age = u64::try_from(SESSION_CHANNEL_MIN_AGE.as_millis()).unwrap_or(u64::MAX);
    let removed = hub
        .registry
        .remove_session_channels(&sessions, rt.clock.now(), min_age)?;
    if removed > 0 {
        tracing::info!(
            channels = removed,
            "channels of sessions that are gone removed"
        );
    }
    Ok(())
}

/// A count as a gauge's value.
fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// How often finished games past retention are looked for (and once at start).
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove finished games past retention, at start and then every [`RETENTION_EVERY`].
async fn retain(inner: Weak<Inner>) {
    loop {
        let Some(hub) = inner.upgrade().map(|inner| Hub { inner }) else {
            return;
        };
        if let Err(e) = hub.prune_finished().await {
            tracing::warn!(error = %e, "finished games past retention not removed");
        }
        let shutdown = hub.rt().shutdown.clone();
        drop(hub);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

/// The live runtime: hosts every game, serves connections from any transport.
///
/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
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
        }
    }

    fn rt(&self) -> &Arc<Runtime> {
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
        self.inner.registry.create(
            kind,
            config,
            player.to_owned(),
            None,
            None,
            ReplyTo::caller(reply),
        )?;
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
            .join(key, player.to_owned(), None, ReplyTo::caller(reply))?;
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
        self.inner.registry.send(game, msg)?;
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
        crate::channel::access(channel)?;
        crate::channel::check_data(&data)?;
        let handle = self.inner.registry.channel(channel)?;
        match handle.ask(|reply| RoomMsg::Publish { data, reply }).await? {
            Answer::Command { result, .. } => result,
            _ => Err(HubError::Unavailable),
        }
    }

    /// The game's current state.
    ///
    /// # Errors
    /// No such game; storage failure while loading it.
    pub async fn inspect(&self, game: GameId) -> Result<Inspection> {
        let (reply, wait) = oneshot::channel();
        self.inner.registry.send(game, RoomMsg::Inspect { reply })?;
        wait.await.map_err(|_| HubError::Unavailable)
    }

    /// A session for a new connection: the transport hands it what the client sends and
    /// sends what it gives back (see [`Session`]).
    pub fn session(&self, peer: Peer) -> Session {
        let id = self.inner.sessions.next.fetch_add(1, Ordering::Relaxed) + 1;
        Session::new(Arc::clone(&self.inner), id, peer)
    }

    /// Remove the finished games whose last event is older than
    /// [`HubConfig::retain_finished`] (none if it is `None`), with their keys; a game being
    /// replayed right now is kept. The hub does this by itself every hour; returns how many.
    ///
    /// # Errors
    /// The log cannot be listed or written.
    pub async fn prune_finished(&self) -> Result<usize> {
        let Some(keep) = self.rt().config.retain_finished else {
            return Ok(0);
        };
        let inner = Arc::clone(&self.inner);
        let now = self.rt().clock.now();
        tokio::task::spawn_blocking(move || crate::retention::prune(&inner.registry, now, keep))
            .await
            .map_err(|_| HubError::Unavailable)?
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
                if let Ok(Some(meta)) = self.rt().log.meta(summary.game) {
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
        tokio::task::spawn_blocking(move || {
            let registry = &inner.registry;
            let log = &*registry.rt.log;
            let not_found = || HubError::NotFound(format!("no game {game}"));
            let meta = log.meta(game)?.ok_or_else(not_found)?;
            let kind = registry.kind(&meta.kind).ok_or_else(not_found)?;
            let version = log.version(game)?;
            let events = log
                .read(game, 1, max)?
                .iter()
                .map(|(_, bytes)| rmp_serde::from_slice::<Value>(bytes).unwrap_or(Value::Null))
                .collect();
            let at = at.unwrap_or(version).clamp(1, version.max(1));
            let state = kind.state_at(log, game, at)?;
            Ok(crate::History {
                game,
                kind: meta.kind,
                version,
                events,
                at,
                state,
            })
        })
        .await
        .map_err(|e| match e.is_panic() {
            true => HubError::Panicked(format!("replaying game {game}, its code panicked")),
            false => HubError::Unavailable,
        })?
    }

    /// Every open connection: its peer, user, games, and how far behind it is.
    pub fn connections(&self) -> Vec<crate::ConnectionSummary> {
        self.inner.sessions.list(self.rt().clock.now())
    }

    /// Games out of memory with a wake-up armed (loaded on use or when due).
    pub fn sleeping_games(&self) -> usize {
        self.rt().wakes.len()
    }

    /// The log the hub writes to.
    pub fn log(&self) -> &Arc<dyn Log> {
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
