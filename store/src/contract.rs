//! The contract every [`Log`] backend keeps, as one function a backend's tests call:
//! `umpire_store::contract::run(&MyLog::new())`. sled and memory run it
//! (`store/tests/log.rs`); a new backend plugs into the same call.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use bytes::Bytes;

use crate::{
    KeyEntry, Log, Refused, Role, StoreError, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};

/// A live stream's metadata of `kind`, created at 7.
pub fn meta(kind: &str) -> StreamMeta {
    StreamMeta {
        kind: kind.into(),
        created: 7,
        status: StreamStatus::Live,
        creator: String::new(),
        invite: None,
    }
}

/// Distinct records of a few bytes, one per number in `range`.
pub fn records(range: std::ops::Range<u8>) -> Vec<Bytes> {
    range
        .map(|i| Bytes::from(vec![i; usize::from(i % 5) + 1]))
        .collect()
}

/// Run the whole contract against `log`, a fresh, empty log: panics with what broke.
///
/// It checks, in order: records round-trip in order and streams stay apart; a write at the
/// wrong version is a [`Refused`] and changes nothing; metadata and listing; keys; a write of
/// several streams, each checked on its own, keys and status only with their records;
/// forgetting the start of a stream; sessions kept, replaced, listed and removed; the latest
/// snapshot wins; the wake-up index changes with the records of a write, and only if they are
/// written; removing streams takes everything of theirs and nothing of the others'.
pub fn run(log: &dyn Log) {
    let a = log.create_stream(&meta("tally")).unwrap();
    let b = log.create_stream(&meta("connect4")).unwrap();
    assert_ne!(a, b);
    assert_eq!(log.version(a).unwrap(), 0);

    // Round trip.
    assert_eq!(log.append(a, 0, &records(0..3)).unwrap(), Ok(3));
    assert_eq!(log.append(a, 3, &records(3..5)).unwrap(), Ok(5));
    let read = log.read(a, 1, 100).unwrap();
    assert_eq!(
        read.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        read.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        records(0..5)
    );
    assert_eq!(
        log.read(a, 4, 100).unwrap(),
        vec![(4, records(3..4).remove(0)), (5, records(4..5).remove(0))]
    );
    assert_eq!(log.read(a, 2, 2).unwrap().len(), 2);
    assert!(log.read(a, 6, 100).unwrap().is_empty());
    assert!(
        log.read(b, 1, 100).unwrap().is_empty(),
        "streams do not leak into each other"
    );

    // Conflicts: ahead, behind, and exactly at version all behave.
    assert_eq!(
        log.append(a, 3, &records(9..10)).unwrap(),
        Err(Refused::Stale {
            expected: 3,
            actual: 5
        })
    );
    assert_eq!(
        log.append(a, 9, &records(9..10)).unwrap(),
        Err(Refused::Stale {
            expected: 9,
            actual: 5
        })
    );
    assert_eq!(log.version(a).unwrap(), 5, "a conflict writes nothing");
    assert!(matches!(
        log.append(999_999, 0, &records(0..1)),
        Err(StoreError::NoStream(999_999))
    ));

    // Metadata and listing.
    log.set_status(b, StreamStatus::Over).unwrap();
    let streams = log.streams().unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(
        (
            streams[0].id,
            streams[0].version,
            streams[0].meta.kind.as_str()
        ),
        (a, 5, "tally")
    );
    assert_eq!(streams[1].meta.status, StreamStatus::Over);

    // Keys.
    let entry = KeyEntry {
        stream: a,
        role: Role::Seat(3),
    };
    log.put_key("k-join", entry).unwrap();
    assert_eq!(log.find_key("k-join").unwrap(), Some(entry));
    assert_eq!(log.find_key("nope").unwrap(), None);

    // A write of several streams: each checked on its own, keys and status only with records.
    let c = log.create_stream(&meta("colony")).unwrap();
    let key = |role| KeyEntry { stream: c, role };
    let results = log
        .write(&[
            Write {
                stream: c,
                expected: 0,
                records: records(0..2),
                keys: vec![("k-c".into(), key(Role::Join))],
                status: None,
                ..Write::default()
            },
            Write {
                stream: a,
                expected: 4,
                records: records(0..1),
                keys: vec![("k-never".into(), key(Role::Watch))],
                status: Some(StreamStatus::Over),
                ..Write::default()
            },
            Write {
                stream: c,
                expected: 2,
                records: records(2..3),
                keys: Vec::new(),
                status: Some(StreamStatus::Over),
                ..Write::default()
            },
        ])
        .unwrap();
    assert_eq!(
        results,
        vec![
            Ok(2),
            Err(Refused::Stale {
                expected: 4,
                actual: 5
            }),
            Ok(3)
        ]
    );
    assert_eq!(log.version(c).unwrap(), 3);
    assert_eq!(
        log.version(a).unwrap(),
        5,
        "the conflicting write changed nothing"
    );
    assert_eq!(log.find_key("k-c").unwrap(), Some(key(Role::Join)));
    assert_eq!(log.find_key("k-never").unwrap(), None);
    assert_eq!(log.meta(a).unwrap().unwrap().status, StreamStatus::Live);
    assert_eq!(log.meta(c).unwrap().unwrap().status, StreamStatus::Over);
    assert!(matches!(
        log.write(&[Write {
            stream: 424_242,
            ..Write::default()
        }]),
        Err(StoreError::NoStream(424_242))
    ));

    // Forgetting the start of a stream (a channel's bounded history): reads skip it, the
    // version stays, and appending goes on after it.
    let ch = log.create_stream(&meta("channel")).unwrap();
    for (n, before) in [(3u8, None), (2, Some(4)), (1, Some(6))] {
        let version = log.version(ch).unwrap();
        let write = Write {
            stream: ch,
            expected: version,
            records: records(0..n),
            forget_before: before,
            ..Write::default()
        };
        assert_eq!(
            log.write(&[write]).unwrap(),
            vec![Ok(version + u64::from(n))]
        );
    }
    assert_eq!(log.version(ch).unwrap(), 6);
    let kept: Vec<u64> = log
        .read(ch, 1, 10)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![6]);
    let kept: Vec<u64> = log
        .read(ch, 5, 10)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![6]);

    // Sessions: kept by token, replaced, listed, removed.
    assert_eq!(log.load_session("s1").unwrap(), None);
    log.save_session("s1", b"one").unwrap();
    log.save_session("s1", b"uno").unwrap();
    log.save_session("s2", b"two").unwrap();
    assert_eq!(
        log.load_session("s1").unwrap().as_deref(),
        Some(&b"uno"[..])
    );
    let mut all = log.sessions().unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("s1".into(), b"uno".to_vec()),
            ("s2".into(), b"two".to_vec())
        ]
    );
    log.remove_session("s1").unwrap();
    assert_eq!(log.load_session("s1").unwrap(), None);

    // Snapshots: the latest wins.
    assert_eq!(log.load_snapshot(a).unwrap(), None);
    log.save_snapshot(a, 3, b"three").unwrap();
    log.save_snapshot(a, 5, b"five").unwrap();
    assert_eq!(log.load_snapshot(a).unwrap(), Some((5, b"five".to_vec())));

    // The wake-up index: changed with the records of a write, and only if they are written.
    let w = log.create_stream(&meta("colony")).unwrap();
    let soon = Wake {
        due: 500,
        timers: 2,
    };
    let write = |expected, wake| Write {
        stream: w,
        expected,
        records: records(1..2),
        wake,
        ..Write::default()
    };
    log.write(&[write(0, WakeChange::Set(soon))]).unwrap()[0].unwrap();
    assert_eq!(log.wake(w).unwrap(), Some(soon));
    let stale = log.write(&[write(0, WakeChange::Clear)]).unwrap();
    assert!(stale[0].is_err());
    assert_eq!(
        log.wake(w).unwrap(),
        Some(soon),
        "a refused write changes nothing"
    );
    log.write(&[write(1, WakeChange::Keep)]).unwrap()[0].unwrap();
    assert_eq!(log.wakes().unwrap(), vec![(w, soon)]);
    log.write(&[write(2, WakeChange::Clear)]).unwrap()[0].unwrap();
    assert_eq!(log.wake(w).unwrap(), None);
    log.set_wake(w, Some(Wake { due: 9, timers: 0 })).unwrap();
    assert_eq!(log.wakes().unwrap(), vec![(w, Wake { due: 9, timers: 0 })]);

    // Removing streams takes everything of theirs and nothing of the others'.
    let watch = KeyEntry {
        stream: w,
        role: Role::Watch,
    };
    log.put_key("w-watch", watch).unwrap();
    log.save_snapshot(w, 3, b"s").unwrap();
    let before_a = log.read(a, 1, 100).unwrap();
    log.remove_streams(&[w]).unwrap();
    assert_eq!(log.read(w, 1, 100).unwrap(), vec![]);
    assert_eq!(log.meta(w).unwrap(), None);
    assert_eq!(log.find_key("w-watch").unwrap(), None);
    assert_eq!(log.load_snapshot(w).unwrap(), None);
    assert_eq!(log.wakes().unwrap(), vec![]);
    assert!(log.metas().unwrap().iter().all(|(id, _)| *id != w));
    assert_eq!(log.read(a, 1, 100).unwrap(), before_a);
    assert_eq!(log.load_snapshot(a).unwrap(), Some((5, b"five".to_vec())));
    log.sync().unwrap();
}
