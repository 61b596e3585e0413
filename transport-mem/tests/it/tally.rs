//! Seed 004's shared running total, under contention.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use crate::common::{game_event, start, within};
use serde_json::{json, Value};
use umpire_hub::HubConfig;
use umpire_store::SledLog;

const CLIENTS: usize = 200;
const EXPECTED: i64 = 200 * (50 * 51 / 2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_adding_at_once_all_end_at_255000() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, net) = start(
        Arc::new(SledLog::open(dir.path()).unwrap()),
        HubConfig::default(),
        None,
    )
    .await;
    let mut host = net.connect().await.unwrap();
    let game = host.create("tally", Value::Null).await.unwrap();
    let key = game.join.clone().unwrap();

    let mut players = Vec::new();
    for _ in 0..CLIENTS {
        let (net, key) = (net.clone(), key.clone());
        players.push(tokio::spawn(async move {
            let mut me = net.connect().await.unwrap();
            let seat = me.join(&key).await.unwrap();
            for n in 1..=50 {
                me.command(seat.game, json!({ "add": n })).await.unwrap();
            }
            // Read (and drop) events until the total reaches the end; return the last total.
            loop {
                let env = me.next_event(seat.game).await.unwrap();
                if let Some(total) = game_event(&env).and_then(|e| e["total"].as_i64()) {
                    if total == EXPECTED {
                        return total;
                    }
                }
            }
        }));
    }
    for player in players {
        assert_eq!(within(player).await.unwrap(), EXPECTED);
    }
    let seen = within(host.events_until(game.game, |env| {
        game_event(env).is_some_and(|e| e["total"] == EXPECTED)
    }))
    .await
    .unwrap();
    let additions: Vec<&Value> = seen.iter().filter_map(game_event).collect();
    assert_eq!(
        additions.len(),
        CLIENTS * 50,
        "every addition reached the host once"
    );
    let state = hub.inspect(game.game).await.unwrap().state;
    assert_eq!(state, json!({"total": EXPECTED, "additions": CLIENTS * 50}));
}
