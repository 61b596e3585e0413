//! A log in memory: the same contract as the sled backend, gone when dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::log::{
    KeyEntry, Log, StreamId, StreamInfo, StreamMeta, StreamStatus, Wake, WakeChange, Write,
};
use crate::{Refused, Result, Seq, StoreError};

/// A log kept in memory; [`Log::sync`] does nothing. For tests and for embedders who keep no
/// history.
#[derive(Debug, Default)]
pub struct MemLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: StreamId,
    streams: BTreeMap<StreamId, (StreamMeta, Vec<Bytes>)>,
    keys: HashMap<String, KeyEntry>,
    snapshots: HashMap<StreamId, (Seq, Vec<u8>)>,
    sessions: HashMap<String, Vec<u8>>,
    wakes: BTreeMap<StreamId, Wake>,
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

impl Log for MemLog {
    fn create_stream(&self, meta: &StreamMeta) -> Result<StreamId> {
        let mut inner = self.lock();
        inner.last_id += 1;
        let id = inner.last_id;
        inner.streams.insert(id, (meta.clone(), Vec::new()));
        Ok(id)
    }

    fn write(&self, writes: &[Write]) -> Result<Vec<Result<Seq, Refused>>> {
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
                Some((meta, log)) => {
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
                    if let Some(status) = w.status {
                        meta.status = status;
                    }
                    Ok(log.len() as Seq)
                }
                None => continue, // checked above
            };
            if written.is_ok() {
                for (key, entry) in &w.keys {
                    inner.keys.insert(key.clone(), *entry);
                }
                match w.wake {
                    WakeChange::Keep => {}
                    WakeChange::Set(wake) => {
                        inner.wakes.insert(w.stream, wake);
                    }
                    WakeChange::Clear => {
                        inner.wakes.remove(&w.stream);
                    }
                }
            }
            results.push(written);
        }
        Ok(results)
    }

    fn read(&self, stream: StreamId, from: Seq, max: usize) -> Result<Vec<(Seq, Bytes)>> {
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

    fn version(&self, stream: StreamId) -> Result<Seq> {
        Ok(self
            .lock()
            .streams
            .get(&stream)
            .map_or(0, |(_, log)| log.len() as Seq))
    }

    fn meta(&self, stream: StreamId) -> Result<Option<StreamMeta>> {
        Ok(self
            .lock()
            .streams
            .get(&stream)
            .map(|(meta, _)| meta.clone()))
    }

    fn set_status(&self, stream: StreamId, status: StreamStatus) -> Result<()> {
        let mut inner = self.lock();
        let (meta, _) = inner
            .streams
            .get_mut(&stream)
            .ok_or(StoreError::NoStream(stream))?;
        meta.status = status;
        Ok(())
    }

    fn streams(&self) -> Result<Vec<StreamInfo>> {
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

    fn remove_streams(&self, streams: &[StreamId]) -> Result<()> {
        let mut inner = self.lock();
        inner
            .keys
            .retain(|_, entry| !streams.contains(&entry.stream));
        for stream in streams {
            inner.streams.remove(stream);
            inner.snapshots.remove(stream);
            inner.wakes.remove(stream);
        }
        Ok(())
    }

    fn wake(&self, stream: StreamId) -> Result<Option<Wake>> {
        Ok(self.lock().wakes.get(&stream).copied())
    }

    fn set_wake(&self, stream: StreamId, wake: Option<Wake>) -> Result<()> {
        let mut inner = self.lock();
        match wake {
            Some(wake) => inner.wakes.insert(stream, wake),
            None => inner.wakes.remove(&stream),
        };
        Ok(())
    }

    fn wakes(&self) -> Result<Vec<(StreamId, Wake)>> {
        Ok(self.lock().wakes.iter().map(|(id, w)| (*id, *w)).collect())
    }

    fn put_key(&self, key: &str, entry: KeyEntry) -> Result<()> {
        self.lock().keys.insert(key.to_owned(), entry);
        Ok(())
    }

    fn find_key(&self, key: &str) -> Result<Option<KeyEntry>> {
        Ok(self.lock().keys.get(key).copied())
    }

    fn save_snapshot(&self, stream: StreamId, version: Seq, state: &[u8]) -> Result<()> {
        self.lock()
            .snapshots
            .insert(stream, (version, state.to_vec()));
        Ok(())
    }

    fn load_snapshot(&self, stream: StreamId) -> Result<Option<(Seq, Vec<u8>)>> {
        Ok(self.lock().snapshots.get(&stream).cloned())
    }

    fn save_session(&self, token: &str, record: &[u8]) -> Result<()> {
        self.lock()
            .sessions
            .insert(token.to_owned(), record.to_vec());
        Ok(())
    }

    fn load_session(&self, token: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().sessions.get(token).cloned())
    }

    fn remove_session(&self, token: &str) -> Result<()> {
        self.lock().sessions.remove(token);
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .lock()
            .sessions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}
