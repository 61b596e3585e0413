//! Game kinds, type-erased: the registry holds one `Kind` per registered `Game` and reaches
//! the typed code only through it.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use umpire_engine::protocol::GameId;
use umpire_engine::Seq;
use umpire_engine::{Envelope, Game, Match};
use umpire_store::{StreamMeta, StreamStatus};

use crate::error::{HubError, Malformed, Missing, Result};
use crate::game::keys::new_key;
use crate::game::room::{FirstTurn, Room};
use crate::game::runtime::Runtime;
use crate::handle::RoomHandle;

/// Records read per page when rebuilding a game.
const PAGE: usize = 512;

/// What the hub can do with a kind without knowing its types.
#[async_trait]
pub(crate) trait Kind: Send + Sync + 'static {
    /// The kind's name.
    fn name(&self) -> &'static str;
    /// Check `config` (JSON; null means the default), open a stream for a new game and start
    /// its task. Its first turn logs `Created` and indexes the join and watch keys.
    /// `creator` is who created it (the log counts their live games). With the game's join
    /// and watch keys.
    async fn start(
        &self,
        rt: &Arc<Runtime>,
        config: Value,
        creator: &str,
    ) -> Result<(RoomHandle, (String, String))>;
    /// Rebuild a game from its snapshot and log tail and start its task. `invite` are its join
    /// and watch keys (from its meta).
    async fn load(
        &self,
        rt: &Arc<Runtime>,
        id: GameId,
        invite: Option<(String, String)>,
        leader: Option<String>,
    ) -> Result<RoomHandle>;
    /// How many seats a game of `config` has (checked as `start` checks it).
    fn seats(&self, config: &Value) -> Result<u16>;
    /// The game's state after seq `at`, replayed from the log by its rules, as JSON.
    async fn state_at(&self, log: &dyn umpire_store::LogRead, id: GameId, at: u64)
        -> Result<Value>;
}

/// A registered game.
pub(crate) struct Registered<G: Game> {
    pub(crate) game: Arc<G>,
}

/// A game's log that does not replay.
fn corrupt(id: GameId, e: &dyn std::fmt::Display) -> HubError {
    HubError::Store(umpire_store::StoreError::Corrupt {
        what: "game",
        detail: format!("game {id}: {e}"),
    })
}

impl<G: Game> Registered<G> {
    /// `config` parsed and checked: null is the default; a config without seats, or one the
    /// game's `check_config` refuses, is refused.
    fn config(&self, config: Value) -> Result<G::Config> {
        let config: G::Config = if config.is_null() {
            G::Config::default()
        } else {
            serde_json::from_value(config)
                .map_err(|e| HubError::BadConfig(Malformed::Parse(e.to_string())))?
        };
        if self.game.seats(&config) == 0 {
            return Err(HubError::BadConfig(Malformed::NoSeats));
        }
        self.game
            .check_config(&config)
            .map_err(|why| HubError::BadConfig(Malformed::Refused(why)))?;
        Ok(config)
    }

    async fn replay(
        &self,
        log: &dyn umpire_store::LogRead,
        id: GameId,
        from: Option<Match<G>>,
        upto: u64,
    ) -> Result<Match<G>> {
        replay(&*self.game, log, id, from, Seq(upto)).await
    }
}

/// The match after seq `upto` (or its last record): `from` (a snapshot) plus the records
/// after it, read a page at a time.
pub(crate) async fn replay<G: Game>(
    game: &G,
    log: &dyn umpire_store::LogRead,
    id: GameId,
    from: Option<Match<G>>,
    upto: Seq,
) -> Result<Match<G>> {
    {
        let mut m = from;
        let mut next = m.as_ref().map_or(Seq(1), |m| m.version() + 1);
        while next <= upto {
            let want = usize::try_from(upto - next + 1).unwrap_or(PAGE).min(PAGE);
            let page = log.read(id.0, next.0, want).await?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            for (_, bytes) in &page {
                let env: Envelope<G> = rmp_serde::from_slice(bytes).map_err(|e| corrupt(id, &e))?;
                match &mut m {
                    None => m = Some(Match::start(game, &env).map_err(|e| corrupt(id, &e))?),
                    Some(m) => m.replay_one(game, &env).map_err(|e| corrupt(id, &e))?,
                }
            }
            next = Seq(last) + 1;
            if page.len() < want {
                break;
            }
        }
        m.ok_or(HubError::NotFound(Missing::Records(id)))
    }
}

#[async_trait]
impl<G: Game> Kind for Registered<G> {
    fn name(&self) -> &'static str {
        G::KIND
    }

    async fn start(
        &self,
        rt: &Arc<Runtime>,
        config: Value,
        creator: &str,
    ) -> Result<(RoomHandle, (String, String))> {
        let config = self.config(config)?;
        let now = rt.clock.now();
        let (m, created) = Match::create(&*self.game, config, rt.seeds.next(), now);
        let created = rmp_serde::to_vec_named(&created).map_err(|e| {
            HubError::BadConfig(Malformed::Encoding {
                what: "the config",
                why: e.to_string(),
            })
        })?;
        let invite = (new_key(), new_key());
        let meta = StreamMeta {
            kind: G::KIND.to_owned(),
            created: now,
            status: StreamStatus::Live,
            creator: creator.to_owned(),
            invite: Some(invite.clone()),
            finished: None,
        };
        let id = rt.writer.create_stream(meta).await?;
        // A new stream: this node takes it (nobody else knows of it yet).
        if let crate::bus::Placement::Elsewhere(node) = rt.bus.place(GameId(id)).await? {
            return Err(HubError::Elsewhere {
                game: GameId(id),
                node,
            });
        }
        let first = FirstTurn {
            created: Bytes::from(created),
            invite: invite.clone(),
        };
        let game = Arc::clone(&self.game);
        let handle = Room::spawn(rt, game, GameId(id), m, Some(first), None, None, None);
        Ok((handle, invite))
    }

    fn seats(&self, config: &Value) -> Result<u16> {
        Ok(self.game.seats(&self.config(config.clone())?))
    }

    async fn state_at(
        &self,
        log: &dyn umpire_store::LogRead,
        id: GameId,
        at: u64,
    ) -> Result<Value> {
        let m = self.replay(log, id, None, at).await?;
        serde_json::to_value(m.state()).map_err(|e| corrupt(id, &e))
    }

    async fn load(
        &self,
        rt: &Arc<Runtime>,
        id: GameId,
        invite: Option<(String, String)>,
        leader: Option<String>,
    ) -> Result<RoomHandle> {
        let log = &rt.log;
        if leader.is_some() {
            // Hear the leader's announcements from before the match is read: the task
            // catches up from where the read ended.
            rt.bus.follow(id);
        }
        let mut snapshot: Option<Match<G>> = None;
        if let Some((version, bytes)) = log.load_snapshot(id.0).await? {
            match rmp_serde::from_slice::<Match<G>>(&bytes) {
                Ok(snap) if snap.version() == version => snapshot = Some(snap),
                Ok(_) => tracing::warn!(
                    game = %id,
                    "snapshot version mismatch; replaying the whole log"
                ),
                Err(e) => {
                    tracing::warn!(game = %id, error = %e, "snapshot unreadable; replaying the whole log")
                }
            }
        }
        let m = self.replay(&**log, id, snapshot, u64::MAX).await?;
        if m.is_over() && leader.is_none() {
            rt.writer
                .set_status(id.0, StreamStatus::Over, rt.clock.now())
                .await?;
        }
        // Unreadable: the next write writes what the game needs.
        let wake = log.wake(id.0).await.unwrap_or(None);
        let game = Arc::clone(&self.game);
        Ok(Room::spawn(rt, game, id, m, None, invite, wake, leader))
    }
}
