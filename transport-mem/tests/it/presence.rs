//! Presence: a seated player's connection going and coming back are events everyone in the
//! game sees; spectators are counted without an event each.

use std::sync::Arc;

use crate::common::{paused_runtime, start, within};
use serde_json::{json, Value};
use umpire_hub::HubConfig;
use umpire_store::MemLog;

fn presence(env: &Value) -> Option<(u64, bool)> {
    let p = env["body"].get("presence")?;
    Some((p["seat"].as_u64()?, p["online"].as_bool()?))
}

#[test]
fn a_player_going_and_coming_back_is_seen_by_everyone_in_the_game() {
    paused_runtime().block_on(async {
        let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
        let mut red = net.connect().await.unwrap();
        let game = red.create("connect4", Value::Null).await.unwrap();
        let mut yellow = net.connect().await.unwrap();
        let seat = yellow.join(game.join.as_deref().unwrap()).await.unwrap();
        let mut fan = net.connect().await.unwrap();
        fan.watch(game.watch.as_deref().unwrap(), None)
            .await
            .unwrap();

        // Seats 0 and 1 online as they are taken (Created, Seated, online, Seated, online).
        within(red.events(game.game, 5)).await.unwrap();
        let start = within(fan.events(game.game, 5)).await.unwrap();
        let online: Vec<_> = start.iter().filter_map(presence).collect();
        assert_eq!(online, vec![(0, true), (1, true)]);

        // Yellow's connection drops: everyone sees seat 1 offline.
        drop(yellow);
        for client in [&mut red, &mut fan] {
            let env = within(client.events(game.game, 1)).await.unwrap();
            assert_eq!(presence(&env[0]), Some((1, false)), "{}", env[0]);
        }
        // Yellow takes the seat back on a new connection: online again, and can play.
        let mut yellow = net.connect().await.unwrap();
        yellow.join(&seat.token).await.unwrap();
        for client in [&mut red, &mut fan] {
            let env = within(client.events(game.game, 1)).await.unwrap();
            assert_eq!(presence(&env[0]), Some((1, true)), "{}", env[0]);
        }
        red.command(game.game, json!({"column": 3})).await.unwrap();
        yellow
            .command(game.game, json!({"column": 3}))
            .await
            .unwrap();

        // A second connection on the same seat does not make it online twice, and its
        // going does not make it offline.
        let mut again = net.connect().await.unwrap();
        again.join(&seat.token).await.unwrap();
        drop(again);
        red.command(game.game, json!({"column": 4})).await.unwrap();
        let log = within(fan.events_until(game.game, |e| e["seq"] == json!(10)))
            .await
            .unwrap();
        assert!(log.iter().all(|e| presence(e).is_none()), "{log:?}");
        assert_eq!(
            hub.inspect(game.game).await.unwrap().whole["online"],
            json!([0, 1])
        );
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn spectators_are_counted_for_everyone_without_an_event_each() {
    paused_runtime().block_on(async {
        let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
        let mut host = net.connect().await.unwrap();
        let game = host.create("tally", json!({"seats": 2})).await.unwrap();
        let version = hub.inspect(game.game).await.unwrap().version;
        let watch = game.watch.clone().unwrap();
        let mut fans = Vec::new();
        for _ in 0..30 {
            let mut fan = net.connect().await.unwrap();
            fan.watch(&watch, None).await.unwrap();
            fans.push(fan);
        }
        within(host.await_spectators(game.game, 30)).await.unwrap();
        within(fans[0].await_spectators(game.game, 30))
            .await
            .unwrap();
        fans.truncate(10);
        within(host.await_spectators(game.game, 10)).await.unwrap();
        // A newcomer is told the count at once, itself included once it is counted.
        let mut late = net.connect().await.unwrap();
        late.watch(&watch, None).await.unwrap();
        within(late.await_spectators(game.game, 11)).await.unwrap();
        assert_eq!(
            hub.inspect(game.game).await.unwrap().version,
            version,
            "spectators come and go without a logged event"
        );
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn after_a_restart_players_are_offline_until_they_come_back() {
    let log = Arc::new(MemLog::new());
    let (game, token) = paused_runtime().block_on(async {
        let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
        let mut ada = net.connect().await.unwrap();
        let game = ada.create("tally", json!({"seats": 2})).await.unwrap();
        // A crash: the hub stops without anyone disconnecting first.
        hub.shutdown().await.unwrap();
        (game.game, game.token)
    });
    paused_runtime().block_on(async {
        let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
        let mut ada = net.connect().await.unwrap();
        ada.join(&token).await.unwrap();
        let envs = within(ada.events(game, 5)).await.unwrap();
        let seen: Vec<_> = envs.iter().filter_map(presence).collect();
        assert_eq!(seen, vec![(0, true), (0, false), (0, true)]);
        hub.shutdown().await.unwrap();
    });
}
