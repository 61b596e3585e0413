//! The `umpire` command line as a library: the binary parses [`Cli`] and calls [`run`]; the
//! benchmarks start the very same server in a child process through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod inspect;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use umpire_games::{Colony, Connect4, HighCard, Tally};
use umpire_hub::{Durability, Hub, HubConfig, Limits};
use umpire_store::{Log, MemLog, SledLog, SledOptions};
use umpire_ws::{JwtAuth, WsConfig};

/// umpire: an authoritative, event-sourced game server.
#[derive(Debug, Parser)]
#[command(name = "umpire", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the bundled games over HTTP and WebSocket (the default).
    Serve(Box<Serve>),
    /// Publish a notice on a channel of a running server (POST /api/publish).
    Publish(Publish),
    /// Look inside a data folder no server holds: games, events, verify, stats.
    Inspect {
        /// The data folder.
        #[arg(long, default_value = "./umpire-data")]
        data: PathBuf,
        /// What to show.
        #[command(subcommand)]
        what: inspect::Inspect,
    },
}

/// `umpire publish CHANNEL DATA`.
#[derive(Debug, Args)]
pub struct Publish {
    /// The channel: broadcast, user:ID, group:NAME or session:ID.
    channel: String,
    /// The notice, as JSON (a bare word is sent as a string).
    data: String,
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The server's admin token (its --admin-token).
    #[arg(long, env = "UMPIRE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
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

/// `umpire serve`: every flag of the server.
#[derive(Debug, Args)]
pub struct Serve {
    /// Address to listen on: `host:port`, the host a name (`localhost`) or an IP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Folder of the event log (created if missing).
    #[arg(long, default_value = "./umpire-data")]
    data: PathBuf,
    /// Keep the log in memory instead: nothing is written to disk and nothing survives a
    /// restart. For trying umpire out, and for measuring it without its storage.
    #[arg(long, conflicts_with_all = ["data", "redis"])]
    memory: bool,
    /// Keep the log in Redis (or Valkey) at this URL (`redis://HOST:PORT`) instead of a
    /// folder: every node started with the same URL serves the same games. Redis must run
    /// with `appendonly yes`, `appendfsync always` and `maxmemory-policy noeviction`; the node
    /// refuses to start otherwise (see --unsafe-redis).
    #[arg(long, conflicts_with = "data", value_name = "URL")]
    redis: Option<String>,
    /// With --redis: serve even if Redis's settings could lose acknowledged moves. For
    /// throwaway setups.
    #[arg(long, requires = "redis")]
    unsafe_redis: bool,
    /// With --redis: this node's name, unique among the running nodes (default: the host's
    /// name and the port it listens on). A node started again under the same name takes its
    /// games back at once; under another, they wait for its leases to run out.
    #[arg(long, requires = "redis")]
    node_id: Option<String>,
    /// With --redis: how long a node holds a game it leads without renewing: a node that dies
    /// or stalls loses its games to the others after this.
    #[arg(long, requires = "redis", default_value_t = 10_000)]
    lease_ms: u64,
    /// With --redis: the prefix of every key umpire writes, so that several deployments can
    /// share one Redis.
    #[arg(long, requires = "redis", default_value = "u")]
    redis_prefix: String,
    /// With --redis: publish what django-websocket-redis's `RedisPublisher` publishes to this
    /// Redis on umpire's facility channels, for the ws4redis clients at /ws/<facility> (one
    /// node bridges at a time, under a lease).
    #[arg(long, requires = "redis")]
    ws4redis_bridge: bool,
    /// With --ws4redis-bridge: the Django site's WS4REDIS_PREFIX (default: none, as ws4redis).
    #[arg(long, requires = "ws4redis_bridge")]
    ws4redis_prefix: Option<String>,
    /// The heartbeat text of ws4redis clients (their `heartbeat_msg`, the site's
    /// WS4REDIS_HEARTBEAT): answered at once and sent on connect; empty: none.
    #[arg(long, default_value = "--heartbeat--")]
    ws4redis_heartbeat: String,
    /// How old a facility channel's last message may be and still be sent to a ws4redis
    /// client on connect (WS4REDIS_EXPIRE); 0: never sent.
    #[arg(long, default_value_t = 3600)]
    ws4redis_expire_secs: u64,
    /// Do not serve ws4redis clients: /ws/<facility> is 404.
    #[arg(long, conflicts_with = "ws4redis_bridge")]
    no_ws4redis: bool,
    /// When a command counts as done.
    #[arg(long, value_enum, default_value = "sync")]
    durability: DurabilityArg,
    /// With --durability batched: how long to gather games before each flush.
    #[arg(long, default_value_t = 2)]
    batch_ms: u64,
    /// Secret for HS256 tokens in `hello` (enables authentication).
    #[arg(long, env = "UMPIRE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Name each WebSocket's user from this cookie, holding an HS256 JWT signed with
    /// --jwt-secret (`sub`, `exp`; optionally `groups` and `sid`, the site's session key), as
    /// if it had said `hello`: for a site that signs users in itself (ws4redis clients'
    /// subscribe-user, -group and -session need it). No cookie: a guest; a bad one: 401.
    #[arg(long, requires = "jwt_secret")]
    login_cookie: Option<String>,
    /// Refuse everything but `hello` and `ping` until a connection authenticates.
    #[arg(long, requires = "jwt_secret")]
    require_auth: bool,
    /// Another Origin allowed to open WebSockets (repeatable; `*` for any). The server's own
    /// host and localhost are always allowed.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// A host name the server is reached under (repeatable; `*` for any). IP addresses and
    /// localhost are always allowed; requests for other names get 403 (DNS rebinding).
    #[arg(long = "allow-host")]
    allow_host: Vec<String>,
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
    /// Seconds a write may wait for a client that does not read before the connection is
    /// dropped.
    #[arg(long, default_value_t = 30)]
    write_timeout_secs: u64,
    /// Seconds a connection the server closed is held for the client's own close (its close
    /// frame and the end of the stream go out at once; this bounds only the wait after).
    #[arg(long, default_value_t = 5)]
    close_drain_secs: u64,
    /// Seconds from accepting a connection to its WebSocket upgrade or its one HTTP answer.
    #[arg(long, default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Connections accepted but not yet upgraded (or answered) at once; more are closed.
    #[arg(long, default_value_t = 1024)]
    max_handshakes: usize,
    /// Events queued per connection before it catches up from the log instead.
    #[arg(long, default_value_t = 256)]
    queue_len: usize,
    /// Kernel send buffer per connection, in bytes (default: the kernel's autotuning). Smaller
    /// bounds what a stalled client can hold; it then catches up from the log.
    #[arg(long)]
    send_buffer_bytes: Option<usize>,
    /// Bytes read from a connection at a time, and what an idle connection keeps allocated for
    /// reading. Larger messages still arrive whole, in more reads.
    #[arg(long, default_value_t = WsConfig::default().read_buffer_bytes)]
    read_buffer_bytes: usize,
    /// Games one connection may be in at once (playing or watching).
    #[arg(long, default_value_t = Limits::default().games_per_connection)]
    games_per_connection: usize,
    /// Games one connection, or one signed-in user, may create per minute.
    #[arg(long, default_value_t = Limits::default().creates_per_minute)]
    creates_per_minute: u32,
    /// Unfinished games one player may have created.
    #[arg(long, default_value_t = Limits::default().live_games_per_player)]
    live_games_per_player: usize,
    /// Live games held in memory at once; creating more is refused.
    #[arg(long, default_value_t = Limits::default().max_live_games)]
    max_live_games: usize,
    /// Minutes a game may sit with no event and no timer before it ends as `expired` and
    /// leaves memory; 0: never.
    #[arg(long, default_value_t = 24 * 60)]
    expire_idle_mins: u64,
    /// A folder of web pages to serve instead of the built-in ones (`/` is its index.html; a
    /// file it lacks, such as /umpire.js, still comes from the built-in client).
    #[arg(long)]
    web: Option<PathBuf>,
    /// Seconds a game nobody follows and nothing happens in stays in memory; it is loaded
    /// again on its next use or when its next timer is due. 0: games stay until they end.
    #[arg(long, default_value_t = 300)]
    evict_after_secs: u64,
    /// MiB of sled's page cache: records read recently stay in memory (a full cache holds
    /// about 2.5 times this in RSS).
    #[arg(long, default_value_t = SledOptions::default().cache_bytes >> 20)]
    cache_mib: u64,
    /// Save a snapshot of a game every this many events (loading reads the snapshot and the
    /// events after it). 0: never.
    #[arg(long, default_value_t = HubConfig::default().snapshot_every)]
    snapshot_every: u64,
    /// Remove finished games this long after their last event (`30d`, `12h`, `90m`; with
    /// their keys); checked at start and every hour. Without it they are kept for ever.
    #[arg(long, value_parser = parse_age)]
    retain_finished: Option<Duration>,
    /// The token `POST /api/publish` (and `umpire publish`) must present; without it,
    /// publishing over HTTP is off.
    #[arg(long, env = "UMPIRE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Notices each channel keeps for subscribers who come later.
    #[arg(long, default_value_t = 100)]
    channel_history: u64,
    /// Let every signed-in user subscribe to any group:NAME channel (an embedding server
    /// decides with its own policy instead).
    #[arg(long)]
    open_groups: bool,
    /// Hours after its connection went away that a session may still be resumed.
    #[arg(long, default_value_t = 24)]
    resume_hours: u64,
    /// How long a session that plays or watches a game may be resumed, as an age (`24h`,
    /// `90m`, `30s`); instead of --resume-hours.
    #[arg(long, value_parser = parse_age, conflicts_with = "resume_hours")]
    resume_for: Option<Duration>,
    /// How long a session in no game, only in channels, may be resumed (`10m`, `30s`). A
    /// session that followed only its own `session` channel is not kept at all.
    #[arg(long, value_parser = parse_age, default_value = "10m")]
    resume_channels_for: Duration,
    /// Resumable sessions kept at once; past it, a connection not kept yet cannot enter a
    /// game (`limit_reached`).
    #[arg(long, default_value_t = Limits::default().max_kept_sessions)]
    max_kept_sessions: usize,
    /// Channel streams on the server; past it, a new channel is `limit_reached`.
    #[arg(long, default_value_t = Limits::default().max_channels)]
    max_channels: usize,
    /// `play` requests one connection may have waiting for a seat at once.
    #[arg(long, default_value_t = Limits::default().plays_per_connection)]
    plays_per_connection: usize,
    /// Players waiting for a seat (`play`) on this server at once.
    #[arg(long, default_value_t = Limits::default().max_waiting)]
    max_waiting: usize,
    /// Games created per minute from one client address, over all its connections.
    #[arg(long, default_value_t = Limits::default().creates_per_minute_per_address)]
    creates_per_minute_per_address: u32,
    /// Channel subscriptions per minute from one client address, over all its connections.
    #[arg(long, default_value_t = Limits::default().subscribes_per_minute_per_address)]
    subscribes_per_minute_per_address: u32,
    /// WebSocket connections open at once from one client address (an IPv6 address counts
    /// by its /64); more are refused with HTTP 429.
    #[arg(long, default_value_t = WsConfig::default().max_connections_per_address)]
    max_connections_per_address: usize,
    /// A header naming the client's address, set by a reverse proxy you trust (such as
    /// `X-Forwarded-For`; its last address is taken). Without it, the TCP peer's address
    /// counts. Only set it when every connection comes through that proxy.
    #[arg(long)]
    client_address_header: Option<String>,
    /// Seconds a connection may stay behind the games it follows (reading too slowly to get
    /// events live) before it is closed with 1008; it can resume.
    #[arg(long, default_value_t = 60)]
    max_behind_secs: u64,
    /// Longest `cid` a command may carry, in bytes.
    #[arg(long, default_value_t = Limits::default().max_cid_bytes)]
    max_cid_bytes: usize,
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
            Some(Command::Serve(serve)) => *serve,
            _ => unreachable!("serve was given"),
        }
    }
}

/// Run what the command line asks for, on a tokio runtime of its own, until it is done (for
/// `serve`: until SIGINT or SIGTERM).
///
/// # Errors
/// The runtime cannot start, or the command failed (see `umpire serve`).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Some(Command::Serve(serve)) => runtime.block_on(serve_until_signal(*serve)),
        None => runtime.block_on(serve_until_signal(Serve::default())),
        Some(Command::Publish(publish)) => runtime.block_on(publish_notice(publish)),
        Some(Command::Inspect { data, what }) => inspect::run(&data, &what),
    }
}

/// `--open-groups`: any signed-in user may subscribe to any group.
#[derive(Debug)]
struct SignedIn;

impl umpire_hub::GroupPolicy for SignedIn {
    fn may_subscribe(&self, user: Option<&str>, _group: &str) -> bool {
        user.is_some()
    }
}

/// Send one notice to a running server and print its answer.
///
/// # Errors
/// The server cannot be reached or refused the notice (the reason is in the error).
pub async fn publish_notice(args: Publish) -> anyhow::Result<()> {
    use http_body_util::BodyExt as _;
    let data = serde_json::from_str(&args.data)
        .unwrap_or_else(|_| serde_json::Value::String(args.data.clone()));
    let body = serde_json::json!({ "channel": args.channel, "data": data }).to_string();
    let url = format!("{}/api/publish", args.server.trim_end_matches('/'));
    let request = hyper::Request::post(&url)
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", args.admin_token),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .with_context(|| format!("{url} is not a URL this client can use"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client
        .request(request)
        .await
        .with_context(|| format!("sending the notice to {url}"))?;
    let status = response.status();
    let answer = response
        .into_body()
        .collect()
        .await
        .context("reading the server's answer")?
        .to_bytes();
    let answer = String::from_utf8_lossy(&answer);
    if !status.is_success() {
        anyhow::bail!(
            "the server refused the notice ({status}): {}",
            answer.trim()
        );
    }
    println!("{}", answer.trim());
    Ok(())
}

/// An age such as `30d`, `12h`, `90m` or `45s`.
fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{text:?} is not an age: give a number and a unit, such as 30d, 12h, 90m or 45s")
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(number.saturating_mul(unit)))
}

/// Listen on `listen` (`host:port`; a host name is resolved), with a plain reason when the
/// port is taken.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "{listen} is already in use: is another umpire (or another server) running there? \
             Choose another address with --listen"
        ),
        Err(e) => Err(e).with_context(|| {
            format!("listening on {listen:?} (give host:port, such as 127.0.0.1:8080)")
        }),
    }
}

/// Serve until SIGINT or SIGTERM, then shut down cleanly.
///
/// # Errors
/// The log cannot be opened or restored, the address cannot be bound, the final flush failed.
pub async fn serve_until_signal(args: Serve) -> anyhow::Result<()> {
    if let Some(dir) = args.web.as_ref().filter(|d| !d.is_dir()) {
        anyhow::bail!("--web {}: there is no such folder of pages", dir.display());
    }
    // The port first: a server that cannot listen says so before restoring anything.
    let listener = bind(&args.listen).await?;
    let mut bus: Option<Arc<dyn umpire_hub::Bus>> = None;
    let mut bridge = None;
    let log: Arc<dyn Log> = if args.memory {
        Arc::new(MemLog::new())
    } else if let Some(url) = &args.redis {
        let mut options = umpire_redis::RedisOptions {
            prefix: args.redis_prefix.clone(),
            allow_unsafe: args.unsafe_redis,
            ..umpire_redis::RedisOptions::default()
        };
        options.node = match &args.node_id {
            Some(node) => node.clone(),
            None => {
                let host = std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_owned())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "umpire".into());
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                format!("{host}:{port}")
            }
        };
        let redis = umpire_redis::RedisLog::open(url, options).await?;
        tracing::info!(
            "the log is in Redis at {url}; this node is {}",
            redis.node()
        );
        let lease = Duration::from_millis(args.lease_ms.max(100));
        let node_bus = umpire_redis::RedisBus::new(url, redis.clone(), lease)
            .with_context(|| format!("the Redis URL {url}"))?;
        bus = Some(Arc::new(node_bus));
        if args.ws4redis_bridge {
            let prefix = args.ws4redis_prefix.as_deref();
            bridge = Some(
                umpire_redis::Ws4RedisBridge::new(url, prefix, &args.redis_prefix, redis.node())
                    .with_context(|| format!("the Redis URL {url}"))?,
            );
        }
        Arc::new(redis)
    } else {
        // A previous server on this folder may still be letting go of it.
        let options = SledOptions {
            cache_bytes: args.cache_mib << 20,
            ..SledOptions::default()
        };
        let wait = Duration::from_secs(2);
        let sled =
            SledLog::open_retrying_with(&args.data, &options, wait).map_err(|e| match e {
                umpire_store::StoreError::Locked(_) => anyhow::anyhow!("{e}"),
                e => anyhow::Error::new(e)
                    .context(format!("opening the event log in {}", args.data.display())),
            })?;
        Arc::new(sled)
    };
    let durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Batched => Durability::Batched(Duration::from_millis(args.batch_ms)),
        DurabilityArg::None => Durability::None,
    };
    let config = HubConfig {
        durability,
        queue_len: args.queue_len,
        require_auth: args.require_auth,
        limits: Limits {
            max_cid_bytes: args.max_cid_bytes,
            games_per_connection: args.games_per_connection,
            creates_per_minute: args.creates_per_minute,
            live_games_per_player: args.live_games_per_player,
            max_live_games: args.max_live_games,
            expire_idle_games: (args.expire_idle_mins > 0)
                .then(|| Duration::from_secs(args.expire_idle_mins.saturating_mul(60))),
            creates_per_minute_per_address: args.creates_per_minute_per_address,
            subscribes_per_minute_per_address: args.subscribes_per_minute_per_address,
            max_kept_sessions: args.max_kept_sessions,
            max_channels: args.max_channels,
            plays_per_connection: args.plays_per_connection,
            max_waiting: args.max_waiting,
        },
        resume_for: args
            .resume_for
            .unwrap_or(Duration::from_secs(args.resume_hours.saturating_mul(3600))),
        resume_channels_for: args.resume_channels_for,
        channel_history: args.channel_history.max(1),
        max_behind: Duration::from_secs(args.max_behind_secs),
        evict_after: (args.evict_after_secs > 0)
            .then(|| Duration::from_secs(args.evict_after_secs)),
        snapshot_every: args.snapshot_every,
        retain_finished: args.retain_finished,
        ..HubConfig::default()
    };
    let mut builder = Hub::builder(log)
        .config(config)
        .register(Connect4)
        .register(Tally)
        .register(Colony)
        .register(HighCard);
    if let Some(bus) = bus {
        builder = builder.bus(bus);
    }
    if let Some(secret) = &args.jwt_secret {
        builder = builder.authenticator(Arc::new(JwtAuth::hs256(secret.as_bytes())));
    }
    if args.open_groups {
        builder = builder.groups(Arc::new(SignedIn));
    }
    let hub = builder
        .start()
        .await
        .context("restoring games from the log")?;
    if let Some(bridge) = bridge {
        tokio::spawn(bridge.run(hub.clone()));
    }
    let mut ws = WsConfig {
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        rate_per_sec: args.rate_limit,
        rate_burst: args.rate_burst,
        ping_every: Duration::from_secs(args.ping_secs.max(1)),
        idle_timeout: Duration::from_secs(args.idle_secs.max(1)),
        write_timeout: Duration::from_secs(args.write_timeout_secs.max(1)),
        handshake_timeout: Duration::from_secs(args.handshake_timeout_secs.max(1)),
        max_handshakes: args.max_handshakes.max(1),
        allowed_origins: args.allow_origin.clone(),
        allowed_hosts: args.allow_host.clone(),
        send_buffer_bytes: args.send_buffer_bytes,
        close_drain: Duration::from_secs(args.close_drain_secs),
        max_connections_per_address: args.max_connections_per_address.max(1),
        client_address_header: args.client_address_header.clone(),
        read_buffer_bytes: args.read_buffer_bytes.max(64),
        admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
        web_dir: args.web.clone(),
        login: match (&args.login_cookie, &args.jwt_secret) {
            (Some(cookie), Some(secret)) => Some(Arc::new(umpire_ws::JwtCookie::new(
                cookie.clone(),
                JwtAuth::hs256(secret.as_bytes()),
            ))),
            _ => None,
        },
        ws4redis: (!args.no_ws4redis).then(|| umpire_ws::Ws4Redis {
            heartbeat: Some(args.ws4redis_heartbeat.clone()).filter(|h| !h.is_empty()),
            expire: Duration::from_secs(args.ws4redis_expire_secs),
        }),
    };
    fit_open_files(&mut ws);
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

/// Lower the connection limits so that they and [`OTHER_FILES`] fit in `limit` open files,
/// keeping a quarter for handshakes at most. Whether anything was lowered.
fn fit_to(ws: &mut WsConfig, limit: usize) -> bool {
    if ws.max_connections + ws.max_handshakes + OTHER_FILES <= limit {
        return false;
    }
    let room = limit.saturating_sub(OTHER_FILES).max(2);
    ws.max_handshakes = ws.max_handshakes.min(room / 4).max(1);
    ws.max_connections = ws.max_connections.min(room - ws.max_handshakes).max(1);
    true
}

/// Files kept for the log, the listener and the odd file served.
const OTHER_FILES: usize = 64;

/// Raise the limit on open files to what the system allows (every connection is one). If the
/// connection limits could still run into it, lower them to fit: a server out of file
/// descriptors accepts no one, not even the players the limits were meant to protect.
fn fit_open_files(ws: &mut WsConfig) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the limit on open files");
            return;
        }
    };
    if !fit_to(ws, limit) {
        tracing::debug!(limit, "open files");
        return;
    }
    tracing::warn!(
        limit,
        max_connections = ws.max_connections,
        max_handshakes = ws.max_handshakes,
        "the limit on open files is low: connection limits lowered to fit (raise it with ulimit -n)"
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_fit_a_low_limit_on_open_files() {
        let mut ws = WsConfig::default();
        assert!(!fit_to(&mut ws, 1 << 20), "a high limit changes nothing");
        assert_eq!(ws.max_connections, WsConfig::default().max_connections);
        assert!(fit_to(&mut ws, 1024));
        assert!(ws.max_connections + ws.max_handshakes + OTHER_FILES <= 1024);
        assert_eq!(ws.max_handshakes, (1024 - OTHER_FILES) / 4);
        assert!(
            ws.max_connections > ws.max_handshakes,
            "players keep most of the room"
        );
    }

    #[test]
    fn ages_take_a_number_and_a_unit() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        for bad in ["30", "d", "", "3x", "-1d", "1.5d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }
}
