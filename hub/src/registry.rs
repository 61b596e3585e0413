//! The registry: registered game kinds and the live games, by id. Games are started here
//! (created, or loaded from the log on first use) and looked up by id or by key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use umpire_engine::protocol::GameId;
use umpire_engine::Seat;
use umpire_store::{Role, StreamMeta, StreamStatus};

use crate::error::{HubError, Result};
use crate::handle::{ReplyTo, RoomHandle, RoomMsg, Subscriber};
use crate::kind::Kind;
use crate::owners::OwnerSlot;
use crate::runtime::Runtime;

/// Kinds and live games.
pub(crate) struct Registry {
    pub(crate) rt: Arc<Runtime>,
    kinds: HashMap<String, Arc<dyn Kind>>,
    /// Live games. A handle whose task stopped is replaced on the next lookup.
    rooms: Mutex<HashMap<GameId, RoomHandle>>,
    /// Live channels, by stream id (not games: not counted or listed as games). Creating a
    /// channel happens under this lock, so a name never gets two streams.
    channels: Mutex<HashMap<GameId, RoomHandle>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn new(rt: Arc<Runtime>, kinds: Vec<Arc<dyn Kind>>) -> Self {
        Registry {
            rt,
            kinds: kinds
                .into_iter()
                .map(|k| (k.name().to_owned(), k))
                .collect(),
            rooms: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<GameId, RoomHandle>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channel `name`, its stream created on first use.
    pub(crate) fn channel(&self, name: &str) -> Result<RoomHandle> {
        self.open()?;
        let key = crate::channel::index_key(name);
        let mut channels = self.channels();
        let id = match self.rt.log.find_key(&key)? {
            Some(entry) => entry.stream,
            None => {
                let meta = StreamMeta {
                    kind: crate::channel::KIND.to_owned(),
                    created: self.rt.clock.now(),
                    status: StreamStatus::Live,
                    creator: name.to_owned(),
                    invite: None,
                };
                let id = self.rt.log.create_stream(&meta)?;
                let entry = umpire_store::KeyEntry {
                    stream: id,
                    role: Role::Watch,
                };
                self.rt.log.put_key(&key, entry)?;
                id
            }
        };
        self.channel_task(&mut channels, id, name)
    }

    /// The running task of channel stream `id`, started if it is not running.
    fn channel_task(
        &self,
        channels: &mut HashMap<GameId, RoomHandle>,
        id: GameId,
        name: &str,
    ) -> Result<RoomHandle> {
        if let Some(handle) = channels.get(&id).filter(|h| !h.is_closed()) {
            return Ok(handle.clone());
        }
        let version = self.rt.log.version(id)?;
        let handle = crate::channel::spawn(&self.rt, id, name.to_owned(), version);
        channels.insert(id, handle.clone());
        Ok(handle)
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<GameId, RoomHandle>> {
        // Inserts and removals are single operations: a poisoned map is still consistent.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
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
    pub(crate) fn create(
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
            return Err(HubError::Limit(format!(
                "this server holds its most live games ({}); try again later",
                limits.max_live_games
            )));
        }
        let owner = match per_player {
            Some(limit) => self.rt.owners.take(&player, limit)?,
            None => self.rt.owners.count(&player),
        };
        let handle = k.start(&self.rt, config, owner)?;
        tracing::info!(game = handle.game, kind, player = %player, "game created");
        self.rooms().insert(handle.game, handle.clone());
        // The creator's seat is taken in the game's first turn, with its `Created` record.
        handle.send(RoomMsg::Join { player, sub, reply })?;
        Ok(handle)
    }

    /// The live game `game`, loading it from the log if its task is not running.
    pub(crate) fn room(&self, game: GameId) -> Result<RoomHandle> {
        self.open()?;
        let mut rooms = self.rooms();
        let reloading = match rooms.get(&game) {
            Some(handle) if !handle.is_closed() => return Ok(handle.clone()),
            Some(handle) => !handle.is_retired(),
            None => false,
        };
        let not_found = || HubError::NotFound(format!("no game {game}"));
        let meta = self.rt.log.meta(game)?.ok_or_else(not_found)?;
        if meta.kind == crate::channel::KIND {
            drop(rooms);
            let mut channels = self.channels();
            return self.channel_task(&mut channels, game, &meta.creator);
        }
        let kind = self.kinds.get(&meta.kind).ok_or_else(not_found)?;
        if reloading {
            // Its task stopped on a storage failure, perhaps after writing records it never
            // made durable: make them durable before they are served to anyone.
            self.rt.log.sync()?;
        }
        // Loading under the lock keeps two tasks from ever running one game. It is a few
        // sled reads; a game with a long tail past its snapshot makes others wait that long.
        let handle = kind.load(&self.rt, game, self.owner(&meta), meta.invite.clone())?;
        rooms.insert(game, handle.clone());
        Ok(handle)
    }

    /// What `key` opens, and the game's live handle.
    pub(crate) fn open_key(&self, key: &str) -> Result<(Role, RoomHandle)> {
        let entry = self
            .rt
            .log
            .find_key(key)?
            .ok_or_else(|| HubError::NotFound("no game has this key".into()))?;
        Ok((entry.role, self.room(entry.stream)?))
    }

    /// Take a seat with `key`: a free seat with a join key, or the seat a seat token names.
    /// The answer goes to `reply`; `sub` is subscribed in the same turn.
    pub(crate) fn join(
        &self,
        key: &str,
        player: String,
        sub: Option<Subscriber>,
        reply: ReplyTo,
    ) -> Result<RoomHandle> {
        let (role, handle) = self.open_key(key)?;
        let msg = match role {
            Role::Join => RoomMsg::Join { player, sub, reply },
            Role::Seat(seat) => RoomMsg::Reclaim {
                seat: Seat(seat),
                token: key.to_owned(),
                player,
                sub,
                reply,
            },
            Role::Watch => {
                return Err(HubError::Forbidden("a watch key cannot take a seat".into()));
            }
        };
        handle.send(msg)?;
        Ok(handle)
    }

    /// Start every unfinished game in the log. Returns how many came back; a game that cannot
    /// be restored is logged and skipped.
    ///
    /// # Errors
    /// The log cannot be listed.
    pub(crate) fn restore(&self) -> Result<usize> {
        let mut restored = 0;
        for info in self.rt.log.streams()? {
            // Channels hold no state to restore: each starts on its first use.
            if info.meta.status != StreamStatus::Live || info.meta.kind == crate::channel::KIND {
                continue;
            }
            let Some(kind) = self.kinds.get(&info.meta.kind) else {
                tracing::warn!(game = info.id, kind = %info.meta.kind, "not restored: kind not registered");
                continue;
            };
            let invite = info.meta.invite.clone();
            match kind.load(&self.rt, info.id, self.owner(&info.meta), invite) {
                Ok(handle) => {
                    tracing::info!(game = info.id, kind = %info.meta.kind, version = info.version, "game restored");
                    self.rooms().insert(info.id, handle);
                    restored += 1;
                }
                Err(e) => tracing::error!(game = info.id, error = %e, "not restored"),
            }
        }
        Ok(restored)
    }

    /// The count of a stored game for its creator, while it is live.
    fn owner(&self, meta: &StreamMeta) -> Option<OwnerSlot> {
        (meta.status == StreamStatus::Live && !meta.creator.is_empty())
            .then(|| self.rt.owners.count(&meta.creator))
    }

    /// Drop the handles of games whose task ended for good: they load again on their next
    /// use, and until then cost nothing.
    fn forget_retired(&self) {
        let retired =
            std::mem::take(&mut *self.rt.retired.lock().unwrap_or_else(|p| p.into_inner()));
        if retired.is_empty() {
            return;
        }
        let mut rooms = self.rooms();
        for game in retired {
            // Only if it was not loaded again since.
            if rooms.get(&game).is_some_and(RoomHandle::is_retired) {
                rooms.remove(&game);
            }
        }
    }

    /// Load every game whose task stopped (on a storage failure) again. Returns how many.
    pub(crate) fn revive(&self) -> usize {
        self.forget_retired();
        let stopped: Vec<GameId> = self
            .rooms()
            .iter()
            .filter(|(_, h)| h.is_closed() && !h.is_retired())
            .map(|(id, _)| *id)
            .collect();
        let mut revived = 0;
        for game in stopped {
            match self.room(game) {
                Ok(_) => revived += 1,
                Err(e) => {
                    tracing::warn!(game, error = %e, "not restarted; it loads on its next use")
                }
            }
        }
        revived
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
