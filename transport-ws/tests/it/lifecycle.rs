//! The tutorial protocol end to end; graceful shutdown; restart on the same data folder; a
//! client that never reads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    assert_told_closing_then_1001, http_get, serve, stalled_spectator, within, Options,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use umpire_store::SledLog;
use umpire_ws::client::Format;

type Tutorial = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn tutorial(url: &str) -> Tutorial {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn say(ws: &mut Tutorial, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.unwrap();
}

async fn hear(ws: &mut Tutorial) -> Value {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("the tutorial connection ended: {other:?}"),
        }
    }
}

fn play(player: &str, column: u64, row: u64) -> Value {
    json!({"type": "play", "player": player, "column": column, "row": row})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_protocol_plays_a_game_with_a_late_spectator() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let server = serve(Options {
        log,
        ..Options::default()
    })
    .await;
    let url = server.url("/tutorial");

    let mut first = tutorial(&url).await;
    say(&mut first, json!({"type": "init"})).await;
    let init = hear(&mut first).await;
    assert_eq!(init["type"], "init");
    let (join, watch) = (
        init["join"].as_str().unwrap().to_owned(),
        init["watch"].as_str().unwrap().to_owned(),
    );
    assert_ne!(join, watch);

    // Red plays before yellow even joins, as the tutorial allows; yellow gets it replayed.
    say(&mut first, json!({"type": "play", "column": 3})).await;
    assert_eq!(hear(&mut first).await, play("red", 3, 0));
    let mut second = tutorial(&url).await;
    say(&mut second, json!({"type": "init", "join": join})).await;
    assert_eq!(hear(&mut second).await, play("red", 3, 0));

    // Illegal moves answer the mover alone.
    say(&mut first, json!({"type": "play", "column": 4})).await;
    assert_eq!(
        hear(&mut first).await,
        json!({"type": "error", "message": "It isn't your turn."})
    );

    say(&mut second, json!({"type": "play", "column": 3})).await;
    for ws in [&mut first, &mut second] {
        assert_eq!(hear(ws).await, play("yellow", 3, 1));
    }
    // A spectator arriving mid-game receives the moves so far.
    let mut spectator = tutorial(&url).await;
    say(&mut spectator, json!({"type": "init", "watch": watch})).await;
    assert_eq!(hear(&mut spectator).await, play("red", 3, 0));
    assert_eq!(hear(&mut spectator).await, play("yellow", 3, 1));

    // Red already holds (3,0); red plays 2, 1, 0 along the bottom row (yellow stacks on top)
    // and wins with four in a row.
    let moves = [
        ("red", 2),
        ("yellow", 2),
        ("red", 1),
        ("yellow", 1),
        ("red", 0),
    ];
    for (player, column) in moves {
        let ws = if player == "red" {
            &mut first
        } else {
            &mut second
        };
        say(ws, json!({"type": "play", "column": column})).await;
        for ws in [&mut first, &mut second, &mut spectator] {
            assert_eq!(hear(ws).await["player"], player);
        }
    }
    for ws in [&mut first, &mut second, &mut spectator] {
        assert_eq!(hear(ws).await, json!({"type": "win", "player": "red"}));
    }
    server.stop().await;

    // After a restart on the same folder the watch key still replays the whole game, through
    // the tutorial protocol and the native one.
    let log = Arc::new(SledLog::open_retrying(dir.path(), Duration::from_secs(10)).unwrap());
    // Its clients never learn a resume token: none of the three was kept for resuming.
    assert_eq!(log.session_count().unwrap(), 0);
    let server = serve(Options {
        log,
        ..Options::default()
    })
    .await;
    let mut replay = tutorial(&server.url("/tutorial")).await;
    say(&mut replay, json!({"type": "init", "watch": watch})).await;
    let mut plays = 0;
    loop {
        let msg = hear(&mut replay).await;
        if msg["type"] == "win" {
            break;
        }
        plays += 1;
    }
    assert_eq!(plays, 7);
    let mut native = server.client(Format::Json).await;
    let game = native.watch(&watch, None).await.unwrap();
    let history = within(native.events_until(game, |e| e["body"].get("over").is_some()))
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        13,
        "created, two seats each with its player online, seven moves, the outcome"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_closing_closes_with_1001_and_stops_listening() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let server = serve(Options {
        log,
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    let game = player.create("tally", Value::Null).await.unwrap();
    let seq = player.command(game.game, json!({"add": 7})).await.unwrap();
    let crate::common::TestServer { addr, hub, task } = server;
    hub.shutdown().await.unwrap();
    assert_told_closing_then_1001(&mut player).await;
    within(task).await.unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
    drop(hub);

    // Everything acknowledged is in the log.
    let log = SledLog::open_retrying(dir.path(), Duration::from_secs(10)).unwrap();
    assert_eq!(log.version(game.game.0).unwrap(), seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_up_the_others() {
    // No rate limit: one player sends its commands as fast as the acks come back.
    let ws = umpire_ws::WsConfig {
        rate_per_sec: 0,
        send_buffer_bytes: Some(4096),
        ..umpire_ws::WsConfig::default()
    };
    let hub = umpire_hub::HubConfig {
        queue_len: 16,
        ..umpire_hub::HubConfig::default()
    };
    let server = serve(Options {
        ws,
        hub,
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    let game = player.create("tally", Value::Null).await.unwrap();
    let watch = game.watch.clone().unwrap();

    // A spectator with a tiny receive window that subscribes and then never reads again, so the
    // server's socket buffers toward it fill up and its queue overflows.
    let mut stalled = stalled_spectator(&server, &watch).await;
    let mut reader = server.client(Format::MsgPack).await;
    reader.watch(&watch, None).await.unwrap();

    const COMMANDS: u64 = 3000;
    for n in 0..COMMANDS {
        within(player.command(game.game, json!({"add": n})))
            .await
            .unwrap();
    }
    let last = 2 + COMMANDS;
    let seen = within(reader.events_until(game.game, |e| e["seq"] == last))
        .await
        .unwrap();
    assert_eq!(
        seen.len() as u64,
        last,
        "the other spectator got every event"
    );
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    assert!(
        metrics.contains(&format!("umpire_commands_accepted_total {COMMANDS}")),
        "{metrics}"
    );
    let lagged: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("umpire_subscribers_lagged_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(
        lagged > 0,
        "the stalled client really fell behind (its queue overflowed)"
    );

    // Once it reads again, it catches up on everything, in order, from the log.
    let mut seqs = Vec::new();
    while seqs.last() != Some(&last) {
        match within(stalled.next()).await {
            Some(Ok(Message::Text(text))) => {
                let msg: Value = serde_json::from_str(text.as_str()).unwrap();
                if msg["type"] == "event" {
                    seqs.push(msg["env"]["seq"].as_u64().unwrap());
                }
            }
            Some(Ok(_)) => {}
            other => panic!("the stalled client was dropped: {other:?}"),
        }
    }
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    server.stop().await;
}
