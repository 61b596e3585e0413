//! The crash harness: `umpire serve` as a child process, clients adding with client ids as fast
//! as they are acknowledged (and resending what was not acknowledged after each restart),
//! spectators recording every event they are shown, and SIGKILL at seeded random moments, 20
//! times. Then, from the log itself: every acknowledged add is there once, at the seq its
//! acknowledgement named; no cid twice; everything shown is what the log holds at that seq;
//! colony builds complete (those due while the server was down, once it is back) in due order,
//! and the cancelled one never.
//!
//! Two pairs play Connect Four throughout (moves with cids, a new game after each win), and at the
//! end every game is replayed from the log with its rules: the replayed state is what its
//! players were acknowledged (every tally's total is its player's acknowledged adds, every
//! board holds exactly the acknowledged moves), and a spectator reading each game from the start
//! after the last restart is shown exactly the log.
//!
//! `UMPIRE_CRASH_SEED` picks the schedule (default 1). One summary line on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use umpire_engine::protocol::{as_shown, ErrorCode};
use umpire_engine::{Envelope, Match};
use umpire_games::{Connect4, Tally};
use umpire_redis::testing::RedisServer;
use umpire_store::LogRead;
use umpire_ws::client::{connect, Format};

use support::{Backend, Server};
use umpire_engine::protocol::GameId;
use umpire_engine::Seq;

const KILLS: usize = 20;
const PLAYERS: usize = 3;
const DUOS: usize = 2;

/// xorshift64*: the schedule, from the seed alone.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[derive(Clone, Default)]
struct Player {
    game: u64,
    token: String,
    watch: String,
    /// Adds sent so far (the next cid's number).
    sent: u64,
    /// A cid sent whose answer was lost with the connection: sent again first.
    pending: Option<String>,
    /// cid -> the seq its acknowledgement named.
    acked: HashMap<String, u64>,
}

/// Play until the connection drops: resend the pending cid, then add with fresh ones.
async fn play(url: String, mut p: Player) -> Player {
    let Ok(mut client) = connect(&url, Format::MsgPack).await else {
        return p;
    };
    if client.join(&p.token).await.is_err() {
        return p;
    }
    loop {
        let cid = p.pending.take().unwrap_or_else(|| {
            p.sent += 1;
            format!("add-{}", p.sent)
        });
        match client
            .command_with_cid(GameId(p.game), json!({"add": 1}), Some(cid.clone()))
            .await
        {
            Ok(seq) => {
                if let Some(first) = p.acked.insert(cid.clone(), seq.0) {
                    assert_eq!(first, seq, "{cid} acknowledged twice with different seqs");
                }
            }
            Err(_) => {
                p.pending = Some(cid);
                return p;
            }
        }
    }
}

/// One Connect Four game of a pair.
#[derive(Clone)]
struct Board {
    game: u64,
    /// Red's and yellow's seat tokens.
    tokens: [String; 2],
    watch: String,
    /// Moves acknowledged: (cid, seq).
    acked: Vec<(String, u64)>,
    over: bool,
}

/// Two players of Connect Four, who start a new game after each one ends.
#[derive(Clone, Default)]
struct Duo {
    boards: Vec<Board>,
    /// A move sent whose answer was lost with the connection.
    pending: Option<String>,
}

impl Duo {
    /// The next move of the current game: its cid and column. Columns in turn 0..6 never
    /// fill one up; a diagonal wins after a while.
    fn next_move(&mut self) -> Option<(u64, String, u64)> {
        let board = self.boards.last().filter(|b| !b.over)?;
        let n = board.acked.len() as u64;
        let cid = self.pending.take().unwrap_or_else(|| format!("move-{n}"));
        Some((board.game, cid, n % 7))
    }
}

/// Play Connect Four until the connection drops.
async fn duel(url: String, mut d: Duo) -> Duo {
    let (Ok(mut red), Ok(mut yellow)) = (
        connect(&url, Format::Json).await,
        connect(&url, Format::MsgPack).await,
    ) else {
        return d;
    };
    if let Some(board) = d.boards.last().filter(|b| !b.over) {
        if red.join(&board.tokens[0]).await.is_err() || yellow.join(&board.tokens[1]).await.is_err()
        {
            return d;
        }
    }
    loop {
        let Some((game, cid, column)) = d.next_move() else {
            let Ok(g) = red.create("connect4", Value::Null).await else {
                return d;
            };
            let Ok(y) = yellow.join(g.join.as_deref().unwrap()).await else {
                return d;
            };
            d.boards.push(Board {
                game: g.game.0,
                tokens: [g.token, y.token],
                watch: g.watch.unwrap(),
                acked: Vec::new(),
                over: false,
            });
            continue;
        };
        let board = d.boards.last_mut().unwrap();
        let mover = if board.acked.len().is_multiple_of(2) {
            &mut red
        } else {
            &mut yellow
        };
        match mover
            .command_with_cid(GameId(game), json!({ "column": column }), Some(cid.clone()))
            .await
        {
            Ok(seq) => board.acked.push((cid, seq.0)),
            Err(e) if e.code() == Some(ErrorCode::GameOver) => board.over = true,
            // Not made durable (the store failed under the node): sent again later.
            Err(e) if matches!(e.code(), Some(ErrorCode::Internal | ErrorCode::Overloaded)) => {
                d.pending = Some(cid);
                return d;
            }
            // The moves alternate by what was acknowledged: a refusal means an acknowledged
            // move is missing (or one was applied twice).
            Err(e) if e.code().is_some() => {
                panic!("move {cid} of game {game} refused, so the log lost or repeated a move: {e}")
            }
            Err(_) => {
                d.pending = Some(cid);
                return d;
            }
        }
    }
}

/// Send a pair's lost move again, once the server stays up.
async fn resend_move(url: &str, d: &mut Duo) {
    let Some(cid) = d.pending.clone() else {
        return;
    };
    let board = d.boards.last_mut().unwrap();
    let mover = board.acked.len() % 2;
    let mut c = connect(url, Format::Json).await.unwrap();
    c.join(&board.tokens[mover]).await.unwrap();
    let column = board.acked.len() as u64 % 7;
    match c
        .command_with_cid(
            GameId(board.game),
            json!({ "column": column }),
            Some(cid.clone()),
        )
        .await
    {
        Ok(seq) => board.acked.push((cid, seq.0)),
        Err(e) if e.code() == Some(ErrorCode::GameOver) => board.over = true,
        Err(e) => panic!("the lost move {cid} was refused: {e}"),
    }
    d.pending = None;
}

/// Every record of `game`, shown to a new spectator from seq 1.
async fn shown_from_start(url: &str, key: &str, records: usize) -> Vec<Value> {
    let mut c = connect(url, Format::Json).await.unwrap();
    let game = c.watch(key, Some(Seq(1))).await.unwrap();
    c.events(game, records).await.unwrap()
}

/// Replay `logged` with `G`'s rules.
fn replay<G: umpire_engine::Game>(game: &G, logged: &[Value]) -> Match<G> {
    let envs: Vec<Envelope<G>> = logged
        .iter()
        .map(|env| serde_json::from_value(env.clone()).unwrap())
        .collect();
    Match::replay(game, &envs).unwrap()
}

/// Watch `game` from `from` until the connection drops; what was shown, by seq.
/// Record what a spectator is shown until the connection drops, or `stop` (the server was
/// not the one killed, so the connection stays).
async fn watch(
    url: String,
    key: String,
    from: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(u64, Value)> {
    let mut shown = Vec::new();
    let Ok(mut client) = connect(&url, Format::Json).await else {
        return shown;
    };
    let Ok(game) = client.watch(&key, Some(Seq(from))).await else {
        return shown;
    };
    loop {
        tokio::select! {
            event = client.next_event(game) => match event {
                Ok(env) => shown.push((env["seq"].as_u64().unwrap(), env)),
                Err(_) => return shown,
            },
            _ = stop.wait_for(|s| *s) => return shown,
        }
    }
}

/// What each round kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    /// The umpire node (and starts it again).
    Node,
    /// The Redis the node uses (and starts it again on the same append-only folder); the
    /// node keeps running.
    Store,
}

/// Wait for `/healthz` to say 200 (the node found its store again).
async fn wait_until_healthy(server: &Server) {
    for _ in 0..200 {
        if server.get("/healthz").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node did not become healthy again");
}

async fn records(log: &dyn LogRead, game: u64) -> Vec<Value> {
    log.read(game, 1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|(_, r)| rmp_serde::from_slice(r).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_repeats_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    harness(
        Backend::Data(dir.path().join("data")),
        KILLS,
        Victim::Node,
        None,
    )
    .await;
}

/// The same on Redis: the node is killed, Redis keeps running, and the node started again
/// on the same URL finds every acknowledged move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_on_redis_loses_and_repeats_nothing_acknowledged() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    harness(Backend::Redis(redis.url()), KILLS / 2, Victim::Node, None).await;
}

/// Redis killed with SIGKILL under a running node, and started again on the same
/// append-only folder: the node answers what it could not make durable with an error, serves
/// again once Redis is back, and nothing acknowledged is lost or applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_under_a_node_loses_and_repeats_nothing_acknowledged() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    harness(Backend::Redis(url), 5, Victim::Store, Some(&mut redis)).await;
}

async fn harness(
    backend: Backend,
    kills: usize,
    victim: Victim,
    mut redis: Option<&mut RedisServer>,
) {
    let seed: u64 = std::env::var("UMPIRE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    // Games nobody follows leave memory after a second: the colony sleeps between its builds
    // and its timers come back through the wake-up index, across kills.
    let mut args = vec!["--rate-limit", "0", "--evict-after-secs", "1"];
    if let Backend::Redis(_) = backend {
        // The node started again takes its games back at once, under the same name.
        args.extend(["--node-id", "crash-node", "--lease-ms", "2000"]);
    }

    let mut server = Server::start_on(&backend, &args);
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        let mut c = connect(&server.ws(), Format::Json).await.unwrap();
        let g = c.create("tally", json!({"seats": 2})).await.unwrap();
        players.push(Player {
            game: g.game.0,
            token: g.token,
            watch: g.watch.unwrap(),
            ..Player::default()
        });
    }
    // A colony with four builds under way, the second cancelled: they fall due during the
    // rounds, some while the server is down.
    let colony = {
        let mut c = connect(&server.ws(), Format::Json).await.unwrap();
        let config = json!({"build_ms": {"a": 700, "b": 1400, "c": 2100, "d": 2800}, "seats": 2});
        let g = c.create("colony", config).await.unwrap();
        for building in ["a", "b", "c", "d"] {
            c.command(g.game, json!({"order": {"building": building}}))
                .await
                .unwrap();
        }
        c.command(g.game, json!({"cancel": {"order": 1}}))
            .await
            .unwrap();
        g.game
    };

    let mut shown: Vec<Vec<(u64, Value)>> = vec![Vec::new(); PLAYERS];
    let mut duos = vec![Duo::default(); DUOS];
    for _ in 0..kills {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let url = server.ws();
        let duels: Vec<_> = duos
            .iter()
            .map(|d| tokio::spawn(duel(url.clone(), d.clone())))
            .collect();
        let runs: Vec<_> = players
            .iter()
            .map(|p| tokio::spawn(play(url.clone(), p.clone())))
            .collect();
        let watchers: Vec<_> = players
            .iter()
            .zip(&shown)
            .map(|(p, seen)| {
                let from = seen.last().map_or(1, |(seq, _)| seq + 1);
                tokio::spawn(watch(url.clone(), p.watch.clone(), from, stop_rx.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30 + rng.below(300))).await;
        match (victim, redis.as_deref_mut()) {
            (Victim::Store, Some(redis)) => redis.kill(),
            _ => {
                server.child.kill().unwrap(); // SIGKILL
                server.child.wait().unwrap();
            }
        }
        for (p, run) in players.iter_mut().zip(runs) {
            *p = tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .expect("a client hung after the kill")
                .unwrap();
        }
        if victim == Victim::Store {
            // Spectators of a node that kept running stay connected: they have seen what
            // they will see of this round once the players stopped.
            let _ = stop.send(true);
        }
        for (seen, watcher) in shown.iter_mut().zip(watchers) {
            seen.extend(watcher.await.unwrap());
        }
        for (d, run) in duos.iter_mut().zip(duels) {
            *d = tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .expect("a pair hung after the kill")
                .unwrap();
        }
        match (victim, redis.as_deref_mut()) {
            (Victim::Store, Some(redis)) => {
                redis.restart();
                wait_until_healthy(&server).await;
            }
            _ => server = Server::start_on(&backend, &args),
        }
    }
    // Once more without a kill: what was pending is sent again, and every build falls due.
    let url = server.ws();
    for p in &mut players {
        let mut c = connect(&url, Format::Json).await.unwrap();
        c.join(&p.token).await.unwrap();
        if let Some(cid) = p.pending.take() {
            let seq = c
                .command_with_cid(GameId(p.game), json!({"add": 1}), Some(cid.clone()))
                .await
                .unwrap();
            p.acked.insert(cid, seq.0);
        }
    }
    for d in &mut duos {
        resend_move(&url, d).await;
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    server.terminate();
    tokio::task::block_in_place(|| server.child.wait()).unwrap();
    drop(server);
    let opened = backend.open().await;
    let log = &*opened;

    let (mut acked, mut lost, mut duplicated, mut wrong) = (0, 0, 0, 0);
    for (p, seen) in players.iter().zip(&shown) {
        let logged = records(log, p.game).await;
        let mut at: HashMap<&str, Vec<u64>> = HashMap::new();
        for env in &logged {
            if let Some(cid) = env["cid"].as_str() {
                at.entry(cid)
                    .or_default()
                    .push(env["seq"].as_u64().unwrap());
            }
        }
        duplicated += at.values().filter(|seqs| seqs.len() > 1).count();
        for (cid, seq) in &p.acked {
            acked += 1;
            if at.get(cid.as_str()) != Some(&vec![*seq]) {
                lost += 1;
            }
        }
        // Everything shown is in the log, as shown.
        for (seq, env) in seen {
            let at = logged.get(usize::try_from(*seq).unwrap() - 1);
            if at.cloned().map(as_shown).as_ref() != Some(env) {
                wrong += 1;
            }
        }
    }
    // Every tally, replayed by its rules, holds exactly its player's acknowledged adds.
    for p in &players {
        let m = replay(&Tally, &records(log, p.game).await);
        assert_eq!(
            m.state().total,
            i64::try_from(p.acked.len()).unwrap(),
            "game {}: the replayed total is not the adds acknowledged",
            p.game
        );
    }
    // Every Connect Four board holds exactly the acknowledged moves, each once.
    let (mut moves, mut c4_games) = (0, 0);
    for board in duos.iter().flat_map(|d| &d.boards) {
        let logged = records(log, board.game).await;
        let m = replay(&Connect4, &logged);
        assert_eq!(
            m.state().moves.len(),
            board.acked.len(),
            "game {}: the board is not the moves acknowledged",
            board.game
        );
        for (cid, seq) in &board.acked {
            acked += 1;
            moves += 1;
            // A winning move logs its disc and the end, both with its cid: the answer names
            // the last.
            let with_cid: Vec<&Value> = logged
                .iter()
                .filter(|env| env["cid"].as_str() == Some(cid.as_str()))
                .collect();
            let discs = with_cid
                .iter()
                .filter(|env| env["body"].get("game").is_some())
                .count();
            if with_cid.last().map(|env| env["seq"].as_u64()) != Some(Some(*seq)) {
                lost += 1;
            }
            if discs > 1 {
                duplicated += 1;
            }
        }
        c4_games += 1;
    }
    replay(&umpire_games::Colony, &records(log, colony.0).await);
    let completed: Vec<u64> = records(log, colony.0)
        .await
        .iter()
        .filter_map(|env| env["body"]["game"].get("completed")?["order"].as_u64())
        .collect();
    let shown_total: usize = shown.iter().map(Vec::len).sum();
    // Once more: a spectator who comes now is shown every game from the start, as logged.
    let mut streams: Vec<(String, Vec<Value>)> = Vec::new();
    for p in &players {
        streams.push((p.watch.clone(), records(log, p.game).await));
    }
    for board in duos.iter().flat_map(|d| &d.boards) {
        streams.push((board.watch.clone(), records(log, board.game).await));
    }
    drop(opened);
    let server = Server::start_on(&backend, &args);
    for (key, logged) in &streams {
        let seen = shown_from_start(&server.ws(), key, logged.len()).await;
        let logged: Vec<Value> = logged.iter().cloned().map(as_shown).collect();
        if seen != logged {
            wrong += 1;
        }
    }
    drop(server);
    eprintln!(
        "crash harness ({backend}, {victim:?} killed): seed {seed}, {kills} kills, {acked} acked ({moves} Connect Four moves in \
         {c4_games} games), {lost} lost, {duplicated} duplicated, {shown_total} events shown \
         ({wrong} not as logged), colony builds completed {completed:?}"
    );
    assert!(acked > 0, "nothing was acknowledged");
    assert_eq!((lost, duplicated, wrong), (0, 0, 0));
    assert_eq!(
        completed,
        vec![0, 2, 3],
        "builds in due order, the cancelled one never"
    );
}
