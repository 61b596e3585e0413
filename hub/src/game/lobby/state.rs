//! A kind's lobby as data: the records of its stream, the state they fold into, and the pure
//! decision that turns players asking to play into records. No IO here: the lobby's task
//! (`mod.rs`) reads, decides, appends with a version check, and tries again if another node
//! appended first.
//!
//! A ticket is the seq of the record that made it (`Open`, `Wait`, `Match`): unique, and
//! ordered by arrival.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use umpire_engine::protocol::GameId;
use umpire_engine::Millis;

/// A record of a lobby stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A new open game of `config` with `seats` seats for `player`, whose node creates it
    /// after this record is durable: places in it can be given out before it exists, so two
    /// players asking at once on two nodes share one game.
    Open {
        config: String,
        seats: u16,
        player: String,
        node: String,
    },
    /// A game created private and listed by its creator (`create` with `open`): `Open` and
    /// `Opened` at once.
    Listed {
        config: String,
        seats: u16,
        player: String,
        game: GameId,
        join: String,
        watch: String,
    },
    /// `player` has a place in `ticket`'s game (joins it once it exists).
    Take { ticket: u64, player: String },
    /// `ticket`'s game exists.
    Opened {
        ticket: u64,
        game: GameId,
        join: String,
        watch: String,
    },
    /// The players seated in `ticket`'s game now, as the game reported them.
    Seats { ticket: u64, players: Vec<String> },
    /// `ticket`'s game is no longer open (full, over, gone, never created).
    Close { ticket: u64 },
    /// `player` waits for the matchmaker.
    Wait {
        player: String,
        config: String,
        props: String,
        seats: u16,
        node: String,
    },
    /// These waiting tickets play together, in this order: a new game (ticket: this seq),
    /// created by the first one's node.
    Match { tickets: Vec<u64> },
    /// A waiting ticket stopped waiting.
    Cancel { ticket: u64 },
    /// Everything before this record, folded: the log forgets what is before it.
    Snapshot(Box<State>),
}

/// A record as stored: when, and what.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) at: Millis,
    pub(crate) record: Record,
}

/// An open game, or one reserved and being created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Open {
    pub(crate) config: String,
    pub(crate) seats: u16,
    /// Who has a place: the creator and those given places, until the game reports its
    /// players; then its players.
    pub(crate) members: Vec<String>,
    pub(crate) game: Option<GameId>,
    pub(crate) join: String,
    pub(crate) watch: String,
    pub(crate) since: Millis,
    /// The node that creates it.
    pub(crate) node: String,
}

impl Open {
    /// A game reserved for `members` at `since`, to be created by `node`.
    fn reserved(config: &str, seats: u16, members: Vec<String>, since: Millis, node: &str) -> Self {
        Open {
            config: config.to_owned(),
            seats,
            members,
            game: None,
            join: String::new(),
            watch: String::new(),
            since,
            node: node.to_owned(),
        }
    }

    /// Whether `player` may be given a place in it.
    fn has_place_for(&self, config: &str, player: &str, stale: Millis) -> bool {
        self.config == config
            && self.members.len() < usize::from(self.seats)
            && !self.members.iter().any(|m| m == player)
            && (self.game.is_some() || self.since >= stale)
    }
}

/// A player waiting for the matchmaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Wait {
    pub(crate) player: String,
    pub(crate) config: String,
    pub(crate) props: String,
    pub(crate) seats: u16,
    pub(crate) since: Millis,
    pub(crate) node: String,
}

/// A lobby: its open games and waiting players, by ticket (oldest first).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) games: BTreeMap<u64, Open>,
    pub(crate) waiting: BTreeMap<u64, Wait>,
    /// Waiting tickets put in a group, while the group's game is open: ticket -> the group's
    /// ticket and the player's place in it.
    pub(crate) matched: BTreeMap<u64, (u64, u16)>,
    /// Where the last snapshot is.
    pub(crate) snapshot: u64,
    /// Tickets of the open games, by game.
    #[serde(skip)]
    by_game: HashMap<GameId, u64>,
}

/// How long a reserved game may take to be created before any node gives its places back.
pub(crate) const OPENING_FOR: Millis = 10_000;

/// How long a game whose places were all given out is kept without a report of its players.
pub(crate) const UNREPORTED_FOR: Millis = 60_000;

impl State {
    /// Fold the record at `seq`, written at `at`.
    pub(crate) fn apply(&mut self, seq: u64, at: Millis, record: &Record) {
        match record {
            Record::Open {
                config,
                seats,
                player,
                node,
            } => {
                let open = Open::reserved(config, *seats, vec![player.clone()], at, node);
                self.games.insert(seq, open);
            }
            Record::Listed {
                config,
                seats,
                player,
                game,
                join,
                watch,
            } => {
                let open = Open {
                    game: Some(*game),
                    join: join.clone(),
                    watch: watch.clone(),
                    ..Open::reserved(config, *seats, vec![player.clone()], at, "")
                };
                self.games.insert(seq, open);
                self.by_game.insert(*game, seq);
            }
            Record::Take { ticket, player } => {
                if let Some(open) = self.games.get_mut(ticket) {
                    open.members.push(player.clone());
                }
            }
            Record::Opened {
                ticket,
                game,
                join,
                watch,
            } => {
                if let Some(open) = self.games.get_mut(ticket) {
                    open.game = Some(*game);
                    open.join.clone_from(join);
                    open.watch.clone_from(watch);
                    self.by_game.insert(*game, *ticket);
                }
            }
            Record::Seats { ticket, players } => {
                let full = match self.games.get_mut(ticket) {
                    Some(open) => {
                        open.members.clone_from(players);
                        players.is_empty() || players.len() >= usize::from(open.seats)
                    }
                    None => false,
                };
                if full {
                    self.close(*ticket);
                }
            }
            Record::Close { ticket } => self.close(*ticket),
            Record::Wait {
                player,
                config,
                props,
                seats,
                node,
            } => {
                self.waiting.insert(
                    seq,
                    Wait {
                        player: player.clone(),
                        config: config.clone(),
                        props: props.clone(),
                        seats: *seats,
                        since: at,
                        node: node.clone(),
                    },
                );
            }
            Record::Match { tickets } => {
                let waits: Vec<Wait> = tickets
                    .iter()
                    .filter_map(|t| self.waiting.remove(t))
                    .collect();
                let Some(first) = waits.first() else {
                    return;
                };
                let members = waits.iter().map(|w| w.player.clone()).collect();
                let open = Open::reserved(&first.config, first.seats, members, at, &first.node);
                self.games.insert(seq, open);
                for (i, t) in tickets.iter().enumerate() {
                    self.matched
                        .insert(*t, (seq, u16::try_from(i).unwrap_or(u16::MAX)));
                }
            }
            Record::Cancel { ticket } => {
                self.waiting.remove(ticket);
            }
            Record::Snapshot(state) => {
                *self = (**state).clone();
                self.snapshot = seq;
                self.by_game = self
                    .games
                    .iter()
                    .filter_map(|(t, o)| o.game.map(|g| (g, *t)))
                    .collect();
            }
        }
    }

    fn close(&mut self, ticket: u64) {
        if let Some(open) = self.games.remove(&ticket) {
            if let Some(game) = open.game {
                self.by_game.remove(&game);
            }
        }
        self.matched.retain(|_, (group, _)| *group != ticket);
    }

    /// The ticket of the open game `game`, if it is listed.
    pub(crate) fn ticket_of(&self, game: GameId) -> Option<u64> {
        self.by_game.get(&game).copied()
    }

    /// The open games created and with a free seat, oldest first.
    pub(crate) fn listed(&self) -> impl Iterator<Item = (&u64, &Open)> {
        self.games
            .iter()
            .filter(|(_, o)| o.game.is_some() && o.members.len() < usize::from(o.seats))
    }
}

/// A player asking to play, as the decision sees them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ask {
    pub(crate) player: String,
    /// The config as canonical JSON text.
    pub(crate) config: String,
    pub(crate) seats: u16,
    pub(crate) props: String,
}

/// What a player asking was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Given {
    /// A new game, reserved as this ticket: create it.
    Create(u64),
    /// A place in this ticket's game: join it once it exists.
    Take(u64),
    /// A place in the matchmaker's waiting list, as this ticket.
    Wait(u64),
}

/// Decide `asks` against `state`, whose log ends at `version`: the records to append (numbered
/// from `version + 1`) and what each asker is given, in order. Quick play gives each the
/// oldest game of its config with a place (including those reserved in this very batch), or
/// reserves a new one; with a matchmaker each waits. A reserved game older than `stale` whose
/// game was never created gets nobody.
pub(crate) fn decide(
    state: &State,
    version: u64,
    asks: &[Ask],
    matchmaker: bool,
    node: &str,
    stale: Millis,
) -> (Vec<Record>, Vec<Given>) {
    let mut records = Vec::with_capacity(asks.len());
    let mut given = Vec::with_capacity(asks.len());
    // Places given in this batch, and games reserved in it: an overlay on `state`.
    let mut taken: HashMap<u64, Vec<&str>> = HashMap::new();
    let mut reserved: Vec<(u64, Open)> = Vec::new();
    for ask in asks {
        let seq = version + records.len() as u64 + 1;
        if matchmaker {
            records.push(Record::Wait {
                player: ask.player.clone(),
                config: ask.config.clone(),
                props: ask.props.clone(),
                seats: ask.seats,
                node: node.to_owned(),
            });
            given.push(Given::Wait(seq));
            continue;
        }
        let with_overlay = |ticket: &u64, open: &Open| {
            let extra = taken.get(ticket).map_or(&[][..], Vec::as_slice);
            open.config == ask.config
                && open.members.len() + extra.len() < usize::from(open.seats)
                && !extra.contains(&ask.player.as_str())
                && open.has_place_for(&ask.config, &ask.player, stale)
        };
        let place = state
            .games
            .iter()
            .find(|(t, o)| with_overlay(t, o))
            .map(|(t, _)| *t)
            .or_else(|| {
                reserved
                    .iter()
                    .find(|(t, o)| with_overlay(t, o))
                    .map(|(t, _)| *t)
            });
        match place {
            Some(ticket) => {
                taken.entry(ticket).or_default().push(&ask.player);
                records.push(Record::Take {
                    ticket,
                    player: ask.player.clone(),
                });
                given.push(Given::Take(ticket));
            }
            None => {
                let members = vec![ask.player.clone()];
                let open = Open::reserved(&ask.config, ask.seats, members, Millis::MAX, node);
                reserved.push((seq, open));
                records.push(Record::Open {
                    config: ask.config.clone(),
                    seats: ask.seats,
                    player: ask.player.clone(),
                    node: node.to_owned(),
                });
                given.push(Given::Create(seq));
            }
        }
    }
    (records, given)
}

/// The groups a matchmaker returned that can be written: tickets still waiting, none twice,
/// one config per group, no more than its seats. The others are dropped with a warning.
pub(crate) fn valid_groups(state: &State, groups: Vec<Vec<u64>>, kind: &str) -> Vec<Vec<u64>> {
    let mut used = std::collections::HashSet::new();
    groups
        .into_iter()
        .filter(|group| {
            let waits: Vec<&Wait> = group.iter().filter_map(|t| state.waiting.get(t)).collect();
            let ok = !group.is_empty()
                && waits.len() == group.len()
                && waits.iter().all(|w| w.config == waits[0].config)
                && group.len() <= usize::from(waits[0].seats.max(1))
                && group.iter().all(|t| !used.contains(t));
            if ok {
                used.extend(group.iter().copied());
            } else {
                tracing::warn!(kind, ?group, "the matchmaker's group is skipped: a ticket not waiting or given twice, two configs, or more players than seats");
            }
            ok
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ask(player: &str, config: &str) -> Ask {
        Ask {
            player: player.into(),
            config: config.into(),
            seats: 2,
            props: "null".into(),
        }
    }

    /// Apply `records` from `version + 1` at time `at`.
    fn fold(state: &mut State, version: u64, records: &[Record], at: Millis) {
        for (i, r) in records.iter().enumerate() {
            state.apply(version + i as u64 + 1, at, r);
        }
    }

    #[test]
    fn two_players_asking_at_once_share_one_game() {
        let state = State::default();
        let (records, given) = decide(
            &state,
            0,
            &[ask("a", "null"), ask("b", "null")],
            false,
            "n",
            0,
        );
        assert_eq!(given, vec![Given::Create(1), Given::Take(1)]);
        let mut state = state;
        fold(&mut state, 0, &records, 5);
        assert_eq!(
            state.games[&1].members,
            vec!["a".to_owned(), "b".to_owned()]
        );
    }

    #[test]
    fn another_config_or_the_same_player_opens_another_game() {
        let (_, given) = decide(
            &State::default(),
            0,
            &[ask("a", "null"), ask("a", "null"), ask("b", "{\"x\":1}")],
            false,
            "n",
            0,
        );
        assert_eq!(
            given,
            vec![Given::Create(1), Given::Create(2), Given::Create(3)]
        );
    }

    #[test]
    fn a_reserved_game_never_created_gets_nobody_once_stale() {
        let mut state = State::default();
        let (records, _) = decide(&state, 0, &[ask("a", "null")], false, "n", 0);
        fold(&mut state, 0, &records, 100);
        let (_, given) = decide(&state, 1, &[ask("b", "null")], false, "n", 101);
        assert_eq!(given, vec![Given::Create(2)]);
        let (_, given) = decide(&state, 1, &[ask("b", "null")], false, "n", 100);
        assert_eq!(given, vec![Given::Take(1)]);
    }

    #[test]
    fn a_snapshot_folds_everything_before_it() {
        let mut state = State::default();
        let (records, _) = decide(
            &state,
            0,
            &[ask("a", "null"), ask("b", "null"), ask("c", "null")],
            false,
            "n",
            0,
        );
        fold(&mut state, 0, &records, 1);
        state.apply(
            4,
            2,
            &Record::Opened {
                ticket: 3,
                game: GameId(9),
                join: "j".into(),
                watch: "w".into(),
            },
        );
        let mut copy = State::default();
        copy.apply(5, 3, &Record::Snapshot(Box::new(state.clone())));
        assert_eq!(copy.ticket_of(GameId(9)), Some(3));
        assert_eq!(copy.games, state.games);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Players asking on node `n` (of 3), one batch.
        Ask(usize, Vec<(u8, u8)>),
        /// A node's pending game is created.
        Create(usize),
        /// A game's waiting creator leaves (its only player).
        Leave(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3usize, proptest::collection::vec((0..40u8, 0..2u8), 1..6)).prop_map(|(n, a)| Step::Ask(n, a)),
            2 => (0..8usize).prop_map(Step::Create),
            1 => (0..8usize).prop_map(Step::Leave),
        ]
    }

    proptest! {
        /// Batches from three nodes, each decided against the whole log (what the
        /// version-checked append makes sure of: a node that read less is refused, reads the
        /// rest and decides again): no player ever holds two places in one game, no game has
        /// more members than seats, and no two players wait alone in two games of one config.
        #[test]
        fn nobody_is_placed_twice_and_nobody_waits_beside_another(steps in proptest::collection::vec(step(), 1..60)) {
            let mut log: Vec<Record> = Vec::new();
            let mut state = State::default();
            let mut games = 0u64;
            for step in steps {
                match step {
                    Step::Ask(node, asks) => {
                        let asks: Vec<Ask> = asks
                            .iter()
                            .map(|(p, c)| ask(&format!("p{p}"), if *c == 0 { "null" } else { "{\"x\":1}" }))
                            .collect();
                        let (records, _) = decide(&state, log.len() as u64, &asks, false, &format!("n{node}"), 0);
                        fold(&mut state, log.len() as u64, &records, 1);
                        log.extend(records);
                    }
                    Step::Create(i) => {
                        let pending: Vec<u64> = state.games.iter().filter(|(_, o)| o.game.is_none()).map(|(t, _)| *t).collect();
                        if let Some(t) = pending.get(i % pending.len().max(1)) {
                            games += 1;
                            let r = Record::Opened { ticket: *t, game: GameId(games), join: format!("j{games}"), watch: "w".into() };
                            state.apply(log.len() as u64 + 1, 1, &r);
                            log.push(r);
                        }
                    }
                    Step::Leave(i) => {
                        let alone: Vec<u64> = state.games.iter().filter(|(_, o)| o.game.is_some() && o.members.len() == 1).map(|(t, _)| *t).collect();
                        if let Some(t) = alone.get(i % alone.len().max(1)) {
                            let r = Record::Seats { ticket: *t, players: Vec::new() };
                            state.apply(log.len() as u64 + 1, 1, &r);
                            log.push(r);
                        }
                    }
                }
                for open in state.games.values() {
                    prop_assert!(open.members.len() <= usize::from(open.seats));
                    let mut m = open.members.clone();
                    m.sort();
                    m.dedup();
                    prop_assert_eq!(m.len(), open.members.len(), "a player placed twice in one game");
                }
                // Two open games of one config with a place each, and a player in one who is
                // not in the other: they could have shared one.
                let half: Vec<(&u64, &Open)> = state.games.iter().filter(|(_, o)| o.members.len() == 1 && o.seats == 2).collect();
                for (i, (_, a)) in half.iter().enumerate() {
                    for (_, b) in &half[i + 1..] {
                        prop_assert!(a.config != b.config || a.members == b.members, "two half-empty games: {:?} {:?}", a, b);
                    }
                }
            }
            // Folding the log from scratch gives the same state (what another node reads).
            let mut again = State::default();
            fold(&mut again, 0, &log, 1);
            prop_assert_eq!(again.games, state.games);
        }
    }
}
