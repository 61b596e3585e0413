//! The `umpire` binary itself: it serves on the address it prints, and on SIGTERM it closes
//! its sockets with 1001, flushes the log and exits 0, keeping every acknowledged event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use serde_json::{json, Value};
use umpire_ws::client::{connect, Format};

use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_its_url_and_shuts_down_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]);
    let url = format!("ws://{}", server.addr);

    let mut player = connect(&format!("{url}/ws"), Format::MsgPack)
        .await
        .unwrap();
    let game = player.create("tally", Value::Null).await.unwrap();
    let seq = player.command(game.game, json!({"add": 3})).await.unwrap();

    server.terminate();
    while tokio::time::timeout(Duration::from_secs(20), player.recv())
        .await
        .unwrap()
        .is_ok()
    {}
    assert_eq!(player.close_reason().map(|(code, _)| *code), Some(1001));
    let status = tokio::task::block_in_place(|| server.child.wait()).unwrap();
    assert!(status.success(), "exit status {status}");

    let log = umpire_store::SledLog::open_retrying(data.path(), Duration::from_secs(10)).unwrap();
    assert_eq!(
        log.version(game.game.0).unwrap(),
        seq,
        "the acknowledged event is in the log"
    );
}

/// What one pipelining client saw until the server closed its connection.
#[derive(Debug, Default)]
struct Seen {
    game: u64,
    /// Commands sent, by ref (= the number in their cid).
    sent: u64,
    /// Acknowledged commands: ref -> seq.
    acked: HashMap<u64, u64>,
    /// Refused commands: ref -> error code.
    refused: HashMap<u64, String>,
    closing: bool,
    close: Option<u16>,
}

/// Create a tally game, then send adds with cids as fast as the server takes them (up to 64
/// unanswered), reading answers all the while, until the server closes the connection.
async fn pipeline(url: String) -> Seen {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let create = json!({"type": "create", "kind": "tally", "config": {"seats": 2}, "ref": "new"});
    sink.send(Message::text(create.to_string())).await.unwrap();
    let mut seen = Seen::default();
    while seen.game == 0 {
        if let Some(Ok(Message::Text(text))) = stream.next().await {
            let msg: Value = serde_json::from_str(text.as_str()).unwrap();
            if msg["type"] == "created" {
                seen.game = msg["game"].as_u64().unwrap();
            }
        }
    }
    let window = Arc::new(tokio::sync::Semaphore::new(64));
    let game = seen.game;
    let permits = Arc::clone(&window);
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        loop {
            let Ok(permit) = permits.acquire().await else {
                return sent;
            };
            permit.forget();
            let cmd = json!({"type": "command", "game": game, "cmd": {"add": 1},
                             "cid": format!("k{sent}"), "ref": sent});
            if sink.send(Message::text(cmd.to_string())).await.is_err() {
                return sent;
            }
            sent += 1;
        }
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let msg: Value = serde_json::from_str(text.as_str()).unwrap();
                let r = msg["ref"].as_u64();
                match (msg["type"].as_str(), r) {
                    (Some("ok"), Some(r)) => {
                        seen.acked.insert(r, msg["seq"].as_u64().unwrap());
                        window.add_permits(1);
                    }
                    (Some("error"), Some(r)) => {
                        seen.refused
                            .insert(r, msg["code"].as_str().unwrap().to_owned());
                        window.add_permits(1);
                    }
                    (Some("closing"), _) => seen.closing = true,
                    _ => {}
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => seen.close = frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the server neither answered nor closed for 30 s"),
        }
    }
    window.close();
    seen.sent = writer.await.unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_sigterm_every_command_taken_is_answered_and_nothing_unanswered_was_applied() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &["--rate-limit", "0"]);
    let clients: Vec<_> = (0..8)
        .map(|_| tokio::spawn(pipeline(server.ws())))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.terminate();
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.unwrap());
    }
    let status = tokio::task::block_in_place(|| server.child.wait()).unwrap();
    assert!(status.success(), "exit status {status}");

    let log = umpire_store::SledLog::open_retrying(data.path(), Duration::from_secs(10)).unwrap();
    let (mut acked, mut refused, mut unanswered) = (0, 0, 0);
    for client in &seen {
        assert!(client.closing, "told why: {client:?}");
        assert_eq!(client.close, Some(1001), "{client:?}");
        for code in client.refused.values() {
            assert_eq!(code, "overloaded", "a command refused for another reason");
        }
        // The log holds exactly the acknowledged adds, each at its seq.
        let mut applied = HashMap::new();
        for (seq, record) in log.read(client.game, 1, usize::MAX).unwrap() {
            let env: umpire_engine::Envelope<umpire_games::Tally> =
                rmp_serde::from_slice(&record).unwrap();
            if let Some(cid) = env.cid {
                let r: u64 = cid.trim_start_matches('k').parse().unwrap();
                applied.insert(r, seq);
            }
        }
        assert_eq!(applied, client.acked, "game {}", client.game);
        acked += client.acked.len();
        refused += client.refused.len();
        unanswered += client.sent as usize - client.acked.len() - client.refused.len();
    }
    assert!(acked > 0, "nothing was acknowledged before the signal");
    eprintln!(
        "{acked} acknowledged, {refused} refused as overloaded, {unanswered} sent but never \
         read by the server (none of them applied)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn umpire_publish_sends_a_notice_that_subscribers_receive() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--admin-token", "cli-secret"]);
    let mut fan = connect(&server.ws(), Format::Json).await.unwrap();
    let (_, stream) = fan.subscribe("broadcast", None).await.unwrap();

    let publish = |token: &str, data: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_umpire"))
            .args(["publish", "--server", &format!("http://{}", server.addr)])
            .args(["--admin-token", token, "broadcast", data])
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| publish("cli-secret", r#"{"text": "hello"}"#));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer, json!({"channel": "broadcast", "seq": 1}));
    let env = tokio::time::timeout(Duration::from_secs(20), fan.next_event(stream))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env["body"]["notice"]["data"], json!({"text": "hello"}));

    let refused = tokio::task::block_in_place(|| publish("wrong", "hi"));
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("refused") && why.contains("401"), "{why}");
}

#[test]
fn a_taken_port_a_held_folder_and_a_host_name_are_handled_in_plain_words() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("a"), &[]);
    let serve = |listen: &str, folder: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_umpire"))
            .args(["serve", "--listen", listen, "--data"])
            .arg(data.path().join(folder))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    // The port is checked before anything is restored, and said in words, without a backtrace.
    let taken = serve(&server.addr, "b");
    let why = String::from_utf8_lossy(&taken.stderr);
    assert!(!taken.status.success());
    assert!(why.contains("is already in use"), "{why}");
    assert!(!why.contains("backtrace"), "{why}");
    // Two servers never share a folder.
    let held = serve("127.0.0.1:0", "a");
    let why = String::from_utf8_lossy(&held.stderr);
    assert!(!held.status.success());
    assert!(why.contains("is in use by another process"), "{why}");
    // A host name is a fine address.
    let mut named = std::process::Command::new(env!("CARGO_BIN_EXE_umpire"))
        .args(["serve", "--listen", "localhost:0", "--data"])
        .arg(data.path().join("c"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(named.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = named.kill();
    let _ = named.wait();
    assert!(
        line.contains("http://127.0.0.1:") || line.contains("http://[::1]:"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_serves_a_folder_of_pages_instead_of_the_built_in_ones() {
    let data = tempfile::tempdir().unwrap();
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(pages.path().join("index.html"), "<h1>My own lobby</h1>").unwrap();
    std::fs::create_dir(pages.path().join("js")).unwrap();
    std::fs::write(pages.path().join("js/game.js"), "export const mine = 1;").unwrap();
    std::fs::write(data.path().join("secret.txt"), "not for the web").unwrap();
    let web = pages.path().to_str().unwrap();
    let server = Server::start(&data.path().join("log"), &["--web", web]);
    let (status, body) = server.get("/").await;
    assert_eq!((status, body.as_str()), (200, "<h1>My own lobby</h1>"));
    let (status, body) = server.get("/js/game.js").await;
    assert_eq!((status, body.as_str()), (200, "export const mine = 1;"));
    // What the folder lacks still comes from the built-in client.
    let (status, body) = server.get("/umpire.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("export class Umpire"), "{body}");
    // Nothing outside the folder, and the server's own paths stay its own.
    assert_eq!(server.get("/../secret.txt").await.0, 404);
    assert_eq!(server.get("/js/../../secret.txt").await.0, 404);
    // Nor through a link that leads out of it, nor a hidden file (a checkout's `.git`).
    std::os::unix::fs::symlink(data.path().join("secret.txt"), pages.path().join("out.txt"))
        .unwrap();
    std::os::unix::fs::symlink(pages.path().join("js"), pages.path().join("scripts")).unwrap();
    std::fs::create_dir(pages.path().join(".git")).unwrap();
    std::fs::write(pages.path().join(".git/config"), "[core]").unwrap();
    assert_eq!(server.get("/out.txt").await.0, 404);
    assert_eq!(server.get("/.git/config").await.0, 404);
    // A link that stays inside is followed.
    let (status, body) = server.get("/scripts/game.js").await;
    assert_eq!((status, body.as_str()), (200, "export const mine = 1;"));
    assert_eq!(server.get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(server.get("/nothing.html").await.0, 404);

    // A folder that is not there is refused in words.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_umpire"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--web",
            "/no/such/pages",
            "--data",
        ])
        .arg(data.path().join("other"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let why = String::from_utf8_lossy(&missing.stderr);
    assert!(why.contains("no such folder of pages"), "{why}");
}
