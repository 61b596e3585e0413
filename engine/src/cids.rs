//! The client command ids a match remembers, so that a command sent again is applied once.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::game::{Actor, Millis, Seq};

/// How long a client command id is remembered at least (by the time of the records, so a
/// replay remembers the same ones): a retry, or a command delayed on its way (a stalled
/// node's queue), is applied once if it comes within this.
pub const CIDS_KEPT_MS: Millis = 60_000;

/// Each player's last this many ids are remembered however old.
pub const RECENT_CIDS_PER_PLAYER: usize = 64;

/// Each player's ids are remembered up to this many, however recent (memory stays bounded
/// for a player who sends thousands a minute: 1,024 ids of at most 64 bytes).
pub const RECENT_CIDS_PER_PLAYER_MOST: usize = 1_024;

/// A match remembers this many ids in all, at most: past it, the player with the most loses
/// its oldest (a game of many seats stays bounded however its players send).
pub const RECENT_CIDS: usize = 4_096;

/// One actor's remembered ids, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
struct Ids {
    order: VecDeque<(String, Millis)>,
    seq: HashMap<String, Seq>,
}

/// Every actor's remembered ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Cids {
    by: HashMap<Actor, Ids>,
}

/// How an id is stored in a snapshot: in log order. (Snapshots from before the time was kept
/// have three fields; the time reads as 0.)
#[derive(Serialize, Deserialize)]
struct Stored(Actor, String, Seq, #[serde(default)] Millis);

impl Cids {
    /// The seq `by`'s command `cid` got, if it is remembered.
    pub(crate) fn find(&self, by: Actor, cid: &str) -> Option<Seq> {
        self.by.get(&by)?.seq.get(cid).copied()
    }

    /// Remember `by`'s `cid` at `seq`, logged at `at`; forget that actor's ids that are
    /// both older than [`CIDS_KEPT_MS`] and not among its last [`RECENT_CIDS_PER_PLAYER`], and
    /// any past [`RECENT_CIDS`].
    pub(crate) fn remember(&mut self, by: Actor, cid: &str, seq: Seq, at: Millis) {
        let ids = self.by.entry(by).or_default();
        if let Some(known) = ids.seq.get_mut(cid) {
            *known = seq;
            return;
        }
        ids.seq.insert(cid.to_owned(), seq);
        ids.order.push_back((cid.to_owned(), at));
        while let Some((oldest, when)) = ids.order.front() {
            let many = ids.order.len() > RECENT_CIDS_PER_PLAYER;
            let old = when.saturating_add(CIDS_KEPT_MS) < at;
            if !(ids.order.len() > RECENT_CIDS_PER_PLAYER_MOST || (many && old)) {
                break;
            }
            ids.seq.remove(oldest);
            ids.order.pop_front();
        }
        while self.by.values().map(|ids| ids.order.len()).sum::<usize>() > RECENT_CIDS {
            // The player with the most (ties: the greatest actor, so a replay picks the same).
            let Some(ids) = self
                .by
                .iter_mut()
                .max_by_key(|(actor, ids)| (ids.order.len(), **actor))
                .map(|(_, ids)| ids)
            else {
                break;
            };
            if let Some((oldest, _)) = ids.order.pop_front() {
                ids.seq.remove(&oldest);
            }
        }
    }
}

impl Serialize for Cids {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut all: Vec<Stored> = self
            .by
            .iter()
            .flat_map(|(actor, ids)| {
                ids.order.iter().map(|(cid, at)| {
                    let seq = ids.seq.get(cid).copied().unwrap_or(Seq(0));
                    Stored(*actor, cid.clone(), seq, *at)
                })
            })
            .collect();
        all.sort_by_key(|e| e.2);
        all.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cids {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all = Vec::<Stored>::deserialize(d)?;
        let mut cids = Cids::default();
        for Stored(actor, cid, seq, at) in all {
            let ids = cids.by.entry(actor).or_default();
            ids.seq.insert(cid.clone(), seq);
            ids.order.push_back((cid, at));
        }
        Ok(cids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Seat;

    #[test]
    fn a_players_ids_are_kept_for_a_minute_however_fast_the_others_play() {
        let mut cids = Cids::default();
        let (a, b) = (Actor::Seat(Seat(0)), Actor::Seat(Seat(1)));
        cids.remember(a, "a-1", Seq(1), 1_000);
        for n in 0..1_000u64 {
            cids.remember(b, &format!("b-{n}"), Seq(n) + 2, 1_000 + n);
        }
        assert_eq!(
            cids.find(a, "a-1"),
            Some(Seq(1)),
            "the other player's commands evict nothing"
        );
        assert_eq!(
            cids.find(b, "b-0"),
            Some(Seq(2)),
            "1,000 in a second are all kept"
        );
        assert_eq!(cids.find(a, "b-0"), None, "ids are per player");
    }

    #[test]
    fn a_match_of_many_players_keeps_4096_in_all_taken_from_the_player_with_most() {
        let mut cids = Cids::default();
        for seat in 0..8u16 {
            for n in 0..1_000u64 {
                cids.remember(
                    Actor::Seat(Seat(seat)),
                    &format!("{seat}-{n}"),
                    Seq(n) + 1,
                    5,
                );
            }
        }
        let total: usize = cids.by.values().map(|ids| ids.order.len()).sum();
        assert_eq!(total, RECENT_CIDS);
        assert!(
            cids.by
                .values()
                .all(|ids| ids.order.len() == RECENT_CIDS / 8),
            "evenly"
        );
        assert_eq!(
            cids.find(Actor::Seat(Seat(7)), "7-999"),
            Some(Seq(1_000)),
            "the newest stay"
        );
        assert_eq!(cids.find(Actor::Seat(Seat(0)), "0-0"), None);
    }

    #[test]
    fn old_ids_go_once_a_player_has_more_than_its_last_64_and_none_past_1024() {
        let mut cids = Cids::default();
        let a = Actor::Seat(Seat(0));
        for n in 0..100u64 {
            cids.remember(a, &format!("old-{n}"), Seq(n) + 1, 0);
        }
        cids.remember(a, "late", Seq(101), CIDS_KEPT_MS + 1);
        assert_eq!(
            cids.find(a, "old-0"),
            None,
            "older than a minute, and not among the last 64"
        );
        assert_eq!(
            cids.find(a, "old-99"),
            Some(Seq(100)),
            "among the last 64: kept"
        );
        assert_eq!(cids.by[&a].order.len(), RECENT_CIDS_PER_PLAYER);
        for n in 0..5_000u64 {
            cids.remember(a, &format!("fast-{n}"), Seq(200 + n), CIDS_KEPT_MS + 2);
        }
        assert_eq!(
            cids.by[&a].order.len(),
            RECENT_CIDS_PER_PLAYER_MOST,
            "bounded"
        );
        assert_eq!(cids.find(a, "fast-4999"), Some(Seq(5_199)));
    }

    #[test]
    fn a_snapshot_keeps_them_and_old_snapshots_still_read() {
        let mut cids = Cids::default();
        cids.remember(Actor::Seat(Seat(1)), "x", Seq(5), 10);
        cids.remember(Actor::System, "y", Seq(7), 11);
        let bytes = rmp_serde::to_vec_named(&cids).unwrap();
        assert_eq!(rmp_serde::from_slice::<Cids>(&bytes).unwrap(), cids);
        let old = vec![(Actor::Seat(Seat(0)), "z".to_owned(), 3u64)];
        let old: Cids = rmp_serde::from_slice(&rmp_serde::to_vec_named(&old).unwrap()).unwrap();
        assert_eq!(old.find(Actor::Seat(Seat(0)), "z"), Some(Seq(3)));
    }
}
