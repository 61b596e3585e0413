//! Sessions over WebSocket: slow spectators catch up without slowing anyone, resume after a
//! restart gives exactly the missed events, and channel notices wait for users who are away.

use std::sync::Arc;
use std::time::Instant;

use crate::common::{serve, serve_on, stalled_spectator, within, Options};
use crate::limits::token;
use futures_util::StreamExt as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use umpire_engine::protocol::{ClientMsg, ServerMsg};
use umpire_store::{Log, MemLog};
use umpire_ws::client::{connect, Format};
use umpire_ws::WsConfig;

fn seqs(envs: &[Value]) -> Vec<u64> {
    envs.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_that_stops_reading_catches_up_with_every_event_and_never_slows_the_players() {
    let server = serve(Options {
        ws: WsConfig {
            rate_per_sec: 0,
            ..WsConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    let game = player.create("tally", json!({"seats": 2})).await.unwrap();
    let mut stalled = stalled_spectator(&server, game.watch.as_deref().unwrap()).await;
    // The players go on at full speed while the spectator reads nothing.
    let started = Instant::now();
    for _ in 0..2000 {
        within(player.command(game.game, json!({"add": 1})))
            .await
            .unwrap();
    }
    let took = started.elapsed();
    // Now the spectator reads: every event once, in order, from the log where it fell behind.
    let mut seen = Vec::new();
    while seen.len() < 2003 {
        let Some(Ok(Message::Text(text))) = within(stalled.next()).await else {
            panic!(
                "the spectator's connection ended after {} events",
                seen.len()
            );
        };
        let msg: Value = serde_json::from_str(&text).unwrap();
        if msg["type"] == "event" {
            seen.push(msg["env"].clone());
        }
    }
    assert_eq!(seqs(&seen), (1..=2003).collect::<Vec<_>>());
    eprintln!("2000 adds took {took:?} with a stalled spectator");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_a_server_restart_delivers_exactly_the_missed_events() {
    let log: Arc<dyn Log> = Arc::new(MemLog::new());
    let server = serve(Options {
        log: Arc::clone(&log),
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    let game = player.create("tally", json!({"seats": 2})).await.unwrap();
    let mut fan = server.client(Format::MsgPack).await;
    fan.watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();
    for _ in 0..3 {
        player.command(game.game, json!({"add": 1})).await.unwrap();
    }
    assert_eq!(
        seqs(&within(fan.events(game.game, 6)).await.unwrap()).last(),
        Some(&6)
    );
    server.stop().await;

    let server = serve(Options {
        log: Arc::clone(&log),
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    player.join(&game.token).await.unwrap();
    player.command(game.game, json!({"add": 10})).await.unwrap();
    // The spectator carries on over a new connection to the new server.
    let wire = connect(&server.url("/ws"), Format::MsgPack)
        .await
        .unwrap()
        .into_wire();
    drop(fan.replace_wire(wire));
    let resumed = within(fan.resume(None)).await.unwrap();
    assert!(
        matches!(resumed, ServerMsg::Resumed { ref games, .. } if games.len() == 1),
        "{resumed:?}"
    );
    // After seq 6: the player offline at the restart (7), back (8), the add (9). Then live.
    let missed = within(fan.events(game.game, 3)).await.unwrap();
    assert_eq!(seqs(&missed), vec![7, 8, 9]);
    assert_eq!(missed[2]["body"]["game"]["total"], json!(13));
    player.command(game.game, json!({"add": 1})).await.unwrap();
    assert_eq!(
        seqs(&within(fan.events(game.game, 1)).await.unwrap()),
        vec![10]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_to_an_offline_user_arrives_when_they_return() {
    const SECRET: &str = "sessions-secret";
    let server = serve(Options {
        secret: Some(SECRET),
        ws: WsConfig {
            admin_token: Some("admin-secret".into()),
            ..WsConfig::default()
        },
        ..Options::default()
    })
    .await;
    // Published over HTTP while Ada is not connected.
    let (status, body) = post(
        &server.addr,
        Some("admin-secret"),
        r#"{"channel": "user:ada", "data": {"text": "your mine is built"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"channel": "user:ada", "seq": 1})
    );

    let mut ada = server.client(Format::Json).await;
    let hello = ClientMsg::Hello {
        token: token(SECRET, "ada", 600),
        r#ref: None,
    };
    assert!(matches!(
        ada.request(hello).await.unwrap(),
        ServerMsg::Welcome { .. }
    ));
    let (_, stream) = ada.subscribe("user:ada", None).await.unwrap();
    let env = within(ada.next_event(stream)).await.unwrap();
    assert_eq!(
        env["body"]["notice"]["data"],
        json!({"text": "your mine is built"})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_over_http_needs_the_admin_token_and_a_channel() {
    let server = serve(Options {
        ws: WsConfig {
            admin_token: Some("admin-secret".into()),
            ..WsConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut fan = server.client(Format::Json).await;
    let (_, stream) = fan.subscribe("broadcast", None).await.unwrap();
    let notice = r#"{"channel": "broadcast", "data": "restart at noon"}"#;
    assert_eq!(post(&server.addr, None, notice).await.0, 401);
    assert_eq!(
        post(&server.addr, Some("admin-secreT"), notice).await.0,
        401
    );
    let (status, body) = post(
        &server.addr,
        Some("admin-secret"),
        r#"{"channel": "lobby"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        post(&server.addr, Some("admin-secret"), "not json").await.0,
        400
    );
    assert_eq!(
        post(&server.addr, Some("admin-secret"), notice).await.0,
        200
    );
    let env = within(fan.next_event(stream)).await.unwrap();
    assert_eq!(env["body"]["notice"]["data"], json!("restart at noon"));
    server.stop().await;

    // Without an admin token, publishing over HTTP is off.
    let server = serve(Options::default()).await;
    let (status, body) = post(&server.addr, Some(""), notice).await;
    assert_eq!(status, 404);
    assert!(body.contains("--admin-token"), "{body}");
    server.stop().await;
}

/// `POST /api/publish` with `body`; the status and the body of the answer.
async fn post(addr: &std::net::SocketAddr, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    crate::common::http(*addr, &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_reconnects_by_itself_and_carries_on_exactly() {
    let log: Arc<dyn Log> = Arc::new(MemLog::new());
    let options = || Options {
        log: Arc::clone(&log),
        ..Options::default()
    };
    let server = serve(options()).await;
    let url = server.url("/ws");
    let dial = move || -> umpire_client::Dial<umpire_ws::client::WsWire> {
        let url = url.clone();
        Arc::new(move || {
            let url = url.clone();
            Box::pin(async move { Ok(connect(&url, Format::Json).await?.into_wire()) })
        })
    };
    let redial = |d| umpire_client::Redial::new(d);
    let mut player = server
        .client(Format::Json)
        .await
        .reconnect_with(redial(dial()));
    let game = player.create("tally", json!({"seats": 2})).await.unwrap();
    let mut fan = server
        .client(Format::MsgPack)
        .await
        .reconnect_with(redial(dial()));
    fan.watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();

    // The player adds 40 times with cids while the server restarts under it.
    let id = game.game;
    let adds = tokio::spawn(async move {
        for n in 0..40 {
            let cid = Some(format!("add-{n}"));
            player
                .command_with_cid(id, json!({"add": 1}), cid)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        player
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let addr = server.addr;
    server.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let server = serve_on(options(), addr).await;
    let _player = within(adds).await.unwrap();

    // Every add is in the log once; the spectator saw exactly the log.
    let total = server.hub.inspect(id).await.unwrap();
    assert_eq!(total.state["total"], json!(40));
    let version = total.version.0;
    let seen = within(fan.events(id, usize::try_from(version).unwrap()))
        .await
        .unwrap();
    assert_eq!(seqs(&seen), (1..=version).collect::<Vec<_>>());
    let records = log.read(id.0, 1, usize::MAX).await.unwrap();
    let logged: Vec<Value> = records
        .iter()
        .map(|(_, r)| umpire_engine::protocol::as_shown(rmp_serde::from_slice(r).unwrap()))
        .collect();
    assert_eq!(seen, logged);
    server.stop().await;
}
