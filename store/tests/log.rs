//! The Log contract (`umpire_store::contract`), run against both backends, plus what only sled
//! can show (reopening) and what needs threads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use bytes::Bytes;
use umpire_store::contract::{meta, records};
use umpire_store::{KeyEntry, MemLog, Refused, Role, SledLog, StoreError};

#[tokio::test]
async fn memory_backend_keeps_the_contract() {
    umpire_store::contract::run(&MemLog::new()).await;
}

#[tokio::test]
async fn sled_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    umpire_store::contract::run(&SledLog::open(dir.path()).unwrap()).await;
}

#[test]
fn sled_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (id, key) = {
        let log = SledLog::open(dir.path()).unwrap();
        let id = log.create_stream(&meta("colony")).unwrap();
        log.append(id, 0, &records(0..4)).unwrap().unwrap();
        let key = KeyEntry {
            stream: id,
            role: Role::Watch,
        };
        log.put_key("w", key).unwrap();
        log.save_snapshot(id, 2, b"snap").unwrap();
        log.sync().unwrap();
        (id, key)
    };
    // sled's threads let go of the folder's lock a moment after the last handle is dropped.
    let log = SledLog::open_retrying(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(log.version(id).unwrap(), 4);
    assert_eq!(
        log.read(id, 1, 10)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>(),
        records(0..4)
    );
    assert_eq!(log.find_key("w").unwrap(), Some(key));
    assert_eq!(log.load_snapshot(id).unwrap(), Some((2, b"snap".to_vec())));
    assert_eq!(log.meta(id).unwrap(), Some(meta("colony")));
    let fresh = log.create_stream(&meta("tally")).unwrap();
    assert!(fresh > id, "ids are never reused after a reopen");
}

#[test]
fn many_streams_appended_at_once_stay_separate_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let ids: Vec<_> = (0..16)
        .map(|_| log.create_stream(&meta("tally")).unwrap())
        .collect();
    let threads: Vec<_> = ids
        .iter()
        .map(|&id| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for n in 0..50u64 {
                    let record = Bytes::from(format!("{id}:{n}"));
                    log.append(id, n, &[record]).unwrap().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    log.sync().unwrap();
    for id in ids {
        let read = log.read(id, 1, 1000).unwrap();
        assert_eq!(read.len(), 50);
        for (n, (seq, record)) in read.into_iter().enumerate() {
            assert_eq!(seq, n as u64 + 1);
            assert_eq!(record, format!("{id}:{n}").as_bytes());
        }
    }
}

#[test]
fn two_writers_racing_on_one_stream_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let id = log.create_stream(&meta("tally")).unwrap();
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut won = 0;
                while log.version(id).unwrap() < 100 {
                    let at = log.version(id).unwrap();
                    if log.append(id, at, &[Bytes::from(vec![w])]).unwrap().is_ok() {
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let wins: u64 = writers.into_iter().map(|t| t.join().unwrap()).sum();
    let version = log.version(id).unwrap();
    assert_eq!(
        wins, version,
        "every successful append is one record, no more, no less"
    );
    assert_eq!(log.read(id, 1, 1000).unwrap().len() as u64, version);
}

#[test]
fn an_unknown_record_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let log = SledLog::open(dir.path()).unwrap();
        let id = log.create_stream(&meta("tally")).unwrap();
        log.append(id, 0, &records(0..2)).unwrap().unwrap();
        // A record from a hypothetical future format, written behind umpire's back.
        let mut key = id.to_be_bytes().to_vec();
        key.extend_from_slice(&3u64.to_be_bytes());
        log.db()
            .unwrap()
            .open_tree("events")
            .unwrap()
            .insert(key, vec![9, 1, 2, 3])
            .unwrap();
        log.db()
            .unwrap()
            .open_tree("meta")
            .unwrap()
            .insert(999u64.to_be_bytes(), vec![7])
            .unwrap();
        log.sync().unwrap();
        id
    };
    let log = SledLog::open_retrying(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    let err = log.read(id, 1, 10).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnknownVersion {
                what: "event",
                found: 9
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "event has format version 9, this build reads version 1"
    );
    assert!(matches!(
        log.streams(),
        Err(StoreError::UnknownVersion { found: 7, .. })
    ));
    assert_eq!(
        log.read(id, 1, 2).unwrap().len(),
        2,
        "older records still read"
    );
}

#[test]
fn sled_recovers_by_reopening_and_keeps_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    let id = log.create_stream(&meta("tally")).unwrap();
    log.append(id, 0, &records(0..3)).unwrap().unwrap();
    log.sync().unwrap();
    log.recover().unwrap();
    assert_eq!(log.version(id).unwrap(), 3, "the synced records are there");
    // Writing goes on after a reopen, and the version check reads the log afresh.
    assert_eq!(
        log.append(id, 2, &records(3..4)).unwrap(),
        Err(Refused::Stale {
            expected: 2,
            actual: 3
        })
    );
    assert_eq!(log.append(id, 3, &records(3..4)).unwrap(), Ok(4));
    log.sync().unwrap();
    assert_eq!(log.read(id, 1, 10).unwrap().len(), 4);
}

#[test]
fn a_folder_written_before_the_indexes_is_indexed_once_on_opening() {
    use umpire_store::{StreamMeta, StreamStatus, Wake};
    let dir = tempfile::tempdir().unwrap();
    let (live, over, key) = {
        let log = SledLog::open(dir.path()).unwrap();
        let mine = StreamMeta {
            creator: "ada".into(),
            ..meta("colony")
        };
        let live = log.create_stream(&mine).unwrap();
        let over = log.create_stream(&mine).unwrap();
        log.set_status(over, StreamStatus::Over, 5).unwrap();
        log.set_wake(live, Some(Wake { due: 70, timers: 1 }))
            .unwrap();
        let key = KeyEntry {
            stream: live,
            role: Role::Join,
        };
        log.put_key("join-live", key).unwrap();
        // What an older build left: no index, and sessions in a tree of their own.
        let db = log.db().unwrap();
        db.drop_tree("index").unwrap();
        db.open_tree("sessions")
            .unwrap()
            .insert("old", "x")
            .unwrap();
        log.sync().unwrap();
        (live, over, key)
    };
    let log = SledLog::open_retrying(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(log.live_games("ada", 10).unwrap(), 1);
    assert_eq!(
        log.due(100, None, 10).unwrap(),
        vec![(live, Wake { due: 70, timers: 1 })]
    );
    assert_eq!(
        log.finished_before(u64::MAX, 10).unwrap(),
        vec![over],
        "listed again"
    );
    assert_eq!(log.find_key("join-live").unwrap(), Some(key));
    assert_eq!(log.session_count().unwrap(), 0);
    assert!(
        !log.db()
            .unwrap()
            .tree_names()
            .iter()
            .any(|n| &n[..] == b"sessions"),
        "the old sessions are dropped"
    );
    log.remove_streams(&[live]).unwrap();
    assert_eq!(
        log.find_key("join-live").unwrap(),
        None,
        "its keys indexed too"
    );
}

/// Copy a folder as it is on disk, as a crash would leave it (sled's unflushed writes are in
/// the process's memory, not in its files).
fn copy_folder(from: &std::path::Path, to: &std::path::Path, skip: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == skip {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target, skip);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A log opened with sled flushing only when asked, and a copy of sled's files as a power
/// cut could leave them from then on: nothing after the opening's own sync (what sled writes
/// later is in the page cache until a checkpoint).
fn opened_with_a_copy() -> (
    tempfile::TempDir,
    tempfile::TempDir,
    umpire_store::SledOptions,
    SledLog,
) {
    let dir = tempfile::tempdir().unwrap();
    let options = umpire_store::SledOptions {
        background_flush_ms: None,
        ..umpire_store::SledOptions::default()
    };
    let log = SledLog::open_with(dir.path(), &options).unwrap();
    let cut = tempfile::tempdir().unwrap();
    copy_folder(dir.path(), cut.path(), "umpire-wal");
    (dir, cut, options, log)
}

/// The write-ahead file of `dir` as it is on disk, put beside the copy's sled files.
fn copy_wal(dir: &tempfile::TempDir, cut: &tempfile::TempDir) {
    copy_folder(
        &dir.path().join("umpire-wal"),
        &cut.path().join("umpire-wal"),
        "",
    );
}

#[test]
fn what_was_synced_comes_back_from_the_write_ahead_file_when_sled_lost_it() {
    let (dir, cut, options, log) = opened_with_a_copy();

    let id = log.create_stream(&meta("colony")).unwrap();
    log.append(id, 0, &records(0..3)).unwrap().unwrap();
    let key = KeyEntry {
        stream: id,
        role: Role::Join,
    };
    let mut w = umpire_store::Write::append(id, 3, records(3..5));
    w.keys = vec![("j".into(), key)];
    w.wake = umpire_store::WakeChange::Set(umpire_store::Wake { due: 99, timers: 2 });
    assert_eq!(log.commit(&[w], true).unwrap(), vec![Ok(5)]);
    log.save_snapshot(id, 4, b"snap").unwrap();
    let gone = log.create_stream(&meta("tally")).unwrap();
    log.append(gone, 0, &records(0..2)).unwrap().unwrap();
    log.remove_streams(&[gone]).unwrap();
    log.sync().unwrap();
    // The write-ahead file as the sync left it on disk.
    copy_wal(&dir, &cut);
    drop(log);

    let back = SledLog::open_with(cut.path(), &options).unwrap();
    assert_eq!(back.version(id).unwrap(), 5);
    assert_eq!(
        back.read(id, 1, 10)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>(),
        records(0..5)
    );
    assert_eq!(back.meta(id).unwrap(), Some(meta("colony")));
    assert_eq!(back.find_key("j").unwrap(), Some(key));
    assert_eq!(
        back.wake(id).unwrap(),
        Some(umpire_store::Wake { due: 99, timers: 2 })
    );
    assert_eq!(back.load_snapshot(id).unwrap(), Some((4, b"snap".to_vec())));
    assert_eq!(back.meta(gone).unwrap(), None);
    assert!(back.read(gone, 1, 10).unwrap().is_empty());
    // Replayed once and made durable in sled; a second opening reads the same, and the
    // replay is not made again on top of it.
    drop(back);
    let again =
        SledLog::open_retrying_with(cut.path(), &options, std::time::Duration::from_secs(10))
            .unwrap();
    assert_eq!(again.read(id, 1, 10).unwrap().len(), 5);
    assert_eq!(again.append(id, 5, &records(5..6)).unwrap(), Ok(6));
}

#[test]
fn a_torn_write_ahead_file_keeps_every_whole_change_before_the_tear() {
    let (dir, cut, options, log) = opened_with_a_copy();
    let id = log.create_stream(&meta("colony")).unwrap();
    for n in 0..4u8 {
        log.append(id, u64::from(n), &records(n..n + 1))
            .unwrap()
            .unwrap();
        log.sync().unwrap();
    }
    copy_wal(&dir, &cut);
    drop(log);
    // Tear the last change in half, as a crash during its write would.
    let wal = cut.path().join("umpire-wal");
    let segment = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);

    let back = SledLog::open_with(cut.path(), &options).unwrap();
    assert_eq!(back.version(id).unwrap(), 3);
    assert_eq!(back.append(id, 3, &records(9..10)).unwrap(), Ok(4));
}

#[test]
fn a_commit_cut_short_by_a_crash_is_rolled_back_on_opening() {
    let dir = tempfile::tempdir().unwrap();
    let (id, other) = {
        let log = SledLog::open(dir.path()).unwrap();
        let id = log.create_stream(&meta("tally")).unwrap();
        let other = log.create_stream(&meta("tally")).unwrap();
        log.append(id, 0, &records(0..2)).unwrap().unwrap();
        log.append(other, 0, &records(0..1)).unwrap().unwrap();
        log.sync().unwrap();
        // What a crash in the middle of a commit writing `id` after 2 leaves in sled: its
        // marker and part of its records (written behind the log's back, as it would have).
        let db = log.db().unwrap();
        let mut marker = id.to_be_bytes().to_vec();
        marker.extend_from_slice(&2u64.to_be_bytes());
        let mut key = vec![b'p'];
        key.extend_from_slice(&77u64.to_be_bytes());
        db.open_tree("index").unwrap().insert(key, marker).unwrap();
        let mut event = id.to_be_bytes().to_vec();
        event.extend_from_slice(&3u64.to_be_bytes());
        db.open_tree("events")
            .unwrap()
            .insert(event, vec![umpire_store::FORMAT_VERSION, 9])
            .unwrap();
        db.flush().unwrap();
        (id, other)
    };
    let log = SledLog::open_retrying(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(log.version(id).unwrap(), 2, "the part written is gone");
    assert_eq!(log.read(id, 1, 10).unwrap().len(), 2);
    assert_eq!(
        log.version(other).unwrap(),
        1,
        "other streams are untouched"
    );
    assert_eq!(log.append(id, 2, &records(2..3)).unwrap(), Ok(3));
}
