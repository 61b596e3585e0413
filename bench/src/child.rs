//! Servers run as child processes of this binary, each pinned to the server CPU, so that their
//! memory and CPU time are theirs alone; and the pinned thread the load generator runs on.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser as _};

/// `umpire-bench child [--cpu N] KIND ARGS...`
#[derive(Debug, Args)]
pub(crate) struct ChildArgs {
    /// Pin this process to one CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// `umpire` (the rest are `umpire serve` flags), `raw-fanout [--durable DIR]` or
    /// `raw-accept`.
    kind: String,
    /// The server's own arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

/// The child's side: pin, then serve until killed. Prints the address it listens on first.
pub(crate) fn run_child(args: ChildArgs) -> anyhow::Result<()> {
    if let Some(cpu) = args.cpu {
        pin(cpu)?;
    }
    match args.kind.as_str() {
        "umpire" => {
            let argv = ["umpire", "serve"].into_iter().map(str::to_owned);
            let cli = umpire::Cli::try_parse_from(argv.chain(args.rest))?;
            umpire::run(cli)
        }
        "raw-fanout" => crate::raw::fanout_server(&args.rest),
        "raw-accept" => crate::raw::accept_server(&args.rest),
        other => bail!("no server kind {other:?}"),
    }
}

/// Pin the calling thread (and the threads it starts later) to `cpu`.
pub(crate) fn pin(cpu: usize) -> anyhow::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        bail!("cannot pin to CPU {cpu}")
    }
}

/// Run `f` on a thread of its own, pinned to `cpu` if one is given. The load generator runs
/// this way so that the servers, spawned from the main thread, never inherit its pinning.
pub(crate) fn on_cpu<T: Send>(
    cpu: Option<usize>,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(cpu) = cpu {
                    pin(cpu)?;
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| bail!("the load generator panicked"))
    })
}

/// A single-threaded runtime for the load generator: every client on one core, no locks.
pub(crate) fn local_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A server in a child process.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Kept open: a closed pipe would fail the server's later prints.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Start `kind` with `args` and wait until it prints the address it listens on.
    pub(crate) fn start(kind: &str, args: &[String], cpu: Option<usize>) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("child");
        if let Some(cpu) = cpu {
            command.arg("--cpu").arg(cpu.to_string());
        }
        command.arg(kind).args(args).env("RUST_LOG", "warn");
        Self::spawn(command, kind)
    }

    /// Start `command` (a server of another kind: the peer's) and wait until it prints the
    /// address it listens on, `http://` or `ws://`, skipping whatever it prints before.
    pub(crate) fn spawn(mut command: Command, what: &str) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut printed = String::new();
        for _ in 0..100 {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                break;
            }
            let addr = line.split_whitespace().find_map(|word| {
                let rest = word
                    .strip_prefix("http://")
                    .or_else(|| word.strip_prefix("ws://"))?;
                rest.trim_end_matches('/').parse().ok()
            });
            if let Some(addr) = addr {
                return Ok(Server {
                    child,
                    addr,
                    _stdout: stdout,
                });
            }
            printed.push_str(&line);
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("{what} printed no address: {printed:?}")
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop the server (SIGKILL: benchmarks keep nothing) and reap it.
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time process `pid` has used so far (user and system).
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields we want follow its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("odd /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc/PID/stat")?.parse()?)
    };
    // utime and stime are fields 14 and 15 of the whole line; USER_HZ is 100 on Linux.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 10))
}

/// umpire's `/metrics`, as name (with labels) to value. Read with a plain blocking request.
pub(crate) fn metrics(addr: SocketAddr) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect())
}

/// Resident memory of process `pid`, in bytes.
pub(crate) fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// `umpire serve` flags for a benchmark server on a free port with its log in `data` (in
/// memory if `None`).
pub(crate) fn umpire_args(data: Option<&Path>, durability: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--durability",
        durability,
        // Benchmarks send as fast as they can: the per-connection rate limit would be the
        // figure measured.
        "--rate-limit",
        "0",
        "--max-connections",
        "30000",
        // Players start a new game after each one, many a minute from one connection: the
        // limits meant for hostile clients would be what is measured.
        "--creates-per-minute",
        "1000000",
        "--live-games-per-player",
        "1000000",
        // Players stay in every game they played (only spectators leave the last one).
        "--games-per-connection",
        "1000000",
        // Every client of a benchmark comes from 127.0.0.1: the per-address limits would
        // hold them all as one.
        "--max-connections-per-address",
        "30000",
        "--creates-per-minute-per-address",
        "1000000",
        "--subscribes-per-minute-per-address",
        "1000000",
        // Every player keeps a session for resuming.
        "--max-kept-sessions",
        "10000000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    match data {
        Some(dir) => args.extend(["--data".to_owned(), dir.display().to_string()]),
        None => args.push("--memory".into()),
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}
