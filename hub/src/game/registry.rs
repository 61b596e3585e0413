//! The registry: registered game kinds and the live games, by id. Games are started here
//! (created, or loaded from the log on first use) and looked up by id or by key.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use umpire_engine::protocol::GameId;
use umpire_engine::{Millis, Seat, Seq};
use umpire_store::{Role, StreamMeta, StreamStatus};

use crate::error::{Denied, Held, HubError, Missing, Panic, Result};
use crate::game::kind::Kind;
use crate::game::runtime::Runtime;
use crate::handle::{RoomHandle, RoomMsg, Subscriber};
use crate::metrics::gauge;
use crate::outbox::ReplyTo;

/// What [`Registry::index`] found in the log.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Channel streams (up to one past the limit).
    pub(crate) channels: usize,
    /// Wake-ups due at once (overdue timers, expiry), up to [`DUE_REPORTED`].
    pub(crate) due: usize,
}

/// How soon a game due to wake that did not load is tried again, in ms.
const RETRY_WAKE_MS: Millis = 1_000;

/// The most wake-ups due at start that [`Registry::index`] counts.
const DUE_REPORTED: usize = 10_000;

/// The join and watch keys of the games in memory, so that joining or watching one asks the
/// log nothing.
#[derive(Debug, Default)]
struct Invites {
    by_key: HashMap<String, (Role, GameId)>,
    of_game: HashMap<GameId, (String, String)>,
}

impl Invites {
    fn add(&mut self, game: GameId, (join, watch): (String, String)) {
        self.by_key.insert(join.clone(), (Role::Join, game));
        self.by_key.insert(watch.clone(), (Role::Watch, game));
        self.of_game.insert(game, (join, watch));
    }

    fn forget(&mut self, game: GameId) {
        if let Some((join, watch)) = self.of_game.remove(&game) {
            self.by_key.remove(&join);
            self.by_key.remove(&watch);
        }
        if self.of_game.capacity() > 1024 && self.of_game.len() < self.of_game.capacity() / 4 {
            self.of_game.shrink_to_fit();
            self.by_key.shrink_to_fit();
        }
    }

    fn find(&self, key: &str) -> Option<(Role, GameId)> {
        self.by_key.get(key).copied()
    }
}

/// The gate a game's loaders (and its removal) pass one at a time.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Kinds and live games.
pub(crate) struct Registry {
    pub(crate) rt: Arc<Runtime>,
    kinds: HashMap<String, Arc<dyn Kind>>,
    /// Live games. A handle whose task stopped is replaced on the next lookup.
    rooms: Mutex<HashMap<GameId, RoomHandle>>,
    /// The keys of the games in `rooms`. Taken after `rooms`, never before it.
    invites: Mutex<Invites>,
    /// Games being loaded, each with the gate its loaders pass one at a time: a game is
    /// loaded by one task while requests for other games go on. Taken after `rooms`, never
    /// before it while `rooms` is held.
    loading: Mutex<HashMap<GameId, Gate>>,
    /// Live channels, by stream id (not games: not counted or listed as games).
    channels: Mutex<HashMap<GameId, RoomHandle>>,
    /// Held while a channel's stream is looked up or created, so that a name never gets two
    /// streams.
    opening: tokio::sync::Mutex<()>,
    /// Channel streams in the log, counted against `max_channels`.
    channel_count: AtomicUsize,
    /// The streams of `session:<sid>` channels, by sid, with when each was created: a
    /// session's channel is removed once the session is neither connected nor kept.
    session_channels: Mutex<HashMap<String, (GameId, Millis)>>,
    /// Bumped each time this node makes a channel's stream: a subscriber waiting for a
    /// facility's channel to exist looks again.
    made: tokio::sync::watch::Sender<u64>,
    /// The lobbies this node runs, by kind.
    lobbies: Mutex<HashMap<String, RoomHandle>>,
    /// Held while a lobby is looked up or started: one task per lobby on a node.
    lobby_opening: tokio::sync::Mutex<()>,
    /// The matchmakers the embedding server registered, by kind.
    matchmakers: HashMap<String, Arc<dyn crate::Matchmaker>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn new(
        rt: Arc<Runtime>,
        kinds: Vec<Arc<dyn Kind>>,
        matchmakers: HashMap<String, Arc<dyn crate::Matchmaker>>,
    ) -> Self {
        Registry {
            rt,
            kinds: kinds
                .into_iter()
                .map(|k| (k.name().to_owned(), k))
                .collect(),
            rooms: Mutex::new(HashMap::new()),
            invites: Mutex::default(),
            loading: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            channel_count: AtomicUsize::new(0),
            session_channels: Mutex::new(HashMap::new()),
            made: tokio::sync::watch::Sender::new(0),
            lobbies: Mutex::new(HashMap::new()),
            lobby_opening: tokio::sync::Mutex::new(()),
            matchmakers,
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<GameId, RoomHandle>> {
        crate::lock(&self.channels)
    }

    /// The channel `name`, its stream created on first use.
    pub(crate) async fn channel(&self, name: &str) -> Result<RoomHandle> {
        self.open()?;
        let key = crate::game::channel::index_key(name);
        // One opener at a time, so that a name never gets two streams.
        let _opening = self.opening.lock().await;
        let id = match self.rt.log.find_key(&key).await? {
            Some(entry) => entry.stream,
            None => {
                let max = self.rt.config.limits.max_channels;
                if self.channel_count.load(Ordering::Acquire) >= max {
                    return Err(HubError::Limit(Held::Channels(max)));
                }
                let meta = StreamMeta {
                    kind: crate::game::channel::KIND.to_owned(),
                    created: self.rt.clock.now(),
                    status: StreamStatus::Live,
                    creator: name.to_owned(),
                    invite: None,
                    finished: None,
                };
                let created = meta.created;
                let id = self.rt.writer.create_stream(meta).await?;
                let entry = umpire_store::KeyEntry {
                    stream: id,
                    role: Role::Watch,
                };
                self.rt.writer.put_key(key, entry).await?;
                self.counted_channel(GameId(id), name, created);
                id
            }
        };
        self.channel_task(GameId(id), name).await
    }

    /// The lobby of `kind` on this node, started (and its stream made) on first use.
    ///
    /// # Errors
    /// No such kind; the log cannot be read or written.
    pub(crate) async fn lobby(&self, kind: &str) -> Result<RoomHandle> {
        self.open()?;
        if let Some(handle) = self.lobby_loaded(kind) {
            return Ok(handle);
        }
        let k = Arc::clone(
            self.kinds
                .get(kind)
                .ok_or_else(|| HubError::UnknownKind(kind.to_owned()))?,
        );
        let _opening = self.lobby_opening.lock().await;
        if let Some(handle) = self.lobby_loaded(kind) {
            return Ok(handle);
        }
        let key = crate::game::lobby::index_key(kind);
        let id = match self.rt.log.find_key(&key).await? {
            Some(entry) => entry.stream,
            None => {
                let meta = StreamMeta {
                    kind: crate::game::lobby::KIND.to_owned(),
                    created: self.rt.clock.now(),
                    status: StreamStatus::Live,
                    creator: kind.to_owned(),
                    invite: None,
                    finished: None,
                };
                let mine = self.rt.writer.create_stream(meta).await?;
                let entry = umpire_store::KeyEntry {
                    stream: mine,
                    role: Role::Watch,
                };
                // Two nodes making one lobby at once agree on the first key written.
                let held = self.rt.writer.claim_key(key, entry).await?;
                if held.stream != mine {
                    self.rt.writer.remove_streams(vec![mine]).await?;
                }
                held.stream
            }
        };
        let channel = self
            .channel(&crate::game::lobby::channel_name(kind))
            .await?;
        let matchmaker = self.matchmakers.get(kind).cloned();
        let handle =
            crate::game::lobby::spawn(&self.rt, GameId(id), k, matchmaker, channel).await?;
        crate::lock(&self.lobbies).insert(kind.to_owned(), handle.clone());
        Ok(handle)
    }

    /// The lobby of `kind` if it runs on this node.
    pub(crate) fn lobby_loaded(&self, kind: &str) -> Option<RoomHandle> {
        crate::lock(&self.lobbies)
            .get(kind)
            .filter(|h| !h.is_closed())
            .cloned()
    }

    /// The channel `name` if its stream exists (something was published on it), never made.
    pub(crate) async fn existing_channel(&self, name: &str) -> Result<Option<RoomHandle>> {
        self.open()?;
        let key = crate::game::channel::index_key(name);
        match self.rt.log.find_key(&key).await? {
            Some(entry) => Ok(Some(self.channel_task(GameId(entry.stream), name).await?)),
            None => Ok(None),
        }
    }

    /// Counts the channels this node made: changes each time one is (see
    /// [`crate::Hub::channels_made`]).
    pub(crate) fn channels_made(&self) -> tokio::sync::watch::Receiver<u64> {
        self.made.subscribe()
    }

    /// Count the channel stream `id` named `name`, created at `created`.
    fn counted_channel(&self, id: GameId, name: &str, created: Millis) {
        let count = self.channel_count.fetch_add(1, Ordering::AcqRel) + 1;
        self.rt.metrics.channels.set(gauge(count));
        self.made.send_modify(|n| *n += 1);
        if let Some(sid) = name.strip_prefix("session:") {
            self.session_channels()
                .insert(sid.to_owned(), (id, created));
        }
    }

    fn session_channels(&self) -> MutexGuard<'_, HashMap<String, (GameId, Millis)>> {
        crate::lock(&self.session_channels)
    }

    /// Remove the streams of the session channels whose session is neither in `connected`
    /// nor kept for resuming in the log, and that are older than `min_age` (a session that has
    /// just opened may not be counted as connected yet). Returns how many.
    ///
    /// # Errors
    /// The log cannot be read or written.
    pub(crate) async fn remove_session_channels(
        &self,
        connected: &HashSet<String>,
        now: Millis,
        min_age: Millis,
    ) -> Result<usize> {
        let candidates: Vec<(String, GameId)> = self
            .session_channels()
            .iter()
            .filter(|(sid, (_, created))| {
                !connected.contains(*sid) && now.saturating_sub(*created) >= min_age
            })
            .map(|(sid, (id, _))| (sid.clone(), *id))
            .collect();
        let mut gone = Vec::with_capacity(candidates.len());
        for (sid, id) in candidates {
            if self.rt.log.session_by_sid(&sid).await?.is_none() {
                gone.push((sid, id));
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        let ids: Vec<GameId> = gone.iter().map(|(_, id)| *id).collect();
        {
            let mut channels = self.channels();
            for id in &ids {
                if let Some(handle) = channels.remove(id) {
                    handle.stop();
                }
            }
        }
        // Not under the channels lock: removal reads the key index, and subscribers must not
        // wait for it. Nobody else wants these streams (their sessions are gone); a notice
        // published to one meanwhile starts a task that stops on the removed stream, and the
        // next publish creates the channel afresh.
        self.rt
            .writer
            .remove_streams(ids.iter().map(|id| id.0).collect())
            .await?;
        let mut map = self.session_channels();
        for (sid, _) in &gone {
            map.remove(sid);
        }
        drop(map);
        let count = self
            .channel_count
            .fetch_sub(ids.len(), Ordering::AcqRel)
            .saturating_sub(ids.len());
        self.rt.metrics.channels.set(gauge(count));
        Ok(ids.len())
    }

    /// The running task of channel stream `id`, started if it is not running.
    async fn channel_task(&self, id: GameId, name: &str) -> Result<RoomHandle> {
        if let Some(handle) = self.channels().get(&id).filter(|h| !h.is_closed()) {
            return Ok(handle.clone());
        }
        let version = self.rt.log.version(id.0).await?;
        let mut channels = self.channels();
        // Started by another caller while this one read the version: theirs serves.
        if let Some(handle) = channels.get(&id).filter(|h| !h.is_closed()) {
            return Ok(handle.clone());
        }
        let handle = crate::game::channel::spawn(&self.rt, id, name.to_owned(), Seq(version));
        channels.insert(id, handle.clone());
        Ok(handle)
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<GameId, RoomHandle>> {
        // Inserts and removals are single operations: a poisoned map is still consistent.
        crate::lock(&self.rooms)
    }

    fn open(&self) -> Result<()> {
        if self.rt.shutdown.is_cancelled() {
            return Err(HubError::Unavailable);
        }
        Ok(())
    }

    /// The names of the registered kinds.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// Start a game of `kind` and seat `player` in it, subscribing `sub`. The answer goes to
    /// `reply` once the game is durable in the log. `per_player`: refuse if `player` has this
    /// many unfinished games already (a client's request); `None` for the embedding server.
    pub(crate) async fn create(
        &self,
        kind: &str,
        config: Value,
        player: String,
        per_player: Option<usize>,
        sub: Option<Subscriber>,
        reply: ReplyTo,
    ) -> Result<RoomHandle> {
        self.open()?;
        let k = self
            .kinds
            .get(kind)
            .ok_or_else(|| HubError::UnknownKind(kind.to_owned()))?;
        self.forget_retired();
        let limits = &self.rt.config.limits;
        let live = usize::try_from(self.rt.metrics.live_games.get()).unwrap_or(0);
        if live >= limits.max_live_games {
            return Err(HubError::Limit(Held::LiveGames(limits.max_live_games)));
        }
        // Held until the stream exists: from then on the log counts the game.
        let owner = match per_player {
            Some(limit) => self.rt.owners.take(&*self.rt.log, &player, limit).await?,
            None => self.rt.owners.unlimited(&player),
        };
        let started = AssertUnwindSafe(k.start(&self.rt, config, owner.player()))
            .catch_unwind()
            .await;
        let (handle, invite) =
            started.map_err(|_| HubError::Panicked(Panic::Creating(kind.to_owned())))??;
        tracing::info!(game = %handle.game, kind, player = %player, "game created");
        self.rooms().insert(handle.game, handle.clone());
        crate::lock(&self.invites).add(handle.game, invite);
        // The creator's seat is taken in the game's first turn, with its `Created` record.
        handle.send(RoomMsg::Join {
            player,
            seat: None,
            sub,
            reply,
        })?;
        Ok(handle)
    }

    /// The live game `game`, loading it from the log if its task is not running (as a
    /// follower if another node leads it).
    pub(crate) async fn room(&self, game: GameId) -> Result<RoomHandle> {
        self.room_with(game, true).await
    }

    /// [`Self::room`]; with `follow` false, a game another node leads is not loaded here
    /// (`HubError::Elsewhere`): a wake-up is the leader's to serve.
    async fn room_with(&self, game: GameId, follow: bool) -> Result<RoomHandle> {
        self.open()?;
        if let Some(handle) = self.rooms().get(&game).filter(|h| !h.is_closed()) {
            return Ok(handle.clone());
        }
        // One loader per game at a time, outside the map's lock: loading is sled reads (a long
        // tail past the snapshot takes a while), and nobody waits for it but this game's
        // requests.
        let gate = self.gate(game);
        let loaded = {
            let _turn = gate.lock().await;
            self.load(game, follow).await
        };
        self.leave_gate(game, gate);
        loaded
    }

    fn loading(&self) -> MutexGuard<'_, HashMap<GameId, Gate>> {
        crate::lock(&self.loading)
    }

    /// `game`'s gate, made if nobody is at it.
    fn gate(&self, game: GameId) -> Gate {
        Arc::clone(self.loading().entry(game).or_default())
    }

    /// Done with `game`'s gate: forgotten once nobody else is at it.
    fn leave_gate(&self, game: GameId, gate: Gate) {
        let mut loading = self.loading();
        // The map's and ours: nobody else is waiting at this gate.
        if Arc::strong_count(&gate) <= 2 {
            loading.remove(&game);
        }
    }

    /// Start `game`'s task from the log, unless another loader did meanwhile. Called at the
    /// game's gate: two tasks never run one game.
    async fn load(&self, game: GameId, follow: bool) -> Result<RoomHandle> {
        let reloading = match self.rooms().get(&game) {
            Some(handle) if !handle.is_closed() => return Ok(handle.clone()),
            Some(handle) => !handle.is_retired(),
            None => false,
        };
        // Only a game whose task is not running can have stopped on a panic: the running ones
        // (nearly every call) pay nothing for it.
        if self.rt.has_panicked(game) {
            return Err(HubError::panicked(game));
        }
        let not_found = || HubError::NotFound(Missing::Game(game));
        let meta = self.rt.log.meta(game.0).await?.ok_or_else(not_found)?;
        if meta.kind == crate::game::channel::KIND {
            return self.channel_task(game, &meta.creator).await;
        }
        if meta.kind == crate::game::lobby::KIND {
            return self.lobby(&meta.creator).await;
        }
        // Led here, or followed here while another node leads it.
        let leader = match self.rt.bus.place(game).await? {
            crate::bus::Placement::Here => None,
            crate::bus::Placement::Elsewhere(node) if !follow => {
                return Err(HubError::Elsewhere { game, node });
            }
            crate::bus::Placement::Elsewhere(node) => Some(node),
        };
        let kind = self.kinds.get(&meta.kind).ok_or_else(not_found)?;
        if reloading && leader.is_none() {
            // Its task stopped on a storage failure, perhaps after writing records it never
            // made durable: make them durable before they are served to anyone.
            self.rt.writer.sync().await?;
        }
        let invite = meta.invite.clone();
        let follower = leader.is_some();
        let loaded = AssertUnwindSafe(kind.load(&self.rt, game, invite.clone(), leader))
            .catch_unwind()
            .await;
        let handle = loaded.map_err(|_| {
            self.rt.quarantine(game);
            HubError::panicked(game)
        })??;
        tracing::info!(%game, kind = %meta.kind, version = %handle.head(), follower, "game loaded");
        self.rooms().insert(game, handle.clone());
        if let Some(invite) = invite {
            crate::lock(&self.invites).add(game, invite);
        }
        Ok(handle)
    }

    /// Queue `msg` for `game`, loading the game if it is not in memory. A game that leaves
    /// memory, or stops on a failure, between the lookup and the send is loaded again (up to
    /// three times in a row).
    ///
    /// # Errors
    /// No such game; it cannot be loaded; its task kept stopping.
    pub(crate) async fn send(&self, game: GameId, mut msg: RoomMsg) -> Result<RoomHandle> {
        // A few times at most: a game that stops again as soon as it is loaded is failing,
        // and its requests hear so rather than loading it over and over.
        for _ in 0..3 {
            let handle = self.room(game).await?;
            match handle.try_send(msg) {
                Ok(()) => return Ok(handle),
                // Evicted or stopped in between: the next lookup loads it.
                Err(back) if handle.is_retired() || handle.is_closed() => msg = back,
                Err(_) => return Err(HubError::Unavailable),
            }
        }
        Err(HubError::Unavailable)
    }

    /// What `key` opens: its role and stream.
    pub(crate) async fn find_key(&self, key: &str) -> Result<(Role, GameId)> {
        // The keys of the games in memory are known without asking the log.
        if let Some(found) = crate::lock(&self.invites).find(key) {
            return Ok(found);
        }
        let entry = self
            .rt
            .log
            .find_key(key)
            .await?
            .ok_or(HubError::NotFound(Missing::Key))?;
        Ok((entry.role, GameId(entry.stream)))
    }

    /// Take a seat with `key`: a free seat with a join key, or the seat a seat token names.
    /// The answer goes to `reply`; `sub` is subscribed in the same turn.
    pub(crate) async fn join(
        &self,
        key: &str,
        player: String,
        seat: Option<Seat>,
        sub: Option<Subscriber>,
        reply: ReplyTo,
    ) -> Result<RoomHandle> {
        let (role, game) = self.find_key(key).await?;
        let msg = match role {
            Role::Join => RoomMsg::Join {
                player,
                seat,
                sub,
                reply,
            },
            Role::Seat(seat) => RoomMsg::Reclaim {
                seat: Seat(seat),
                token: key.to_owned(),
                player,
                sub,
                reply,
            },
            Role::Watch => {
                return Err(HubError::Forbidden(Denied::WatchKeySeat));
            }
        };
        self.send(game, msg).await
    }

    /// Take stock of the log at start with the queries its indexes answer, reading no game:
    /// count the channels (up to one past the limit) and note the session channels, and count
    /// the wake-ups due at once. Games load on first use, or when their wake-up is due (the
    /// wake-up task asks the log for those).
    ///
    /// # Errors
    /// The log cannot be read.
    pub(crate) async fn index(&self) -> Result<Found> {
        let prefix = crate::game::channel::index_key("");
        let max = self.rt.config.limits.max_channels.saturating_add(1);
        let channels = self.rt.log.keys_with_prefix(&prefix, max).await?;
        for (key, entry) in &channels {
            let name = key.strip_prefix(&prefix).unwrap_or(key);
            // Only a session channel's age matters (see `remove_session_channels`).
            let created = match name.starts_with("session:") {
                true => self
                    .rt
                    .log
                    .meta(entry.stream)
                    .await?
                    .map_or(0, |m| m.created),
                false => 0,
            };
            self.counted_channel(GameId(entry.stream), name, created);
        }
        let now = self.rt.clock.now();
        let due = self.rt.log.due(now, None, DUE_REPORTED).await?.len();
        Ok(Found {
            channels: channels.len(),
            due,
        })
    }

    /// Arm the wake-ups the log has due up to `until` for games not in memory. A game in
    /// memory runs its own timers and arms its wake-up as it leaves; one whose task is ending
    /// (retiring, its last write under way) is left alone too, or its old entry would load
    /// it again.
    ///
    /// # Errors
    /// The log cannot be read.
    pub(crate) async fn arm_due(&self, until: Millis) -> Result<()> {
        const PAGE: usize = 1024;
        let mut after = None;
        loop {
            let page = self.rt.log.due(until, after, PAGE).await?;
            let rooms = self.rooms();
            for (game, wake) in &page {
                if !rooms.contains_key(&GameId(*game)) {
                    self.rt.wakes.schedule(GameId(*game), wake.due);
                }
            }
            drop(rooms);
            match page.last() {
                Some((game, wake)) if page.len() == PAGE => after = Some((wake.due, *game)),
                _ => return Ok(()),
            }
        }
    }

    /// The games whose wake-up is due, taken off the queue (load them with [`Self::wake`]).
    pub(crate) fn take_due(&self) -> Vec<GameId> {
        self.forget_retired();
        let due = self.rt.wakes.take_due(self.rt.clock.now());
        let sleeping = i64::try_from(self.rt.wakes.len()).unwrap_or(i64::MAX);
        self.rt.metrics.sleeping_games.set(sleeping);
        due
    }

    /// Load `due` games, one after another. One that does not load (the log failing) is
    /// tried again a second later: its timers must not wait for the next look at the index.
    pub(crate) async fn wake(&self, due: Vec<GameId>) {
        for game in due {
            match self.room_with(game, false).await {
                // Finished and removed meanwhile, say: nothing left to wake. Or led by a
                // live node, whose task fires it.
                Ok(_) | Err(HubError::NotFound(_) | HubError::Elsewhere { .. }) => {}
                Err(e) => {
                    tracing::error!(%game, error = %e, "a game due to wake did not load; trying again in a second");
                    let again = self.rt.clock.now().saturating_add(RETRY_WAKE_MS);
                    self.rt.wakes.schedule(game, again);
                }
            }
        }
    }

    /// Remove `games` from the log, except any in memory; returns those removed. Each at its
    /// loading gate, held through the removal: no game is loaded while it is being removed (a
    /// loader waits at the gate, then finds its game gone).
    ///
    /// # Errors
    /// The log cannot be written.
    pub(crate) async fn remove_unloaded(&self, games: Vec<GameId>) -> Result<Vec<GameId>> {
        self.forget_retired();
        let mut held = Vec::with_capacity(games.len());
        for game in games {
            let gate = self.gate(game);
            let turn = Arc::clone(&gate).lock_owned().await;
            let loaded = self.rooms().get(&game).is_some_and(|h| !h.is_closed());
            if loaded {
                drop(turn);
                self.leave_gate(game, gate);
            } else {
                held.push((game, gate, turn));
            }
        }
        let ids: Vec<GameId> = held.iter().map(|(game, _, _)| *game).collect();
        let removed = match ids.is_empty() {
            true => Ok(()),
            false => {
                let streams = ids.iter().map(|id| id.0).collect();
                self.rt.writer.remove_streams(streams).await
            }
        };
        for (game, gate, turn) in held {
            drop(turn);
            self.leave_gate(game, gate);
        }
        removed.map(|()| ids)
    }

    /// Drop the handles of games whose task ended for good: they load again on their next
    /// use, and until then cost nothing.
    pub(crate) fn forget_retired(&self) {
        let retired = std::mem::take(&mut *crate::lock(&self.rt.retired));
        if retired.is_empty() {
            return;
        }
        let mut rooms = self.rooms();
        let mut invites = crate::lock(&self.invites);
        for game in retired {
            // Only if it was not loaded again since.
            if rooms.get(&game).is_some_and(RoomHandle::is_retired) {
                rooms.remove(&game);
                invites.forget(game);
            }
        }
        drop(invites);
        // After a wave of games left memory, their room in the map goes too.
        if rooms.capacity() > 1024 && rooms.len() < rooms.capacity() / 4 {
            rooms.shrink_to_fit();
        }
    }

    /// Load every game whose task stopped (on a storage failure) again. Returns how many.
    pub(crate) async fn revive(&self) -> usize {
        self.forget_retired();
        let stopped: Vec<GameId> = self
            .rooms()
            .iter()
            .filter(|(id, h)| h.is_closed() && !h.is_retired() && !self.rt.has_panicked(**id))
            .map(|(id, _)| *id)
            .collect();
        let mut revived = 0;
        for game in stopped {
            match self.room(game).await {
                Ok(_) => revived += 1,
                Err(e) => {
                    tracing::warn!(%game, error = %e, "not restarted; it loads on its next use")
                }
            }
        }
        revived
    }

    /// A game's kind, by the name its log gives.
    pub(crate) fn kind(&self, name: &str) -> Option<&Arc<dyn Kind>> {
        self.kinds.get(name)
    }

    /// `game`'s handle if its task is running; never loads it.
    pub(crate) fn loaded(&self, game: GameId) -> Option<RoomHandle> {
        self.rooms().get(&game).filter(|h| !h.is_closed()).cloned()
    }

    /// The running task of stream `id`, a game's or a channel's; never loads it.
    pub(crate) fn task(&self, id: GameId) -> Option<RoomHandle> {
        self.loaded(id)
            .or_else(|| self.channels().get(&id).filter(|h| !h.is_closed()).cloned())
            .or_else(|| {
                crate::lock(&self.lobbies)
                    .values()
                    .find(|h| h.game == id && !h.is_closed())
                    .cloned()
            })
    }

    /// Ids of the games with a running task.
    pub(crate) fn live(&self) -> Vec<GameId> {
        self.forget_retired();
        let mut ids: Vec<GameId> = self
            .rooms()
            .iter()
            .filter(|(_, h)| !h.is_closed())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}
