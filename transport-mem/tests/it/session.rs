//! What a session promises besides delivery: pipelined requests, answers in order, an `ok`
//! after the events it acknowledges, and an answer for every request even when the log fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use umpire_engine::protocol::{ClientMsg, ErrorCode, ServerMsg};
use umpire_hub::HubConfig;
use umpire_store::{
    KeyEntry, Log, MemLog, Refused, Result, Seq, SessionEntry, SideWrite, StoreError, StreamId,
    StreamInfo, StreamMeta, StreamStatus, Wake, Write,
};

use crate::common::{start, within};
use umpire_engine::protocol::GameId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_are_answered_in_order_each_after_its_events() {
    // An outbox of 2 events: the player's own events overflow it all the time, so most of
    // what it sees comes from catching up in the log.
    let config = HubConfig {
        queue_len: 2,
        ..HubConfig::default()
    };
    let (hub, net) = start(Arc::new(MemLog::new()), config, None).await;
    let mut player = net.connect_with_queue(4).await.unwrap();
    let game = within(player.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    // Rounds of 50 requests sent without waiting (fewer than the session takes in flight,
    // so a client that sends before it reads never blocks), then everything read.
    let (rounds, per_round) = (3, 50);
    let n = rounds * per_round;
    let (mut answered, mut last_event) = (0, 0);
    for round in 0..rounds {
        for i in round * per_round..(round + 1) * per_round {
            within(player.send(add_one(game.game.0, i))).await.unwrap();
        }
        read(
            &mut player,
            (round + 1) * per_round,
            &mut answered,
            &mut last_event,
        )
        .await;
    }
    // Created, the creator seated and online, then one event per add.
    assert_eq!(last_event, 3 + n);
    assert_eq!(
        hub.inspect(game.game).await.unwrap().state["total"],
        json!(n)
    );
    hub.shutdown().await.unwrap();
}

/// A tally command adding 1, with `i` as its `ref`.
fn add_one(game: u64, i: u64) -> ClientMsg {
    ClientMsg::Command {
        game: GameId(game),
        cmd: json!({"add": 1}),
        cid: None,
        r#ref: Some(json!(i)),
    }
}

/// Read until `upto` answers have come, checking that events come in order without gaps and
/// that each `ok` comes after the event it acknowledges.
async fn read(
    player: &mut umpire_mem::MemClient,
    upto: u64,
    answered: &mut u64,
    last_event: &mut u64,
) {
    while *answered < upto {
        match within(player.recv()).await.unwrap() {
            ServerMsg::Event { env, .. } => {
                let seq = env["seq"].as_u64().unwrap();
                assert!(
                    seq == *last_event + 1 || *last_event == 0,
                    "event {seq} after {last_event}"
                );
                *last_event = seq;
            }
            ServerMsg::Ok {
                seq: Some(seq),
                r#ref,
                ..
            } => {
                assert_eq!(r#ref, Some(json!(*answered)), "answers in request order");
                assert!(
                    *last_event >= seq.0,
                    "ok for seq {seq} came before its event (last event {last_event})"
                );
                *answered += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A memory log whose writes and flushes fail while `broken` is set, and whose writes are
/// refused as another process's while `taken_over` is set.
#[derive(Debug, Default)]
struct Breakable {
    log: MemLog,
    broken: AtomicBool,
    taken_over: AtomicBool,
}

impl Breakable {
    pub fn check(&self) -> Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                what: "test disk",
                detail: "unplugged".into(),
            });
        }
        Ok(())
    }
}

impl Breakable {
    pub fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        self.log.create_stream(meta)
    }
    pub fn commit(
        &self,
        writes: &[Write],
        durable: bool,
    ) -> Result<Vec<std::result::Result<Seq, Refused>>> {
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
    ) -> Result<Vec<std::result::Result<Seq, Refused>>> {
        self.log.commit_with(side, &[], false)?;
        self.commit(writes, durable)
    }
    pub fn recover(&self) -> Result<()> {
        Ok(())
    }
    pub fn probe(&self) -> Result<()> {
        self.sync()
    }
    pub fn write(&self, writes: &[Write]) -> Result<Vec<std::result::Result<Seq, Refused>>> {
        self.check()?;
        if self.taken_over.load(Ordering::SeqCst) {
            let refused = |w: &Write| Err(Refused::NotOwner { stream: w.stream });
            return Ok(writes.iter().map(refused).collect());
        }
        self.log.write(writes)
    }
    pub fn set_status(&self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
        self.log.set_status(stream, status, at)
    }
    pub fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        self.log.remove_streams(streams)
    }
    pub fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        self.log.set_wake(stream, wake)
    }
    pub fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        self.log.put_key(key, entry)
    }
    pub fn claim_key(&self, key: &str, entry: KeyEntry) -> Result<KeyEntry> {
        self.log.claim_key(key, entry)
    }
    pub fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        self.log.save_snapshot(stream, version, state)
    }
    pub fn save_session(&self, token: &str, session: &SessionEntry) -> Result<()> {
        self.check()?;
        self.log.save_session(token, session)
    }
    pub fn take_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        self.log.take_session(token)
    }
    pub fn sync(&self) -> Result<()> {
        self.check()?;
        self.log.sync()
    }
}

impl Breakable {
    pub fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
        self.log.read(stream, from, max)
    }
    pub fn version(&self, stream: StreamId) -> Result<Seq> {
        self.log.version(stream)
    }
    pub fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        self.log.meta(stream)
    }
    pub fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        self.log.wake(stream)
    }
    pub fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        self.log.find_key(key)
    }
    pub fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        self.log.load_snapshot(stream)
    }
    pub fn load_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        self.check()?;
        self.log.load_session(token)
    }
    pub fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>> {
        self.log.due(until, after, max)
    }
    pub fn live_games(&self, creator: &str, max: usize) -> Result<usize> {
        self.log.live_games(creator, max)
    }
    pub fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>> {
        self.log.finished_before(before, max)
    }
    pub fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>> {
        self.log.expired_sessions(before, max)
    }
    pub fn session_count(&self) -> Result<u64> {
        self.log.session_count()
    }
    pub fn session_by_sid(&self, sid: &str) -> Result<Option<String>> {
        self.log.session_by_sid(sid)
    }
    pub fn keys_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<(String, KeyEntry)>> {
        self.log.keys_with_prefix(prefix, max)
    }
    pub fn streams(&self) -> Result<Vec<StreamInfo>> {
        self.log.streams()
    }
    pub fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        self.log.wakes()
    }
    pub fn sessions(&self) -> Result<Vec<(String, SessionEntry)>> {
        self.log.sessions()
    }
}

umpire_store::blocking_log!(Breakable, inline, inline, inline);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_log_fails_every_request_is_answered_and_the_game_comes_back() {
    let log = Arc::new(Breakable::default());
    let (hub, net) = start(Arc::clone(&log) as Arc<dyn Log>, HubConfig::default(), None).await;
    let mut player = net.connect().await.unwrap();
    let game = within(player.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    within(player.command(game.game, json!({"add": 5})))
        .await
        .unwrap();

    log.broken.store(true, Ordering::SeqCst);
    for i in 0..10 {
        within(player.send(add_one(game.game.0, i))).await.unwrap();
    }
    for _ in 0..10 {
        match within(player.next_reply()).await.unwrap() {
            // The turn that hit the failure says so; requests that were still queued learn
            // that the game stopped.
            ServerMsg::Error { code, .. } => {
                assert!(matches!(code, ErrorCode::Internal | ErrorCode::Overloaded))
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    // The disk is back: the game is loaded afresh from what the log holds, which is everything
    // acknowledged and nothing refused.
    log.broken.store(false, Ordering::SeqCst);
    let seq = within(player.command(game.game, json!({"add": 2})))
        .await
        .unwrap();
    let added = log.read(game.game.0, seq.0, 1).unwrap();
    let added: Value = rmp_serde::from_slice(&added[0].1).unwrap();
    assert_eq!(
        added["body"]["game"]["total"],
        json!(7),
        "the ok names the add's seq"
    );
    assert_eq!(
        hub.inspect(game.game).await.unwrap().state["total"],
        json!(7)
    );
    let records = log.read(game.game.0, 1, 100).unwrap();
    let totals: Vec<Value> = records
        .iter()
        .map(|(_, r)| rmp_serde::from_slice::<Value>(r).unwrap()["body"]["game"]["total"].clone())
        .filter(|t| !t.is_null())
        .collect();
    assert_eq!(totals, vec![json!(5), json!(7)]);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_whose_stream_another_process_took_asks_to_retry_and_writes_nothing() {
    let log = Arc::new(Breakable::default());
    let (hub, net) = start(Arc::clone(&log) as Arc<dyn Log>, HubConfig::default(), None).await;
    let mut player = net.connect().await.unwrap();
    let game = within(player.create("tally", json!({"seats": 2})))
        .await
        .unwrap();
    let before = within(player.command(game.game, json!({"add": 5})))
        .await
        .unwrap();

    log.taken_over.store(true, Ordering::SeqCst);
    within(player.send(add_one(game.game.0, 0))).await.unwrap();
    match within(player.next_reply()).await.unwrap() {
        ServerMsg::Error { code, message, .. } => {
            assert_eq!(
                code,
                ErrorCode::Overloaded,
                "a retry, not a failure: {message}"
            );
            assert!(message.contains("another process"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(log.version(game.game.0).unwrap(), before, "nothing written");
    // The game's task stopped on the refusal: a retry (the answer said to) loads it again
    // from the log (here the same process owns it again) and goes through. One sent while
    // the stopped task is still closing is answered overloaded too: the client retries.
    log.taken_over.store(false, Ordering::SeqCst);
    let mut tries = 0;
    let seq = loop {
        tries += 1;
        match within(player.command(game.game, json!({"add": 2}))).await {
            Ok(seq) => break seq,
            Err(e) if e.code() == Some(ErrorCode::Overloaded) && tries < 50 => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the retry failed: {e}"),
        }
    };
    assert!(seq > before);
    assert_eq!(
        hub.inspect(game.game).await.unwrap().state["total"],
        json!(7),
        "the refused add left no trace"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_does_not_lose_a_watch_sent_with_it() {
    let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
    let mut red = net.connect().await.unwrap();
    let game = within(red.create("connect4", Value::Null)).await.unwrap();
    let mut yellow = net.connect().await.unwrap();
    within(yellow.join(game.join.as_deref().unwrap()))
        .await
        .unwrap();
    // A third client asks for a seat in the full game and to watch it, without waiting: the
    // game answers both in one turn, the refusal first.
    let mut third = net.connect().await.unwrap();
    let join = ClientMsg::Join {
        key: game.join.clone().unwrap(),
        r#ref: Some(json!("join")),
    };
    let watch = ClientMsg::Watch {
        key: game.watch.clone().unwrap(),
        from: None,
        r#ref: Some(json!("watch")),
    };
    within(third.send(join)).await.unwrap();
    within(third.send(watch)).await.unwrap();
    match within(third.next_reply()).await.unwrap() {
        ServerMsg::Error { code, r#ref, .. } => {
            assert_eq!((code, r#ref), (ErrorCode::Full, Some(json!("join"))));
        }
        other => panic!("expected full, got {other:?}"),
    }
    match within(third.next_reply()).await.unwrap() {
        ServerMsg::Watching { r#ref, .. } => assert_eq!(r#ref, Some(json!("watch"))),
        other => panic!("expected watching, got {other:?}"),
    }
    // And the game's events follow: created, red seated, yellow seated.
    let events = within(third.events(game.game, 3)).await.unwrap();
    assert_eq!(events.last().unwrap()["seq"], json!(3));
    hub.shutdown().await.unwrap();
}

/// Countdowns need the server's clock: the answers that start a feed, and `pong`, carry it,
/// whatever the `at` of the events replayed after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_the_servers_clock() {
    let hour = 3_600_000;
    let clock = umpire_hub::TokioClock::new().ahead_by(hour);
    let (hub, net) = start(
        Arc::new(MemLog::new()),
        HubConfig::default(),
        Some(Arc::new(clock)),
    )
    .await;
    let mut host = net.connect().await.unwrap();
    let answer = within(host.request(ClientMsg::Create {
        kind: "colony".into(),
        config: Value::Null,
        open: false,
        r#ref: None,
    }))
    .await
    .unwrap();
    let ServerMsg::Created {
        game, watch, now, ..
    } = answer
    else {
        panic!("{answer:?}");
    };
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now > wall + hour - 60_000,
        "{now} is not the server's clock"
    );
    let created = within(host.next_event(game)).await.unwrap();
    let at = created["at"].as_u64().unwrap();

    let mut late = net.connect().await.unwrap();
    let watch = ClientMsg::Watch {
        key: watch,
        from: None,
        r#ref: None,
    };
    match within(late.request(watch)).await.unwrap() {
        ServerMsg::Watching { now: later, .. } => assert!(later >= at && later >= now),
        other => panic!("{other:?}"),
    }
    match within(late.request(ClientMsg::Ping { r#ref: None }))
        .await
        .unwrap()
    {
        ServerMsg::Pong { now: later, .. } => assert!(later >= now, "{later} < {now}"),
        other => panic!("{other:?}"),
    }
    hub.shutdown().await.unwrap();
}
