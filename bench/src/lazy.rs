//! `lazy`: a data folder with G unfinished tally games (written through the store as umpire
//! writes them, wake-up entries included). `umpire serve` starts on it, every game is loaded
//! over WebSocket (watch, then leave), and the games leave memory again once nobody follows
//! them. Reported: start to first answer, and the server's RSS empty, at start, with every game
//! loaded and after eviction.
//!
//! The raw limit for start-up is opening sled and reading every stream's metadata: what any
//! server must read to know its games.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use umpire_engine::protocol::{ClientMsg, ServerMsg};
use umpire_engine::{Action, Actor, Match, Seat};
use umpire_games::tally::{TallyCommand, TallyConfig};
use umpire_games::Tally;
use umpire_store::{KeyEntry, Role, SledLog, StreamMeta, StreamStatus, Wake};

use crate::child::{local_runtime, metrics, on_cpu, rss_of, umpire_args, Server};
use crate::report::{count, kib, ms, ms_f, ratio, Table};
use crate::wire::{classify, connect, expect_reply, native, next_reply, Proto};
use crate::Common;

/// `lazy` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct LazyArgs {
    /// Unfinished games in the log.
    #[arg(long, default_value_t = 100_000)]
    games: usize,
    /// Events per game.
    #[arg(long, default_value_t = 10)]
    events: usize,
    /// The server's --evict-after-secs: longer than loading every game takes.
    #[arg(long, default_value_t = 60)]
    evict_secs: u64,
    /// The server's --cache-mib (sled's page cache).
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
}

/// Connections that load the games, each with this many requests in flight.
const LOADERS: usize = 8;
const WINDOW: usize = 64;

pub(crate) fn run(common: &Common, args: &LazyArgs) -> anyhow::Result<bool> {
    let (games, events, evict) = if common.smoke {
        (500, 10, 3)
    } else {
        (args.games, args.events, args.evict_secs)
    };
    let data = tempfile::tempdir()?;
    prepare(data.path(), games, events).context("writing the log")?;
    // Twice: the first warms the page cache, as the server's start will find it warm too.
    on_cpu(common.server_cpu, || raw_index(data.path(), games))?;
    let raw = on_cpu(common.server_cpu, || raw_index(data.path(), games))?;

    let empty_dir = tempfile::tempdir()?;
    let empty = {
        let server = Server::start(
            "umpire",
            &umpire_args(Some(empty_dir.path()), "sync", &[]),
            common.server_cpu,
        )?;
        std::thread::sleep(Duration::from_millis(500));
        rss_of(server.pid())?
    };

    let started = Instant::now();
    let evict_arg = evict.to_string();
    let cache_arg = args.cache_mib.to_string();
    let server = Server::start(
        "umpire",
        &umpire_args(
            Some(data.path()),
            "sync",
            &["--evict-after-secs", &evict_arg, "--cache-mib", &cache_arg],
        ),
        common.server_cpu,
    )?;
    let (addr, pid) = (server.addr, server.pid());
    let first = on_cpu(common.client_cpu, move || {
        local_runtime()?.block_on(async move {
            let mut ws = connect(addr, Proto::Json).await?;
            let ping = ClientMsg::Ping {
                r#ref: Some(json!(1)),
            };
            ws.send(native(Proto::Json, &ping)).await?;
            let frame = ws.next().await.context("closed")??;
            expect_reply(classify(Proto::Json, &frame)?, "pong")?;
            anyhow::Ok(started.elapsed())
        })
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let at_start = rss_of(pid)?;
    let gauge = |name: &str| -> anyhow::Result<f64> {
        let m = metrics(addr)?;
        m.get(name)
            .copied()
            .with_context(|| format!("no {name} in /metrics"))
    };
    let mut clean = true;
    if gauge("umpire_live_games")? != 0.0 {
        clean = false;
        eprintln!("lazy: games were loaded at start");
    }

    let loading = Instant::now();
    on_cpu(common.client_cpu, move || {
        local_runtime()?.block_on(async move {
            let loaders = (0..LOADERS).map(|k| load(addr, (k..games).step_by(LOADERS).collect()));
            futures_util::future::try_join_all(loaders).await?;
            anyhow::Ok(())
        })
    })?;
    let load_time = loading.elapsed();
    let loaded_games = gauge("umpire_live_games")?;
    let loaded = rss_of(pid)?;
    if loaded_games < games as f64 {
        clean = false;
        eprintln!("lazy: {loaded_games} of {games} games in memory after loading them all");
    }

    // Nobody follows them now: they leave after `evict` seconds.
    let deadline = Instant::now() + Duration::from_secs(evict + 60);
    while gauge("umpire_live_games")? > 0.0 {
        if Instant::now() > deadline {
            clean = false;
            eprintln!(
                "lazy: games still in memory {}s after eviction was due",
                evict + 60
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // jemalloc returns freed pages to the system over ten seconds.
    std::thread::sleep(Duration::from_secs(if common.smoke { 1 } else { 12 }));
    let evicted = rss_of(pid)?;
    let sleeping = gauge("umpire_sleeping_games")?;
    server.stop();
    // 500 games are too few for the process's size to say anything: the full run checks it.
    if !common.smoke && evicted >= loaded {
        clean = false;
        eprintln!("lazy: memory did not fall after eviction ({loaded} -> {evicted} bytes)");
    }

    let mb = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    let mut table = Table::new(
        format!(
            "lazy: {games} unfinished tally games x {events} events, --cache-mib {}",
            args.cache_mib
        ),
        &[
            "start to first answer",
            "raw sled open + metadata scan",
            "umpire / raw",
            "loading all",
            "RSS empty",
            "RSS at start",
            "RSS all loaded",
            "RSS after eviction",
            "per loaded game",
        ],
    );
    table.row(vec![
        ms(first),
        ms(raw),
        ratio(raw.as_secs_f64(), first.as_secs_f64()),
        format!("{} games/s", count(games as f64 / load_time.as_secs_f64())),
        mb(empty),
        mb(at_start),
        mb(loaded),
        mb(evicted),
        kib((loaded as f64 - evicted as f64) / games as f64),
    ]);
    table.print();
    crate::report::json_line(
        "lazy",
        vec![json!({
            "games": games, "events": events,
            "first_answer_ms": ms_f(first), "raw_index_ms": ms_f(raw),
            "load_ms": ms_f(load_time),
            "rss_empty": empty, "rss_start": at_start, "rss_loaded": loaded,
            "rss_evicted": evicted, "sleeping_after": sleeping,
        })],
    );
    Ok(clean)
}

/// Write `games` live tally games of `events` records each, with a watch key `w<g>` and the
/// wake-up entry umpire writes (expiry a day after the last event).
fn prepare(dir: &std::path::Path, games: usize, events: usize) -> anyhow::Result<()> {
    let log = SledLog::open(dir)?;
    let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    for g in 0..games {
        let meta = StreamMeta {
            kind: "tally".into(),
            created: now,
            status: StreamStatus::Live,
            creator: format!("p{}", g % 1000),
            invite: None,
            finished: None,
        };
        let id = log.create_stream(&meta)?;
        let (mut m, created) = Match::create(&Tally, TallyConfig { seats: 2 }, g as u64, now);
        let mut page = vec![Bytes::from(rmp_serde::to_vec_named(&created)?)];
        let join = Action::Join {
            player: meta.creator.clone(),
        };
        let mut envs = m
            .execute(&Tally, Actor::System, join, now, None)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        while page.len() + envs.len() < events {
            let add = Action::Play(TallyCommand::Add(1));
            envs.extend(
                m.execute(&Tally, Actor::Seat(Seat(0)), add, now, None)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        for env in envs {
            page.push(Bytes::from(rmp_serde::to_vec_named(&env)?));
        }
        if let Err(conflict) = log.append(id, 0, &page)? {
            bail!("{conflict}");
        }
        let key = KeyEntry {
            stream: id,
            role: Role::Watch,
        };
        log.put_key(&format!("w{g}"), key)?;
        log.set_wake(
            id,
            Some(Wake {
                due: now + 86_400_000,
                timers: 0,
            }),
        )?;
    }
    log.sync()?;
    Ok(())
}

/// sled alone: open the folder and read every stream's metadata.
fn raw_index(dir: &std::path::Path, expected: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let db = crate::restore::open_sled(dir)?;
    let meta = db.open_tree("meta")?;
    let mut n = 0;
    for row in meta.iter() {
        let (key, value) = row?;
        std::hint::black_box((key, value));
        n += 1;
    }
    let took = started.elapsed();
    if n != expected {
        bail!("the raw scan found {n} streams, expected {expected}");
    }
    Ok(took)
}

/// Watch each of `games` (by its key), then leave it: the server loads every one.
async fn load(addr: std::net::SocketAddr, games: Vec<usize>) -> anyhow::Result<()> {
    let mut ws = connect(addr, Proto::Json).await?;
    for chunk in games.chunks(WINDOW) {
        for g in chunk {
            let watch = ClientMsg::Watch {
                key: format!("w{g}"),
                from: None,
                r#ref: None,
            };
            ws.send(native(Proto::Json, &watch)).await?;
        }
        let mut ids = Vec::with_capacity(chunk.len());
        while ids.len() < chunk.len() {
            match next_reply(&mut ws).await? {
                ServerMsg::Watching { game, .. } => ids.push(game),
                other => bail!("waiting for watching, got {other:?}"),
            }
        }
        for game in &ids {
            let leave = ClientMsg::Leave {
                game: *game,
                r#ref: None,
            };
            ws.send(native(Proto::Json, &leave)).await?;
        }
        for _ in 0..ids.len() {
            match next_reply(&mut ws).await? {
                ServerMsg::Ok { .. } => {}
                other => bail!("waiting for ok, got {other:?}"),
            }
        }
    }
    Ok(())
}
