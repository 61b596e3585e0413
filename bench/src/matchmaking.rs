//! `matchmaking`: N players connected, then asking for Connect Four (`play`) within a second
//! (`--over-ms`, evenly spread; 0: all in one burst), then each making one move in the game
//! it was given. Reports pairs made per second and the time
//! from asking to a seat (p50, p99), and checks that every player was seated once, every game
//! has both its seats taken by two different players, and no open game is left (nobody waits
//! alone while another waits).
//!
//! The raw limit, on a fresh server in the same run: the same N players already paired by the
//! load generator, the first of each pair creating the game and the second joining with the
//! key as soon as it exists: what seating N players costs the server without a lobby.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Barrier};
use umpire_engine::protocol::{ClientMsg, ServerMsg};

use crate::child::{local_runtime, on_cpu, umpire_args, Server};
use crate::report::{count, ms, ms_f, ratio, Percentiles, Table};
use crate::wire::{connect, native, next_reply, Proto, Ws};
use crate::Common;

/// `matchmaking` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct MatchmakingArgs {
    /// Players asking (even).
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// Over how long they ask, evenly spread, in ms (0: all in one burst).
    #[arg(long, default_value_t = 1000)]
    over_ms: u64,
}

/// One player seated.
#[derive(Debug, Clone)]
struct Seated {
    player: usize,
    game: u64,
    seat: u16,
    /// From its request to its answer.
    took: Duration,
    /// When it was answered, from the start.
    at: Duration,
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    seated: Vec<Seated>,
    /// From the first request to the last seat.
    all_seated: Duration,
    /// Every player's move acknowledged, from the barrier.
    moves: Duration,
    /// Open games listed at the end (`GET /api/games?kind=connect4`).
    left_open: usize,
}

pub(crate) fn run(common: &Common, args: &MatchmakingArgs) -> anyhow::Result<bool> {
    let n = if common.smoke {
        40
    } else {
        args.players.max(2) & !1
    };
    let over = Duration::from_millis(if common.smoke { 100 } else { args.over_ms });
    let start = |data: &tempfile::TempDir| {
        Server::start(
            "umpire",
            &umpire_args(Some(data.path()), "sync", &[]),
            common.server_cpu,
        )
    };
    let data = tempfile::tempdir()?;
    let ours = {
        let server = start(&data)?;
        drive(common, server.addr, n, over, Mode::Play)?
    };
    let data = tempfile::tempdir()?;
    let raw = {
        let server = start(&data)?;
        drive(common, server.addr, n, over, Mode::Paired)?
    };
    let mut ok = true;
    let mut table = Table::new(
        format!(
            "matchmaking: {n} players asking for Connect Four within {} ms, then one move each",
            over.as_millis()
        ),
        &[
            "players seated by",
            "pairs/s",
            "vs raw",
            "last seated at",
            "time to a seat p50",
            "p99",
            "max",
            "moves acked in",
            "checks",
        ],
    );
    let mut rows = Vec::new();
    for (name, o) in [
        ("play (the lobby)", &ours),
        ("create + join, pre-paired (raw)", &raw),
    ] {
        let problems = check(n, o);
        ok &= problems.is_empty();
        for p in &problems {
            eprintln!("matchmaking, {name}: {p}");
        }
        let mut took: Vec<Duration> = o.seated.iter().map(|s| s.took).collect();
        let p = Percentiles::of(&mut took);
        let pairs = (n / 2) as f64 / o.all_seated.as_secs_f64();
        let raw_pairs = (n / 2) as f64 / raw.all_seated.as_secs_f64();
        table.row(vec![
            name.into(),
            count(pairs),
            if std::ptr::eq(o, &ours) {
                ratio(pairs, raw_pairs)
            } else {
                String::new()
            },
            ms(o.all_seated),
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            ms(o.moves),
            if problems.is_empty() {
                "ok".into()
            } else {
                format!("{} FAILED", problems.len())
            },
        ]);
        rows.push(json!({
            "mode": name, "players": n, "pairs_per_sec": pairs.round(),
            "all_seated_ms": ms_f(o.all_seated), "seat_p50_ms": ms_f(p.p50),
            "seat_p99_ms": ms_f(p.p99), "seat_max_ms": ms_f(p.max),
            "moves_ms": ms_f(o.moves), "ok": problems.is_empty(),
        }));
    }
    table.print();
    crate::report::json_line("matchmaking", rows);
    Ok(ok)
}

/// What went wrong in `o`: a player seated twice or never, a game without exactly two
/// different players in seats 0 and 1, an open game left.
fn check(n: usize, o: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let mut players = vec![0u32; n];
    let mut games: std::collections::HashMap<u64, Vec<(u16, usize)>> = Default::default();
    for s in &o.seated {
        players[s.player] += 1;
        games.entry(s.game).or_default().push((s.seat, s.player));
    }
    let twice = players.iter().filter(|&&c| c > 1).count();
    let never = players.iter().filter(|&&c| c == 0).count();
    if twice > 0 {
        problems.push(format!("{twice} players seated twice"));
    }
    if never > 0 {
        problems.push(format!("{never} players never seated"));
    }
    if games.len() != n / 2 {
        problems.push(format!("{} games for {n} players", games.len()));
    }
    for (game, mut seats) in games {
        seats.sort_unstable();
        let ok = seats.len() == 2 && seats[0].0 == 0 && seats[1].0 == 1 && seats[0].1 != seats[1].1;
        if !ok {
            problems.push(format!("game {game} seated {seats:?}"));
        }
    }
    if o.left_open > 0 {
        problems.push(format!(
            "{} open games left with a player waiting",
            o.left_open
        ));
    }
    problems
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every player sends `play`.
    Play,
    /// Players 2k and 2k+1 are a pair: 2k creates, 2k+1 joins with its key.
    Paired,
}

fn drive(
    common: &Common,
    addr: SocketAddr,
    n: usize,
    over: Duration,
    mode: Mode,
) -> anyhow::Result<Outcome> {
    on_cpu(common.client_cpu, move || {
        local_runtime()?.block_on(async move {
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                conns.push(connect(addr, Proto::Json).await?);
            }
            let seated_barrier = Arc::new(Barrier::new(n + 1));
            let first_moved = Arc::new(Barrier::new(n + 1));
            let (seat_tx, mut seat_rx) = mpsc::unbounded_channel();
            // The joiners of pre-paired games wait for their creator's key.
            let mut keys: Vec<Option<tokio::sync::oneshot::Sender<String>>> = Vec::new();
            let mut key_rx: Vec<Option<tokio::sync::oneshot::Receiver<String>>> = Vec::new();
            for _ in 0..n / 2 {
                let (tx, rx) = tokio::sync::oneshot::channel();
                keys.push(Some(tx));
                key_rx.push(Some(rx));
            }
            let t0 = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (player, ws) in conns.into_iter().enumerate() {
                let role = match mode {
                    Mode::Play => Role::Play,
                    Mode::Paired if player % 2 == 0 => {
                        Role::Create(keys[player / 2].take().context("one creator a pair")?)
                    }
                    Mode::Paired => Role::Join(key_rx[player / 2].take().context("one joiner")?),
                };
                // Each pair's players ask at the same moment; pairs evenly over `over`.
                let ask_at = t0 + over.mul_f64((player / 2) as f64 / (n / 2) as f64);
                let shared = Shared {
                    t0,
                    seat_tx: seat_tx.clone(),
                    seated: Arc::clone(&seated_barrier),
                    first_moved: Arc::clone(&first_moved),
                };
                tasks.spawn(player_task(player, ws, ask_at, role, shared));
            }
            drop(seat_tx);
            let mut seated = Vec::with_capacity(n);
            // Everyone seated (or a task failed and dropped its sender).
            while seated.len() < n {
                match tokio::time::timeout(Duration::from_secs(60), seat_rx.recv()).await {
                    Ok(Some(s)) => seated.push(s),
                    Ok(None) => break,
                    Err(_) => bail!("{} of {n} players seated after a minute", seated.len()),
                }
            }
            if seated.len() < n {
                // A player failed: its error, from its task.
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                bail!("{} of {n} players seated", seated.len());
            }
            let all_seated = seated.iter().map(|s| s.at).max().unwrap_or_default();
            // Seat 0 moves, then seat 1 (Connect Four's turns).
            let moving = Instant::now();
            seated_barrier.wait().await;
            first_moved.wait().await;
            while let Some(done) = tasks.join_next().await {
                done??;
            }
            let moves = moving.elapsed();
            let left_open = open_games(addr).await?;
            Ok(Outcome {
                seated,
                all_seated,
                moves,
                left_open,
            })
        })
    })
}

/// What every player task reports to and waits on.
struct Shared {
    t0: Instant,
    seat_tx: mpsc::UnboundedSender<Seated>,
    /// Everyone seated: seat 0 moves.
    seated: Arc<Barrier>,
    /// Every seat 0 moved: seat 1 moves.
    first_moved: Arc<Barrier>,
}

enum Role {
    Play,
    Create(tokio::sync::oneshot::Sender<String>),
    Join(tokio::sync::oneshot::Receiver<String>),
}

/// One player: ask (play, create or join), report its seat, then make its move in turn.
async fn player_task(
    player: usize,
    mut ws: Ws,
    ask_at: Instant,
    role: Role,
    shared: Shared,
) -> anyhow::Result<()> {
    let Shared {
        t0,
        seat_tx,
        seated,
        first_moved,
    } = shared;
    tokio::time::sleep_until(ask_at.into()).await;
    let asked = Instant::now();
    let msg = match &role {
        Role::Play => ClientMsg::Play {
            kind: "connect4".into(),
            config: Value::Null,
            props: Value::Null,
            r#ref: Some(json!(1)),
        },
        Role::Create(_) => ClientMsg::Create {
            kind: "connect4".into(),
            config: Value::Null,
            open: false,
            r#ref: Some(json!(1)),
        },
        Role::Join(_) => ClientMsg::Join {
            key: String::new(),
            r#ref: Some(json!(1)),
        },
    };
    let (msg, key_tx) = match (msg, role) {
        (ClientMsg::Join { r#ref, .. }, Role::Join(rx)) => {
            let key = rx.await.context("the creator's key")?;
            (ClientMsg::Join { key, r#ref }, None)
        }
        (msg, Role::Create(tx)) => (msg, Some(tx)),
        (msg, _) => (msg, None),
    };
    ws.send(native(Proto::Json, &msg)).await?;
    let (game, seat) = loop {
        match next_reply(&mut ws).await? {
            ServerMsg::Created {
                game, seat, join, ..
            } => {
                if let Some(tx) = key_tx {
                    let _ = tx.send(join);
                }
                break (game.0, seat.0);
            }
            ServerMsg::Joined { game, seat, .. } => break (game.0, seat.0),
            ServerMsg::Error { message, .. } => bail!("player {player}: {message}"),
            _ => {}
        }
    };
    let now = Instant::now();
    let _ = seat_tx.send(Seated {
        player,
        game,
        seat,
        took: now - asked,
        at: now - t0,
    });
    drop(seat_tx);
    let column = if seat == 0 { 0 } else { 1 };
    let command = ClientMsg::Command {
        game: umpire_engine::protocol::GameId(game),
        cmd: json!({ "column": column }),
        cid: None,
        r#ref: Some(json!(2)),
    };
    seated.wait().await;
    if seat == 0 {
        ws.send(native(Proto::Json, &command)).await?;
        expect_ok(&mut ws, player).await?;
        first_moved.wait().await;
    } else {
        first_moved.wait().await;
        ws.send(native(Proto::Json, &command)).await?;
        expect_ok(&mut ws, player).await?;
    }
    let _ = ws.close(None).await;
    Ok(())
}

async fn expect_ok(ws: &mut Ws, player: usize) -> anyhow::Result<()> {
    loop {
        match next_reply(ws).await? {
            ServerMsg::Ok { .. } => return Ok(()),
            ServerMsg::Error { message, .. } => bail!("player {player}'s move: {message}"),
            _ => {}
        }
    }
}

/// How many open games `GET /api/games?kind=connect4` lists.
async fn open_games(addr: SocketAddr) -> anyhow::Result<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET /api/games?kind=connect4 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("no body")?;
    let value: Value = serde_json::from_str(body).context("the open games")?;
    Ok(value["games"].as_array().map_or(0, Vec::len))
}
