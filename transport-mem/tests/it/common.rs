//! Helpers shared by the integration tests: a hub with the bundled games over a given log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use umpire_engine::protocol::{ClientMsg, ServerMsg};
use umpire_games::{Colony, Connect4, HighCard, Tally};
use umpire_hub::{Authenticator, Clock, Hub, HubConfig};
use umpire_mem::{MemClient, MemConnector};
use umpire_store::Log;

/// A hub with connect4, tally and colony, served over a fresh in-memory transport.
pub async fn start(
    log: Arc<dyn Log>,
    config: HubConfig,
    clock: Option<Arc<dyn Clock>>,
) -> (Hub, MemConnector) {
    let mut builder = Hub::builder(log)
        .config(config)
        .register(Connect4)
        .register(Tally)
        .register(Colony)
        .register(HighCard);
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    let hub = builder.start().await.expect("hub starts");
    let connector = umpire_mem::connector(&hub);
    (hub, connector)
}

/// The game's records as JSON, read from the log without loading the game.
pub async fn records(log: &dyn Log, game: u64) -> Vec<Value> {
    log.read(game, 1, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|(_, bytes)| rmp_serde::from_slice(bytes).unwrap())
        .collect()
}

/// Fail the test instead of hanging if `fut` takes more than a minute of (real or virtual) time.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("timed out")
}

pub fn seq(env: &Value) -> u64 {
    env["seq"].as_u64().expect("envelopes have a seq")
}

pub fn is_over(env: &Value) -> bool {
    env["body"].get("over").is_some()
}

/// The game event inside an envelope, if it is one.
pub fn game_event(env: &Value) -> Option<&Value> {
    env["body"].get("game")
}

/// A current-thread runtime whose clock is paused: it jumps ahead whenever every task waits.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Tokens are `token-<user>`.
#[derive(Debug)]
pub struct Names;

impl Authenticator for Names {
    fn verify(&self, token: &str) -> Result<String, String> {
        token
            .strip_prefix("token-")
            .map(str::to_owned)
            .ok_or_else(|| "not a token".to_owned())
    }
}

/// Send `hello` for `user` (a [`Names`] token) and return the answer.
pub async fn hello(client: &mut MemClient, user: &str) -> ServerMsg {
    let msg = ClientMsg::Hello {
        token: format!("token-{user}"),
        r#ref: None,
    };
    within(client.request(msg)).await.unwrap()
}

/// A new connection signed in as `user`.
pub async fn signed_in(net: &MemConnector, user: &str) -> MemClient {
    let mut client = net.connect().await.unwrap();
    let welcome = hello(&mut client, user).await;
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
    client
}

/// A hub with the bundled games over an in-memory log that takes [`Names`] tokens.
pub async fn with_auth(config: HubConfig) -> (Hub, MemConnector) {
    let hub = Hub::builder(Arc::new(umpire_store::MemLog::new()))
        .config(config)
        .register(Connect4)
        .register(Tally)
        .register(Colony)
        .register(HighCard)
        .authenticator(Arc::new(Names))
        .start()
        .await
        .expect("hub starts");
    let net = umpire_mem::connector(&hub);
    (hub, net)
}
