//! Several nodes over one log (`umpire_hub::Bus`): every durable version is announced in
//! order; hubs joined by a `MemBus` play one game with players and spectators on different
//! nodes, each request forwarded to the node that leads the game; a node that dies or
//! stalls loses its games to another within its lease, and nothing forks.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use umpire_engine::protocol::{ErrorCode, GameId};
use umpire_engine::Seq;
use umpire_hub::{Bus, HubConfig, Inbound, MemBus, Placement};
use umpire_store::{Log, MemLog, StoreError};

use crate::common::{records, within};

/// A single node's bus that remembers what was announced.
#[derive(Debug, Default)]
struct Recording {
    announced: Mutex<Vec<(GameId, Seq)>>,
}

#[async_trait]
impl Bus for Recording {
    fn node(&self) -> &str {
        "only"
    }
    async fn place(&self, _stream: GameId) -> Result<Placement, StoreError> {
        Ok(Placement::Here)
    }
    fn release(&self, _stream: GameId) {}
    fn announce(&self, stream: GameId, version: Seq) {
        self.announced.lock().unwrap().push((stream, version));
    }
    fn follow(&self, _stream: GameId) {}
    fn unfollow(&self, _stream: GameId) {}
    fn send(&self, _node: &str, _msg: Vec<u8>) {}
    fn attach(&self, _inbound: Weak<dyn Inbound>) {}
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
    bus: Arc<dyn Bus>,
) -> (umpire_hub::Hub, umpire_mem::MemConnector) {
    let hub = umpire_hub::Hub::builder(Arc::clone(log) as Arc<dyn Log>)
        .config(HubConfig::default())
        .register(umpire_games::Tally)
        .register(umpire_games::Colony)
        .register(umpire_games::Connect4)
        .bus(bus)
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
    let (hub, net) = hub_with(&log, Arc::clone(&bus) as Arc<dyn Bus>).await;
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
        Some(Seq(log.version(game.game.0).unwrap())),
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

const LEASE: Duration = Duration::from_secs(2);

/// Three hubs over one memory log, joined by one `MemBus`.
async fn three_nodes(
    log: &Arc<MemLog>,
) -> (MemBus, Vec<(umpire_hub::Hub, umpire_mem::MemConnector)>) {
    let bus = MemBus::new();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let node: Arc<dyn Bus> = bus.node(name, LEASE);
        nodes.push(hub_with(log, node).await);
    }
    (bus, nodes)
}

/// Seqs of the log, checked contiguous from 1, and each cid's seqs.
async fn checked(
    log: &MemLog,
    game: GameId,
) -> (Vec<Value>, std::collections::HashMap<String, usize>) {
    let logged = records(log, game.0).await;
    for (i, env) in logged.iter().enumerate() {
        assert_eq!(
            env["seq"].as_u64(),
            Some(i as u64 + 1),
            "one contiguous history"
        );
    }
    let mut cids = std::collections::HashMap::new();
    for env in &logged {
        if let Some(cid) = env["cid"].as_str() {
            *cids.entry(cid.to_owned()).or_insert(0) += 1;
        }
    }
    (logged, cids)
}

#[tokio::test(start_paused = true)]
async fn players_on_two_nodes_play_one_game_and_a_spectator_on_a_third_sees_it_all() {
    let log = Arc::new(MemLog::new());
    let (bus, nodes) = three_nodes(&log).await;
    let mut ada = nodes[0].1.connect().await.unwrap();
    let mut bo = nodes[1].1.connect().await.unwrap();
    let mut eve = nodes[2].1.connect().await.unwrap();
    let game = within(ada.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    assert_eq!(
        bus.holder(game.game).as_deref(),
        Some("a"),
        "its creator's node leads it"
    );
    let joined = within(bo.join(game.join.as_deref().unwrap()))
        .await
        .unwrap();
    assert_eq!(joined.game, game.game, "a join forwarded from b to a");
    let watched = within(eve.watch(game.watch.as_deref().unwrap(), Some(Seq(1))))
        .await
        .unwrap();
    let mut acked = Vec::new();
    for n in 0..10 {
        let (who, cid) = if n % 2 == 0 {
            (&mut ada, format!("a{n}"))
        } else {
            (&mut bo, format!("b{n}"))
        };
        let seq = within(who.command_with_cid(game.game, json!({"add": 1}), Some(cid.clone())))
            .await
            .unwrap();
        acked.push((cid, seq));
    }
    // Sent again (an answer lost on the way): applied once, answered with its first seq.
    let again = within(bo.command_with_cid(game.game, json!({"add": 1}), Some("b1".into())))
        .await
        .unwrap();
    assert_eq!(again, acked[1].1);
    // The game's rejection crosses from a to b as data.
    let refused = within(bo.command(game.game, json!({"add": i64::MAX})))
        .await
        .unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(&json!({"overflow": i64::MAX})),
        "{refused}"
    );
    let (logged, cids) = checked(&log, game.game).await;
    for (cid, seq) in &acked {
        assert_eq!(cids.get(cid), Some(&1), "{cid} applied once");
        assert_eq!(
            logged[(seq.0 - 1) as usize]["cid"].as_str(),
            Some(cid.as_str())
        );
    }
    // The spectator on c is shown exactly the log, in order.
    let last = logged.len() as u64;
    let shown = within(eve.events(watched, logged.len())).await.unwrap();
    let seqs: Vec<u64> = shown.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    for (env, logged) in shown.iter().zip(&logged) {
        assert_eq!(
            *env,
            umpire_engine::protocol::as_shown(logged.clone()),
            "shown as logged"
        );
    }
    // The player on b is online for the leader on a (presence crossed the bus).
    let online = within(async {
        loop {
            let inspected = nodes[0].0.inspect(game.game).await.unwrap();
            if inspected.whole["online"]
                .as_array()
                .is_some_and(|o| o.len() == 2)
            {
                return inspected.whole["online"].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(online, json!([0, 1]));
    // Spectators are counted on every node: one on c, one more on b; told to all.
    let mut finn = nodes[1].1.connect().await.unwrap();
    within(finn.watch(game.watch.as_deref().unwrap(), None))
        .await
        .unwrap();
    within(ada.await_spectators(game.game, 2)).await.unwrap();
    within(eve.await_spectators(watched, 2)).await.unwrap();
    drop(finn);
    within(bo.await_spectators(game.game, 1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_node_that_dies_loses_its_games_to_another_within_its_lease() {
    let log = Arc::new(MemLog::new());
    let (bus, nodes) = three_nodes(&log).await;
    let mut ada = nodes[0].1.connect().await.unwrap();
    let mut bo = nodes[1].1.connect().await.unwrap();
    let game = within(ada.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    within(bo.join(game.join.as_deref().unwrap()))
        .await
        .unwrap();
    within(bo.command_with_cid(game.game, json!({"add": 1}), Some("b0".into())))
        .await
        .unwrap();
    // Node a dies: it hears nothing, renews nothing, sends nothing.
    bus.freeze("a", true);
    drop(ada);
    let died = tokio::time::Instant::now();
    let mut tries = 0;
    let seq = loop {
        tries += 1;
        match within(bo.command_with_cid(game.game, json!({"add": 1}), Some("b1".into()))).await {
            Ok(seq) => break seq,
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::Overloaded), "{e}");
                assert!(tries < 50, "nobody took the game over: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = died.elapsed();
    assert!(
        took <= LEASE + Duration::from_secs(1),
        "took over after {took:?} ({tries} tries)"
    );
    assert_eq!(bus.holder(game.game).as_deref(), Some("b"));
    let (logged, cids) = checked(&log, game.game).await;
    assert_eq!(logged.len() as u64, seq.0.max(logged.len() as u64));
    assert_eq!(cids.get("b0"), Some(&1));
    assert_eq!(cids.get("b1"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn a_takeover_does_not_log_players_on_other_nodes_offline_and_back() {
    let log = Arc::new(MemLog::new());
    let (bus, nodes) = three_nodes(&log).await;
    let mut ada = nodes[0].1.connect().await.unwrap();
    let mut bo = nodes[1].1.connect().await.unwrap();
    let mut cy = nodes[2].1.connect().await.unwrap();
    let game = within(ada.create("tally", json!({"seats": 3})))
        .await
        .unwrap();
    let key = game.join.as_deref().unwrap();
    within(bo.join(key)).await.unwrap();
    let cy_seat = within(cy.join(key)).await.unwrap().seat;
    within(cy.command(game.game, json!({"add": 1})))
        .await
        .unwrap();
    // Node a dies (cut off, then stopped: it writes nothing more); b takes the game over on
    // its player's next command.
    bus.freeze("a", true);
    nodes[0].0.shutdown().await.unwrap();
    drop(ada);
    let mut tries = 0;
    loop {
        tries += 1;
        match within(bo.command(game.game, json!({"add": 1}))).await {
            Ok(_) => break,
            Err(e) => assert!(tries < 50, "nobody took the game over: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bus.holder(game.game).as_deref(), Some("b"));
    // Two leases later: ada's seat, whose node died, is offline; cy, connected to c all along,
    // was never logged offline.
    tokio::time::sleep(LEASE * 2).await;
    within(cy.command(game.game, json!({"add": 1})))
        .await
        .unwrap();
    let (logged, _) = checked(&log, game.game).await;
    let presence: Vec<(u64, bool)> = logged
        .iter()
        .filter_map(|env| env["body"].get("presence"))
        .filter_map(|p| Some((p["seat"].as_u64()?, p["online"].as_bool()?)))
        .collect();
    assert!(
        presence.contains(&(0, false)),
        "ada's seat went offline: {presence:?}"
    );
    assert!(
        !presence.contains(&(u64::from(cy_seat.0), false)),
        "cy stayed connected on c, yet was logged offline: {presence:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_stalls_past_its_lease_follows_the_new_leader_and_nothing_forks() {
    let log = Arc::new(MemLog::new());
    let (bus, nodes) = three_nodes(&log).await;
    let mut ada = nodes[0].1.connect().await.unwrap();
    let mut bo = nodes[1].1.connect().await.unwrap();
    let game = within(ada.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    within(bo.join(game.join.as_deref().unwrap()))
        .await
        .unwrap();
    bus.freeze("a", true);
    // b takes the game over once a's lease ran out.
    let mut n = 0;
    loop {
        n += 1;
        assert!(n < 50, "b never took the game over");
        if within(bo.command_with_cid(game.game, json!({"add": 1}), Some("b-first".into())))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(n > 1, "a still led the game at first");
    bus.freeze("a", false);
    // a's next renewal finds the lease gone; its player's commands now cross to b.
    tokio::time::sleep(LEASE).await;
    for i in 0..3 {
        let cid = format!("a{i}");
        let mut tries = 0;
        loop {
            tries += 1;
            match within(ada.command_with_cid(game.game, json!({"add": 1}), Some(cid.clone())))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.code(), Some(ErrorCode::Overloaded), "{e}");
                    assert!(tries < 20, "a never found the new leader: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    assert_eq!(bus.holder(game.game).as_deref(), Some("b"));
    let (_, cids) = checked(&log, game.game).await;
    assert!(cids.values().all(|n| *n == 1), "no cid twice: {cids:?}");
    assert_eq!(cids.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_channel_works_across_nodes_publishers_on_two_a_subscriber_on_the_third() {
    let log = Arc::new(MemLog::new());
    let (_bus, nodes) = three_nodes(&log).await;
    let mut eve = nodes[2].1.connect().await.unwrap();
    let (_, stream) = within(eve.subscribe("broadcast", None)).await.unwrap();
    // Both publish at once, each through its own node's task: every notice gets its own seq.
    let (a, b) = (nodes[0].0.clone(), nodes[1].0.clone());
    let from_a = tokio::spawn(async move {
        let mut seqs = Vec::new();
        for n in 0..20 {
            seqs.push(a.publish("broadcast", json!({"a": n})).await.unwrap());
        }
        seqs
    });
    let from_b = tokio::spawn(async move {
        let mut seqs = Vec::new();
        for n in 0..20 {
            seqs.push(b.publish("broadcast", json!({"b": n})).await.unwrap());
        }
        seqs
    });
    let mut seqs = from_a.await.unwrap();
    seqs.extend(from_b.await.unwrap());
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=40).collect::<Vec<_>>(),
        "40 notices, 40 seqs, none twice"
    );
    // The subscriber on c is shown all of them, in order, each from its publisher.
    let shown = within(eve.events(stream, 40)).await.unwrap();
    let shown_seqs: Vec<u64> = shown.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(shown_seqs, (1..=40).collect::<Vec<_>>());
    let logged = records(&*log, stream.0).await;
    for (env, logged) in shown.iter().zip(&logged) {
        assert_eq!(env["body"], logged["body"]);
    }
    // A late subscriber on a reads the history there.
    let mut late = nodes[0].1.connect().await.unwrap();
    let (_, again) = within(late.subscribe("broadcast", Some(Seq(35))))
        .await
        .unwrap();
    assert_eq!(again, stream, "one stream per channel across nodes");
    let history = within(late.events(stream, 6)).await.unwrap();
    assert_eq!(history[0]["seq"], json!(35));
}

#[tokio::test(start_paused = true)]
async fn a_rematch_across_nodes_reaches_everyone_in_the_old_game() {
    use umpire_engine::protocol::{ClientMsg, ServerMsg};
    let log = Arc::new(MemLog::new());
    let (_bus, nodes) = three_nodes(&log).await;
    let mut red = nodes[0].1.connect().await.unwrap();
    let mut yellow = nodes[1].1.connect().await.unwrap();
    let mut fan = nodes[2].1.connect().await.unwrap();
    let game = within(red.create("connect4", Value::Null)).await.unwrap();
    within(yellow.join(game.join.as_deref().unwrap()))
        .await
        .unwrap();
    within(fan.watch(game.watch.as_deref().unwrap(), None))
        .await
        .unwrap();
    for (i, column) in [0, 1, 0, 1, 0, 1, 0].into_iter().enumerate() {
        let mover = if i % 2 == 0 { &mut red } else { &mut yellow };
        within(mover.command(game.game, json!({ "column": column })))
            .await
            .unwrap();
    }
    let rematch = |game| ClientMsg::Rematch { game, r#ref: None };
    // Yellow, on a node that only follows the game, asks first and creates it.
    let ServerMsg::Created { game: next, .. } =
        within(yellow.request(rematch(game.game))).await.unwrap()
    else {
        panic!("yellow should create the rematch")
    };
    // The spectator on the third node is told, with the watch key.
    let told = within(async {
        loop {
            if let ServerMsg::Rematch { next, watch, .. } = fan.recv().await.unwrap() {
                return (next, watch);
            }
        }
    })
    .await;
    assert_eq!(told.0, next);
    assert_eq!(within(fan.watch(&told.1, None)).await.unwrap(), next);
    // Red, on the old game's leader, takes the other seat of that same game.
    let answer = within(red.request(rematch(game.game))).await.unwrap();
    assert!(
        matches!(answer, ServerMsg::Joined { game, .. } if game == next),
        "{answer:?}"
    );
}
