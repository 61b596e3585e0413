//! The sled backend.
//!
//! Trees:
//! - `meta`: stream id (u64 big-endian) → versioned [`StreamMeta`].
//! - `events`: stream id ++ seq (both u64 big-endian, so byte order is numeric order) →
//!   version byte ++ the caller's record.
//! - `keys`: key (UTF-8) → versioned [`KeyEntry`].
//! - `snapshots`: stream id → version byte ++ seq (u64 big-endian) ++ the caller's state.
//! - `sessions`: resume token → the hub's record of a connection's session (its encoding).
//! - `wakes`: stream id → due (u64 big-endian) ++ pending timers (u32 big-endian): the
//!   wake-up index, written with the records that change it.
//!
//! A [`Log::write`] puts every record of the call into one sled batch, which sled applies and
//! recovers atomically; keys and status changes follow it, so sled's log order keeps them from
//! surviving a crash without their records. The expected-version check runs against versions
//! kept in memory (each stream has one writer, and sled locks its folder to one process).
//!
//! [`Log::sync`] is sled's flush, which writes with `sync_file_range` (enough to survive the
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

use crate::log::{
    KeyEntry, Log, StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};
use crate::record::{decode, encode, unwrap, FORMAT_VERSION};
use crate::{Refused, Result, Seq, StoreError};

/// Tuning for [`SledLog::open_with`].
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, in bytes (default 64 MiB). sled counts what it caches by its size
    /// on disk: once full, the process holds about two and a half times this much.
    pub cache_bytes: u64,
    /// sled also flushes by itself this often; `None` leaves durability to [`Log::sync`] alone.
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
    sessions: sled::Tree,
    wakes: sled::Tree,
    /// sled's data file (`db`), opened for reading only: syncing any descriptor of a file
    /// makes all of its written data durable.
    data: File,
}

/// The log in a sled database folder.
#[derive(Debug)]
pub struct SledLog {
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
        Ok(Open {
            meta: db.open_tree("meta")?,
            events: db.open_tree("events")?,
            keys: db.open_tree("keys")?,
            snapshots: db.open_tree("snapshots")?,
            sessions: db.open_tree("sessions")?,
            wakes: db.open_tree("wakes")?,
            data: File::open(path.join("db"))?,
            db,
        })
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
            path,
            options: options.clone(),
            open: RwLock::new(Some(Arc::new(open))),
            versions: Mutex::new(HashMap::new()),
            synced_blobs: Mutex::new(HashSet::new()),
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
        let open = self.open.read().unwrap_or_else(|p| p.into_inner());
        open.clone()
            .ok_or_else(|| StoreError::Closed(self.path.display().to_string()))
    }

    fn versions(&self) -> MutexGuard<'_, HashMap<StreamId, Seq>> {
        // Entries are inserted whole after their batch is applied: a poisoned map is still
        // right about every stream it holds.
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
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
        let dir = self.path.join("blobs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(()); // no large value written yet
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
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

fn set_wake_in(o: &Open, stream: StreamId, wake: Option<Wake>) -> Result<()> {
    match wake {
        Some(wake) => o
            .wakes
            .insert(stream.to_be_bytes(), &encode_wake(wake)[..])?,
        None => o.wakes.remove(stream.to_be_bytes())?,
    };
    Ok(())
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

fn set_status_in(o: &Open, stream: StreamId, status: StreamStatus) -> Result<()> {
    let mut meta = meta_in(o, stream)?.ok_or(StoreError::NoStream(stream))?;
    meta.status = status;
    o.meta.insert(stream.to_be_bytes(), encode(&meta))?;
    Ok(())
}

impl Log for SledLog {
    fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        let o = self.open_now()?;
        // generate_id is unique across restarts; +1 keeps 0 free to mean "no stream".
        let id = o.db.generate_id()? + 1;
        o.meta.insert(id.to_be_bytes(), encode(meta))?;
        Ok(id)
    }

    fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
        let o = self.open_now()?;
        let mut known = self.versions();
        // Decide every write against the versions as they stand, one after another (a call
        // may hold two writes of one stream), then apply the records as one batch.
        let mut staged: HashMap<StreamId, Seq> = HashMap::new();
        let mut results = Vec::with_capacity(writes.len());
        let mut batch = sled::Batch::default();
        let mut value = Vec::new();
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
                    batch.remove(key?);
                }
            }
            for (record, seq) in w.records.iter().zip(w.expected + 1..) {
                value.clear();
                value.push(FORMAT_VERSION);
                value.extend_from_slice(record);
                batch.insert(&event_key(w.stream, seq)[..], value.as_slice());
            }
            let version = w.expected + w.records.len() as u64;
            staged.insert(w.stream, version);
            results.push(Ok(version));
        }
        let applied = o
            .events
            .apply_batch(batch)
            .map_err(StoreError::from)
            .and_then(|()| {
                for (w, result) in writes.iter().zip(&results) {
                    if result.is_err() {
                        continue;
                    }
                    for (key, entry) in &w.keys {
                        o.keys.insert(key.as_bytes(), encode(entry))?;
                    }
                    if let Some(status) = w.status {
                        set_status_in(&o, w.stream, status)?;
                    }
                    match w.wake {
                        WakeChange::Keep => {}
                        WakeChange::Set(wake) => set_wake_in(&o, w.stream, Some(wake))?,
                        WakeChange::Clear => set_wake_in(&o, w.stream, None)?,
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

    fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
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

    fn version(&self, stream: StreamId) -> Result<Seq> {
        version_in(&*self.open_now()?, stream)
    }

    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        meta_in(&*self.open_now()?, stream)
    }

    fn set_status(&self, stream: StreamId, status: StreamStatus) -> Result<()> {
        set_status_in(&*self.open_now()?, stream, status)
    }

    fn streams(&self) -> Result<Vec<StreamInfo>> {
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

    fn metas(&self) -> Result<Vec<(StreamId, StreamMeta)>> {
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

    fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let o = self.open_now()?;
        let gone: HashSet<StreamId> = streams.iter().copied().collect();
        // Keys first: a key left behind would lead nowhere, a stream left behind is harmless
        // and is removed on the next pass.
        for row in o.keys.iter() {
            let (key, value) = row?;
            // A key that does not decode leads nowhere useful either way: leave it.
            let Ok(entry) = decode::<KeyEntry>("key entry", &value) else {
                continue;
            };
            if gone.contains(&entry.stream) {
                o.keys.remove(key)?;
            }
        }
        let mut known = self.versions();
        for &stream in streams {
            let mut batch = sled::Batch::default();
            let range = event_key(stream, 0)..=event_key(stream, u64::MAX);
            for key in o.events.range(range).keys() {
                batch.remove(key?);
            }
            o.events.apply_batch(batch)?;
            o.snapshots.remove(stream.to_be_bytes())?;
            o.wakes.remove(stream.to_be_bytes())?;
            o.meta.remove(stream.to_be_bytes())?;
            known.remove(&stream);
        }
        Ok(())
    }

    fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        self.open_now()?
            .wakes
            .get(stream.to_be_bytes())?
            .map(|v| decode_wake(&v))
            .transpose()
    }

    fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        set_wake_in(&*self.open_now()?, stream, wake)
    }

    fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        let mut out = Vec::new();
        for row in self.open_now()?.wakes.iter() {
            let (key, value) = row?;
            out.push((be_u64("stream id", &key)?, decode_wake(&value)?));
        }
        Ok(out)
    }

    fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        self.open_now()?
            .keys
            .insert(key.as_bytes(), encode(&entry))?;
        Ok(())
    }

    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        self.open_now()?
            .keys
            .get(key.as_bytes())?
            .map(|v| decode("key entry", &v))
            .transpose()
    }

    fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        let mut value = Vec::with_capacity(state.len() + 9);
        value.push(FORMAT_VERSION);
        value.extend_from_slice(&version.to_be_bytes());
        value.extend_from_slice(state);
        self.open_now()?
            .snapshots
            .insert(stream.to_be_bytes(), value)?;
        Ok(())
    }

    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
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

    fn save_session(&self, token: &str, record: &[u8]) -> Result<()> {
        self.open_now()?.sessions.insert(token.as_bytes(), record)?;
        Ok(())
    }

    fn load_session(&self, token: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .open_now()?
            .sessions
            .get(token.as_bytes())?
            .map(|v| v.to_vec()))
    }

    fn remove_session(&self, token: &str) -> Result<()> {
        self.open_now()?.sessions.remove(token.as_bytes())?;
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.open_now()?.sessions.iter() {
            let (k, v) = item?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn sync(&self) -> Result<()> {
        let o = self.open_now()?;
        // sled writes what it holds and waits for it with sync_file_range; fdatasync then makes
        // it survive a power loss (and flushes the disk's cache).
        o.db.flush()?;
        o.data.sync_data()?;
        self.sync_blobs()
    }

    fn probe(&self) -> Result<()> {
        // As much as a typical commit writes, so that a disk with a few bytes left does not pass.
        let o = self.open_now()?;
        o.db.insert(PROBE_KEY, vec![0; PROBE_BYTES])?;
        self.sync()
    }

    fn recover(&self) -> Result<()> {
        let mut open = self.open.write().unwrap_or_else(|p| p.into_inner());
        // sled keeps its folder locked until every handle to the old opening is gone: drop
        // ours, then wait for those still in flight on other threads to finish.
        *open = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let fresh = loop {
            match Open::new(&self.path, &self.options) {
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
