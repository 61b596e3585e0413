//! How many live games each player has created, so that one player cannot fill the server.
//!
//! A game's task holds an [`OwnerSlot`] while its game is unfinished and in memory; the slot
//! counts for its creator and gives the place back when dropped (the game ended, expired,
//! or its task stopped). Restored games count too: their creator is in the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{HubError, Result};

/// Live games per creator.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    counts: Mutex<HashMap<String, usize>>,
}

/// One live game of one creator; counted until dropped.
#[derive(Debug)]
pub(crate) struct OwnerSlot {
    owners: Arc<Owners>,
    player: String,
}

impl Owners {
    fn counts(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // Every change is one map operation: a poisoned map is still consistent.
        crate::lock(&self.counts)
    }

    /// A slot for a new game of `player`, if they have fewer than `limit` live games.
    ///
    /// # Errors
    /// [`HubError::Limit`] when they have `limit` already.
    pub(crate) fn take(self: &Arc<Self>, player: &str, limit: usize) -> Result<OwnerSlot> {
        let mut counts = self.counts();
        let count = counts.entry(player.to_owned()).or_insert(0);
        if *count >= limit {
            return Err(HubError::Limit(format!(
                "you have {limit} unfinished games already; finish or leave one first"
            )));
        }
        *count += 1;
        Ok(OwnerSlot {
            owners: Arc::clone(self),
            player: player.to_owned(),
        })
    }

    /// A slot for a game of `player` that exists already (restored, reloaded): counted even
    /// past the limit, which binds only new games.
    pub(crate) fn count(self: &Arc<Self>, player: &str) -> OwnerSlot {
        *self.counts().entry(player.to_owned()).or_insert(0) += 1;
        OwnerSlot {
            owners: Arc::clone(self),
            player: player.to_owned(),
        }
    }

    /// How many live games `player` has.
    #[cfg(test)]
    pub(crate) fn of(&self, player: &str) -> usize {
        self.counts().get(player).copied().unwrap_or(0)
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
        let mut counts = self.owners.counts();
        if let Some(count) = counts.get_mut(&self.player) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.player);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_until_dropped_and_the_limit_binds_new_games_only() {
        let owners = Arc::new(Owners::default());
        let a = owners.take("ada", 2).unwrap();
        let b = owners.take("ada", 2).unwrap();
        assert!(matches!(owners.take("ada", 2), Err(HubError::Limit(_))));
        let restored = owners.count("ada");
        assert_eq!(owners.of("ada"), 3);
        let other = owners.take("bo", 2).unwrap();
        drop((a, b, restored));
        assert_eq!(owners.of("ada"), 0);
        assert!(owners.counts().get("ada").is_none(), "no entry left behind");
        assert!(owners.take("ada", 2).is_ok());
        drop(other);
        assert_eq!(owners.of("bo"), 0);
    }
}
