//! Events as they go out: one [`Published`] per logged event, shared by every connection that
//! sends it, and encoded at most once per wire format, from the bytes the log stored.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;
use umpire_engine::protocol::{GameId, ServerMsg};
use umpire_engine::{Envelope, Game, Seq, Viewer};

/// A game kind's views, type-erased: what each viewer may see of a stored record.
pub(crate) trait Views: Send + Sync + std::fmt::Debug {
    /// Whether events other than `Created` may look different to different viewers.
    fn hides(&self) -> bool;
    /// `record` as `viewer` may see it; `None` if they see it as stored.
    fn view(&self, record: &[u8], viewer: Viewer) -> Option<Bytes>;
}

/// The views of game `G`: [`Envelope::viewed`].
#[derive(Debug)]
pub(crate) struct GameViews<G>(pub(crate) Arc<G>);

impl<G: Game> Views for GameViews<G> {
    fn hides(&self) -> bool {
        G::HIDES
    }

    fn view(&self, record: &[u8], viewer: Viewer) -> Option<Bytes> {
        // A record that does not decode is sent to no one (`Published::json` says so).
        let env: Envelope<G> = rmp_serde::from_slice(record).ok()?;
        let viewed = env.viewed(&self.0, viewer)?;
        match rmp_serde::to_vec_named(&viewed) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(e) => {
                tracing::error!(seq = %env.seq, error = %e, "a viewer's copy of an event does not encode");
                // Never the whole event instead: an empty record is sent to nobody.
                Some(Bytes::new())
            }
        }
    }
}

/// A wire format an event can be encoded in, each with a slot in every [`Published`].
///
/// JSON and MessagePack are the native protocol's; a transport with a protocol of its own (the
/// tutorial's, say) takes a custom slot, so its translation of an event is also made once and
/// shared by all its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format(usize);

impl Format {
    /// The native protocol as JSON text.
    pub const JSON: Format = Format(0);
    /// The native protocol as MessagePack with field names.
    pub const MSGPACK: Format = Format(1);
    /// How many custom formats there may be.
    pub const CUSTOM: usize = 2;

    /// Custom format `n` (0 or 1), for a transport's own protocol.
    ///
    /// # Panics
    /// If `n` is not below [`Format::CUSTOM`]: a programming error, caught when the
    /// transport's constant is evaluated.
    pub const fn custom(n: usize) -> Format {
        assert!(n < Self::CUSTOM, "only two custom formats");
        Format(2 + n)
    }
}

const SLOTS: usize = 2 + Format::CUSTOM;

/// One logged event of one game, as every subscriber receives it.
///
/// It holds the record exactly as the log stores it (a MessagePack envelope), so an event sent
/// live and the same event read back from the log later make the same frames. Each format is
/// encoded by the first connection that needs it; an event nobody watches is never encoded.
#[derive(Debug)]
pub struct Published {
    /// The game.
    pub game: GameId,
    /// The event's seq.
    pub seq: Seq,
    record: Bytes,
    encoded: [OnceLock<Option<Bytes>>; SLOTS],
    /// For a record some viewers see otherwise (a game's `Created`, with its seed; every event
    /// of a game that hides information): the game's views, and each viewer's copy once made
    /// (`None`: the same as this one).
    views: Option<(Arc<dyn Views>, Mutex<Copies>)>,
}

/// Each viewer's copy of an event, once made; `None`: the same as the event.
type Copies = Vec<(Viewer, Option<Arc<Published>>)>;

impl Published {
    /// The event at `seq` of `game`, stored as `record` (a MessagePack envelope).
    pub fn new(game: GameId, seq: Seq, record: Bytes) -> Arc<Self> {
        Arc::new(Published {
            game,
            seq,
            record,
            encoded: Default::default(),
            views: None,
        })
    }

    /// The event at `seq` of a game whose `views` say what each viewer may see: every viewer
    /// gets it through [`Published::for_viewer`].
    pub(crate) fn viewed(
        game: GameId,
        seq: Seq,
        record: Bytes,
        views: &Arc<dyn Views>,
    ) -> Arc<Self> {
        if seq != 1 && !views.hides() {
            return Self::new(game, seq, record);
        }
        Arc::new(Published {
            game,
            seq,
            record,
            encoded: Default::default(),
            views: Some((Arc::clone(views), Mutex::default())),
        })
    }

    /// This event as `viewer` may see it: itself, or their copy, made once per distinct viewer
    /// and shared by all their connections (with its encodings).
    pub(crate) fn for_viewer(self: Arc<Self>, viewer: Viewer) -> Arc<Published> {
        let Some((views, copies)) = &self.views else {
            return self;
        };
        let mut copies = crate::lock(copies);
        let copy = match copies.iter().find(|(v, _)| *v == viewer) {
            Some((_, copy)) => copy.clone(),
            None => {
                let copy = views
                    .view(&self.record, viewer)
                    .map(|record| Self::new(self.game, self.seq, record));
                copies.push((viewer, copy.clone()));
                copy
            }
        };
        drop(copies);
        copy.unwrap_or(self)
    }

    /// The stored envelope, MessagePack with field names.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// The envelope as a JSON value, for in-process clients and tools.
    ///
    /// # Errors
    /// The record does not decode (a corrupt log).
    pub fn envelope(&self) -> Result<Value, rmp_serde::decode::Error> {
        rmp_serde::from_slice(&self.record)
    }

    /// This event in `format`, made by `encode` the first time it is asked for; `None` if the
    /// format has nothing to say about it.
    pub fn encoded(
        &self,
        format: Format,
        encode: impl FnOnce(&Published) -> Option<Bytes>,
    ) -> Option<Bytes> {
        self.encoded[format.0].get_or_init(|| encode(self)).clone()
    }

    /// `{"type":"event","game":..,"env":{..}}` as UTF-8 JSON text; `None` only if the record
    /// is corrupt. Cloning the `Bytes` shares the encoding.
    pub fn json(&self) -> Option<Bytes> {
        self.encoded(Format::JSON, |p| {
            let mut out = format!(r#"{{"type":"event","game":{},"env":"#, p.game).into_bytes();
            let mut from = rmp_serde::Deserializer::from_read_ref(&p.record[..]);
            let mut to = serde_json::Serializer::new(&mut out);
            match serde_transcode::transcode(&mut from, &mut to) {
                Ok(()) => {
                    out.push(b'}');
                    Some(Bytes::from(out))
                }
                Err(e) => {
                    tracing::error!(game = %p.game, seq = %p.seq, error = %e, "a logged event does not decode");
                    None
                }
            }
        })
    }

    /// The same message as MessagePack: the stored envelope is spliced in as it is.
    pub fn msgpack(&self) -> Option<Bytes> {
        self.encoded(Format::MSGPACK, |p| {
            let mut out = BytesMut::with_capacity(p.record.len() + 24);
            out.put_u8(0x83); // a map of three entries
            out.put_slice(b"\xa4type\xa5event\xa4game");
            rmp::encode::write_uint(&mut (&mut out).writer(), p.game.0).ok()?;
            out.put_slice(b"\xa3env");
            out.put_slice(&p.record);
            Some(out.freeze())
        })
    }
}

/// What a session hands its transport to send.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A message for this connection alone (an answer, an error). Boxed: frames wait in
    /// queues, and most are the small `Event`.
    Msg(Box<ServerMsg>),
    /// A game event, shared with other connections.
    Event(Arc<Published>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use umpire_engine::protocol::{decode_server_msgpack, encode_msgpack};

    fn record() -> Bytes {
        let env = json!({"seq": 7, "at": 1_700_000_000_000u64, "by": {"seat": 1},
            "cid": "c-1", "body": {"game": {"player": "yellow", "column": 3, "row": 0, "f": -1.5}}});
        Bytes::from(rmp_serde::to_vec_named(&env).unwrap_or_default())
    }

    #[test]
    fn json_and_msgpack_frames_say_what_the_record_says() {
        let p = Published::new(GameId(300), Seq(7), record());
        let want = ServerMsg::Event {
            game: GameId(300),
            env: p.envelope().unwrap_or_default(),
        };
        let json: ServerMsg =
            serde_json::from_slice(&p.json().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json, want);
        let packed = decode_server_msgpack(&p.msgpack().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packed, want);
        // The spliced frame is byte for byte what encoding the message would give.
        assert_eq!(p.msgpack().unwrap_or_default(), encode_msgpack(&want));
    }

    #[test]
    fn each_format_is_encoded_once_and_shared() {
        let p = Published::new(GameId(1), Seq(1), record());
        let mut calls = 0;
        for _ in 0..3 {
            p.encoded(Format::custom(0), |_| {
                calls += 1;
                Some(Bytes::from_static(b"x"))
            });
        }
        assert_eq!(calls, 1);
        let (a, b) = (p.json().unwrap_or_default(), p.json().unwrap_or_default());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a copy");
    }

    #[test]
    fn a_corrupt_record_gives_no_frame() {
        let p = Published::new(GameId(1), Seq(1), Bytes::from_static(b"\xc1\xc1"));
        assert_eq!(p.json(), None);
    }

    /// Views that count the copies made, and show spectators the event as it is.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Views for Counting {
        fn hides(&self) -> bool {
            true
        }
        fn view(&self, record: &[u8], viewer: Viewer) -> Option<Bytes> {
            if viewer == Viewer::Spectator {
                return None;
            }
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(Bytes::copy_from_slice(record))
        }
    }

    #[test]
    fn a_viewer_s_copy_is_made_once_and_shared_by_their_connections() {
        let counting = Arc::new(Counting::default());
        let views: Arc<dyn Views> = counting.clone();
        let p = Published::viewed(GameId(1), Seq(7), record(), &views);
        let seat = Viewer::Seat(umpire_engine::Seat(0));
        let (first, second) = (p.clone().for_viewer(seat), p.clone().for_viewer(seat));
        assert!(Arc::ptr_eq(&first, &second), "two copies for one viewer");
        assert!(!Arc::ptr_eq(&first, &p));
        assert_eq!(first.json(), second.json());
        let other = p.clone().for_viewer(Viewer::Seat(umpire_engine::Seat(1)));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 2);
        // Shown as it is: the event itself, no copy.
        assert!(Arc::ptr_eq(&p.clone().for_viewer(Viewer::Spectator), &p));
    }
}
