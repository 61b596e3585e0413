//! Game kinds, type-erased: the registry holds one `Kind` per registered `Game` and reaches
//! the typed code only through it.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use umpire_engine::{Action, Actor, Envelope, Game, Match};
use umpire_store::{KeyEntry, Role, StreamMeta, StreamStatus};

use crate::error::{HubError, Result};
use crate::handle::{Created, RoomHandle};
use crate::hub::Shared;
use crate::keys::{new_key, new_seed};
use crate::room::Room;

/// Records read per page when rebuilding a game.
const PAGE: usize = 512;

/// What the hub can do with a kind without knowing its types.
#[async_trait]
pub(crate) trait Kind: Send + Sync + 'static {
    /// Start a game with `config` (JSON; null means default) and seat `player` in it.
    async fn create(&self, shared: &Arc<Shared>, config: Value, player: String) -> Result<Created>;
    /// Rebuild a game from its snapshot and log tail and start its task.
    fn load(&self, shared: &Arc<Shared>, id: u64) -> Result<RoomHandle>;
}

/// A registered game.
pub(crate) struct Registered<G: Game> {
    pub(crate) game: Arc<G>,
}

fn encode<G: Game>(env: &Envelope<G>) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(env)
        .map_err(|e| HubError::Store(format!("an event does not encode: {e}")))
}

#[async_trait]
impl<G: Game> Kind for Registered<G> {
    async fn create(&self, shared: &Arc<Shared>, config: Value, player: String) -> Result<Created> {
        let config: G::Config = if config.is_null() {
            G::Config::default()
        } else {
            serde_json::from_value(config).map_err(|e| HubError::BadConfig(e.to_string()))?
        };
        let now = shared.clock.now();
        let (mut m, created) = Match::create(&*self.game, config, new_seed(), now);
        let join = Action::Join {
            player: player.clone(),
        };
        let seated = m
            .execute(&*self.game, Actor::System, join, now, None)
            .map_err(|_| HubError::Full)?;
        let seat = m.seat_of(&player).ok_or(HubError::Full)?;
        let mut records = vec![encode(&created)?];
        for env in &seated {
            records.push(encode(env)?);
        }

        let log = &shared.log;
        let meta = StreamMeta {
            kind: G::KIND.to_owned(),
            created: now,
            status: StreamStatus::Live,
        };
        let id = log.create_stream(&meta)?;
        let (join, watch, token) = (new_key(), new_key(), new_key());
        log.put_key(
            &join,
            KeyEntry {
                stream: id,
                role: Role::Join,
            },
        )?;
        log.put_key(
            &watch,
            KeyEntry {
                stream: id,
                role: Role::Watch,
            },
        )?;
        log.put_key(
            &token,
            KeyEntry {
                stream: id,
                role: Role::Seat(seat.0),
            },
        )?;
        if let Err(conflict) = log.append(id, 0, &records)? {
            return Err(HubError::Store(format!(
                "a new stream was not empty: {conflict}"
            )));
        }
        // Durable before anyone learns the keys.
        shared.committer.commit().await?;
        shared.metrics.events_appended.inc_by(records.len() as u64);
        let handle = Room::spawn(shared, Arc::clone(&self.game), id, m);
        shared.insert_room(handle);
        Ok(Created {
            game: id,
            kind: G::KIND.to_owned(),
            join,
            watch,
            seat,
            token,
        })
    }

    fn load(&self, shared: &Arc<Shared>, id: u64) -> Result<RoomHandle> {
        let log = &shared.log;
        let corrupt = |e: &dyn std::fmt::Display| HubError::Store(format!("game {id}: {e}"));
        let mut m: Option<Match<G>> = None;
        if let Some((version, bytes)) = log.load_snapshot(id)? {
            match rmp_serde::from_slice::<Match<G>>(&bytes) {
                Ok(snap) if snap.version() == version => m = Some(snap),
                Ok(_) => tracing::warn!(
                    game = id,
                    "snapshot version mismatch; replaying the whole log"
                ),
                Err(e) => {
                    tracing::warn!(game = id, error = %e, "snapshot unreadable; replaying the whole log")
                }
            }
        }
        let mut next = m.as_ref().map_or(1, |m| m.version() + 1);
        loop {
            let page = log.read(id, next, PAGE)?;
            if page.is_empty() {
                break;
            }
            for (seq, bytes) in page {
                let env: Envelope<G> = rmp_serde::from_slice(&bytes).map_err(|e| corrupt(&e))?;
                match &mut m {
                    None => m = Some(Match::start(&*self.game, &env).map_err(|e| corrupt(&e))?),
                    Some(m) => m.replay_one(&*self.game, &env).map_err(|e| corrupt(&e))?,
                }
                next = seq + 1;
            }
        }
        let m = m.ok_or_else(|| HubError::NotFound(format!("game {id} has no records")))?;
        // Records a failed task appended but never committed may be in the log: make them
        // durable before they are served to anyone.
        log.sync()?;
        if m.is_over() {
            log.set_status(id, StreamStatus::Over)?;
        }
        Ok(Room::spawn(shared, Arc::clone(&self.game), id, m))
    }
}
