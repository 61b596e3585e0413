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
//!   sid → token (sessions by public id); `#indexes` says the indexes are built (a folder
//!   from before them is indexed once, on opening). The kept sessions are counted once on
//!   opening and then as they come and go.
//!
//! A commit's records are plain inserts between a marker (`p` ++ a number in `index`, naming
//! each stream written and the version it was written after) and the marker's removal: sled
//! recovers a prefix of its writes, so a marker found on opening means that commit may be
//! there in part, and its streams lose every record after the versions it names (the
//! write-ahead file then brings back those that were acknowledged). A sled batch would do the
//! same, but seals and writes sled's I/O buffer twice per commit, on sled's I/O threads: about
//! a quarter of the server's CPU at one move per commit. Everything else is plain writes in
//! an order that sled's log keeps through a crash: keys, statuses and their index entries
//! after the records, so they never survive without them; a wake-up that comes sooner before
//! the records, one that comes later after them, and each wake-up's new due entry before the
//! old one goes, so a crash leaves a wake-up early, never late (the due query lists only the
//! entries that match their stream's wake-up). No sled transaction: each one would seal sled's
//! write buffer and hold every other reader and writer of the folder meanwhile. The
//! expected-version check runs against versions kept in memory (each stream has one writer,
//! and sled locks its folder to one process).
//!
//! Every change is also framed into the write-ahead file (`wal.rs`, in the folder's
//! `umpire-wal`), and [`crate::Log::sync`] is one `write` and one `fdatasync` of that file:
//! what it returns for survives a power loss. sled's own files are flushed (`sync_file_range`)
//! and `fdatasync`ed only at checkpoints (each 64 MiB of the write-ahead file, and after
//! opening), and opening replays the write-ahead file into whatever prefix of its writes sled
//! kept. Before the write-ahead file a sync was sled's flush and an `fdatasync` of its data
//! file: about nine times the disk's own cost per commit.
//!
//! After an I/O error sled refuses everything until it is opened again: [`Log::recover`]
//! reopens the folder, and what is on disk is the truth again.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_bytes::Bytes as ByteSlice;

use crate::log::{
    KeyEntry, SessionEntry, StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};
use crate::nudge::Wakeup;
use crate::record::{decode, encode, unwrap, FORMAT_VERSION};
use crate::wal::{self, sync_dir, Op, OpRef, Wal};
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
    /// How many sessions are kept: counted from the index when the folder is opened (a
    /// pass over the kept sessions' expiry entries), then kept as sessions come and go.
    sessions: AtomicU64,
    /// Where every change goes to be durable (see `wal.rs`).
    wal: Wal,
    /// Numbers the markers of commits under way (see [`apply_marked`]).
    commits: AtomicU64,
    /// The highest stream id in use: new streams are numbered above it.
    high: AtomicU64,
}

/// In `index`: the folder's indexes are built.
const INDEXED: &[u8] = b"#indexes";

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

/// What [`Log::probe`] writes (to the write-ahead file).
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
        let sessions = count_sessions(&open)?;
        let log = SledLog {
            inner: Arc::new(Shared {
                wal: Wal::new(path.join(wal::FOLDER)),
                commits: AtomicU64::new(0),
                high: AtomicU64::new(0),
                path,
                options: options.clone(),
                open: RwLock::new(Some(Arc::new(open))),
                versions: Mutex::new(HashMap::new()),
                synced_blobs: Mutex::new(HashSet::new()),
                wakeup: tokio::sync::Mutex::new(None),
                sessions: AtomicU64::new(sessions),
            }),
        };
        log.replay_wal()?;
        Ok(log)
    }

    /// Apply what the write-ahead file holds to sled, make sled durable, and start a new
    /// segment (the old ones deleted).
    fn replay_wal(&self) -> Result<()> {
        let ops = wal::read_all(self.inner.wal.dir())?;
        let o = self.open_now()?;
        let rolled_back = roll_back_unfinished(&o)?;
        if !ops.is_empty() || rolled_back {
            for op in ops {
                self.replay(&o, op)?;
            }
            self.flush_sled()?;
        }
        // The streams replayed may have ids sled's generator gives again (see
        // `create_stream`): new ones are numbered above the highest.
        if let Some((key, _)) = o.meta.last()? {
            let high = be_u64("stream id", &key)?;
            self.inner.high.fetch_max(high, Ordering::AcqRel);
        }
        self.inner.wal.restart()
    }

    /// Apply one change read back from the write-ahead file, which sled may hold already.
    fn replay(&self, o: &Open, op: Op) -> Result<()> {
        let exists = |stream: StreamId| o.meta.contains_key(stream.to_be_bytes());
        match op {
            Op::Create(id, meta) => {
                if !exists(id)? {
                    create_in(o, id, &meta)?;
                }
            }
            Op::Write(w) => {
                let version = {
                    let known = self.versions();
                    match self.current(o, &known, w.stream) {
                        Ok(v) => v,
                        // Removed later on: nothing of it is kept.
                        Err(StoreError::NoStream(_)) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                };
                let end = w.expected + w.records.len() as u64;
                let w = if version == w.expected {
                    w
                } else if version >= end {
                    // The records are in sled: the rest is made again, in order.
                    Write {
                        expected: version,
                        records: Vec::new(),
                        ..w
                    }
                } else {
                    return Err(StoreError::Corrupt {
                        what: "write-ahead file",
                        detail: format!(
                            "stream {} is at {version}, and a write after {} follows",
                            w.stream, w.expected
                        ),
                    });
                };
                if let Some(Err(refused)) = self.write_unlogged(std::slice::from_ref(&w))?.pop() {
                    return Err(StoreError::Corrupt {
                        what: "write-ahead file",
                        detail: format!("a write replayed was refused: {refused}"),
                    });
                }
            }
            Op::Status(stream, status, at) => {
                if exists(stream)? {
                    set_status_in(o, stream, status, at)?;
                }
            }
            Op::Remove(streams) => self.remove_unlogged(&streams)?,
            Op::Wake(stream, wake) => put_wake(o, stream, wake_in(o, stream)?, wake)?,
            Op::Key(key, entry) => put_key_in(o, &key, entry)?,
            Op::Snapshot(stream, version, state) => snapshot_in(o, stream, version, &state)?,
            Op::SaveSession(token, session) => {
                save_session_in(o, &self.inner.sessions, &token, &session)?;
            }
            Op::TakeSession(token) => {
                take_session_in(o, &self.inner.sessions, &token)?;
            }
            Op::Probe(_) => {}
        }
        Ok(())
    }

    /// Frame a change just applied for the next sync; sync at once if much waits.
    fn log(&self, op: &OpRef<'_>) -> Result<()> {
        if self.inner.wal.append(op)? {
            // A failure here leaves the file broken: the next sync makes a checkpoint, or
            // fails and says so to the one who asked for durability.
            let _ = self.sync();
        }
        Ok(())
    }

    /// sled's flush, then `fdatasync` of what it wrote: everything applied so far survives
    /// a power loss.
    fn flush_sled(&self) -> Result<()> {
        let o = self.open_now()?;
        // sled writes what it holds and waits for it with sync_file_range; fdatasync then makes
        // it survive a power loss (and flushes the disk's cache).
        o.db.flush()?;
        o.data.sync_data()?;
        self.sync_blobs()
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

/// The frame of a side write.
fn side_op(write: &crate::SideWrite) -> OpRef<'_> {
    use crate::SideWrite;
    match write {
        SideWrite::Snapshot {
            stream,
            version,
            state,
        } => OpRef::Snapshot(*stream, *version, ByteSlice::new(state)),
        SideWrite::Wake { stream, wake } => OpRef::Wake(*stream, *wake),
        SideWrite::SaveSession { token, session } => OpRef::SaveSession(token, session),
        SideWrite::TakeSession { token } => OpRef::TakeSession(token),
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

/// The stream's wake-up entry as stored; one that does not decode counts as none.
fn wake_in(o: &Open, stream: StreamId) -> Result<Option<Wake>> {
    Ok(o.wakes
        .get(stream.to_be_bytes())?
        .and_then(|v| decode_wake(&v).ok()))
}

/// Move the stream's wake-up entry from `old` to `new`: the new due entry first, then the
/// entry, then the old due entry goes. A crash in between leaves an extra due entry, which
/// [`SledLog::due`] skips (it lists only entries that match the stream's wake-up), never a
/// stream without one.
fn put_wake(o: &Open, stream: StreamId, old: Option<Wake>, new: Option<Wake>) -> Result<()> {
    let id = stream.to_be_bytes();
    match new {
        Some(wake) => {
            o.index.insert(due_key(wake.due, stream), &[])?;
            o.wakes.insert(id, &encode_wake(wake)[..])?;
        }
        None => {
            o.wakes.remove(id)?;
        }
    }
    if let Some(old) = old {
        if new.map(|n| n.due) != Some(old.due) {
            o.index.remove(due_key(old.due, stream))?;
        }
    }
    Ok(())
}

/// Mark a stream live or over, and make the creator and finished indexes say so (also when
/// the status was already right: a crash may have left them behind). The metadata first: an
/// index entry never leads to a stream that is not what it says.
fn set_status_in(o: &Open, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
    let mut m = meta_in(o, stream)?.ok_or(StoreError::NoStream(stream))?;
    let before = m.clone();
    m.status = status;
    match status {
        StreamStatus::Over => {
            let finished = *m.finished.get_or_insert(at);
            if m != before {
                o.meta.insert(stream.to_be_bytes(), encode(&m))?;
            }
            o.index.insert(finished_key(finished, stream), &[])?;
            o.index.remove(creator_key(&m.creator, stream))?;
        }
        StreamStatus::Live => {
            let finished = m.finished.take();
            if m != before {
                o.meta.insert(stream.to_be_bytes(), encode(&m))?;
            }
            if let Some(at) = finished {
                o.index.remove(finished_key(at, stream))?;
            }
            if !m.creator.is_empty() {
                o.index.insert(creator_key(&m.creator, stream), &[])?;
            }
        }
    }
    Ok(())
}

/// Remove the session kept under `token` with its index entries; it, if there was one. The
/// record goes first: an index entry left by a crash leads nowhere (an expiry finds nothing
/// to take; a sid whose token has no record is not kept).
fn take_session_in(o: &Open, counted: &AtomicU64, token: &str) -> Result<Option<SessionEntry>> {
    let Some(stored) = o.kept.remove(token.as_bytes())? else {
        return Ok(None);
    };
    counted.fetch_sub(1, Ordering::AcqRel);
    // One that does not decode goes all the same (its index entries, if any, stay: an
    // expiry that finds nothing to take).
    let Ok(entry) = decode_session(&stored) else {
        return Ok(None);
    };
    o.index.remove(expiry_key(entry.expires, token))?;
    let sid = sid_key(&entry.sid);
    if o.index.get(&sid)?.is_some_and(|t| t == token.as_bytes()) {
        o.index.remove(sid)?;
    }
    Ok(Some(entry))
}

/// Keep a session (none is kept under `token` now): its index entries first, then the record.
fn put_session_in(
    o: &Open,
    counted: &AtomicU64,
    token: &str,
    session: &SessionEntry,
    value: &[u8],
) -> Result<()> {
    o.index.insert(expiry_key(session.expires, token), &[])?;
    o.index.insert(sid_key(&session.sid), token.as_bytes())?;
    o.kept.insert(token.as_bytes(), value)?;
    counted.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// The first byte of a kept session written as its parts: expiry (8 bytes, big-endian), the
/// id's length (2 bytes) and the id, then the hub's record as it is. (Sessions written as one
/// MessagePack value, first byte [`FORMAT_VERSION`], still read.) Its id and expiry are read
/// without touching the record, and the record is copied once, not encoded.
const SESSION_PARTS: u8 = 2;

pub(crate) fn encode_session(session: &SessionEntry) -> Vec<u8> {
    let sid = session.sid.as_bytes();
    // Public ids are short; one too long to say in two bytes is kept the old way.
    let Ok(len) = u16::try_from(sid.len()) else {
        return encode(session);
    };
    let mut value = Vec::with_capacity(11 + sid.len() + session.record.len());
    value.push(SESSION_PARTS);
    value.extend_from_slice(&session.expires.to_be_bytes());
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(sid);
    value.extend_from_slice(&session.record);
    value
}

/// A kept session's id, expiry and record, the record still in `value`.
fn session_parts(value: &[u8]) -> Result<(&str, u64, &[u8])> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        what: "session",
        detail: detail.to_owned(),
    };
    let rest = value.get(1..).ok_or_else(|| corrupt("empty value"))?;
    let (expires, rest) = rest
        .split_at_checked(8)
        .ok_or_else(|| corrupt("no expiry"))?;
    let (len, rest) = rest
        .split_at_checked(2)
        .ok_or_else(|| corrupt("no id length"))?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (sid, record) = rest
        .split_at_checked(len)
        .ok_or_else(|| corrupt("id cut short"))?;
    let sid = std::str::from_utf8(sid).map_err(|_| corrupt("id is not UTF-8"))?;
    Ok((sid, be_u64("session", expires)?, record))
}

pub(crate) fn decode_session(value: &[u8]) -> Result<SessionEntry> {
    if value.first() != Some(&SESSION_PARTS) {
        return decode("session", value);
    }
    let (sid, expires, record) = session_parts(value)?;
    Ok(SessionEntry {
        sid: sid.to_owned(),
        expires,
        record: record.to_vec(),
    })
}

/// A kept session's id and expiry.
fn session_head(value: &[u8]) -> Result<(String, u64)> {
    if value.first() != Some(&SESSION_PARTS) {
        let entry = decode_session(value)?;
        return Ok((entry.sid, entry.expires));
    }
    let (sid, expires, _) = session_parts(value)?;
    Ok((sid.to_owned(), expires))
}

/// Keep `session` under `token`, replacing what was there. The same session saved again (the
/// same public id) keeps its id entry: with the same expiry (saved again within the hub's
/// expiry step) only the record is rewritten; with another its expiry entry moves first, in
/// one atomic batch (never listed by both or neither). Anything else takes the old one and
/// puts the new.
fn save_session_in(
    o: &Open,
    counted: &AtomicU64,
    token: &str,
    session: &SessionEntry,
) -> Result<()> {
    let value = encode_session(session);
    let old = o
        .kept
        .get(token.as_bytes())?
        .and_then(|old| session_head(&old).ok())
        .filter(|(sid, _)| *sid == session.sid);
    match old {
        Some((_, expires)) if expires == session.expires => {}
        Some((_, expires)) => {
            let mut moved = sled::Batch::default();
            moved.insert(&expiry_key(session.expires, token)[..], &[]);
            moved.remove(&expiry_key(expires, token)[..]);
            o.index.apply_batch(moved)?;
        }
        None => {
            take_session_in(o, counted, token)?;
            return put_session_in(o, counted, token, session, &value);
        }
    }
    o.kept.insert(token.as_bytes(), value)?;
    Ok(())
}

/// A snapshot as stored: version byte, the version it is at, the state.
/// Keep `state` as `stream`'s snapshot at `version`.
fn snapshot_in(o: &Open, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
    o.snapshots
        .insert(stream.to_be_bytes(), snapshot_value(version, state))?;
    Ok(())
}

fn snapshot_value(version: Seq, state: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(state.len() + 9);
    value.push(FORMAT_VERSION);
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(state);
    value
}

/// How many sessions are kept in `o`: a pass over their records.
fn count_sessions(o: &Open) -> Result<u64> {
    let mut count = 0;
    for key in o.kept.iter().keys() {
        key?;
        count += 1;
    }
    Ok(count)
}

/// Under `index`: a commit's records being applied, one by one (prefix, then a number).
const UNFINISHED: u8 = b'p';

/// Apply `changes` to the events: first a marker naming each stream written and the version
/// it was written after (`marker`: pairs of u64 big-endian), then the changes, then the
/// marker's removal. sled keeps a prefix of its writes through a crash, so a marker found on
/// opening means its commit may be there in part ([`roll_back_unfinished`]); the write-ahead
/// file brings back those that were acknowledged.
fn apply_marked(
    o: &Open,
    commits: &AtomicU64,
    marker: &[u8],
    changes: Vec<([u8; 16], Option<Vec<u8>>)>,
) -> Result<()> {
    let key = (!marker.is_empty()).then(|| {
        let mut key = vec![UNFINISHED];
        key.extend_from_slice(&commits.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        key
    });
    if let Some(key) = &key {
        o.index.insert(key, marker)?;
    }
    for (k, v) in changes {
        match v {
            Some(v) => o.events.insert(k, v)?,
            None => o.events.remove(k)?,
        };
    }
    if let Some(key) = key {
        o.index.remove(key)?;
    }
    Ok(())
}

/// Remove what commits cut short by a crash left of their records: for each marker, every
/// record of its streams after the version it names. Whether anything was found.
fn roll_back_unfinished(o: &Open) -> Result<bool> {
    let mut any = false;
    for row in o.index.scan_prefix([UNFINISHED]) {
        let (key, marker) = row?;
        for pair in marker.chunks(16) {
            let stream = be_u64("unfinished commit", pair.get(..8).unwrap_or(&[]))?;
            let after = be_u64("unfinished commit", pair.get(8..).unwrap_or(&[]))?;
            let range = event_key(stream, after.saturating_add(1))..=event_key(stream, u64::MAX);
            for k in o.events.range(range).keys() {
                o.events.remove(k?)?;
            }
        }
        o.index.remove(key)?;
        any = true;
    }
    Ok(any)
}

/// A new stream `id` with its index entries.
fn create_in(o: &Open, id: StreamId, meta: &StreamMeta) -> Result<()> {
    o.meta.insert(id.to_be_bytes(), encode(meta))?;
    match (meta.status, meta.finished) {
        (StreamStatus::Live, _) if !meta.creator.is_empty() => {
            o.index.insert(creator_key(&meta.creator, id), &[])?;
        }
        (StreamStatus::Over, Some(at)) => {
            o.index.insert(finished_key(at, id), &[])?;
        }
        _ => {}
    }
    Ok(())
}

/// Index `key`, and note it under its stream so that removing the stream removes it.
fn put_key_in(o: &Open, key: &str, entry: KeyEntry) -> Result<()> {
    o.index
        .insert(stream_key_key(entry.stream, key.as_bytes()), &[])?;
    o.keys.insert(key.as_bytes(), encode(&entry))?;
    Ok(())
}

/// The [`crate::Log`] calls, blocking.
impl SledLog {
    /// [`crate::Log::create_stream`], blocking the calling thread.
    pub fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        let o = self.open_now()?;
        // +1 keeps 0 free to mean "no stream". sled persists its id generator only when it
        // flushes, which it does at checkpoints: after a crash it may give again an id that a
        // stream replayed from the write-ahead file holds. So never at or below the highest
        // id in use.
        let generated = o.db.generate_id()? + 1;
        let mut high = self.inner.high.load(Ordering::Acquire);
        let id = loop {
            let id = generated.max(high + 1);
            match self
                .inner
                .high
                .compare_exchange(high, id, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break id,
                Err(now) => high = now,
            }
        };
        create_in(&o, id, meta)?;
        self.log(&OpRef::Create(id, meta))?;
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

    /// [`crate::Log::commit_with`], blocking the calling thread: the side writes in order,
    /// the snapshots as one batch, then the commit.
    pub fn commit_with(
        &self,
        side: &[crate::SideWrite],
        writes: &[Write],
        durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>> {
        use crate::SideWrite;
        if !side.is_empty() {
            let o = self.open_now()?;
            let mut snapshots = sled::Batch::default();
            let mut any = false;
            for write in side {
                match write {
                    SideWrite::Snapshot {
                        stream,
                        version,
                        state,
                    } => {
                        snapshots
                            .insert(&stream.to_be_bytes()[..], snapshot_value(*version, state));
                        any = true;
                    }
                    SideWrite::Wake { stream, wake } => {
                        put_wake(&o, *stream, wake_in(&o, *stream)?, *wake)?;
                    }
                    SideWrite::SaveSession { token, session } => {
                        save_session_in(&o, &self.inner.sessions, token, session)?;
                    }
                    SideWrite::TakeSession { token } => {
                        take_session_in(&o, &self.inner.sessions, token)?;
                    }
                }
            }
            if any {
                o.snapshots.apply_batch(snapshots)?;
            }
            for write in side {
                self.log(&side_op(write))?;
            }
        }
        self.commit(writes, durable)
    }

    /// [`crate::Log::append`], blocking the calling thread.
    pub fn append(
        &self,
        stream: StreamId,
        expected: Seq,
        records: &[Bytes],
    ) -> Result<Result<Seq, Refused>> {
        let write = Write::append(stream, expected, records.to_vec());
        let mut results = self.write(std::slice::from_ref(&write))?;
        Ok(results.pop().unwrap_or(Ok(expected)))
    }

    /// [`crate::Log::commit`] without making anything durable, blocking the calling thread.
    pub fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
        let results = self.write_unlogged(writes)?;
        for (w, result) in writes.iter().zip(&results) {
            if result.is_ok() {
                self.log(&OpRef::Write(w))?;
            }
        }
        Ok(results)
    }

    /// [`SledLog::write`] to sled alone.
    fn write_unlogged(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let o = self.open_now()?;
        let mut known = self.versions();
        // Decide every write against the versions as they stand, one after another (a call
        // may hold two writes of one stream), then apply the records between a marker and its
        // removal (`apply_marked`).
        let mut staged: HashMap<StreamId, Seq> = HashMap::new();
        let mut results = Vec::with_capacity(writes.len());
        // The records' changes, applied one by one between a marker's insertion and removal
        // (a sled batch would seal and write sled's I/O buffer twice per commit: more than
        // the commit's own cost on the disk).
        let mut changes: Vec<([u8; 16], Option<Vec<u8>>)> = Vec::new();
        let mut marker = Vec::new();
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
                    let key = key?;
                    if let Ok(key) = <[u8; 16]>::try_from(&key[..]) {
                        changes.push((key, None));
                    }
                }
            }
            if !w.records.is_empty() {
                marker.extend_from_slice(&w.stream.to_be_bytes());
                marker.extend_from_slice(&w.expected.to_be_bytes());
            }
            for (record, seq) in w.records.iter().zip(w.expected + 1..) {
                let mut value = Vec::with_capacity(record.len() + 1);
                value.push(FORMAT_VERSION);
                value.extend_from_slice(record);
                changes.push((event_key(w.stream, seq), Some(value)));
            }
            let version = w.expected + w.records.len() as u64;
            staged.insert(w.stream, version);
            results.push(Ok(version));
        }
        let applied = (|| -> Result<()> {
            // A wake-up that comes sooner is written before the records: if they survive a
            // crash, so does it. One that comes later, or none, after them: until then the
            // earlier entry stands (early is harmless, late is not).
            let mut after = Vec::new();
            for (w, result) in writes.iter().zip(&results) {
                let new = match (result, w.wake) {
                    (Err(_), _) | (Ok(_), WakeChange::Keep) => continue,
                    (Ok(_), WakeChange::Set(wake)) => Some(wake),
                    (Ok(_), WakeChange::Clear) => None,
                };
                let old = wake_in(&o, w.stream)?;
                let sooner = match (old, new) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(old), Some(new)) => new.due < old.due,
                };
                match sooner {
                    true => put_wake(&o, w.stream, old, new)?,
                    false => after.push((w.stream, new)),
                }
            }
            apply_marked(&o, &self.inner.commits, &marker, changes)?;
            for (w, result) in writes.iter().zip(&results) {
                if result.is_err() {
                    continue;
                }
                for (key, entry) in &w.keys {
                    put_key_in(&o, key, *entry)?;
                }
                if let Some(status) = w.status {
                    set_status_in(&o, w.stream, status, w.at)?;
                }
            }
            for (stream, new) in after {
                put_wake(&o, stream, wake_in(&o, stream)?, new)?;
            }
            Ok(())
        })();
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
        set_status_in(&*self.open_now()?, stream, status, at)?;
        self.log(&OpRef::Status(stream, status, at))?;
        Ok(())
    }

    /// [`crate::Log::remove_streams`], blocking the calling thread.
    pub fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        self.remove_unlogged(streams)?;
        self.log(&OpRef::Remove(streams))?;
        Ok(())
    }

    /// [`SledLog::remove_streams`] in sled alone.
    fn remove_unlogged(&self, streams: &[StreamId]) -> Result<()> {
        let o = self.open_now()?;
        let mut known = self.versions();
        for &stream in streams {
            // Keys first: a key left behind would lead nowhere, a stream left behind is
            // harmless and is removed on the next pass (its index entries and its metadata
            // go last, so the pass finds it again).
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
            put_wake(&o, stream, wake_in(&o, stream)?, None)?;
            if let Some(m) = meta_in(&o, stream)? {
                o.index.remove(creator_key(&m.creator, stream))?;
                o.meta.remove(stream.to_be_bytes())?;
                if let Some(at) = m.finished {
                    o.index.remove(finished_key(at, stream))?;
                }
            }
            known.remove(&stream);
        }
        Ok(())
    }

    /// [`crate::Log::set_wake`], blocking the calling thread.
    pub fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        let o = self.open_now()?;
        put_wake(&o, stream, wake_in(&o, stream)?, wake)?;
        self.log(&OpRef::Wake(stream, wake))?;
        Ok(())
    }

    /// [`crate::Log::put_key`], blocking the calling thread.
    pub fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        put_key_in(&*self.open_now()?, key, entry)?;
        self.log(&OpRef::Key(key, entry))?;
        Ok(())
    }

    /// [`crate::Log::claim_key`], blocking the calling thread.
    pub fn claim_key(&self, key: &str, entry: KeyEntry) -> Result<KeyEntry> {
        let o = self.open_now()?;
        let swapped =
            o.keys
                .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(encode(&entry)))?;
        if let Err(held) = swapped {
            if let Some(current) = held.current {
                return decode("key entry", &current);
            }
        }
        o.index
            .insert(stream_key_key(entry.stream, key.as_bytes()), &[])?;
        drop(o);
        self.log(&OpRef::Key(key, entry))?;
        Ok(entry)
    }

    /// [`crate::Log::save_snapshot`], blocking the calling thread.
    pub fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        snapshot_in(&*self.open_now()?, stream, version, state)?;
        self.log(&OpRef::Snapshot(stream, version, ByteSlice::new(state)))?;
        Ok(())
    }

    /// [`crate::Log::save_session`], blocking the calling thread.
    pub fn save_session(&self, token: &str, session: &SessionEntry) -> Result<()> {
        save_session_in(&*self.open_now()?, &self.inner.sessions, token, session)?;
        self.log(&OpRef::SaveSession(token, session))?;
        Ok(())
    }

    /// [`crate::Log::take_session`], blocking the calling thread.
    pub fn take_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        let taken = take_session_in(&*self.open_now()?, &self.inner.sessions, token)?;
        self.log(&OpRef::TakeSession(token))?;
        Ok(taken)
    }

    /// [`crate::Log::sync`], blocking the calling thread: the changes since the last sync
    /// appended to the write-ahead file and `fdatasync`ed (sled itself is flushed and synced
    /// only at checkpoints).
    pub fn sync(&self) -> Result<()> {
        self.inner.wal.sync(|| self.flush_sled())
    }

    /// [`crate::Log::probe`], blocking the calling thread.
    pub fn probe(&self) -> Result<()> {
        // As much as a typical commit writes, so that a disk with a few bytes left does not pass.
        self.open_now()?;
        self.log(&OpRef::Probe(ByteSlice::new(&[0; PROBE_BYTES])))?;
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
        let sessions = count_sessions(&fresh)?;
        *open = Some(Arc::new(fresh));
        drop(open);
        self.inner.sessions.store(sessions, Ordering::Release);
        self.versions().clear();
        // What the write-ahead file made durable and sled's files do not hold comes back.
        self.replay_wal()
    }
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
            .map(|v| decode_session(&v))
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
            let key = row?.0;
            let stream = trailing_stream("due entry", &key)?;
            let due = be_u64("due entry", key.get(1..9).unwrap_or_default())?;
            // Only the entry that matches the stream's wake-up: another is one a crash left
            // behind as the entry moved (or the stream was removed meanwhile).
            if let Some(wake) = wake_in(&o, stream)?.filter(|w| w.due == due) {
                out.push((stream, wake));
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
        Ok(self.inner.sessions.load(Ordering::Acquire))
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
                decode_session(&v)?,
            ));
        }
        Ok(out)
    }
}

// Reads and writes at once: sled serves reads from its cache and makes writes in memory (its IO
// threads write the disk), in microseconds, less than a hop to the blocking pool costs
// (measured: hopping reads took about 15% of a busy server's time, much of it contending on the
// pool's lock; hopping writes cost 50x2 fan-out 12% of its moves/s). Commits, which wait for
// the disk, on the blocking pool, waking the writer through the reactor.
crate::blocking_log!(SledLog, inline, inline, nudged);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::{decode_session, encode_session, SESSION_PARTS};
    use crate::record::encode;
    use crate::SessionEntry;

    fn entry() -> SessionEntry {
        SessionEntry {
            sid: "s-42".into(),
            expires: 1_700_000_123_000,
            record: (0..=255).collect(),
        }
    }

    #[test]
    fn a_kept_session_reads_back_in_either_layout() {
        let session = entry();
        let parts = encode_session(&session);
        assert_eq!(parts[0], SESSION_PARTS);
        assert_eq!(decode_session(&parts).unwrap(), session);
        // As one MessagePack value, the record a byte string or (as older builds wrote it)
        // a list of numbers.
        assert_eq!(decode_session(&encode(&session)).unwrap(), session);
        #[derive(serde::Serialize)]
        struct Older<'a> {
            sid: &'a str,
            expires: u64,
            record: &'a Vec<u8>,
        }
        let older = encode(&Older {
            sid: &session.sid,
            expires: session.expires,
            record: &session.record,
        });
        assert_eq!(decode_session(&older).unwrap(), session);
    }

    #[test]
    fn a_kept_session_cut_short_is_an_error() {
        let parts = encode_session(&entry());
        for len in 0..15 {
            assert!(decode_session(&parts[..len]).is_err(), "{len} bytes read");
        }
    }
}
