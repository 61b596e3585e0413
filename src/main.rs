//! The `umpire` command line: `umpire serve` (the default) runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use umpire_games::{Colony, Connect4, Tally};
use umpire_hub::{Durability, Hub, HubConfig};
use umpire_store::SledLog;
use umpire_ws::{JwtAuth, WsConfig};

/// umpire: an authoritative, event-sourced game server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the bundled games over HTTP and WebSocket (the default).
    Serve(Serve),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// Acknowledge a command after its events are flushed (group commit).
    Sync,
    /// Flush every few milliseconds; still acknowledge after the flush.
    Batched,
    /// Never wait for a flush: a crash loses acknowledged events. For benchmarks.
    None,
}

#[derive(Debug, Args)]
struct Serve {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder of the event log (created if missing).
    #[arg(long, default_value = "./umpire-data")]
    data: PathBuf,
    /// When a command counts as done.
    #[arg(long, value_enum, default_value = "sync")]
    durability: DurabilityArg,
    /// With --durability batched: how long to gather games before each flush.
    #[arg(long, default_value_t = 2)]
    batch_ms: u64,
    /// Secret for HS256 tokens in `hello` (enables authentication).
    #[arg(long, env = "UMPIRE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Refuse everything but `hello` and `ping` until a connection authenticates.
    #[arg(long, requires = "jwt_secret")]
    require_auth: bool,
    /// Another Origin allowed to open WebSockets (repeatable; `*` for any). The server's own
    /// host and localhost are always allowed.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// WebSocket connections open at once; more are refused with HTTP 503.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Largest message accepted, in bytes; larger ones close the connection with 1009.
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_bytes: usize,
    /// Messages per second per connection; 0 turns the limit off.
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    /// Messages a connection may send at once before the rate applies.
    #[arg(long, default_value_t = 200)]
    rate_burst: u32,
    /// Seconds between pings to each connection.
    #[arg(long, default_value_t = 20)]
    ping_secs: u64,
    /// Seconds of silence after which a connection is closed.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Events queued per connection before it catches up from the log instead.
    #[arg(long, default_value_t = 256)]
    queue_len: usize,
    /// Kernel send buffer per connection, in bytes (default: the kernel's autotuning). Smaller
    /// bounds what a stalled client can hold; it then catches up from the log.
    #[arg(long)]
    send_buffer_bytes: Option<usize>,
    /// PEM certificate chain: serve https:// and wss:// (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Default for Serve {
    fn default() -> Self {
        match Cli::parse_from(["umpire", "serve"]).command {
            Some(Command::Serve(serve)) => serve,
            None => unreachable!("serve was given"),
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let serve = match cli.command {
        Some(Command::Serve(serve)) => serve,
        None => Serve::default(),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(serve))
}

async fn run(args: Serve) -> anyhow::Result<()> {
    let log = SledLog::open(&args.data)
        .with_context(|| format!("opening the event log in {}", args.data.display()))?;
    let durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Batched => Durability::Batched(Duration::from_millis(args.batch_ms)),
        DurabilityArg::None => Durability::None,
    };
    let config = HubConfig {
        durability,
        queue_len: args.queue_len,
        require_auth: args.require_auth,
        ..HubConfig::default()
    };
    let mut builder = Hub::builder(Arc::new(log))
        .config(config)
        .register(Connect4)
        .register(Tally)
        .register(Colony);
    if let Some(secret) = &args.jwt_secret {
        builder = builder.authenticator(Arc::new(JwtAuth::hs256(secret.as_bytes())));
    }
    let hub = builder
        .start()
        .await
        .context("restoring games from the log")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let ws = WsConfig {
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        rate_per_sec: args.rate_limit,
        rate_burst: args.rate_burst,
        ping_every: Duration::from_secs(args.ping_secs.max(1)),
        idle_timeout: Duration::from_secs(args.idle_secs.max(1)),
        allowed_origins: args.allow_origin.clone(),
        send_buffer_bytes: args.send_buffer_bytes,
        ..WsConfig::default()
    };
    let address = listener.local_addr().context("reading the bound address")?;
    let server = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls =
                umpire_ws::Tls::from_pem_files(cert, key).context("loading the TLS certificate")?;
            println!("umpire is serving on https://{address}/ : open it in two browsers to play");
            tokio::spawn(umpire_ws::serve_tls(listener, hub.clone(), ws, tls))
        }
        _ => {
            println!("umpire is serving on http://{address}/ : open it in two browsers to play");
            tokio::spawn(umpire_ws::serve(listener, hub.clone(), ws))
        }
    };

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections; finishing commands in flight");
    hub.shutdown()
        .await
        .context("flushing the log at shutdown")?;
    let _ = server.await;
    tracing::info!("bye");
    Ok(())
}

/// Wait for SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
