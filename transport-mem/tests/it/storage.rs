//! A log that fails: nothing unacknowledged is promised, nothing acknowledged is lost or
//! applied twice, the hub says it is unhealthy while the log fails and heals by itself.
//!
//! `Flaky` wraps a sled log and fails writes and flushes at random, the way a disk that fills
//! up or errors does to sled: after one failure every later call fails too, until the log is
//! reopened (`Log::recover`). Some injected failures happen before the write reaches sled,
//! some after (written but not acknowledged: the outcome a client cannot know), and some of
//! those as panics, as sled does on some I/O errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use umpire_engine::Envelope;
use umpire_games::Tally;
use umpire_hub::{Health, Hub, HubConfig};
use umpire_store::{
    KeyEntry, Refused, Result, Seq, SessionEntry, SideWrite, SledLog, SledOptions, StoreError,
    StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, Write,
};

use crate::common::{start, within};

#[derive(Debug)]
struct Flaky {
    inner: SledLog,
    /// xorshift state: the test is the same every run.
    rng: Mutex<u64>,
    /// Failures are injected only while armed.
    armed: AtomicBool,
    /// Failed, and not reopened since: everything fails.
    poisoned: AtomicBool,
    injected: AtomicUsize,
    /// Of those, how many were panics.
    panicked: AtomicUsize,
    recovered: AtomicUsize,
}

impl Flaky {
    pub fn new(inner: SledLog, seed: u64) -> Self {
        Flaky {
            inner,
            rng: Mutex::new(seed | 1),
            armed: AtomicBool::new(true),
            poisoned: AtomicBool::new(false),
            injected: AtomicUsize::new(0),
            panicked: AtomicUsize::new(0),
            recovered: AtomicUsize::new(0),
        }
    }

    /// Whether to fail now, with `per_mille` chance.
    pub fn roll(&self, per_mille: u64) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % 1000 < per_mille
    }

    pub fn fail(&self) -> StoreError {
        self.injected.fetch_add(1, Ordering::SeqCst);
        self.poisoned.store(true, Ordering::SeqCst);
        io::Error::other("injected failure").into()
    }

    pub fn check(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(io::Error::other("failed earlier; reopen the log").into());
        }
        Ok(())
    }
}

impl Flaky {
    pub fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        self.check()?;
        self.inner.create_stream(meta)
    }

    pub fn commit(&self, writes: &[Write], durable: bool) -> Result<Vec<Result<Seq, Refused>>> {
        let written = self.write(writes)?;
        if durable {
            self.sync()?;
        }
        Ok(written)
    }

    pub fn commit_with(
        &self,
        side: &[SideWrite],
        writes: &[Write],
        durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>> {
        self.check()?;
        self.inner.commit_with(side, &[], false)?;
        self.commit(writes, durable)
    }

    pub fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
        self.check()?;
        if self.roll(60) {
            return Err(self.fail());
        }
        let written = self.inner.write(writes)?;
        if self.roll(60) {
            let failure = self.fail();
            // sled unwraps some I/O errors itself: a failing disk can make it panic.
            if self.roll(300) {
                self.panicked.fetch_add(1, Ordering::SeqCst);
                panic!("injected panic after a write");
            }
            return Err(failure);
        }
        Ok(written)
    }

    pub fn set_status(&self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
        self.check()?;
        self.inner.set_status(stream, status, at)
    }

    pub fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        self.check()?;
        self.inner.remove_streams(streams)
    }

    pub fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        self.check()?;
        self.inner.set_wake(stream, wake)
    }

    pub fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        self.check()?;
        self.inner.put_key(key, entry)
    }

    pub fn claim_key(&self, key: &str, entry: KeyEntry) -> Result<KeyEntry> {
        self.check()?;
        self.inner.claim_key(key, entry)
    }

    pub fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        self.check()?;
        self.inner.save_snapshot(stream, version, state)
    }

    pub fn save_session(&self, token: &str, session: &SessionEntry) -> Result<()> {
        self.check()?;
        self.inner.save_session(token, session)
    }

    pub fn take_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        self.inner.take_session(token)
    }

    pub fn sync(&self) -> Result<()> {
        self.check()?;
        if self.roll(60) {
            return Err(self.fail());
        }
        self.inner.sync()
    }

    pub fn probe(&self) -> Result<()> {
        self.check()?;
        if self.roll(300) {
            return Err(self.fail());
        }
        self.inner.probe()
    }

    pub fn recover(&self) -> Result<()> {
        self.inner.recover()?;
        self.recovered.fetch_add(1, Ordering::SeqCst);
        self.poisoned.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Flaky {
    pub fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
        self.check()?;
        self.inner.read(stream, from, max)
    }
    pub fn version(&self, stream: StreamId) -> Result<Seq> {
        self.check()?;
        self.inner.version(stream)
    }
    pub fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        self.check()?;
        self.inner.meta(stream)
    }
    pub fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        self.check()?;
        self.inner.wake(stream)
    }
    pub fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        self.check()?;
        self.inner.find_key(key)
    }
    pub fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        self.check()?;
        self.inner.load_snapshot(stream)
    }
    pub fn load_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        self.check()?;
        self.inner.load_session(token)
    }
    pub fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>> {
        self.check()?;
        self.inner.due(until, after, max)
    }
    pub fn live_games(&self, creator: &str, max: usize) -> Result<usize> {
        self.check()?;
        self.inner.live_games(creator, max)
    }
    pub fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>> {
        self.check()?;
        self.inner.finished_before(before, max)
    }
    pub fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>> {
        self.check()?;
        self.inner.expired_sessions(before, max)
    }
    pub fn session_count(&self) -> Result<u64> {
        self.check()?;
        self.inner.session_count()
    }
    pub fn session_by_sid(&self, sid: &str) -> Result<Option<String>> {
        self.check()?;
        self.inner.session_by_sid(sid)
    }
    pub fn keys_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<(String, KeyEntry)>> {
        self.check()?;
        self.inner.keys_with_prefix(prefix, max)
    }
    pub fn streams(&self) -> Result<Vec<StreamInfo>> {
        self.check()?;
        self.inner.streams()
    }
    pub fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        self.check()?;
        self.inner.wakes()
    }
    pub fn sessions(&self) -> Result<Vec<(String, SessionEntry)>> {
        self.inner.sessions()
    }
}

// Inline: sled's calls block the test's worker threads, which is what a test may do.
umpire_store::blocking_log!(Flaky, inline, inline, inline);

const PLAYERS: usize = 6;
const ADDS: usize = 60;

/// Evaluate `$attempt` until it succeeds, a little apart.
macro_rules! retried {
    ($attempt:expr) => {
        loop {
            match $attempt {
                Ok(value) => break value,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_acknowledges_nothing_it_did_not_keep_and_the_hub_heals_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        background_flush_ms: None,
        ..SledOptions::default()
    };
    let sled = SledLog::open_with(dir.path(), &options).unwrap();
    let log = Arc::new(Flaky::new(sled, 0x5eed));
    let (hub, net) = start(log.clone(), HubConfig::default(), None).await;

    // Each player creates a tally game and adds 1, ADDS times, each add with its own cid and
    // retried with that cid until it is acknowledged.
    let mut players = Vec::new();
    for p in 0..PLAYERS {
        let net = net.clone();
        players.push(tokio::spawn(within(async move {
            let mut me = net.connect().await.unwrap();
            let game = retried!(me.create("tally", json!({"seats": 2})).await);
            let mut seqs = Vec::new();
            for i in 0..ADDS {
                let cid = format!("p{p}-{i}");
                let add = json!({"add": 1});
                let seq = retried!(
                    me.command_with_cid(game.game, add.clone(), Some(cid.clone()))
                        .await
                );
                seqs.push((cid, seq));
            }
            (game.game, seqs)
        })));
    }
    let mut games = Vec::new();
    for p in players {
        games.push(p.await.unwrap());
    }
    assert!(
        log.injected.load(Ordering::SeqCst) >= 5,
        "too few failures were injected to test anything: {}",
        log.injected.load(Ordering::SeqCst)
    );
    assert!(
        log.panicked.load(Ordering::SeqCst) > 0,
        "no write panicked: the seed must make some panic"
    );
    assert!(
        log.recovered.load(Ordering::SeqCst) > 0,
        "the log was never reopened"
    );
    eprintln!(
        "{} failures injected ({} of them panics), the log reopened {} times",
        log.injected.load(Ordering::SeqCst),
        log.panicked.load(Ordering::SeqCst),
        log.recovered.load(Ordering::SeqCst)
    );

    // The failures stop: the hub says so within a few probes.
    log.armed.store(false, Ordering::SeqCst);
    within(async {
        while hub.health() != Health::Ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Every acknowledged add is in the log exactly once, at the seq its ack named, and nothing
    // else was added: the log holds each cid once.
    for (game, seqs) in &games {
        let records = log.read(game.0, 1, 10_000).unwrap();
        let mut by_cid: HashMap<String, Vec<Seq>> = HashMap::new();
        for (seq, bytes) in &records {
            let env: Envelope<Tally> = rmp_serde::from_slice(bytes).unwrap();
            if let Some(cid) = env.cid {
                by_cid.entry(cid).or_default().push(*seq);
            }
        }
        assert_eq!(by_cid.len(), ADDS, "game {game}: every add, and only those");
        for (cid, acked) in seqs {
            assert_eq!(
                by_cid.get(cid),
                Some(&vec![acked.0]),
                "game {game}: {cid} once, at its acknowledged seq"
            );
        }
        let state = hub.inspect(*game).await.unwrap().state;
        assert_eq!(state["total"], json!(ADDS), "game {game}");
    }
    hub.shutdown().await.unwrap();
}

/// While the log fails, `Hub::health` says so with the reason; a game with a timer that
/// stopped on the failure is restarted when the log works again, and its timer fires without
/// anyone touching the game.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_reports_a_failing_log_and_restarts_its_stopped_games_when_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let sled = SledLog::open(dir.path()).unwrap();
    let log = Arc::new(Flaky::new(sled, 7));
    log.armed.store(false, Ordering::SeqCst);
    let hub: Hub = start(log.clone(), HubConfig::default(), None).await.0;
    let colony = hub
        .create("colony", json!({"build_ms": {"mine": 1500}}), "ada")
        .await
        .unwrap();

    // The next write fails: the order is not acknowledged, the game stops.
    log.poisoned.store(true, Ordering::SeqCst);
    let refused = hub
        .submit(
            colony.game,
            colony.seat,
            json!({"order": {"building": "mine"}}),
            None,
        )
        .await;
    assert!(
        refused.is_err(),
        "acknowledged on a failing log: {refused:?}"
    );
    match hub.health() {
        Health::Storage { reason, .. } => assert!(reason.contains("reopen"), "{reason}"),
        other => panic!("healthy while the log fails: {other}"),
    }

    // The log was reopened after the failure: the next order is taken, by the reloaded game.
    let seq = within(async {
        loop {
            let order = json!({"order": {"building": "mine"}});
            match hub.submit(colony.game, colony.seat, order, None).await {
                Ok(seq) => return seq,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert_eq!(hub.health(), Health::Ok);
    // Created, seated, then the order (ordered and its timer scheduled), once.
    assert_eq!(seq, 4, "the refused order left nothing in the log");

    // Fail again, with the mine under way: the game stops with its timer pending, comes back
    // by itself once a probe succeeds (nobody asks for it), and the mine completes.
    log.poisoned.store(true, Ordering::SeqCst);
    let order = json!({"order": {"building": "mine"}});
    let refused = hub.submit(colony.game, colony.seat, order, None).await;
    assert!(
        refused.is_err(),
        "acknowledged on a failing log: {refused:?}"
    );
    within(async {
        while !hub.live_games().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    within(async {
        while hub.live_games() != vec![colony.game] {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(hub.health(), Health::Ok);
    let built = within(async {
        loop {
            let found = hub.inspect(colony.game).await.unwrap();
            if found.timers == 0 {
                return found.state["built"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(built, json!([[0, "mine"]]), "the first order, and only it");
    hub.shutdown().await.unwrap();
}
