//! The example server (`examples/nim.rs`, a game defined in the example, with its own page):
//! it starts, serves its page and the built-in client, and plays a game to the end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use umpire_ws::client::{connect, Format};

/// The example's binary, which `cargo test` builds next to this test's.
fn example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.join("examples").join("nim")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nim_example_serves_its_page_and_plays_a_game_to_the_end() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(example())
        .arg("127.0.0.1:0")
        .arg(data.path().join("nim"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo test builds the examples");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .map(|a| a.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("the example printed no address: {line:?}"));

    let (status, page) = support::http_get(&addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Nim</h1>"), "its own page: {page}");
    let (status, client) = support::http_get(&addr, "/umpire.js").await;
    assert_eq!(status, 200);
    assert!(client.contains("export class Umpire"));

    let url = format!("ws://{addr}/ws");
    let mut first = connect(&url, Format::Json).await.unwrap();
    let mut second = connect(&url, Format::MsgPack).await.unwrap();
    let game = first.create("nim", Value::Null).await.unwrap();
    second.join(game.join.as_ref().unwrap()).await.unwrap();
    // The rules hold: three at most, in turn.
    assert!(first.command(game.game, json!({"take": 4})).await.is_err());
    assert!(second.command(game.game, json!({"take": 1})).await.is_err());
    // 21 stones, three at a time: seat 0 takes the last.
    for turn in 0..7 {
        let player = if turn % 2 == 0 {
            &mut first
        } else {
            &mut second
        };
        player.command(game.game, json!({"take": 3})).await.unwrap();
    }
    let events = second
        .events_until(game.game, |env| env["body"].get("over").is_some())
        .await
        .unwrap();
    let over = &events.last().unwrap()["body"]["over"];
    assert_eq!(over["outcome"], json!({"win": 0}), "{events:?}");
    let _ = child.kill();
    let _ = child.wait();
}
