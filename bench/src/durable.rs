//! `durable`: acknowledged commands per second through the hub's Rust API, in process so the
//! network is not the limit. Every client adds 1 to its tally game and waits for the ack
//! before the next add; there are max(G, 100) clients spread over G games.
//!
//! The raw limit is sled itself: records of the same size, inserted in the batch sizes umpire
//! produced (its events per flush), with one flush and one `fdatasync` of sled's file per batch
//! (as umpire's `sync` does), or none for `none`. Below it, the physical limit ("raw file"):
//! the same bytes appended to a plain file, one `write` and one `fdatasync` per batch.
//!
//! With `--redis`, the same load runs on a node whose log is in Redis (one mode: Redis makes
//! every answer durable itself), against Redis's own limit: the same records appended to one
//! stream per game with `XADD`, a batch of umpire's size per pipelined round trip, on one
//! connection.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::json;
use umpire_engine::{Action, Actor, Match};
use umpire_games::Tally;
use umpire_hub::{Durability, Hub, HubConfig};
use umpire_store::SledLog;

use crate::child::{local_runtime, on_cpu, pin};
use crate::report::{count, ms, ms_f, ratio, Percentiles, Table};
use crate::Common;

/// `durable` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct DurableArgs {
    /// Numbers of games to spread the clients over.
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
    games: Vec<usize>,
    /// Durability modes: `sync`, `batched` (2 ms window), `none` (no flush: what the flush
    /// and `fdatasync` cost is the difference to `sync`).
    #[arg(long, value_delimiter = ',', default_value = "sync,batched,none")]
    modes: Vec<String>,
    /// Seconds measured per run, after a one-second warm-up.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
}

/// What one run measured.
#[derive(Debug, Default)]
struct Outcome {
    acked: u64,
    latency: Percentiles,
    /// Records per flush, from the hub's metrics (umpire) or as set (raw).
    batch: f64,
    window: Duration,
}

impl Outcome {
    fn per_sec(&self) -> f64 {
        self.acked as f64 / self.window.as_secs_f64()
    }
}

pub(crate) fn run(common: &Common, args: &DurableArgs) -> anyhow::Result<bool> {
    let mut args = args.clone();
    let warmup = if common.smoke {
        args.games = vec![1, 10];
        args.secs = 0.3;
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let measured = Duration::from_secs_f64(args.secs);
    let mut table = Table::new(
        "durable: acknowledged commands through the hub API, in process (tally, one event each)",
        &[
            "mode",
            "games",
            "clients",
            "server",
            "commands/s",
            "p50",
            "p99",
            "batch",
            "vs raw",
            "vs file",
        ],
    );
    let mut rows = Vec::new();
    let mut clean = true;
    for mode in &args.modes {
        let durability = match mode.as_str() {
            "sync" => Durability::Sync,
            "batched" => Durability::Batched(Duration::from_millis(2)),
            "none" => Durability::None,
            other => bail!("no durability mode {other:?}"),
        };
        for &games in &args.games {
            let clients = games.max(100);
            let mut ours = match umpire(common, durability, games, clients, warmup, measured) {
                Ok(outcome) => outcome,
                Err(e) => {
                    clean = false;
                    eprintln!("durable {mode} {games}: {e:#}");
                    continue;
                }
            };
            // With no flush there are no batches: each insert counts as done at once.
            let flush = durability != Durability::None;
            if !flush {
                ours.batch = 1.0;
            }
            let batch = if flush {
                ours.batch.round().max(1.0) as usize
            } else {
                1
            };
            let raw = raw_sled(common, games, batch, flush, warmup, measured)?;
            let file = raw_file(common, games, batch, flush, warmup, measured)?;
            for (name, o) in [("umpire", &ours), ("raw sled", &raw), ("raw file", &file)] {
                table.row(vec![
                    mode.clone(),
                    games.to_string(),
                    if name == "umpire" {
                        clients.to_string()
                    } else {
                        "-".into()
                    },
                    name.into(),
                    count(o.per_sec()),
                    ms(o.latency.p50),
                    ms(o.latency.p99),
                    format!("{:.1}", o.batch),
                    if name == "umpire" {
                        ratio(o.per_sec(), raw.per_sec())
                    } else {
                        String::new()
                    },
                    if name == "raw file" {
                        String::new()
                    } else {
                        ratio(o.per_sec(), file.per_sec())
                    },
                ]);
                rows.push(json!({
                    "mode": mode, "games": games, "server": name,
                    "commands_per_sec": o.per_sec().round(),
                    "p50_ms": ms_f(o.latency.p50), "p99_ms": ms_f(o.latency.p99),
                    "batch": o.batch,
                }));
            }
        }
    }
    if let Some((url, _server)) = common.redis()? {
        for &games in &args.games {
            let clients = games.max(100);
            let store = Store::Redis(url.clone());
            let ours = match umpire_on(
                common,
                &store,
                Durability::Sync,
                games,
                clients,
                warmup,
                measured,
            ) {
                Ok(outcome) => outcome,
                Err(e) => {
                    clean = false;
                    eprintln!("durable redis {games}: {e:#}");
                    continue;
                }
            };
            let batch = ours.batch.round().max(1.0) as usize;
            let raw = raw_redis(common, &url, games, batch, warmup, measured)?;
            for (name, o) in [("umpire on redis", &ours), ("raw redis", &raw)] {
                table.row(vec![
                    "redis".into(),
                    games.to_string(),
                    if name == "raw redis" {
                        "-".into()
                    } else {
                        clients.to_string()
                    },
                    name.into(),
                    count(o.per_sec()),
                    ms(o.latency.p50),
                    ms(o.latency.p99),
                    format!("{:.1}", o.batch),
                    if name == "raw redis" {
                        String::new()
                    } else {
                        ratio(o.per_sec(), raw.per_sec())
                    },
                    String::new(),
                ]);
                rows.push(json!({
                    "mode": "redis", "games": games, "server": name,
                    "commands_per_sec": o.per_sec().round(),
                    "p50_ms": ms_f(o.latency.p50), "p99_ms": ms_f(o.latency.p99),
                    "batch": o.batch,
                }));
            }
        }
    }
    table.print();
    crate::report::json_line("durable", rows);
    Ok(clean)
}

/// Where the hub's log is.
enum Store {
    Sled,
    Redis(String),
}

/// A runtime for the hub on the server CPU: one worker, and every thread it starts pinned.
pub(crate) fn server_runtime(cpu: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().worker_threads(1);
    if let Some(cpu) = cpu {
        builder.on_thread_start(move || {
            let _ = pin(cpu);
        });
    }
    Ok(builder.build()?)
}

fn umpire(
    common: &Common,
    durability: Durability,
    games: usize,
    clients: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    umpire_on(
        common,
        &Store::Sled,
        durability,
        games,
        clients,
        warmup,
        measured,
    )
}

fn umpire_on(
    common: &Common,
    store: &Store,
    durability: Durability,
    games: usize,
    clients: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    let data = tempfile::tempdir()?;
    let server = server_runtime(common.server_cpu)?;
    let per_game = clients.div_ceil(games);
    let (hub, seats) = server.block_on(async {
        let config = HubConfig {
            durability,
            ..HubConfig::default()
        };
        let builder = match store {
            // Opened on a server thread: sled's own threads inherit its pinning.
            Store::Sled => Hub::builder(Arc::new(SledLog::open(data.path())?)),
            Store::Redis(url) => {
                let options = umpire_redis::RedisOptions {
                    prefix: crate::fresh_prefix("durable"),
                    ..umpire_redis::RedisOptions::default()
                };
                let log = umpire_redis::RedisLog::open(url, options).await?;
                let bus = umpire_redis::RedisBus::new(url, log.clone(), Duration::from_secs(10))?;
                Hub::builder(Arc::new(log)).bus(Arc::new(bus))
            }
        };
        let hub = builder.config(config).register(Tally).start().await?;
        let mut seats = Vec::with_capacity(clients);
        for _ in 0..games {
            let created = hub
                .create("tally", json!({ "seats": per_game }), "p0")
                .await?;
            seats.push((created.game, created.seat));
            for p in 1..per_game {
                let joined = hub.join(&created.join, &format!("p{p}")).await?;
                seats.push((joined.game, joined.seat));
            }
        }
        anyhow::Ok((hub, seats))
    })?;
    let flushes_before = flush_counts(&hub);
    let started = hub.metrics().events_appended.get();
    let window_hub = hub.clone();
    // With Redis on a CPU of its own (`--redis-cpu`), the load generator joins umpire on the
    // server CPU: Redis's CPU is Redis's alone, as in the raw run.
    let load_cpu = match store {
        Store::Redis(_) if common.redis_cpu.is_some() && common.redis_cpu != common.server_cpu => {
            common.server_cpu
        }
        _ => common.client_cpu,
    };
    let (acked, mut latencies, all_acked) = on_cpu(load_cpu, move || {
        local_runtime()?.block_on(async move {
            let start = Instant::now() + warmup;
            let window = (start, start + measured);
            // (acks in the window, their latencies, every ack)
            let tally = Rc::new(RefCell::new((0u64, Vec::new(), 0u64)));
            let tasks: Vec<_> = seats
                .into_iter()
                .take(clients)
                .map(|(game, seat)| {
                    let (hub, tally) = (window_hub.clone(), Rc::clone(&tally));
                    async move {
                        while Instant::now() < window.1 {
                            let sent = Instant::now();
                            hub.submit(game, seat, json!({"add": 1}), None).await?;
                            let now = Instant::now();
                            let mut t = tally.borrow_mut();
                            t.2 += 1;
                            if sent >= window.0 && now < window.1 {
                                t.0 += 1;
                                t.1.push(now - sent);
                            }
                        }
                        anyhow::Ok(())
                    }
                })
                .collect();
            for result in futures_util::future::join_all(tasks).await {
                result?;
            }
            let t = tally.take();
            anyhow::Ok(t)
        })
    })?;
    let flushes = flush_counts(&hub).0 - flushes_before.0;
    let appended = hub.metrics().events_appended.get() - started;
    // Nothing acknowledged may be missing: every add is one event in its game's log, and
    // every client waited for its last ack.
    let total: u64 = server.block_on(async {
        let mut total = 0;
        for game in hub.live_games() {
            total += hub.inspect(game).await?.version.0;
        }
        hub.shutdown().await?;
        anyhow::Ok(total)
    })?;
    let setup = (games * 2 + (clients.div_ceil(games) - 1) * games) as u64;
    if total != setup + all_acked {
        bail!("the logs hold {total} events, expected {setup} from set-up and {all_acked} acknowledged");
    }
    Ok(Outcome {
        acked,
        latency: Percentiles::of(&mut latencies),
        batch: appended as f64 / flushes.max(1) as f64,
        window: measured,
    })
}

/// (flushes, batches made durable) from the hub's Prometheus text.
fn flush_counts(hub: &Hub) -> (u64, u64) {
    let text = hub.metrics().render();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    (
        value("umpire_flush_seconds_count"),
        value("umpire_flush_waiters_total"),
    )
}

/// The keys a raw limit appends to: `streams` streams written in turn, each from seq 1, as
/// 16 bytes (stream + 1 and seq, big-endian), the way umpire's log keys its records.
struct Keys {
    seqs: Vec<u64>,
    next: usize,
}

impl Keys {
    fn new(streams: usize) -> Self {
        Keys {
            seqs: vec![0; streams.max(1)],
            next: 0,
        }
    }

    /// The next stream (from 0) and its next seq.
    fn next_seq(&mut self) -> (usize, u64) {
        let stream = self.next % self.seqs.len();
        self.next += 1;
        self.seqs[stream] += 1;
        (stream, self.seqs[stream])
    }

    fn next(&mut self) -> [u8; 16] {
        let (stream, seq) = self.next_seq();
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(stream as u64 + 1).to_be_bytes());
        key[8..].copy_from_slice(&seq.to_be_bytes());
        key
    }
}

/// Batches of `batch` commands run one after another for a warm-up and then the measured
/// window: those that started and ended inside it are counted.
struct Timed {
    batch: usize,
    window: (Instant, Instant),
    measured: Duration,
    acked: u64,
    latencies: Vec<Duration>,
}

impl Timed {
    fn new(batch: usize, warmup: Duration, measured: Duration) -> Self {
        let start = Instant::now() + warmup;
        Timed {
            batch,
            window: (start, start + measured),
            measured,
            acked: 0,
            latencies: Vec::new(),
        }
    }

    fn running(&self) -> bool {
        Instant::now() < self.window.1
    }

    /// A batch sent at `sent` is done now.
    fn done(&mut self, sent: Instant) {
        let now = Instant::now();
        if sent >= self.window.0 && now < self.window.1 {
            self.acked += self.batch as u64;
            self.latencies
                .extend(std::iter::repeat_n(now - sent, self.batch));
        }
    }

    fn outcome(mut self) -> Outcome {
        Outcome {
            acked: self.acked,
            latency: Percentiles::of(&mut self.latencies),
            batch: self.batch as f64,
            window: self.measured,
        }
    }
}

/// Run `one` batch of `batch` commands after another for `warmup` and then `measured`,
/// counting the batches that started and ended inside the measured window.
fn timed_batches(
    batch: usize,
    warmup: Duration,
    measured: Duration,
    mut one: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let mut timed = Timed::new(batch, warmup, measured);
    while timed.running() {
        let sent = Instant::now();
        one()?;
        timed.done(sent);
    }
    Ok(timed.outcome())
}

/// sled alone: the same records inserted, `batch` at a time, with sled's flush and an
/// `fdatasync` of its file per batch (or none for `none`).
fn raw_sled(
    common: &Common,
    streams: usize,
    batch: usize,
    flush: bool,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    let record = tally_record()?;
    on_cpu(common.server_cpu, move || {
        let data = tempfile::tempdir()?;
        let db = sled::Config::new().path(data.path()).open()?;
        let events = db.open_tree("events")?;
        let file = std::fs::File::open(data.path().join("db"))?;
        let mut keys = Keys::new(streams);
        timed_batches(batch, warmup, measured, || {
            for _ in 0..batch {
                events.insert(keys.next(), record.as_slice())?;
            }
            if flush {
                // sled's own way to durability: its flush, then what it wrote onto the disk.
                db.flush()?;
                file.sync_data()?;
            }
            Ok(())
        })
    })
    .context("raw sled")
}

/// The physical limit: the same records, each after its 16-byte key, appended to a plain
/// file, `batch` per `write` and one `fdatasync` per batch (none for `none`).
fn raw_file(
    common: &Common,
    streams: usize,
    batch: usize,
    flush: bool,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    use std::io::Write as _;
    let record = tally_record()?;
    on_cpu(common.server_cpu, move || {
        let data = tempfile::tempdir()?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.path().join("log"))?;
        let mut keys = Keys::new(streams);
        let mut buf = Vec::with_capacity(batch * (16 + record.len()));
        timed_batches(batch, warmup, measured, || {
            buf.clear();
            for _ in 0..batch {
                buf.extend_from_slice(&keys.next());
                buf.extend_from_slice(&record);
            }
            file.write_all(&buf)?;
            if flush {
                file.sync_data()?;
            }
            Ok(())
        })
    })
    .context("raw file")
}

/// Redis alone: the same records, `batch` XADDs to the games' streams per pipelined round
/// trip, on one connection; with `appendfsync always` each answer comes after the fsync.
fn raw_redis(
    common: &Common,
    url: &str,
    streams: usize,
    batch: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    let record = tally_record()?;
    let url = url.to_owned();
    on_cpu(common.server_cpu, move || {
        local_runtime()?.block_on(async move {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let prefix = crate::fresh_prefix("raw");
            let mut keys = Keys::new(streams);
            let mut timed = Timed::new(batch, warmup, measured);
            while timed.running() {
                let sent = Instant::now();
                let mut pipe = redis::pipe();
                for _ in 0..batch {
                    let (stream, seq) = keys.next_seq();
                    pipe.cmd("XADD")
                        .arg(format!("{prefix}:{{g{stream}}}:log"))
                        .arg(format!("{seq}-0"))
                        .arg("r")
                        .arg(record.as_slice())
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
                timed.done(sent);
            }
            anyhow::Ok(timed.outcome())
        })
    })
    .context("raw redis")
}

/// The record a tally add logs, encoded as umpire encodes it.
fn tally_record() -> anyhow::Result<Vec<u8>> {
    let (mut m, _) = Match::create(&Tally, umpire_games::tally::TallyConfig { seats: 2 }, 7, 1);
    m.execute(
        &Tally,
        Actor::System,
        Action::Join {
            player: "p0".into(),
        },
        1,
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let env = m
        .execute(
            &Tally,
            Actor::Seat(umpire_engine::Seat(0)),
            Action::Play(umpire_games::tally::TallyCommand::Add(1)),
            1_700_000_000_000,
            None,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut record = vec![umpire_store::FORMAT_VERSION];
    record.extend(rmp_serde::to_vec_named(&env[0])?);
    Ok(record)
}
