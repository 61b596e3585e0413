//! The log writer: the one place that writes to the log and flushes it. It alone holds the
//! log's write half; the rest of the hub holds its read half (`LogRead`).
//!
//! Game tasks hand it what a turn produced and wait. The writer takes every turn waiting,
//! applies them all as one atomic write, flushes once (group commit), and only then wakes each
//! game with its result. One writer at a time means sled sees no concurrent writers (its IO
//! threads stay quiet), the version checks never race, and a flush costs the same for one
//! game or a thousand. Reads (catch-up, loading a game) go to the log directly.
//!
//! The writer is a task that runs each write-and-flush on tokio's blocking pool, one at a
//! time: the disk is kept off the async workers, and a test runtime whose clock is paused
//! knows to wait for the disk rather than jump ahead.
//!
//! When a write or a flush fails, every game in that commit is told and stops (its match is
//! ahead of the log), the hub reports itself unhealthy, and the writer reopens the log
//! ([`Log::recover`]) so that the next commit starts from what is durable. While the log
//! keeps failing, each commit is another attempt, and with nothing to commit the writer
//! probes the log every second ([`Log::probe`]); the first success makes the hub healthy again.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use umpire_store::{
    KeyEntry, Log, Seq, SessionEntry, StoreError, StreamId, StreamMeta, StreamStatus, Wake, Write,
};

use crate::config::Durability;
use crate::error::{HubError, Result};
use crate::metrics::Metrics;
use crate::storage::health::StorageHealth;
use crate::storage::nudge::Wakeup;

/// The most jobs taken into one write and flush; more wait for the next one.
const MAX_JOBS: usize = 4096;

/// How often a failing log is probed while nothing else is written.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the writer shares with every commit on the blocking pool.
#[derive(Debug)]
struct Shared {
    log: Arc<dyn Log>,
    durability: Durability,
    metrics: Arc<Metrics>,
    health: Arc<StorageHealth>,
}

enum Job {
    /// Append one game's turn; answer with its new version once durable.
    Write(Write, oneshot::Sender<Result<Seq>>),
    /// Keep a snapshot. Durable with the next flush; nobody waits for it.
    Snapshot(StreamId, Seq, Vec<u8>),
    /// Flush even if nothing is pending (shutdown).
    Sync(oneshot::Sender<Result<()>>),
}

/// The way to the writer, and the only holder of the log's write half: whatever writes to
/// the log goes through it. Cheap to clone; the writer ends when every clone is gone.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    /// For the writes outside the group commit (below): each made on the caller's thread,
    /// durable with the next flush.
    log: Arc<dyn Log>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Write(w, _) => write!(f, "Write({} records to {})", w.records.len(), w.stream),
            Job::Snapshot(stream, seq, _) => write!(f, "Snapshot({stream} at {seq})"),
            Job::Sync(_) => f.write_str("Sync"),
        }
    }
}

impl Writer {
    /// Start the writer for `log` on the current tokio runtime.
    ///
    /// Unbounded: each game waits on at most one write at a time, so the queue is never
    /// longer than the number of live games (and their snapshots).
    pub(crate) fn start(
        log: Arc<dyn Log>,
        durability: Durability,
        metrics: Arc<Metrics>,
        health: Arc<StorageHealth>,
    ) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            log: Arc::clone(&log),
            durability,
            metrics,
            health,
        });
        // Not tracked with the games: it must outlive them at shutdown to write their last
        // turns. It ends when the hub and every game task have dropped their `Writer`.
        tokio::spawn(run(shared, queue));
        Writer { jobs, log }
    }

    /// Append `write` and wait until it is durable (per the hub's durability mode).
    ///
    /// # Errors
    /// [`HubError::Store`] if writing or flushing failed, [`HubError::Refused`] if the stream
    /// was not at the expected version, [`HubError::Unavailable`] if the writer is gone.
    pub(crate) async fn write(&self, write: Write) -> Result<Seq> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Write(write, done))
            .map_err(|_| HubError::Unavailable)?;
        wait.await.map_err(|_| HubError::Unavailable)?
    }

    /// Keep a snapshot of `stream` at `version`; it becomes durable with a later flush.
    pub(crate) fn snapshot(&self, stream: StreamId, version: Seq, state: Vec<u8>) {
        let _ = self.jobs.send(Job::Snapshot(stream, version, state));
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
}

/// The writes outside the group commit. Each is made at once on the caller's thread, not
/// queued: its caller needs the result now (a new stream's id, a key that must be found at
/// once) or nobody waits for it. Durable with the next flush, like a snapshot.
impl Writer {
    /// Register a new, empty stream (a game or a channel); its id.
    pub(crate) fn create_stream(&self, meta: &StreamMeta) -> umpire_store::Result<StreamId> {
        self.log.create_stream(meta)
    }

    /// Index `key` (a channel's name).
    pub(crate) fn put_key(&self, key: &str, entry: KeyEntry) -> umpire_store::Result<()> {
        self.log.put_key(key, entry)
    }

    /// Mark a stream over (a game found finished on load) at `at`.
    pub(crate) fn set_status(
        &self,
        stream: StreamId,
        status: StreamStatus,
        at: u64,
    ) -> umpire_store::Result<()> {
        self.log.set_status(stream, status, at)
    }

    /// Replace a stream's wake-up entry (a game leaving memory).
    pub(crate) fn set_wake(
        &self,
        stream: StreamId,
        wake: Option<Wake>,
    ) -> umpire_store::Result<()> {
        self.log.set_wake(stream, wake)
    }

    /// Keep a session under `token`.
    pub(crate) fn save_session(
        &self,
        token: &str,
        session: &SessionEntry,
    ) -> umpire_store::Result<()> {
        self.log.save_session(token, session)
    }

    /// Remove the session under `token` and return it (resumed, or expired).
    pub(crate) fn take_session(&self, token: &str) -> umpire_store::Result<Option<SessionEntry>> {
        self.log.take_session(token)
    }

    /// Remove `streams` with everything of theirs (retention, session channels).
    pub(crate) fn remove_streams(&self, streams: &[StreamId]) -> umpire_store::Result<()> {
        self.log.remove_streams(streams)
    }

    /// Flush now, on this thread: what a stopped game's task wrote but never made durable,
    /// before the game is loaded again.
    pub(crate) fn sync_now(&self) -> umpire_store::Result<()> {
        self.log.sync()
    }
}

/// The next job; while the log is failing and nothing comes, probe it every second.
async fn next_job(shared: &Arc<Shared>, queue: &mut mpsc::UnboundedReceiver<Job>) -> Option<Job> {
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
                let shared = Arc::clone(shared);
                let _ = tokio::task::spawn_blocking(move || {
                    let probed = shared.log.probe();
                    shared.settle(probed.err());
                })
                .await;
            }
        }
    }
}

async fn run(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut wakeup = Wakeup::new()
        .map_err(|e| tracing::warn!(error = %e, "commits will resume through the shared queue"))
        .ok();
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
        let shared = Arc::clone(&shared);
        let batch = std::mem::take(&mut jobs);
        let (done, mut committed) = oneshot::channel();
        let nudge = wakeup.as_ref().map(Wakeup::nudge);
        // Waited for, never raced: a write that started is finished and answered.
        tokio::task::spawn_blocking(move || {
            // Sent when dropped, so also if the code below panics: the writer never waits
            // for a commit that is gone. Declared first, dropped last: after `done`.
            let _wake_when_dropped = nudge;
            let reply = done;
            // sled unwraps some I/O errors of its own (a failing disk can make it panic):
            // that is a storage failure like any other, and the writer must hear of it.
            let committed = std::panic::catch_unwind(AssertUnwindSafe(|| commit(&shared, batch)));
            match committed {
                Ok(outcome) => {
                    let _ = reply.send(outcome);
                }
                // The jobs went down with the panic: each game hears that its write is
                // unavailable, and stops like after any other failed write.
                Err(panic) => shared.settle(Some(panicked(&*panic))),
            }
        });
        let outcome = loop {
            if let Some(w) = &mut wakeup {
                if w.wait().await {
                    // Looked at, not waited on: waiting would register a second wake-up,
                    // one that runs this task at the back of the shared queue.
                    match committed.try_recv() {
                        Ok(outcome) => break Some(outcome),
                        Err(oneshot::error::TryRecvError::Empty) => continue,
                        Err(oneshot::error::TryRecvError::Closed) => break None,
                    }
                }
                wakeup = None;
            }
            break (&mut committed).await.ok();
        };
        // Answered from this task, on a worker: each game resumes next, not at the back.
        if let Some((emptied, replies)) = outcome {
            for (reply, result) in replies {
                let _ = reply.send(result);
            }
            jobs = emptied;
        }
    }
}

/// A panic in the log, as the storage failure it is.
fn panicked(panic: &(dyn std::any::Any + Send)) -> StoreError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    StoreError::from(std::io::Error::other(format!("the log panicked: {what}")))
}

/// What a commit owes: each waiting game's result.
type Replies = Vec<(oneshot::Sender<Result<Seq>>, Result<Seq>)>;

impl Shared {
    /// Record how the last attempt to write went. After a failure, reopen the log so that the
    /// next attempt starts from what is durable.
    fn settle(&self, failure: Option<StoreError>) {
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
                if let Err(e) = self.log.recover() {
                    tracing::error!(error = %e, "the log could not be reopened; trying again");
                }
            }
        }
    }
}

/// Write and flush one batch of jobs; return each waiting game's result, and the emptied
/// vector so its allocation is reused.
fn commit(shared: &Shared, mut jobs: Vec<Job>) -> (Vec<Job>, Replies) {
    let Shared {
        log,
        durability,
        metrics,
        ..
    } = shared;
    let durability = *durability;
    let mut writes = Vec::new();
    let mut waiting = Vec::new();
    let mut syncs = Vec::new();
    for job in jobs.drain(..) {
        match job {
            Job::Write(write, done) => {
                writes.push(write);
                waiting.push(done);
            }
            Job::Snapshot(stream, version, state) => {
                if let Err(e) = log.save_snapshot(stream, version, &state) {
                    tracing::warn!(game = stream, error = %e, "snapshot not saved");
                }
            }
            Job::Sync(done) => syncs.push(done),
        }
    }
    let started = Instant::now();
    let written = if writes.is_empty() {
        Ok(Vec::new())
    } else {
        log.write(&writes)
    };
    let flush = (durability != Durability::None && !writes.is_empty()) || !syncs.is_empty();
    let flushed = match &written {
        Ok(_) if flush => {
            let flushed = log.sync();
            metrics.flushed(started.elapsed(), waiting.len());
            flushed
        }
        _ => Ok(()),
    };
    let failure = written.as_ref().err().or(flushed.as_ref().err()).cloned();
    if !writes.is_empty() || failure.is_some() {
        shared.settle(failure.clone());
    }
    let results = written.unwrap_or_default();
    let mut replies = Vec::new();
    for (i, done) in waiting.into_iter().enumerate() {
        let result = match (&failure, results.get(i)) {
            (Some(e), _) => Err(HubError::Store(e.clone())),
            (None, Some(Ok(version))) => Ok(*version),
            (None, Some(Err(refused))) => Err(HubError::Refused(*refused)),
            (None, None) => Err(HubError::Unavailable),
        };
        replies.push((done, result));
    }
    for done in syncs {
        let _ = done.send(flushed.clone().map_err(HubError::Store));
    }
    (jobs, replies)
}
