//! Retention: finished games are kept for replays for [`crate::HubConfig::retain_finished`]
//! after their last event, then removed from the log with every key that leads to them.

use std::time::Duration;

use serde::Deserialize;
use umpire_engine::protocol::GameId;
use umpire_engine::Millis;
use umpire_store::StreamStatus;

use crate::error::Result;
use crate::game::registry::Registry;

/// The one field of a record retention reads: when it happened.
#[derive(Deserialize)]
struct Stamp {
    at: Millis,
}

/// Whether a game that finished with its last event at `last` is past keeping at `now`.
pub(crate) fn expired(last: Millis, now: Millis, keep: Duration) -> bool {
    let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
    now.saturating_sub(last) > keep
}

/// Remove every finished game whose last event is older than `keep`, except those in memory
/// (someone is replaying them). Returns how many were removed. Reads every stream's
/// last record: run it off the async workers.
///
/// # Errors
/// The log cannot be listed or written.
pub(crate) fn prune(registry: &Registry, now: Millis, keep: Duration) -> Result<usize> {
    let log = &registry.rt.log;
    let mut gone: Vec<GameId> = Vec::new();
    for info in log.streams()? {
        if info.meta.status != StreamStatus::Over || info.meta.kind == crate::game::channel::KIND {
            continue;
        }
        let last = log.read(info.id, info.version, 1)?;
        let at = match last.first() {
            Some((_, bytes)) => match rmp_serde::from_slice::<Stamp>(bytes) {
                Ok(stamp) => stamp.at,
                Err(e) => {
                    tracing::warn!(game = info.id, error = %e, "kept: its last record does not decode");
                    continue;
                }
            },
            None => info.meta.created,
        };
        if expired(at, now, keep) {
            gone.push(info.id);
        }
    }
    let gone = registry.remove_unloaded(gone)?;
    if !gone.is_empty() {
        tracing::info!(
            games = gone.len(),
            ?keep,
            "finished games past retention removed"
        );
    }
    Ok(gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_is_kept_exactly_as_long_as_configured() {
        let day = Duration::from_secs(86_400);
        assert!(!expired(0, 86_400_000, day));
        assert!(expired(0, 86_400_001, day));
        // A clock behind the record (restored from another machine) keeps it.
        assert!(!expired(5_000, 1_000, day));
    }
}
