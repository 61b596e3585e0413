//! Seed 002's server side, unchanged: a Python process publishing with django-websocket-redis's
//! own `RedisPublisher` (PyPI 0.6.0, in the virtual environment `scripts/ws4redis-deps.sh`
//! makes) into the Redis that two `umpire serve --redis --ws4redis-bridge` nodes share, reaches
//! ws4redis clients connected to either node. Then the node that bridges is killed with -9:
//! the other takes the bridge over, and what the publisher sent meanwhile still arrives (the
//! last message of each channel, from the key ws4redis persists it under).
//!
//! Needs `redis-server` and the fetched package; skipped loudly without them, failed under CI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use umpire_redis::testing::RedisServer;

use support::Server;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Publish `text` to `audience` on `facility` with ws4redis's RedisPublisher, under the
/// site's WS4REDIS_PREFIX `demo`.
fn publish(deps: &Path, redis: &RedisServer, facility: &str, audience: &str, text: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/ws4redis_publish.py"
    );
    let out = Command::new(deps.join("venv/bin/python"))
        .arg(script)
        .arg(redis.port().to_string())
        .args([facility, audience, text, "demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn open(server: &Server, path: &str) -> Ws {
    let url = format!("ws://{}{path}", server.addr);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text that is not the heartbeat.
async fn message(ws: &mut Ws) -> String {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
        match next.expect("a message within 30 s") {
            Some(Ok(Message::Text(text))) if text.as_str() != "--heartbeat--" => {
                return text.to_string()
            }
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_websocket_redis_publisher_reaches_ws4redis_clients_on_every_node() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(deps) = support::ws4redis_deps() else {
        return;
    };
    let url = redis.url();
    let node = |name: &str| {
        Server::start_args(&[
            "--redis",
            &url,
            "--node-id",
            name,
            "--ws4redis-bridge",
            "--ws4redis-prefix",
            "demo",
        ])
    };
    let mut nodes = [Some(node("n0")), Some(node("n1"))];
    let path = "/ws/notifications?subscribe-broadcast";
    let mut clients = Vec::new();
    for server in nodes.iter().flatten() {
        clients.push(open(server, path).await);
    }

    // Published before or after a node took the bridge's lease: it arrives either way (a
    // node taking the lease sends each channel's persisted last message it has not).
    publish(
        &deps,
        &redis,
        "notifications",
        "broadcast",
        "There will be a site maintenance",
    );
    for ws in &mut clients {
        assert_eq!(message(ws).await, "There will be a site maintenance");
    }
    publish(&deps, &redis, "notifications", "broadcast", "second");
    for ws in &mut clients {
        assert_eq!(
            message(ws).await,
            "second",
            "one notice per message, from one node"
        );
    }

    // Kill the node that bridges; the other takes over.
    let leader = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "GET", "u:ws4redis"])
        .output()
        .unwrap();
    let leader = String::from_utf8_lossy(&leader.stdout).trim().to_owned();
    assert!(leader == "n0" || leader == "n1", "the lease is {leader:?}");
    let dead = usize::from(leader == "n1");
    let victim = nodes[dead].take().unwrap();
    let killed = Command::new("kill")
        .args(["-9", &victim.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(victim);
    let mut survivor = clients.remove(1 - dead);
    publish(
        &deps,
        &redis,
        "notifications",
        "broadcast",
        "after the kill",
    );
    assert_eq!(message(&mut survivor).await, "after the kill");

    // A client connecting now gets the last message on connect, as from ws4redis.
    let alive = nodes[1 - dead].as_ref().unwrap();
    let mut late = open(alive, path).await;
    assert_eq!(message(&mut late).await, "after the kill");
}
