//! The log writer: the one place that writes to the log and flushes it. It alone holds the
//! log's write half; the rest of the hub holds its read half (`LogRead`).
//!
//! Game tasks hand it what a turn produced and wait. The writer takes every turn waiting,
//! applies them all as one atomic write, flushes once (group commit), and only then wakes each
//! game with its result. One writer at a time means the log sees no concurrent writers, the
//! version checks never race, and a flush costs the same for one game or a thousand. Reads
//! (catch-up, loading a game) go to the log directly.
//!
//! Every other write goes through it too, as a job of its own, in the order it was asked
//! for: a new stream, a channel's key, a status, a wake-up entry, a session kept or taken,
//! streams removed. Those whose result someone needs are awaited ([`Writer::create_stream`]);
//! the others are queued and made durable with the next flush ([`Writer::set_wake_later`]).
//!
//! When a write or a flush fails, every game in that commit is told and stops (its match is
//! ahead of the log), the hub reports itself unhealthy, and the writer reopens the log
//! ([`Log::recover`]) so that the next commit starts from what is durable. While the log
//! keeps failing, each commit is another attempt, and with nothing to commit the writer
//! probes the log every second ([`Log::probe`]); the first success makes the hub healthy again.
//! A panic in the log's code is a failure like any other: the writer survives it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::sync::{mpsc, oneshot};
use umpire_store::{
    KeyEntry, Log, Seq, SessionEntry, SideWrite, StoreError, StreamId, StreamMeta, StreamStatus,
    Wake, Write,
};

use crate::config::Durability;
use crate::error::{HubError, Result};
use crate::metrics::Metrics;
use crate::storage::health::StorageHealth;

/// The most jobs taken into one write and flush; more wait for the next one.
const MAX_JOBS: usize = 4096;

/// How often a failing log is probed while nothing else is written.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the writer works with.
#[derive(Debug)]
struct Shared {
    log: Arc<dyn Log>,
    durability: Durability,
    metrics: Arc<Metrics>,
    health: Arc<StorageHealth>,
}

/// A write outside the group commit.
#[derive(Debug)]
enum Side {
    CreateStream(StreamMeta),
    PutKey(String, KeyEntry),
    ClaimKey(String, KeyEntry),
    SetStatus(StreamId, StreamStatus, u64),
    RemoveStreams(Vec<StreamId>),
}

/// What a [`Side`] write gives back.
#[derive(Debug)]
enum SideDone {
    Stream(StreamId),
    Key(KeyEntry),
    Nothing,
}

enum Job {
    /// Append one game's turn; answer with its new version once durable.
    Write(Write, oneshot::Sender<Result<Seq>>),
    /// A write nobody waits for (a snapshot, a wake-up entry, a session saved or taken),
    /// made with the next commit, in order.
    Later(SideWrite),
    /// A write outside the group commit whose result someone waits for: made at once, beside
    /// the commit under way (each concerns a stream or key no turn in flight writes).
    Side(Side, oneshot::Sender<umpire_store::Result<SideDone>>),
    /// Answered once the writes queued before it are made (with the next commit).
    Barrier(oneshot::Sender<()>),
    /// Flush even if nothing is pending (shutdown, a game reloaded after a failure).
    Sync(oneshot::Sender<Result<()>>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Write(w, _) => write!(f, "Write({} records to {})", w.records.len(), w.stream),
            Job::Later(write) => write!(f, "Later({write:?})"),
            Job::Side(side, _) => write!(f, "Side({side:?})"),
            Job::Barrier(_) => f.write_str("Barrier"),
            Job::Sync(_) => f.write_str("Sync"),
        }
    }
}

/// The way to the writer, and the only holder of the log's write half: whatever writes to
/// the log goes through it. Cheap to clone; the writer ends when every clone is gone.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Start the writer for `log` on the current tokio runtime.
    ///
    /// Unbounded: each game waits on at most one write at a time, so the queue is never
    /// longer than the number of live games (and their snapshots and side writes).
    pub(crate) fn start(
        log: Arc<dyn Log>,
        durability: Durability,
        metrics: Arc<Metrics>,
        health: Arc<StorageHealth>,
    ) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            log,
            durability,
            metrics,
            health,
        });
        // Not tracked with the games: it must outlive them at shutdown to write their last
        // turns. It ends when the hub and every game task have dropped their `Writer`.
        tokio::spawn(run(shared, queue));
        Writer { jobs }
    }

    /// Append `write` and wait until it is durable (per the hub's durability mode).
    ///
    /// # Errors
    /// [`HubError::Store`] if writing or flushing failed, [`HubError::Refused`] if the log
    /// refused it, [`HubError::Unavailable`] if the writer is gone.
    pub(crate) async fn write(&self, write: Write) -> Result<Seq> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Write(write, done))
            .map_err(|_| HubError::Unavailable)?;
        wait.await.map_err(|_| HubError::Unavailable)?
    }

    /// Keep a snapshot of `stream` at `version`; it becomes durable with a later flush.
    pub(crate) fn snapshot(&self, stream: StreamId, version: Seq, state: Vec<u8>) {
        self.later(SideWrite::Snapshot {
            stream,
            version,
            state,
        });
    }

    /// Flush everything written so far.
    ///
    /// # Errors
    /// As [`Writer::write`].
    pub(crate) async fn sync(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Sync(done))
            .map_err(|_| HubError::Unavailable)?;
        wait.await.map_err(|_| HubError::Unavailable)?
    }

    /// Queue `side` and wait for it.
    async fn side(&self, side: Side) -> Result<SideDone> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Side(side, done))
            .map_err(|_| HubError::Unavailable)?;
        Ok(wait.await.map_err(|_| HubError::Unavailable)??)
    }

    /// Queue `write` for the next commit; nobody waits for it.
    fn later(&self, write: SideWrite) {
        let _ = self.jobs.send(Job::Later(write));
    }

    /// Register a new, empty stream (a game or a channel); its id.
    pub(crate) async fn create_stream(&self, meta: StreamMeta) -> Result<StreamId> {
        match self.side(Side::CreateStream(meta)).await? {
            SideDone::Stream(id) => Ok(id),
            _ => Err(HubError::Unavailable),
        }
    }

    /// Index `key` (a channel's name).
    pub(crate) async fn put_key(&self, key: String, entry: KeyEntry) -> Result<()> {
        self.side(Side::PutKey(key, entry)).await.map(drop)
    }

    /// Index `key` unless another entry holds it (see `Log::claim_key`): the entry that does.
    pub(crate) async fn claim_key(&self, key: String, entry: KeyEntry) -> Result<KeyEntry> {
        match self.side(Side::ClaimKey(key, entry)).await? {
            SideDone::Key(entry) => Ok(entry),
            _ => Err(HubError::Unavailable),
        }
    }

    /// Mark a stream over (a game found finished on load) at `at`.
    pub(crate) async fn set_status(
        &self,
        stream: StreamId,
        status: StreamStatus,
        at: u64,
    ) -> Result<()> {
        self.side(Side::SetStatus(stream, status, at))
            .await
            .map(drop)
    }

    /// Replace a stream's wake-up entry (a game leaving memory), after whatever is queued.
    pub(crate) fn set_wake_later(&self, stream: StreamId, wake: Option<Wake>) {
        self.later(SideWrite::Wake { stream, wake });
    }

    /// Keep a session under `token`, after whatever is queued (an earlier save or take of
    /// the same token comes first).
    pub(crate) fn save_session_later(&self, token: String, session: SessionEntry) {
        self.later(SideWrite::SaveSession { token, session });
    }

    /// Forget the session under `token`, after whatever is queued.
    pub(crate) fn take_session_later(&self, token: String) {
        self.later(SideWrite::TakeSession { token });
    }

    /// Remove the session under `token` (resumed, or expired), in order with every save and
    /// take of it queued before, and wait until that is done.
    pub(crate) async fn take_session(&self, token: String) -> Result<()> {
        self.take_session_later(token);
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Barrier(done))
            .map_err(|_| HubError::Unavailable)?;
        wait.await.map_err(|_| HubError::Unavailable)
    }

    /// Remove `streams` with everything of theirs (retention, session channels).
    pub(crate) async fn remove_streams(&self, streams: Vec<StreamId>) -> Result<()> {
        self.side(Side::RemoveStreams(streams)).await.map(drop)
    }
}

/// Run one of the log's calls; a panic in it is a storage failure, not the writer's end.
async fn guarded<T>(
    call: impl Future<Output = umpire_store::Result<T>>,
) -> umpire_store::Result<T> {
    AssertUnwindSafe(call)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(umpire_store::blocking::panicked(&*panic)))
}

/// The next job; while the log is failing and nothing comes, probe it every second.
async fn next_job(shared: &Shared, queue: &mut mpsc::UnboundedReceiver<Job>) -> Option<Job> {
    loop {
        if shared.health.is_ok() {
            tokio::select! {
                job = queue.recv() => return job,
                // A failure seen elsewhere (a game loading, a catch-up read).
                () = shared.health.failed() => continue,
            }
        }
        tokio::select! {
            job = queue.recv() => return job,
            () = tokio::time::sleep(PROBE_EVERY) => {
                let probed = guarded(shared.log.probe()).await;
                shared.settle(probed.err()).await;
            }
        }
    }
}

async fn run(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::new();
    while let Some(first) = next_job(&shared, &mut queue).await {
        if let Durability::Batched(window) = shared.durability {
            tokio::time::sleep(window).await;
        }
        jobs.push(first);
        while jobs.len() < MAX_JOBS {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit(&shared, &mut jobs).await;
    }
}

impl Shared {
    /// Record how the last attempt to write went. After a failure, reopen the log so that the
    /// next attempt starts from what is durable.
    async fn settle(&self, failure: Option<StoreError>) {
        match failure {
            None => {
                if self.health.ok() {
                    tracing::info!("the log is written again; the hub is healthy");
                }
            }
            Some(e) => {
                self.metrics.storage_errors.inc();
                let first = self.health.is_ok();
                self.health.fail(e.to_string());
                if first {
                    tracing::error!(error = %e, "the log failed; reopening it, nothing is acknowledged until it works");
                }
                if let Err(e) = guarded(self.log.recover()).await {
                    tracing::error!(error = %e, "the log could not be reopened; trying again");
                }
            }
        }
    }

    /// Make one write outside the group commit.
    async fn side(&self, side: Side) -> umpire_store::Result<SideDone> {
        let log = &self.log;
        guarded(async {
            Ok(match side {
                Side::CreateStream(meta) => SideDone::Stream(log.create_stream(meta).await?),
                Side::PutKey(key, entry) => {
                    log.put_key(key, entry).await?;
                    SideDone::Nothing
                }
                Side::ClaimKey(key, entry) => SideDone::Key(log.claim_key(key, entry).await?),
                Side::SetStatus(stream, status, at) => {
                    log.set_status(stream, status, at).await?;
                    SideDone::Nothing
                }
                Side::RemoveStreams(streams) => {
                    log.remove_streams(streams).await?;
                    SideDone::Nothing
                }
            })
        })
        .await
    }
}

/// Make the writes nobody waits for (durable with the next flush), in one call.
async fn write_later(shared: &Shared, later: Vec<SideWrite>) {
    let writes = later.len();
    if let Err(e) = guarded(shared.log.commit_with(later, Vec::new(), false)).await {
        tracing::warn!(error = %e, writes, "snapshots, wake-up entries or sessions not written");
        if e.is_io() {
            shared.settle(Some(e)).await;
        }
    }
}

/// Write and flush one batch of jobs, answering each: the writes someone waits for are started
/// beside it, each on its own; the writes nobody waits for (snapshots, wake-up entries,
/// sessions), in order, and every turn go in one call with one flush, answered at once. (Made
/// on their own, the writes nobody waits for cost the next commit a second hop to the disk, or
/// on Redis a second round trip and `fsync`, in every batch that had one.) Leaves `jobs`
/// empty, its allocation kept.
async fn commit(shared: &Arc<Shared>, jobs: &mut Vec<Job>) {
    let Shared {
        log,
        durability,
        metrics,
        ..
    } = &**shared;
    let mut writes = Vec::new();
    let mut waiting = Vec::new();
    let mut later = Vec::new();
    let mut syncs = Vec::new();
    let mut barriers = Vec::new();
    for job in jobs.drain(..) {
        match job {
            Job::Write(write, done) => {
                writes.push(write);
                waiting.push(done);
            }
            Job::Later(write) => later.push(write),
            Job::Side(side, done) => {
                // Beside the commit: a new game's stream must not wait for a flush of others.
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    let result = shared.side(side).await;
                    if let Err(e) = &result {
                        if e.is_io() {
                            shared.health.fail(e.to_string());
                        }
                    }
                    let _ = done.send(result);
                });
            }
            Job::Barrier(done) => barriers.push(done),
            Job::Sync(done) => syncs.push(done),
        }
    }
    let flush = (*durability != Durability::None && !writes.is_empty()) || !syncs.is_empty();
    if writes.is_empty() && later.is_empty() && !flush {
        for done in barriers {
            let _ = done.send(());
        }
        return;
    }
    // The writes nobody waits for go first in the commit's call (a flush someone asked for,
    // at shutdown or a reload, makes them durable too); with no commit, on their own after it.
    let mut later = Some(later).filter(|l| !l.is_empty());
    let started = Instant::now();
    let committed = match writes.is_empty() && !flush {
        true => Ok(Vec::new()),
        false => {
            let side = later.take().unwrap_or_default();
            guarded(log.commit_with(side, writes, flush)).await
        }
    };
    if flush && !waiting.is_empty() {
        metrics.flushed(started.elapsed(), waiting.len());
    }
    let failure = committed.as_ref().err().cloned();
    if !waiting.is_empty() || failure.is_some() {
        shared.settle(failure.clone()).await;
    }
    let results = committed.unwrap_or_default();
    for (i, done) in waiting.into_iter().enumerate() {
        let result = match (&failure, results.get(i)) {
            (Some(e), _) => Err(HubError::Store(e.clone())),
            (None, Some(Ok(version))) => Ok(*version),
            (None, Some(Err(refused))) => Err(HubError::Refused(*refused)),
            (None, None) => Err(HubError::Unavailable),
        };
        let _ = done.send(result);
    }
    for done in syncs {
        let _ = done.send(match &failure {
            Some(e) => Err(HubError::Store(e.clone())),
            None => Ok(()),
        });
    }
    if let Some(writes) = later {
        write_later(shared, writes).await;
    }
    for done in barriers {
        let _ = done.send(());
    }
}
