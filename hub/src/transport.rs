//! What the hub needs from a transport: connections that deliver client messages and take
//! frames. The hub never touches a socket; a transport never holds game or session logic.

use async_trait::async_trait;
use umpire_engine::protocol::{ClientMsg, CloseCode, ErrorCode};

use crate::frames::Frame;

/// Something a client sent.
#[derive(Debug)]
pub enum Incoming {
    /// A well-formed message.
    Msg(ClientMsg),
    /// Bytes that are not a message; answered with `bad_message`, and the connection stays.
    Bad(String),
    /// A message the transport refused (over the rate limit, say): answered with this code,
    /// echoing the message's `ref` when it had one.
    Refused {
        /// The error code to answer with.
        code: ErrorCode,
        /// Why, for people.
        message: String,
        /// The refused message's `ref`.
        r#ref: Option<serde_json::Value>,
    },
}

/// The connection is gone; nothing more can be sent.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

/// Who is on the other end, as the transport learned it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// A user authenticated by the transport (for example from a handshake), if any.
    pub user: Option<String>,
    /// A description for logs (an address).
    pub label: String,
}

/// The reading half of a connection.
#[async_trait]
pub trait ConnectionReader: Send + 'static {
    /// The next message; `None` when the client is gone. Must be cancel-safe.
    async fn recv(&mut self) -> Option<Incoming>;
}

/// The writing half of a connection.
#[async_trait]
pub trait ConnectionWriter: Send + 'static {
    /// Send one frame.
    ///
    /// # Errors
    /// [`Closed`] when the client is gone.
    async fn send(&mut self, frame: Frame) -> Result<(), Closed>;

    /// Close with a code and a reason. Sends nothing more afterwards.
    async fn close(&mut self, code: CloseCode, reason: &str);
}

/// One client connection.
pub trait Connection: Send + 'static {
    /// Who is connected.
    fn peer(&self) -> Peer;
    /// Split into halves that the session drives concurrently.
    fn split(self: Box<Self>) -> (Box<dyn ConnectionReader>, Box<dyn ConnectionWriter>);
}

/// A source of connections.
#[async_trait]
pub trait Transport: Send + 'static {
    /// The next connection; `None` when the transport is closed.
    async fn accept(&mut self) -> Option<Box<dyn Connection>>;
}
