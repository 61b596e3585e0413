//! The [`Log`] trait: what umpire needs from storage, and nothing more.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Refused, Result, Seq};

/// A stream's id: a game or a channel. Allocated by the store, never reused.
pub type StreamId = u64;

/// What the store keeps about a stream besides its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The game kind (or `channel`).
    pub kind: String,
    /// When it was created, in ms since the epoch.
    pub created: u64,
    /// Whether it still takes commands.
    pub status: StreamStatus,
    /// Who created it (a player name), to count each player's live games. Empty for streams
    /// written before it was kept.
    #[serde(default)]
    pub creator: String,
    /// The game's join and watch keys, given back to a player who takes their seat back.
    /// `None` for streams written before they were kept.
    #[serde(default)]
    pub invite: Option<(String, String)>,
}

/// Whether a stream still takes commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    /// Restored at start.
    Live,
    /// Finished: kept for replays, not restored.
    Over,
}

/// A stream with its metadata and current version, as listed by [`Log::streams`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream.
    pub id: StreamId,
    /// Its metadata.
    pub meta: StreamMeta,
    /// The seq of its last record (0 if none).
    pub version: Seq,
}

/// What a key lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Take any free seat.
    Join,
    /// Watch only.
    Watch,
    /// Take back this seat.
    Seat(u16),
}

/// Where a key leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The stream.
    pub stream: StreamId,
    /// What the key allows.
    pub role: Role,
}

/// A stream's entry in the wake-up index: when its task is next needed though nobody asks for
/// it (its earliest timer, or when it expires for sitting idle), and how many timers it has
/// pending. The hub arms these at start without loading any game. An entry may be early (the
/// game is loaded, finds nothing due, and goes back to sleep), never late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// When, in ms since the epoch.
    pub due: u64,
    /// Timers pending in the game.
    pub timers: u32,
}

/// What a [`Write`] does to its stream's wake-up entry, atomically with its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WakeChange {
    /// Leave it.
    #[default]
    Keep,
    /// Replace it.
    Set(Wake),
    /// Remove it: the stream needs no wake-up (it is over).
    Clear,
}

/// What one writer has for one stream at one time: records to append after seq `expected`
/// (they get seqs `expected + 1` onwards), the keys that lead to the stream, and a new status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Write {
    /// The stream.
    pub stream: StreamId,
    /// The version the writer believes the stream is at.
    pub expected: Seq,
    /// The records, as the caller encoded them.
    pub records: Vec<Bytes>,
    /// Keys to index (join and watch keys, seat tokens).
    pub keys: Vec<(String, KeyEntry)>,
    /// A new status, if it changes.
    pub status: Option<StreamStatus>,
    /// Forget the stream's records before this seq (a channel keeps a bounded history).
    /// Reads skip what was forgotten; the version is unchanged.
    pub forget_before: Option<Seq>,
    /// The stream's wake-up entry.
    pub wake: WakeChange,
}

/// An append-only log of streams.
///
/// Writes are visible to reads at once but durable only after [`Log::sync`] returns: callers
/// must not tell anyone about a record before that. Each stream has one writer at a time; the
/// expected version of every [`Write`] catches a second one.
pub trait Log: Send + Sync + std::fmt::Debug + 'static {
    /// Register a new, empty stream and return its id.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId>;

    /// Apply every write whose stream is at the version it expects; the others get a
    /// [`Refused`] and change nothing. Returns each stream's new version, in order.
    ///
    /// The records of one call are atomic: after a crash, either all of them are in the log or
    /// none is. A write's keys and status are never there without its records.
    ///
    /// # Errors
    /// Fail-stop storage problems; [`crate::StoreError::NoStream`] if a stream was never
    /// created (then nothing is written).
    fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>>;

    /// Append `records` after seq `expected`: a [`Log::write`] of one stream's records.
    ///
    /// # Errors
    /// As [`Log::write`].
    fn append(
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

    /// Up to `max` records from seq `from` on, in order, with their seqs. The bytes are
    /// shared with the store where it can, not copied.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version, corrupt keys.
    fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>>;

    /// The seq of the stream's last record, 0 if it has none.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn version(&self, stream: StreamId) -> Result<Seq>;

    /// The stream's metadata, if it exists.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>>;

    /// Mark a stream live or over.
    ///
    /// # Errors
    /// Fail-stop storage problems; [`crate::StoreError::NoStream`].
    fn set_status(&self, stream: StreamId, status: StreamStatus) -> Result<()>;

    /// Every stream, in id order.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    fn streams(&self) -> Result<Vec<StreamInfo>>;

    /// Every stream's metadata, in id order, without reading its records (cheaper than
    /// [`Log::streams`]).
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    fn metas(&self) -> Result<Vec<(StreamId, StreamMeta)>> {
        Ok(self
            .streams()?
            .into_iter()
            .map(|info| (info.id, info.meta))
            .collect())
    }

    /// Forget `streams` entirely: records, metadata, snapshot, wake-up entry, and every key
    /// that leads to one of them (retention of finished games). Durable with the next sync.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn remove_streams(&self, streams: &[StreamId]) -> Result<()>;

    /// The stream's wake-up entry.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    fn wake(&self, stream: StreamId) -> Result<Option<Wake>>;

    /// Replace (or with `None` remove) the stream's wake-up entry outside a write. Durable with
    /// the next sync.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()>;

    /// The whole wake-up index, in stream order.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    fn wakes(&self) -> Result<Vec<(StreamId, Wake)>>;

    /// Index `key` (a join or watch key, or a seat token).
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()>;

    /// Look a key up.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>>;

    /// Keep `state` as the stream's snapshot at `version`, replacing any older one.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()>;

    /// The latest snapshot and its version.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>>;

    /// Keep a connection's resumable session (the hub's own encoding) under its resume
    /// token, replacing what was there. Durable with the next [`Log::sync`].
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn save_session(&self, token: &str, record: &[u8]) -> Result<()>;

    /// The session kept under `token`, if any.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn load_session(&self, token: &str) -> Result<Option<Vec<u8>>>;

    /// Forget the session under `token` (it was resumed under a new token, or expired).
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn remove_session(&self, token: &str) -> Result<()>;

    /// Every kept session, to prune the expired ones.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    fn sessions(&self) -> Result<Vec<(String, Vec<u8>)>>;

    /// Make everything written so far durable. One call serves every stream.
    ///
    /// # Errors
    /// Fail-stop storage problems: nothing written since the last successful sync is safe.
    fn sync(&self) -> Result<()>;

    /// Start afresh from what is durable, after a storage error (a disk that was full, say):
    /// whatever was written but not synced may be gone, and the log serves again if the cause
    /// has passed. The default does nothing.
    ///
    /// # Errors
    /// The log still cannot be used.
    fn recover(&self) -> Result<()> {
        Ok(())
    }

    /// Check that the log can be written and made durable now, after a storage error. The
    /// default syncs.
    ///
    /// # Errors
    /// The log still cannot be written.
    fn probe(&self) -> Result<()> {
        self.sync()
    }
}

/// The read half of a [`Log`]: what every part of a server may hold. Writing needs the whole
/// [`Log`], which a server gives to its one writer alone, so that every write goes through it.
/// Every [`Log`] is a `LogRead`.
pub trait LogRead: Send + Sync + std::fmt::Debug + 'static {
    /// See [`Log::read`].
    ///
    /// # Errors
    /// As [`Log::read`].
    fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>>;

    /// See [`Log::version`].
    ///
    /// # Errors
    /// As [`Log::version`].
    fn version(&self, stream: StreamId) -> Result<Seq>;

    /// See [`Log::meta`].
    ///
    /// # Errors
    /// As [`Log::meta`].
    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>>;

    /// See [`Log::streams`].
    ///
    /// # Errors
    /// As [`Log::streams`].
    fn streams(&self) -> Result<Vec<StreamInfo>>;

    /// See [`Log::metas`].
    ///
    /// # Errors
    /// As [`Log::metas`].
    fn metas(&self) -> Result<Vec<(StreamId, StreamMeta)>>;

    /// See [`Log::wake`].
    ///
    /// # Errors
    /// As [`Log::wake`].
    fn wake(&self, stream: StreamId) -> Result<Option<Wake>>;

    /// See [`Log::wakes`].
    ///
    /// # Errors
    /// As [`Log::wakes`].
    fn wakes(&self) -> Result<Vec<(StreamId, Wake)>>;

    /// See [`Log::find_key`].
    ///
    /// # Errors
    /// As [`Log::find_key`].
    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>>;

    /// See [`Log::load_snapshot`].
    ///
    /// # Errors
    /// As [`Log::load_snapshot`].
    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>>;

    /// See [`Log::load_session`].
    ///
    /// # Errors
    /// As [`Log::load_session`].
    fn load_session(&self, token: &str) -> Result<Option<Vec<u8>>>;

    /// See [`Log::sessions`].
    ///
    /// # Errors
    /// As [`Log::sessions`].
    fn sessions(&self) -> Result<Vec<(String, Vec<u8>)>>;
}

impl<L: Log + ?Sized> LogRead for L {
    fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
        Log::read(self, stream, from, max)
    }
    fn version(&self, stream: StreamId) -> Result<Seq> {
        Log::version(self, stream)
    }
    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        Log::meta(self, stream)
    }
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        Log::streams(self)
    }
    fn metas(&self) -> Result<Vec<(StreamId, StreamMeta)>> {
        Log::metas(self)
    }
    fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        Log::wake(self, stream)
    }
    fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        Log::wakes(self)
    }
    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        Log::find_key(self, key)
    }
    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        Log::load_snapshot(self, stream)
    }
    fn load_session(&self, token: &str) -> Result<Option<Vec<u8>>> {
        Log::load_session(self, token)
    }
    fn sessions(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Log::sessions(self)
    }
}
