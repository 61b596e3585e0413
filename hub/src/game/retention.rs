//! Retention: finished games are kept for replays for [`crate::HubConfig::retain_finished`]
//! after they finished, then removed from the log with every key that leads to them.

use std::time::Duration;

use umpire_engine::Millis;

use crate::error::Result;
use crate::game::registry::Registry;

/// Finished games removed per query.
const PAGE: usize = 512;

/// The finish time before which a game is past keeping at `now`: kept `keep` exactly.
fn cutoff(now: Millis, keep: Duration) -> Millis {
    now.saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
}

/// Remove every finished game that finished more than `keep` ago, found through the log's
/// index of finished games, except those in memory (someone is replaying them). Returns how
/// many were removed.
///
/// # Errors
/// The log cannot be read or written.
pub(crate) async fn prune(registry: &Registry, now: Millis, keep: Duration) -> Result<usize> {
    let before = cutoff(now, keep);
    let mut removed = 0;
    loop {
        let page = registry.rt.log.finished_before(before, PAGE).await?;
        let listed = page.len();
        let page = page
            .into_iter()
            .map(umpire_engine::protocol::GameId)
            .collect();
        let gone = registry.remove_unloaded(page).await?.len();
        removed += gone;
        // A page the registry kept whole (all of it in memory) would come back the same.
        if listed < PAGE || gone == 0 {
            break;
        }
    }
    if removed > 0 {
        tracing::info!(
            games = removed,
            ?keep,
            "finished games past retention removed"
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_is_kept_exactly_as_long_as_configured() {
        let day = Duration::from_secs(86_400);
        // Listed when it finished before the cutoff.
        let expired = |finished: Millis, now| finished < cutoff(now, day);
        assert!(!expired(0, 86_400_000));
        assert!(expired(0, 86_400_001));
        // A clock behind the record (restored from another machine) keeps it.
        assert!(!expired(5_000, 1_000));
    }
}
