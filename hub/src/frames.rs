//! Encoded events, shared by every subscriber.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use umpire_engine::protocol::{encode_json, encode_msgpack, GameId, ServerMsg};
use umpire_engine::Seq;

use crate::error::{HubError, Result};

/// One logged event, shared (behind an `Arc`) by every connection that receives it, and
/// encoded at most once per wire format: by the first connection that needs that format.
///
/// Built from the record's bytes as stored, so a live event and the same event replayed from
/// the log later are byte-for-byte the same frame.
#[derive(Debug)]
pub struct Published {
    /// The game.
    pub game: GameId,
    /// The event's seq.
    pub seq: Seq,
    msg: ServerMsg,
    json: OnceLock<Bytes>,
    msgpack: OnceLock<Bytes>,
}

impl Published {
    /// Encode a stored record (a MessagePack envelope) for the wire.
    ///
    /// # Errors
    /// [`HubError::Store`] if the record does not decode: the log is corrupt.
    pub fn from_record(game: GameId, seq: Seq, record: &[u8]) -> Result<Arc<Self>> {
        let env: Value = rmp_serde::from_slice(record)
            .map_err(|e| HubError::Store(format!("game {game} seq {seq} does not decode: {e}")))?;
        Ok(Arc::new(Published {
            game,
            seq,
            msg: ServerMsg::Event { game, env },
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        }))
    }

    /// `{"type":"event","game":..,"env":{..}}` as UTF-8 JSON text. Cloning the `Bytes` shares
    /// the encoding; nothing is copied per connection.
    pub fn json(&self) -> &Bytes {
        self.json
            .get_or_init(|| Bytes::from(encode_json(&self.msg)))
    }

    /// The same message as MessagePack with field names.
    pub fn msgpack(&self) -> &Bytes {
        self.msgpack
            .get_or_init(|| Bytes::from(encode_msgpack(&self.msg)))
    }

    /// The message itself, for in-process clients.
    pub fn message(&self) -> &ServerMsg {
        &self.msg
    }
}

/// What a session hands its transport to send.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A message for this connection alone (an answer, an error).
    Msg(ServerMsg),
    /// A game event, shared with other connections.
    Event(Arc<Published>),
}
