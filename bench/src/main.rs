//! umpire-bench: umpire measured from the outside, each scenario against its raw limit in the
//! same run.
//!
//! ```text
//! cargo run --release -p umpire-bench -- fanout --server-cpu 1 --client-cpu 0
//! cargo run --release -p umpire-bench -- all --smoke        # seconds; checks nothing was lost
//! cargo run --release -p umpire-bench -- durable --redis auto # also on a redis-server of its own
//! ```
//!
//! Every scenario starts real servers (umpire, and a raw server written for the comparison) in
//! child processes of this binary, pinned to `--server-cpu`, and drives them from this process,
//! pinned to `--client-cpu`. It prints a table and one JSON line per scenario, and exits non-zero
//! if any client lost, repeated or reordered anything.
//!
//! # Layout
//! - `fanout`: G games x S spectators over the native (JSON, MessagePack) and tutorial protocols.
//! - `durable`: acknowledged commands through the hub API, against raw sled batches.
//! - `restore`: bringing games back from the log, against a raw scan of the same records.
//! - `connections`: memory per idle connection, spectator and game; new connections per second.
//! - `lazy`: start-up on a folder of many games, and memory as they load and leave again.
//! - `matchmaking`: players asking for a game at once (`play`), seated, one move each.
//! - `peer`: umpire beside Colyseus (Node), one load generator, server CPU per move.
//! - `raw`: the raw servers the scenarios compare with.
//! - `wire`: the load generator's WebSocket client and its cheap frame classifier.
//! - `child`: servers as pinned child processes; their RSS and CPU time.
//! - `report`: tables, percentiles, the JSON line.

/// The same allocator as the `umpire` binary: the servers measured run in this process.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod child;
mod connections;
mod durable;
mod fanout;
mod lazy;
mod matchmaking;
mod peer;
mod raw;
mod report;
mod restore;
mod wire;

use clap::{Args, Parser, Subcommand};

/// Benchmarks for umpire, each against its raw limit.
#[derive(Debug, Parser)]
#[command(name = "umpire-bench")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    common: Common,
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Pin the servers (umpire's and the raw ones) to this CPU.
    #[arg(long, global = true)]
    pub(crate) server_cpu: Option<usize>,
    /// Pin the load generator to this CPU.
    #[arg(long, global = true)]
    pub(crate) client_cpu: Option<usize>,
    /// A seconds-long run with small sizes, for CI: checks that nothing was lost, times nothing
    /// that matters.
    #[arg(long, global = true)]
    pub(crate) smoke: bool,
    /// Also measure umpire on Redis (`durable`, `fanout`), against Redis's own limit: a URL
    /// (`redis://127.0.0.1:6379/`; it must run with `appendonly yes` and `appendfsync
    /// always`), or `auto` to start a `redis-server` of its own in a temporary folder.
    #[arg(long, global = true)]
    pub(crate) redis: Option<String>,
    /// The CPU for the `redis-server` that `--redis auto` starts (default: the server CPU,
    /// beside umpire and the raw client). Given one of its own (`--redis-cpu 0` with
    /// `--server-cpu 1`), Redis runs as it would on a machine of its own, and `durable` moves
    /// its load generator onto the server CPU so that Redis's CPU is Redis's alone in both
    /// runs, umpire's and the raw one.
    #[arg(long, global = true)]
    pub(crate) redis_cpu: Option<usize>,
}

impl Common {
    /// The Redis to measure on, started here for `auto` (kept running while the handle
    /// lives), or `None` without `--redis`.
    pub(crate) fn redis(
        &self,
    ) -> anyhow::Result<Option<(String, Option<umpire_redis::testing::RedisServer>)>> {
        match self.redis.as_deref() {
            None => Ok(None),
            Some("auto") => {
                let server = umpire_redis::testing::RedisServer::start().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--redis auto needs redis-server installed (scripts/install-test-deps.sh)"
                    )
                })?;
                // On the servers' CPU, beside umpire (and beside the raw client): both pay
                // for sharing it alike; or on a CPU of its own.
                if let (Some(cpu), Some(pid)) = (self.redis_cpu.or(self.server_cpu), server.pid()) {
                    let _ = std::process::Command::new("taskset")
                        .args(["-a", "-cp", &cpu.to_string(), &pid.to_string()])
                        .stdout(std::process::Stdio::null())
                        .status();
                }
                Ok(Some((server.url(), Some(server))))
            }
            Some(url) => Ok(Some((url.to_owned(), None))),
        }
    }
}

/// A key prefix no earlier run used, so runs on one Redis do not meet.
pub(crate) fn fresh_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bench-{what}-{nanos}")
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Players moving as fast as acks allow, spectators reading everything.
    Fanout(fanout::FanoutArgs),
    /// Acknowledged commands per second through the hub, in process.
    Durable(durable::DurableArgs),
    /// Bringing games back from the log.
    Restore(restore::RestoreArgs),
    /// Memory per idle connection and new connections per second.
    Connections(connections::ConnectionsArgs),
    /// Start-up with many games in the log; memory as they load and leave memory again.
    Lazy(lazy::LazyArgs),
    /// Players asking for Connect Four at once: pairs per second, time to a seat.
    Matchmaking(matchmaking::MatchmakingArgs),
    /// umpire beside Colyseus on Node: one load generator, server CPU per move (installs Node
    /// 22 and Colyseus with npm on its first run; not part of `all`).
    Peer(peer::PeerArgs),
    /// Every scenario with its defaults.
    All,
    /// (internal) Run a server in this process: `umpire ARGS...`, `raw-fanout` or `raw-accept`.
    #[command(hide = true)]
    Child(child::ChildArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let common = cli.common;
    let ok = match cli.scenario {
        Scenario::Child(args) => return child::run_child(args),
        Scenario::Fanout(args) => fanout::run(&common, &args)?,
        Scenario::Durable(args) => durable::run(&common, &args)?,
        Scenario::Restore(args) => restore::run(&common, &args)?,
        Scenario::Connections(args) => connections::run(&common, &args)?,
        Scenario::Lazy(args) => lazy::run(&common, &args)?,
        Scenario::Peer(args) => peer::run(&common, &args)?,
        Scenario::Matchmaking(args) => matchmaking::run(&common, &args)?,
        Scenario::All => {
            // Each runs even if an earlier one found a loss, so one run shows everything.
            let fanout = fanout::run(&common, &fanout::FanoutArgs::parse_default())?;
            let durable = durable::run(&common, &durable::DurableArgs::parse_default())?;
            let restore = restore::run(&common, &restore::RestoreArgs::parse_default())?;
            let connections =
                connections::run(&common, &connections::ConnectionsArgs::parse_default())?;
            let lazy = lazy::run(&common, &lazy::LazyArgs::parse_default())?;
            let matchmaking =
                matchmaking::run(&common, &matchmaking::MatchmakingArgs::parse_default())?;
            fanout && durable && restore && connections && lazy && matchmaking
        }
    };
    if !ok {
        anyhow::bail!("a client lost, repeated or reordered something: see the lines above");
    }
    Ok(())
}

/// Defaults of a scenario's arguments, as if given no flags.
pub(crate) trait ParseDefault: Args + Sized {
    fn parse_default() -> Self {
        #[derive(Parser)]
        struct Wrap<T: Args> {
            #[command(flatten)]
            inner: T,
        }
        Wrap::<Self>::parse_from(["umpire-bench"]).inner
    }
}

impl<T: Args> ParseDefault for T {}
