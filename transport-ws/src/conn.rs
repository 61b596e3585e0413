//! The native protocol over a WebSocket: JSON text frames, or MessagePack binary frames when
//! the client asked for `umpire.msgpack`. One task per connection reads the client into its
//! hub session and writes what the session gives back. It translates and nothing more:
//! sessions, games and rules live in the hub.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use umpire_engine::protocol::{
    decode_json, decode_msgpack, encode_json, encode_msgpack, ClientMsg, CloseCode, DecodeError,
    ErrorCode,
};
use umpire_hub::{Frame, Outgoing, Session};

use crate::limits::Verdict;
use crate::socket::{Inbound, Socket};

/// How the native protocol is written on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// JSON text frames (`umpire.json`, the default).
    Json,
    /// MessagePack binary frames (`umpire.msgpack`).
    MsgPack,
}

/// How a connection ends.
#[derive(Debug)]
pub(crate) enum End {
    /// The client went away, or stopped taking what is written to it.
    Gone,
    /// The server closes, with this code and reason.
    Close(CloseCode, String),
}

impl End {
    /// Say at `info` how the connection of `session` ended.
    pub(crate) fn log(&self, session: umpire_hub::SessionId) {
        match self {
            End::Gone => tracing::info!(%session, "connection closed by the client"),
            End::Close(code, reason) => {
                tracing::info!(%session, code = code.code(), reason = %reason, "connection closed");
            }
        }
    }
}

/// The most frames written before one flush: a burst goes out in few writes, and reading the
/// client is never starved.
pub(crate) const BATCH: usize = 64;

/// Serve one native-protocol connection until either side ends it.
#[allow(clippy::manual_async_fn)] // deliberately not an async fn: see the body
pub(crate) fn serve<S>(
    mut socket: Socket<S>,
    mut session: Box<Session>,
    encoding: Encoding,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // An async block, not an async fn: an async fn's future keeps its arguments twice (as
    // passed and as moved into its body), a kilobyte more for every connection. The session
    // comes boxed: inline, it made the task a size class larger than the two apart.
    async move {
        let end = loop {
            tokio::select! {
                biased;
                out = session.next() => {
                    let encode = |frame, _: &mut Session| {
                        encode(frame, encoding).map(Some).ok_or_else(|| {
                            End::Close(CloseCode::Internal, "an event could not be encoded".into())
                        })
                    };
                    if let Err(end) = write_batch(&mut socket, &mut session, out, encode).await {
                        break end;
                    }
                }
                inbound = socket.recv(), if session.ready_for_input() => {
                    let decoded = match inbound {
                        Inbound::Text(text) => decode_json(text.as_str()),
                        Inbound::Binary(bytes) => decode_msgpack(&bytes),
                        Inbound::Gone => break End::Gone,
                        Inbound::Violation(code, reason) => break End::Close(code, reason),
                    };
                    if let Err(end) = admit(&mut socket, &mut session, decoded).await {
                        break end;
                    }
                }
            }
        };
        end.log(session.id());
        if let End::Close(code, reason) = end {
            // Boxed: its timers take room only when a connection closes.
            Box::pin(socket.close(code, &reason)).await;
        }
    }
}

/// Hand a decoded message to the session, within the rate limit. Decoded before the limit
/// applies, so that a refusal can echo the message's `ref`.
async fn admit<S>(
    socket: &mut Socket<S>,
    session: &mut Session,
    decoded: Result<ClientMsg, DecodeError>,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let r#ref = decoded.as_ref().ok().and_then(|m| m.reference().cloned());
    if within_rate(socket, session, r#ref)? {
        match decoded {
            Ok(msg) => session.handle(msg).await,
            Err(e) => session.refuse(ErrorCode::BadMessage, e.to_string(), None),
        }
    }
    Ok(())
}

/// What the client sent, for a protocol layer that takes every message the same way (the
/// tutorial's, ws4redis's): its text or bytes, counted against the rate limit first; `None`
/// when the rate limit refused it; an error when the connection ends.
pub(crate) fn counted<S>(
    socket: &mut Socket<S>,
    session: &mut Session,
    inbound: Inbound,
) -> Result<Option<Inbound>, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match inbound {
        Inbound::Gone => Err(End::Gone),
        Inbound::Violation(code, reason) => Err(End::Close(code, reason)),
        // Every message counts against the rate limit, even one that never reaches the hub.
        message => Ok(within_rate(socket, session, None)?.then_some(message)),
    }
}

/// Count one message against the rate limit: `true` to take it; `false` when it was refused
/// (answered with `rate_limited`, echoing `ref`); an error when the client keeps at it and is
/// closed with 1008.
pub(crate) fn within_rate<S>(
    socket: &mut Socket<S>,
    session: &mut Session,
    r#ref: Option<serde_json::Value>,
) -> Result<bool, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match socket.admit() {
        Verdict::Allow => Ok(true),
        Verdict::Refuse => {
            let message = format!("more than {} messages a second; slow down", socket.rate());
            session.refuse(ErrorCode::RateLimited, message, r#ref);
            Ok(false)
        }
        Verdict::Abuse => Err(End::Close(
            CloseCode::Policy,
            "rate limit exceeded again and again".into(),
        )),
    }
}

/// Write `first` and whatever else the session has ready (up to [`BATCH`]), each turned
/// into a message by `encode` (which may find nothing to send, and may hand the session more
/// requests), then flush once.
pub(crate) async fn write_batch<S>(
    socket: &mut Socket<S>,
    session: &mut Session,
    first: Outgoing,
    mut encode: impl FnMut(Frame, &mut Session) -> Result<Option<Message>, End>,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut out = Some(first);
    let mut written = 0;
    while let Some(next) = out.take() {
        match next {
            Outgoing::Frame(frame) => {
                if let Some(message) = encode(frame, session)? {
                    socket.feed(message).await.map_err(|_| End::Gone)?;
                }
            }
            Outgoing::Close(code, reason) => {
                let _ = socket.flush().await;
                return Err(End::Close(code, reason));
            }
        }
        written += 1;
        if written < BATCH {
            out = session.try_next();
            if out.is_none() && session.reading() {
                // What follows needs a page of the log: read it now, and send it in this
                // batch rather than the next (one write to the socket, not two).
                session.read_ahead().await;
                out = session.try_next();
            }
        }
    }
    socket.flush().await.map_err(|_| End::Gone)
}

/// A frame in the connection's encoding. Events share their one encoding per format.
fn encode(frame: Frame, encoding: Encoding) -> Option<Message> {
    Some(match (encoding, frame) {
        (Encoding::Json, Frame::Msg(msg)) => Message::text(encode_json(&*msg)),
        (Encoding::MsgPack, Frame::Msg(msg)) => Message::binary(encode_msgpack(&*msg)),
        (Encoding::Json, Frame::Event(event)) => {
            Message::Text(Utf8Bytes::try_from(event.json()?).ok()?)
        }
        (Encoding::MsgPack, Frame::Event(event)) => Message::Binary(event.msgpack()?),
    })
}
