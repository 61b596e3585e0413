//! `fanout`: G games x S spectators. In every game two players play the longest Connect Four
//! game there is (42 moves, a draw), each moving as soon as the other's move reaches them;
//! S spectators and both players read everything. When a game ends the slot starts another.
//!
//! Counted over the measured window: moves (whose last receiver got them in the window),
//! deliveries (move events received by anyone), and the latency from sending a move to its
//! last receiver. Every receiver must see every move of every game exactly once and in order.
//!
//! Beside umpire: `raw`, the minimal server keeping the games in memory, and `raw + file`, the
//! same server durable the plain way (each event appended to a file, what a batch of moves
//! sends held back until one `fdatasync`): the physical limit of a durable fan-out.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use umpire_engine::protocol::{ClientMsg, ServerMsg};

use crate::child::{local_runtime, on_cpu, umpire_args, Server};
use crate::report::{count, ms, ms_f, ratio, Percentiles, Table};
use crate::wire::{classify, connect, expect_reply, native, Proto, Seen, Ws};
use crate::Common;
use umpire_engine::protocol::GameId;

/// A 42-move Connect Four game in which nobody ever has four in a row: the longest game.
const DRAW: [u8; 42] = [
    0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6, 1, 3, 5, 0, 2, 4, 6,
    1, 3, 5, 0, 2, 4, 6, 1, 3, 5,
];
/// Native seqs: 1 `created`, 2 to 5 each player seated then online, then the moves, then
/// `over`.
const FIRST_MOVE_SEQ: u64 = 6;
const OVER_SEQ: u64 = FIRST_MOVE_SEQ + DRAW.len() as u64;
/// How long any one frame may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(30);

/// `GAMESxSPECTATORS`, such as `50x2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) games: usize,
    pub(crate) spectators: usize,
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (g, sp) = s.split_once('x').ok_or("expected GAMESxSPECTATORS")?;
        Ok(Shape {
            games: g.parse().map_err(|e| format!("{e}"))?,
            spectators: sp.parse().map_err(|e| format!("{e}"))?,
        })
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.games, self.spectators)
    }
}

/// `fanout` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct FanoutArgs {
    /// Shapes to run, as GAMESxSPECTATORS.
    #[arg(long, value_delimiter = ',', default_value = "1x100,50x2,10x1000")]
    shapes: Vec<Shape>,
    /// Protocols to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "json,msgpack,tutorial"
    )]
    protocols: Vec<Proto>,
    /// Seconds measured per run, after a one-second warm-up.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// umpire's durability (`sync`, `batched`, `none`).
    #[arg(long, default_value = "sync")]
    durability: String,
    /// Skip the raw server (to profile umpire alone).
    #[arg(long)]
    no_raw: bool,
    /// Also run umpire with its log in memory (`umpire serve --memory`): what umpire costs
    /// without its storage.
    #[arg(long)]
    memory_log: bool,
    /// Measure a tutorial-protocol server that is already running there instead (the Python
    /// `websockets` tutorial's, say), with `--protocols tutorial`.
    #[arg(long)]
    external: Option<SocketAddr>,
    /// The external server's process id, to read its CPU time.
    #[arg(long)]
    external_pid: Option<u32>,
}

/// A server to measure: where it listens, its process (for CPU time), whether it is umpire
/// (for its flush count).
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    pid: Option<u32>,
    umpire: bool,
    /// Other nodes serving the same games (umpire on Redis): each game's second player
    /// connects to the next node, its spectators round the nodes.
    others: Vec<(SocketAddr, u32)>,
}

impl Target {
    fn of(server: &Server, umpire: bool) -> Self {
        Target {
            addr: server.addr,
            pid: Some(server.pid()),
            umpire,
            others: Vec::new(),
        }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr)
            .chain(self.others.iter().map(|(a, _)| *a))
            .collect()
    }
}

/// What one run measured.
#[derive(Debug, Default)]
struct Outcome {
    moves: u64,
    deliveries: u64,
    latency: Percentiles,
    games: u64,
    window: Duration,
    server_cpu: Duration,
    /// Flushes of umpire's log in the window (none for the raw server).
    flushes: Option<f64>,
    problems: Vec<String>,
}

impl Outcome {
    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.window.as_secs_f64()
    }

    fn cpu_per_move(&self) -> Duration {
        if self.moves == 0 {
            return Duration::ZERO;
        }
        self.server_cpu / u32::try_from(self.moves).unwrap_or(u32::MAX)
    }
}

pub(crate) fn run(common: &Common, args: &FanoutArgs) -> anyhow::Result<bool> {
    let mut args = args.clone();
    let warmup = if common.smoke {
        args.shapes = vec![Shape {
            games: 2,
            spectators: 3,
        }];
        args.secs = 0.5;
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let measured = Duration::from_secs_f64(args.secs);
    let mut table = Table::new(
        format!(
            "fanout: Connect Four, players moving as fast as acks allow ({} durability)",
            args.durability
        ),
        &[
            "shape",
            "protocol",
            "server",
            "moves/s",
            "deliveries/s",
            "p50",
            "p99",
            "max",
            "CPU/move",
            "vs raw",
            "p99 vs raw",
            "moves/flush",
        ],
    );
    let mut json_rows = Vec::new();
    let mut clean = true;
    let redis = common.redis()?;
    for &shape in &args.shapes {
        for &proto in &args.protocols {
            if let Some(addr) = args.external {
                let target = Target {
                    addr,
                    pid: args.external_pid,
                    umpire: false,
                    others: Vec::new(),
                };
                let o = measure(common, target, proto, shape, warmup, measured)?;
                clean &= report(
                    &mut table,
                    &mut json_rows,
                    shape,
                    proto,
                    "external",
                    &o,
                    None,
                );
                continue;
            }
            // The raw server, then the same made durable the plain way (what a durable fan-out
            // costs at least).
            let raw_server = |flags: &[String]| -> anyhow::Result<Option<Outcome>> {
                if args.no_raw {
                    return Ok(None);
                }
                let server = Server::start("raw-fanout", flags, common.server_cpu)?;
                let target = Target::of(&server, false);
                measure(common, target, proto, shape, warmup, measured).map(Some)
            };
            let raw = raw_server(&[])?;
            let dir = tempfile::tempdir()?;
            let raw_file = raw_server(&["--durable".to_owned(), dir.path().display().to_string()])?;
            // umpire on a fresh log folder, and (optionally) with its log in memory.
            let umpire = |data: Option<&std::path::Path>| {
                let flags = umpire_args(data, &args.durability, &[]);
                let server = Server::start("umpire", &flags, common.server_cpu)?;
                let target = Target::of(&server, true);
                measure(common, target, proto, shape, warmup, measured)
            };
            let data = tempfile::tempdir()?;
            let ours = umpire(Some(data.path()))?;
            let memory = if args.memory_log {
                Some(umpire(None)?)
            } else {
                None
            };
            // On Redis: one node, then three sharing the games.
            let (on_redis, three_nodes) = match &redis {
                Some((url, _)) => {
                    let prefix = crate::fresh_prefix("fanout");
                    let nodes = |n: usize| -> anyhow::Result<Outcome> {
                        let prefix = format!("{prefix}-{n}");
                        let mut servers = Vec::new();
                        for i in 0..n {
                            let node = format!("n{i}");
                            let extra = [
                                "--redis",
                                url.as_str(),
                                "--redis-prefix",
                                prefix.as_str(),
                                "--node-id",
                                node.as_str(),
                            ];
                            let flags = umpire_args(None, &args.durability, &extra);
                            // `--memory` is not wanted beside `--redis`.
                            let flags: Vec<String> =
                                flags.into_iter().filter(|f| f != "--memory").collect();
                            servers.push(Server::start("umpire", &flags, common.server_cpu)?);
                        }
                        let mut target = Target::of(&servers[0], true);
                        target.others = servers[1..].iter().map(|s| (s.addr, s.pid())).collect();
                        measure(common, target, proto, shape, warmup, measured)
                    };
                    (Some(nodes(1)?), Some(nodes(3)?))
                }
                None => (None, None),
            };
            let rows = [
                ("umpire", Some(&ours)),
                ("umpire, memory log", memory.as_ref()),
                ("umpire on redis", on_redis.as_ref()),
                ("umpire on redis, 3 nodes", three_nodes.as_ref()),
                ("raw", raw.as_ref()),
                ("raw + file", raw_file.as_ref()),
            ];
            for (name, outcome) in rows {
                let Some(o) = outcome else { continue };
                let vs = if name == "raw" { None } else { raw.as_ref() };
                clean &= report(&mut table, &mut json_rows, shape, proto, name, o, vs);
            }
        }
    }
    table.print();
    crate::report::json_line("fanout", json_rows);
    Ok(clean)
}

/// One row of the table and of the JSON line; `false` if the run saw a problem.
fn report(
    table: &mut Table,
    json_rows: &mut Vec<serde_json::Value>,
    shape: Shape,
    proto: Proto,
    name: &str,
    o: &Outcome,
    raw: Option<&Outcome>,
) -> bool {
    for problem in &o.problems {
        eprintln!("fanout {shape} {} {name}: {problem}", proto.name());
    }
    let (vs, p99_vs) = match raw {
        Some(raw) => (
            ratio(o.per_sec(o.deliveries), raw.per_sec(raw.deliveries)),
            format!(
                "{:.2}x",
                o.latency.p99.as_secs_f64() / raw.latency.p99.as_secs_f64().max(1e-9)
            ),
        ),
        None => (String::new(), String::new()),
    };
    table.row(vec![
        shape.to_string(),
        proto.name().into(),
        name.into(),
        count(o.per_sec(o.moves)),
        count(o.per_sec(o.deliveries)),
        ms(o.latency.p50),
        ms(o.latency.p99),
        ms(o.latency.max),
        if o.server_cpu.is_zero() {
            String::new()
        } else {
            ms(o.cpu_per_move())
        },
        vs,
        p99_vs,
        o.flushes
            .map(|f| format!("{:.1}", o.moves as f64 / f.max(1.0)))
            .unwrap_or_default(),
    ]);
    json_rows.push(json!({
        "shape": shape.to_string(),
        "protocol": proto,
        "server": name,
        "moves_per_sec": o.per_sec(o.moves).round(),
        "deliveries_per_sec": o.per_sec(o.deliveries).round(),
        "p50_ms": ms_f(o.latency.p50),
        "p99_ms": ms_f(o.latency.p99),
        "max_ms": ms_f(o.latency.max),
        "cpu_us_per_move": o.cpu_per_move().as_micros(),
        "games": o.games,
        "problems": o.problems.len(),
    }));
    o.problems.is_empty()
}

/// One run against one server.
fn measure(
    common: &Common,
    target: Target,
    proto: Proto,
    shape: Shape,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    let addrs = target.addrs();
    let (tell_window, window) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let load = scope.spawn(move || {
            on_cpu(common.client_cpu, move || {
                let local = tokio::task::LocalSet::new();
                local_runtime()?.block_on(local.run_until(load(
                    addrs,
                    proto,
                    shape,
                    (warmup, measured),
                    tell_window,
                )))
            })
        });
        // Meanwhile: the server's CPU time (and umpire's flushes) over exactly the window.
        let flushes = || {
            if !target.umpire {
                return None;
            }
            let mut total = 0.0;
            for addr in target.addrs() {
                total += crate::child::metrics(addr)
                    .ok()
                    .and_then(|m| m.get("umpire_flush_seconds_count").copied())?;
            }
            Some(total)
        };
        // Every node's CPU time together.
        let cpu = || -> anyhow::Result<Option<Duration>> {
            let Some(pid) = target.pid else {
                return Ok(None);
            };
            let mut total = crate::child::cpu_time(pid)?;
            for (_, pid) in &target.others {
                total += crate::child::cpu_time(*pid)?;
            }
            Ok(Some(total))
        };
        let sampled = window.recv().ok().map(|(start, end): (Instant, Instant)| {
            let sleep_until =
                |t: Instant| std::thread::sleep(t.saturating_duration_since(Instant::now()));
            sleep_until(start);
            let before = (cpu(), flushes());
            sleep_until(end);
            let after = (cpu(), flushes());
            (before, after)
        });
        let mut outcome = load
            .join()
            .unwrap_or_else(|_| bail!("the load generator panicked"))?;
        if let Some((before, after)) = sampled {
            if let (Some(a), Some(b)) = (after.0?, before.0?) {
                outcome.server_cpu = a.saturating_sub(b);
            }
            outcome.flushes = after.1.zip(before.1).map(|(a, b)| a - b);
        }
        Ok(outcome)
    })
}

/// The shared tally of one run, on the load generator's single thread.
struct Run {
    proto: Proto,
    window: (Instant, Instant),
    receivers: usize,
    stats: RefCell<Stats>,
}

#[derive(Default)]
struct Stats {
    moves: u64,
    deliveries: u64,
    latencies: Vec<Duration>,
    games: u64,
    problems: Vec<String>,
}

/// One game's moves: when each was sent, and how many receivers have it.
struct Track {
    sent: [Option<Instant>; DRAW.len()],
    got: [usize; DRAW.len()],
}

impl Run {
    fn in_window(&self, t: Instant) -> bool {
        t >= self.window.0 && t < self.window.1
    }

    /// A receiver got move `m`.
    fn delivered(&self, track: &RefCell<Track>, m: usize) {
        let now = Instant::now();
        let mut track = track.borrow_mut();
        track.got[m] += 1;
        let mut stats = self.stats.borrow_mut();
        if self.in_window(now) {
            stats.deliveries += 1;
        }
        if track.got[m] == self.receivers && self.in_window(now) {
            if let Some(sent) = track.sent[m] {
                stats.moves += 1;
                stats.latencies.push(now - sent);
            }
        }
    }

    fn problem(&self, what: String) {
        self.stats.borrow_mut().problems.push(what);
    }
}

/// Connect (for the native protocol, every connection up front), then play until the end of
/// the window, which starts `warmup` after the connections are open.
async fn load(
    addrs: Vec<SocketAddr>,
    proto: Proto,
    shape: Shape,
    (warmup, measured): (Duration, Duration),
    tell_window: std::sync::mpsc::Sender<(Instant, Instant)>,
) -> anyhow::Result<Outcome> {
    let mut slots_conns: Vec<Vec<Seated>> = Vec::new();
    if proto != Proto::Tutorial {
        let seats = [Some(0), Some(1)]
            .into_iter()
            .chain((0..shape.spectators).map(|_| None));
        let all: Vec<(usize, Option<usize>)> = (0..shape.games)
            .flat_map(|_| seats.clone().enumerate())
            .collect();
        let addrs = &addrs;
        let opened: Vec<anyhow::Result<Seated>> = futures_util::stream::iter(all)
            .map(|(k, seat)| async move {
                // Player 0 on the first node, player 1 on the next, spectators round them.
                let addr = addrs[k % addrs.len()];
                Ok((seat, connect(addr, proto).await?))
            })
            .buffered(64)
            .collect()
            .await;
        let mut opened = opened.into_iter();
        for _ in 0..shape.games {
            let conns: anyhow::Result<Vec<Seated>> =
                opened.by_ref().take(shape.spectators + 2).collect();
            slots_conns.push(conns?);
        }
    }
    let start = Instant::now() + warmup;
    let window = (start, start + measured);
    let _ = tell_window.send(window);
    let run = Rc::new(Run {
        proto,
        window,
        receivers: shape.spectators + 2,
        stats: RefCell::default(),
    });
    let mut slots = Vec::new();
    for i in 0..shape.games {
        let run = Rc::clone(&run);
        let conns = slots_conns.get_mut(i).map(std::mem::take);
        let addrs = addrs.clone();
        slots.push(tokio::task::spawn_local(async move {
            let result = match conns {
                Some(conns) => native_slot(&run, conns).await,
                None => tutorial_slot(&addrs, &run, shape.spectators).await,
            };
            if let Err(e) = result {
                run.problem(format!("{e:#}"));
            }
        }));
    }
    for slot in slots {
        slot.await?;
    }
    let mut stats = run.stats.take();
    Ok(Outcome {
        moves: stats.moves,
        deliveries: stats.deliveries,
        latency: Percentiles::of(&mut stats.latencies),
        games: stats.games,
        window: measured,
        server_cpu: Duration::ZERO,
        flushes: None,
        problems: stats.problems,
    })
}

async fn next(ws: &mut Ws, proto: Proto) -> anyhow::Result<Seen> {
    match tokio::time::timeout(STUCK, ws.next()).await {
        Err(_) => bail!("no frame for {STUCK:?}"),
        Ok(None) => Ok(Seen::Closed),
        Ok(Some(message)) => classify(proto, &message?),
    }
}

/// Read until the native reply to a request, checking the events on the way.
async fn reply(ws: &mut Ws, proto: Proto, what: &str) -> anyhow::Result<ServerMsg> {
    loop {
        match next(ws, proto).await? {
            Seen::Event { .. } | Seen::Other => continue,
            seen => return expect_reply(seen, what),
        }
    }
}

/// Read events of `game` until `upto`, which must come in order from `from`.
async fn events_until(
    ws: &mut Ws,
    proto: Proto,
    game: u64,
    from: u64,
    upto: u64,
) -> anyhow::Result<()> {
    let mut expected = from;
    while expected <= upto {
        match next(ws, proto).await? {
            Seen::Event { game: g, seq } if g == game => {
                if seq != expected {
                    bail!("game {game}: expected seq {expected}, got {seq}");
                }
                expected += 1;
            }
            Seen::Event { .. } | Seen::Reply(_) | Seen::Other => {}
            other => bail!("game {game}: {other:?} before seq {upto}"),
        }
    }
    Ok(())
}

/// A connection in a game: the seat it plays, or `None` for a spectator.
type Seated = (Option<usize>, Ws);

/// One slot over the native protocol: the same connections play game after game.
async fn native_slot(run: &Rc<Run>, mut conns: Vec<Seated>) -> anyhow::Result<()> {
    let proto = run.proto;
    let mut previous: Option<u64> = None;
    while Instant::now() < run.window.1 {
        // Set up: create, join, watch; everyone has seen the setup before the first move.
        let create = ClientMsg::Create {
            kind: "connect4".into(),
            config: serde_json::Value::Null,
            open: false,
            r#ref: Some(json!(1)),
        };
        conns[0].1.send(native(proto, &create)).await?;
        let ServerMsg::Created {
            game, join, watch, ..
        } = reply(&mut conns[0].1, proto, "created").await?
        else {
            bail!("create did not answer created");
        };
        let join = ClientMsg::Join {
            key: join,
            r#ref: Some(json!(2)),
        };
        conns[1].1.send(native(proto, &join)).await?;
        reply(&mut conns[1].1, proto, "joined").await?;
        for (_, w) in &mut conns[2..] {
            if let Some(old) = previous {
                let leave = ClientMsg::Leave {
                    game: GameId(old),
                    r#ref: None,
                };
                w.feed(native(proto, &leave)).await?;
            }
            let msg = ClientMsg::Watch {
                key: watch.clone(),
                from: None,
                r#ref: Some(json!(3)),
            };
            w.send(native(proto, &msg)).await?;
        }
        for (_, ws) in &mut conns {
            events_until(ws, proto, game.0, 1, FIRST_MOVE_SEQ - 1).await?;
        }
        let step = move |_expected: usize, seen: &Seen| match seen {
            Seen::Event { game: g, seq } if *g == game.0 => match *seq {
                OVER_SEQ => Step::Over,
                seq if (FIRST_MOVE_SEQ..OVER_SEQ).contains(&seq) => {
                    Step::Move((seq - FIRST_MOVE_SEQ) as usize)
                }
                seq => Step::Wrong(format!("game {game}: seq {seq}")),
            },
            Seen::Event { .. } | Seen::Reply(_) | Seen::Other => Step::Nothing,
            other => Step::Wrong(format!("game {game}: {other:?}")),
        };
        let move_frame = move |m: usize| {
            let cmd = ClientMsg::Command {
                game,
                cmd: json!({ "column": DRAW[m] }),
                cid: None,
                r#ref: Some(json!(m)),
            };
            native(proto, &cmd)
        };
        conns = play(run, conns, step, move_frame).await?;
        previous = Some(game.0);
    }
    for (_, ws) in &mut conns {
        let _ = ws.close(None).await;
    }
    Ok(())
}

/// One slot over the tutorial protocol: a tutorial connection plays one game, so every game
/// opens new connections for both players and every spectator.
async fn tutorial_slot(
    addrs: &[SocketAddr],
    run: &Rc<Run>,
    spectators: usize,
) -> anyhow::Result<()> {
    let proto = Proto::Tutorial;
    let addr = |k: usize| addrs[k % addrs.len()];
    while Instant::now() < run.window.1 {
        let mut first = connect(addr(0), proto).await?;
        first.send(Message::text(r#"{"type":"init"}"#)).await?;
        let (join, watch) = loop {
            match next(&mut first, proto).await? {
                Seen::Init { join, watch } => break (join, watch),
                Seen::Other => continue,
                other => bail!("waiting for init, got {other:?}"),
            }
        };
        let mut conns: Vec<Seated> = vec![(Some(0), first)];
        let mut second = connect(addr(1), proto).await?;
        let init = json!({"type": "init", "join": join}).to_string();
        second.send(Message::text(init)).await?;
        conns.push((Some(1), second));
        for k in 0..spectators {
            let mut w = connect(addr(2 + k), proto).await?;
            let init = json!({"type": "init", "watch": watch}).to_string();
            w.send(Message::text(init)).await?;
            conns.push((None, w));
        }
        let step = |expected: usize, seen: &Seen| match seen {
            Seen::Play if expected + 1 == DRAW.len() => Step::Last(expected),
            Seen::Play => Step::Move(expected),
            Seen::Other => Step::Nothing,
            Seen::TutorialError(why) => Step::Wrong(format!("tutorial error: {why}")),
            other => Step::Wrong(format!("tutorial: {other:?}")),
        };
        let move_frame =
            |m: usize| Message::text(json!({"type": "play", "column": DRAW[m]}).to_string());
        conns = play(run, conns, step, move_frame).await?;
        for (_, ws) in &mut conns {
            let _ = ws.close(None).await;
        }
    }
    Ok(())
}

/// What a frame means to a receiver expecting move `m` next.
enum Step {
    /// Move `m` arrived.
    Move(usize),
    /// Move `m` arrived and nothing more will (the tutorial protocol says no more after a
    /// draw).
    Last(usize),
    /// The game is over.
    Over,
    /// Nothing to count.
    Nothing,
    /// Something that must not happen.
    Wrong(String),
}

/// Play one whole game: every connection reads on its own task; a player sends its next move
/// as soon as the other player's move reaches it. Gives the connections back afterwards.
async fn play<C, M>(
    run: &Rc<Run>,
    conns: Vec<Seated>,
    step: C,
    move_frame: M,
) -> anyhow::Result<Vec<Seated>>
where
    C: Fn(usize, &Seen) -> Step + Clone + 'static,
    M: Fn(usize) -> Message + Clone + 'static,
{
    let track = Rc::new(RefCell::new(Track {
        sent: [None; DRAW.len()],
        got: [0; DRAW.len()],
    }));
    let proto = run.proto;
    let mut tasks = Vec::with_capacity(conns.len());
    for (seat, mut ws) in conns {
        let (run, track) = (Rc::clone(run), Rc::clone(&track));
        let (step, move_frame) = (step.clone(), move_frame.clone());
        if seat == Some(0) {
            track.borrow_mut().sent[0] = Some(Instant::now());
            ws.send(move_frame(0)).await?;
        }
        tasks.push(tokio::task::spawn_local(async move {
            let mut expected = 0;
            loop {
                let seen = next(&mut ws, proto).await?;
                let (m, last) = match step(expected, &seen) {
                    Step::Nothing => continue,
                    Step::Over => break,
                    Step::Wrong(what) => bail!("{what}"),
                    Step::Move(m) => (m, false),
                    Step::Last(m) => (m, true),
                };
                if m != expected {
                    bail!("expected move {expected}, got move {m}");
                }
                run.delivered(&track, m);
                expected += 1;
                let mine = seat.is_some_and(|s| (m + 1) % 2 == s);
                if mine && m + 1 < DRAW.len() {
                    track.borrow_mut().sent[m + 1] = Some(Instant::now());
                    ws.send(move_frame(m + 1)).await?;
                }
                if last {
                    break;
                }
            }
            Ok::<_, anyhow::Error>((seat, ws))
        }));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        conns.push(task.await.context("a client task failed")??);
    }
    let track = track.borrow();
    if let Some(m) = track.got.iter().position(|g| *g != run.receivers) {
        bail!(
            "move {m} reached {} of {} receivers",
            track.got[m],
            run.receivers
        );
    }
    run.stats.borrow_mut().games += 1;
    Ok(conns)
}
