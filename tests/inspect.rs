//! `umpire inspect`: games, events, verify and stats of a data folder, and a clear refusal
//! while a server holds it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use umpire_store::{SledLog, StreamMeta, StreamStatus};

fn inspect(data: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_umpire"))
        .args(["inspect", "--data"])
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_lists_shows_verifies_and_counts_what_a_folder_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (tally, c4) = {
        let log = Arc::new(SledLog::open(&data).unwrap());
        let hub = support::bundled_hub(log.clone()).await;
        let tally = hub
            .create("tally", json!({"seats": 2}), "ada")
            .await
            .unwrap();
        for _ in 0..3 {
            hub.submit(tally.game, tally.seat, json!({"add": 2}), None)
                .await
                .unwrap();
        }
        let c4 = hub.create("connect4", Value::Null, "ada").await.unwrap();
        let bob = hub.join(&c4.join, "bob").await.unwrap();
        for (i, column) in [0, 1, 0, 1, 0, 1, 0].into_iter().enumerate() {
            let seat = if i % 2 == 0 { c4.seat } else { bob.seat };
            hub.submit(c4.game, seat, json!({ "column": column }), None)
                .await
                .unwrap();
        }
        hub.publish("broadcast", json!("hello")).await.unwrap();
        hub.shutdown().await.unwrap();
        (tally.game, c4.game)
    };
    tokio::time::sleep(Duration::from_millis(200)).await; // sled lets go of the folder

    let games = inspect(&data, &["games"]);
    assert!(games.status.success(), "{}", text(&games));
    let listing = text(&games);
    assert!(
        listing.lines().any(|l| l.contains(&format!(" {tally} "))
            && l.contains("tally")
            && l.contains("live")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.contains("connect4") && l.contains("over")),
        "{listing}"
    );
    assert!(listing.contains("channel"), "{listing}");

    let events = inspect(&data, &["events", &tally.to_string()]);
    assert!(events.status.success(), "{}", text(&events));
    let lines: Vec<Value> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "created, seated, three adds");
    assert_eq!(lines[4]["body"]["game"]["total"], json!(6));
    let none = inspect(&data, &["events", "999999"]);
    assert!(!none.status.success());
    assert!(text(&none).contains("no stream 999999"), "{}", text(&none));

    let verify = inspect(&data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains("3 streams replay, 0 do not"),
        "{}",
        text(&verify)
    );
    let stats = inspect(&data, &["stats"]);
    assert!(text(&stats).contains("3 streams, "), "{}", text(&stats));
    let _ = c4;

    // A record that does not decode: verify names the game and fails.
    {
        let bad = add_stream(&data, "tally", "", Bytes::from_static(b"\x93not a record")).await;
        assert_verify_fails_naming(&data, &format!("{bad} tally: seq 1 does not decode"));
    }

    // While a server holds the folder, inspect says so.
    let server = support::Server::start(&data, &[]);
    let held = inspect(&data, &["games"]);
    assert!(!held.status.success());
    assert!(
        text(&held).contains("held by a running server"),
        "{}",
        text(&held)
    );
    drop(server);
}

/// Every bundled kind replays in `verify` (High card too), a channel's records decode as the
/// engine's notice envelope and a lobby's as lobby records; a record of another shape is
/// named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_replays_every_bundled_kind_and_checks_notices_against_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let log = Arc::new(SledLog::open(&data).unwrap());
        let hub = support::bundled_hub(log.clone()).await;
        let cards = hub.create("highcard", Value::Null, "ada").await.unwrap();
        hub.join(&cards.join, "bob").await.unwrap();
        hub.publish("broadcast", json!({"text": "hello"}))
            .await
            .unwrap();
        // The lobby of connect4 (its stream, and its channel with the first listing).
        assert_eq!(hub.open_games(Some("connect4")).await.unwrap(), vec![]);
        hub.shutdown().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let verify = inspect(&data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        text(&verify).contains("4 streams replay, 0 do not"),
        "{}",
        text(&verify)
    );

    let record = rmp_serde::to_vec_named(&json!({"seq": 1, "body": "no notice"})).unwrap();
    let odd = add_stream(&data, "channel", "broadcast", Bytes::from(record)).await;
    assert_verify_fails_naming(&data, &format!("{odd} channel: seq 1 does not decode"));
    let record = rmp_serde::to_vec_named(&json!({"at": 1, "record": "no such record"})).unwrap();
    let odd = add_stream(&data, "lobby", "connect4", Bytes::from(record)).await;
    assert_verify_fails_naming(&data, &format!("{odd} lobby: seq 1 does not decode"));
}

/// Add a stream of `kind` (created by `creator`) holding `record` to the folder `data`, which
/// no server holds; its id.
async fn add_stream(data: &Path, kind: &str, creator: &str, record: Bytes) -> u64 {
    let log = SledLog::open(data).unwrap();
    let meta = StreamMeta {
        kind: kind.into(),
        created: 0,
        status: StreamStatus::Live,
        creator: creator.into(),
        invite: None,
        finished: None,
    };
    let id = log.create_stream(&meta).unwrap();
    log.append(id, 0, &[record]).unwrap().unwrap();
    log.sync().unwrap();
    drop(log);
    tokio::time::sleep(Duration::from_millis(200)).await;
    id
}

/// `inspect verify` fails on `data`, saying `what`.
fn assert_verify_fails_naming(data: &Path, what: &str) {
    let verify = inspect(data, &["verify"]);
    assert!(!verify.status.success());
    assert!(text(&verify).contains(what), "{}", text(&verify));
}
