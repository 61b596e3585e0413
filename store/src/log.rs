//! The [`Log`] trait: what umpire needs from storage, and nothing more.

use async_trait::async_trait;
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
    /// When it was marked over (ms since the epoch), as the write that did it said: finished
    /// games are listed by this time for retention. `None` while live.
    #[serde(default)]
    pub finished: Option<u64>,
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

/// A stream with its metadata and current version, as listed by [`LogRead::streams`].
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// When, in ms since the epoch.
    pub due: u64,
    /// Timers pending in the game.
    pub timers: u32,
}

/// What a [`Write`] does to its stream's wake-up entry, atomically with its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When the write was made, in ms since the epoch (the writer's clock): a write that marks
    /// its stream over lists it as finished at this time.
    pub at: u64,
}

impl Write {
    /// A write of `records` to `stream` after seq `expected`, and nothing else.
    pub fn append(stream: StreamId, expected: Seq, records: Vec<Bytes>) -> Self {
        Write {
            stream,
            expected,
            records,
            ..Write::default()
        }
    }
}

/// A write that nobody waits for, made with the next commit ([`Log::commit_with`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideWrite {
    /// [`Log::save_snapshot`].
    Snapshot {
        /// The stream.
        stream: StreamId,
        /// The version the state is at.
        version: Seq,
        /// The state.
        state: Vec<u8>,
    },
    /// [`Log::set_wake`].
    Wake {
        /// The stream.
        stream: StreamId,
        /// The entry, or none.
        wake: Option<Wake>,
    },
    /// [`Log::save_session`].
    SaveSession {
        /// The resume token.
        token: String,
        /// The session.
        session: SessionEntry,
    },
    /// [`Log::take_session`], the session dropped.
    TakeSession {
        /// The resume token.
        token: String,
    },
}

/// A connection's session kept for resuming: the hub's record of it, and what the store
/// indexes it by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// The session's public id, which stays the same across resumes (its token does not).
    pub sid: String,
    /// When it may be forgotten, in ms since the epoch: listed by
    /// [`LogRead::expired_sessions`] from then on.
    pub expires: u64,
    /// The hub's record, in the hub's own encoding. (Stored as one byte string: read past
    /// without copying when only the session's id and expiry are wanted; entries written as
    /// a list of numbers still read.)
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// An append-only log of streams: the write half, with everything a server needs of storage.
/// A server gives it to its one writer; every other part holds the read half, [`LogRead`].
///
/// Asynchronous, so that a networked backend never blocks a thread of the runtime; the sled
/// backend runs its calls on tokio's blocking pool, the memory backend at once. (Both also have
/// the same calls as plain methods, for tools and tests outside a runtime.)
///
/// Writes are visible to reads at once but durable only once a [`Log::commit`] that asked for
/// it, or a [`Log::sync`], returns: callers must not tell anyone about a record before that.
/// Each stream has one writer at a time; the expected version of every [`Write`] catches a
/// second one, and a backend shared by several processes also refuses a writer that no longer
/// holds the stream ([`Refused::NotOwner`]).
#[async_trait]
pub trait Log: LogRead {
    /// Register a new, empty stream and return its id. The stream counts for its creator
    /// ([`LogRead::live_games`]) from now on while it is live.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn create_stream(&self, meta: StreamMeta) -> Result<StreamId>;

    /// Apply every write whose stream is at the version it expects; the others are
    /// [`Refused`] and change nothing. Returns each stream's new version, in order. With
    /// `durable`, everything written so far is durable when it returns (one flush for the
    /// whole group: the group commit).
    ///
    /// The records of one call are atomic: after a crash, either all of them are in the log or
    /// none is. A write's keys and status are never there without its records, and its
    /// wake-up entry and the indexes it changes are there exactly when its records are.
    ///
    /// # Errors
    /// Fail-stop storage problems; [`crate::StoreError::NoStream`] if a stream was never
    /// created (then nothing is written).
    async fn commit(&self, writes: Vec<Write>, durable: bool) -> Result<Vec<Result<Seq, Refused>>>;

    /// [`Log::commit`], with the writes nobody waits for (`side`) made first, in order, in the
    /// same call: one hop to the disk or one round trip for all of them. They fail only when
    /// the log does (a stored value they replace that does not decode is replaced anyway).
    /// Required, with no default made of the single writes: a wrapper must hand the call on
    /// whole, or every side write becomes a hop of its own.
    ///
    /// # Errors
    /// As [`Log::commit`].
    async fn commit_with(
        &self,
        side: Vec<SideWrite>,
        writes: Vec<Write>,
        durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>>;

    /// Append `records` after seq `expected` and make them durable: a [`Log::commit`] of one
    /// stream's records.
    ///
    /// # Errors
    /// As [`Log::commit`].
    async fn append(
        &self,
        stream: StreamId,
        expected: Seq,
        records: Vec<Bytes>,
    ) -> Result<Result<Seq, Refused>> {
        let write = Write::append(stream, expected, records);
        let mut results = self.commit(vec![write], true).await?;
        Ok(results.pop().unwrap_or(Ok(expected)))
    }

    /// Mark a stream live or over; `at` is when (a stream marked over is listed as finished
    /// at that time).
    ///
    /// # Errors
    /// Fail-stop storage problems; [`crate::StoreError::NoStream`].
    async fn set_status(&self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()>;

    /// Forget `streams` entirely: records, metadata, snapshot, wake-up entry, index entries,
    /// and every key that leads to one of them (retention of finished games). Durable with
    /// the next sync.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn remove_streams(&self, streams: Vec<StreamId>) -> Result<()>;

    /// Replace (or with `None` remove) the stream's wake-up entry outside a write. Durable with
    /// the next sync.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()>;

    /// Index `key` (a join or watch key, a seat token, a channel's name).
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn put_key(&self, key: String, entry: KeyEntry) -> Result<()>;

    /// Index `key` as `entry` unless it is indexed already, in one atomic step (across every
    /// node sharing the log): the entry that holds the key afterwards, `entry` or the one
    /// there before. Two nodes claiming one key at once agree on one stream.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn claim_key(&self, key: String, entry: KeyEntry) -> Result<KeyEntry>;

    /// Keep `state` as the stream's snapshot at `version`, replacing any older one.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn save_snapshot(&self, stream: StreamId, version: Seq, state: Vec<u8>) -> Result<()>;

    /// Keep a connection's resumable session under its resume token, replacing what was
    /// there. Durable with the next sync.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn save_session(&self, token: String, session: SessionEntry) -> Result<()>;

    /// Remove the session kept under `token` and return it: a resume uses its token up, and
    /// an expired session goes this way too.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn take_session(&self, token: String) -> Result<Option<SessionEntry>>;

    /// Make everything written so far durable. One call serves every stream.
    ///
    /// # Errors
    /// Fail-stop storage problems: nothing written since the last successful sync is safe.
    async fn sync(&self) -> Result<()>;

    /// Start afresh from what is durable, after a storage error (a disk that was full, say):
    /// whatever was written but not synced may be gone, and the log serves again if the cause
    /// has passed.
    ///
    /// # Errors
    /// The log still cannot be used.
    async fn recover(&self) -> Result<()>;

    /// Check that the log can be written and made durable now, after a storage error.
    ///
    /// # Errors
    /// The log still cannot be written.
    async fn probe(&self) -> Result<()>;
}

/// The read half of a [`Log`]: what every part of a server may hold. Writing needs the whole
/// [`Log`], which a server gives to its one writer alone, so that every write goes through it.
///
/// What a server asks of it at start and in its housekeeping are queries that indexes answer
/// ([`LogRead::due`], [`LogRead::live_games`], [`LogRead::finished_before`],
/// [`LogRead::expired_sessions`], [`LogRead::session_count`]): their cost grows with what they
/// return, not with the size of the log. The listings at the end ([`LogRead::streams`] and
/// the like) read everything, for tools (`umpire inspect`) and tests; a server never calls them.
#[async_trait]
pub trait LogRead: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `max` records from seq `from` on, in order, with their seqs. The bytes are
    /// shared with the store where it can, not copied.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version, corrupt keys.
    async fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>>;

    /// The seq of the stream's last record, 0 if it has none.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn version(&self, stream: StreamId) -> Result<Seq>;

    /// The stream's metadata, if it exists.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    async fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>>;

    /// The stream's wake-up entry.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn wake(&self, stream: StreamId) -> Result<Option<Wake>>;

    /// Look a key up.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    async fn find_key(&self, key: &str) -> Result<Option<KeyEntry>>;

    /// The latest snapshot and its version.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    async fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>>;

    /// The session kept under `token`, if any.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn load_session(&self, token: &str) -> Result<Option<SessionEntry>>;

    /// Up to `max` wake-up entries due at or before `until`, earliest first (ties by stream),
    /// starting after `after` (the last entry of the previous page), to page through them.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>>;

    /// How many live streams `creator` created, counting up to `max` (a caller checking a
    /// limit needs no more).
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn live_games(&self, creator: &str, max: usize) -> Result<usize>;

    /// Up to `max` streams marked over before `before`, earliest first.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>>;

    /// The tokens of up to `max` kept sessions whose time ran out before `before`, earliest
    /// first.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>>;

    /// How many sessions are kept.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn session_count(&self) -> Result<u64>;

    /// The token of the session kept with public id `sid`, if one is.
    ///
    /// # Errors
    /// Fail-stop storage problems.
    async fn session_by_sid(&self, sid: &str) -> Result<Option<String>>;

    /// Up to `max` keys that start with `prefix`, with where they lead, in key order.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn keys_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<(String, KeyEntry)>>;

    /// Every stream, in id order. Reads the whole log: for tools.
    ///
    /// # Errors
    /// Fail-stop storage problems, an unknown format version.
    async fn streams(&self) -> Result<Vec<StreamInfo>>;

    /// The whole wake-up index, in stream order. For tools.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn wakes(&self) -> Result<Vec<(StreamId, Wake)>>;

    /// Every kept session. For tools.
    ///
    /// # Errors
    /// Fail-stop storage problems, a corrupt entry.
    async fn sessions(&self) -> Result<Vec<(String, SessionEntry)>>;
}
