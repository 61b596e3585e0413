//! Three `umpire serve --redis` nodes over one `redis-server`, as a user would run them, and
//! the failures the README's table describes, one test each: kill -9 of the node leading
//! most games, SIGSTOP of it past its lease and then SIGCONT, kill -9 of Redis and a restart
//! on its append-only folder.
//!
//! Six tally games, each with its two players on two nodes and a spectator on the third, and
//! a colony whose builds fall due during the failure, created on the victim node and watched
//! from another. Every command has a cid; a client whose node dies (or stops answering)
//! connects to the next node: a player takes its seat back and sends its pending command
//! again, a spectator resumes its session there with what it saw.
//!
//! Checked from Redis afterwards: one contiguous history per game; every acknowledged cid
//! once, at the seq its acknowledgement named; every tally's total its acknowledged adds;
//! everything a spectator was shown is in the log at that seq, and each spectator saw every
//! seq once, in order, across nodes; the colony's builds completed once each, the cancelled
//! one never; and the victim's games took commands again on another node within the lease
//! plus a second. One summary line per test on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use umpire_engine::protocol::{as_shown, ErrorCode};
use umpire_redis::testing::RedisServer;
use umpire_redis::{RedisLog, RedisOptions};
use umpire_store::LogRead;
use umpire_ws::client::{connect, Format, WsClient};

use support::Server;
use umpire_engine::protocol::GameId;
use umpire_engine::Seq;

const LEASE_MS: u64 = 2_000;
const GAMES: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillNode,
    StopNode,
    KillRedis,
}

struct Nodes {
    redis: RedisServer,
    servers: Vec<Option<Server>>,
    urls: Vec<String>,
}

impl Nodes {
    fn start(redis: RedisServer) -> Self {
        let mut nodes = Nodes {
            redis,
            servers: Vec::new(),
            urls: Vec::new(),
        };
        for i in 0..3 {
            let server = nodes.spawn(i);
            nodes.urls.push(server.ws());
            nodes.servers.push(Some(server));
        }
        nodes
    }

    fn spawn(&self, i: usize) -> Server {
        let url = self.redis.url();
        let name = format!("n{i}");
        let lease = LEASE_MS.to_string();
        Server::start_args(&[
            "--redis",
            &url,
            "--node-id",
            &name,
            "--lease-ms",
            &lease,
            "--rate-limit",
            "0",
        ])
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.servers[i].as_ref().unwrap().child.id().to_string();
        let done = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(done.success());
    }
}

/// Where a client is: the nodes in the order it tries them.
fn order(first: usize) -> Vec<usize> {
    (0..3).map(|k| (first + k) % 3).collect()
}

#[derive(Default)]
struct Player {
    game: u64,
    token: String,
    node: usize,
    sent: u64,
    pending: Option<String>,
    acked: HashMap<String, u64>,
    /// When each ack came.
    acked_at: Vec<Instant>,
    who: usize,
}

/// Connect to the first node of `nodes` that answers.
async fn dial(urls: &[String], from: usize) -> (WsClient, usize) {
    for attempt in 0..200 {
        let node = order(from)[attempt % 3];
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_millis(500),
            connect(&urls[node], Format::MsgPack),
        )
        .await
        {
            return (c, node);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no node took a connection");
}

/// Add with cids until `stop`; on a dead connection move to the next node, take the seat
/// back and send what is pending again.
async fn play(urls: Arc<Vec<String>>, mut p: Player, stop: Arc<Mutex<bool>>) -> Player {
    let (mut client, mut node) = dial(&urls, p.node).await;
    let mut seated = false;
    loop {
        if *stop.lock().unwrap() && p.pending.is_none() {
            p.node = node;
            return p;
        }
        if !seated {
            match tokio::time::timeout(Duration::from_secs(3), client.join(&p.token)).await {
                Ok(Ok(_)) => seated = true,
                Ok(Err(e)) if e.code() == Some(ErrorCode::Overloaded) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                _ => {
                    (client, node) = dial(&urls, node + 1).await;
                    continue;
                }
            }
        }
        let cid = p.pending.take().unwrap_or_else(|| {
            p.sent += 1;
            format!("p{}-{}", p.who, p.sent)
        });
        let sent = client.command_with_cid(GameId(p.game), json!({"add": 1}), Some(cid.clone()));
        match tokio::time::timeout(Duration::from_secs(3), sent).await {
            Ok(Ok(seq)) => {
                if let Some(first) = p.acked.insert(cid.clone(), seq.0) {
                    assert_eq!(first, seq, "{cid} acknowledged with two seqs");
                }
                p.acked_at.push(Instant::now());
            }
            // Not made durable, or the game is moving: the same cid again shortly.
            Ok(Err(e)) if matches!(e.code(), Some(ErrorCode::Overloaded | ErrorCode::Internal)) => {
                p.pending = Some(cid);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) if e.code().is_some() => panic!("{cid} refused: {e}"),
            // The connection died, or the node stopped answering: elsewhere.
            _ => {
                p.pending = Some(cid);
                seated = false;
                (client, node) = dial(&urls, node + 1).await;
            }
        }
    }
}

/// Record what a spectator is shown until `stop`; when its node goes, resume the session on
/// the next one with what it saw.
async fn spectate(
    urls: Arc<Vec<String>>,
    key: String,
    first: usize,
    stop: Arc<Mutex<bool>>,
) -> Vec<(u64, Value)> {
    let mut shown = Vec::new();
    let (mut client, mut node) = dial(&urls, first).await;
    let game = client.watch(&key, Some(Seq(1))).await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(3), client.next_event(game)).await;
        match next {
            Ok(Ok(env)) => shown.push((env["seq"].as_u64().unwrap(), env)),
            Err(_) if *stop.lock().unwrap() => return shown,
            _ => {
                // Gone or silent: resume elsewhere, from what was seen.
                loop {
                    let (fresh, at) = dial(&urls, node + 1).await;
                    node = at;
                    client.replace_wire(fresh.into_wire());
                    match tokio::time::timeout(Duration::from_secs(3), client.resume(None)).await {
                        Ok(Ok(_)) => break,
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        }
    }
}

async fn records(log: &RedisLog, game: u64) -> Vec<Value> {
    log.read(game, 1, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|(_, r)| rmp_serde::from_slice(r).unwrap())
        .collect()
}

async fn scenario(fault: Fault) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut nodes = Nodes::start(redis);
    let urls = Arc::new(nodes.urls.clone());
    // Node 0 leads half the games, the others a quarter each.
    let leaders = [0, 0, 0, 1, 1, 2];
    let mut players = Vec::new();
    let mut watch_keys = Vec::new();
    for (g, &lead) in leaders.iter().enumerate() {
        let mut c = connect(&urls[lead], Format::Json).await.unwrap();
        let made = c.create("tally", json!({"seats": 2})).await.unwrap();
        let mut other = connect(&urls[(lead + 1) % 3], Format::Json).await.unwrap();
        let joined = other.join(made.join.as_deref().unwrap()).await.unwrap();
        players.push(Player {
            game: made.game.0,
            token: made.token.clone(),
            node: lead,
            who: 2 * g,
            ..Player::default()
        });
        players.push(Player {
            game: made.game.0,
            token: joined.token,
            node: (lead + 1) % 3,
            who: 2 * g + 1,
            ..Player::default()
        });
        watch_keys.push((made.game, made.watch.unwrap(), (lead + 2) % 3));
    }
    assert_eq!(players.len(), 2 * GAMES);
    // A colony on node 0, builds falling due through the failure, the second cancelled.
    let colony = {
        let mut c = connect(&urls[0], Format::Json).await.unwrap();
        let config = json!({"build_ms": {"a": 1000, "b": 2500, "c": 4000, "d": 5500}, "seats": 2});
        let g = c.create("colony", config).await.unwrap();
        for building in ["a", "b", "c", "d"] {
            c.command(g.game, json!({"order": {"building": building}}))
                .await
                .unwrap();
        }
        c.command(g.game, json!({"cancel": {"order": 1}}))
            .await
            .unwrap();
        (g.game, g.watch.unwrap())
    };
    watch_keys.push((colony.0, colony.1.clone(), 1));

    let stop = Arc::new(Mutex::new(false));
    let runs: Vec<_> = players
        .into_iter()
        .map(|p| tokio::spawn(play(Arc::clone(&urls), p, Arc::clone(&stop))))
        .collect();
    let watchers: Vec<_> = watch_keys
        .iter()
        .map(|(_, key, node)| {
            tokio::spawn(spectate(
                Arc::clone(&urls),
                key.clone(),
                *node,
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fault_at = Instant::now();
    match fault {
        Fault::KillNode => {
            let mut server = nodes.servers[0].take().unwrap();
            server.child.kill().unwrap();
            server.child.wait().unwrap();
        }
        Fault::StopNode => {
            nodes.signal(0, "-STOP");
            tokio::time::sleep(Duration::from_millis(2 * LEASE_MS + 500)).await;
            nodes.signal(0, "-CONT");
        }
        Fault::KillRedis => {
            nodes.redis.kill();
            tokio::time::sleep(Duration::from_millis(1000)).await;
            nodes.redis.restart();
        }
    }
    // Let everyone carry on, and every build fall due.
    tokio::time::sleep(Duration::from_millis(6000)).await;
    *stop.lock().unwrap() = true;
    let mut players = Vec::new();
    for run in runs {
        players.push(
            tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("a player hung")
                .unwrap(),
        );
    }
    let mut shown = Vec::new();
    for w in watchers {
        shown.push(
            tokio::time::timeout(Duration::from_secs(60), w)
                .await
                .expect("a spectator hung")
                .unwrap(),
        );
    }

    let log = RedisLog::open(&nodes.redis.url(), RedisOptions::default())
        .await
        .unwrap();
    let (mut acked, mut lost, mut duplicated, mut wrong, mut gaps) = (0, 0, 0, 0, 0);
    let mut by_game: HashMap<u64, Vec<&Player>> = HashMap::new();
    for p in &players {
        by_game.entry(p.game).or_default().push(p);
    }
    for (game, ps) in &by_game {
        let logged = records(&log, *game).await;
        for (i, env) in logged.iter().enumerate() {
            assert_eq!(
                env["seq"].as_u64(),
                Some(i as u64 + 1),
                "game {game} forked"
            );
        }
        let mut at: HashMap<&str, Vec<u64>> = HashMap::new();
        for env in &logged {
            if let Some(cid) = env["cid"].as_str() {
                at.entry(cid)
                    .or_default()
                    .push(env["seq"].as_u64().unwrap());
            }
        }
        for (cid, seqs) in &at {
            if seqs.len() > 1 {
                eprintln!("game {game}: {cid} logged at {seqs:?}");
                for seq in seqs {
                    eprintln!("  {}", logged[(*seq - 1) as usize]);
                }
                duplicated += 1;
            }
        }
        let mut total = 0;
        for p in ps {
            for (cid, seq) in &p.acked {
                acked += 1;
                total += 1;
                if at.get(cid.as_str()) != Some(&vec![*seq]) {
                    lost += 1;
                }
            }
        }
        let adds = logged
            .iter()
            .filter(|e| e["body"]["game"].get("amount").is_some())
            .count();
        if adds != total {
            eprintln!("game {game}: {adds} adds logged, {total} acknowledged");
            lost += 1;
        }
    }
    for ((game, _, _), seen) in watch_keys.iter().zip(&shown) {
        let logged = records(&log, game.0).await;
        let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        if seqs != (1..=seqs.len() as u64).collect::<Vec<_>>() {
            gaps += 1;
        }
        for (seq, env) in seen {
            let at = logged.get(usize::try_from(*seq).unwrap() - 1);
            if at.cloned().map(as_shown).as_ref() != Some(env) {
                wrong += 1;
            }
        }
    }
    let completed: Vec<u64> = records(&log, colony.0 .0)
        .await
        .iter()
        .filter_map(|env| env["body"]["game"].get("completed")?["order"].as_u64())
        .collect();
    // Kill to the first command acknowledged after it, in each game node 0 led.
    let takeover = players
        .iter()
        .filter(|p| leaders[p.who / 2] == 0)
        .filter_map(|p| p.acked_at.iter().find(|t| **t > fault_at))
        .map(|t| t.duration_since(fault_at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "three nodes, {fault:?}: {acked} acked, {lost} lost, {duplicated} duplicated, {} events \
         shown ({wrong} not as logged, {gaps} spectators with gaps), colony builds completed \
         {completed:?}, node 0's games took commands again {takeover:?} after the fault",
        shown.iter().map(Vec::len).sum::<usize>()
    );
    assert!(acked > 0);
    assert_eq!((lost, duplicated, wrong, gaps), (0, 0, 0, 0));
    assert_eq!(
        completed,
        vec![0, 2, 3],
        "each build once, the cancelled one never"
    );
    if fault == Fault::KillNode {
        assert!(
            takeover <= Duration::from_millis(LEASE_MS + 1000),
            "took {takeover:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_node_leading_most_games_loses_nothing() {
    scenario(Fault::KillNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_its_lease_and_continued_forks_nothing() {
    scenario(Fault::StopNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_under_three_nodes_loses_nothing() {
    scenario(Fault::KillRedis).await;
}

/// Quick play over Redis: 60 players asking at once, a third on each node, make 30 full games
/// (each of the two seats given once), and every node's list of open games ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_asking_on_three_nodes_at_once_are_paired_in_full_games() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes = Nodes::start(redis);
    let mut clients = Vec::new();
    for i in 0..60 {
        clients.push(connect(&nodes.urls[i % 3], Format::Json).await.unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in clients {
        tasks.spawn(async move {
            let game = tokio::time::timeout(
                Duration::from_secs(30),
                c.play("connect4", Value::Null, Value::Null),
            )
            .await
            .expect("seated within 30 s")
            .unwrap();
            (c, game)
        });
    }
    let mut seats: HashMap<u64, Vec<u16>> = HashMap::new();
    let mut connected = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (c, game) = done.unwrap();
        seats.entry(game.game.0).or_default().push(game.seat.0);
        connected.push(c);
    }
    assert_eq!(seats.len(), 30, "60 players, 30 games: {seats:?}");
    for (game, mut s) in seats {
        s.sort_unstable();
        assert_eq!(s, vec![0, 1], "game {game}");
    }
    for server in nodes.servers.iter().flatten() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = server.get("/api/games?kind=connect4").await;
            assert_eq!(status, 200, "{body}");
            if serde_json::from_str::<Value>(&body).unwrap()["games"] == json!([]) {
                break;
            }
            assert!(Instant::now() < deadline, "still listed: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!("quick play over Redis: 60 players on 3 nodes, 30 full games");
    drop(connected);
}
