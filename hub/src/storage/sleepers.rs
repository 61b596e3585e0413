//! Waking games that are not in memory.
//!
//! A game leaves memory when nobody has followed it for a while ([`crate::HubConfig::evict_after`])
//! and is loaded again on first use. What it still has to do by itself (a timer, expiring
//! for sitting idle) is in the log's wake-up index, written with the records that change it:
//! at start the hub arms every entry without loading a single game, and when one is due this
//! loads the game, whose own task then fires what is due.
//!
//! An entry may be early: the game loads, finds nothing due, and leaves memory again after a
//! while, writing its exact entry. It is never late: a record that makes the game need its
//! task sooner rewrites the entry in the same write.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use umpire_engine::protocol::GameId;
use umpire_engine::Millis;
use umpire_store::{Wake, WakeChange};

/// The wake-ups of games not in memory, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Wakes {
    queue: Mutex<Queue>,
    /// Rung when an earlier wake-up was added, or a game left memory.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    by_due: BTreeSet<(Millis, GameId)>,
    by_game: HashMap<GameId, Millis>,
}

impl Wakes {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Each change keeps both maps in step before it can panic: a poisoned queue is whole.
        crate::lock(&self.queue)
    }

    /// Load `game` at `due`, replacing its earlier wake-up if it had one.
    pub(crate) fn schedule(&self, game: GameId, due: Millis) {
        let mut q = self.queue();
        if let Some(old) = q.by_game.insert(game, due) {
            q.by_due.remove(&(old, game));
        }
        q.by_due.insert((due, game));
        let earliest = q
            .by_due
            .first()
            .is_some_and(|&(d, g)| (d, g) == (due, game));
        drop(q);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Tell the wake-up task something changed (a game left memory).
    pub(crate) fn nudge(&self) {
        self.changed.notify_one();
    }

    /// Remove and return the games due at `now`, earliest first.
    pub(crate) fn take_due(&self, now: Millis) -> Vec<GameId> {
        let mut q = self.queue();
        let mut due = Vec::new();
        while let Some(&(at, game)) = q.by_due.first() {
            if at > now {
                break;
            }
            q.by_due.pop_first();
            q.by_game.remove(&game);
            due.push(game);
        }
        due
    }

    /// How long until the earliest wake-up, if any.
    pub(crate) fn next_in(&self, now: Millis) -> Option<Duration> {
        let q = self.queue();
        q.by_due
            .first()
            .map(|&(at, _)| Duration::from_millis(at.saturating_sub(now)))
    }

    /// Wait until [`Wakes::schedule`] added an earlier wake-up or [`Wakes::nudge`] was called.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Wake-ups armed.
    pub(crate) fn len(&self) -> usize {
        self.queue().by_game.len()
    }
}

/// What a game needs from the wake-up index: its earliest timer; with none, when it expires
/// for sitting idle since `last_active`; nothing once it is over.
pub(crate) fn needed(
    next_timer: Option<Millis>,
    timers: usize,
    last_active: Millis,
    expire: Option<Duration>,
    over: bool,
) -> Option<Wake> {
    if over {
        return None;
    }
    let expires =
        |e: Duration| last_active.saturating_add(u64::try_from(e.as_millis()).unwrap_or(u64::MAX));
    let due = next_timer.or_else(|| expire.map(expires))?;
    Some(Wake {
        due,
        timers: u32::try_from(timers).unwrap_or(u32::MAX),
    })
}

/// How the index entry `written` must change with a write for a game that needs `needed`: only
/// when the game needs its task sooner, its timers changed, or it needs none any more. An entry
/// that is merely early is left: it costs a load, not a write on every move.
pub(crate) fn change(written: Option<Wake>, needed: Option<Wake>) -> WakeChange {
    match (written, needed) {
        (None, None) => WakeChange::Keep,
        (Some(_), None) => WakeChange::Clear,
        (None, Some(n)) => WakeChange::Set(n),
        (Some(w), Some(n)) if n.due < w.due || n.timers != w.timers => WakeChange::Set(n),
        (Some(_), Some(_)) => WakeChange::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn wake(due: Millis, timers: u32) -> Option<Wake> {
        Some(Wake { due, timers })
    }

    #[test]
    fn a_game_without_timers_is_woken_when_it_expires_and_a_finished_one_never() {
        assert_eq!(
            needed(None, 0, 1_000, Some(DAY), false),
            wake(1_000 + 86_400_000, 0)
        );
        assert_eq!(needed(None, 0, 1_000, None, false), None);
        assert_eq!(needed(Some(5_000), 1, 1_000, Some(DAY), true), None);
    }

    #[test]
    fn a_pending_timer_wakes_the_game_and_holds_off_expiry() {
        // Idle expiry does not apply while a timer is pending, however far off it is.
        let far = 1_000 + 3 * 86_400_000;
        assert_eq!(needed(Some(far), 2, 1_000, Some(DAY), false), wake(far, 2));
    }

    #[test]
    fn moves_that_only_push_expiry_later_write_nothing() {
        // Written at the first move; every later move needs a later wake-up: keep the early one.
        assert_eq!(change(wake(100, 0), wake(200, 0)), WakeChange::Keep);
        assert_eq!(change(wake(100, 0), wake(100, 0)), WakeChange::Keep);
    }

    #[test]
    fn a_sooner_need_a_timer_change_or_the_end_rewrite_the_entry() {
        assert_eq!(
            change(wake(100, 0), wake(50, 1)),
            WakeChange::Set(Wake { due: 50, timers: 1 })
        );
        // A timer fired: later, but the count changed (it is what start-up reports).
        assert_eq!(
            change(wake(50, 1), wake(900, 0)),
            WakeChange::Set(Wake {
                due: 900,
                timers: 0
            })
        );
        assert_eq!(
            change(None, wake(10, 0)),
            WakeChange::Set(Wake { due: 10, timers: 0 })
        );
        assert_eq!(change(wake(10, 0), None), WakeChange::Clear);
        assert_eq!(change(None, None), WakeChange::Keep);
    }

    #[test]
    fn the_queue_gives_games_back_in_due_order_once() {
        let wakes = Wakes::default();
        wakes.schedule(GameId(3), 300);
        wakes.schedule(GameId(1), 100);
        wakes.schedule(GameId(2), 200);
        // Rescheduled: only the new time counts.
        wakes.schedule(GameId(3), 150);
        assert_eq!(wakes.next_in(50), Some(Duration::from_millis(50)));
        assert_eq!(wakes.take_due(160), vec![1, 3]);
        assert_eq!(wakes.take_due(160), Vec::<GameId>::new());
        assert_eq!(wakes.len(), 1);
        assert_eq!(wakes.take_due(1_000), vec![2]);
        assert_eq!(wakes.next_in(1_000), None);
    }
}
