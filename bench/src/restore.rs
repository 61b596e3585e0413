//! `restore`: bringing back G games of M events each (tally games, written straight through the
//! store), with and without snapshots; and the time from starting `umpire serve` on that data
//! to its first accepted WebSocket connection.
//!
//! The raw limit is a sled scan of the same records plus decoding each one as an envelope.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use umpire_engine::protocol::ClientMsg;
use umpire_engine::{Action, Actor, Envelope, Match, Seat};
use umpire_games::tally::{TallyCommand, TallyConfig};
use umpire_games::Tally;
use umpire_hub::Hub;
use umpire_store::{SledLog, StreamMeta, StreamStatus};

use crate::child::{local_runtime, on_cpu, umpire_args, Server};
use crate::durable::server_runtime;
use crate::report::{count, ms, ms_f, ratio, Table};
use crate::wire::{classify, connect, expect_reply, native, Proto};
use crate::Common;
use umpire_engine::protocol::GameId;

/// `restore` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct RestoreArgs {
    /// Games in the log.
    #[arg(long, default_value_t = 2000)]
    games: usize,
    /// Events per game.
    #[arg(long, default_value_t = 500)]
    events: usize,
}

pub(crate) fn run(common: &Common, args: &RestoreArgs) -> anyhow::Result<bool> {
    let (games, events) = if common.smoke {
        (20, 50)
    } else {
        (args.games, args.events)
    };
    let total = (games * events) as f64;
    let mut table = Table::new(
        format!("restore: {games} tally games x {events} events"),
        &[
            "log",
            "what",
            "time",
            "events/s",
            "vs raw scan",
            "start to first connection",
        ],
    );
    let mut rows = Vec::new();
    let mut clean = true;
    for snapshots in [false, true] {
        let data = tempfile::tempdir()?;
        let label = if snapshots {
            "with snapshots"
        } else {
            "no snapshots"
        };
        prepare(data.path(), games, events, snapshots)
            .with_context(|| format!("writing the log ({label})"))?;
        // Each measured twice, the first time to warm the OS page cache, so that neither
        // pays for a cold disk the other does not.
        on_cpu(common.server_cpu, || raw_scan(data.path(), games * events))?;
        let raw = on_cpu(common.server_cpu, || raw_scan(data.path(), games * events))?;
        hub_restore(common, data.path())?;
        let (restored, took) = hub_restore(common, data.path())?;
        if restored != games {
            clean = false;
            eprintln!("restore ({label}): {restored} of {games} games came back");
        }
        let first = first_connection(common, data.path())?;
        for (what, time, conn) in [
            ("raw sled scan + decode", raw, None),
            ("umpire start + load every game", took, Some(first)),
        ] {
            let rate = total / time.as_secs_f64();
            table.row(vec![
                label.into(),
                what.into(),
                ms(time),
                count(rate),
                if conn.is_some() {
                    ratio(rate, total / raw.as_secs_f64())
                } else {
                    String::new()
                },
                conn.map(ms).unwrap_or_default(),
            ]);
            rows.push(json!({
                "snapshots": snapshots, "what": what, "ms": ms_f(time),
                "events_per_sec": rate.round(),
                "first_connection_ms": conn.map(ms_f),
            }));
        }
    }
    table.print();
    crate::report::json_line("restore", rows);
    Ok(clean)
}

/// Write `games` live tally games of `events` records each through the store, as umpire would
/// have logged them; with `snapshots`, each game's latest state too.
fn prepare(
    dir: &std::path::Path,
    games: usize,
    events: usize,
    snapshots: bool,
) -> anyhow::Result<()> {
    let log = SledLog::open(dir)?;
    let seat = Actor::Seat(Seat(0));
    // Recent: a game whose last event is a day old expires as it loads.
    let now = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    for g in 0..games {
        let meta = StreamMeta {
            kind: "tally".into(),
            created: now,
            status: StreamStatus::Live,
            creator: String::new(),
            invite: None,
            finished: None,
        };
        let id = log.create_stream(&meta)?;
        let (mut m, created) = Match::create(&Tally, TallyConfig { seats: 2 }, g as u64, now);
        let mut page = vec![Bytes::from(rmp_serde::to_vec_named(&created)?)];
        let join = Action::Join {
            player: "p0".into(),
        };
        for env in m
            .execute(&Tally, Actor::System, join, now, None)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            page.push(Bytes::from(rmp_serde::to_vec_named(&env)?));
        }
        let mut version = 0;
        while version + (page.len() as u64) < events as u64 {
            let add = Action::Play(TallyCommand::Add(1));
            let envs: Vec<Envelope<Tally>> = m
                .execute(&Tally, seat, add, now, None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for env in envs {
                page.push(Bytes::from(rmp_serde::to_vec_named(&env)?));
            }
            if page.len() >= 512 {
                version = append(&log, id, version, &mut page)?;
            }
        }
        append(&log, id, version, &mut page)?;
        // As umpire writes it: the game wakes when it would expire, a day on.
        let wake = umpire_store::Wake {
            due: now + 86_400_000,
            timers: 0,
        };
        log.set_wake(id, Some(wake))?;
        if snapshots {
            log.save_snapshot(id, m.version().0, &rmp_serde::to_vec_named(&m)?)?;
        }
    }
    log.sync()?;
    Ok(())
}

fn append(log: &SledLog, id: u64, version: u64, page: &mut Vec<Bytes>) -> anyhow::Result<u64> {
    match log.append(id, version, page)? {
        Ok(v) => {
            page.clear();
            Ok(v)
        }
        Err(conflict) => bail!("{conflict}"),
    }
}

/// sled alone: every record of the events tree, decoded as an envelope.
fn raw_scan(dir: &std::path::Path, expected: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let db = open_sled(dir)?;
    let tree = db.open_tree("events")?;
    let mut n = 0;
    for row in tree.iter() {
        let (_, value) = row?;
        let env: Envelope<Tally> = rmp_serde::from_slice(&value[1..])?;
        std::hint::black_box(env);
        n += 1;
    }
    let took = started.elapsed();
    if n != expected {
        bail!("the raw scan found {n} records, expected {expected}");
    }
    Ok(took)
}

/// Open sled, waiting for a previous holder in this process to let go of the folder (sled
/// releases its lock from a background thread after the last handle is dropped).
pub(crate) fn open_sled(dir: &std::path::Path) -> anyhow::Result<sled::Db> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(dir) {
            Err(sled::Error::Io(e))
                if Instant::now() < deadline && e.to_string().contains("lock") =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

/// Open the log, start a hub on it and load every game (games load on first use), in process
/// on the server CPU: how long until every live game is back, and how many came back.
fn hub_restore(common: &Common, dir: &std::path::Path) -> anyhow::Result<(usize, Duration)> {
    let server = server_runtime(common.server_cpu)?;
    server.block_on(async {
        let started = Instant::now();
        let log = SledLog::open_retrying(dir, Duration::from_secs(10))?;
        // Listed before the hub starts (a tool's full listing, not the hub's).
        let ids: Vec<u64> = log.streams()?.into_iter().map(|info| info.id).collect();
        let hub = Hub::builder(Arc::new(log)).register(Tally).start().await?;
        for chunk in ids.chunks(512) {
            let loads = chunk.iter().map(|id| hub.inspect(GameId(*id)));
            for loaded in futures_util::future::join_all(loads).await {
                loaded?;
            }
        }
        let took = started.elapsed();
        let restored = hub.live_games().len();
        hub.shutdown().await?;
        Ok((restored, took))
    })
}

/// Start `umpire serve` on the data and time it to its first answered WebSocket request.
fn first_connection(common: &Common, dir: &std::path::Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let server = Server::start(
        "umpire",
        &umpire_args(Some(dir), "sync", &[]),
        common.server_cpu,
    )?;
    let addr = server.addr;
    let took = on_cpu(common.client_cpu, move || {
        local_runtime()?.block_on(async move {
            let mut ws = connect(addr, Proto::Json).await?;
            ws.send(native(
                Proto::Json,
                &ClientMsg::Ping {
                    r#ref: Some(json!(1)),
                },
            ))
            .await?;
            let frame = ws.next().await.context("closed")??;
            expect_reply(classify(Proto::Json, &frame)?, "pong")?;
            anyhow::Ok(started.elapsed())
        })
    })?;
    server.stop();
    Ok(took)
}
