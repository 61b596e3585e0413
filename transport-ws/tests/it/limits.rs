//! Limits and safety over real sockets: rate limit, capacity, Origin, authentication, heartbeat.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use crate::common::{serve, within, Options};
use serde_json::{json, Value};
use umpire_client::ClientError;
use umpire_engine::protocol::{ClientMsg, ErrorCode, ServerMsg};
use umpire_hub::HubConfig;
use umpire_ws::client::{connect, connect_with, Format};
use umpire_ws::WsConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_gets_rate_limited_and_sustained_abuse_is_closed_with_1008() {
    let ws = WsConfig {
        rate_per_sec: 5,
        rate_burst: 5,
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let mut client = server.client(Format::Json).await;
    for n in 0..10 {
        client
            .send(ClientMsg::Ping {
                r#ref: Some(json!(n)),
            })
            .await
            .unwrap();
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..10 {
        match within(client.recv()).await.unwrap() {
            ServerMsg::Pong { .. } => pongs += 1,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs + limited, 10);
    assert!(
        (5..=6).contains(&pongs),
        "the burst of 5 passes, the rest is limited: {pongs} pongs"
    );

    // Keep hammering: past a burst's worth of refusals the server gives up on the client.
    for n in 0..20 {
        if client
            .send(ClientMsg::Ping {
                r#ref: Some(json!(n)),
            })
            .await
            .is_err()
        {
            break;
        }
    }
    while within(client.recv()).await.is_ok() {}
    assert_eq!(client.close_reason().map(|(code, _)| *code), Some(1008));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_the_upgrade_is_refused_with_503() {
    let ws = WsConfig {
        max_connections: 2,
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let first = server.client(Format::Json).await;
    let _second = server.client(Format::Json).await;
    match connect(&server.url("/ws"), Format::Json).await {
        Err(ClientError::Connect { status, .. }) => assert_eq!(status, Some(503)),
        other => panic!("expected 503, got {other:?}"),
    }
    // A place frees up when a connection ends.
    drop(first);
    let mut reconnected = None;
    for _ in 0..200 {
        match connect(&server.url("/ws"), Format::Json).await {
            Ok(client) => {
                reconnected = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let mut third = reconnected.expect("a place freed up after a client left");
    assert!(matches!(
        within(third.request(ClientMsg::Ping { r#ref: None }))
            .await
            .unwrap(),
        ServerMsg::Pong { .. }
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_open_a_websocket() {
    let ws = WsConfig {
        allowed_origins: vec!["https://games.example".into()],
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let url = server.url("/ws");
    match connect_with(&url, Format::Json, Some("https://evil.example")).await {
        Err(ClientError::Connect { status, .. }) => assert_eq!(status, Some(403)),
        other => panic!("expected 403, got {other:?}"),
    }
    let own = format!("http://{}", server.addr);
    for origin in [
        None,
        Some("http://localhost:3000"),
        Some(own.as_str()),
        Some("https://games.example"),
    ] {
        let mut client = connect_with(&url, Format::Json, origin)
            .await
            .unwrap_or_else(|e| panic!("{origin:?}: {e}"));
        assert!(matches!(
            within(client.request(ClientMsg::Ping { r#ref: None }))
                .await
                .unwrap(),
            ServerMsg::Pong { .. }
        ));
    }
    server.stop().await;
}

pub(crate) fn token(secret: &str, sub: &str, expires_in: i64) -> String {
    signed(secret, &json!({"sub": sub, "exp": now() + expires_in}))
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn signed(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_names_the_player_and_a_bad_one_closes_with_1008() {
    const SECRET: &str = "test-secret";
    let server = serve(Options {
        secret: Some(SECRET),
        ..Options::default()
    })
    .await;

    let mut ada = server.client(Format::Json).await;
    let hello = ClientMsg::Hello {
        token: token(SECRET, "ada", 600),
        r#ref: None,
    };
    match within(ada.request(hello)).await.unwrap() {
        ServerMsg::Welcome { user, .. } => assert_eq!(user, "ada"),
        other => panic!("expected welcome, got {other:?}"),
    }
    let game = ada.create("tally", Value::Null).await.unwrap();
    let events = within(ada.events(game.game, 2)).await.unwrap();
    assert_eq!(
        events[1]["body"]["seated"]["player"], "user:ada",
        "the seat is held by the token's user, in the users' name space"
    );

    // A token not valid before a time within the clock leeway (30 s) is taken.
    let mut early = server.client(Format::Json).await;
    let soon = signed(
        SECRET,
        &json!({"sub": "bo", "exp": now() + 600, "nbf": now() + 10}),
    );
    let hello = ClientMsg::Hello {
        token: soon,
        r#ref: None,
    };
    assert!(matches!(
        within(early.request(hello)).await.unwrap(),
        ServerMsg::Welcome { .. }
    ));

    let later = signed(
        SECRET,
        &json!({"sub": "eve", "exp": now() + 600, "nbf": now() + 600}),
    );
    let long = signed(SECRET, &json!({"sub": "e".repeat(129), "exp": now() + 600}));
    for bad in [
        token(SECRET, "eve", -600),
        token("another-secret", "eve", 600),
        "garbage".to_owned(),
        later,
        long,
        token(SECRET, "", 600),
    ] {
        let mut eve = server.client(Format::Json).await;
        let answer = within(eve.request(ClientMsg::Hello {
            token: bad,
            r#ref: None,
        }))
        .await
        .unwrap();
        assert!(
            matches!(
                answer,
                ServerMsg::Error {
                    code: ErrorCode::Unauthorized,
                    ..
                }
            ),
            "{answer:?}"
        );
        while within(eve.recv()).await.is_ok() {}
        assert_eq!(eve.close_reason().map(|(code, _)| *code), Some(1008));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_auth_nothing_but_hello_and_ping_works_anonymously() {
    const SECRET: &str = "s3";
    let hub = HubConfig {
        require_auth: true,
        ..HubConfig::default()
    };
    let server = serve(Options {
        secret: Some(SECRET),
        hub,
        ..Options::default()
    })
    .await;
    let mut client = server.client(Format::MsgPack).await;
    assert!(matches!(
        within(client.request(ClientMsg::Ping { r#ref: None }))
            .await
            .unwrap(),
        ServerMsg::Pong { .. }
    ));
    let refused = client.create("tally", Value::Null).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized));
    within(client.request(ClientMsg::Hello {
        token: token(SECRET, "bo", 60),
        r#ref: None,
    }))
    .await
    .unwrap();
    client.create("tally", Value::Null).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_and_a_live_one_is_kept() {
    let ws = WsConfig {
        ping_every: Duration::from_secs(3600),
        idle_timeout: Duration::from_millis(300),
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let mut silent = server.client(Format::Json).await;
    assert!(within(silent.recv()).await.is_err(), "closed for silence");
    assert_eq!(silent.close_reason().map(|(code, _)| *code), Some(1008));
    server.stop().await;

    // Pinged every 100 ms, a client that answers pings (tungstenite does, while reading) stays.
    let ws = WsConfig {
        ping_every: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let mut live = server.client(Format::Json).await;
    let waited = tokio::time::timeout(Duration::from_millis(1500), live.recv()).await;
    assert!(
        waited.is_err(),
        "nothing but pings arrived, and the connection stayed open: {waited:?}"
    );
    assert!(matches!(
        within(live.request(ClientMsg::Ping { r#ref: None }))
            .await
            .unwrap(),
        ServerMsg::Pong { .. }
    ));
    server.stop().await;
}

/// A plain request naming `host`; returns the status code.
async fn status_for_host(addr: std::net::SocketAddr, path: &str, host: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: http://{host}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0; 12];
    within(stream.read_exact(&mut head)).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_a_rebound_host_name_is_refused_and_allowed_names_are_served() {
    let ws = WsConfig {
        allowed_hosts: vec!["play.example".into()],
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    // evil.example resolved to this server: its page's Origin matches its Host, and both
    // name the attacker. Neither the pages nor the WebSocket answer it.
    for path in ["/", "/ws", "/metrics"] {
        assert_eq!(
            status_for_host(server.addr, path, "evil.example:8080").await,
            403,
            "{path}"
        );
    }
    assert_eq!(
        status_for_host(server.addr, "/ws", "play.example:8080").await,
        101
    );
    let own = server.addr.to_string();
    assert_eq!(status_for_host(server.addr, "/ws", &own).await, 101);
    assert_eq!(status_for_host(server.addr, "/ws", "localhost").await, 101);
    server.stop().await;
}
