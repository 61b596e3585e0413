//! `connections`: N WebSockets opened as fast as the server takes them, then held idle; the
//! server's resident memory per idle connection, then per spectator when every connection
//! watches one game, then per idle game when every connection also creates one.
//!
//! The raw limit is a bare tokio-tungstenite accept loop with the same read buffer.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
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
    let data = tempfile::tempdir()?;
    let ours = {
        let server = Server::start(
            "umpire",
            &umpire_args(
                Some(data.path()),
                "sync",
                &["--read-buffer-bytes", &read_buffer.to_string()],
            ),
            common.server_cpu,
        )?;
        measure(common, &server, n, args.concurrency, true)?
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
        ]);
        rows.push(json!({
            "server": name, "connections": n,
            "connections_per_sec": o.per_second.round(),
            "rss_per_connection": o.per_connection.round(),
            "rss_per_spectator": o.per_spectator.map(f64::round),
            "rss_per_game": o.per_game.map(f64::round),
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
            // Let the server settle, then read its footprint with no connection open.
            let settled = || tokio::time::sleep(Duration::from_millis(500));
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
                    r#ref: Some(json!(2)),
                };
                request_all(&mut conns, &create, concurrency).await?;
                settled().await;
                let rss3 = rss_of(pid)?;
                outcome.per_game = Some((rss3 as f64 - rss2 as f64) / n as f64);
            }
            for ws in &mut conns {
                let _ = ws.close(None).await;
            }
            Ok(outcome)
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
