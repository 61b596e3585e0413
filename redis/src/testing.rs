//! A `redis-server` of a test's own: started on a free 127.0.0.1 port in a temporary folder
//! with the settings umpire needs, killed when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a panic is the report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, with its data in a temporary folder.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    fsync: &'static str,
}

/// Whether tests that need Redis must run (CI sets `UMPIRE_REQUIRE_REDIS=1`): then a missing
/// `redis-server` fails them instead of skipping them.
pub fn required() -> bool {
    std::env::var_os("UMPIRE_REQUIRE_REDIS").is_some_and(|v| v != "0")
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    /// Start one with `appendonly yes` and `appendfsync always`, or `None` (after saying so on
    /// stderr) when `redis-server` is not installed and not [`required`].
    pub fn start() -> Option<Self> {
        Self::start_with("always")
    }

    /// Start one with the given `appendfsync`.
    pub fn start_with(fsync: &'static str) -> Option<Self> {
        if !installed() {
            assert!(
                !required(),
                "redis-server is not installed: run scripts/install-test-deps.sh"
            );
            eprintln!(
                "SKIPPED: redis-server is not installed (scripts/install-test-deps.sh installs \
                 it; UMPIRE_REQUIRE_REDIS=1 makes this a failure)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            fsync,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync,
            ])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() {
                    if let Ok(n) = s.read(&mut buf) {
                        if buf[..n].starts_with(b"+PONG") {
                            return;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill it with SIGKILL (no chance to write anything more).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same folder and port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The append-only folder, to copy or damage.
    pub fn aof_dir(&self) -> PathBuf {
        self.dir.path().join("appendonlydir")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
