//! The sled backend.
//!
//! Trees:
//! - `meta`: stream id (u64 big-endian) → versioned [`StreamMeta`].
//! - `events`: stream id ++ seq (both u64 big-endian, so byte order is numeric order) →
//!   version byte ++ the caller's record.
//! - `keys`: key (UTF-8) → versioned [`KeyEntry`].
//! - `snapshots`: stream id → version byte ++ seq (u64 big-endian) ++ the caller's state.
//! - `kept`: resume token → versioned [`SessionEntry`] (a connection's session, kept for
//!   resuming). Folders written before the indexes had a `sessions` tree: dropped on opening.
//! - `wakes`: stream id → due (u64 big-endian) ++ pending timers (u32 big-endian): each
//!   stream's wake-up entry, written with the records that change it.
//! - `index`: what the queries read, one entry per fact, under a prefix byte:
//!   `d` due ++ stream (wake-ups by time), `c` creator ++ 0xFF ++ stream (live streams by
//!   creator), `f` finished ++ stream (finished streams by time), `k` stream ++ key (a
//!   stream's keys, to remove them with it), `e` expires ++ token (sessions by expiry), `s`
//!   sid → token (sessions by public id); `#sessions` counts the kept sessions and `#indexes`
//!   says the indexes are built (a folder from before them is indexed once, on opening).
//!
//! A [`Log::write`] puts every record of the call into one sled batch, which sled applies and
//! recovers atomically; keys follow it, so sled's log order keeps them from surviving a crash
//! without their records. A call that also changes a status or a wake-up entry is one sled
//! transaction over records, metadata, wake-ups and indexes instead: a timer's index entry is
//! there exactly when the records that set it are, so no wake-up is ever lost to a crash. The expected-version check runs against versions
//! kept in memory (each stream has one writer, and sled locks its folder to one process).
//!
//! [`crate::Log::sync`] is sled's flush, which writes with `sync_file_range` (enough to survive the
//! process crashing), followed by an `fdatasync` of sled's data file and of any large value sled
//! wrote to a file of its own: what it acknowledges survives the machine losing power.
//!
//! After an I/O error sled refuses everything until it is opened again: [`Log::recover`]
//! reopens the folder, and what is on disk is the truth again.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;

use crate::log::{
    KeyEntry, SessionEntry, StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};
use crate::nudge::Wakeup;
use crate::record::{decode, encode, unwrap, FORMAT_VERSION};
use crate::{Refused, Result, Seq, StoreError};

/// Tuning for [`SledLog::open_with`].
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, in bytes (default 64 MiB). sled counts what it caches by its size
    /// on disk: once full, the process holds about two and a half times this much.
    pub cache_bytes: u64,
    /// sled also flushes by itself this often; `None` leaves durability to [`crate::Log::sync`] alone.
    pub background_flush_ms: Option<u64>,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_bytes: 64 << 20,
            background_flush_ms: Some(500),
        }
    }
}

/// One opening of the folder: the database, its trees, and its data file for `fdatasync`.
#[derive(Debug)]
struct Open {
    db: sled::Db,
    meta: sled::Tree,
    events: sled::Tree,
    keys: sled::Tree,
    snapshots: sled::Tree,
    kept: sled::Tree,
    wakes: sled::Tree,
    index: sled::Tree,
    /// sled's data file (`db`), opened for reading only: syncing any descriptor of a file
    /// makes all of its written data durable.
    data: File,
}

/// The log in a sled database folder. Cheap to clone: every clone is the same log.
#[derive(Clone, Debug)]
pub struct SledLog {
    inner: Arc<Shared>,
}

/// What every clone of a [`SledLog`] shares.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    options: SledOptions,
    /// Replaced whole by [`Log::recover`]; `None` only while it waits for sled to let go of
    /// the folder (readers wait on the lock meanwhile).
    open: RwLock<Option<Arc<Open>>>,
    /// The version of every stream written to since opening, so an append checks its
    /// expected version without reading. Streams marked over are dropped from it.
    versions: Mutex<HashMap<StreamId, Seq>>,
    /// Files sled wrote for large values that are already synced.
    synced_blobs: Mutex<HashSet<OsString>>,
    /// How the committing task hears of its commits (see `nudge.rs`).
    wakeup: tokio::sync::Mutex<Option<Wakeup>>,
}

/// In `index`: the folder's indexes are built.
const INDEXED: &[u8] = b"#indexes";
/// In `index`: how many sessions are kept (u64 big-endian).
const SESSION_COUNT: &[u8] = b"#sessions";

fn due_key(due: u64, stream: StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'd');
    key.extend_from_slice(&due.to_be_bytes());
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

fn creator_key(creator: &str, stream: StreamId) -> Vec<u8> {
    let mut key = creator_prefix(creator);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

/// UTF-8 never holds 0xFF: one creator's entries are not a prefix of another's.
fn creator_prefix(creator: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(creator.len() + 10);
    key.push(b'c');
    key.extend_from_slice(creator.as_bytes());
    key.push(0xFF);
    key
}

fn finished_key(at: u64, stream: StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'f');
    key.extend_from_slice(&at.to_be_bytes());
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

fn stream_key_key(stream: StreamId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 9);
    out.push(b'k');
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn expiry_key(expires: u64, token: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(token.len() + 9);
    key.push(b'e');
    key.extend_from_slice(&expires.to_be_bytes());
    key.extend_from_slice(token.as_bytes());
    key
}

fn sid_key(sid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(sid.len() + 1);
    key.push(b's');
    key.extend_from_slice(sid.as_bytes());
    key
}

/// Where [`Log::probe`] writes, in sled's default tree (no stream lives there).
const PROBE_KEY: &[u8] = b"probe";
/// What [`Log::probe`] writes.
const PROBE_BYTES: usize = 16 << 10;

fn event_key(stream: StreamId, seq: Seq) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&stream.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn be_u64(what: &'static str, bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

/// `fsync` a directory, so that the files created in it survive a power loss.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Open {
    fn new(path: &Path, options: &SledOptions) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(options.background_flush_ms)
            .open()?;
        // The files sled just created, and the folder that names them, are on disk before the
        // first write is acknowledged.
        for file in ["conf", "db"] {
            if let Ok(f) = File::open(path.join(file)) {
                f.sync_all()?;
            }
        }
        sync_dir(path)?;
        let open = Open {
            meta: db.open_tree("meta")?,
            events: db.open_tree("events")?,
            keys: db.open_tree("keys")?,
            snapshots: db.open_tree("snapshots")?,
            kept: db.open_tree("kept")?,
            wakes: db.open_tree("wakes")?,
            index: db.open_tree("index")?,
            data: File::open(path.join("db"))?,
            db,
        };
        if !open.index.contains_key(INDEXED)? {
            open.build_indexes()?;
        }
        Ok(open)
    }

    /// Index a folder written before the indexes: once, on its first opening by this build.
    /// Finished games are listed as finished now (their time was not kept), which keeps them
    /// for their whole retention from now on. Sessions kept by an older build are dropped:
    /// their records say nothing the index could use.
    fn build_indexes(&self) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        for row in self.meta.iter() {
            let (key, value) = row?;
            let id = be_u64("stream id", &key)?;
            let mut meta: StreamMeta = decode("stream metadata", &value)?;
            match meta.status {
                StreamStatus::Live if !meta.creator.is_empty() => {
                    self.index.insert(creator_key(&meta.creator, id), &[])?;
                }
                StreamStatus::Live => {}
                StreamStatus::Over => {
                    let at = *meta.finished.get_or_insert(now);
                    self.index.insert(finished_key(at, id), &[])?;
                    self.meta.insert(key, encode(&meta))?;
                }
            }
        }
        for row in self.wakes.iter() {
            let (key, value) = row?;
            let wake = decode_wake(&value)?;
            self.index
                .insert(due_key(wake.due, be_u64("stream id", &key)?), &[])?;
        }
        for row in self.keys.iter() {
            let (key, value) = row?;
            if let Ok(entry) = decode::<KeyEntry>("key entry", &value) {
                self.index.insert(stream_key_key(entry.stream, &key), &[])?;
            }
        }
        self.db.drop_tree("sessions")?;
        self.index.insert(INDEXED, &[1])?;
        Ok(())
    }
}

impl SledLog {
    /// Open (or create) the log in folder `path` with default options.
    ///
    /// # Errors
    /// sled could not open the folder (it is locked by another process, unreadable, ...).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &SledOptions::default())
    }

    /// Open (or create) the log in folder `path`.
    ///
    /// # Errors
    /// sled could not open the folder.
    pub fn open_with(path: impl AsRef<Path>, options: &SledOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let open = Open::new(&path, options)?;
        Ok(SledLog {
            inner: Arc::new(Shared {
                path,
                options: options.clone(),
                open: RwLock::new(Some(Arc::new(open))),
                versions: Mutex::new(HashMap::new()),
                synced_blobs: Mutex::new(HashSet::new()),
                wakeup: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Open the folder, waiting up to `wait` for another holder to release it: a previous
    /// process still shutting down, or (in tests) a previous log in this process, whose
    /// background threads let go of the folder lock shortly after its last handle is dropped.
    ///
    /// # Errors
    /// The folder is still locked after `wait`, or cannot be opened at all.
    pub fn open_retrying(path: impl AsRef<Path>, wait: Duration) -> Result<Self> {
        Self::open_retrying_with(path, &SledOptions::default(), wait)
    }

    /// [`SledLog::open_retrying`] with `options`.
    ///
    /// # Errors
    /// The folder is still locked after `wait`, or cannot be opened at all.
    pub fn open_retrying_with(
        path: impl AsRef<Path>,
        options: &SledOptions,
        wait: Duration,
    ) -> Result<Self> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Self::open_with(path.as_ref(), options) {
                Err(e) if is_locked(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if is_locked(&e) => {
                    return Err(StoreError::Locked(path.as_ref().display().to_string()))
                }
                other => return other,
            }
        }
    }

    /// The current opening. Cheap: a lock held for one `Arc` clone.
    ///
    /// # Errors
    /// A reopening failed and the folder is not open.
    fn open_now(&self) -> Result<Arc<Open>> {
        // The lock only guards swapping the Arc: a poisoned one still holds a whole Arc.
        let open = self.inner.open.read().unwrap_or_else(|p| p.into_inner());
        open.clone()
            .ok_or_else(|| StoreError::Closed(self.inner.path.display().to_string()))
    }

    fn versions(&self) -> MutexGuard<'_, HashMap<StreamId, Seq>> {
        // Entries are inserted whole after their batch is applied: a poisoned map is still
        // right about every stream it holds.
        self.inner
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The stream's version, from memory if known, else from the log (checking it exists).
    fn current(&self, o: &Open, known: &HashMap<StreamId, Seq>, stream: StreamId) -> Result<Seq> {
        if let Some(version) = known.get(&stream) {
            return Ok(*version);
        }
        if !o.meta.contains_key(stream.to_be_bytes())? {
            return Err(StoreError::NoStream(stream));
        }
        version_in(o, stream)
    }

    /// Sync the files sled wrote for large values since the last sync, and their folder.
    fn sync_blobs(&self) -> Result<()> {
        let dir = self.inner.path.join("blobs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(()); // no large value written yet
        };
        let mut synced = self
            .inner
            .synced_blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut any = false;
        let mut present = HashSet::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                File::open(entry.path())?.sync_all()?;
                any = true;
            }
            present.insert(name);
        }
        if any {
            sync_dir(&dir)?;
        }
        // sled deletes blobs it no longer needs: forget those too.
        *synced = present;
        Ok(())
    }

    fn commit_wakeup(&self) -> &tokio::sync::Mutex<Option<Wakeup>> {
        &self.inner.wakeup
    }

    /// The underlying database, for tools and tests that inspect the layout.
    ///
    /// # Errors
    /// The folder is not open (a reopening failed).
    #[doc(hidden)]
    pub fn db(&self) -> Result<sled::Db> {
        Ok(self.open_now()?.db.clone())
    }
}

/// Whether `e` says another holder still has the folder locked.
fn is_locked(e: &StoreError) -> bool {
    matches!(e, StoreError::Sled(sled::Error::Io(io))
        if io.kind() == std::io::ErrorKind::Other && io.to_string().contains("lock"))
}

fn encode_wake(wake: Wake) -> [u8; 12] {
    let mut value = [0; 12];
    value[..8].copy_from_slice(&wake.due.to_be_bytes());
    value[8..].copy_from_slice(&wake.timers.to_be_bytes());
    value
}

fn decode_wake(value: &[u8]) -> Result<Wake> {
    let corrupt = || StoreError::Corrupt {
        what: "wake-up entry",
        detail: format!("expected 12 bytes, found {}", value.len()),
    };
    let (due, timers) = value.split_at_checked(8).ok_or_else(corrupt)?;
    Ok(Wake {
        due: be_u64("wake-up entry", due)?,
        timers: u32::from_be_bytes(timers.try_into().map_err(|_| corrupt())?),
    })
}

fn version_in(o: &Open, stream: StreamId) -> Result<Seq> {
    match o.events.scan_prefix(stream.to_be_bytes()).next_back() {
        Some(row) => be_u64("event key", &row?.0[8..]),
        None => Ok(0),
    }
}

fn meta_in(o: &Open, stream: StreamId) -> Result<Option<StreamMeta>> {
    o.meta
        .get(stream.to_be_bytes())?
        .map(|v| decode("stream metadata", &v))
        .transpose()
}

/// What a transaction's closure returns.
type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// A store error, as a transaction's closure aborts with it.
fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// A transaction's outcome, as the store's.
fn settled<T>(result: std::result::Result<T, TransactionError<StoreError>>) -> Result<T> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

/// Replace (or remove) a stream's wake-up entry and its place in the due index.
fn tx_set_wake(
    wakes: &TransactionalTree,
    index: &TransactionalTree,
    stream: StreamId,
    wake: Option<Wake>,
) -> TxResult<()> {
    let id = stream.to_be_bytes();
    if let Some(old) = wakes.get(id)? {
        let old = decode_wake(&old).map_err(abort)?;
        index.remove(due_key(old.due, stream))?;
    }
    match wake {
        Some(wake) => {
            wakes.insert(&id, &encode_wake(wake)[..])?;
            index.insert(due_key(wake.due, stream), &[])?;
        }
        None => {
            wakes.remove(&id)?;
        }
    }
    Ok(())
}

/// Mark a stream live or over, moving it between the creator and finished indexes.
fn tx_set_status(
    meta: &TransactionalTree,
    index: &TransactionalTree,
    stream: StreamId,
    status: StreamStatus,
    at: u64,
) -> TxResult<()> {
    let id = stream.to_be_bytes();
    let stored = meta
        .get(id)?
        .ok_or_else(|| abort(StoreError::NoStream(stream)))?;
    let mut m: StreamMeta = decode("stream metadata", &stored).map_err(abort)?;
    if m.status == status {
        return Ok(());
    }
    m.status = status;
    match status {
        StreamStatus::Over => {
            m.finished = Some(at);
            index.insert(finished_key(at, stream), &[])?;
            index.remove(creator_key(&m.creator, stream))?;
        }
        StreamStatus::Live => {
            if let Some(at) = m.finished.take() {
                index.remove(finished_key(at, stream))?;
            }
            if !m.creator.is_empty() {
                index.insert(creator_key(&m.creator, stream), &[])?;
            }
        }
    }
    meta.insert(&id, encode(&m))?;
    Ok(())
}

fn count_in(index: &TransactionalTree) -> TxResult<u64> {
    match index.get(SESSION_COUNT)? {
        Some(v) => be_u64("session count", &v).map_err(abort),
        None => Ok(0),
    }
}

/// Remove a kept session with its index entries; it, if there was one.
fn tx_take_session(
    kept: &TransactionalTree,
    index: &TransactionalTree,
    token: &str,
) -> TxResult<Option<SessionEntry>> {
    let Some(stored) = kept.remove(token.as_bytes())? else {
        return Ok(None);
    };
    let entry: SessionEntry = decode("session", &stored).map_err(abort)?;
    index.remove(expiry_key(entry.expires, token))?;
    let sid = sid_key(&entry.sid);
    if index.get(&sid)?.is_some_and(|t| t == token.as_bytes()) {
        index.remove(sid)?;
    }
    let count = count_in(index)?.saturating_sub(1);
    index.insert(SESSION_COUNT, &count.to_be_bytes())?;
    Ok(Some(entry))
}

/// What a `?` on a transactional tree's call gives inside a closure that must return a store
/// error (the conflicts sled retries on pass through).
fn unabortable(e: UnabortableTransactionError) -> ConflictableTransactionError<StoreError> {
    e.into()
}

/// The [`crate::Log`] calls, blocking.
impl SledLog {
    /// [`crate::Log::create_stream`], blocking the calling thread.
    pub fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        let o = self.open_now()?;
        // generate_id is unique across restarts; +1 keeps 0 free to mean "no stream".
        let id = o.db.generate_id()? + 1;
        let value = encode(meta);
        settled((&o.meta, &o.index).transaction(|(m, ix)| {
            m.insert(&id.to_be_bytes(), value.as_slice())?;
            match (meta.status, meta.finished) {
                (StreamStatus::Live, _) if !meta.creator.is_empty() => {
                    ix.insert(creator_key(&meta.creator, id), &[])?;
                }
                (StreamStatus::Over, Some(at)) => {
                    ix.insert(finished_key(at, id), &[])?;
                }
                _ => {}
            }
            Ok(())
        }))?;
        Ok(id)
    }

    /// [`crate::Log::commit`], blocking the calling thread.
    pub fn commit(&self, writes: &[Write], durable: bool) -> Result<Vec<Result<Seq, Refused>>> {
        let written = self.write(writes)?;
        if durable {
            self.sync()?;
        }
        Ok(written)
    }

    /// [`crate::Log::append`], blocking the calling thread.
    pub fn append(
        &self,
        stream: StreamId,
        expected: Seq,
        records: &[Bytes],
    ) -> Result<Result<Seq, Refused>> {
        let write = Write {
            stream,
            expected,
            records: records.to_vec(),
            ..Write::default()
        };
        let mut results = self.write(std::slice::from_ref(&write))?;
        Ok(results.pop().unwrap_or(Ok(expected)))
    }

    /// [`crate::Log::commit`] without making anything durable, blocking the calling thread.
    pub fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
        let o = self.open_now()?;
        let mut known = self.versions();
        // Decide every write against the versions as they stand, one after another (a call
        // may hold two writes of one stream), then apply the records as one batch.
        let mut staged: HashMap<StreamId, Seq> = HashMap::new();
        let mut results = Vec::with_capacity(writes.len());
        let mut inserts: Vec<([u8; 16], Vec<u8>)> = Vec::new();
        let mut removals: Vec<sled::IVec> = Vec::new();
        let mut indexed = false;
        for w in writes {
            let actual = match staged.get(&w.stream) {
                Some(v) => *v,
                None => self.current(&o, &known, w.stream)?,
            };
            if actual != w.expected {
                results.push(Err(Refused::Stale {
                    expected: w.expected,
                    actual,
                }));
                continue;
            }
            if let Some(before) = w.forget_before {
                let range = event_key(w.stream, 0)..event_key(w.stream, before);
                for key in o.events.range(range).keys() {
                    removals.push(key?);
                }
            }
            for (record, seq) in w.records.iter().zip(w.expected + 1..) {
                let mut value = Vec::with_capacity(record.len() + 1);
                value.push(FORMAT_VERSION);
                value.extend_from_slice(record);
                inserts.push((event_key(w.stream, seq), value));
            }
            indexed |= w.status.is_some() || w.wake != WakeChange::Keep;
            let version = w.expected + w.records.len() as u64;
            staged.insert(w.stream, version);
            results.push(Ok(version));
        }
        let applied = if indexed {
            // Records, status and wake-ups at once: see the module's notes.
            settled(
                (&o.events, &o.meta, &o.wakes, &o.index).transaction(|(ev, me, wa, ix)| {
                    for key in &removals {
                        ev.remove(key).map_err(unabortable)?;
                    }
                    for (key, value) in &inserts {
                        ev.insert(&key[..], value.as_slice())?;
                    }
                    for (w, result) in writes.iter().zip(&results) {
                        if result.is_err() {
                            continue;
                        }
                        if let Some(status) = w.status {
                            tx_set_status(me, ix, w.stream, status, w.at)?;
                        }
                        match w.wake {
                            WakeChange::Keep => {}
                            WakeChange::Set(wake) => tx_set_wake(wa, ix, w.stream, Some(wake))?,
                            WakeChange::Clear => tx_set_wake(wa, ix, w.stream, None)?,
                        }
                    }
                    Ok(())
                }),
            )
        } else {
            let mut batch = sled::Batch::default();
            for key in removals {
                batch.remove(key);
            }
            for (key, value) in inserts {
                batch.insert(&key[..], value);
            }
            o.events.apply_batch(batch).map_err(StoreError::from)
        };
        let applied = applied.and_then(|()| {
            for (w, result) in writes.iter().zip(&results) {
                if result.is_err() {
                    continue;
                }
                for (key, entry) in &w.keys {
                    put_key_in(&o, key, *entry)?;
                }
            }
            Ok(())
        });
        if let Err(e) = applied {
            // Whatever sled did or did not keep, the next write reads these versions afresh.
            for stream in staged.keys() {
                known.remove(stream);
            }
            return Err(e);
        }
        for (w, result) in writes.iter().zip(&results) {
            match (result, w.status) {
                (Ok(_), Some(StreamStatus::Over)) => {
                    known.remove(&w.stream);
                }
                (Ok(version), _) => {
                    known.insert(w.stream, *version);
                }
                (Err(_), _) => {}
            }
        }
        Ok(results)
    }

    /// [`crate::Log::set_status`], blocking the calling thread.
    pub fn set_status(&self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
        let o = self.open_now()?;
        settled(
            (&o.meta, &o.index).transaction(|(me, ix)| tx_set_status(me, ix, stream, status, at)),
        )
    }

    /// [`crate::Log::remove_streams`], blocking the calling thread.
    pub fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        let o = self.open_now()?;
        let mut known = self.versions();
        for &stream in streams {
            // Keys first: a key left behind would lead nowhere, a stream left behind is
            // harmless and is removed on the next pass (its finished entry goes last).
            let prefix = stream_key_key(stream, b"");
            for row in o.index.scan_prefix(&prefix).keys() {
                let entry = row?;
                o.keys.remove(&entry[prefix.len()..])?;
                o.index.remove(entry)?;
            }
            let mut batch = sled::Batch::default();
            let range = event_key(stream, 0)..=event_key(stream, u64::MAX);
            for key in o.events.range(range).keys() {
                batch.remove(key?);
            }
            o.events.apply_batch(batch)?;
            o.snapshots.remove(stream.to_be_bytes())?;
            settled((&o.meta, &o.wakes, &o.index).transaction(|(me, wa, ix)| {
                tx_set_wake(wa, ix, stream, None)?;
                if let Some(stored) = me.remove(&stream.to_be_bytes())? {
                    let m: StreamMeta = decode("stream metadata", &stored).map_err(abort)?;
                    ix.remove(creator_key(&m.creator, stream))?;
                    if let Some(at) = m.finished {
                        ix.remove(finished_key(at, stream))?;
                    }
                }
                Ok(())
            }))?;
            known.remove(&stream);
        }
        Ok(())
    }

    /// [`crate::Log::set_wake`], blocking the calling thread.
    pub fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        let o = self.open_now()?;
        settled((&o.wakes, &o.index).transaction(|(wa, ix)| tx_set_wake(wa, ix, stream, wake)))
    }

    /// [`crate::Log::put_key`], blocking the calling thread.
    pub fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        put_key_in(&*self.open_now()?, key, entry)
    }

    /// [`crate::Log::save_snapshot`], blocking the calling thread.
    pub fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        let mut value = Vec::with_capacity(state.len() + 9);
        value.push(FORMAT_VERSION);
        value.extend_from_slice(&version.to_be_bytes());
        value.extend_from_slice(state);
        self.open_now()?
            .snapshots
            .insert(stream.to_be_bytes(), value)?;
        Ok(())
    }

    /// [`crate::Log::save_session`], blocking the calling thread.
    pub fn save_session(&self, token: &str, session: &SessionEntry) -> Result<()> {
        let o = self.open_now()?;
        let value = encode(session);
        settled((&o.kept, &o.index).transaction(|(kept, ix)| {
            tx_take_session(kept, ix, token)?;
            kept.insert(token.as_bytes(), value.as_slice())?;
            ix.insert(expiry_key(session.expires, token), &[])?;
            ix.insert(sid_key(&session.sid), token.as_bytes())?;
            let count = count_in(ix)? + 1;
            ix.insert(SESSION_COUNT, &count.to_be_bytes())?;
            Ok(())
        }))
    }

    /// [`crate::Log::take_session`], blocking the calling thread.
    pub fn take_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        let o = self.open_now()?;
        settled((&o.kept, &o.index).transaction(|(kept, ix)| tx_take_session(kept, ix, token)))
    }

    /// [`crate::Log::sync`], blocking the calling thread.
    pub fn sync(&self) -> Result<()> {
        let o = self.open_now()?;
        // sled writes what it holds and waits for it with sync_file_range; fdatasync then makes
        // it survive a power loss (and flushes the disk's cache).
        o.db.flush()?;
        o.data.sync_data()?;
        self.sync_blobs()
    }

    /// [`crate::Log::probe`], blocking the calling thread.
    pub fn probe(&self) -> Result<()> {
        // As much as a typical commit writes, so that a disk with a few bytes left does not pass.
        let o = self.open_now()?;
        o.db.insert(PROBE_KEY, vec![0; PROBE_BYTES])?;
        self.sync()
    }

    /// [`crate::Log::recover`], blocking the calling thread.
    pub fn recover(&self) -> Result<()> {
        let mut open = self.inner.open.write().unwrap_or_else(|p| p.into_inner());
        // sled keeps its folder locked until every handle to the old opening is gone: drop
        // ours, then wait for those still in flight on other threads to finish.
        *open = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let fresh = loop {
            match Open::new(&self.inner.path, &self.inner.options) {
                Ok(fresh) => break fresh,
                Err(e) if is_locked(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        *open = Some(Arc::new(fresh));
        self.versions().clear();
        Ok(())
    }
}

/// Index `key`, and note it under its stream so that removing the stream removes it.
fn put_key_in(o: &Open, key: &str, entry: KeyEntry) -> Result<()> {
    o.index
        .insert(stream_key_key(entry.stream, key.as_bytes()), &[])?;
    o.keys.insert(key.as_bytes(), encode(&entry))?;
    Ok(())
}

/// The stream of an index entry that ends with one.
fn trailing_stream(what: &'static str, key: &[u8]) -> Result<StreamId> {
    let at = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::Corrupt {
            what,
            detail: format!("{} bytes", key.len()),
        })?;
    be_u64(what, &key[at..])
}

/// The [`crate::LogRead`] calls, blocking.
impl SledLog {
    /// [`crate::LogRead::read`], blocking the calling thread.
    pub fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
        let o = self.open_now()?;
        let start = event_key(stream, from.max(1));
        let end = event_key(stream, u64::MAX);
        let mut out = Vec::new();
        for row in o.events.range(start..=end).take(max) {
            let (key, value) = row?;
            let seq = be_u64("event key", &key[8..])?;
            unwrap("event", &value)?;
            // Shares sled's buffer instead of copying it.
            out.push((seq, Bytes::from_owner(value).slice(1..)));
        }
        Ok(out)
    }

    /// [`crate::LogRead::version`], blocking the calling thread.
    pub fn version(&self, stream: StreamId) -> Result<Seq> {
        version_in(&*self.open_now()?, stream)
    }

    /// [`crate::LogRead::meta`], blocking the calling thread.
    pub fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        meta_in(&*self.open_now()?, stream)
    }

    /// [`crate::LogRead::wake`], blocking the calling thread.
    pub fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        self.open_now()?
            .wakes
            .get(stream.to_be_bytes())?
            .map(|v| decode_wake(&v))
            .transpose()
    }

    /// [`crate::LogRead::find_key`], blocking the calling thread.
    pub fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        self.open_now()?
            .keys
            .get(key.as_bytes())?
            .map(|v| decode("key entry", &v))
            .transpose()
    }

    /// [`crate::LogRead::load_snapshot`], blocking the calling thread.
    pub fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        let Some(value) = self.open_now()?.snapshots.get(stream.to_be_bytes())? else {
            return Ok(None);
        };
        let payload = unwrap("snapshot", &value)?;
        if payload.len() < 8 {
            return Err(StoreError::Corrupt {
                what: "snapshot",
                detail: "shorter than its version".into(),
            });
        }
        let (version, state) = payload.split_at(8);
        Ok(Some((be_u64("snapshot version", version)?, state.to_vec())))
    }

    /// [`crate::LogRead::load_session`], blocking the calling thread.
    pub fn load_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        self.open_now()?
            .kept
            .get(token.as_bytes())?
            .map(|v| decode("session", &v))
            .transpose()
    }

    /// [`crate::LogRead::due`], blocking the calling thread.
    pub fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>> {
        use std::ops::Bound::{Excluded, Included};
        let o = self.open_now()?;
        let from = match after {
            Some((due, stream)) => Excluded(due_key(due, stream)),
            None => Included(vec![b'd']),
        };
        let mut out = Vec::new();
        for row in o
            .index
            .range((from, Included(due_key(until, StreamId::MAX))))
        {
            if out.len() >= max {
                break;
            }
            let stream = trailing_stream("due entry", &row?.0)?;
            // The entry and the stream's wake-up change together: one without the other is
            // a stream removed between the two reads.
            if let Some(wake) = o.wakes.get(stream.to_be_bytes())? {
                out.push((stream, decode_wake(&wake)?));
            }
        }
        Ok(out)
    }

    /// [`crate::LogRead::live_games`], blocking the calling thread.
    pub fn live_games(&self, creator: &str, max: usize) -> Result<usize> {
        let o = self.open_now()?;
        Ok(o.index
            .scan_prefix(creator_prefix(creator))
            .take(max)
            .count())
    }

    /// [`crate::LogRead::finished_before`], blocking the calling thread.
    pub fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>> {
        let o = self.open_now()?;
        let mut out = Vec::new();
        for row in o
            .index
            .range(vec![b'f']..finished_key(before, 0))
            .keys()
            .take(max)
        {
            out.push(trailing_stream("finished entry", &row?)?);
        }
        Ok(out)
    }

    /// [`crate::LogRead::expired_sessions`], blocking the calling thread.
    pub fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>> {
        let o = self.open_now()?;
        let mut out = Vec::new();
        for row in o
            .index
            .range(vec![b'e']..expiry_key(before, ""))
            .keys()
            .take(max)
        {
            let key = row?;
            out.push(String::from_utf8_lossy(key.get(9..).unwrap_or_default()).into_owned());
        }
        Ok(out)
    }

    /// [`crate::LogRead::session_count`], blocking the calling thread.
    pub fn session_count(&self) -> Result<u64> {
        match self.open_now()?.index.get(SESSION_COUNT)? {
            Some(v) => be_u64("session count", &v),
            None => Ok(0),
        }
    }

    /// [`crate::LogRead::session_by_sid`], blocking the calling thread.
    pub fn session_by_sid(&self, sid: &str) -> Result<Option<String>> {
        Ok(self
            .open_now()?
            .index
            .get(sid_key(sid))?
            .map(|t| String::from_utf8_lossy(&t).into_owned()))
    }

    /// [`crate::LogRead::keys_with_prefix`], blocking the calling thread.
    pub fn keys_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<(String, KeyEntry)>> {
        let mut out = Vec::new();
        for row in self
            .open_now()?
            .keys
            .scan_prefix(prefix.as_bytes())
            .take(max)
        {
            let (key, value) = row?;
            out.push((
                String::from_utf8_lossy(&key).into_owned(),
                decode("key entry", &value)?,
            ));
        }
        Ok(out)
    }

    /// [`crate::LogRead::streams`], blocking the calling thread.
    pub fn streams(&self) -> Result<Vec<StreamInfo>> {
        let o = self.open_now()?;
        let mut out = Vec::new();
        for row in o.meta.iter() {
            let (key, value) = row?;
            let id = be_u64("stream id", &key)?;
            out.push(StreamInfo {
                id,
                meta: decode("stream metadata", &value)?,
                version: version_in(&o, id)?,
            });
        }
        Ok(out)
    }

    /// Every stream's metadata, in id order, without reading its records. For tools.
    pub fn metas(&self) -> Result<Vec<(StreamId, StreamMeta)>> {
        let o = self.open_now()?;
        let mut out = Vec::new();
        for row in o.meta.iter() {
            let (key, value) = row?;
            out.push((
                be_u64("stream id", &key)?,
                decode("stream metadata", &value)?,
            ));
        }
        Ok(out)
    }

    /// [`crate::LogRead::wakes`], blocking the calling thread.
    pub fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        let mut out = Vec::new();
        for row in self.open_now()?.wakes.iter() {
            let (key, value) = row?;
            out.push((be_u64("stream id", &key)?, decode_wake(&value)?));
        }
        Ok(out)
    }

    /// [`crate::LogRead::sessions`], blocking the calling thread.
    pub fn sessions(&self) -> Result<Vec<(String, SessionEntry)>> {
        let mut out = Vec::new();
        for item in self.open_now()?.kept.iter() {
            let (k, v) = item?;
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                decode("session", &v)?,
            ));
        }
        Ok(out)
    }
}

crate::blocking_log!(SledLog, blocking, nudged);
