//! The native wire protocol: what clients send ([`ClientMsg`]) and what they receive
//! ([`ServerMsg`]), as serde types. No bytes and no sockets here; the codecs below are plain
//! functions the transports call.
//!
//! Both directions are objects tagged by `type`. Every client message may carry `ref`, which
//! the answer echoes. The same field names are used in JSON and in MessagePack.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::game::{Millis, Seat, Seq};

/// A game (or any stream) as clients name it: a number on the wire.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GameId(pub u64);

crate::ids::number!(GameId);

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Authenticate the connection with a bearer token (a JWT).
    Hello {
        /// The token.
        token: String,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Start a game of `kind` and take its first seat.
    Create {
        /// A registered game kind, such as `connect4`.
        kind: String,
        /// The game's config; absent or `null` means its default.
        #[serde(default, skip_serializing_if = "Value::is_null")]
        config: Value,
        /// List the game among the kind's open games while it has a free seat (default:
        /// private, shared only by its join key).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        open: bool,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Quick play: a seat in a game of `kind` and `config`, answered `joined` (the open game
    /// that has waited longest with a free seat) or `created` (a new open game, in which you
    /// wait). With a matchmaker for the kind, you wait until it puts you in a group.
    Play {
        /// A registered game kind, such as `connect4`.
        kind: String,
        /// The game's config; absent or `null` means its default. Only games of the same
        /// config are shared.
        #[serde(default, skip_serializing_if = "Value::is_null")]
        config: Value,
        /// What the kind's matchmaker goes by (a rating, a region, a party); ignored without
        /// one. At most 4 KiB.
        #[serde(default, skip_serializing_if = "Value::is_null")]
        props: Value,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Stop waiting to play: every `play` of this connection (of `kind`, if given) not seated
    /// yet is answered `cancelled`, and a quick-play game it waits in alone is left.
    Cancel {
        /// Only the plays of this kind.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Take a seat with a join key, or take back your seat with a seat token.
    Join {
        /// A join key or a seat token.
        key: String,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Spectate with a watch key: every past event from `from` (default 1), then live ones.
    Watch {
        /// A watch key.
        key: String,
        /// The first seq wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Seq>,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// A game command from the seat this connection holds in `game`.
    Command {
        /// The game.
        game: GameId,
        /// The game's command, in the game's own format.
        cmd: Value,
        /// A client id for the command: a retry with the same id is applied once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Give up your seat in `game` and stop receiving its events.
    Leave {
        /// The game.
        game: GameId,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Subscribe to a channel (`broadcast`, `user:<id>`, `group:<name>`, `session`).
    Subscribe {
        /// The channel's name.
        channel: String,
        /// The first seq wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Seq>,
        /// Instead of `from`: start with the channel's last `last` notices (0: only what is
        /// published from now on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<u32>,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// After a game ended: play it again with the same players. The first to ask creates the
    /// new game (answered `created`) and everyone in the old one is told (`rematch`); the
    /// others ask too and take a seat in it (answered `joined`).
    Rematch {
        /// The finished game.
        game: GameId,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Take back a session after a disconnect (or a server restart): its identity, seats,
    /// games watched, each from just after the seq given in `seen`. Answered by `resumed`.
    Resume {
        /// The session token the last connection was given.
        session: String,
        /// The last seq received per game (by id, as a string key); a game not named starts
        /// from seq 1.
        #[serde(default)]
        seen: std::collections::BTreeMap<String, Seq>,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// Are you there? Answered by `pong`.
    Ping {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
}

impl ClientMsg {
    /// The client's `ref`, to echo.
    pub fn reference(&self) -> Option<&Value> {
        match self {
            ClientMsg::Hello { r#ref, .. }
            | ClientMsg::Create { r#ref, .. }
            | ClientMsg::Play { r#ref, .. }
            | ClientMsg::Cancel { r#ref, .. }
            | ClientMsg::Join { r#ref, .. }
            | ClientMsg::Watch { r#ref, .. }
            | ClientMsg::Command { r#ref, .. }
            | ClientMsg::Leave { r#ref, .. }
            | ClientMsg::Subscribe { r#ref, .. }
            | ClientMsg::Resume { r#ref, .. }
            | ClientMsg::Rematch { r#ref, .. }
            | ClientMsg::Ping { r#ref, .. } => r#ref.as_ref(),
        }
    }

    /// Set the `ref` the answer will echo.
    pub fn set_reference(&mut self, value: Value) {
        *self.reference_slot() = Some(value);
    }

    fn reference_slot(&mut self) -> &mut Option<Value> {
        match self {
            ClientMsg::Hello { r#ref, .. }
            | ClientMsg::Create { r#ref, .. }
            | ClientMsg::Play { r#ref, .. }
            | ClientMsg::Cancel { r#ref, .. }
            | ClientMsg::Join { r#ref, .. }
            | ClientMsg::Watch { r#ref, .. }
            | ClientMsg::Command { r#ref, .. }
            | ClientMsg::Leave { r#ref, .. }
            | ClientMsg::Subscribe { r#ref, .. }
            | ClientMsg::Resume { r#ref, .. }
            | ClientMsg::Rematch { r#ref, .. }
            | ClientMsg::Ping { r#ref, .. } => r#ref,
        }
    }

    /// What both decoders do after parsing, so that they accept the same messages: a `ref` of
    /// null is no `ref` (the answer echoes nothing either way; a MessagePack NaN also arrives
    /// as null, since JSON has no NaN), and values nest at most [`MAX_DEPTH`] deep.
    fn checked(mut self) -> Result<Self, DecodeError> {
        let slot = self.reference_slot();
        if slot.as_ref().is_some_and(Value::is_null) {
            *slot = None;
        }
        let values = [
            self.reference(),
            match &self {
                ClientMsg::Create { config, .. } => Some(config),
                ClientMsg::Play { config, props, .. } => {
                    if depth(props) > MAX_DEPTH {
                        return Err(DecodeError(format!(
                            "values may nest at most {MAX_DEPTH} deep"
                        )));
                    }
                    Some(config)
                }
                ClientMsg::Command { cmd, .. } => Some(cmd),
                _ => None,
            },
        ];
        if values.into_iter().flatten().any(|v| depth(v) > MAX_DEPTH) {
            return Err(DecodeError(format!(
                "values may nest at most {MAX_DEPTH} deep"
            )));
        }
        Ok(self)
    }
}

/// How deep the values in a client message (`ref`, `cmd`, `config`) may nest.
pub const MAX_DEPTH: usize = 32;

/// How deep `value` nests: 0 for a scalar, 1 for a flat array or object.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A message to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The connection is authenticated as `user`.
    Welcome {
        /// The authenticated user, or the guest name given to an anonymous connection.
        user: String,
        /// This connection's session token: `resume` with it after a disconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Echoes the `hello`'s ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// A game was created and you hold its first seat.
    Created {
        /// The new game.
        game: GameId,
        /// Its kind.
        kind: String,
        /// Share this to let someone take a seat.
        join: String,
        /// Share this to let someone watch.
        watch: String,
        /// Your seat.
        seat: Seat,
        /// Keep this to take your seat back after a disconnect.
        token: String,
        /// This connection's session token: `resume` with it after a disconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The server's clock when it answered, in ms since the epoch: show countdowns
        /// (`due`, `at`) against this, not against the client's clock or an old event's `at`.
        #[serde(default)]
        now: Millis,
        /// Echoes the `create`'s ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// You hold a seat in `game`.
    Joined {
        /// The game.
        game: GameId,
        /// Its kind.
        kind: String,
        /// Your seat.
        seat: Seat,
        /// Keep this to take your seat back after a disconnect.
        token: String,
        /// When a seat token took the seat back: the game's join key, to share again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        join: Option<String>,
        /// When a seat token took the seat back: the game's watch key, to share again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watch: Option<String>,
        /// This connection's session token: `resume` with it after a disconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The server's clock when it answered, in ms since the epoch: show countdowns
        /// (`due`, `at`) against this, not against the client's clock or an old event's `at`.
        #[serde(default)]
        now: Millis,
        /// Echoes the `join`'s ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// You are watching `game`; its events follow.
    Watching {
        /// The game.
        game: GameId,
        /// Its kind.
        kind: String,
        /// This connection's session token: `resume` with it after a disconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The server's clock when it answered, in ms since the epoch: show countdowns
        /// (`due`, `at`) against this, not against the client's clock or an old event's `at`.
        #[serde(default)]
        now: Millis,
        /// Echoes the `watch`'s ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// You are subscribed to `channel`; its notices follow as `event`s of stream `game`.
    Subscribed {
        /// The channel's full name (`session` becomes `session:<id>`).
        channel: String,
        /// The channel's stream: its notices arrive as `event`s with this `game`.
        game: GameId,
        /// This connection's session token: `resume` with it after a disconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The server's clock when it answered, in ms since the epoch.
        #[serde(default)]
        now: Millis,
        /// Echoes the `subscribe`'s ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// A session was taken back: its games' missed events follow, each game's from just after
    /// the seq the client said it saw.
    Resumed {
        /// The new session token (the old one is used up): `resume` with this one next time.
        session: String,
        /// Who this connection plays as again.
        user: String,
        /// The games taken back.
        games: Vec<ResumedGame>,
        /// Games of the session that are gone (pruned); the client should forget them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lost: Vec<GameId>,
        /// The server's clock when it answered, in ms since the epoch.
        #[serde(default)]
        now: Millis,
        /// Echoes the `resume`'s ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// One logged record of `game`. Sent in seq order, without gaps or repeats.
    Event {
        /// The game.
        game: GameId,
        /// The envelope: `{seq, at, by, cid?, body}`.
        env: Value,
    },
    /// The request succeeded. For a command, `seq` is the last seq it produced, already durable.
    Ok {
        /// The game concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        game: Option<GameId>,
        /// The last seq written, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
        /// Echoes the request's ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// The request failed. `code` is stable; `message` is for humans; `reason`, for a
    /// `rejected` command, is the game's rejection as data.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
        /// The game's rejection, serialized (`"not_your_turn"`, `{"overflow": 1}`), when the
        /// game's rules refused a command (`rejected`); otherwise absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Value>,
        /// Echoes the request's ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// The answer to `ping`.
    Pong {
        /// The server's clock when it answered, in ms since the epoch: show countdowns
        /// (`due`, `at`) against this, not against the client's clock or an old event's `at`.
        #[serde(default)]
        now: Millis,
        /// Echoes the ping's ref.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<Value>,
    },
    /// How many spectators watch `game` now. Not an event (it has no seq and is not in the
    /// log): sent to everyone in the game when the count changes, at most about once a
    /// second, and to whoever enters a watched game.
    Audience {
        /// The game.
        game: GameId,
        /// Connections watching it without a seat.
        spectators: u64,
    },
    /// A player of the finished `game` started a rematch, `next`: players send `rematch` to
    /// take their seat in it; anyone may watch it with `watch`.
    Rematch {
        /// The finished game.
        game: GameId,
        /// The new game.
        next: GameId,
        /// The new game's watch key.
        watch: String,
    },
    /// The server is going away; reconnect later with your seat token or watch key.
    Closing {
        /// Why.
        reason: String,
    },
}

impl ServerMsg {
    /// The `ref` this answer echoes; events and `closing` carry none.
    pub fn reference(&self) -> Option<&Value> {
        match self {
            ServerMsg::Welcome { r#ref, .. }
            | ServerMsg::Created { r#ref, .. }
            | ServerMsg::Joined { r#ref, .. }
            | ServerMsg::Watching { r#ref, .. }
            | ServerMsg::Resumed { r#ref, .. }
            | ServerMsg::Subscribed { r#ref, .. }
            | ServerMsg::Ok { r#ref, .. }
            | ServerMsg::Error { r#ref, .. }
            | ServerMsg::Pong { r#ref, .. } => r#ref.as_ref(),
            ServerMsg::Event { .. }
            | ServerMsg::Audience { .. }
            | ServerMsg::Rematch { .. }
            | ServerMsg::Closing { .. } => None,
        }
    }

    /// An error answer.
    pub fn error(code: ErrorCode, message: impl Into<String>, r#ref: Option<Value>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            reason: None,
            r#ref,
        }
    }
}

/// One game of a resumed session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumedGame {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// Your seat, if you play; absent if you watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<Seat>,
    /// Your seat token, if you play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The channel's name, if this stream is a channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// Stable error codes. Their meanings are in `docs/PROTOCOL.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message could not be parsed or has an unknown `type`.
    BadMessage,
    /// Authentication is required or the token is bad.
    Unauthorized,
    /// No such game, key or kind.
    NotFound,
    /// You may not do that (a spectator's command, a command to a game you have no seat in).
    Forbidden,
    /// The game's rules refused the command; the message says why.
    Rejected,
    /// Every seat is taken.
    Full,
    /// The game is over.
    GameOver,
    /// A `play` ended by `cancel` before the player was seated.
    Cancelled,
    /// Too many messages, or too many games created in a minute; slow down.
    RateLimited,
    /// A limit on what one client may hold is reached (games on one connection, live games
    /// of one user, games on the server); the message names it.
    LimitReached,
    /// The message is too large.
    TooLarge,
    /// The server is at capacity; try again later.
    Overloaded,
    /// The server failed; the request may not have been applied.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Rejected => "rejected",
            ErrorCode::Full => "full",
            ErrorCode::GameOver => "game_over",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
        }
    }
}

/// WebSocket close codes umpire uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: done.
    Normal,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1007: a text frame was not UTF-8.
    InvalidData,
    /// 1008: policy (bad token, sustained abuse, too far behind).
    Policy,
    /// 1009: a message exceeded the size limit.
    TooLarge,
    /// 1011: the server failed.
    Internal,
    /// 1013: the server is at capacity.
    TryAgainLater,
}

impl CloseCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::InvalidData => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooLarge => 1009,
            CloseCode::Internal => 1011,
            CloseCode::TryAgainLater => 1013,
        }
    }
}

/// Why bytes from a client are not a [`ClientMsg`]. Answered with `bad_message`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// A logged envelope (as JSON) as a client receives it from a game that hides nothing: the
/// same, without the rng seed of `created`. For tests and tools that compare what clients were
/// shown with the log.
pub fn as_shown(mut env: Value) -> Value {
    if let Some(created) = env
        .get_mut("body")
        .and_then(|b| b.get_mut("created"))
        .and_then(Value::as_object_mut)
    {
        created.remove("seed");
    }
    env
}

/// Parse a JSON text frame.
///
/// # Errors
/// [`DecodeError`] with serde's explanation (unknown `type`, missing field, bad JSON).
pub fn decode_json(text: &str) -> Result<ClientMsg, DecodeError> {
    serde_json::from_str::<ClientMsg>(text)
        .map_err(|e| DecodeError(e.to_string()))?
        .checked()
}

/// Parse a MessagePack binary frame.
///
/// # Errors
/// [`DecodeError`] with serde's explanation.
pub fn decode_msgpack(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    rmp_serde::from_slice::<ClientMsg>(bytes)
        .map_err(|e| DecodeError(e.to_string()))?
        .checked()
}

/// Parse a server message from MessagePack (for clients).
///
/// # Errors
/// [`DecodeError`] with serde's explanation.
pub fn decode_server_msgpack(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// Encode a server message as JSON text.
pub fn encode_json<T: Serialize>(msg: &T) -> String {
    // Serialising these types cannot fail: every map key is a string.
    serde_json::to_string(msg)
        .unwrap_or_else(|e| format!(r#"{{"type":"error","code":"internal","message":"{e}"}}"#))
}

/// Encode a server message as MessagePack with field names.
pub fn encode_msgpack<T: Serialize>(msg: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(msg).unwrap_or_default()
}

/// The fuzzing oracle for untrusted bytes: decoding never panics, and whatever decodes
/// survives a round trip through both codecs unchanged. Used by `fuzz/` and by a test that
/// replays the fuzz corpus on stable.
///
/// # Panics
/// When a decoded message does not round-trip: that is the bug the fuzzer looks for.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) {
    let mut decoded = Vec::new();
    if let Ok(text) = std::str::from_utf8(bytes) {
        decoded.extend(decode_json(text).ok());
    }
    decoded.extend(decode_msgpack(bytes).ok());
    for msg in decoded {
        let json = encode_json(&msg);
        let again = decode_json(&json)
            .unwrap_or_else(|e| panic!("{msg:?} encoded as {json} does not decode: {e}"));
        assert_eq!(again, msg, "JSON round trip changed the message");
        let packed = encode_msgpack(&msg);
        let again = decode_msgpack(&packed)
            .unwrap_or_else(|e| panic!("{msg:?} as MessagePack does not decode: {e}"));
        assert_eq!(again, msg, "MessagePack round trip changed the message");
    }
}
