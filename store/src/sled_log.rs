//! The sled backend.
//!
//! Trees:
//! - `meta`: stream id (u64 big-endian) → versioned [`StreamMeta`].
//! - `events`: stream id ++ seq (both u64 big-endian, so byte order is numeric order) →
//!   version byte ++ the caller's record.
//! - `keys`: key (UTF-8) → versioned [`KeyEntry`].
//! - `snapshots`: stream id → version byte ++ seq (u64 big-endian) ++ the caller's state.
//!
//! sled's `flush` syncs with `sync_file_range`, not `fsync`: a sync survives the process
//! crashing, not the machine losing power.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::log::{KeyEntry, Log, StreamId, StreamInfo, StreamMeta, StreamStatus};
use crate::record::{decode, encode, unwrap, wrap, FORMAT_VERSION};
use crate::{Conflict, Result, Seq, StoreError};

/// Tuning for [`SledLog::open_with`].
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, in bytes.
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

/// The log in a sled database folder.
#[derive(Clone, Debug)]
pub struct SledLog {
    db: sled::Db,
    meta: sled::Tree,
    events: sled::Tree,
    keys: sled::Tree,
    snapshots: sled::Tree,
}

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
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(options.background_flush_ms)
            .open()?;
        Ok(SledLog {
            meta: db.open_tree("meta")?,
            events: db.open_tree("events")?,
            keys: db.open_tree("keys")?,
            snapshots: db.open_tree("snapshots")?,
            db,
        })
    }

    /// Open the folder, waiting up to `wait` for another holder to release it: a previous
    /// process still shutting down, or (in tests) a previous log in this process, whose
    /// background threads let go of the folder lock shortly after its last handle is dropped.
    ///
    /// # Errors
    /// The folder is still locked after `wait`, or cannot be opened at all.
    pub fn open_retrying(path: impl AsRef<Path>, wait: std::time::Duration) -> Result<Self> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Self::open(path.as_ref()) {
                Err(StoreError::Sled(sled::Error::Io(e)))
                    if e.kind() == std::io::ErrorKind::Other
                        && e.to_string().contains("lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    /// The underlying database, for tools and tests that inspect the layout.
    #[doc(hidden)]
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

impl Log for SledLog {
    fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        // generate_id is unique across restarts; +1 keeps 0 free to mean "no stream".
        let id = self.db.generate_id()? + 1;
        self.meta.insert(id.to_be_bytes(), encode(meta))?;
        Ok(id)
    }

    fn append(
        &self,
        stream: StreamId,
        expected: Seq,
        records: &[Vec<u8>],
    ) -> Result<Result<Seq, Conflict>> {
        if !self.meta.contains_key(stream.to_be_bytes())? {
            return Err(StoreError::NoStream(stream));
        }
        let rows: Vec<([u8; 16], Vec<u8>)> = records
            .iter()
            .zip(expected + 1..)
            .map(|(record, seq)| (event_key(stream, seq), wrap(record)))
            .collect();
        // One transaction on one tree: the expected-version check and the inserts are atomic,
        // and a second writer racing on the same stream conflicts on the keys read here.
        let outcome = self.events.transaction(|tx| {
            let taken = tx.get(event_key(stream, expected + 1))?.is_some();
            let behind = expected > 0 && tx.get(event_key(stream, expected))?.is_none();
            if taken || behind {
                return Err(ConflictableTransactionError::Abort(()));
            }
            for (key, value) in &rows {
                tx.insert(&key[..], value.as_slice())?;
            }
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(Ok(expected + records.len() as u64)),
            Err(TransactionError::Abort(())) => Ok(Err(Conflict {
                expected,
                actual: self.version(stream)?,
            })),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Vec<u8>)>> {
        let start = event_key(stream, from.max(1));
        let end = event_key(stream, u64::MAX);
        let mut out = Vec::new();
        for row in self.events.range(start..=end).take(max) {
            let (key, value) = row?;
            let seq = be_u64("event key", &key[8..])?;
            out.push((seq, unwrap("event", &value)?.to_vec()));
        }
        Ok(out)
    }

    fn version(&self, stream: StreamId) -> Result<Seq> {
        match self.events.scan_prefix(stream.to_be_bytes()).next_back() {
            Some(row) => be_u64("event key", &row?.0[8..]),
            None => Ok(0),
        }
    }

    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        self.meta
            .get(stream.to_be_bytes())?
            .map(|v| decode("stream metadata", &v))
            .transpose()
    }

    fn set_status(&self, stream: StreamId, status: StreamStatus) -> Result<()> {
        let mut meta = self.meta(stream)?.ok_or(StoreError::NoStream(stream))?;
        meta.status = status;
        self.meta.insert(stream.to_be_bytes(), encode(&meta))?;
        Ok(())
    }

    fn streams(&self) -> Result<Vec<StreamInfo>> {
        let mut out = Vec::new();
        for row in self.meta.iter() {
            let (key, value) = row?;
            let id = be_u64("stream id", &key)?;
            out.push(StreamInfo {
                id,
                meta: decode("stream metadata", &value)?,
                version: self.version(id)?,
            });
        }
        Ok(out)
    }

    fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        self.keys.insert(key.as_bytes(), encode(&entry))?;
        Ok(())
    }

    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        self.keys
            .get(key.as_bytes())?
            .map(|v| decode("key entry", &v))
            .transpose()
    }

    fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        let mut value = Vec::with_capacity(state.len() + 9);
        value.push(FORMAT_VERSION);
        value.extend_from_slice(&version.to_be_bytes());
        value.extend_from_slice(state);
        self.snapshots.insert(stream.to_be_bytes(), value)?;
        Ok(())
    }

    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        let Some(value) = self.snapshots.get(stream.to_be_bytes())? else {
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

    fn sync(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}
