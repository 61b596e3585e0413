//! The load generator's side of the wire: connecting, encoding requests, and telling frames
//! apart cheaply (the clients share one core, and must not be what is measured).

use std::net::SocketAddr;

use anyhow::{bail, Context as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use umpire_engine::protocol::{
    decode_server_msgpack, encode_json, encode_msgpack, ClientMsg, ServerMsg,
};

/// A load client's connection.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Which protocol the clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Proto {
    /// Native protocol, JSON text frames.
    Json,
    /// Native protocol, MessagePack binary frames.
    Msgpack,
    /// The Connect Four protocol of the `websockets` tutorial.
    Tutorial,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Json => "json",
            Proto::Msgpack => "msgpack",
            Proto::Tutorial => "tutorial",
        }
    }
}

/// Open a WebSocket to `addr` speaking `proto`.
pub(crate) async fn connect(addr: SocketAddr, proto: Proto) -> anyhow::Result<Ws> {
    let path = if proto == Proto::Tutorial {
        "/tutorial"
    } else {
        "/ws"
    };
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    if proto == Proto::Msgpack {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("umpire.msgpack"),
        );
    }
    // Thousands of these live in one process: keep their buffers small.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .context("WebSocket handshake")?;
    Ok(ws)
}

/// A native request as a frame of `proto`.
pub(crate) fn native(proto: Proto, msg: &ClientMsg) -> Message {
    match proto {
        Proto::Msgpack => Message::binary(encode_msgpack(msg)),
        _ => Message::text(encode_json(msg)),
    }
}

/// What a frame says, as far as the load generator cares.
#[derive(Debug)]
pub(crate) enum Seen {
    /// A native event.
    Event { game: u64, seq: u64 },
    /// Any other native message, decoded whole.
    Reply(Box<ServerMsg>),
    /// A tutorial `play`.
    Play,
    /// A tutorial `init` with the keys to share.
    Init { join: String, watch: String },
    /// A tutorial `error`.
    TutorialError(String),
    /// Pings, pongs, a tutorial `win`: nothing to count.
    Other,
    /// The server closed the connection.
    Closed,
}

/// Classify one frame. Events take a fast path that reads only `game` and `seq`.
pub(crate) fn classify(proto: Proto, message: &Message) -> anyhow::Result<Seen> {
    match (proto, message) {
        (Proto::Tutorial, Message::Text(text)) => {
            let bytes = text.as_bytes();
            // Any server's JSON: umpire's compact, Python's with a space after the colon.
            if find(bytes, b"\"type\":\"play\"").is_some()
                || find(bytes, b"\"type\": \"play\"").is_some()
            {
                return Ok(Seen::Play);
            }
            let value: serde_json::Value = serde_json::from_str(text.as_str())?;
            match value["type"].as_str() {
                Some("play") => Ok(Seen::Play),
                Some("init") => Ok(Seen::Init {
                    join: value["join"]
                        .as_str()
                        .context("init without join")?
                        .to_owned(),
                    watch: value["watch"]
                        .as_str()
                        .context("init without watch")?
                        .to_owned(),
                }),
                Some("error") => Ok(Seen::TutorialError(value["message"].to_string())),
                _ => Ok(Seen::Other),
            }
        }
        (_, Message::Text(text)) => {
            let bytes = text.as_bytes();
            if find(bytes, b"\"type\":\"event\"").is_some() {
                let game = json_number_after(bytes, b"\"game\":").context("event without game")?;
                let seq = json_number_after(bytes, b"\"seq\":").context("event without seq")?;
                return Ok(Seen::Event { game, seq });
            }
            Ok(reply_or_news(serde_json::from_str(text.as_str())?))
        }
        (_, Message::Binary(bytes)) => {
            if find(bytes, b"\xa5event").is_some() {
                let game = msgpack_uint_after(bytes, b"\xa4game").context("event without game")?;
                let seq = msgpack_uint_after(bytes, b"\xa3seq").context("event without seq")?;
                return Ok(Seen::Event { game, seq });
            }
            Ok(reply_or_news(decode_server_msgpack(bytes)?))
        }
        (_, Message::Close(_)) => Ok(Seen::Closed),
        _ => Ok(Seen::Other),
    }
}

/// A native message that is not an event: a reply, or news the server sends unasked (a
/// spectator count, a rematch), which no load step waits for.
fn reply_or_news(msg: ServerMsg) -> Seen {
    match msg {
        ServerMsg::Audience { .. } | ServerMsg::Rematch { .. } => Seen::Other,
        reply => Seen::Reply(Box::new(reply)),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first number right after `key` (occurrences followed by something else are skipped:
/// `"game":` also names the body of a game event).
fn json_number_after(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], key) {
        let start = from + at + key.len();
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            return std::str::from_utf8(&bytes[start..start + digits])
                .ok()?
                .parse()
                .ok();
        }
        from = start;
    }
    None
}

/// The first MessagePack unsigned integer right after `key`.
fn msgpack_uint_after(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], key) {
        let start = from + at + key.len();
        let rest = &bytes[start..];
        let be = |n: usize| -> Option<u64> {
            let slice = rest.get(1..=n)?;
            Some(slice.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
        };
        let value = match rest.first() {
            Some(&b) if b <= 0x7f => Some(u64::from(b)),
            Some(0xcc) => be(1),
            Some(0xcd) => be(2),
            Some(0xce) => be(4),
            Some(0xcf) => be(8),
            _ => None,
        };
        if value.is_some() {
            return value;
        }
        from = start;
    }
    None
}

/// A request's answer that is not what was asked for.
pub(crate) fn unexpected(what: &str, seen: &Seen) -> anyhow::Error {
    anyhow::anyhow!("waiting for {what}, got {seen:?}")
}

/// Fail unless the frame is the expected reply.
pub(crate) fn expect_reply(seen: Seen, what: &str) -> anyhow::Result<ServerMsg> {
    match seen {
        Seen::Reply(msg) if !matches!(*msg, ServerMsg::Error { .. }) => Ok(*msg),
        other => bail!("{}", unexpected(what, &other)),
    }
}

/// The next native reply on `ws` (JSON), skipping events and news.
pub(crate) async fn next_reply(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    use futures_util::StreamExt;
    loop {
        let frame = ws.next().await.context("the server closed")??;
        match classify(Proto::Json, &frame)? {
            Seen::Reply(msg) => return Ok(*msg),
            Seen::Closed => bail!("the server closed"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use umpire_engine::protocol::GameId;

    #[test]
    fn news_the_server_sends_unasked_is_no_reply() {
        let audience = ServerMsg::Audience {
            game: GameId(3),
            spectators: 9,
        };
        let text = Message::text(serde_json::to_string(&audience).unwrap_or_default());
        assert!(matches!(classify(Proto::Json, &text), Ok(Seen::Other)));
        let pong = ServerMsg::Pong {
            now: 1,
            r#ref: None,
        };
        let text = Message::text(serde_json::to_string(&pong).unwrap_or_default());
        assert!(matches!(classify(Proto::Json, &text), Ok(Seen::Reply(_))));
    }

    #[test]
    fn events_are_read_in_both_formats_and_any_key_order() {
        let event = ServerMsg::Event {
            game: GameId(300),
            env: json!({"seq": 70_000, "at": 5, "body": {"game": {"column": 3}}}),
        };
        for proto in [Proto::Json, Proto::Msgpack] {
            let seen = classify(proto, &native_server(proto, &event)).unwrap();
            assert!(
                matches!(
                    seen,
                    Seen::Event {
                        game: 300,
                        seq: 70_000
                    }
                ),
                "{proto:?}: {seen:?}"
            );
        }
        let sorted = r#"{"env":{"body":{"game":{"column":3}},"seq":9},"game":4,"type":"event"}"#;
        let seen = classify(Proto::Json, &Message::text(sorted)).unwrap();
        assert!(matches!(seen, Seen::Event { game: 4, seq: 9 }), "{seen:?}");
    }

    fn native_server(proto: Proto, msg: &ServerMsg) -> Message {
        match proto {
            Proto::Msgpack => Message::binary(encode_msgpack(msg)),
            _ => Message::text(encode_json(msg)),
        }
    }
}
