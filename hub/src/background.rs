//! The hub's own tasks: restart games after the log works again, load games when their
//! wake-up is due, keep sessions and session channels within their time, remove finished games
//! past retention.

use std::sync::{Arc, Weak};

use crate::error::Result;
use crate::session::shared::Inner;

/// Each time the log works again after failing, restart the games that stopped on the
/// failure, so that their timers fire without waiting for a player to come back.
pub(crate) async fn revive(inner: Weak<Inner>) {
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
        let revived = inner.registry.revive().await;
        tracing::info!(
            games = revived,
            "games stopped by the storage failure restarted"
        );
    }
}

/// How far ahead the wake-up task asks the log for wake-ups; it asks again every half of it.
/// Games that leave memory arm their own wake-up as they go: the log is asked for the others
/// (those of the games not loaded since the start, or written by another process).
const LOOK_AHEAD: std::time::Duration = std::time::Duration::from_secs(60);

/// Load each game not in memory when its wake-up (a timer, idle expiry) is due; forget the
/// handles of games that left memory.
pub(crate) async fn wake(inner: Weak<Inner>) {
    let ahead = u64::try_from(LOOK_AHEAD.as_millis()).unwrap_or(u64::MAX);
    let mut ask_at: umpire_engine::Millis = 0;
    loop {
        let Some(hub) = inner.upgrade() else {
            return;
        };
        let now = hub.registry.rt.clock.now();
        let ask = now >= ask_at;
        if ask {
            // With other nodes, as often as a lease: a node that died leaves its games' wake-ups
            // in the index, and no node has them armed.
            let every = match hub.registry.rt.bus.shared() {
                true => hub.registry.rt.lease_ms().min(ahead / 2),
                false => ahead / 2,
            };
            ask_at = now.saturating_add(every);
        }
        if ask {
            if let Err(e) = hub.registry.arm_due(now.saturating_add(ahead)).await {
                tracing::warn!(error = %e, "the wake-up index could not be read; trying again");
                // In a second, not in half a minute: timers due meanwhile are waiting.
                ask_at = now.saturating_add(1_000);
            }
        }
        let due = hub.registry.take_due();
        hub.registry.wake(due).await;
        let rt = &hub.registry.rt;
        let wakes = Arc::clone(&rt.wakes);
        let now = rt.clock.now();
        let next = wakes
            .next_in(now)
            .unwrap_or(LOOK_AHEAD)
            .min(std::time::Duration::from_millis(ask_at.saturating_sub(now)));
        let shutdown = rt.shutdown.clone();
        // Holds no strong reference while it waits: a hub dropped without shutdown ends it.
        drop(hub);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wakes.changed() => {}
            () = tokio::time::sleep(next) => {}
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
pub(crate) async fn housekeep(inner: Weak<Inner>) {
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
        if let Err(e) = housekeeping_pass(&hub).await {
            tracing::warn!(error = %e, "housekeeping did not finish");
        }
    }
}

/// One pass of [`housekeep`].
pub(crate) async fn housekeeping_pass(hub: &Inner) -> Result<()> {
    let rt = &hub.registry.rt;
    // Connected before the pass and after it: a session that closes while its record is
    // being looked for is in the first list, one that opens meanwhile in the second.
    let mut sessions = hub.sessions.sids();
    crate::session::resume::expire(&*rt.log, &rt.writer, rt.clock.now()).await?;
    let kept = rt.log.session_count().await?;
    hub.sessions
        .set_kept(usize::try_from(kept).unwrap_or(usize::MAX));
    sessions.extend(hub.sessions.sids());
    let min_age = u64::try_from(SESSION_CHANNEL_MIN_AGE.as_millis()).unwrap_or(u64::MAX);
    let removed = hub
        .registry
        .remove_session_channels(&sessions, rt.clock.now(), min_age)
        .await?;
    if removed > 0 {
        tracing::info!(
            channels = removed,
            "channels of sessions that are gone removed"
        );
    }
    Ok(())
}

/// How often finished games past retention are looked for (and once at start).
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove the finished games past retention (see [`crate::Hub::prune_finished`]).
pub(crate) async fn prune_finished(inner: Arc<Inner>) -> Result<usize> {
    let rt = &inner.registry.rt;
    let Some(keep) = rt.config.retain_finished else {
        return Ok(0);
    };
    let now = rt.clock.now();
    crate::game::retention::prune(&inner.registry, now, keep).await
}

/// Remove finished games past retention, at start and then every [`RETENTION_EVERY`].
pub(crate) async fn retain(inner: Weak<Inner>) {
    loop {
        let Some(hub) = inner.upgrade() else {
            return;
        };
        let shutdown = hub.registry.rt.shutdown.clone();
        if let Err(e) = prune_finished(hub).await {
            tracing::warn!(error = %e, "finished games past retention not removed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}
