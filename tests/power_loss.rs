//! An acknowledgement survives the machine losing power.
//!
//! `umpire serve` runs as a child process with its data on a loop-mounted ext4 image. Clients
//! add to tally games as fast as they are acknowledged; then the server is stopped (SIGSTOP),
//! the file system shut down without flushing its journal (`EXT4_IOC_SHUTDOWN` with
//! `EXT4_GOING_FLAGS_NOLOGFLUSH`), which drops everything not yet `fsync`ed, as a power cut
//! would, and the server killed. The image is mounted again, the
//! server restarted on it, and every acknowledged command must be there.
//!
//! Needs root, `mkfs.ext4`, loop devices and python3 (for the ioctl: this workspace has no
//! `unsafe`). Where any is missing the test says so and passes without running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use umpire_ws::client::{connect, Format};

use support::{path, run, Server};

/// A mounted ext4 image, unmounted (lazily, if need be) when dropped.
struct Mounted {
    image: PathBuf,
    dir: PathBuf,
}

impl Mounted {
    fn new(root: &Path) -> Result<Self, String> {
        let image = root.join("disk.img");
        let dir = root.join("mnt");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        run("truncate", &["-s", "256M", path(&image)])?;
        run("mkfs.ext4", &["-q", "-F", path(&image)])?;
        let mounted = Mounted { image, dir };
        mounted.mount()?;
        Ok(mounted)
    }

    fn mount(&self) -> Result<(), String> {
        run("mount", &["-o", "loop", path(&self.image), path(&self.dir)])
    }

    fn unmount(&self) {
        // After a shutdown the kernel may still hold the mount busy for a moment.
        for _ in 0..50 {
            if run("umount", &[path(&self.dir)]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = run("umount", &["-l", path(&self.dir)]);
    }

    /// Cut the power to this file system: everything not synced is gone.
    fn shut_down(&self) -> Result<(), String> {
        let script = "import fcntl, os, struct, sys\n\
                      fd = os.open(sys.argv[1], os.O_RDONLY)\n\
                      fcntl.ioctl(fd, 0x8004587d, struct.pack('I', 2))\n";
        run("python3", &["-c", script, path(&self.dir)])
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_command_survives_a_power_cut() {
    let root = tempfile::tempdir().unwrap();
    let disk = match Mounted::new(root.path()) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: a loop-mounted ext4 is not available here ({why})");
            return;
        }
    };
    let data = disk.dir.join("data");
    let server = Server::start(&data, &["--rate-limit", "0"]);
    let url = server.ws();

    // Eight clients, a tally game each, adding as fast as they are acknowledged.
    let mut tasks = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = connect(&url, Format::MsgPack).await.unwrap();
            let game = client.create("tally", json!({"seats": 2})).await.unwrap();
            let mut acked = 3; // created, seated, online
                               // Acknowledged adds, until the file system is gone and the commands fail.
            while let Ok(seq) = client.command(game.game, json!({"add": 1})).await {
                acked = seq.0;
                if Instant::now() > deadline + Duration::from_secs(10) {
                    break;
                }
            }
            (game.game, game.watch.unwrap(), acked)
        }));
    }
    tokio::time::sleep_until(deadline.into()).await;
    // The cut is one instant for the server: stopped first (every answer it sent rests on an
    // fdatasync that returned), then the file system shut down without flushing its journal,
    // then the server killed. The ioctl itself takes a while (a process is started for it):
    // a server still running meanwhile would see its last fdatasyncs race the shutdown.
    let pid = server.child.id().to_string();
    run("kill", &["-STOP", &pid]).expect("the server stops");
    disk.shut_down().expect("the shutdown ioctl");
    // Killed while stopped: its clients' connections close, their last commands unanswered.
    drop(server);
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    disk.unmount();
    disk.mount().expect("the image mounts again");

    // Restarted on what the disk kept: every acknowledged add is there, exactly once.
    let server = Server::start(&data, &["--rate-limit", "0"]);
    let url = server.ws();
    let mut total = 0;
    for (game, watch, acked) in acked {
        assert!(
            acked > 3,
            "game {game}: nothing was acknowledged before the cut"
        );
        let mut watcher = connect(&url, Format::Json).await.unwrap();
        watcher.watch(&watch, None).await.unwrap();
        let n = usize::try_from(acked).unwrap();
        let events = tokio::time::timeout(Duration::from_secs(20), watcher.events(game, n))
            .await
            .unwrap_or_else(|_| panic!("game {game}: fewer than the {acked} acknowledged events"))
            .unwrap();
        // Every add once, in order: the total after the k-th add is k.
        for (k, env) in events.iter().enumerate().skip(3) {
            assert_eq!(env["seq"], json!(k + 1));
            assert_eq!(
                env["body"]["game"]["total"],
                json!(k - 2),
                "game {game}, event {env}"
            );
        }
        total += acked - 3;
    }
    eprintln!("{total} acknowledged adds, all of them there after the power cut");
}
