//! A full disk: `umpire serve` runs with its data on a small tmpfs that is then filled up.
//! Nothing is acknowledged that was not kept, `/healthz` says what is wrong, and once space
//! comes back the same connection carries on in the same game, without a restart, with every
//! acknowledged command in the log once.
//!
//! Needs root (to mount a tmpfs). Where it cannot mount, the test says so and passes without
//! running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use umpire_client::ClientError;
use umpire_engine::protocol::ErrorCode;
use umpire_ws::client::{connect, Format};

use support::{path, run, Server};

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let size = format!("size={size}");
        run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", path(dir)])?;
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if run("umount", &[path(&self.0)]).is_err() {
            let _ = run("umount", &["-l", path(&self.0)]);
        }
    }
}

/// Write zeros to `file` until the file system is full.
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).unwrap();
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

async fn healthz(server: &Server) -> (u16, String) {
    server.get("/healthz").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_acknowledges_nothing_and_the_server_heals_when_space_comes_back() {
    let root = tempfile::tempdir().unwrap();
    let disk = match Tmpfs::mount(&root.path().join("disk"), "16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let server = Server::start(&disk.0.join("data"), &["--rate-limit", "0"]);
    let mut player = connect(&server.ws(), Format::Json).await.unwrap();
    let game = player.create("tally", json!({"seats": 2})).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..10 {
        let cid = format!("before-{i}");
        let seq = player
            .command_with_cid(game.game, json!({"add": 1}), Some(cid.clone()))
            .await
            .unwrap();
        acked.push((cid, seq));
    }
    assert_eq!(healthz(&server).await.0, 200);

    // The disk fills up: an add fails (with `internal`: not acknowledged) within a few
    // pages' worth of writes, and `/healthz` says why.
    let filler = disk.0.join("filler");
    fill(&filler);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let failed = loop {
        assert!(
            Instant::now() < deadline,
            "the full disk never failed a write"
        );
        let cid = format!("full-{n}");
        n += 1;
        match player
            .command_with_cid(game.game, json!({"add": 1}), Some(cid.clone()))
            .await
        {
            Ok(seq) => acked.push((cid, seq)),
            Err(ClientError::Server { code, message, .. }) => {
                assert_eq!(code, ErrorCode::Internal, "{message}");
                break cid;
            }
            Err(e) => panic!("the connection did not survive the full disk: {e}"),
        }
    };
    let (status, body) = healthz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("No space left"), "{body}");
    let refused = player.create("tally", json!({"seats": 2})).await;
    assert!(
        refused.is_err(),
        "a game created on a full disk: {refused:?}"
    );

    // Space comes back: the server finds out by itself, and the same connection, seated in
    // the same game, retries the failed add and goes on.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while healthz(&server).await.0 != 200 {
        assert!(Instant::now() < deadline, "never healthy again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seq = player
        .command_with_cid(game.game, json!({"add": 1}), Some(failed.clone()))
        .await
        .unwrap();
    acked.push((failed, seq));
    for i in 0..10 {
        let cid = format!("after-{i}");
        let seq = player
            .command_with_cid(game.game, json!({"add": 1}), Some(cid.clone()))
            .await
            .unwrap();
        acked.push((cid, seq));
    }
    let other = connect(&server.ws(), Format::Json).await.unwrap();
    let mut other = other;
    other.create("tally", json!({"seats": 2})).await.unwrap();

    // Every acknowledged add is in the log once, at its seq; the total counts each once.
    let mut watcher = connect(&server.ws(), Format::Json).await.unwrap();
    watcher
        .watch(game.watch.as_ref().unwrap(), None)
        .await
        .unwrap();
    let last = acked.iter().map(|(_, seq)| *seq).max().unwrap();
    let events = tokio::time::timeout(
        Duration::from_secs(20),
        watcher.events(game.game, usize::try_from(last.0).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    for (cid, seq) in &acked {
        let env = &events[usize::try_from(seq.0).unwrap() - 1];
        assert_eq!(env["cid"], json!(cid), "seq {seq}");
    }
    let adds = events.iter().filter(|e| e["cid"].is_string()).count();
    assert_eq!(adds, acked.len(), "only acknowledged adds are in the log");
    let total = &events.last().unwrap()["body"]["game"]["total"];
    assert_eq!(total, &json!(acked.len()));
}
