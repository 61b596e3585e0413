//! `connections`: N WebSockets opened as fast as the server takes them, then held idle; the
//! server's resident memory per idle connection, then per spectator when every connection
//! watches one game, then per idle game when every connection also creates one. Then, on a
//! server of its own, N connections of the tutorial protocol, each watching one game: memory
//! per watcher, the whole connection counted.
//!
//! Every server is warmed up first with a twentieth of N connections (at most 200) doing what
//! the N will do, kept open: the server's code is paged in as it first runs, a one-time cost
//! that would otherwise be counted per connection (2.5 MiB, 1.2 KiB a connection of 2,000).
//!
//! The raw limit is a bare tokio-tungstenite accept loop with the same read buffer.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use umpire_engine::protocol::{ClientMsg, ServerMsg};

use crate::child::{local_runtime, on_cpu, rss_of, umpire_args, Server};
use crate::report::{count, kib, ratio, Table};
use crate::wire::{classify, connect, expect_reply, native, Proto, Seen, Ws};
use crate::Common;

/// `connections` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectionsArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Read buffer per connection, for both servers (default: umpire's).
    #[arg(long)]
    read_buffer: Option<usize>,
}

/// What one server measured.
#[derive(Debug, Default)]
struct Outcome {
    per_second: f64,
    per_connection: f64,
    per_spectator: Option<f64>,
    per_game: Option<f64>,
    per_tutorial_watcher: Option<f64>,
}

pub(crate) fn run(common: &Common, args: &ConnectionsArgs) -> anyhow::Result<bool> {
    let n = if common.smoke { 200 } else { args.connections };
    let read_buffer = args
        .read_buffer
        .unwrap_or(umpire_ws::WsConfig::default().read_buffer_bytes);
    let raw = {
        let server = Server::start("raw-accept", &[read_buffer.to_string()], common.server_cpu)?;
        measure(common, &server, n, args.concurrency, false)?
    };
    // Each pass on a fresh umpire with a data folder of its own.
    let umpire = |data: &tempfile::TempDir| {
        let flags = ["--read-buffer-bytes", &read_buffer.to_string()];
        Server::start(
            "umpire",
            &umpire_args(Some(data.path()), "sync", &flags),
            common.server_cpu,
        )
    };
    let ours = {
        let data = tempfile::tempdir()?;
        let mut ours = measure(common, &umpire(&data)?, n, args.concurrency, true)?;
        let data = tempfile::tempdir()?;
        let watchers = tutorial_watchers(common, &umpire(&data)?, n, args.concurrency)?;
        ours.per_tutorial_watcher = Some(watchers);
        ours
    };
    let mut table = Table::new(
        format!("connections: {n} WebSockets, {read_buffer}-byte read buffers"),
        &[
            "server",
            "new connections/s",
            "vs raw",
            "RSS per idle connection",
            "per spectator (+)",
            "per idle game (+)",
            "per tutorial watcher",
        ],
    );
    let mut rows = Vec::new();
    for (name, o) in [("umpire", &ours), ("raw accept loop", &raw)] {
        table.row(vec![
            name.into(),
            count(o.per_second),
            if name == "umpire" {
                ratio(o.per_second, raw.per_second)
            } else {
                String::new()
            },
            kib(o.per_connection),
            o.per_spectator.map(kib).unwrap_or_default(),
            o.per_game.map(kib).unwrap_or_default(),
            o.per_tutorial_watcher.map(kib).unwrap_or_default(),
        ]);
        rows.push(json!({
            "server": name, "connections": n,
            "connections_per_sec": o.per_second.round(),
            "rss_per_connection": o.per_connection.round(),
            "rss_per_spectator": o.per_spectator.map(f64::round),
            "rss_per_game": o.per_game.map(f64::round),
            "rss_per_tutorial_watcher": o.per_tutorial_watcher.map(f64::round),
        }));
    }
    table.print();
    crate::report::json_line("connections", rows);
    Ok(true)
}

fn measure(
    common: &Common,
    server: &Server,
    n: usize,
    concurrency: usize,
    umpire: bool,
) -> anyhow::Result<Outcome> {
    let (addr, pid) = (server.addr, server.pid());
    on_cpu(common.client_cpu, move || {
        local_runtime()?.block_on(async move {
            // Warm up (see the module's comment), let the server settle, then read its
            // footprint.
            let settled = || tokio::time::sleep(Duration::from_millis(500));
            let mut warm = Vec::new();
            for _ in 0..warm_up(n) {
                warm.push(connect(addr, Proto::Json).await?);
            }
            settled().await;
            let rss0 = rss_of(pid)?;
            let started = Instant::now();
            let opened: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(0..n)
                .map(|_| connect(addr, Proto::Json))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let per_second = n as f64 / started.elapsed().as_secs_f64();
            let mut conns = opened.into_iter().collect::<anyhow::Result<Vec<Ws>>>()?;
            settled().await;
            let rss1 = rss_of(pid)?;
            let mut outcome = Outcome {
                per_second,
                per_connection: (rss1 as f64 - rss0 as f64) / n as f64,
                ..Outcome::default()
            };
            if umpire {
                // Every connection watches one game.
                let mut host = connect(addr, Proto::Json).await?;
                let create = ClientMsg::Create {
                    kind: "tally".into(),
                    config: json!({"seats": 2}),
                    open: false,
                    r#ref: Some(json!(0)),
                };
                host.send(native(Proto::Json, &create)).await?;
                let watch = loop {
                    match classify(Proto::Json, &host.next().await.context("closed")??)? {
                        Seen::Event { .. } | Seen::Other => continue,
                        seen => match expect_reply(seen, "created")? {
                            ServerMsg::Created { watch, .. } => break watch,
                            other => bail!("expected created, got {other:?}"),
                        },
                    }
                };
                let watch_msg = ClientMsg::Watch {
                    key: watch,
                    from: None,
                    r#ref: Some(json!(1)),
                };
                request_all(&mut conns, &watch_msg, concurrency).await?;
                settled().await;
                let rss2 = rss_of(pid)?;
                outcome.per_spectator = Some((rss2 as f64 - rss1 as f64) / n as f64);
                // And every connection creates a game of its own.
                let create = ClientMsg::Create {
                    kind: "tally".into(),
                    config: json!({"seats": 2}),
                    open: false,
                    r#ref: Some(json!(2)),
                };
                request_all(&mut conns, &create, concurrency).await?;
                settled().await;
                let rss3 = rss_of(pid)?;
                outcome.per_game = Some((rss3 as f64 - rss2 as f64) / n as f64);
            }
            for ws in conns.iter_mut().chain(&mut warm) {
                let _ = ws.close(None).await;
            }
            Ok(outcome)
        })
    })
}

/// The next frame of a tutorial connection.
async fn next(ws: &mut Ws) -> anyhow::Result<Seen> {
    classify(Proto::Tutorial, &ws.next().await.context("closed")??)
}

/// How many connections warm a server up before `n` are measured.
fn warm_up(n: usize) -> usize {
    (n / 20).clamp(1, 200)
}

/// Memory per connection of the tutorial protocol watching one game: a game with a move in
/// it, `n` watchers that each got it replayed, after warming up with a few.
fn tutorial_watchers(
    common: &Common,
    server: &Server,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let (addr, pid) = (server.addr, server.pid());
    on_cpu(common.client_cpu, move || {
        local_runtime()?.block_on(async move {
            let mut host = connect(addr, Proto::Tutorial).await?;
            host.send(Message::text(r#"{"type":"init"}"#)).await?;
            let (join, watch) = loop {
                match next(&mut host).await? {
                    Seen::Init { join, watch } => break (join, watch),
                    Seen::Other => continue,
                    other => bail!("waiting for init, got {other:?}"),
                }
            };
            let mut guest = connect(addr, Proto::Tutorial).await?;
            let init = json!({"type": "init", "join": join}).to_string();
            guest.send(Message::text(init)).await?;
            host.send(Message::text(r#"{"type":"play","column":3}"#))
                .await?;
            // A watcher counts once the move was replayed to it.
            let watch_msg = json!({"type": "init", "watch": watch}).to_string();
            let watchers = |count: usize| {
                let watch_msg = watch_msg.clone();
                futures_util::stream::iter(0..count)
                    .map(move |_| {
                        let watch_msg = watch_msg.clone();
                        async move {
                            let mut ws = connect(addr, Proto::Tutorial).await?;
                            ws.send(Message::text(watch_msg)).await?;
                            loop {
                                match next(&mut ws).await? {
                                    Seen::Play => return anyhow::Ok(ws),
                                    Seen::Other => continue,
                                    other => bail!("a watcher got {other:?}"),
                                }
                            }
                        }
                    })
                    .buffer_unordered(concurrency)
                    .collect::<Vec<_>>()
            };
            let settled = || tokio::time::sleep(Duration::from_millis(500));
            let mut warm = watchers(warm_up(n))
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<Ws>>>()?;
            settled().await;
            let rss0 = rss_of(pid)?;
            let mut conns = watchers(n)
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<Ws>>>()?;
            settled().await;
            let rss1 = rss_of(pid)?;
            for ws in conns
                .iter_mut()
                .chain(&mut warm)
                .chain([&mut host, &mut guest])
            {
                let _ = ws.close(None).await;
            }
            Ok((rss1 as f64 - rss0 as f64) / n as f64)
        })
    })
}

/// Send `msg` on every connection and wait for each answer (events in between are read and
/// dropped), `concurrency` at a time.
async fn request_all(conns: &mut [Ws], msg: &ClientMsg, concurrency: usize) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(conns.iter_mut())
        .map(|ws| async move {
            ws.send(native(Proto::Json, msg)).await?;
            loop {
                match classify(Proto::Json, &ws.next().await.context("closed")??)? {
                    // Events and news (a spectator count) come before the answer.
                    Seen::Event { .. } | Seen::Other => continue,
                    seen => {
                        expect_reply(seen, "an answer")?;
                        return Ok(());
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}
