//! The `umpire` binary itself: it serves on the address it prints, and on SIGTERM it closes
//! its sockets with 1001, flushes the log and exits 0, keeping every acknowledged event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use umpire_store::Log;
use umpire_ws::client::{connect, Format};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_its_url_and_shuts_down_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_umpire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .replace("http://", "ws://");

    let mut player = connect(&format!("{url}/ws"), Format::MsgPack)
        .await
        .unwrap();
    let game = player.create("tally", Value::Null).await.unwrap();
    let seq = player.command(game.game, json!({"add": 3})).await.unwrap();

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    while tokio::time::timeout(Duration::from_secs(20), player.recv())
        .await
        .unwrap()
        .is_ok()
    {}
    assert_eq!(player.close_reason().map(|(code, _)| *code), Some(1001));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");

    let log = umpire_store::SledLog::open_retrying(data.path(), Duration::from_secs(10)).unwrap();
    assert_eq!(
        log.version(game.game).unwrap(),
        seq,
        "the acknowledged event is in the log"
    );
}
