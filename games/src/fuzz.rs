//! Fuzzing oracles for the bundled games, in the library so that the fuzz targets call them
//! and an ordinary stable test replays the committed corpus through the very same checks.
//!
//! [`matches()`] is structure-aware: the fuzzer's bytes become a sequence of [`Step`]s
//! (`arbitrary` derives), played through a [`Match`] of one of the four games. Whatever the
//! sequence: `decide` never panics, a refused step changes nothing, every event encodes and
//! decodes to itself, the log replays to the live match, a snapshot decodes to it, and every
//! viewer's copy of every event can be made.

use arbitrary::{Arbitrary, Unstructured};
use umpire_engine::{Action, Actor, Envelope, Game, Match, Millis, Seat, Viewer};

use crate::colony::{ColonyCommand, ColonyConfig};
use crate::connect4::Play;
use crate::highcard::{Card, HighCardCommand, HighCardConfig};
use crate::tally::{TallyCommand, TallyConfig};
use crate::{Colony, Connect4, HighCard, Tally};

/// One step of a fuzzed game: who does what, after how long.
#[derive(Arbitrary, Debug)]
pub enum Step {
    /// A game command from seat `seat` (or a spectator's, for seats past the last).
    Play {
        /// The seat, any number.
        seat: u8,
        /// Drawn into the game's own command type.
        command: Command,
        /// A client id, sometimes repeated.
        cid: Option<u8>,
    },
    /// Someone takes a seat.
    Join(u8),
    /// A seat is given up.
    Leave(u8),
    /// A seat's connection comes or goes.
    Presence(u8, bool),
    /// Time passes, then the earliest timer fires if it is due.
    Wait(u16),
    /// The game expires.
    Expire,
}

/// The raw material of a command, read as each game's own.
#[derive(Arbitrary, Debug)]
pub enum Command {
    /// connect4's column, tally's amount.
    Number(i64),
    /// colony's building (an index into a few names, one of them unknown).
    Order(u8),
    /// colony's cancel, by order number.
    Cancel(u32),
    /// colony's complete, which only its timers may send.
    Complete(u32),
    /// highcard's deal.
    Deal,
    /// highcard's card, rank and suit from any byte.
    Card(u8, u8),
}

impl Command {
    fn tally(&self) -> TallyCommand {
        match self {
            Command::Number(n) => TallyCommand::Add(*n),
            _ => TallyCommand::Add(1),
        }
    }

    fn connect4(&self) -> Play {
        match self {
            Command::Number(column) => Play { column: *column },
            _ => Play { column: 3 },
        }
    }

    fn colony(&self) -> ColonyCommand {
        const NAMES: [&str; 4] = ["mine", "farm", "shipyard", "castle"];
        match self {
            Command::Order(i) => ColonyCommand::Order {
                building: NAMES[usize::from(*i) % NAMES.len()].to_owned(),
            },
            Command::Cancel(order) => ColonyCommand::Cancel { order: *order },
            Command::Complete(order) => ColonyCommand::Complete { order: *order },
            _ => ColonyCommand::Order {
                building: "mine".into(),
            },
        }
    }

    fn highcard(&self) -> HighCardCommand {
        const SUITS: [char; 5] = ['c', 'd', 'h', 's', 'x'];
        match self {
            Command::Card(rank, suit) => HighCardCommand::Play(Card {
                rank: rank % 16,
                suit: SUITS[usize::from(*suit) % SUITS.len()],
            }),
            _ => HighCardCommand::Deal,
        }
    }
}

/// The longest game played from one input.
const MAX_STEPS: usize = 512;

/// Play the steps `data` says through one of the bundled games and check everything.
///
/// # Panics
/// When a check fails: that is what the fuzzer looks for.
pub fn matches(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(which) = u.int_in_range(0..=3u8) else {
        return;
    };
    let seed = u.arbitrary().unwrap_or(0);
    let steps: Vec<Step> = u
        .arbitrary_iter()
        .map(|it| it.take(MAX_STEPS).filter_map(Result::ok).collect())
        .unwrap_or_default();
    match which {
        0 => play(
            &Tally,
            TallyConfig { seats: 3 },
            seed,
            &steps,
            Command::tally,
        ),
        1 => play(&Connect4, (), seed, &steps, Command::connect4),
        2 => {
            let config = ColonyConfig {
                seats: 3,
                ..ColonyConfig::default()
            };
            play(&Colony, config, seed, &steps, Command::colony);
        }
        _ => play(
            &HighCard,
            HighCardConfig { hand: 3 },
            seed,
            &steps,
            Command::highcard,
        ),
    }
}

fn play<G: Game>(
    game: &G,
    config: G::Config,
    seed: u64,
    steps: &[Step],
    command: fn(&Command) -> G::Command,
) {
    let mut now: Millis = 1_000_000;
    let (mut m, created) = Match::create(game, config, seed, now);
    let mut log = vec![created];
    for step in steps {
        let seat = |n: &u8| Seat(u16::from(*n % 4));
        let (by, action, cid) = match step {
            Step::Play {
                seat: s,
                command: c,
                cid,
            } => {
                let cid = cid.map(|c| format!("c{}", c % 8));
                (Actor::Seat(seat(s)), Action::Play(command(c)), cid)
            }
            Step::Join(n) => {
                let player = format!("p{}", n % 4);
                (Actor::System, Action::Join { player }, None)
            }
            Step::Leave(s) => (Actor::Seat(seat(s)), Action::Leave, None),
            Step::Presence(s, online) => {
                let presence = Action::Presence {
                    seat: seat(s),
                    online: *online,
                };
                (Actor::System, presence, None)
            }
            Step::Wait(ms) => {
                now += Millis::from(*ms) * 10;
                match m.next_due() {
                    Some((at, timer)) if at <= now => (Actor::System, Action::Fire(timer), None),
                    _ => continue,
                }
            }
            Step::Expire => (Actor::System, Action::Expire, None),
        };
        let before = m.clone();
        match m.execute(game, by, action, now, cid.as_deref()) {
            Ok(envelopes) => {
                for env in &envelopes {
                    let bytes = rmp_serde::to_vec_named(env).expect("every event encodes");
                    let back: Envelope<G> =
                        rmp_serde::from_slice(&bytes).expect("every event decodes");
                    assert!(back == *env, "seq {} changed through its encoding", env.seq);
                }
                log.extend(envelopes);
            }
            Err(_) => assert!(m == before, "a refused step changed the match"),
        }
    }
    let replayed = Match::replay(game, &log).expect("the log replays");
    assert!(
        replayed == m,
        "the replayed match differs from the live one"
    );
    let snapshot = rmp_serde::to_vec_named(&m).expect("the match encodes");
    let restored: Match<G> = rmp_serde::from_slice(&snapshot).expect("its snapshot decodes");
    assert!(restored == m, "the snapshot differs from the match");
    for env in &log {
        for viewer in [
            Viewer::Spectator,
            Viewer::Seat(Seat(0)),
            Viewer::Seat(Seat(1)),
        ] {
            if let Some(copy) = env.viewed(game, viewer) {
                assert_eq!(copy.seq, env.seq);
            }
        }
    }
}

/// The fuzzing oracle for a log record of any shape: decoding it as any bundled game's
/// envelope answers an error or an envelope, never a panic, and an envelope that decodes
/// encodes back to one equal to it.
pub fn record(bytes: &[u8]) {
    fn check<G: Game>(bytes: &[u8]) {
        if let Ok(env) = rmp_serde::from_slice::<Envelope<G>>(bytes) {
            let again = rmp_serde::to_vec_named(&env).expect("a decoded envelope encodes");
            let back: Envelope<G> = rmp_serde::from_slice(&again).expect("and decodes");
            assert!(back == env, "an envelope changed through its encoding");
        }
    }
    check::<Tally>(bytes);
    check::<Connect4>(bytes);
    check::<Colony>(bytes);
    check::<HighCard>(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    /// A game whose event loses a field on the way to the log: what the oracle is for.
    #[derive(Debug)]
    struct Lossy;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Noted {
        #[serde(skip)]
        amount: i64,
    }

    #[derive(Clone, Debug, PartialEq, serde::Serialize, thiserror::Error)]
    #[error("never")]
    struct Never;

    impl Game for Lossy {
        const KIND: &'static str = "lossy";
        type Config = ();
        type State = i64;
        type Command = i64;
        type Event = Noted;
        type Rejection = Never;
        fn seats(&self, (): &()) -> u16 {
            2
        }
        fn setup(&self, (): &()) -> i64 {
            0
        }
        fn decide(
            &self,
            _: &i64,
            _: Actor,
            amount: &i64,
            _: &mut umpire_engine::Ctx<'_, i64>,
        ) -> Result<Vec<Noted>, Never> {
            Ok(vec![Noted { amount: *amount }])
        }
        fn apply(&self, total: &mut i64, noted: &Noted) {
            *total += noted.amount;
        }
    }

    #[test]
    #[should_panic(expected = "changed through its encoding")]
    fn an_event_that_loses_a_field_in_the_log_is_caught() {
        let steps = [
            Step::Join(0),
            Step::Play {
                seat: 0,
                command: Command::Number(5),
                cid: None,
            },
        ];
        play(&Lossy, (), 1, &steps, |c| match c {
            Command::Number(n) => *n,
            _ => 1,
        });
    }

    #[test]
    fn every_bundled_game_plays_a_long_varied_sequence_through_every_check() {
        for game in 0u8..4 {
            let mut data = vec![game];
            data.extend((0u32..4000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
            matches(&data);
        }
    }
}
