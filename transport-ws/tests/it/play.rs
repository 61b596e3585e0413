//! Quick play and the open games over real sockets: `play` in JSON and MessagePack, the list
//! at `GET /api/games`, a waiting player's closed socket giving its seat back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use serde_json::{json, Value};
use umpire_engine::protocol::ErrorCode;
use umpire_ws::client::Format;

use crate::common::{http_get, serve, within, Options};

/// `GET /api/games?kind=K` until `ok` says so; the games.
async fn listed_until(
    addr: std::net::SocketAddr,
    query: &str,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    within(async {
        loop {
            let (status, body) = http_get(addr, &format!("/api/games{query}")).await;
            assert_eq!(status, 200, "{body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            let games = body["games"].as_array().cloned().unwrap_or_default();
            if ok(&games) {
                return games;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_asking_at_once_share_one_game_and_the_list_follows() {
    let server = serve(Options::default()).await;
    let mut private = server.client(Format::Json).await;
    private.create("connect4", Value::Null).await.unwrap();
    let mut a = server.client(Format::Json).await;
    let first = within(a.play("connect4", Value::Null, Value::Null))
        .await
        .unwrap();
    assert!(first.join.is_some(), "the first creates and waits");
    let games = listed_until(server.addr, "?kind=connect4", |g| g.len() == 1).await;
    assert_eq!(
        games[0]["game"],
        json!(first.game.0),
        "only the open game, not the private one"
    );
    assert_eq!(
        (games[0]["taken"].clone(), games[0]["seats"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(games[0]["join"], json!(first.join.clone().unwrap()));
    // Two more at once, one in MessagePack: one takes the waiting seat, one opens a game.
    let mut b = server.client(Format::MsgPack).await;
    let mut c = server.client(Format::Json).await;
    let (x, y) = tokio::join!(
        within(b.play("connect4", Value::Null, Value::Null)),
        within(c.play("connect4", Value::Null, Value::Null))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let joined: Vec<_> = [&x, &y].into_iter().filter(|g| g.join.is_none()).collect();
    assert_eq!(joined.len(), 1, "one joined: {x:?} {y:?}");
    assert_eq!(joined[0].game, first.game);
    let games = listed_until(server.addr, "?kind=connect4", |g| {
        g.len() == 1 && g[0]["game"] != json!(first.game.0)
    })
    .await;
    assert_eq!(games[0]["taken"], json!(1));
    // Every kind, and a kind nobody registered.
    let all = listed_until(server.addr, "", |g| g.len() == 1).await;
    assert_eq!(all[0]["kind"], json!("connect4"));
    let (status, body) = http_get(server.addr, "/api/games?kind=chess").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("chess"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_player_whose_socket_closes_is_not_matched() {
    let server = serve(Options::default()).await;
    let mut a = server.client(Format::Json).await;
    let waited = within(a.play("highcard", Value::Null, Value::Null))
        .await
        .unwrap();
    listed_until(server.addr, "?kind=highcard", |g| g.len() == 1).await;
    drop(a);
    listed_until(server.addr, "?kind=highcard", <[Value]>::is_empty).await;
    let mut b = server.client(Format::Json).await;
    let next = within(b.play("highcard", Value::Null, Value::Null))
        .await
        .unwrap();
    assert_ne!(next.game, waited.game);
    assert!(next.join.is_some(), "b waits in a new game");
    // A kind nobody registered.
    let refused = b.play("nope", Value::Null, Value::Null).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotFound));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_asking_at_once_make_one_hundred_full_games() {
    // All from 127.0.0.1: the per-address create quota is raised for this one address.
    let mut options = Options::default();
    options.hub.limits.creates_per_minute_per_address = 1000;
    let server = serve(options).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let format = if i % 2 == 0 {
            Format::Json
        } else {
            Format::MsgPack
        };
        let mut client = server.client(format).await;
        tasks.spawn(async move {
            let game = within(client.play("connect4", Value::Null, Value::Null))
                .await
                .unwrap();
            (client, game)
        });
    }
    let mut games: std::collections::BTreeMap<u64, Vec<u16>> = Default::default();
    let mut clients = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (client, game) = done.unwrap();
        games.entry(game.game.0).or_default().push(game.seat.0);
        clients.push(client);
    }
    assert_eq!(games.len(), 100);
    for (game, mut seats) in games {
        seats.sort_unstable();
        assert_eq!(seats, vec![0, 1], "game {game}");
    }
    listed_until(server.addr, "?kind=connect4", <[Value]>::is_empty).await;
    drop(clients);
    server.stop().await;
}
