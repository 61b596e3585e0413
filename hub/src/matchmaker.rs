//! Who plays with whom: the [`Matchmaker`] an embedding server registers for a kind to replace
//! quick play's first come, first served.
//!
//! Without one, `play` seats a player at once: in the open game of that kind and config that
//! has waited longest, or in a new one where they wait for the others. With one, `play` puts
//! the player in the kind's waiting list, and the matchmaker decides, whenever someone arrives
//! or leaves and every [`Matchmaker::tick`], which waiting players make a game and in which
//! seats. The waiting list is shared by every node serving the same log; any node may run the
//! matchmaker, and a group is written to the log only if all its players are still waiting
//! (an atomic append), so no player is ever put in two games, whichever nodes decide at once.

use std::time::Duration;

use serde_json::Value;
use umpire_engine::Millis;

/// A player waiting for the matchmaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// Names this wait in the groups [`Matchmaker::matches`] returns.
    pub ticket: u64,
    /// Who waits: the user the connection signed in as, or its guest name.
    pub player: String,
    /// The config they asked for (`null`: the default). A group shares one config.
    pub config: Value,
    /// What they asked with: a rating, a region, a party; whatever the embedding server's
    /// clients send in `play`'s `props`.
    pub props: Value,
    /// When they started waiting, in ms since the epoch (the hub's clock).
    pub since: Millis,
    /// How many seats a game of their config has.
    pub seats: u16,
}

/// Decides which waiting players play together.
pub trait Matchmaker: Send + Sync + 'static {
    /// The groups to seat now, each a list of tickets from `waiting`, in seat order: the
    /// first creates the game and holds seat 0, the others take the next seats. A group has
    /// at least one player and at most as many as the game has seats (fewer leave seats open:
    /// the game is then listed like a quick-play game); its players share one config.
    /// Players in no group keep waiting. `waiting` is ordered by arrival; `now` is the hub's
    /// clock. A group that breaks these rules is skipped, with a warning in the log.
    fn matches(&self, waiting: &[Waiting], now: Millis) -> Vec<Vec<u64>>;

    /// How often to ask again while players wait, for rules that change with time (a window
    /// that widens): 500 ms by default.
    fn tick(&self) -> Duration {
        Duration::from_millis(500)
    }
}

/// The matchmaker that pairs (or fills) games in arrival order: each config's waiting players,
/// oldest first, as many per game as it has seats.
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstCome;

impl Matchmaker for FirstCome {
    fn matches(&self, waiting: &[Waiting], _now: Millis) -> Vec<Vec<u64>> {
        let mut open: Vec<(&Value, Vec<u64>, usize)> = Vec::new();
        let mut groups = Vec::new();
        for w in waiting {
            let slot = match open.iter().position(|(config, _, _)| **config == w.config) {
                Some(i) => i,
                None => {
                    open.push((&w.config, Vec::new(), usize::from(w.seats.max(1))));
                    open.len() - 1
                }
            };
            let (_, group, seats) = &mut open[slot];
            group.push(w.ticket);
            if group.len() == *seats {
                groups.push(std::mem::take(group));
            }
        }
        groups
    }
}
