//! The contract every [`Log`] backend keeps, as one function a backend's tests call:
//! `umpire_store::contract::run(&MyLog::new()).await`. sled and memory run it
//! (`store/tests/log.rs`); a new backend plugs into the same call.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use bytes::Bytes;

use crate::{
    KeyEntry, Log, Refused, Role, SessionEntry, StoreError, StreamMeta, StreamStatus, Wake,
    WakeChange, Write,
};

/// A live stream's metadata of `kind`, created at 7.
pub fn meta(kind: &str) -> StreamMeta {
    StreamMeta {
        kind: kind.into(),
        created: 7,
        status: StreamStatus::Live,
        creator: String::new(),
        invite: None,
        finished: None,
    }
}

/// A session with public id `sid`, kept until `expires`, holding `record`.
pub fn session(sid: &str, expires: u64, record: &[u8]) -> SessionEntry {
    SessionEntry {
        sid: sid.into(),
        expires,
        record: record.to_vec(),
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
pub async fn run(log: &dyn Log) {
    let a = log.create_stream(meta("tally")).await.unwrap();
    let b = log.create_stream(meta("connect4")).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(log.version(a).await.unwrap(), 0);

    // Round trip.
    assert_eq!(log.append(a, 0, records(0..3)).await.unwrap(), Ok(3));
    assert_eq!(log.append(a, 3, records(3..5)).await.unwrap(), Ok(5));
    let read = log.read(a, 1, 100).await.unwrap();
    assert_eq!(
        read.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        read.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        records(0..5)
    );
    assert_eq!(
        log.read(a, 4, 100).await.unwrap(),
        vec![(4, records(3..4).remove(0)), (5, records(4..5).remove(0))]
    );
    assert_eq!(log.read(a, 2, 2).await.unwrap().len(), 2);
    assert!(log.read(a, 6, 100).await.unwrap().is_empty());
    assert!(
        log.read(b, 1, 100).await.unwrap().is_empty(),
        "streams do not leak into each other"
    );

    // Conflicts: ahead, behind, and exactly at version all behave.
    assert_eq!(
        log.append(a, 3, records(9..10)).await.unwrap(),
        Err(Refused::Stale {
            expected: 3,
            actual: 5
        })
    );
    assert_eq!(
        log.append(a, 9, records(9..10)).await.unwrap(),
        Err(Refused::Stale {
            expected: 9,
            actual: 5
        })
    );
    assert_eq!(
        log.version(a).await.unwrap(),
        5,
        "a conflict writes nothing"
    );
    assert!(matches!(
        log.append(999_999, 0, records(0..1)).await,
        Err(StoreError::NoStream(999_999))
    ));

    // Metadata and listing.
    log.set_status(b, StreamStatus::Over, 40).await.unwrap();
    let streams = log.streams().await.unwrap();
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
    log.put_key("k-join".into(), entry).await.unwrap();
    assert_eq!(log.find_key("k-join").await.unwrap(), Some(entry));
    assert_eq!(log.find_key("nope").await.unwrap(), None);
    // A claim takes a free key, and leaves a held one as it is.
    let other = KeyEntry {
        stream: a,
        role: Role::Watch,
    };
    assert_eq!(log.claim_key("k-join".into(), other).await.unwrap(), entry);
    assert_eq!(log.find_key("k-join").await.unwrap(), Some(entry));
    assert_eq!(log.claim_key("k-free".into(), other).await.unwrap(), other);
    assert_eq!(log.find_key("k-free").await.unwrap(), Some(other));

    // A write of several streams: each checked on its own, keys and status only with records.
    let c = log.create_stream(meta("colony")).await.unwrap();
    let key = |role| KeyEntry { stream: c, role };
    let results = log
        .commit(
            vec![
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
            ],
            false,
        )
        .await
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
    assert_eq!(log.version(c).await.unwrap(), 3);
    assert_eq!(
        log.version(a).await.unwrap(),
        5,
        "the conflicting write changed nothing"
    );
    assert_eq!(log.find_key("k-c").await.unwrap(), Some(key(Role::Join)));
    assert_eq!(log.find_key("k-never").await.unwrap(), None);
    assert_eq!(
        log.meta(a).await.unwrap().unwrap().status,
        StreamStatus::Live
    );
    assert_eq!(
        log.meta(c).await.unwrap().unwrap().status,
        StreamStatus::Over
    );
    assert!(matches!(
        log.commit(
            vec![Write {
                stream: 424_242,
                ..Write::default()
            }],
            false
        )
        .await,
        Err(StoreError::NoStream(424_242))
    ));

    // Forgetting the start of a stream (a channel's bounded history): reads skip it, the
    // version stays, and appending goes on after it.
    let ch = log.create_stream(meta("channel")).await.unwrap();
    for (n, before) in [(3u8, None), (2, Some(4)), (1, Some(6))] {
        let version = log.version(ch).await.unwrap();
        let write = Write {
            stream: ch,
            expected: version,
            records: records(0..n),
            forget_before: before,
            ..Write::default()
        };
        assert_eq!(
            log.commit(vec![write], false).await.unwrap(),
            vec![Ok(version + u64::from(n))]
        );
    }
    assert_eq!(log.version(ch).await.unwrap(), 6);
    let kept: Vec<u64> = log
        .read(ch, 1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![6]);
    let kept: Vec<u64> = log
        .read(ch, 5, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![6]);

    // Sessions: kept by token, replaced, found by public id, counted, listed by expiry, taken.
    assert_eq!(log.load_session("s1").await.unwrap(), None);
    log.save_session("s1".into(), session("p1", 100, b"one"))
        .await
        .unwrap();
    log.save_session("s1".into(), session("p1", 300, b"uno"))
        .await
        .unwrap();
    log.save_session("s2".into(), session("p2", 200, b"two"))
        .await
        .unwrap();
    assert_eq!(
        log.load_session("s1").await.unwrap(),
        Some(session("p1", 300, b"uno"))
    );
    assert_eq!(
        log.session_count().await.unwrap(),
        2,
        "a replaced session counts once"
    );
    assert_eq!(
        log.session_by_sid("p2").await.unwrap().as_deref(),
        Some("s2")
    );
    assert_eq!(log.session_by_sid("p3").await.unwrap(), None);
    assert_eq!(
        log.expired_sessions(250, 10).await.unwrap(),
        vec!["s2".to_owned()],
        "only s2 ran out by 250: s1's first expiry went with its record"
    );
    assert_eq!(
        log.expired_sessions(301, 10).await.unwrap(),
        vec!["s2".to_owned(), "s1".to_owned()],
        "earliest first"
    );
    assert_eq!(log.expired_sessions(301, 1).await.unwrap().len(), 1);
    let mut all = log.sessions().await.unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        vec![
            ("s1".into(), session("p1", 300, b"uno")),
            ("s2".into(), session("p2", 200, b"two"))
        ]
    );
    // Resumed: the old token is used up, the same public id kept under a new one.
    assert_eq!(
        log.take_session("s1".into()).await.unwrap(),
        Some(session("p1", 300, b"uno"))
    );
    assert_eq!(log.take_session("s1".into()).await.unwrap(), None);
    assert_eq!(log.load_session("s1").await.unwrap(), None);
    assert_eq!(log.session_by_sid("p1").await.unwrap(), None);
    log.save_session("s3".into(), session("p1", 500, b"tres"))
        .await
        .unwrap();
    assert_eq!(
        log.session_by_sid("p1").await.unwrap().as_deref(),
        Some("s3")
    );
    assert_eq!(log.session_count().await.unwrap(), 2);
    assert_eq!(
        log.expired_sessions(u64::MAX, 10).await.unwrap(),
        vec!["s2", "s3"]
    );
    log.take_session("s2".into()).await.unwrap();
    log.take_session("s3".into()).await.unwrap();
    assert_eq!(log.session_count().await.unwrap(), 0);
    assert!(log.expired_sessions(u64::MAX, 10).await.unwrap().is_empty());

    // Snapshots: the latest wins.
    assert_eq!(log.load_snapshot(a).await.unwrap(), None);
    log.save_snapshot(a, 3, b"three".to_vec()).await.unwrap();
    log.save_snapshot(a, 5, b"five".to_vec()).await.unwrap();
    assert_eq!(
        log.load_snapshot(a).await.unwrap(),
        Some((5, b"five".to_vec()))
    );

    // The wake-up index: changed with the records of a write, and only if they are written.
    let w = log.create_stream(meta("colony")).await.unwrap();
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
    log.commit(vec![write(0, WakeChange::Set(soon))], false)
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(log.wake(w).await.unwrap(), Some(soon));
    let stale = log
        .commit(vec![write(0, WakeChange::Clear)], false)
        .await
        .unwrap();
    assert!(stale[0].is_err());
    assert_eq!(
        log.wake(w).await.unwrap(),
        Some(soon),
        "a refused write changes nothing"
    );
    log.commit(vec![write(1, WakeChange::Keep)], false)
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(log.wakes().await.unwrap(), vec![(w, soon)]);
    log.commit(vec![write(2, WakeChange::Clear)], false)
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(log.wake(w).await.unwrap(), None);
    log.set_wake(w, Some(Wake { due: 9, timers: 0 }))
        .await
        .unwrap();
    assert_eq!(
        log.wakes().await.unwrap(),
        vec![(w, Wake { due: 9, timers: 0 })]
    );
    assert_eq!(
        log.due(8, None, 10).await.unwrap(),
        vec![],
        "not due before 9"
    );
    assert_eq!(
        log.due(9, None, 10).await.unwrap(),
        vec![(w, Wake { due: 9, timers: 0 })]
    );

    // Removing streams takes everything of theirs and nothing of the others'.
    let watch = KeyEntry {
        stream: w,
        role: Role::Watch,
    };
    log.put_key("w-watch".into(), watch).await.unwrap();
    log.save_snapshot(w, 3, b"s".to_vec()).await.unwrap();
    let before_a = log.read(a, 1, 100).await.unwrap();
    log.remove_streams(vec![w]).await.unwrap();
    assert_eq!(log.read(w, 1, 100).await.unwrap(), vec![]);
    assert_eq!(log.meta(w).await.unwrap(), None);
    assert_eq!(log.find_key("w-watch").await.unwrap(), None);
    assert_eq!(log.load_snapshot(w).await.unwrap(), None);
    assert_eq!(log.wakes().await.unwrap(), vec![]);
    assert_eq!(log.due(u64::MAX, None, 10).await.unwrap(), vec![]);
    assert!(log.streams().await.unwrap().iter().all(|info| info.id != w));
    assert_eq!(log.read(a, 1, 100).await.unwrap(), before_a);
    assert_eq!(
        log.load_snapshot(a).await.unwrap(),
        Some((5, b"five".to_vec()))
    );
    queries(log).await;
    log.sync().await.unwrap();
}

/// The queries a server asks at start and in housekeeping, each answered by an index that
/// changes with the writes: wake-ups by time, live games by creator, finished games by time,
/// keys by prefix.
async fn queries(log: &dyn Log) {
    let mine = |kind: &str, creator: &str| StreamMeta {
        creator: creator.into(),
        ..meta(kind)
    };
    // Wake-ups: set with records or alone, moved, cleared; paged in time order.
    let mut s = Vec::new();
    for _ in 0..4 {
        s.push(log.create_stream(mine("colony", "")).await.unwrap());
    }
    let wake = |due| Wake { due, timers: 1 };
    let set = |stream, expected, change| Write {
        stream,
        expected,
        records: records(0..1),
        wake: change,
        ..Write::default()
    };
    log.commit(
        vec![
            set(s[0], 0, WakeChange::Set(wake(5_000))),
            set(s[1], 0, WakeChange::Set(wake(3_000))),
        ],
        false,
    )
    .await
    .unwrap();
    log.set_wake(s[2], Some(wake(3_000))).await.unwrap();
    log.set_wake(s[3], Some(wake(9_000))).await.unwrap();
    log.commit(vec![set(s[0], 1, WakeChange::Set(wake(1_000)))], false)
        .await
        .unwrap();
    let ids = |page: Vec<(u64, Wake)>| page.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(
        ids(log.due(5_000, None, 10).await.unwrap()),
        vec![s[0], s[1], s[2]],
        "by due time, then stream; the moved entry only where it is now"
    );
    let first = log.due(5_000, None, 2).await.unwrap();
    assert_eq!(ids(first.clone()), vec![s[0], s[1]]);
    let last = first.last().map(|(id, w)| (w.due, *id));
    assert_eq!(
        ids(log.due(5_000, last, 2).await.unwrap()),
        vec![s[2]],
        "the next page"
    );
    log.commit(vec![set(s[1], 1, WakeChange::Clear)], false)
        .await
        .unwrap();
    log.set_wake(s[2], None).await.unwrap();
    assert_eq!(
        ids(log.due(u64::MAX, None, 10).await.unwrap()),
        vec![s[0], s[3]]
    );
    let refused = log
        .commit(vec![set(s[3], 5, WakeChange::Clear)], false)
        .await
        .unwrap();
    assert!(refused[0].is_err());
    assert_eq!(
        ids(log.due(u64::MAX, None, 10).await.unwrap()),
        vec![s[0], s[3]],
        "a refused write leaves the index"
    );

    // Live games by creator: counted from creation until marked over, by a write or alone.
    let mut ada = Vec::new();
    for _ in 0..3 {
        ada.push(log.create_stream(mine("tally", "ada")).await.unwrap());
    }
    let bo = log.create_stream(mine("tally", "bo")).await.unwrap();
    assert_eq!(log.live_games("ada", 10).await.unwrap(), 3);
    assert_eq!(
        log.live_games("ada", 2).await.unwrap(),
        2,
        "counted up to max"
    );
    assert_eq!(
        log.live_games("ad", 10).await.unwrap(),
        0,
        "not a prefix match"
    );
    assert_eq!(log.live_games("bo", 10).await.unwrap(), 1);
    let over = |stream, expected, at| Write {
        stream,
        expected,
        records: records(0..1),
        status: Some(StreamStatus::Over),
        at,
        ..Write::default()
    };
    log.commit(vec![over(ada[0], 0, 2_000)], false)
        .await
        .unwrap()[0]
        .unwrap();
    log.set_status(ada[1], StreamStatus::Over, 1_000)
        .await
        .unwrap();
    assert_eq!(log.live_games("ada", 10).await.unwrap(), 1);
    assert_eq!(
        log.meta(ada[0]).await.unwrap().unwrap().finished,
        Some(2_000)
    );

    // Finished games by the time they were marked over.
    let finished = log.finished_before(u64::MAX, 100).await.unwrap();
    let at = |id| finished.iter().position(|f| *f == id);
    assert!(at(ada[1]) < at(ada[0]), "earliest first: {finished:?}");
    assert!(
        at(ada[2]).is_none() && at(bo).is_none(),
        "live games are not listed"
    );
    assert!(!log
        .finished_before(1_500, 100)
        .await
        .unwrap()
        .contains(&ada[0]));
    assert!(log
        .finished_before(1_500, 100)
        .await
        .unwrap()
        .contains(&ada[1]));
    log.remove_streams(vec![ada[1]]).await.unwrap();
    assert!(!log
        .finished_before(u64::MAX, 100)
        .await
        .unwrap()
        .contains(&ada[1]));
    log.remove_streams(vec![ada[2], bo]).await.unwrap();
    assert_eq!(
        log.live_games("ada", 10).await.unwrap(),
        0,
        "removed, not counted"
    );
    assert_eq!(log.live_games("bo", 10).await.unwrap(), 0);

    // Keys by prefix, in key order.
    let entry = KeyEntry {
        stream: s[0],
        role: Role::Watch,
    };
    for key in ["session:b", "session:a", "sessions", "user:x"] {
        log.put_key(key.to_owned(), entry).await.unwrap();
    }
    let found: Vec<String> = log
        .keys_with_prefix("session:", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(found, vec!["session:a", "session:b"]);
    assert_eq!(log.keys_with_prefix("session:", 1).await.unwrap().len(), 1);
    log.remove_streams(s.clone()).await.unwrap();
    assert!(
        log.keys_with_prefix("session:", 10)
            .await
            .unwrap()
            .is_empty(),
        "gone with their stream"
    );
    assert_eq!(log.due(u64::MAX, None, 10).await.unwrap(), vec![]);
}
