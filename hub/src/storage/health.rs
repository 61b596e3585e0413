//! Whether the hub can keep its promises right now: set by the log writer when storage fails
//! and when it works again, read by `/healthz` and by whoever embeds the hub.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use umpire_store::{
    KeyEntry, Log, LogRead, Refused, Seq, SessionEntry, StoreError, StreamId, StreamInfo,
    StreamMeta, StreamStatus, Wake, Write,
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

impl Log for Watched {
    fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId, StoreError> {
        self.seen(self.log.create_stream(meta))
    }
    fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>, StoreError> {
        self.seen(self.log.write(writes))
    }
    fn set_status(
        &self,
        stream: StreamId,
        status: StreamStatus,
        at: u64,
    ) -> Result<(), StoreError> {
        self.seen(self.log.set_status(stream, status, at))
    }
    fn remove_streams(&self, streams: &[StreamId]) -> Result<(), StoreError> {
        self.seen(self.log.remove_streams(streams))
    }
    fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<(), StoreError> {
        self.seen(self.log.set_wake(stream, wake))
    }
    fn put_key(&self, key: &str, entry: KeyEntry) -> Result<(), StoreError> {
        self.seen(self.log.put_key(key, entry))
    }
    fn save_snapshot(
        &self,
        stream: StreamId,
        version: Seq,
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.seen(self.log.save_snapshot(stream, version, state))
    }
    fn save_session(&self, token: &str, session: &SessionEntry) -> Result<(), StoreError> {
        self.seen(self.log.save_session(token, session))
    }
    fn take_session(&self, token: &str) -> Result<Option<SessionEntry>, StoreError> {
        self.seen(self.log.take_session(token))
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.seen(self.log.sync())
    }
    fn recover(&self) -> Result<(), StoreError> {
        self.seen(self.log.recover())
    }
    fn probe(&self) -> Result<(), StoreError> {
        self.seen(self.log.probe())
    }
}

impl LogRead for Watched {
    fn read(
        &self,
        stream: StreamId,
        from: Seq,
        max: usize,
    ) -> Result<Vec<(Seq, Bytes)>, StoreError> {
        self.seen(self.log.read(stream, from, max))
    }
    fn version(&self, stream: StreamId) -> Result<Seq, StoreError> {
        self.seen(self.log.version(stream))
    }
    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>, StoreError> {
        self.seen(self.log.meta(stream))
    }
    fn wake(&self, stream: StreamId) -> Result<Option<Wake>, StoreError> {
        self.seen(self.log.wake(stream))
    }
    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>, StoreError> {
        self.seen(self.log.find_key(key))
    }
    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
        self.seen(self.log.load_snapshot(stream))
    }
    fn load_session(&self, token: &str) -> Result<Option<SessionEntry>, StoreError> {
        self.seen(self.log.load_session(token))
    }
    fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>, StoreError> {
        self.seen(self.log.due(until, after, max))
    }
    fn live_games(&self, creator: &str, max: usize) -> Result<usize, StoreError> {
        self.seen(self.log.live_games(creator, max))
    }
    fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>, StoreError> {
        self.seen(self.log.finished_before(before, max))
    }
    fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>, StoreError> {
        self.seen(self.log.expired_sessions(before, max))
    }
    fn session_count(&self) -> Result<u64, StoreError> {
        self.seen(self.log.session_count())
    }
    fn session_by_sid(&self, sid: &str) -> Result<Option<String>, StoreError> {
        self.seen(self.log.session_by_sid(sid))
    }
    fn keys_with_prefix(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        self.seen(self.log.keys_with_prefix(prefix, max))
    }
    fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        self.seen(self.log.streams())
    }
    fn metas(&self) -> Result<Vec<(StreamId, StreamMeta)>, StoreError> {
        self.seen(self.log.metas())
    }
    fn wakes(&self) -> Result<Vec<(StreamId, Wake)>, StoreError> {
        self.seen(self.log.wakes())
    }
    fn sessions(&self) -> Result<Vec<(String, SessionEntry)>, StoreError> {
        self.seen(self.log.sessions())
    }
}
