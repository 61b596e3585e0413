//! How many live games each player has created, so that one player cannot fill the server.
//!
//! The log counts them ([`umpire_store::LogRead::live_games`]: a stream counts for its creator
//! from its creation until it is marked over), wherever the games are, in memory or not, on
//! this server or another sharing the log. What the log cannot see yet are the games being
//! created at this moment: an [`OwnerSlot`] counts one of those until its stream exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use umpire_store::LogRead;

use crate::error::{Held, HubError, Result};

/// Games being created, per creator.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    pending: Mutex<HashMap<String, usize>>,
    /// One check at a time: the log's count and the pending ones are read together.
    checking: tokio::sync::Mutex<()>,
}

/// One game of one creator being created; counted until dropped (by then its stream exists
/// and the log counts it).
#[derive(Debug)]
pub(crate) struct OwnerSlot {
    owners: Arc<Owners>,
    player: String,
}

impl Owners {
    fn pending(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // Every change is one map operation: a poisoned map is still consistent.
        crate::lock(&self.pending)
    }

    /// A slot for a new game of `player`, if they have fewer than `limit` live games in `log`
    /// and being created. Checked and taken in one turn: two creates at once cannot both take
    /// the last place.
    ///
    /// # Errors
    /// [`HubError::Limit`] when they have `limit` already; the log cannot be read.
    pub(crate) async fn take(
        self: &Arc<Self>,
        log: &dyn LogRead,
        player: &str,
        limit: usize,
    ) -> Result<OwnerSlot> {
        let _turn = self.checking.lock().await;
        let live = log.live_games(player, limit).await?;
        let mut pending = self.pending();
        let creating = pending.get(player).copied().unwrap_or(0);
        if live + creating >= limit {
            return Err(HubError::Limit(Held::PlayerGames(limit)));
        }
        *pending.entry(player.to_owned()).or_insert(0) += 1;
        Ok(OwnerSlot {
            owners: Arc::clone(self),
            player: player.to_owned(),
        })
    }

    /// A slot for a game of `player` that no limit binds (the embedding server's).
    pub(crate) fn unlimited(self: &Arc<Self>, player: &str) -> OwnerSlot {
        *self.pending().entry(player.to_owned()).or_insert(0) += 1;
        OwnerSlot {
            owners: Arc::clone(self),
            player: player.to_owned(),
        }
    }
}

impl OwnerSlot {
    /// The creator it counts for.
    pub(crate) fn player(&self) -> &str {
        &self.player
    }
}

impl Drop for OwnerSlot {
    fn drop(&mut self) {
        let mut pending = self.owners.pending();
        if let Some(count) = pending.get_mut(&self.player) {
            *count -= 1;
            if *count == 0 {
                pending.remove(&self.player);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umpire_store::{MemLog, StreamMeta, StreamStatus};

    #[tokio::test]
    async fn the_log_and_the_games_being_created_count_and_the_end_frees_a_place() {
        let owners = Arc::new(Owners::default());
        let log = MemLog::new();
        let meta = StreamMeta {
            kind: "tally".into(),
            created: 0,
            status: StreamStatus::Live,
            creator: "ada".into(),
            invite: None,
            finished: None,
        };
        let stored = log.create_stream(&meta).unwrap();
        let creating = owners.take(&log, "ada", 2).await.unwrap();
        assert!(
            matches!(owners.take(&log, "ada", 2).await, Err(HubError::Limit(_))),
            "one in the log and one being created"
        );
        let other = owners.take(&log, "bo", 2).await.unwrap();
        drop(creating);
        let again = owners.take(&log, "ada", 2).await.unwrap();
        drop(again);
        log.create_stream(&meta).unwrap();
        assert!(matches!(
            owners.take(&log, "ada", 2).await,
            Err(HubError::Limit(_))
        ));
        log.set_status(stored, StreamStatus::Over, 1).unwrap();
        assert!(
            owners.take(&log, "ada", 2).await.is_ok(),
            "a finished game frees its place"
        );
        drop(other);
        assert!(owners.pending().is_empty(), "no entry left behind");
    }
}
