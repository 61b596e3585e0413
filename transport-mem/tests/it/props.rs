//! Properties of the whole stack (hub + transport-mem + log) for random command sequences
//! from random players, random waits that fire timers, and spectators arriving at random
//! times, in all three games:
//! - every subscriber (players and spectators, early or late) receives exactly the log;
//! - replaying the log rebuilds a match equal to the live one;
//! - restarting the hub at a random point and continuing ends in the same state as never
//!   restarting;
//! - a refused command changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use crate::common::{start, within};
use proptest::prelude::*;
use serde_json::{json, Value};
use umpire_engine::protocol::as_shown;
use umpire_engine::{Envelope, Game, Match};
use umpire_games::{Colony, Connect4, Tally};
use umpire_hub::{Clock, Durability, HubConfig, TokioClock};
use umpire_mem::MemClient;
use umpire_store::{Log, MemLog};

#[derive(Clone, Debug)]
enum Op {
    Cmd(usize, Value),
    Wait(u64),
    Spectate,
}

fn ops(command: impl Strategy<Value = Value> + Clone + 'static) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => (0usize..4, command).prop_map(|(p, c)| Op::Cmd(p, c)),
        2 => (0u64..120_000).prop_map(Op::Wait),
        1 => Just(Op::Spectate),
    ];
    proptest::collection::vec(op, 0..25)
}

struct Ended {
    whole: Value,
    /// The events that are not presence: a restart adds presence (everyone goes offline,
    /// then comes back), and nothing else.
    played: usize,
}

fn run<G: Game>(
    game: G,
    config: Value,
    players: usize,
    ops: &[Op],
    restart_at: Option<usize>,
) -> Result<Ended, TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let log = Arc::new(MemLog::new());
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(1_000_000_000));
        let settings = HubConfig {
            durability: Durability::None,
            ..HubConfig::default()
        };
        let (mut hub, mut net) = start(log.clone(), settings.clone(), Some(clock.clone())).await;
        // Named players: guest names are random, and the two runs compared must match.
        let mut host = net.connect_as("p0").await.unwrap();
        let g = host.create(G::KIND, config).await.unwrap();
        let (id, join, watch) = (g.game, g.join.unwrap(), g.watch.unwrap());
        let mut tokens = vec![g.token];
        let mut clients = vec![host];
        for p in 1..players {
            let mut c = net.connect_as(&format!("p{p}")).await.unwrap();
            tokens.push(c.join(&join).await.unwrap().token);
            clients.push(c);
        }
        let mut watchers: Vec<MemClient> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if restart_at == Some(i) {
                hub.shutdown().await.unwrap();
                (hub, net) = start(log.clone(), settings.clone(), Some(clock.clone())).await;
                clients.clear();
                for (p, token) in tokens.iter().enumerate() {
                    let mut c = net.connect_as(&format!("p{p}")).await.unwrap();
                    c.join(token).await.unwrap();
                    clients.push(c);
                }
                watchers.clear();
            }
            match op {
                Op::Cmd(p, cmd) => {
                    let before = hub.inspect(id).await.unwrap();
                    if let Err(e) = within(clients[p % players].command(id, cmd.clone())).await {
                        prop_assert!(e.code().is_some(), "not a refusal: {}", e);
                        prop_assert_eq!(
                            hub.inspect(id).await.unwrap(),
                            before,
                            "a refusal changed the game"
                        );
                    }
                }
                Op::Wait(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                Op::Spectate => {
                    let mut w = net.connect().await.unwrap();
                    w.watch(&watch, None).await.unwrap();
                    watchers.push(w);
                }
            }
        }
        let live = hub.inspect(id).await.unwrap();
        let records = log.read(id, 1, usize::MAX).unwrap();
        prop_assert_eq!(records.len() as u64, live.version);
        let expected: Vec<Value> = records
            .iter()
            .map(|(_, r)| as_shown(rmp_serde::from_slice(r).unwrap()))
            .collect();
        for (n, client) in clients.iter_mut().chain(watchers.iter_mut()).enumerate() {
            let got = within(client.events(id, expected.len())).await.unwrap();
            prop_assert_eq!(
                &got,
                &expected,
                "subscriber {} saw something else than the log",
                n
            );
        }
        let typed: Vec<Envelope<G>> = records
            .iter()
            .map(|(_, r)| rmp_serde::from_slice(r).unwrap())
            .collect();
        let replayed = Match::replay(&game, &typed).unwrap();
        prop_assert_eq!(
            serde_json::to_value(&replayed).unwrap(),
            live.whole.clone(),
            "replay differs from live"
        );
        hub.shutdown().await.unwrap();
        // Each game gets a fresh random seed; these games draw nothing from it.
        let mut whole = live.whole;
        whole["seed"] = Value::Null;
        whole["version"] = Value::Null;
        // When the last record happened: the offline presence a restart logs is later.
        whole["last_at"] = Value::Null;
        let played = expected
            .iter()
            .filter(|env| env["body"].get("presence").is_none())
            .count();
        Ok(Ended { whole, played })
    })
}

fn check<G: Game + Clone>(
    game: G,
    config: Value,
    players: usize,
    ops: Vec<Op>,
    restart: usize,
) -> Result<(), TestCaseError> {
    let straight = run(game.clone(), config.clone(), players, &ops, None)?;
    let restarted = run(game, config, players, &ops, Some(restart % (ops.len() + 1)))?;
    prop_assert_eq!(straight.played, restarted.played);
    prop_assert_eq!(
        straight.whole,
        restarted.whole,
        "a restart changed the outcome"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn connect4_through_the_hub(ops in ops((-1i64..8).prop_map(|c| json!({"column": c}))), restart in 0usize..30) {
        check(Connect4, Value::Null, 2, ops, restart)?;
    }

    #[test]
    fn tally_through_the_hub(
        ops in ops(prop_oneof![(-50i64..50), Just(i64::MAX), Just(i64::MIN)].prop_map(|n| json!({"add": n}))),
        restart in 0usize..30,
    ) {
        check(Tally, json!({"seats": 3}), 3, ops, restart)?;
    }

    #[test]
    fn colony_through_the_hub(
        ops in ops(prop_oneof![
            prop_oneof![Just("mine"), Just("farm"), Just("castle")].prop_map(|b| json!({"order": {"building": b}})),
            (0u32..5).prop_map(|o| json!({"cancel": {"order": o}})),
            (0u32..5).prop_map(|o| json!({"complete": {"order": o}})),
        ]),
        restart in 0usize..30,
    ) {
        let config = json!({"build_ms": {"mine": 50_000, "farm": 90_000}, "seats": 2});
        check(Colony, config, 2, ops, restart)?;
    }
}
