//! The example servers: `examples/nim.rs` (a game defined in the example, with its own page)
//! starts, serves its page and the built-in client, and plays a game to the end;
//! `examples/axum.rs` (umpire mounted in an axum app with its own cookie sign-in) signs two
//! users in and plays a game to the end through the mounted route, and refuses an upgrade
//! without the cookie; `examples/matchmaker.rs` (a rating matchmaker) pairs close ratings at
//! once, a far one after its window has widened, and a `cancel` ends a wait.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use umpire_client::ClientError;
use umpire_engine::protocol::ErrorCode;
use umpire_ws::client::{connect, connect_with_headers, Format};

/// An example's process, killed when dropped (a failed assertion included).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An example's binary, which `cargo test` builds next to this test's, started on a free
/// port with its log in `data`: the process and the `host:port` it printed.
fn start(name: &str, data: &std::path::Path) -> (Running, String) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let mut child = Running(
        Command::new(dir.join("examples").join(name))
            .arg("127.0.0.1:0")
            .arg(data.join(name))
            .stdout(Stdio::piped())
            .spawn()
            .expect("cargo test builds the examples"),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.split_once("://").map(|(_, rest)| rest))
        .map(|a| a.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("the example printed no address: {line:?}"));
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nim_example_serves_its_page_and_plays_a_game_to_the_end() {
    let data = tempfile::tempdir().unwrap();
    let (_example, addr) = start("nim", data.path());

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
}

/// Sign in to the axum example as `name`: the cookie its answer sets.
async fn sign_in(addr: &str, name: &str) -> String {
    let answer = support::http(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("name={name}"),
    )
    .await;
    assert_eq!(answer.status, 303, "{answer:?}");
    let cookie = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("{answer:?}"));
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_mounts_umpire_behind_its_own_sign_in() {
    let data = tempfile::tempdir().unwrap();
    let (_example, addr) = start("axum", data.path());

    // The app's own page, and umpire's under /play.
    let (status, page) = support::http_get(&addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in"), "{page}");
    let (status, client) = support::http_get(&addr, "/play/umpire.js").await;
    assert_eq!(status, 200);
    assert!(client.contains("export class Umpire"));
    let (status, board) = support::http_get(&addr, "/play/connect4.html").await;
    assert_eq!(status, 200);
    assert!(board.contains("connect4.js"), "{board}");
    let (status, _) = support::http_get(&addr, "/play/healthz").await;
    assert_eq!(status, 200);

    // No cookie, or one the app never gave: the upgrade is refused by the app's login.
    let url = format!("ws://{addr}/play/ws");
    for headers in [vec![], vec![("Cookie", "session=forged")]] {
        match connect_with_headers(&url, Format::Json, headers).await {
            Err(ClientError::Connect { status, .. }) => assert_eq!(status, Some(401)),
            Err(other) => panic!("refused otherwise: {other}"),
            Ok(_) => panic!("a WebSocket opened without signing in"),
        }
    }

    let alice = sign_in(&addr, "alice").await;
    let bob = sign_in(&addr, "bob").await;
    let page = support::http(&addr, "GET", "/", &[("Cookie", &alice)], "").await;
    assert_eq!(page.status, 200);
    let page = page.body;
    assert!(page.contains("<b class=\"user\">alice</b>"), "{page}");

    let mut first = connect_with_headers(&url, Format::Json, [("Cookie", alice.as_str())])
        .await
        .unwrap();
    let mut second = connect_with_headers(&url, Format::MsgPack, [("Cookie", bob.as_str())])
        .await
        .unwrap();
    // Each connection is its user, as if it had said hello: its own user channel only.
    first.subscribe("user:alice", None).await.unwrap();
    let refused = second.subscribe("user:alice", None).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
    second.subscribe("user:bob", None).await.unwrap();

    // A game to the end through the mounted route: seat 0 stacks column 0.
    let game = first.create("connect4", Value::Null).await.unwrap();
    second.join(game.join.as_ref().unwrap()).await.unwrap();
    for turn in 0..7 {
        let (player, column) = if turn % 2 == 0 {
            (&mut first, 0)
        } else {
            (&mut second, 1)
        };
        player
            .command(game.game, json!({ "column": column }))
            .await
            .unwrap();
    }
    let events = second
        .events_until(game.game, |env| env["body"].get("over").is_some())
        .await
        .unwrap();
    let over = &events.last().unwrap()["body"]["over"];
    assert_eq!(over["outcome"], json!({"win": 0}), "{events:?}");
}

/// A line-delimited JSON connection to the ndjson example.
struct Lines {
    read: tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Lines {
    async fn open(addr: &str) -> Self {
        let (read, write) = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap()
            .into_split();
        Lines {
            read: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(read)),
            write,
        }
    }

    async fn send(&mut self, line: &str) {
        tokio::io::AsyncWriteExt::write_all(&mut self.write, format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line, as JSON.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), self.read.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .expect("the server closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Lines until the one of `kind` (`type`), which is returned.
    async fn until(&mut self, kind: &str) -> Value {
        loop {
            let line = self.next().await;
            if line["type"] == kind {
                return line;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ndjson_example_is_a_transport_that_plays_a_game_to_the_end() {
    let data = tempfile::tempdir().unwrap();
    let (_example, addr) = start("ndjson", data.path());
    let mut first = Lines::open(&addr).await;
    let mut second = Lines::open(&addr).await;

    // Bad input is answered, not fatal.
    first.send("not json").await;
    let refused = first.until("error").await;
    assert_eq!(refused["code"], "bad_message", "{refused}");

    first
        .send(r#"{"type":"create","kind":"connect4","config":null,"ref":1}"#)
        .await;
    let created = first.until("created").await;
    assert_eq!(created["ref"], 1);
    let game = created["game"].as_u64().unwrap();
    let join = json!({"type": "join", "key": created["join"], "ref": 2});
    second.send(&join.to_string()).await;
    assert_eq!(second.until("joined").await["game"], game);
    for turn in 0..7 {
        let (player, column) = if turn % 2 == 0 {
            (&mut first, 0)
        } else {
            (&mut second, 1)
        };
        let command =
            json!({"type": "command", "game": game, "cmd": {"column": column}, "ref": 10 + turn});
        player.send(&command.to_string()).await;
        let answer = player.until("ok").await;
        assert_eq!(answer["ref"], 10 + turn, "{answer}");
    }
    let over = loop {
        let event = second.until("event").await;
        if let Some(over) = event["env"]["body"].get("over") {
            break over.clone();
        }
    };
    assert_eq!(over["outcome"], json!({"win": 0}));

    // A line past the limit ends the connection, with a word why.
    first.send(&"x".repeat(70 * 1024)).await;
    let closed = first.until("closed").await;
    assert_eq!(closed["reason"], "line too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matchmaker_example_pairs_by_rating_and_widens_its_window() {
    let data = tempfile::tempdir().unwrap();
    let (_example, addr) = start("matchmaker", data.path());
    let url = format!("ws://{addr}/ws");
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&url, Format::Json).await.unwrap());
    }
    let mut iter = clients.into_iter();
    let (mut a, mut far, mut b, mut lone, mut c) = (
        iter.next().unwrap(),
        iter.next().unwrap(),
        iter.next().unwrap(),
        iter.next().unwrap(),
        iter.next().unwrap(),
    );
    let play = |rating: f64| (Value::Null, json!({ "rating": rating }));
    // 1500 and 2400 ask first; then 1550: 1500 and 1550 are paired, 2400 waits.
    let far_play = {
        let (config, props) = play(2400.0);
        tokio::spawn(async move {
            let seated = far.play("connect4", config, props).await;
            (far, seated)
        })
    };
    let a_play = {
        let (config, props) = play(1500.0);
        tokio::spawn(async move {
            let seated = a.play("connect4", config, props).await;
            (a, seated)
        })
    };
    let (config, props) = play(1550.0);
    let b_seat = b.play("connect4", config, props).await.unwrap();
    let (_a, a_seat) = a_play.await.unwrap();
    let a_seat = a_seat.unwrap();
    assert_eq!(a_seat.game, b_seat.game, "1500 and 1550 are paired");
    // A 1950 is 450 from the 2400: paired once the window has widened (100 + 100 a second).
    let (config, props) = play(1950.0);
    let started = std::time::Instant::now();
    let c_seat = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        c.play("connect4", config, props),
    )
    .await
    .expect("paired once the window widened")
    .unwrap();
    let (_far, far_seat) = far_play.await.unwrap();
    let far_seat = far_seat.unwrap();
    assert_eq!(far_seat.game, c_seat.game);
    assert_ne!(far_seat.game, a_seat.game);
    eprintln!("450 apart, paired after {:?}", started.elapsed());
    // Alone, then cancelled: the wait ends `cancelled`.
    lone.send(umpire_engine::protocol::ClientMsg::Play {
        kind: "connect4".into(),
        config: Value::Null,
        props: json!({"rating": 3000}),
        r#ref: Some(json!(7)),
    })
    .await
    .unwrap();
    lone.cancel(Some("connect4")).await.unwrap();
    match lone.next_reply().await.unwrap() {
        umpire_engine::protocol::ServerMsg::Error { code, r#ref, .. } => {
            assert_eq!((code, r#ref), (ErrorCode::Cancelled, Some(json!(7))));
        }
        other => panic!("{other:?}"),
    }
}
