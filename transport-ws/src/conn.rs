//! One WebSocket connection as the hub sees it: frames in, protocol messages out, and back.
//! The reader enforces the limits (size, rate, heartbeat); the writer picks the encoding the
//! client asked for. Sessions, games and rules stay in the hub.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use umpire_engine::protocol::{
    decode_json, decode_msgpack, encode_json, encode_msgpack, CloseCode, ErrorCode,
};
use umpire_hub::{
    Closed, Connection, ConnectionReader, ConnectionWriter, Frame, Incoming, Metrics, Peer,
};

use crate::config::WsConfig;
use crate::limits::{TokenBucket, Verdict};
use crate::tutorial::{self, Link, Refusal};

/// How this connection's messages are written.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    /// Native protocol, JSON text frames (`umpire.json`, the default).
    Json,
    /// Native protocol, MessagePack binary frames (`umpire.msgpack`).
    MsgPack,
    /// The tutorial's Connect Four protocol.
    Tutorial(Link),
}

/// Holds a place under `max_connections` until both halves of the connection are gone.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) open: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.metrics.connections_open.dec();
    }
}

type Sink<S> = Arc<Mutex<SplitSink<WebSocketStream<S>, Message>>>;

/// An upgraded WebSocket, ready to hand to the hub.
pub(crate) struct WsConnection<S> {
    pub(crate) ws: WebSocketStream<S>,
    pub(crate) codec: Codec,
    pub(crate) peer: Peer,
    pub(crate) config: Arc<WsConfig>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) slot: Slot,
}

impl<S> Connection for WsConnection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn peer(&self) -> Peer {
        self.peer.clone()
    }

    fn split(self: Box<Self>) -> (Box<dyn ConnectionReader>, Box<dyn ConnectionWriter>) {
        let (sink, stream) = self.ws.split();
        let sink = Arc::new(Mutex::new(sink));
        let slot = Arc::new(self.slot);
        let first = tokio::time::Instant::now() + self.config.ping_every;
        let mut ping = tokio::time::interval_at(first, self.config.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reader = WsReader {
            stream,
            sink: Arc::clone(&sink),
            codec: self.codec.clone(),
            bucket: TokenBucket::new(self.config.rate_per_sec, self.config.rate_burst),
            last_seen: tokio::time::Instant::now(),
            ping,
            config: Arc::clone(&self.config),
            metrics: Arc::clone(&self.metrics),
            _slot: Arc::clone(&slot),
        };
        let writer = WsWriter {
            sink,
            codec: self.codec,
            metrics: self.metrics,
            _slot: slot,
        };
        (Box::new(reader), Box::new(writer))
    }
}

struct WsReader<S> {
    stream: SplitStream<WebSocketStream<S>>,
    /// Shared with the writer: the reader sends pings and the closes for limits it enforces.
    sink: Sink<S>,
    codec: Codec,
    bucket: Option<TokenBucket>,
    last_seen: tokio::time::Instant,
    ping: tokio::time::Interval,
    config: Arc<WsConfig>,
    metrics: Arc<Metrics>,
    _slot: Arc<Slot>,
}

async fn close<S>(sink: &Sink<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: WsCloseCode::from(code.code()),
        reason: Utf8Bytes::from(reason),
    };
    let mut sink = sink.lock().await;
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.flush().await;
}

impl<S> WsReader<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Close with `code` and wait (briefly) for the client's close, reading and discarding
    /// whatever it still sends: dropping a socket with unread data resets it, and the reset
    /// can destroy the close frame before the client reads it.
    async fn close_and_drain(&mut self, code: CloseCode, reason: &str) {
        close(&self.sink, code, reason).await;
        let drain = async {
            while let Some(Ok(message)) = self.stream.next().await {
                if matches!(message, Message::Close(_)) {
                    return;
                }
            }
            // The stream gave up (after an oversized frame tungstenite cannot read on, and the
            // rest of that frame is unread). Hold the socket until the timeout so the client
            // reads our close frame before the reset that dropping it now would cause.
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }

    /// Apply the rate limit to one decoded message: pass it, refuse it (echoing its `ref`), or
    /// close the connection (`None`).
    async fn admit(&mut self, incoming: Incoming) -> Option<Incoming> {
        let Some(bucket) = &mut self.bucket else {
            return Some(incoming);
        };
        match bucket.check(Instant::now()) {
            Verdict::Allow => Some(incoming),
            Verdict::Refuse => {
                let r#ref = match &incoming {
                    Incoming::Msg(msg) => msg.reference().cloned(),
                    _ => None,
                };
                let message = format!(
                    "more than {} messages a second; slow down",
                    self.config.rate_per_sec
                );
                Some(Incoming::Refused {
                    code: ErrorCode::RateLimited,
                    message,
                    r#ref,
                })
            }
            Verdict::Abuse => {
                self.close_and_drain(CloseCode::Policy, "rate limit exceeded again and again")
                    .await;
                None
            }
        }
    }

    async fn text(&mut self, text: &str) -> Incoming {
        match &self.codec {
            Codec::Json | Codec::MsgPack => match decode_json(text) {
                Ok(msg) => Incoming::Msg(msg),
                Err(e) => Incoming::Bad(e.to_string()),
            },
            Codec::Tutorial(link) => match tutorial::decode(text, link).await {
                Ok(msg) => Incoming::Msg(msg),
                Err(Refusal::Bad(e)) => Incoming::Bad(e),
                Err(Refusal::NoGame) => Incoming::Refused {
                    code: ErrorCode::NotFound,
                    message: "Start or join a game first.".into(),
                    r#ref: None,
                },
            },
        }
    }
}

#[async_trait]
impl<S> ConnectionReader for WsReader<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn recv(&mut self) -> Option<Incoming> {
        loop {
            let idle_deadline = self.last_seen + self.config.idle_timeout;
            let next = tokio::select! {
                next = self.stream.next() => next,
                _ = self.ping.tick() => {
                    let mut sink = self.sink.lock().await;
                    let _ = sink.send(Message::Ping(Bytes::new())).await;
                    continue;
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    self.close_and_drain(CloseCode::Policy, "no message or pong for too long").await;
                    return None;
                }
            };
            self.last_seen = tokio::time::Instant::now();
            let message = match next {
                None => return None,
                Some(Ok(message)) => message,
                // A text frame that is not UTF-8.
                Some(Err(WsError::Utf8(_))) => {
                    self.close_and_drain(CloseCode::InvalidData, "text frames must be UTF-8")
                        .await;
                    return None;
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                    let reason = format!(
                        "messages are limited to {} bytes",
                        self.config.max_message_bytes
                    );
                    self.close_and_drain(CloseCode::TooLarge, &reason).await;
                    return None;
                }
                // Closed, reset, protocol violations: the normal ways a connection ends.
                Some(Err(_)) => return None,
            };
            let size = match &message {
                Message::Text(t) => t.len(),
                Message::Binary(b) => b.len(),
                _ => 0,
            };
            match message {
                Message::Text(_) | Message::Binary(_) => {
                    self.metrics.messages_in.inc();
                    self.metrics.bytes_in.inc_by(size as u64);
                }
                Message::Close(_) => return None,
                // tungstenite answers pings itself; a pong is just a sign of life.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
            // Decoded before the rate limit applies, so a refusal can echo the message's `ref`.
            let incoming = match message {
                Message::Text(text) => self.text(text.as_str()).await,
                Message::Binary(bytes) => match (&self.codec, decode_msgpack(&bytes)) {
                    (Codec::Tutorial(_), _) => {
                        Incoming::Bad("the tutorial protocol is JSON text only".into())
                    }
                    (_, Ok(msg)) => Incoming::Msg(msg),
                    (_, Err(e)) => Incoming::Bad(e.to_string()),
                },
                _ => continue,
            };
            return self.admit(incoming).await;
        }
    }
}

struct WsWriter<S> {
    sink: Sink<S>,
    codec: Codec,
    metrics: Arc<Metrics>,
    _slot: Arc<Slot>,
}

#[async_trait]
impl<S> ConnectionWriter for WsWriter<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send(&mut self, frame: Frame) -> Result<(), Closed> {
        let message = match (&self.codec, frame) {
            (Codec::Json, Frame::Msg(msg)) => Message::text(encode_json(&msg)),
            (Codec::MsgPack, Frame::Msg(msg)) => Message::binary(encode_msgpack(&msg)),
            // Shared encodings: cloning `Bytes` copies nothing.
            (Codec::Json, Frame::Event(p)) => {
                Message::Text(Utf8Bytes::try_from(p.json().clone()).map_err(|_| Closed)?)
            }
            (Codec::MsgPack, Frame::Event(p)) => Message::Binary(p.msgpack().clone()),
            (Codec::Tutorial(link), frame) => {
                let msg = match &frame {
                    Frame::Msg(msg) => msg,
                    Frame::Event(p) => p.message(),
                };
                match tutorial::encode(msg, link) {
                    Some(text) => Message::text(text),
                    None => return Ok(()),
                }
            }
        };
        let size = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        self.sink
            .lock()
            .await
            .send(message)
            .await
            .map_err(|_| Closed)?;
        self.metrics.messages_out.inc();
        self.metrics.bytes_out.inc_by(size as u64);
        Ok(())
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        close(&self.sink, code, reason).await;
    }
}
