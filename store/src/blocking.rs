//! Running a backend's blocking calls off the async workers, and the asynchronous [`Log`] and
//! [`LogRead`] of a backend written as plain blocking methods (sled, memory).
//!
//! [`Log`]: crate::Log
//! [`LogRead`]: crate::LogRead

use std::panic::AssertUnwindSafe;

use tokio::sync::oneshot;

use crate::StoreError;

/// A panic in a backend's code, as the storage failure it is (sled unwraps some I/O errors of
/// its own: a failing disk can make it panic).
#[doc(hidden)]
pub fn panicked(panic: &(dyn std::any::Any + Send)) -> StoreError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    StoreError::from(std::io::Error::other(format!("the log panicked: {what}")))
}

/// Run `work` on tokio's blocking pool and wait for it; a panic is a storage failure.
#[doc(hidden)]
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(panicked(&*e.into_panic())),
        Err(_) => Err(StoreError::from(std::io::Error::other(
            "the runtime is shutting down",
        ))),
    }
}

/// [`run`], waking the waiting task through the IO reactor rather than the runtime's shared
/// queue (see `nudge.rs`): for the commits, whose waiter (the writer) has every game waiting
/// behind it. `wakeup` is the waiter's own, made on first use; without one (out of file
/// descriptors) it waits as [`run`] does.
#[doc(hidden)]
pub async fn run_nudged<T: Send + 'static>(
    wakeup: &tokio::sync::Mutex<Option<crate::nudge::Wakeup>>,
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    let mut wakeup = wakeup.lock().await;
    if wakeup.is_none() {
        *wakeup = crate::nudge::Wakeup::new().ok();
    }
    let nudge = wakeup.as_ref().map(crate::nudge::Wakeup::nudge);
    let (done, mut finished) = oneshot::channel();
    // Waited for, never raced: a commit that started is finished and answered.
    tokio::task::spawn_blocking(move || {
        // Sent when dropped, so also if the work panics: the waiter never waits for a commit
        // that is gone. Declared first, dropped last: after `done`.
        let _wake_when_dropped = nudge;
        let reply = done;
        let result = std::panic::catch_unwind(AssertUnwindSafe(work))
            .unwrap_or_else(|panic| Err(panicked(&*panic)));
        let _ = reply.send(result);
    });
    let gone = || StoreError::from(std::io::Error::other("the blocking pool dropped a commit"));
    loop {
        if let Some(w) = wakeup.as_mut() {
            if w.wait().await {
                // Looked at, not waited on: waiting would register a second wake-up, one that
                // runs this task at the back of the shared queue.
                match finished.try_recv() {
                    Ok(result) => return result,
                    Err(oneshot::error::TryRecvError::Empty) => continue,
                    Err(oneshot::error::TryRecvError::Closed) => return Err(gone()),
                }
            }
            *wakeup = None;
        }
        return (&mut finished).await.unwrap_or_else(|_| Err(gone()));
    }
}

/// How a backend's blocking method is called from its async one: `inline` on the calling task
/// (the memory backend: a lock and a map), `blocking` on the blocking pool with a clone of the
/// backend (sled), `nudged` the same, waking the caller through the reactor.
#[doc(hidden)]
#[macro_export]
macro_rules! __call {
    (inline, $self:ident, |$this:ident| $body:expr) => {{
        let $this = $self;
        $body
    }};
    (blocking, $self:ident, |$this:ident| $body:expr) => {{
        let $this = $self.clone();
        $crate::blocking::run(move || $body).await
    }};
    (nudged, $self:ident, |$this:ident| $body:expr) => {{
        let $this = $self.clone();
        $crate::blocking::run_nudged($self.commit_wakeup(), move || $body).await
    }};
}

/// Make a backend written as plain blocking methods a [`crate::Log`] (and [`crate::LogRead`]).
///
/// `blocking_log!(MyLog, read_mode, write_mode, commit_mode)` implements both traits for
/// `MyLog` by calling its
/// inherent methods of the same names, with the arguments borrowed (`create_stream(&meta)`,
/// `commit(&writes, durable)`, `commit_with(&side, &writes, durable)`, `put_key(&key, entry)`,
/// ...; see [`crate::MemLog`]'s for the whole list). Each is called `inline` (on the calling task: for a backend that never waits,
/// like [`crate::MemLog`]), `blocking` (on tokio's blocking pool, with a clone of the backend:
/// for one that waits on a disk, like [`crate::SledLog`]), or `nudged` (the same, waking the
/// caller through the IO reactor; the type provides
/// `fn commit_wakeup(&self) -> &tokio::sync::Mutex<Option<Wakeup>>`, for sled's commits).
/// Reads use the first mode, the other writes the second, commits and syncs the third (a
/// commit of no records that is not to be made durable, the second: the writes nobody waits
/// for).
#[macro_export]
macro_rules! blocking_log {
    ($ty:ty, $read:ident, $mode:ident, $commit:ident) => {
        #[async_trait::async_trait]
        impl $crate::Log for $ty {
            async fn create_stream(
                &self,
                meta: $crate::StreamMeta,
            ) -> $crate::Result<$crate::StreamId> {
                $crate::__call!($mode, self, |this| this.create_stream(&meta))
            }
            async fn commit(
                &self,
                writes: Vec<$crate::Write>,
                durable: bool,
            ) -> $crate::Result<Vec<$crate::Result<$crate::Seq, $crate::Refused>>> {
                // A commit of writes nobody waits for alone is a write like the others.
                if durable || !writes.is_empty() {
                    $crate::__call!($commit, self, |this| this.commit(&writes, durable))
                } else {
                    $crate::__call!($mode, self, |this| this.commit(&writes, durable))
                }
            }
            async fn commit_with(
                &self,
                side: Vec<$crate::SideWrite>,
                writes: Vec<$crate::Write>,
                durable: bool,
            ) -> $crate::Result<Vec<$crate::Result<$crate::Seq, $crate::Refused>>> {
                if durable || !writes.is_empty() {
                    $crate::__call!($commit, self, |this| this
                        .commit_with(&side, &writes, durable))
                } else {
                    $crate::__call!($mode, self, |this| this
                        .commit_with(&side, &writes, durable))
                }
            }
            async fn set_status(
                &self,
                stream: $crate::StreamId,
                status: $crate::StreamStatus,
                at: u64,
            ) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.set_status(stream, status, at))
            }
            async fn remove_streams(&self, streams: Vec<$crate::StreamId>) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.remove_streams(&streams))
            }
            async fn set_wake(
                &self,
                stream: $crate::StreamId,
                wake: Option<$crate::Wake>,
            ) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.set_wake(stream, wake))
            }
            async fn put_key(&self, key: String, entry: $crate::KeyEntry) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.put_key(&key, entry))
            }
            async fn claim_key(
                &self,
                key: String,
                entry: $crate::KeyEntry,
            ) -> $crate::Result<$crate::KeyEntry> {
                $crate::__call!($mode, self, |this| this.claim_key(&key, entry))
            }
            async fn save_snapshot(
                &self,
                stream: $crate::StreamId,
                version: $crate::Seq,
                state: Vec<u8>,
            ) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this
                    .save_snapshot(stream, version, &state))
            }
            async fn save_session(
                &self,
                token: String,
                session: $crate::SessionEntry,
            ) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.save_session(&token, &session))
            }
            async fn take_session(
                &self,
                token: String,
            ) -> $crate::Result<Option<$crate::SessionEntry>> {
                $crate::__call!($mode, self, |this| this.take_session(&token))
            }
            async fn sync(&self) -> $crate::Result<()> {
                $crate::__call!($commit, self, |this| this.sync())
            }
            async fn recover(&self) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.recover())
            }
            async fn probe(&self) -> $crate::Result<()> {
                $crate::__call!($mode, self, |this| this.probe())
            }
        }

        #[async_trait::async_trait]
        impl $crate::LogRead for $ty {
            async fn read(
                &self,
                stream: $crate::StreamId,
                from: $crate::Seq,
                max: usize,
            ) -> $crate::Result<Vec<($crate::Seq, $crate::Bytes)>> {
                $crate::__call!($read, self, |this| this.read(stream, from, max))
            }
            async fn version(&self, stream: $crate::StreamId) -> $crate::Result<$crate::Seq> {
                $crate::__call!($read, self, |this| this.version(stream))
            }
            async fn meta(
                &self,
                stream: $crate::StreamId,
            ) -> $crate::Result<Option<$crate::StreamMeta>> {
                $crate::__call!($read, self, |this| this.meta(stream))
            }
            async fn wake(&self, stream: $crate::StreamId) -> $crate::Result<Option<$crate::Wake>> {
                $crate::__call!($read, self, |this| this.wake(stream))
            }
            async fn find_key(&self, key: &str) -> $crate::Result<Option<$crate::KeyEntry>> {
                let key = key.to_owned();
                $crate::__call!($read, self, |this| this.find_key(&key))
            }
            async fn load_snapshot(
                &self,
                stream: $crate::StreamId,
            ) -> $crate::Result<Option<($crate::Seq, Vec<u8>)>> {
                $crate::__call!($read, self, |this| this.load_snapshot(stream))
            }
            async fn load_session(
                &self,
                token: &str,
            ) -> $crate::Result<Option<$crate::SessionEntry>> {
                let token = token.to_owned();
                $crate::__call!($read, self, |this| this.load_session(&token))
            }
            async fn due(
                &self,
                until: u64,
                after: Option<(u64, $crate::StreamId)>,
                max: usize,
            ) -> $crate::Result<Vec<($crate::StreamId, $crate::Wake)>> {
                $crate::__call!($read, self, |this| this.due(until, after, max))
            }
            async fn live_games(&self, creator: &str, max: usize) -> $crate::Result<usize> {
                let creator = creator.to_owned();
                $crate::__call!($read, self, |this| this.live_games(&creator, max))
            }
            async fn finished_before(
                &self,
                before: u64,
                max: usize,
            ) -> $crate::Result<Vec<$crate::StreamId>> {
                $crate::__call!($read, self, |this| this.finished_before(before, max))
            }
            async fn expired_sessions(
                &self,
                before: u64,
                max: usize,
            ) -> $crate::Result<Vec<String>> {
                $crate::__call!($read, self, |this| this.expired_sessions(before, max))
            }
            async fn session_count(&self) -> $crate::Result<u64> {
                $crate::__call!($read, self, |this| this.session_count())
            }
            async fn session_by_sid(&self, sid: &str) -> $crate::Result<Option<String>> {
                let sid = sid.to_owned();
                $crate::__call!($read, self, |this| this.session_by_sid(&sid))
            }
            async fn keys_with_prefix(
                &self,
                prefix: &str,
                max: usize,
            ) -> $crate::Result<Vec<(String, $crate::KeyEntry)>> {
                let prefix = prefix.to_owned();
                $crate::__call!($read, self, |this| this.keys_with_prefix(&prefix, max))
            }
            async fn streams(&self) -> $crate::Result<Vec<$crate::StreamInfo>> {
                $crate::__call!($read, self, |this| this.streams())
            }
            async fn wakes(&self) -> $crate::Result<Vec<($crate::StreamId, $crate::Wake)>> {
                $crate::__call!($read, self, |this| this.wakes())
            }
            async fn sessions(&self) -> $crate::Result<Vec<(String, $crate::SessionEntry)>> {
                $crate::__call!($read, self, |this| this.sessions())
            }
        }
    };
}
