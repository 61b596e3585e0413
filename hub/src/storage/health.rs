//! Whether the hub can keep its promises right now: set by the log writer when storage fails
//! and when it works again, read by `/healthz` and by whoever embeds the hub.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use umpire_store::{
    KeyEntry, Log, LogRead, Refused, Seq, SessionEntry, SideWrite, StoreError, StreamId,
    StreamInfo, StreamMeta, StreamStatus, Wake, Write,
};

/// The hub's health, as [`crate::Hub::health`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Serving: the last write to the log, or the last probe, was made durable.
    Ok,
    /// The log cannot be written: nothing is acknowledged until it can. The writer reopens the
    /// log and probes it every second; the first write that works makes the hub healthy again.
    Storage {
        /// The last storage error, in words.
        reason: String,
        /// When the log first failed, this time round.
        since: SystemTime,
    },
    /// Shutdown has begun.
    Stopping,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Ok => f.write_str("ok"),
            Health::Storage { reason, since } => {
                let secs = since.elapsed().map(|d| d.as_secs()).unwrap_or(0);
                write!(f, "storage failing for {secs} s: {reason}")
            }
            Health::Stopping => f.write_str("stopping"),
        }
    }
}

/// The storage side of [`Health`], shared by the writer and the hub.
#[derive(Debug, Default)]
pub(crate) struct StorageHealth {
    failing: Mutex<Option<(String, SystemTime)>>,
    /// Rung each time the log works again after failing.
    recovered: tokio::sync::Notify,
    /// Rung each time a failure is seen, for the writer to start probing.
    failed: tokio::sync::Notify,
}

impl StorageHealth {
    fn failing(&self) -> std::sync::MutexGuard<'_, Option<(String, SystemTime)>> {
        // Replaced whole under the lock: a poisoned value is still a whole value.
        crate::lock(&self.failing)
    }

    /// The log failed with `reason`; keep the time of the first failure.
    pub(crate) fn fail(&self, reason: String) {
        let mut failing = self.failing();
        let since = failing.as_ref().map_or_else(SystemTime::now, |(_, t)| *t);
        *failing = Some((reason, since));
        drop(failing);
        self.failed.notify_one();
    }

    /// Wait until a failure is seen.
    pub(crate) async fn failed(&self) {
        self.failed.notified().await;
    }

    /// A write was made durable. Returns whether the log had been failing.
    pub(crate) fn ok(&self) -> bool {
        let was_failing = self.failing().take().is_some();
        if was_failing {
            self.recovered.notify_one();
        }
        was_failing
    }

    /// Wait until the log works again after failing.
    pub(crate) async fn recovered(&self) {
        self.recovered.notified().await;
    }

    pub(crate) fn is_ok(&self) -> bool {
        self.failing().is_none()
    }

    pub(crate) fn get(&self) -> Health {
        match &*self.failing() {
            None => Health::Ok,
            Some((reason, since)) => Health::Storage {
                reason: reason.clone(),
                since: *since,
            },
        }
    }
}

/// The log as the hub uses it: every storage failure it returns, on any path (a game loading,
/// a subscriber catching up), marks the hub unhealthy, so that the writer reopens the log even
/// when the failure was not its own.
#[derive(Debug)]
pub(crate) struct Watched {
    log: Arc<dyn Log>,
    health: Arc<StorageHealth>,
}

impl Watched {
    pub(crate) fn new(log: Arc<dyn Log>, health: Arc<StorageHealth>) -> Self {
        Watched { log, health }
    }

    fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            if e.is_io() {
                self.health.fail(e.to_string());
            }
        }
        result
    }
}

#[async_trait]
impl Log for Watched {
    async fn create_stream(&self, meta: StreamMeta) -> Result<StreamId, StoreError> {
        self.seen(self.log.create_stream(meta).await)
    }
    async fn commit(
        &self,
        writes: Vec<Write>,
        durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>, StoreError> {
        self.seen(self.log.commit(writes, durable).await)
    }
    async fn commit_with(
        &self,
        side: Vec<SideWrite>,
        writes: Vec<Write>,
        durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>, StoreError> {
        // The log's own: one call for all of it (the default would make one per side write).
        self.seen(self.log.commit_with(side, writes, durable).await)
    }
    async fn set_status(
        &self,
        stream: StreamId,
        status: StreamStatus,
        at: u64,
    ) -> Result<(), StoreError> {
        self.seen(self.log.set_status(stream, status, at).await)
    }
    async fn remove_streams(&self, streams: Vec<StreamId>) -> Result<(), StoreError> {
        self.seen(self.log.remove_streams(streams).await)
    }
    async fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<(), StoreError> {
        self.seen(self.log.set_wake(stream, wake).await)
    }
    async fn put_key(&self, key: String, entry: KeyEntry) -> Result<(), StoreError> {
        self.seen(self.log.put_key(key, entry).await)
    }
    async fn claim_key(&self, key: String, entry: KeyEntry) -> Result<KeyEntry, StoreError> {
        self.seen(self.log.claim_key(key, entry).await)
    }
    async fn save_snapshot(
        &self,
        stream: StreamId,
        version: Seq,
        state: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.seen(self.log.save_snapshot(stream, version, state).await)
    }
    async fn save_session(&self, token: String, session: SessionEntry) -> Result<(), StoreError> {
        self.seen(self.log.save_session(token, session).await)
    }
    async fn take_session(&self, token: String) -> Result<Option<SessionEntry>, StoreError> {
        self.seen(self.log.take_session(token).await)
    }
    async fn sync(&self) -> Result<(), StoreError> {
        self.seen(self.log.sync().await)
    }
    async fn recover(&self) -> Result<(), StoreError> {
        self.seen(self.log.recover().await)
    }
    async fn probe(&self) -> Result<(), StoreError> {
        self.seen(self.log.probe().await)
    }
}

#[async_trait]
impl LogRead for Watched {
    async fn read(
        &self,
        stream: StreamId,
        from: Seq,
        max: usize,
    ) -> Result<Vec<(Seq, Bytes)>, StoreError> {
        self.seen(self.log.read(stream, from, max).await)
    }
    async fn version(&self, stream: StreamId) -> Result<Seq, StoreError> {
        self.seen(self.log.version(stream).await)
    }
    async fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>, StoreError> {
        self.seen(self.log.meta(stream).await)
    }
    async fn wake(&self, stream: StreamId) -> Result<Option<Wake>, StoreError> {
        self.seen(self.log.wake(stream).await)
    }
    async fn find_key(&self, key: &str) -> Result<Option<KeyEntry>, StoreError> {
        self.seen(self.log.find_key(key).await)
    }
    async fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
        self.seen(self.log.load_snapshot(stream).await)
    }
    async fn load_session(&self, token: &str) -> Result<Option<SessionEntry>, StoreError> {
        self.seen(self.log.load_session(token).await)
    }
    async fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>, StoreError> {
        self.seen(self.log.due(until, after, max).await)
    }
    async fn live_games(&self, creator: &str, max: usize) -> Result<usize, StoreError> {
        self.seen(self.log.live_games(creator, max).await)
    }
    async fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>, StoreError> {
        self.seen(self.log.finished_before(before, max).await)
    }
    async fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>, StoreError> {
        self.seen(self.log.expired_sessions(before, max).await)
    }
    async fn session_count(&self) -> Result<u64, StoreError> {
        self.seen(self.log.session_count().await)
    }
    async fn session_by_sid(&self, sid: &str) -> Result<Option<String>, StoreError> {
        self.seen(self.log.session_by_sid(sid).await)
    }
    async fn keys_with_prefix(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        self.seen(self.log.keys_with_prefix(prefix, max).await)
    }
    async fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        self.seen(self.log.streams().await)
    }
    async fn wakes(&self) -> Result<Vec<(StreamId, Wake)>, StoreError> {
        self.seen(self.log.wakes().await)
    }
    async fn sessions(&self) -> Result<Vec<(String, SessionEntry)>, StoreError> {
        self.seen(self.log.sessions().await)
    }
}
