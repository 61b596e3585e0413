//! Properties of every bundled game, run through the engine's `Match` with random command
//! sequences from random seats (including seats nobody holds), random waits that fire timers,
//! and random joins and leaves:
//! - a refused command changes nothing;
//! - replaying the log (after a MessagePack or JSON round trip) rebuilds the live match;
//! - a match snapshotted at a random point and continued ends exactly like the original.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use proptest::prelude::*;
use umpire_engine::{Action, Actor, Envelope, Game, Match, Millis, Seat};
use umpire_games::colony::{ColonyCommand, ColonyConfig};
use umpire_games::connect4::Play;
use umpire_games::tally::{TallyCommand, TallyConfig};
use umpire_games::{Colony, Connect4, Tally};

#[derive(Clone, Debug)]
enum Op<C> {
    Cmd(u16, C),
    Wait(Millis),
    Join(u8),
    Leave(u16),
}

fn ops<C: Clone + std::fmt::Debug>(
    seats: u16,
    command: impl Strategy<Value = C> + Clone + 'static,
) -> impl Strategy<Value = Vec<Op<C>>> {
    let op = prop_oneof![
        8 => (0..seats, command).prop_map(|(s, c)| Op::Cmd(s, c)),
        2 => (0u64..150_000).prop_map(Op::Wait),
        1 => (0u8..4).prop_map(Op::Join),
        1 => (0..seats).prop_map(Op::Leave),
    ];
    proptest::collection::vec(op, 0..60)
}

/// Run one op on a match; returns what it logged.
fn step<G: Game>(
    game: &G,
    m: &mut Match<G>,
    now: &mut Millis,
    op: &Op<G::Command>,
) -> Result<Vec<Envelope<G>>, TestCaseError> {
    let before = m.clone();
    let (by, action) =
        match op {
            Op::Cmd(seat, cmd) => (Actor::Seat(Seat(*seat)), Action::Play(cmd.clone())),
            Op::Join(p) => (
                Actor::System,
                Action::Join {
                    player: format!("p{p}"),
                },
            ),
            Op::Leave(seat) => (Actor::Seat(Seat(*seat)), Action::Leave),
            Op::Wait(ms) => {
                *now += ms;
                let mut out = Vec::new();
                while let Some((at, timer)) = m.next_due() {
                    if at > *now {
                        break;
                    }
                    prop_assert!(
                        out.len() < 10_000,
                        "timers keep firing: a fired timer stays pending"
                    );
                    let fired = m.execute(game, Actor::System, Action::Fire(timer), *now, None);
                    out.extend(fired.map_err(|e| {
                        TestCaseError::fail(format!("a due timer did not fire: {e}"))
                    })?);
                }
                return Ok(out);
            }
        };
    match m.execute(game, by, action, *now, None) {
        Ok(envs) => Ok(envs),
        Err(_) => {
            prop_assert_eq!(&*m, &before, "a refused action changed the match");
            Ok(Vec::new())
        }
    }
}

fn check<G: Game>(
    game: G,
    config: G::Config,
    ops: Vec<Op<G::Command>>,
    snapshot_at: usize,
) -> Result<(), TestCaseError> {
    let mut now = 1_000_000;
    let (mut m, created) = Match::create(&game, config, 7, now);
    let mut log = vec![created];
    for p in 0..2 {
        log.extend(
            m.execute(
                &game,
                Actor::System,
                Action::Join {
                    player: format!("p{p}"),
                },
                now,
                None,
            )
            .unwrap(),
        );
    }
    let mut copy: Option<(Match<G>, Millis)> = None;
    for (i, op) in ops.iter().enumerate() {
        if i == snapshot_at {
            let bytes = rmp_serde::to_vec_named(&m).unwrap();
            copy = Some((rmp_serde::from_slice(&bytes).unwrap(), now));
        }
        let envs = step(&game, &mut m, &mut now, op)?;
        if let Some((c, c_now)) = &mut copy {
            let again = step(&game, c, c_now, op)?;
            prop_assert_eq!(&again, &envs, "the restored copy decided differently");
        }
        log.extend(envs);
    }
    if let Some((c, _)) = &copy {
        prop_assert_eq!(c, &m, "restored and continued differs from never restored");
    }
    let seqs: Vec<u64> = log.iter().map(|e| e.seq.0).collect();
    prop_assert_eq!(
        seqs,
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "seqs run without gaps"
    );
    let via_msgpack: Vec<Envelope<G>> = log
        .iter()
        .map(|e| rmp_serde::from_slice(&rmp_serde::to_vec_named(e).unwrap()).unwrap())
        .collect();
    let via_json: Vec<Envelope<G>> = log
        .iter()
        .map(|e| serde_json::from_value(serde_json::to_value(e).unwrap()).unwrap())
        .collect();
    prop_assert_eq!(&via_msgpack, &log);
    prop_assert_eq!(&via_json, &log);
    prop_assert_eq!(Match::replay(&game, &via_msgpack).unwrap(), m);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn connect4_holds(ops in ops(3, (-1i64..8).prop_map(|column| Play { column })), at in 0usize..60) {
        check(Connect4, (), ops, at)?;
    }

    #[test]
    fn tally_holds(
        ops in ops(4, prop_oneof![(-100i64..100), Just(i64::MAX), Just(i64::MIN), any::<i64>()].prop_map(TallyCommand::Add)),
        at in 0usize..60,
    ) {
        check(Tally, TallyConfig { seats: 4 }, ops, at)?;
    }

    #[test]
    fn colony_holds(
        ops in ops(3, prop_oneof![
            prop_oneof![Just("mine"), Just("farm"), Just("castle")].prop_map(|b| ColonyCommand::Order { building: b.into() }),
            (0u32..6).prop_map(|order| ColonyCommand::Cancel { order }),
            (0u32..6).prop_map(|order| ColonyCommand::Complete { order }),
        ]),
        at in 0usize..60,
    ) {
        check(Colony, ColonyConfig { seats: 3, ..ColonyConfig::default() }, ops, at)?;
    }
}
