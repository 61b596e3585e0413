//! The write-ahead file in front of sled: what makes a commit durable at the price of one
//! `write` and one `fdatasync` of a plain file, instead of sled's flush.
//!
//! Every change the sled log makes is applied to sled first (not flushed) and then framed
//! into a buffer here ([`Wal::append`]). [`Wal::sync`] writes the buffer to the current
//! segment file and `fdatasync`s it: from then on the change survives a power cut, sled's own
//! files holding it or not. A frame is its payload's length and CRC-32 (both u32
//! little-endian) and the payload, one MessagePack-encoded [`Op`]; a frame cut short or whose
//! checksum does not match ends its segment (a write torn by a crash).
//!
//! When the segment passes [`SEGMENT_BYTES`] (and after opening), a checkpoint starts a new
//! segment, flushes and syncs sled (everything applied so far is then in sled's files) and
//! deletes the older segments. Opening the folder replays every segment, oldest first, into
//! sled: each operation is idempotent against a sled that already holds it (a write whose
//! records are there is skipped, the rest are puts and removals made again in order), so
//! whatever prefix of its own writes sled kept through the crash, the result is the same.
//!
//! A failed write or `fdatasync` leaves the segment with a torn tail: the file is marked
//! broken, and the next sync makes a checkpoint instead (sled flushed and synced, a new
//! segment) rather than appending after the tear.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes as ByteSlice};

use crate::log::{KeyEntry, SessionEntry, StreamMeta, StreamStatus, Wake, Write};
use crate::{Result, Seq, StreamId};

/// A segment this long gets a checkpoint and a successor.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Buffered frames past this size are synced at once, so that a log never synced (no
/// durability asked for) does not hold them all in memory.
const PENDING_BYTES: usize = 1 << 20;

/// The folder of the segments, inside sled's.
pub(crate) const FOLDER: &str = "umpire-wal";

/// One change, as it is framed (borrowed from the caller's values).
#[derive(Debug, Serialize)]
pub(crate) enum OpRef<'a> {
    Create(StreamId, &'a StreamMeta),
    Write(&'a Write),
    Status(StreamId, StreamStatus, u64),
    Remove(&'a [StreamId]),
    Wake(StreamId, Option<Wake>),
    Key(&'a str, KeyEntry),
    Snapshot(StreamId, Seq, &'a ByteSlice),
    SaveSession(&'a str, &'a SessionEntry),
    TakeSession(&'a str),
    /// Written by a probe of the disk; nothing to replay.
    Probe(&'a ByteSlice),
}

/// One change, read back. The same shape as [`OpRef`].
#[derive(Debug, Deserialize)]
pub(crate) enum Op {
    Create(StreamId, StreamMeta),
    Write(Write),
    Status(StreamId, StreamStatus, u64),
    Remove(Vec<StreamId>),
    Wake(StreamId, Option<Wake>),
    Key(String, KeyEntry),
    Snapshot(StreamId, Seq, ByteBuf),
    SaveSession(String, SessionEntry),
    TakeSession(String),
    Probe(serde::de::IgnoredAny),
}

/// Frame `op` onto `out`.
fn frame(op: &OpRef<'_>, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    if let Err(e) = rmp_serde::encode::write(out, op) {
        out.truncate(start);
        return Err(std::io::Error::other(format!("a change could not be framed: {e}")).into());
    }
    let payload = &out[start + 8..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Read the frames of one segment: every whole one up to the first torn or damaged frame.
fn unframe(bytes: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 8) else {
            break;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(op) = rmp_serde::from_slice::<Op>(payload) else {
            break;
        };
        ops.push(op);
        at += 8 + len;
    }
    ops
}

/// The segment being written.
#[derive(Debug)]
struct Segment {
    file: File,
    number: u64,
    len: u64,
    /// A write or sync failed: the frames it held are durable only once sled is, so nothing
    /// is appended before a checkpoint.
    broken: bool,
    /// The file may end in part of a frame: nothing is appended to it any more.
    torn: bool,
}

/// The write-ahead file of one sled folder. See the module's notes.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Lock order: `segment`, then `pending`. `None` until [`Wal::restart`].
    segment: Mutex<Option<Segment>>,
    pending: Mutex<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both hold plain data whose every state is valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((number, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Every change the segments in `dir` hold, oldest first. A damaged frame ends its segment:
/// it is a write torn by a crash or a failed write, after which nothing was appended to that
/// segment (the next sync makes a checkpoint and a new segment instead).
pub(crate) fn read_all(dir: &Path) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for (_, path) in segments(dir)? {
        let bytes = std::fs::read(path)?;
        ops.append(&mut unframe(&bytes));
    }
    Ok(ops)
}

fn create_segment(dir: &Path, number: u64) -> Result<Segment> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(segment_path(dir, number))?;
    sync_dir(dir)?;
    Ok(Segment {
        file,
        number,
        len: 0,
        broken: false,
        torn: false,
    })
}

impl Wal {
    /// The write-ahead file in `dir`, not writing yet: its segments are replayed first, then
    /// [`Wal::restart`].
    pub(crate) fn new(dir: PathBuf) -> Wal {
        Wal {
            dir,
            segment: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// The folder of the segments.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start writing afresh once the segments were replayed into sled and sled synced: a
    /// new segment, the older ones deleted. What was buffered is dropped with the opening it
    /// was applied to.
    pub(crate) fn restart(&self) -> Result<()> {
        let mut segment = lock(&self.segment);
        lock(&self.pending).clear();
        std::fs::create_dir_all(&self.dir)?;
        let next = segments(&self.dir)?
            .last()
            .map(|(n, _)| n + 1)
            .into_iter()
            .chain(segment.as_ref().map(|s| s.number + 1))
            .max()
            .unwrap_or(1);
        *segment = Some(create_segment(&self.dir, next)?);
        remove_before(&self.dir, next)
    }

    /// Frame `op`, applied to sled already, for the next sync. Returns whether so much waits
    /// that the caller should sync now.
    ///
    /// # Errors
    /// The change could not be encoded (a bug): it would not be durable.
    pub(crate) fn append(&self, op: &OpRef<'_>) -> Result<bool> {
        let mut pending = lock(&self.pending);
        frame(op, &mut pending)?;
        Ok(pending.len() >= PENDING_BYTES)
    }

    /// Make every change appended before the call durable: write them to the segment and
    /// `fdatasync` it. `flush_sled` flushes and syncs sled; it runs for a checkpoint, when the
    /// segment is full or broken.
    pub(crate) fn sync(&self, flush_sled: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut guard = lock(&self.segment);
        let buf = std::mem::take(&mut *lock(&self.pending));
        let Some(segment) = guard.as_mut() else {
            return Err(std::io::Error::other("the write-ahead file is not open").into());
        };
        if segment.broken {
            // What `buf` holds is in sled, and the checkpoint makes sled durable.
            return self.checkpoint(segment, flush_sled);
        }
        if !buf.is_empty() {
            let written = segment
                .file
                .write_all(&buf)
                .and_then(|()| segment.file.sync_data());
            if let Err(e) = written {
                segment.broken = true;
                segment.torn = true;
                return Err(e.into());
            }
            segment.len += buf.len() as u64;
        }
        if segment.len >= SEGMENT_BYTES {
            self.checkpoint(segment, flush_sled)?;
        }
        Ok(())
    }

    /// A new segment (unless this one is whole and empty), then sled made durable, then the
    /// older segments deleted.
    fn checkpoint(
        &self,
        segment: &mut Segment,
        flush_sled: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if segment.torn || segment.len > 0 {
            let next = create_segment(&self.dir, segment.number + 1)?;
            // Changes appended from here on go to the new segment (some of them may be in
            // sled already: replaying them again is harmless).
            let broken = segment.broken;
            *segment = next;
            segment.broken = broken;
        }
        flush_sled()?;
        segment.broken = false;
        remove_before(&self.dir, segment.number)
    }
}

/// `fsync` a directory, so that the files created or removed in it stay so after a power loss.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Delete the segments numbered below `number`, and make that durable.
fn remove_before(dir: &Path, number: u64) -> Result<()> {
    let mut any = false;
    for (n, path) in segments(dir)? {
        if n < number {
            std::fs::remove_file(path)?;
            any = true;
        }
    }
    if any {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> StreamMeta {
        StreamMeta {
            kind: "tally".into(),
            created: 7,
            status: StreamStatus::Live,
            creator: "ann".into(),
            invite: None,
            finished: None,
        }
    }

    #[test]
    fn frames_read_back_and_a_torn_or_damaged_tail_ends_them() {
        let m = meta();
        let w = Write::append(3, 4, vec![bytes::Bytes::from_static(b"rec")]);
        let mut buf = Vec::new();
        frame(&OpRef::Create(3, &m), &mut buf).unwrap();
        let first = buf.len();
        frame(&OpRef::Write(&w), &mut buf).unwrap();
        let mut ops = unframe(&buf);
        assert_eq!(ops.len(), 2);
        assert!(matches!(&ops[0], Op::Create(3, read) if *read == m));
        assert!(matches!(ops.pop(), Some(Op::Write(back)) if back == w));
        for cut in 1..buf.len() {
            // A cut anywhere in the second frame keeps the first, whole, and nothing more.
            assert_eq!(
                unframe(&buf[..cut]).len(),
                usize::from(cut >= first),
                "cut at {cut}"
            );
        }
        let mut damaged = buf.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x40;
        assert_eq!(unframe(&damaged).len(), 1);
    }
}
