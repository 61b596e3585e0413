//! The Log contract against a real Redis, and what only a shared, networked store can show:
//! writes fenced by leases, and a store that lost data found instead of served.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use umpire_redis::testing::RedisServer;
use umpire_redis::{RedisLog, RedisOptions};
use umpire_store::contract::{meta, records};
use umpire_store::{Log, LogRead, Refused, StoreError};

fn opts(node: &str) -> RedisOptions {
    RedisOptions {
        node: node.into(),
        ..RedisOptions::default()
    }
}

#[tokio::test]
async fn redis_backend_keeps_the_contract() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let log = RedisLog::open(&server.url(), opts("a")).await.unwrap();
    umpire_store::contract::run(&log).await;
}

#[tokio::test]
async fn a_node_whose_lease_was_taken_over_is_refused_and_nothing_forks() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = RedisLog::open(&server.url(), opts("a")).await.unwrap();
    let b = RedisLog::open(&server.url(), opts("b")).await.unwrap();
    let game = a.create_stream(meta("tally")).await.unwrap();
    let ttl = Duration::from_millis(300);
    a.acquire(game, ttl).await.unwrap().unwrap();
    assert_eq!(a.append(game, 0, records(0..2)).await.unwrap(), Ok(2));
    assert_eq!(
        b.acquire(game, ttl).await.unwrap(),
        Err("a".to_owned()),
        "a holds it"
    );
    assert_eq!(
        b.append(game, 2, records(2..3)).await.unwrap(),
        Err(Refused::NotOwner { stream: game }),
        "b may not write while a holds the lease"
    );
    // a stalls past its lease; b takes over and writes.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    b.acquire(game, ttl).await.unwrap().unwrap();
    assert_eq!(b.append(game, 2, records(2..3)).await.unwrap(), Ok(3));
    // a comes back believing it still runs the game: refused, whatever version it expects.
    assert_eq!(
        a.append(game, 2, records(5..6)).await.unwrap(),
        Err(Refused::NotOwner { stream: game })
    );
    assert_eq!(a.renew(&[game], ttl).await.unwrap(), vec![false]);
    assert_eq!(b.renew(&[game], ttl).await.unwrap(), vec![true]);
    let seqs: Vec<u64> = a
        .read(game, 1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3], "one contiguous history");
    b.release(&[game]).await.unwrap();
    assert_eq!(b.holder(game).await.unwrap(), None);
}

#[tokio::test]
async fn a_redis_that_could_lose_acknowledged_writes_is_refused_unless_allowed() {
    let Some(server) = RedisServer::start_with("everysec") else {
        return;
    };
    let err = RedisLog::open(&server.url(), opts("a")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("appendfsync is everysec") && text.contains("--unsafe-redis"),
        "{text}"
    );
    let allowed = RedisOptions {
        allow_unsafe: true,
        ..opts("a")
    };
    let log = RedisLog::open(&server.url(), allowed).await.unwrap();
    let game = log.create_stream(meta("tally")).await.unwrap();
    assert_eq!(log.append(game, 0, records(0..1)).await.unwrap(), Ok(1));
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill_of_redis_and_the_node_reconnects() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let log = RedisLog::open(&server.url(), opts("a")).await.unwrap();
    let game = log.create_stream(meta("tally")).await.unwrap();
    for n in 0..50u8 {
        let v = u64::from(n);
        assert_eq!(
            log.append(game, v, records(n..n + 1)).await.unwrap(),
            Ok(v + 1)
        );
    }
    server.restart();
    // The first request after the restart may meet the dropped connection; the manager
    // reconnects and the next succeeds.
    let mut version = None;
    for _ in 0..50 {
        match log.version(game).await {
            Ok(v) => {
                version = Some(v);
                break;
            }
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(version, Some(50), "every acknowledged record is there");
    assert_eq!(log.read(game, 1, 100).await.unwrap().len(), 50);
    log.probe().await.unwrap();
    assert_eq!(log.append(game, 50, records(0..1)).await.unwrap(), Ok(51));
}

#[tokio::test]
async fn a_redis_wiped_or_restored_from_an_older_file_stops_the_node() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let log = RedisLog::open(&server.url(), opts("a")).await.unwrap();
    let game = log.create_stream(meta("tally")).await.unwrap();
    log.append(game, 0, records(0..3)).await.unwrap().unwrap();
    // Keep the append-only file as it is now, write more, then bring the old file back.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&server.aof_dir(), copy.path());
    log.append(game, 3, records(3..6)).await.unwrap().unwrap();
    server.kill();
    std::fs::remove_dir_all(server.aof_dir()).unwrap();
    copy_dir(copy.path(), &server.aof_dir());
    server.restart();
    let mut outcome = None;
    for _ in 0..50 {
        match log.append(game, 3, records(9..10)).await {
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => {
                outcome = Some(other);
                break;
            }
        }
    }
    assert!(
        matches!(outcome, Some(Err(StoreError::Lost(_)))),
        "a shorter log is not served: {outcome:?}"
    );
    assert!(
        matches!(log.recover().await, Err(StoreError::Lost(_))),
        "and stays failed"
    );

    // Wiped: a second node, opened before, finds the epoch gone at its next commit.
    let other = RedisLog::open(&server.url(), opts("b")).await.unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(
            &mut redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(
        other.create_stream(meta("tally")).await,
        Err(StoreError::Lost(_))
    ));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_in_flight_together_are_not_taken_for_a_rolled_back_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let log = RedisLog::open(&server.url(), opts("a")).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..16 {
        streams.push(log.create_stream(meta("tally")).await.unwrap());
    }
    // Their answers come back in whatever order the tasks run: each must only be past what
    // was seen before it was sent.
    for round in 0..20u64 {
        let commits = streams.iter().map(|&s| {
            let log = log.clone();
            tokio::spawn(async move { log.append(s, round, records(0..1)).await })
        });
        for done in futures_util::future::join_all(commits).await {
            assert_eq!(done.unwrap().unwrap(), Ok(round + 1));
        }
    }
    log.probe().await.unwrap();
}
