//! From outside, against the binary: what anonymous clients make the server keep stays under
//! its caps while they come, and is gone once their sessions expire; one address is held to
//! its connection cap.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::Server;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Send `msg` and read until the answer carrying its `ref`.
async fn ask(ws: &mut Ws, mut msg: Value) -> Value {
    msg["ref"] = json!(1);
    ws.send(Message::text(msg.to_string())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("an answer")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(text) = frame {
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["ref"] == json!(1) {
                return answer;
            }
        }
    }
}

/// A gauge from `/metrics`.
async fn gauge(server: &Server, name: &str) -> i64 {
    let (_, body) = server.get("/metrics").await;
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// `batch` clients at a time, `total` in all, each sending `msg` and closing; the answers'
/// types (or error codes), counted. Checks the server's counts after each batch.
async fn wave(server: &Server, total: usize, batch: usize, msg: Value) -> Vec<(String, usize)> {
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for _ in 0..total / batch {
        let clients: Vec<_> = (0..batch)
            .map(|_| {
                let (url, msg) = (server.ws(), msg.clone());
                tokio::spawn(async move {
                    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                    let answer = ask(&mut ws, msg).await;
                    let _ = ws.close(None).await;
                    let kind = answer["code"].as_str().or(answer["type"].as_str());
                    kind.unwrap_or("?").to_owned()
                })
            })
            .collect();
        for client in clients {
            *seen.entry(client.await.unwrap()).or_default() += 1;
        }
        let channels = gauge(server, "umpire_channels").await;
        let kept = gauge(server, "umpire_kept_sessions").await;
        assert!(channels <= 300, "{channels} channel streams, over the cap");
        assert!(kept <= 100, "{kept} kept sessions, over the cap");
    }
    seen.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_leave_nothing_behind_once_expired_and_one_address_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--resume-for",
            "6s",
            "--resume-channels-for",
            "4s",
            "--max-channels",
            "300",
            "--max-kept-sessions",
            "100",
            "--max-connections-per-address",
            "150",
            "--subscribes-per-minute-per-address",
            "2000",
        ],
    );

    // A thousand guests subscribe to their own channel and go: never more channels than
    // the cap (those past it are refused), and no session kept for them.
    let subscribe = json!({"type": "subscribe", "channel": "session"});
    let seen = wave(&server, 1000, 100, subscribe).await;
    let count = |seen: &[(String, usize)], what: &str| {
        seen.iter().find(|(k, _)| k == what).map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        count(&seen, "subscribed") + count(&seen, "limit_reached"),
        1000,
        "{seen:?}"
    );
    assert!(count(&seen, "subscribed") >= 300, "{seen:?}");

    // 150 guests watch a game: 100 are kept for resuming, the others refused.
    let (mut creator, _) = tokio_tungstenite::connect_async(server.ws()).await.unwrap();
    let created = ask(
        &mut creator,
        json!({"type": "create", "kind": "tally", "config": null}),
    )
    .await;
    let watch = created["watch"].as_str().unwrap().to_owned();
    drop(creator);
    let seen = wave(&server, 150, 50, json!({"type": "watch", "key": watch})).await;
    assert!(count(&seen, "limit_reached") >= 49, "{seen:?}");

    // One address, past its connection cap: HTTP 429.
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(
            tokio_tungstenite::connect_async(server.ws())
                .await
                .unwrap()
                .0,
        );
    }
    match tokio_tungstenite::connect_async(server.ws()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 429),
        other => panic!("the 151st connection from one address was not refused: {other:?}"),
    }
    drop(held);

    // Once their sessions expire, nothing of theirs is left.
    let started = Instant::now();
    loop {
        let channels = gauge(&server, "umpire_channels").await;
        let kept = gauge(&server, "umpire_kept_sessions").await;
        if channels == 0 && kept == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still {channels} channels and {kept} kept sessions a minute later"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.terminate();
    let mut server = server;
    assert!(server.child.wait().unwrap().success());
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_umpire"))
        .args(["inspect", "--data"])
        .arg(&data)
        .arg("stats")
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.starts_with("1 streams"), "{stats}");
    assert!(!stats.contains("channel:"), "{stats}");
    assert!(stats.contains("\n0 resumable sessions"), "{stats}");
}
