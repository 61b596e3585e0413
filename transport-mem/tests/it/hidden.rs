//! Hidden information: a High Card hand and a card laid face down reach their owner only,
//! live and caught up from the log; the rng seed reaches nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use crate::common::{seq, start, within};
use serde_json::{json, Value};
use umpire_engine::protocol::GameId;
use umpire_engine::Seq;
use umpire_engine::{Seat, Viewer};
use umpire_games::highcard;
use umpire_hub::HubConfig;
use umpire_mem::MemClient;
use umpire_store::{Log, MemLog};

/// How many of `events` showed `viewer` what was not theirs to see.
fn leaks(viewer: Viewer, events: &[Value]) -> usize {
    let shown = |env: &Value| serde_json::from_value(env.clone()).unwrap();
    events
        .iter()
        .filter(|env| highcard::shows_hidden(&shown(env), viewer))
        .count()
}

/// Events of `game` up to seq `head`.
async fn upto(client: &mut MemClient, game: u64, head: u64) -> Vec<Value> {
    within(client.events_until(GameId(game), |env| seq(env) >= head))
        .await
        .unwrap()
}

/// `seat`'s own hand, from the events it was shown.
fn hand(seat: u64, events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .find_map(|env| {
            let dealt = &env["body"]["game"]["dealt"];
            (dealt["seat"].as_u64() == Some(seat)).then(|| dealt["hand"].as_array().cloned())?
        })
        .unwrap_or_else(|| panic!("seat {seat} was not shown its hand"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_reaches_its_owner_alone_and_the_seed_nobody() {
    let log: Arc<dyn Log> = Arc::new(MemLog::new());
    let (hub, net) = start(Arc::clone(&log), HubConfig::default(), None).await;
    let mut ada = net.connect().await.unwrap();
    let mut bob = net.connect().await.unwrap();
    let mut fan = net.connect().await.unwrap();
    let g = ada.create("highcard", json!({"hand": 3})).await.unwrap();
    bob.join(g.join.as_ref().unwrap()).await.unwrap();
    fan.watch(g.watch.as_ref().unwrap(), Some(Seq(1)))
        .await
        .unwrap();
    let head = ada.command(g.game, json!("deal")).await.unwrap();
    let mut seen: Vec<Vec<Value>> = Vec::new();
    for client in [&mut ada, &mut bob, &mut fan] {
        seen.push(upto(client, g.game.0, head.0).await);
    }
    let hands = [hand(0, &seen[0]), hand(1, &seen[1])];
    assert_eq!(hands[0].len(), 3);

    // Three rounds: bob lays first, then ada; each laid card is hidden until the second.
    let mut head = head;
    for (mine, his) in hands[0].iter().zip(&hands[1]) {
        let b = bob.command(g.game, json!({ "play": his })).await.unwrap();
        for (i, client) in [&mut ada, &mut bob, &mut fan].into_iter().enumerate() {
            seen[i].extend(upto(client, g.game.0, b.0).await);
        }
        head = ada.command(g.game, json!({ "play": mine })).await.unwrap();
        for (i, client) in [&mut ada, &mut bob, &mut fan].into_iter().enumerate() {
            seen[i].extend(upto(client, g.game.0, head.0).await);
        }
    }
    let viewers = [
        Viewer::Seat(Seat(0)),
        Viewer::Seat(Seat(1)),
        Viewer::Spectator,
    ];
    for (viewer, events) in viewers.into_iter().zip(&seen) {
        assert_eq!(leaks(viewer, events), 0, "shown to {viewer:?}: {events:?}");
    }
    // What is revealed is revealed to all.
    let reveals = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .filter_map(|e| e["body"]["game"].get("revealed").cloned())
            .collect()
    };
    assert_eq!(reveals(&seen[2]).len(), 3);
    assert_eq!(reveals(&seen[0]), reveals(&seen[2]));
    assert!(seen[2].iter().any(|e| e["body"].get("over").is_some()));

    // A spectator who comes later reads the game from the log: the same holds.
    let mut late = net.connect().await.unwrap();
    late.watch(g.watch.as_ref().unwrap(), Some(Seq(1)))
        .await
        .unwrap();
    let caught_up = upto(&mut late, g.game.0, head.0).await;
    assert_eq!(caught_up.len() as u64, head);
    assert_eq!(leaks(Viewer::Spectator, &caught_up), 0);
    assert_eq!(caught_up, seen[2], "live and caught up show the same");

    // The log keeps everything: the hands and the seed are there.
    let logged: Vec<Value> = log
        .read(g.game.0, 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|(_, r)| rmp_serde::from_slice(r).unwrap())
        .collect();
    assert!(logged[0]["body"]["created"]["seed"].is_u64());
    assert_eq!(
        leaks(Viewer::Spectator, &logged),
        1 + 2 + 3 * 2,
        "the seed, both hands, every laid card"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_game_shows_its_seed() {
    let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
    let mut me = net.connect().await.unwrap();
    for kind in ["tally", "connect4", "colony", "highcard"] {
        let g = me.create(kind, Value::Null).await.unwrap();
        let created = within(me.next_event(g.game)).await.unwrap();
        assert_eq!(seq(&created), 1);
        assert!(created["body"]["created"].is_object(), "{created}");
        assert_eq!(
            created["body"]["created"].get("seed"),
            None,
            "{kind}: {created}"
        );
    }
    hub.shutdown().await.unwrap();
}
