//! The native protocol over real sockets, in JSON and MessagePack: play, watch, every error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use crate::common::{http_get, serve, within, Options};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::Message;
use umpire_engine::protocol::GameId;
use umpire_engine::protocol::{ClientMsg, ErrorCode, ServerMsg};
use umpire_ws::client::Format;

fn over(env: &Value) -> bool {
    env["body"].get("over").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_msgpack_clients_play_and_watch_the_same_game() {
    let server = serve(Options::default()).await;
    let mut red = server.client(Format::Json).await;
    let mut yellow = server.client(Format::MsgPack).await;
    let mut watcher = server.client(Format::MsgPack).await;
    let game = red.create("connect4", Value::Null).await.unwrap();
    yellow.join(game.join.as_deref().unwrap()).await.unwrap();
    watcher
        .watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();
    for (i, column) in [0, 1, 0, 1, 0, 1, 0].iter().enumerate() {
        let mover = if i % 2 == 0 { &mut red } else { &mut yellow };
        within(mover.command(game.game, json!({ "column": column })))
            .await
            .unwrap();
    }
    let a = within(red.events_until(game.game, over)).await.unwrap();
    let b = within(yellow.events_until(game.game, over)).await.unwrap();
    let c = within(watcher.events_until(game.game, over)).await.unwrap();
    assert_eq!(
        a.len(),
        13,
        "created, two seats each online, seven moves, the outcome"
    );
    assert_eq!(a, b, "JSON and MessagePack carry the same envelopes");
    assert_eq!(a, c);
    assert_eq!(a[12]["body"], json!({"over": {"outcome": {"win": 0}}}));
    let late = yellow
        .command(game.game, json!({"column": 4}))
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some(ErrorCode::GameOver));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_code_and_the_connection_stays_usable() {
    let server = serve(Options::default()).await;
    let mut red = server.client(Format::Json).await;
    let game = red.create("connect4", Value::Null).await.unwrap();

    red.send_text("{not json").await.unwrap();
    red.send_text(r#"{"type":"teleport"}"#).await.unwrap();
    for _ in 0..2 {
        match within(red.next_reply()).await.unwrap() {
            ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::BadMessage),
            other => panic!("expected bad_message, got {other:?}"),
        }
    }
    let pong = within(red.request(ClientMsg::Ping { r#ref: None }))
        .await
        .unwrap();
    assert!(
        matches!(pong, ServerMsg::Pong { .. }),
        "still usable after bad input"
    );

    red.command(game.game, json!({"column": 2})).await.unwrap();
    let rejected = red
        .command(game.game, json!({"column": 3}))
        .await
        .unwrap_err();
    assert_eq!(rejected.code(), Some(ErrorCode::Rejected));
    assert!(
        rejected.to_string().contains("It isn't your turn."),
        "{rejected}"
    );

    let mut spectator = server.client(Format::MsgPack).await;
    spectator
        .watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();
    let forbidden = spectator
        .command(game.game, json!({"column": 1}))
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), Some(ErrorCode::Forbidden));
    let missing = spectator.join("not-a-key").await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
    let bad_kind = spectator.create("chess", Value::Null).await.unwrap_err();
    assert_eq!(bad_kind.code(), Some(ErrorCode::NotFound));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = serve(Options::default()).await;
    let mut client = server.client(Format::Json).await;
    let frame = WsFrame::message(vec![0xff, 0xfe, b'{'], OpCode::Data(Data::Text), true);
    client
        .wire_mut()
        .send_raw(Message::Frame(frame))
        .await
        .unwrap();
    assert!(within(client.recv()).await.is_err());
    assert_eq!(client.close_reason().map(|(code, _)| *code), Some(1007));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_with_1009() {
    let server = serve(Options::default()).await;
    let mut client = server.client(Format::Json).await;
    let big = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(70 * 1024));
    client.send_text(&big).await.unwrap();
    assert!(within(client.recv()).await.is_err());
    assert_eq!(client.close_reason().map(|(code, _)| *code), Some(1009));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_are_served() {
    let server = serve(Options::default()).await;
    let mut client = server.client(Format::Json).await;
    client.create("tally", Value::Null).await.unwrap();
    assert_eq!(
        http_get(server.addr, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    let (status, metrics) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "umpire_connections_open 1",
        "umpire_connections_total 1",
        "umpire_messages_in_total 1",
        "umpire_events_appended_total 3",
        "umpire_live_games 1",
        "umpire_flush_seconds_bucket",
        "umpire_subscribers_lagged_total",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    let (status, page) = http_get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("umpire"));
    assert_eq!(http_get(server.addr, "/nope").await.0, 404);
    assert_eq!(
        http_get(server.addr, "/ws").await.0,
        400,
        "a plain GET is not a WebSocket"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_arrives_as_data_that_a_client_branches_on() {
    let server = serve(Options::default()).await;
    for format in [Format::Json, Format::MsgPack] {
        let mut client = server.client(format).await;
        let tally = client.create("tally", Value::Null).await.unwrap();
        within(client.command(tally.game, json!({ "add": i64::MAX })))
            .await
            .unwrap();
        let refused = within(client.command(tally.game, json!({ "add": 1 })))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Rejected), "{refused}");
        assert_eq!(
            refused.reason(),
            Some(&json!({ "overflow": 1 })),
            "{refused}"
        );
        // What a client does with it: reads the amount from the reason, never the prose.
        let undo = match refused.reason().and_then(|r| r["overflow"].as_i64()) {
            Some(amount) => -amount,
            None => panic!("not a typed refusal: {refused}"),
        };
        within(client.command(tally.game, json!({ "add": undo })))
            .await
            .unwrap();

        // A unit variant is its name; errors that are not the game's carry no reason.
        let board = client.create("connect4", Value::Null).await.unwrap();
        let mut other = server.client(format).await;
        other.join(board.join.as_deref().unwrap()).await.unwrap();
        let early = within(other.command(board.game, json!({ "column": 0 })))
            .await
            .unwrap_err();
        assert_eq!(early.reason(), Some(&json!("not_your_turn")), "{early}");
        let unknown = within(client.command(GameId(board.game.0 + 1_000), json!({ "column": 0 })))
            .await
            .unwrap_err();
        assert_eq!(unknown.reason(), None, "{unknown}");
    }
}
