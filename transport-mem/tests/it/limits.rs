//! What one client may make the hub hold is bounded, and each refusal says which bound.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use serde_json::{json, Value};
use umpire_engine::protocol::ErrorCode;
use umpire_hub::{Hub, HubConfig, Limits};
use umpire_mem::MemConnector;

use crate::common::{is_over, paused_runtime, signed_in, with_auth, within};

async fn hub_with(limits: Limits) -> (Hub, MemConnector) {
    let config = HubConfig {
        limits,
        ..HubConfig::default()
    };
    with_auth(config).await
}

fn tally() -> Value {
    json!({"seats": 2})
}

#[test]
fn creating_games_in_a_loop_is_slowed_per_connection_and_per_user() {
    paused_runtime().block_on(async {
        let (hub, net) = hub_with(Limits {
            creates_per_minute: 3,
            ..Limits::default()
        })
        .await;
        let mut ada = signed_in(&net, "ada").await;
        // Refused configs create nothing, and count for nothing.
        for _ in 0..5 {
            let refused = ada
                .create("tally", json!({"seats": 65535}))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Some(ErrorCode::BadMessage), "{refused}");
        }
        for _ in 0..3 {
            ada.create("tally", tally()).await.unwrap();
        }
        let refused = ada.create("tally", tally()).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::RateLimited), "{refused}");
        assert!(
            refused.to_string().contains("3 new games a minute"),
            "{refused}"
        );

        // A second connection of the same user shares her minute; a guest has its own.
        let mut ada2 = signed_in(&net, "ada").await;
        let refused = ada2.create("tally", tally()).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::RateLimited), "{refused}");
        let mut guest = net.connect().await.unwrap();
        guest.create("tally", tally()).await.unwrap();

        // A minute later she may create again.
        tokio::time::sleep(Duration::from_secs(61)).await;
        ada2.create("tally", tally()).await.unwrap();
        hub.shutdown().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_has_a_bounded_number_of_unfinished_games_and_a_finished_one_frees_its_place() {
    let (hub, net) = hub_with(Limits {
        live_games_per_player: 2,
        ..Limits::default()
    })
    .await;
    let mut ada = signed_in(&net, "ada").await;
    let game = ada.create("connect4", Value::Null).await.unwrap();
    ada.create("tally", tally()).await.unwrap();
    let refused = ada.create("tally", tally()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");
    // Other players are not affected.
    let mut bob = signed_in(&net, "bob").await;
    bob.create("tally", tally()).await.unwrap();

    // Ada wins the connect4 game: it no longer counts.
    bob.join(game.join.as_ref().unwrap()).await.unwrap();
    for column in [0, 1, 0, 1, 0, 1, 0] {
        let player = if column == 0 { &mut ada } else { &mut bob };
        player
            .command(game.game, json!({"column": column}))
            .await
            .unwrap();
    }
    ada.create("tally", tally()).await.unwrap();
    let refused = ada.create("tally", tally()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_in_a_bounded_number_of_games_and_leaving_one_makes_room() {
    let (hub, net) = hub_with(Limits {
        games_per_connection: 2,
        ..Limits::default()
    })
    .await;
    let mut games = Vec::new();
    for _ in 0..3 {
        let mut host = net.connect().await.unwrap();
        games.push(host.create("tally", tally()).await.unwrap());
    }
    let mut fan = net.connect().await.unwrap();
    fan.watch(games[0].watch.as_ref().unwrap(), None)
        .await
        .unwrap();
    fan.join(games[1].join.as_ref().unwrap()).await.unwrap();
    let refused = fan
        .watch(games[2].watch.as_ref().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");
    let refused = fan.create("tally", tally()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");
    fan.leave(games[0].game).await.unwrap();
    fan.watch(games[2].watch.as_ref().unwrap(), None)
        .await
        .unwrap();
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cid_longer_than_the_limit_is_refused_and_changes_nothing() {
    let (hub, net) = hub_with(Limits::default()).await;
    let mut me = net.connect().await.unwrap();
    let game = me.create("tally", tally()).await.unwrap();
    let refused = me
        .command_with_cid(game.game, json!({"add": 1}), Some("x".repeat(65)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::BadMessage), "{refused}");
    assert!(refused.to_string().contains("64 bytes"), "{refused}");
    let seq = me
        .command_with_cid(game.game, json!({"add": 1}), Some("x".repeat(64)))
        .await
        .unwrap();
    assert_eq!(
        seq, 4,
        "created, seated, online, then only the accepted add"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_holds_a_bounded_number_of_live_games() {
    let (hub, net) = hub_with(Limits {
        max_live_games: 3,
        ..Limits::default()
    })
    .await;
    for _ in 0..3 {
        let mut someone = net.connect().await.unwrap();
        someone.create("tally", tally()).await.unwrap();
    }
    let mut late = net.connect().await.unwrap();
    let refused = late.create("tally", tally()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");
    assert!(refused.to_string().contains("most live games"), "{refused}");
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_that_would_cost_memory_are_refused_per_kind() {
    let (hub, net) = hub_with(Limits::default()).await;
    let mut me = net.connect().await.unwrap();
    for (kind, config) in [
        ("tally", json!({"seats": 65535})),
        ("colony", json!({"seats": 65535})),
        ("colony", json!({"build_ms": {"x".repeat(65): 1000}})),
        (
            "colony",
            json!({"build_ms": {"mine": 30 * 24 * 3600 * 1000u64}}),
        ),
    ] {
        let refused = me.create(kind, config.clone()).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some(ErrorCode::BadMessage),
            "{kind} {config}: {refused}"
        );
    }
    assert!(hub.live_games().is_empty(), "nothing was created");
    // The most seats a tally may have cost nothing until they are taken.
    me.create("tally", json!({"seats": 1024})).await.unwrap();
    hub.shutdown().await.unwrap();
}

#[test]
fn an_idle_game_expires_for_everyone_leaves_memory_and_stays_readable() {
    paused_runtime().block_on(async {
        let (hub, net) = hub_with(Limits {
            expire_idle_games: Some(Duration::from_secs(600)),
            live_games_per_player: 2,
            ..Limits::default()
        })
        .await;
        let mut ada = signed_in(&net, "ada").await;
        let idle = ada.create("tally", tally()).await.unwrap();
        ada.command(idle.game, json!({"add": 5})).await.unwrap();
        // A colony with a build under way for 30 minutes: busy until it completes.
        let busy = ada
            .create("colony", json!({"build_ms": {"mine": 1_800_000}}))
            .await
            .unwrap();
        ada.command(busy.game, json!({"order": {"building": "mine"}}))
            .await
            .unwrap();
        let mut fan = net.connect().await.unwrap();
        fan.watch(idle.watch.as_ref().unwrap(), None).await.unwrap();
        within(fan.events(idle.game, 4)).await.unwrap();

        // Ten quiet minutes: the tally ends as expired, for its spectator too.
        tokio::time::sleep(Duration::from_secs(601)).await;
        let over = within(fan.next_event(idle.game)).await.unwrap();
        assert!(is_over(&over), "{over}");
        assert_eq!(over["body"]["over"]["outcome"], json!("expired"));
        assert_eq!(hub.live_games(), vec![busy.game], "the tally left memory");
        let refused = ada.command(idle.game, json!({"add": 1})).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::GameOver), "{refused}");
        // Its place is Ada's again; the new game counts, so she is at her limit of two.
        ada.create("tally", tally()).await.unwrap();
        let refused = ada.create("tally", tally()).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");

        // The finished game is still there for a replay.
        let mut late = net.connect().await.unwrap();
        late.watch(idle.watch.as_ref().unwrap(), None)
            .await
            .unwrap();
        let replay = within(late.events(idle.game, 5)).await.unwrap();
        assert_eq!(replay[3]["body"]["game"]["total"], json!(5));
        assert!(is_over(&replay[4]));

        // The colony, idle for over 26 minutes but with its build under way, is still live.
        tokio::time::sleep(Duration::from_secs(1_000)).await;
        assert!(hub.live_games().contains(&busy.game));
        // Its build completes at 30 minutes; ten idle minutes later it expires.
        tokio::time::sleep(Duration::from_secs(1_000)).await;
        assert!(!hub.live_games().contains(&busy.game));
        let mut late = net.connect().await.unwrap();
        late.watch(busy.watch.as_ref().unwrap(), None)
            .await
            .unwrap();
        // Created, seated, online, ordered, scheduled, fired, completed, expired.
        let log = within(late.events(busy.game, 8)).await.unwrap();
        assert!(
            log[6]["body"]["game"].get("completed").is_some(),
            "{}",
            log[6]
        );
        assert_eq!(log[7]["body"]["over"]["outcome"], json!("expired"));
        hub.shutdown().await.unwrap();
    });
}
