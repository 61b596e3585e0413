//! One upgraded WebSocket with umpire's limits: what any protocol on top of it reads and
//! writes through. Size (1009) and UTF-8 (1007) are checked as frames arrive, the rate limit
//! as messages are admitted; the heartbeat pings, and a connection silent too long, or one
//! whose writes stop draining, is closed. Every close the server decides is a close handshake.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use umpire_engine::protocol::CloseCode;
use umpire_hub::Metrics;

use crate::config::WsConfig;
use crate::limits::{TokenBucket, Verdict};

/// How long a close reads the client slowly (a KiB per [`DRAIN_PAUSE`]): far slower than a
/// flood, so that a client that reads only when its sends block does block, within this
/// time, and reads the close.
const DRAIN_SLOWLY: Duration = Duration::from_millis(2500);
/// The pause between slow reads.
const DRAIN_PAUSE: Duration = Duration::from_millis(10);

/// Holds a place under `max_connections` until the connection is gone.
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

/// What a read gave.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// The client left (closed, reset, or broke the protocol).
    Gone,
    /// The client broke a limit: close with this code and reason.
    Violation(CloseCode, String),
}

/// The connection could not be written to; it is done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Broken;

/// How long a write may wait once shutdown has begun.
const SHUTDOWN_WRITE: Duration = Duration::from_secs(1);

/// A write that the client has not taken within `limit` fails: a client that stops reading
/// must not hold its connection (and its buffers) forever. Timed by the socket's interval, so
/// a write sets up no timer of its own (there is one per event sent). Once shutdown begins,
/// the write gets [`SHUTDOWN_WRITE`] more at most.
async fn within(
    tick: &mut tokio::time::Interval,
    limit: Duration,
    shutdown: &CancellationToken,
    write: impl std::future::Future<Output = Result<(), WsError>>,
) -> Result<(), Broken> {
    tokio::pin!(write);
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            done = &mut write => return done.map_err(|_| Broken),
            () = shutdown.cancelled() => break,
            now = tick.tick() => {
                if now >= started + limit {
                    return Err(Broken);
                }
            }
        }
    }
    // Boxed: taken once, at shutdown; inline, its timer would sit in every write's state,
    // and so in every connection's task.
    match Box::pin(tokio::time::timeout(SHUTDOWN_WRITE, write)).await {
        Ok(done) => done.map_err(|_| Broken),
        Err(_) => Err(Broken),
    }
}

/// `write` if it finishes at once, as a write to a client that keeps up does; else [`within`]
/// its limit, boxed: the deadline's state (timers, the shutdown signal) would otherwise sit in
/// every connection's task, waiting or not.
async fn at_once_or_within(
    tick: &mut tokio::time::Interval,
    limit: Duration,
    shutdown: &CancellationToken,
    mut write: impl std::future::Future<Output = Result<(), WsError>> + Unpin,
) -> Result<(), Broken> {
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut write).poll(cx))).await;
    match first {
        Poll::Ready(done) => done.map_err(|_| Broken),
        Poll::Pending => Box::pin(within(tick, limit, shutdown, write)).await,
    }
}

/// A WebSocket with limits.
pub(crate) struct Socket<S> {
    ws: WebSocketStream<S>,
    config: Arc<WsConfig>,
    metrics: Arc<Metrics>,
    bucket: Option<TokenBucket>,
    /// When the client last sent anything (a pong counts).
    last_seen: tokio::time::Instant,
    /// When the last ping went out.
    last_ping: tokio::time::Instant,
    /// One timer for the heartbeat and the silence check, kept across reads: a read that
    /// finds nothing (once per event sent, on a busy connection) sets up no timer.
    tick: tokio::time::Interval,
    /// The hub's: once cancelled, writes get a short deadline.
    shutdown: CancellationToken,
    _slot: Slot,
}

impl<S> Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(crate) fn new(
        ws: WebSocketStream<S>,
        config: Arc<WsConfig>,
        metrics: Arc<Metrics>,
        slot: Slot,
        shutdown: CancellationToken,
    ) -> Self {
        // Silence and stalled writes are noticed within a third of their timeouts.
        let period = config
            .ping_every
            .min(config.idle_timeout / 3)
            .min(config.write_timeout / 3)
            .max(Duration::from_millis(10));
        let now = tokio::time::Instant::now();
        let mut tick = tokio::time::interval_at(now + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Socket {
            ws,
            bucket: TokenBucket::new(config.rate_per_sec, config.rate_burst),
            last_seen: now,
            last_ping: now,
            tick,
            shutdown,
            config,
            metrics,
            _slot: slot,
        }
    }

    /// The next text or binary message. Answers pings, sends the heartbeat, notices silence.
    /// Cancel-safe: every state it keeps is in `self`.
    pub(crate) async fn recv(&mut self) -> Inbound {
        loop {
            let next = tokio::select! {
                next = self.ws.next() => next,
                now = self.tick.tick() => {
                    if now >= self.last_seen + self.config.idle_timeout {
                        let why = "no message or pong for too long".into();
                        return Inbound::Violation(CloseCode::Policy, why);
                    }
                    if now >= self.last_ping + self.config.ping_every {
                        self.last_ping = now;
                        // Under the write deadline: a client that takes no ping is gone.
                        // Boxed: once in a heartbeat, and inline it would double the size of
                        // the read that every connection's task waits in.
                        let ping = self.ws.send(Message::Ping(Bytes::new()));
                        let limit = self.config.write_timeout;
                        let sent = Box::pin(within(&mut self.tick, limit, &self.shutdown, ping));
                        if sent.await.is_err() {
                            return Inbound::Gone;
                        }
                    }
                    continue;
                }
            };
            self.last_seen = tokio::time::Instant::now();
            let message = match next {
                None => return Inbound::Gone,
                Some(Ok(message)) => message,
                // A text frame that is not UTF-8.
                Some(Err(WsError::Utf8(_))) => {
                    return Inbound::Violation(
                        CloseCode::InvalidData,
                        "text frames must be UTF-8".into(),
                    )
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                    let reason = format!(
                        "messages are limited to {} bytes",
                        self.config.max_message_bytes
                    );
                    return Inbound::Violation(CloseCode::TooLarge, reason);
                }
                // Closed, reset, protocol violations: the normal ways a connection ends.
                Some(Err(_)) => return Inbound::Gone,
            };
            let inbound = match message {
                Message::Text(text) => {
                    self.metrics.bytes_in.inc_by(text.len() as u64);
                    Inbound::Text(text)
                }
                Message::Binary(bytes) => {
                    self.metrics.bytes_in.inc_by(bytes.len() as u64);
                    Inbound::Binary(bytes)
                }
                Message::Close(_) => return Inbound::Gone,
                // tungstenite answers pings itself; a pong is just a sign of life.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            self.metrics.messages_in.inc();
            return inbound;
        }
    }

    /// Whether one more message is within the rate limit.
    pub(crate) fn admit(&mut self) -> Verdict {
        match &mut self.bucket {
            Some(bucket) => bucket.check(Instant::now()),
            None => Verdict::Allow,
        }
    }

    /// The rate, for the refusal's message.
    pub(crate) fn rate(&self) -> u32 {
        self.config.rate_per_sec
    }

    /// Queue a message; it is written by [`Socket::flush`] (or sooner, if the buffer fills).
    pub(crate) async fn feed(&mut self, message: Message) -> Result<(), Broken> {
        let size = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        // Room for it at once, unless the last write found the client's socket full: then
        // wait, under the write deadline, for what is buffered to go. The message itself is
        // not held across the wait (a `SinkExt::feed` would keep it in every connection's
        // task state).
        let limit = self.config.write_timeout;
        let ws = &mut self.ws;
        let ready = std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx));
        at_once_or_within(&mut self.tick, limit, &self.shutdown, ready).await?;
        Pin::new(&mut self.ws)
            .start_send(message)
            .map_err(|_| Broken)?;
        self.metrics.messages_out.inc();
        self.metrics.bytes_out.inc_by(size as u64);
        Ok(())
    }

    /// Write everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), Broken> {
        let limit = self.config.write_timeout;
        at_once_or_within(&mut self.tick, limit, &self.shutdown, self.ws.flush()).await
    }

    /// Close with `code` and `reason`, at once: the close frame is written and flushed, then
    /// the server's half of the TCP connection is shut, so the client reads the frame and the
    /// end of the stream together and learns why without waiting for anything. Then whatever
    /// the client still sends is read and thrown away until it closes its half (dropping a
    /// socket with unread data resets it, and the reset can destroy the close frame before
    /// the client reads it), up to [`WsConfig::close_drain`], or one second once the server
    /// is shutting down.
    ///
    /// The input is drained as bytes, not as WebSocket frames: after an oversized frame or a
    /// text frame that is not UTF-8, tungstenite reads no further, and the client's close
    /// comes after the rest of what it was sending.
    pub(crate) async fn close(mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code: WsCloseCode::from(code.code()),
            reason: Utf8Bytes::from(reason),
        };
        let grace = Duration::from_secs(1);
        let sent = tokio::time::timeout(grace, self.ws.send(Message::Close(Some(frame)))).await;
        if let Ok(Err(_)) = sent {
            // The frame could not be written: the connection is broken; nothing to wait for.
            return;
        }
        let stream = self.ws.get_mut();
        let _ = tokio::time::timeout(grace, stream.shutdown()).await;
        let drain = async {
            // Until the client closes (0) or resets (an error). Slowly at first: a client
            // that reads only when its sends block (a tight send loop in asyncio) must be made
            // to block, or it never reads what we sent. Then at full speed: once it has read
            // our close, it closes only after what it had queued is sent.
            let mut buf = [0u8; 1024];
            let slow_until = tokio::time::Instant::now() + DRAIN_SLOWLY;
            while let Ok(1..) = stream.read(&mut buf).await {
                if tokio::time::Instant::now() < slow_until {
                    tokio::time::sleep(DRAIN_PAUSE).await;
                }
            }
        };
        let shutdown = self.shutdown.clone();
        let cut_short = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            _ = tokio::time::timeout(self.config.close_drain, drain) => {}
            () = cut_short => {}
        }
    }
}
