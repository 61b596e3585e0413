//! What the tests of the `umpire` binary share: the server as a child process, plain HTTP
//! requests, and shell commands for the tests that need a real file system.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `umpire serve` as a child process, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `host:port`.
    pub addr: String,
}

/// Where a server keeps its log.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `--data DIR`.
    Data(std::path::PathBuf),
    /// `--redis URL`.
    Redis(String),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Data(_) => f.write_str("sled"),
            Backend::Redis(_) => f.write_str("redis"),
        }
    }
}

impl Backend {
    /// The log, opened by the test once no server holds it (sled) or beside the servers
    /// (Redis).
    pub async fn open(&self) -> Box<dyn umpire_store::LogRead> {
        match self {
            Backend::Data(dir) => Box::new(
                umpire_store::SledLog::open_retrying(dir, std::time::Duration::from_secs(10))
                    .unwrap(),
            ),
            Backend::Redis(url) => Box::new(
                umpire_redis::RedisLog::open(url, umpire_redis::RedisOptions::default())
                    .await
                    .unwrap(),
            ),
        }
    }
}

impl Server {
    /// Start `umpire serve --listen 127.0.0.1:0` on `backend` with `args`.
    pub fn start_on(backend: &Backend, args: &[&str]) -> Self {
        match backend {
            Backend::Data(dir) => Self::start(dir, args),
            Backend::Redis(url) => Self::start_args(&[&["--redis", url], args].concat()),
        }
    }

    /// Start `umpire serve --listen 127.0.0.1:0 --data DATA ARGS...` and wait for the line
    /// that gives its URL.
    pub fn start(data: &Path, args: &[&str]) -> Self {
        let data = path(data);
        Self::start_args(&[&["--data", data], args].concat())
    }

    /// Start `umpire serve --listen 127.0.0.1:0 ARGS...` and wait for the line that gives its
    /// URL.
    pub fn start_args(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_umpire"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Server { child, addr }
    }

    /// The native protocol's WebSocket URL.
    pub fn ws(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` from `addr` over HTTP/1.1, the connection closed after it.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let answer = http(addr, "GET", path, &[], "").await;
    (answer.status, answer.body)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request to `addr` with `headers` and `body`, the connection closed after it.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Run a command; its stderr in the error.
pub fn run(program: &str, args: &[impl AsRef<OsStr>]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

/// A path as a `&str`.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A hub with the bundled games over `log`, started.
pub async fn bundled_hub(log: std::sync::Arc<dyn umpire_store::Log>) -> umpire_hub::Hub {
    umpire_hub::Hub::builder(log)
        .register(umpire_games::Connect4)
        .register(umpire_games::Tally)
        .register(umpire_games::Colony)
        .register(umpire_games::HighCard)
        .start()
        .await
        .unwrap()
}

/// The folder where `scripts/ws4redis-deps.sh` put django-websocket-redis 0.6.0 from PyPI
/// (`venv/`, `ws4redis.js`) and jQuery, fetching them if they are not there yet. `None`
/// (said loudly) when they cannot be fetched, except under CI, where that fails.
pub fn ws4redis_deps() -> Option<std::path::PathBuf> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ws4redis-deps.sh");
    let output = Command::new("bash").arg(script).output();
    let out = match output {
        Ok(o) if o.status.success() => o,
        failed => {
            let why = match failed {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the ws4redis tests: scripts/ws4redis-deps.sh failed: {why}"
            );
            eprintln!("\n*** SKIPPED: django-websocket-redis could not be fetched ({why})\n");
            return None;
        }
    };
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .trim()
        .to_owned();
    Some(std::path::PathBuf::from(dir))
}
