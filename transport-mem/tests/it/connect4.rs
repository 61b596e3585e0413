//! Connect Four through the hub: players, spectators, late spectators, every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use crate::common::{game_event, is_over, seq, start, within};
use serde_json::{json, Value};
use umpire_engine::protocol::ErrorCode;
use umpire_engine::protocol::GameId;
use umpire_engine::Seat;
use umpire_hub::HubConfig;
use umpire_mem::{MemClient, MemConnector};
use umpire_store::SledLog;

async fn play(
    red: &mut MemClient,
    yellow: &mut MemClient,
    game: u64,
    columns: &[i64],
    first: usize,
) {
    for (i, column) in columns.iter().enumerate() {
        let mover = if (first + i).is_multiple_of(2) {
            &mut *red
        } else {
            &mut *yellow
        };
        mover
            .command(GameId(game), json!({ "column": column }))
            .await
            .expect("legal move");
    }
}

async fn table(net: &MemConnector) -> (MemClient, MemClient, umpire_mem::Game) {
    let mut red = net.connect().await.unwrap();
    let game = red.create("connect4", Value::Null).await.unwrap();
    let mut yellow = net.connect().await.unwrap();
    let joined = yellow.join(game.join.as_deref().unwrap()).await.unwrap();
    assert_eq!((game.seat, joined.seat), (Seat(0), Seat(1)));
    assert_eq!(joined.game, game.game);
    (red, yellow, game)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_and_three_spectators_see_the_same_game() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, net) = start(
        Arc::new(SledLog::open(dir.path()).unwrap()),
        HubConfig::default(),
        None,
    )
    .await;
    let (mut red, mut yellow, game) = within(table(&net)).await;
    let mut spectators = Vec::new();
    for _ in 0..3 {
        let mut s = net.connect().await.unwrap();
        assert_eq!(
            s.watch(game.watch.as_deref().unwrap(), None).await.unwrap(),
            game.game
        );
        spectators.push(s);
    }
    // Red builds a column in 0 while yellow answers in 1: red wins on its fourth disc.
    within(play(
        &mut red,
        &mut yellow,
        game.game.0,
        &[0, 1, 0, 1, 0, 1, 0],
        0,
    ))
    .await;
    let mut seen = Vec::new();
    for client in [&mut red, &mut yellow]
        .into_iter()
        .chain(spectators.iter_mut())
    {
        seen.push(
            within(client.events_until(game.game, is_over))
                .await
                .unwrap(),
        );
    }
    for other in &seen[1..] {
        assert_eq!(other, &seen[0], "every client sees the same envelopes");
    }
    let history = &seen[0];
    assert_eq!(
        history.iter().map(seq).collect::<Vec<_>>(),
        (1..=13).collect::<Vec<_>>()
    );
    assert!(history[0]["body"]["created"]["kind"] == "connect4");
    // Each player is seated, then online (its connection follows the game).
    assert_eq!(history[1]["body"]["seated"]["seat"], 0);
    assert_eq!(
        history[2]["body"]["presence"],
        json!({"seat": 0, "online": true})
    );
    assert_eq!(history[3]["body"]["seated"]["seat"], 1);
    assert_eq!(
        history[4]["body"]["presence"],
        json!({"seat": 1, "online": true})
    );
    assert_eq!(
        game_event(&history[11]).unwrap(),
        &json!({"player": "red", "column": 0, "row": 3})
    );
    assert_eq!(
        history[12]["body"],
        json!({"over": {"outcome": {"win": 0}}})
    );

    // After the win: a move is refused with game_over.
    let err = yellow
        .command(game.game, json!({"column": 5}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GameOver));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_spectator_gets_the_past_then_the_rest_without_gap_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, net) = start(
        Arc::new(SledLog::open(dir.path()).unwrap()),
        HubConfig::default(),
        None,
    )
    .await;
    let (mut red, mut yellow, game) = within(table(&net)).await;
    let mut early = net.connect().await.unwrap();
    early
        .watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();

    within(play(
        &mut red,
        &mut yellow,
        game.game.0,
        &[0, 1, 2, 3, 4, 5, 6, 0, 1, 2],
        0,
    ))
    .await;
    let mut late = net.connect().await.unwrap();
    late.watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();
    // Created, two Seated each with its player online, then exactly the ten moves.
    let past = within(late.events(game.game, 15)).await.unwrap();
    let moves: Vec<i64> = past
        .iter()
        .filter_map(game_event)
        .map(|e| e["column"].as_i64().unwrap())
        .collect();
    assert_eq!(moves, vec![0, 1, 2, 3, 4, 5, 6, 0, 1, 2]);

    // Red stacks column 1 to a win while yellow stacks column 6.
    within(play(
        &mut red,
        &mut yellow,
        game.game.0,
        &[1, 6, 1, 6, 1],
        10,
    ))
    .await;
    let rest = within(late.events_until(game.game, is_over)).await.unwrap();
    assert_eq!(rest.len(), 6, "five moves and the outcome");
    let whole: Vec<Value> = past.into_iter().chain(rest).collect();
    assert_eq!(
        whole.iter().map(seq).collect::<Vec<_>>(),
        (1..=21).collect::<Vec<_>>()
    );
    assert_eq!(
        whole,
        within(early.events_until(game.game, is_over))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_clear_codes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, net) = start(
        Arc::new(SledLog::open(dir.path()).unwrap()),
        HubConfig::default(),
        None,
    )
    .await;
    let (mut red, mut yellow, game) = within(table(&net)).await;
    let before = hub.inspect(game.game).await.unwrap();

    let rejected = yellow
        .command(game.game, json!({"column": 3}))
        .await
        .unwrap_err();
    assert_eq!(rejected.code(), Some(ErrorCode::Rejected));
    assert!(
        rejected.to_string().contains("It isn't your turn."),
        "{rejected}"
    );
    let out = red
        .command(game.game, json!({"column": 9}))
        .await
        .unwrap_err();
    assert!(
        out.to_string().contains("Column 9 is out of range."),
        "{out}"
    );
    let bad = red.command(game.game, json!({"row": 1})).await.unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::BadMessage), "{bad}");
    assert_eq!(
        hub.inspect(game.game).await.unwrap(),
        before,
        "refusals change nothing"
    );

    let mut spectator = net.connect().await.unwrap();
    spectator
        .watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();
    let forbidden = spectator
        .command(game.game, json!({"column": 0}))
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), Some(ErrorCode::Forbidden));
    let watch_key_join = spectator
        .join(game.watch.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(watch_key_join.code(), Some(ErrorCode::Forbidden));
    let stranger = spectator
        .command(GameId(game.game.0 + 1000), json!({"column": 0}))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Some(ErrorCode::NotFound));
    assert_eq!(
        spectator
            .watch("no-such-key", None)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        spectator
            .create("chess", Value::Null)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );
    let third = spectator
        .join(game.join.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(third.code(), Some(ErrorCode::Full));

    // Malformed input gets bad_message and the connection keeps working.
    spectator.send_text("{not json").await.unwrap();
    spectator.send_text(r#"{"type":"fly"}"#).await.unwrap();
    for _ in 0..2 {
        match within(spectator.next_reply()).await.unwrap() {
            umpire_engine::protocol::ServerMsg::Error { code, .. } => {
                assert_eq!(code, ErrorCode::BadMessage)
            }
            other => panic!("expected bad_message, got {other:?}"),
        }
    }
    let pong = spectator
        .request(umpire_engine::protocol::ClientMsg::Ping { r#ref: None })
        .await
        .unwrap();
    assert!(matches!(
        pong,
        umpire_engine::protocol::ServerMsg::Pong { .. }
    ));
    assert_eq!(hub.inspect(game.game).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_client_id_is_applied_once_and_answered_the_same() {
    let (hub, net) = start(
        Arc::new(umpire_store::MemLog::new()),
        HubConfig::default(),
        None,
    )
    .await;
    let (mut red, mut yellow, game) = within(table(&net)).await;
    let first = red
        .command_with_cid(game.game, json!({"column": 3}), Some("m1".into()))
        .await
        .unwrap();
    let again = red
        .command_with_cid(game.game, json!({"column": 3}), Some("m1".into()))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        hub.inspect(game.game).await.unwrap().version,
        first,
        "nothing applied twice"
    );
    // The same id from the other seat is a different command.
    yellow
        .command_with_cid(game.game, json!({"column": 3}), Some("m1".into()))
        .await
        .unwrap();
    assert_eq!(
        hub.inspect(game.game).await.unwrap().state["moves"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_that_never_reads_does_not_slow_the_game_and_misses_nothing() {
    let config = HubConfig {
        queue_len: 2,
        ..HubConfig::default()
    };
    let (hub, net) = start(Arc::new(umpire_store::MemLog::new()), config, None).await;
    let mut red = net.connect().await.unwrap();
    let game = red.create("tally", Value::Null).await.unwrap();
    let mut stalled = net.connect_with_queue(1).await.unwrap();
    stalled
        .watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();
    let mut reader = net.connect().await.unwrap();
    reader
        .watch(game.watch.as_deref().unwrap(), None)
        .await
        .unwrap();

    for n in 1..=300 {
        within(red.command(game.game, json!({"add": n})))
            .await
            .unwrap();
    }
    let seen = within(reader.events_until(game.game, |e| seq(e) == 303))
        .await
        .unwrap();
    assert_eq!(seen.len(), 303);
    assert!(hub
        .metrics()
        .render()
        .contains("umpire_subscribers_lagged_total"));

    // The stalled client now reads: every event, in order, from the log where it fell behind.
    let caught_up = within(stalled.events_until(game.game, |e| seq(e) == 303))
        .await
        .unwrap();
    assert_eq!(
        caught_up.iter().map(seq).collect::<Vec<_>>(),
        (1..=303).collect::<Vec<_>>()
    );
    assert_eq!(caught_up, seen);
}
