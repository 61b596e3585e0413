//! Two headless Chromium contexts create and join a Connect Four game through the page's own
//! links and play it to a win, while a third watches and shows the same board. A screenshot
//! of the spectator's page is kept in `target/browser-artifacts/`. Then the server is stopped
//! in the middle of a Connect Four, a tally and a colony game and started again: every page
//! says it is reconnecting, resumes by itself, and its game goes on without a reload.
//!
//! Needs Debian's `chromium` and `chromedriver` (`scripts/install-test-deps.sh`). Without them
//! the test prints that it was skipped, except under CI, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use umpire_store::MemLog;
use umpire_ws::WsConfig;

/// One browser test at a time: each starts chromedriver and two or three Chromiums, more than
/// two cores carry at once (a second chromedriver started beside them reset its first
/// connection).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// chromedriver, killed when dropped, and this test's turn, given back after.
struct Driver(
    Child,
    #[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>,
);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, listening; `None` (said loudly) when it is not installed,
/// except under CI, where that fails.
async fn chromedriver() -> Option<(Driver, u16)> {
    let chromedriver = ["/usr/bin/chromedriver", "/usr/local/bin/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(chromedriver) = chromedriver else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI must run the browser test: scripts/install-test-deps.sh installs chromedriver"
            );
        }
        eprintln!("\n*** SKIPPED the browser test: chromium/chromedriver are not installed.");
        eprintln!("*** Run scripts/install-test-deps.sh to run it.\n");
        return None;
    };
    let turn = ONE_AT_A_TIME.lock().await;
    let port = free_port();
    let driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs"),
        turn,
    );
    // chromedriver needs a moment to listen.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some((driver, port));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("chromedriver did not listen");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser(driver: u16, profile: &Path) -> Client {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=900,900".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver}"))
        .await
        .expect("chromedriver starts a session")
}

/// Evaluate `script` until it returns `want`, for at most 30 s.
async fn until(page: &Client, script: &str, want: Value) {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = page.execute(script, vec![]).await.unwrap();
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{script} is {last}, not {want}");
}

/// Wait until the element `css` shows `want`.
async fn text(page: &Client, css: &str, want: &str) {
    let script = format!("return document.querySelector('{css}').textContent");
    until(page, &script, json!(want)).await;
}

/// Wait until the element `css` is no longer hidden.
async fn shown(page: &Client, css: &str) {
    let script = format!("return document.querySelector('{css}').hidden");
    until(page, &script, json!(false)).await;
}

async fn attr(page: &Client, css: &str, name: &str) -> String {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .attr(name)
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn click(page: &Client, css: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The server's settings: the monitor on, with a token.
fn monitored() -> WsConfig {
    WsConfig {
        admin_token: Some("monitor-secret".into()),
        ..WsConfig::default()
    }
}

async fn board(page: &Client) -> Value {
    page.execute(
        "return [...document.querySelectorAll('.cell')].map(c => c.className)",
        vec![],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_play_connect_four_while_a_third_watches() {
    let Some((_driver, port)) = chromedriver().await else {
        return;
    };

    let log = Arc::new(MemLog::new());
    let hub = support::bundled_hub(log.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), monitored()));

    let profiles = tempfile::tempdir().unwrap();
    let red = browser(port, &profiles.path().join("red")).await;
    let yellow = browser(port, &profiles.path().join("yellow")).await;
    let watcher = browser(port, &profiles.path().join("watcher")).await;

    // Red starts from the lobby and shares the page's own links.
    red.goto(&format!("http://{addr}/")).await.unwrap();
    // The lobby shows broadcast notices as they are published, newest first.
    hub.publish("broadcast", json!({"text": "Welcome to umpire"}))
        .await
        .unwrap();
    text(&red, "#notices li", "Welcome to umpire").await;
    hub.publish("broadcast", json!("Tournament at noon"))
        .await
        .unwrap();
    until(
        &red,
        "return [...document.querySelectorAll('#notices li')].map(l => l.textContent)",
        json!(["Tournament at noon", "Welcome to umpire"]),
    )
    .await;
    click(&red, ".new-connect4").await;
    shown(&red, ".share").await;
    text(
        &red,
        "#status",
        "Waiting for an opponent (you are red): share the join link.",
    )
    .await;
    let join = attr(&red, ".join", "href").await;
    let watch = attr(&red, ".watch", "href").await;
    assert!(
        join.contains("?join=") && watch.contains("?watch="),
        "{join} {watch}"
    );
    yellow.goto(&join).await.unwrap();
    watcher.goto(&watch).await.unwrap();
    until(
        &yellow,
        "return document.querySelector('#status').textContent.includes('yellow')",
        json!(true),
    )
    .await;
    until(
        &watcher,
        "return document.querySelector('#status').textContent.startsWith('Watching')",
        json!(true),
    )
    .await;

    // Red stacks column 0, yellow column 1: red's fourth disc wins.
    for (n, column) in [0, 1, 0, 1, 0, 1, 0].into_iter().enumerate() {
        let mover = if n % 2 == 0 { &red } else { &yellow };
        let css = format!(".column[data-column='{column}']");
        click(mover, &css).await;
        let moves = json!((n + 1).to_string());
        for page in [&red, &yellow, &watcher] {
            until(page, "return document.body.dataset.moves", moves.clone()).await;
        }
    }
    for page in [&red, &yellow, &watcher] {
        text(page, "#status", "Red wins!").await;
    }
    // The winning four are marked on every page.
    for page in [&red, &yellow, &watcher] {
        until(
            page,
            "return document.querySelectorAll('.cell.win.red').length",
            json!(4),
        )
        .await;
    }
    let seen = board(&watcher).await;
    assert_eq!(
        seen,
        board(&red).await,
        "the spectator shows the players' board"
    );
    assert_eq!(seen, board(&yellow).await);
    assert_eq!(
        seen.as_array()
            .unwrap()
            .iter()
            .filter(|c| c.as_str().is_some_and(|c| c.split(' ').any(|k| k == "red")))
            .count(),
        4
    );

    // The share links are the creator's alone.
    assert_eq!(
        watcher
            .execute("return document.querySelector('.share').hidden", vec![])
            .await
            .unwrap(),
        json!(true)
    );
    // The spectator's replay slider steps back through the game and returns to live.
    let step = "const s = document.querySelector('#step'); s.value = arguments[0]; \
                s.dispatchEvent(new Event('input')); \
                return document.querySelectorAll('.cell.red, .cell.yellow').length";
    assert_eq!(
        watcher.execute(step, vec![json!(3)]).await.unwrap(),
        json!(3)
    );
    assert_eq!(
        watcher.execute(step, vec![json!(0)]).await.unwrap(),
        json!(0)
    );
    assert_eq!(
        watcher.execute(step, vec![json!(7)]).await.unwrap(),
        json!(7)
    );
    text(&watcher, "#step-label", "live").await;

    // The join link of a full, finished game opens it to watch, and says so.
    watcher.goto(&join).await.unwrap();
    text(&watcher, "#status", "Red wins!").await;
    text(
        &watcher,
        "#notice",
        "This game is over: you are watching it.",
    )
    .await;
    assert_eq!(board(&watcher).await, board(&red).await);

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = watcher.screenshot().await.unwrap();
    std::fs::write(artifacts.join("connect4-spectator.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));

    // Red offers a rematch: a new game, red again; yellow is offered it and takes the other
    // seat; the spectator is offered to watch it.
    click(&red, "#rematch").await;
    text(
        &red,
        "#status",
        "Waiting for an opponent (you are red): share the join link.",
    )
    .await;
    text(&yellow, "#rematch", "Play the rematch").await;
    shown(&watcher, "#rematch-watch").await;
    click(&yellow, "#rematch").await;
    text(&yellow, "#status", "Waiting for red (you are yellow).").await;
    text(&red, "#status", "Your turn (you are red).").await;
    click(&watcher, "#rematch-watch").await;
    text(&watcher, "#status", "Watching: red to play.").await;

    // Mid-game everywhere: a new Connect Four (two moves in), a tally, a colony build under way.
    red.goto(&format!("http://{addr}/connect4.html"))
        .await
        .unwrap();
    shown(&red, ".share").await;
    let join = attr(&red, ".join", "href").await;
    yellow.goto(&join).await.unwrap();
    text(&red, "#status", "Your turn (you are red).").await;
    click(&red, ".column[data-column='2']").await;
    until(&yellow, "return document.body.dataset.moves", json!("1")).await;
    click(&yellow, ".column[data-column='3']").await;
    until(&red, "return document.body.dataset.moves", json!("2")).await;
    watcher
        .goto(&format!("http://{addr}/tally.html"))
        .await
        .unwrap();
    text(&watcher, "#status", "You hold seat 0.").await;
    click(&watcher, "[data-add='5']").await;
    text(&watcher, "#total", "5").await;
    let colony = browser(port, &profiles.path().join("colony")).await;
    colony
        .goto(&format!("http://{addr}/colony.html"))
        .await
        .unwrap();
    text(&colony, "#status", "You hold seat 0.").await;
    click(&colony, "[data-building='hut']").await;
    until(
        &colony,
        "return document.querySelectorAll('#pending li').length",
        json!(1),
    )
    .await;

    // The server stops: every page says it is reconnecting, and a click says so too.
    hub.shutdown().await.unwrap();
    server.await.unwrap().unwrap();
    for page in [&red, &yellow, &watcher, &colony] {
        until(
            page,
            "return document.body.dataset.connection",
            json!("reconnecting"),
        )
        .await;
        text(page, "#connection", "Reconnecting…").await;
    }
    click(&yellow, ".column[data-column='3']").await;
    text(
        &yellow,
        "#error",
        "reconnecting to the server: try again in a moment",
    )
    .await;

    // It starts again on the same address and log: every page reconnects by itself and its
    // game goes on, with nothing reloaded.
    let hub = support::bundled_hub(log.clone()).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), monitored()));
    for page in [&red, &yellow, &watcher, &colony] {
        until(
            page,
            "return document.body.dataset.connection",
            json!("connected"),
        )
        .await;
        // Taken back by `resume`, not by entering each game again.
        until(
            page,
            "return document.body.dataset.recovered",
            json!("resumed"),
        )
        .await;
        text(page, "#connection", "").await;
    }
    click(&red, ".column[data-column='2']").await;
    for page in [&red, &yellow] {
        until(page, "return document.body.dataset.moves", json!("3")).await;
    }
    click(&watcher, "[data-add='1']").await;
    text(&watcher, "#total", "6").await;
    // The hut (10 s) completes on the restarted server, and the page shows it.
    until(
        &colony,
        "return document.querySelectorAll('#built li').length",
        json!(1),
    )
    .await;
    until(
        &colony,
        "return document.querySelectorAll('#pending li').length",
        json!(0),
    )
    .await;

    // High card: each player's page shows their own hand; the other player and the spectator
    // see how many cards, and a laid card face down until both are turned over.
    red.goto(&format!("http://{addr}/")).await.unwrap();
    click(&red, ".new-highcard").await;
    shown(&red, ".share").await;
    let join = attr(&red, ".join", "href").await;
    let watch = attr(&red, ".watch", "href").await;
    yellow.goto(&join).await.unwrap();
    watcher.goto(&watch).await.unwrap();
    text(&yellow, "#status", "You hold seat 1.").await;
    click(&yellow, "#deal").await;
    let hand = "return [...document.querySelectorAll('#hand .card-face')].map(c => c.textContent)";
    for page in [&red, &yellow] {
        until(page, "return document.body.dataset.hand", json!("5")).await;
    }
    let (red_hand, yellow_hand) = (
        red.execute(hand, vec![]).await.unwrap(),
        yellow.execute(hand, vec![]).await.unwrap(),
    );
    assert_ne!(red_hand, yellow_hand, "two hands from one deck");
    until(&watcher, "return document.body.dataset.hand", json!("0")).await;
    click(&red, "#hand .card-face").await;
    for page in [&yellow, &watcher] {
        until(
            page,
            "return document.querySelectorAll('#table .card-face.back').length",
            json!(1),
        )
        .await;
    }
    click(&yellow, "#hand .card-face").await;
    for page in [&red, &yellow, &watcher] {
        until(
            page,
            "return document.querySelector('#log li').textContent.startsWith('Revealed')",
            json!(true),
        )
        .await;
    }
    // Nothing of another's hand is on the spectator's page, nor on the other player's.
    let page_text = "return document.body.innerText";
    let spectator_sees = watcher.execute(page_text, vec![]).await.unwrap();
    let yellow_sees = yellow.execute(page_text, vec![]).await.unwrap();
    let red_cards: Vec<String> = serde_json::from_value(red_hand).unwrap();
    let laid_first = &red_cards[0];
    for card in &red_cards[1..] {
        for (who, text) in [("the spectator", &spectator_sees), ("yellow", &yellow_sees)] {
            assert!(
                !text.as_str().unwrap().contains(card.as_str()) || card == laid_first,
                "{who} was shown red's {card}"
            );
        }
    }

    // The monitor lists the games and connections, charts the metrics, and replays a game.
    watcher.goto(&format!("http://{addr}/admin")).await.unwrap();
    watcher
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys("monitor-secret")
        .await
        .unwrap();
    click(&watcher, "#login button").await;
    for table in ["#games", "#connections"] {
        let rows = format!("return document.querySelectorAll('{table} tbody tr').length > 0");
        until(&watcher, &rows, json!(true)).await;
    }
    until(
        &watcher,
        "return document.querySelector('#charts b').textContent !== '–'",
        json!(true),
    )
    .await;
    click(&watcher, "#games tbody tr a.game").await;
    shown(&watcher, "#history").await;
    watcher
        .execute(
            "const s = document.querySelector('#slider'); s.value = 1; \
             s.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await
        .unwrap();
    until(
        &watcher,
        "return /state after event 1 of/.test(document.querySelector('#at').textContent) \
         && document.querySelectorAll('#events li.later').length > 0",
        json!(true),
    )
    .await;
    assert_eq!(
        watcher
            .execute(
                "return document.querySelector('#error').textContent",
                vec![]
            )
            .await
            .unwrap(),
        json!("")
    );

    // The server comes back without the colony's log (another data folder, say): its page
    // does not wait for ever, it says the game is gone.
    hub.shutdown().await.unwrap();
    server.await.unwrap().unwrap();
    let hub = support::bundled_hub(Arc::new(MemLog::new())).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), monitored()));
    until(
        &colony,
        "return document.body.dataset.connection",
        json!("closed"),
    )
    .await;
    until(
        &colony,
        "return document.querySelector('#connection').textContent\
         .startsWith('Disconnected: the server no longer has this game (game ')",
        json!(true),
    )
    .await;

    hub.shutdown().await.unwrap();
    server.await.unwrap().unwrap();
    colony.close().await.unwrap();
    for page in [red, yellow, watcher] {
        page.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_strangers_press_play_now_and_play_connect_four_to_the_end() {
    let Some((_driver, port)) = chromedriver().await else {
        return;
    };
    let hub = support::bundled_hub(Arc::new(MemLog::new())).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), WsConfig::default()));
    let profiles = tempfile::tempdir().unwrap();
    let red = browser(port, &profiles.path().join("red")).await;
    let yellow = browser(port, &profiles.path().join("yellow")).await;

    // Yellow looks at the lobby; red presses Play now and waits in a new open game.
    yellow.goto(&format!("http://{addr}/")).await.unwrap();
    text(&yellow, ".open-games li", "No open game right now.").await;
    red.goto(&format!("http://{addr}/")).await.unwrap();
    click(&red, ".play-connect4").await;
    text(
        &red,
        "#status",
        "Waiting for an opponent (you are red): share the join link.",
    )
    .await;
    // Yellow's lobby lists it live, with a Join button.
    until(
        &yellow,
        "return document.querySelectorAll('.open-games li[data-game] .join').length",
        json!(1),
    )
    .await;
    let listed = yellow
        .execute(
            "return document.querySelector('.open-games li[data-game]').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        listed.as_str().is_some_and(|t| t.contains("1 of 2 seats")),
        "{listed}"
    );
    // Yellow presses Play now too: the same game, not a new one.
    click(&yellow, ".play-connect4").await;
    until(
        &yellow,
        "return document.querySelector('#status').textContent.includes('yellow')",
        json!(true),
    )
    .await;
    for (n, column) in [0, 1, 0, 1, 0, 1, 0].into_iter().enumerate() {
        let mover = if n % 2 == 0 { &red } else { &yellow };
        click(mover, &format!(".column[data-column='{column}']")).await;
        let moves = json!((n + 1).to_string());
        for page in [&red, &yellow] {
            until(page, "return document.body.dataset.moves", moves.clone()).await;
        }
    }
    for page in [&red, &yellow] {
        text(page, "#status", "Red wins!").await;
    }
    assert_eq!(hub.open_games(Some("connect4")).await.unwrap(), vec![]);
    red.close().await.unwrap();
    yellow.close().await.unwrap();
    server.abort();
    hub.shutdown().await.unwrap();
}

/// Serve `files` (name, content type, bytes) over plain HTTP on a free port: a Django site's
/// page, for the test below. Returns its address.
async fn static_site(files: Vec<(&'static str, &'static str, Vec<u8>)>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let files = Arc::new(files);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let files = Arc::clone(&files);
            tokio::spawn(async move {
                let mut request = vec![0; 4096];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let found = files.iter().find(|(name, _, _)| path == format!("/{name}"));
                let (status, kind, body) = match found {
                    Some((_, kind, body)) => ("200 OK", *kind, body.clone()),
                    None => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    addr
}

/// Seed 002's client, unchanged: the `ws4redis.js` that django-websocket-redis 0.6.0 ships on
/// PyPI (fetched by `scripts/ws4redis-deps.sh`, with jQuery 3), on a page of another site,
/// used as the seed uses it (`WS4Redis({uri: ".../ws/notifications?subscribe-broadcast",
/// heartbeat_msg: '--heartbeat--', receive_message})`). It hears what the server publishes on
/// the facility, stays connected past the 20 s after which it drops a server that does not
/// answer its heartbeats, and on a reload gets the last message again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws4redis_js_from_pypi_hears_the_facility_and_keeps_its_heartbeat() {
    let Some((_driver, port)) = chromedriver().await else {
        return;
    };
    let Some(deps) = support::ws4redis_deps() else {
        return;
    };
    let hub = support::bundled_hub(Arc::new(MemLog::new())).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let umpire: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(umpire_ws::serve(listener, hub.clone(), WsConfig::default()));

    let page = format!(
        r##"<!doctype html><title>site</title>
<script src="jquery.min.js"></script><script src="ws4redis.js"></script>
<ul id="messages"></ul>
<script>
window.connects = 0;
window.received = [];
jQuery(document).ready(function($) {{
  var ws4redis = WS4Redis({{
    uri: "ws://{umpire}/ws/notifications?subscribe-broadcast",
    heartbeat_msg: "--heartbeat--",
    connected: function() {{ window.connects += 1; }},
    receive_message: function(msg) {{
      window.received.push(msg);
      $("#messages").append($("<li>").text(msg));
    }}
  }});
}});
</script>"##
    );
    let read = |name: &str| std::fs::read(deps.join(name)).unwrap();
    let site = static_site(vec![
        ("index.html", "text/html", page.into_bytes()),
        ("jquery.min.js", "text/javascript", read("jquery.min.js")),
        ("ws4redis.js", "text/javascript", read("ws4redis.js")),
    ])
    .await;

    let profiles = tempfile::tempdir().unwrap();
    let page = browser(port, &profiles.path().join("site")).await;
    page.goto(&format!("http://{site}/index.html"))
        .await
        .unwrap();
    until(&page, "return window.connects", json!(1)).await;
    let channel = "facility:notifications:broadcast";
    hub.publish(channel, json!("There will be a site maintenance"))
        .await
        .unwrap();
    until(
        &page,
        "return window.received",
        json!(["There will be a site maintenance"]),
    )
    .await;
    // ws4redis.js sends its heartbeat every 5 s and closes the socket at the fourth without
    // an answer: 25 s on, it must still be on its first connection, and hearing.
    tokio::time::sleep(Duration::from_secs(25)).await;
    hub.publish(channel, json!({"at": "noon"})).await.unwrap();
    until(
        &page,
        "return window.received",
        json!(["There will be a site maintenance", r#"{"at":"noon"}"#]),
    )
    .await;
    assert_eq!(
        page.execute("return window.connects", vec![])
            .await
            .unwrap(),
        json!(1),
        "ws4redis.js reconnected: the heartbeat was not answered"
    );
    text(&page, "#messages li:last-child", r#"{"at":"noon"}"#).await;

    // A reload connects anew and gets the facility's last message, as from ws4redis.
    page.refresh().await.unwrap();
    until(&page, "return window.received", json!([r#"{"at":"noon"}"#])).await;

    page.close().await.unwrap();
    hub.shutdown().await.unwrap();
    server.await.unwrap().unwrap();
}
