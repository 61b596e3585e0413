//! A log in memory: the same contract as the sled backend, gone when dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::log::{
    KeyEntry, SessionEntry, StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};
use crate::{Refused, Result, Seq, StoreError};

/// A log kept in memory; [`crate::Log::sync`] does nothing. For tests and for embedders who keep no
/// history.
#[derive(Debug, Default)]
pub struct MemLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: StreamId,
    streams: BTreeMap<StreamId, (StreamMeta, Vec<Bytes>)>,
    keys: BTreeMap<String, KeyEntry>,
    snapshots: HashMap<StreamId, (Seq, Vec<u8>)>,
    sessions: HashMap<String, SessionEntry>,
    wakes: BTreeMap<StreamId, Wake>,
    // The indexes, as the sled backend keeps them.
    due: BTreeSet<(u64, StreamId)>,
    finished: BTreeSet<(u64, StreamId)>,
    expiring: BTreeSet<(u64, String)>,
    sids: HashMap<String, String>,
    /// Live streams per creator.
    creators: HashMap<String, usize>,
}

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every operation checks before it changes anything, and each change is a push or an
        // insert that cannot panic halfway: a poisoned lock still guards consistent maps.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Count a live stream of `creator` in (`+1`) or out (`-1`).
    fn count_live(&mut self, creator: &str, up: bool) {
        if creator.is_empty() {
            return;
        }
        let count = self.creators.entry(creator.to_owned()).or_insert(0);
        if up {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.creators.remove(creator);
            }
        }
    }

    fn set_wake(&mut self, stream: StreamId, wake: Option<Wake>) {
        if let Some(old) = self.wakes.remove(&stream) {
            self.due.remove(&(old.due, stream));
        }
        if let Some(wake) = wake {
            self.wakes.insert(stream, wake);
            self.due.insert((wake.due, stream));
        }
    }

    fn set_status(&mut self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
        let (meta, _) = self
            .streams
            .get_mut(&stream)
            .ok_or(StoreError::NoStream(stream))?;
        if meta.status == status {
            return Ok(());
        }
        meta.status = status;
        let creator = meta.creator.clone();
        match status {
            StreamStatus::Over => {
                meta.finished = Some(at);
                self.finished.insert((at, stream));
            }
            StreamStatus::Live => {
                if let Some(at) = meta.finished.take() {
                    self.finished.remove(&(at, stream));
                }
            }
        }
        self.count_live(&creator, status == StreamStatus::Live);
        Ok(())
    }

    fn remove_session(&mut self, token: &str) -> Option<SessionEntry> {
        let entry = self.sessions.remove(token)?;
        self.expiring.remove(&(entry.expires, token.to_owned()));
        if self.sids.get(&entry.sid).is_some_and(|t| t == token) {
            self.sids.remove(&entry.sid);
        }
        Some(entry)
    }
}

/// The [`crate::Log`] calls, blocking.
impl MemLog {
    /// [`crate::Log::create_stream`], blocking the calling thread.
    pub fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        let mut inner = self.lock();
        inner.last_id += 1;
        let id = inner.last_id;
        inner.streams.insert(id, (meta.clone(), Vec::new()));
        match (meta.status, meta.finished) {
            (StreamStatus::Over, Some(at)) => {
                inner.finished.insert((at, id));
            }
            (StreamStatus::Over, None) => {}
            (StreamStatus::Live, _) => inner.count_live(&meta.creator, true),
        }
        Ok(id)
    }

    /// [`crate::Log::commit`], blocking the calling thread (the memory log has nothing to
    /// make durable).
    pub fn commit(&self, writes: &[Write], _durable: bool) -> Result<Vec<Result<Seq, Refused>>> {
        self.write(writes)
    }

    /// [`crate::Log::commit_with`], blocking the calling thread.
    pub fn commit_with(
        &self,
        side: &[crate::SideWrite],
        writes: &[Write],
        durable: bool,
    ) -> Result<Vec<Result<Seq, Refused>>> {
        for write in side {
            match write {
                crate::SideWrite::Snapshot {
                    stream,
                    version,
                    state,
                } => self.save_snapshot(*stream, *version, state)?,
                crate::SideWrite::Wake { stream, wake } => self.set_wake(*stream, *wake)?,
                crate::SideWrite::SaveSession { token, session } => {
                    self.save_session(token, session)?
                }
                crate::SideWrite::TakeSession { token } => {
                    self.take_session(token)?;
                }
            }
        }
        self.commit(writes, durable)
    }

    /// [`crate::Log::commit`] without making anything durable, blocking the calling thread.
    pub fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
        let mut inner = self.lock();
        if let Some(w) = writes
            .iter()
            .find(|w| !inner.streams.contains_key(&w.stream))
        {
            return Err(StoreError::NoStream(w.stream));
        }
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            let written = match inner.streams.get_mut(&w.stream) {
                Some((_, log)) if log.len() as Seq != w.expected => Err(Refused::Stale {
                    expected: w.expected,
                    actual: log.len() as Seq,
                }),
                Some((_, log)) => {
                    log.extend(w.records.iter().cloned());
                    if let Some(before) = w.forget_before {
                        // Forgotten records leave an empty slot: no record is empty.
                        let upto = usize::try_from(before.saturating_sub(1)).unwrap_or(usize::MAX);
                        let upto = upto.min(log.len());
                        for record in log[..upto].iter_mut().rev() {
                            if record.is_empty() {
                                break; // forgotten before, with everything older
                            }
                            *record = Bytes::new();
                        }
                    }
                    Ok(log.len() as Seq)
                }
                None => continue, // checked above
            };
            if written.is_ok() {
                if let Some(status) = w.status {
                    inner.set_status(w.stream, status, w.at)?;
                }
                for (key, entry) in &w.keys {
                    inner.keys.insert(key.clone(), *entry);
                }
                match w.wake {
                    WakeChange::Keep => {}
                    WakeChange::Set(wake) => inner.set_wake(w.stream, Some(wake)),
                    WakeChange::Clear => inner.set_wake(w.stream, None),
                }
            }
            results.push(written);
        }
        Ok(results)
    }

    /// [`crate::Log::set_status`], blocking the calling thread.
    pub fn set_status(&self, stream: StreamId, status: StreamStatus, at: u64) -> Result<()> {
        self.lock().set_status(stream, status, at)
    }

    /// [`crate::Log::remove_streams`], blocking the calling thread.
    pub fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        let mut inner = self.lock();
        inner
            .keys
            .retain(|_, entry| !streams.contains(&entry.stream));
        for &stream in streams {
            if let Some((meta, _)) = inner.streams.remove(&stream) {
                if let Some(at) = meta.finished {
                    inner.finished.remove(&(at, stream));
                }
                if meta.status == StreamStatus::Live {
                    inner.count_live(&meta.creator, false);
                }
            }
            inner.snapshots.remove(&stream);
            inner.set_wake(stream, None);
        }
        Ok(())
    }

    /// [`crate::Log::set_wake`], blocking the calling thread.
    pub fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        self.lock().set_wake(stream, wake);
        Ok(())
    }

    /// [`crate::Log::put_key`], blocking the calling thread.
    pub fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        self.lock().keys.insert(key.to_owned(), entry);
        Ok(())
    }

    /// [`crate::Log::claim_key`], blocking the calling thread.
    pub fn claim_key(&self, key: &str, entry: KeyEntry) -> Result<KeyEntry> {
        Ok(*self.lock().keys.entry(key.to_owned()).or_insert(entry))
    }

    /// [`crate::Log::save_snapshot`], blocking the calling thread.
    pub fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        self.lock()
            .snapshots
            .insert(stream, (version, state.to_vec()));
        Ok(())
    }

    /// [`crate::Log::save_session`], blocking the calling thread.
    pub fn save_session(&self, token: &str, session: &SessionEntry) -> Result<()> {
        let mut inner = self.lock();
        inner.remove_session(token);
        inner.expiring.insert((session.expires, token.to_owned()));
        inner.sids.insert(session.sid.clone(), token.to_owned());
        inner.sessions.insert(token.to_owned(), session.clone());
        Ok(())
    }

    /// [`crate::Log::take_session`], blocking the calling thread.
    pub fn take_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        Ok(self.lock().remove_session(token))
    }

    /// [`crate::Log::sync`]: nothing to do.
    pub fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// [`crate::Log::recover`]: nothing to do.
    pub fn recover(&self) -> Result<()> {
        Ok(())
    }

    /// [`crate::Log::probe`]: nothing to do.
    pub fn probe(&self) -> Result<()> {
        Ok(())
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
}

/// The [`crate::LogRead`] calls, blocking.
impl MemLog {
    /// [`crate::LogRead::read`], blocking the calling thread.
    pub fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
        let inner = self.lock();
        let Some((_, log)) = inner.streams.get(&stream) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
        Ok(log
            .iter()
            .zip(1..)
            .skip(skip)
            .filter(|(record, _)| !record.is_empty())
            .take(max)
            .map(|(record, seq)| (seq, record.clone()))
            .collect())
    }

    /// [`crate::LogRead::version`], blocking the calling thread.
    pub fn version(&self, stream: StreamId) -> Result<Seq> {
        Ok(self
            .lock()
            .streams
            .get(&stream)
            .map_or(0, |(_, log)| log.len() as Seq))
    }

    /// [`crate::LogRead::meta`], blocking the calling thread.
    pub fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        Ok(self
            .lock()
            .streams
            .get(&stream)
            .map(|(meta, _)| meta.clone()))
    }

    /// [`crate::LogRead::wake`], blocking the calling thread.
    pub fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        Ok(self.lock().wakes.get(&stream).copied())
    }

    /// [`crate::LogRead::find_key`], blocking the calling thread.
    pub fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        Ok(self.lock().keys.get(key).copied())
    }

    /// [`crate::LogRead::load_snapshot`], blocking the calling thread.
    pub fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        Ok(self.lock().snapshots.get(&stream).cloned())
    }

    /// [`crate::LogRead::load_session`], blocking the calling thread.
    pub fn load_session(&self, token: &str) -> Result<Option<SessionEntry>> {
        Ok(self.lock().sessions.get(token).cloned())
    }

    /// [`crate::LogRead::due`], blocking the calling thread.
    pub fn due(
        &self,
        until: u64,
        after: Option<(u64, StreamId)>,
        max: usize,
    ) -> Result<Vec<(StreamId, Wake)>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let inner = self.lock();
        let from = after.map_or(Unbounded, Excluded);
        Ok(inner
            .due
            .range((from, Included((until, StreamId::MAX))))
            .take(max)
            .filter_map(|&(_, id)| Some((id, *inner.wakes.get(&id)?)))
            .collect())
    }

    /// [`crate::LogRead::live_games`], blocking the calling thread.
    pub fn live_games(&self, creator: &str, max: usize) -> Result<usize> {
        let count = self.lock().creators.get(creator).copied().unwrap_or(0);
        Ok(count.min(max))
    }

    /// [`crate::LogRead::finished_before`], blocking the calling thread.
    pub fn finished_before(&self, before: u64, max: usize) -> Result<Vec<StreamId>> {
        Ok(self
            .lock()
            .finished
            .range(..(before, 0))
            .take(max)
            .map(|&(_, id)| id)
            .collect())
    }

    /// [`crate::LogRead::expired_sessions`], blocking the calling thread.
    pub fn expired_sessions(&self, before: u64, max: usize) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .expiring
            .range(..(before, String::new()))
            .take(max)
            .map(|(_, token)| token.clone())
            .collect())
    }

    /// [`crate::LogRead::session_count`], blocking the calling thread.
    pub fn session_count(&self) -> Result<u64> {
        Ok(self.lock().sessions.len() as u64)
    }

    /// [`crate::LogRead::session_by_sid`], blocking the calling thread.
    pub fn session_by_sid(&self, sid: &str) -> Result<Option<String>> {
        Ok(self.lock().sids.get(sid).cloned())
    }

    /// [`crate::LogRead::keys_with_prefix`], blocking the calling thread.
    pub fn keys_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<(String, KeyEntry)>> {
        Ok(self
            .lock()
            .keys
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(max)
            .map(|(k, e)| (k.clone(), *e))
            .collect())
    }

    /// [`crate::LogRead::streams`], blocking the calling thread.
    pub fn streams(&self) -> Result<Vec<StreamInfo>> {
        Ok(self
            .lock()
            .streams
            .iter()
            .map(|(id, (meta, log))| StreamInfo {
                id: *id,
                meta: meta.clone(),
                version: log.len() as Seq,
            })
            .collect())
    }

    /// [`crate::LogRead::wakes`], blocking the calling thread.
    pub fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        Ok(self.lock().wakes.iter().map(|(id, w)| (*id, *w)).collect())
    }

    /// [`crate::LogRead::sessions`], blocking the calling thread.
    pub fn sessions(&self) -> Result<Vec<(String, SessionEntry)>> {
        Ok(self
            .lock()
            .sessions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

crate::blocking_log!(MemLog, inline, inline, inline);
