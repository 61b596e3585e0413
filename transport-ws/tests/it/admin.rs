//! The monitor's API: with the admin token only; games in memory with their players and
//! spectators; a game's log with its state at any seq; connections and who is behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use serde_json::{json, Value};
use umpire_ws::client::Format;
use umpire_ws::WsConfig;

use crate::common::{http, http_get, serve, Options};

/// `GET path` with the admin token `token`: the status and the body as JSON.
async fn admin(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = http(addr, &request).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_shows_games_connections_and_a_games_state_at_any_seq() {
    let server = serve(Options {
        ws: WsConfig {
            admin_token: Some("watchtower".into()),
            ..WsConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut ada = server.client(Format::Json).await;
    let game = ada.create("tally", json!({"seats": 2})).await.unwrap();
    for n in [5, 7, -2] {
        ada.command(game.game, json!({ "add": n })).await.unwrap();
    }
    let mut fan = server.client(Format::MsgPack).await;
    fan.watch(game.watch.as_ref().unwrap(), None).await.unwrap();

    // The page itself is public; its data is not.
    let (status, page) = http_get(server.addr, "/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("admin.js"), "{page}");
    assert_eq!(
        admin(server.addr, "/api/admin/overview", "guess").await.0,
        401
    );

    let (status, o) = admin(server.addr, "/api/admin/overview", "watchtower").await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["live"], json!(1));
    let g = &o["games"][0];
    assert_eq!(g["game"], json!(game.game));
    assert_eq!(g["kind"], json!("tally"));
    assert_eq!(g["spectators"], json!(1));
    assert_eq!(g["online"], json!([0]), "ada is connected: {g}");
    assert_eq!(g["players"].as_array().unwrap().len(), 1);
    assert!(g["created"].as_u64().unwrap() > 0);
    let connections = o["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2, "{o}");
    assert!(connections
        .iter()
        .all(|c| c["games"] == json!(1) && c["behind_ms"].is_null()));

    // The log, and the state after the second add: 5 + 7.
    let path = format!("/api/admin/games/{}?at=", game.game);
    let (status, h) = admin(
        server.addr,
        &format!("/api/admin/games/{}", game.game),
        "watchtower",
    )
    .await;
    assert_eq!(status, 200, "{h}");
    let version = h["version"].as_u64().unwrap();
    assert_eq!(h["at"], json!(version));
    assert_eq!(h["state"]["total"], json!(10));
    assert_eq!(h["events"].as_array().unwrap().len() as u64, version);
    let second_add = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["body"]["game"]["amount"].is_i64())
        .nth(1)
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let (_, earlier) = admin(server.addr, &format!("{path}{second_add}"), "watchtower").await;
    assert_eq!(earlier["state"]["total"], json!(12));
    assert_eq!(earlier["at"], json!(second_add));

    let (status, missing) = admin(server.addr, "/api/admin/games/999999", "watchtower").await;
    assert_eq!(status, 404, "{missing}");
    server.stop().await;

    // Without an admin token the monitor's data is off.
    let server = serve(Options::default()).await;
    let (status, body) = admin(server.addr, "/api/admin/overview", "").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("--admin-token"),
        "{body}"
    );
    server.stop().await;
}
