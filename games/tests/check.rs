//! Every bundled game through the whole server with umpire's testing kit: random players,
//! spectators, dropped connections, restarts and snapshots (see `umpire_mem::testing`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use umpire_games::colony::{ColonyCommand, ColonyConfig};
use umpire_games::connect4::Play;
use umpire_games::highcard::{Card, HighCardCommand, HighCardConfig};
use umpire_games::tally::{TallyCommand, TallyConfig};
use umpire_games::{Colony, Connect4, HighCard, Tally};
use umpire_mem::testing::Check;

#[test]
fn connect4() {
    // Columns just outside the board too.
    Check::new(Connect4).run((-1i64..8).prop_map(|column| Play { column }));
}

#[test]
fn tally() {
    let amount = prop_oneof![-50i64..50, Just(i64::MAX), Just(i64::MIN)];
    Check::new(Tally)
        .config(TallyConfig { seats: 3 })
        .run(amount.prop_map(TallyCommand::Add));
}

#[test]
fn colony() {
    let config = ColonyConfig {
        build_ms: BTreeMap::from([("mine".into(), 50_000), ("farm".into(), 90_000)]),
        seats: 2,
    };
    // Orders that exist and one that does not; cancels and completions (the timer's command,
    // refused from a player) of orders that may or may not exist.
    let building = prop_oneof![Just("mine"), Just("farm"), Just("castle")];
    let command = prop_oneof![
        building.prop_map(|b| ColonyCommand::Order { building: b.into() }),
        (0u32..5).prop_map(|order| ColonyCommand::Cancel { order }),
        (0u32..5).prop_map(|order| ColonyCommand::Complete { order }),
    ];
    Check::new(Colony).config(config).run(command);
}

#[test]
fn highcard() {
    // Half the deck each, so that a random card is in the player's hand half the time.
    let card = (
        2u8..=14,
        prop_oneof![Just('c'), Just('d'), Just('h'), Just('s')],
    )
        .prop_map(|(rank, suit)| Card { rank, suit });
    let command = prop_oneof![
        1 => Just(HighCardCommand::Deal),
        6 => card.prop_map(HighCardCommand::Play),
    ];
    Check::new(HighCard)
        .config(HighCardConfig { hand: 26 })
        .run(command);
}
