//! The seam between nodes (`umpire_hub::Bus`): every durable version is announced, in order,
//! for followers elsewhere; a game placed on another node is not loaded here, and its
//! requests are refused with a retry.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use umpire_engine::protocol::{ErrorCode, GameId};
use umpire_engine::Seq;
use umpire_hub::{Bus, HubConfig, Placement};
use umpire_store::{Log, MemLog};

use crate::common::within;

/// A bus that remembers what was announced and places some games on "node-b".
#[derive(Debug, Default)]
struct Recording {
    announced: Mutex<Vec<(GameId, Seq)>>,
    elsewhere: Mutex<HashSet<GameId>>,
    asked: AtomicBool,
}

impl Bus for Recording {
    fn announce(&self, stream: GameId, version: Seq) {
        self.announced.lock().unwrap().push((stream, version));
    }

    fn placement(&self, stream: GameId) -> Placement {
        self.asked.store(true, Ordering::SeqCst);
        match self.elsewhere.lock().unwrap().contains(&stream) {
            true => Placement::Elsewhere("node-b".into()),
            false => Placement::Here,
        }
    }
}

impl Recording {
    fn versions_of(&self, stream: GameId) -> Vec<Seq> {
        let announced = self.announced.lock().unwrap();
        announced
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, v)| *v)
            .collect()
    }
}

async fn hub_with(
    log: &Arc<MemLog>,
    bus: &Arc<Recording>,
) -> (umpire_hub::Hub, umpire_mem::MemConnector) {
    let hub = umpire_hub::Hub::builder(Arc::clone(log) as Arc<dyn Log>)
        .config(HubConfig::default())
        .register(umpire_games::Tally)
        .bus(Arc::clone(bus) as Arc<dyn Bus>)
        .start()
        .await
        .unwrap();
    let net = umpire_mem::connector(&hub);
    (hub, net)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_durable_version_is_announced_in_order_for_games_and_channels() {
    let log = Arc::new(MemLog::new());
    let bus = Arc::new(Recording::default());
    let (hub, net) = hub_with(&log, &bus).await;
    let mut player = net.connect().await.unwrap();
    let game = within(player.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    for _ in 0..5 {
        within(player.command(game.game, json!({"add": 1})))
            .await
            .unwrap();
    }
    let versions = bus.versions_of(game.game);
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "strictly rising: {versions:?}"
    );
    assert_eq!(
        versions.last().copied(),
        Some(log.version(game.game).unwrap()),
        "the last announcement is the log's version"
    );
    assert!(versions.len() >= 6, "one per turn at least: {versions:?}");
    // A channel's notices are announced the same way.
    for n in 1..=2 {
        let seq = hub.publish("broadcast", json!({ "n": n })).await.unwrap();
        let announced = bus.announced.lock().unwrap().clone();
        assert_eq!(
            announced.last().map(|(s, v)| (*s != game.game, *v)),
            Some((true, seq)),
            "{announced:?}"
        );
    }
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_placed_on_another_node_is_not_loaded_here_and_asks_for_a_retry() {
    let log = Arc::new(MemLog::new());
    let first = Arc::new(Recording::default());
    let key = {
        let (hub, net) = hub_with(&log, &first).await;
        let mut player = net.connect().await.unwrap();
        let game = within(player.create("tally", json!({"seats": 2})))
            .await
            .unwrap();
        drop(player);
        hub.shutdown().await.unwrap();
        (game.game, game.join.unwrap())
    };
    let (game, join) = key;
    let before = log.version(game).unwrap();
    // Another hub over the same log, whose bus says the game runs on node-b.
    let bus = Arc::new(Recording::default());
    bus.elsewhere.lock().unwrap().insert(game);
    let (_hub, net) = hub_with(&log, &bus).await;
    let mut other = net.connect().await.unwrap();
    let refused = within(other.join(&join)).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Overloaded), "{refused}");
    assert!(refused.to_string().contains("node-b"), "{refused}");
    assert!(bus.asked.load(Ordering::SeqCst));
    assert_eq!(log.version(game).unwrap(), before, "nothing written here");
    // Placed here again (node-b let go of it): the same request goes through.
    bus.elsewhere.lock().unwrap().clear();
    let joined = within(other.join(&join)).await.unwrap();
    assert_eq!(joined.game, game);
}
