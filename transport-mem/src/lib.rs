//! umpire's in-process transport: connections are channel pairs, so tests and embedders can
//! talk to a [`Hub`] exactly as a WebSocket client would, without a socket.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use serde_json::json;
//! use umpire_hub::Hub;
//! use umpire_store::MemLog;
//! # use umpire_engine::doc::Counter;
//!
//! let hub = Hub::builder(Arc::new(MemLog::new())).register(Counter).start().await?;
//! let (transport, connector) = umpire_mem::transport();
//! hub.serve(transport);
//!
//! let mut ada = connector.connect().await?;
//! let game = ada.create("counter", json!(null)).await?;
//! assert_eq!(ada.command(game.game, json!(2)).await?, 3);
//! let mut events = ada.events(game.game, 3).await?;
//! assert_eq!(events.pop().unwrap()["body"]["game"], json!(2));
//! # Ok(()) }
//! ```
//!
//! [`Hub`]: umpire_hub::Hub

mod client;

use async_trait::async_trait;
use tokio::sync::mpsc;
use umpire_engine::protocol::{decode_json, ClientMsg, CloseCode};
use umpire_hub::{
    Closed, Connection, ConnectionReader, ConnectionWriter, Frame, Incoming, Peer, Transport,
};

pub use client::{MemClient, MemWire};
pub use umpire_hub::client::{ClientError, Game};

/// How many frames a connection buffers toward its client.
const CLIENT_QUEUE: usize = 1024;

/// What a client puts on the wire.
#[derive(Debug)]
pub(crate) enum ToServer {
    Msg(ClientMsg),
    /// Raw JSON text, parsed on the server side like a WebSocket text frame.
    Text(String),
}

/// What the server puts on the wire.
#[derive(Debug)]
pub(crate) enum ToClient {
    Frame(Frame),
    Close(u16, String),
}

/// The server side: hand it to [`umpire_hub::Hub::serve`].
#[derive(Debug)]
pub struct MemTransport {
    incoming: mpsc::Receiver<MemConnection>,
}

/// The client side: makes connections to the transport it came with.
#[derive(Debug, Clone)]
pub struct MemConnector {
    outgoing: mpsc::Sender<MemConnection>,
}

/// A transport and the connector that reaches it.
pub fn transport() -> (MemTransport, MemConnector) {
    let (outgoing, incoming) = mpsc::channel(64);
    (MemTransport { incoming }, MemConnector { outgoing })
}

impl MemConnector {
    /// Open an anonymous connection.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the transport is no longer served.
    pub async fn connect(&self) -> Result<MemClient, ClientError> {
        self.open(None, CLIENT_QUEUE).await
    }

    /// Open a connection the transport vouches is `user` (as a handshake might).
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the transport is no longer served.
    pub async fn connect_as(&self, user: &str) -> Result<MemClient, ClientError> {
        self.open(Some(user.to_owned()), CLIENT_QUEUE).await
    }

    /// Open a connection whose client buffers only `queue` frames, to model a slow reader.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the transport is no longer served.
    pub async fn connect_with_queue(&self, queue: usize) -> Result<MemClient, ClientError> {
        self.open(None, queue.max(1)).await
    }

    async fn open(&self, user: Option<String>, queue: usize) -> Result<MemClient, ClientError> {
        let (to_server, from_client) = mpsc::channel(64);
        let (to_client, from_server) = mpsc::channel(queue);
        let conn = MemConnection {
            peer: Peer {
                user,
                label: "memory".into(),
            },
            from_client,
            to_client,
        };
        self.outgoing
            .send(conn)
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(MemClient::new(MemWire::new(to_server, from_server)))
    }
}

#[async_trait]
impl Transport for MemTransport {
    async fn accept(&mut self) -> Option<Box<dyn Connection>> {
        let conn = self.incoming.recv().await?;
        Some(Box::new(conn))
    }
}

/// The server's view of one in-memory connection.
#[derive(Debug)]
struct MemConnection {
    peer: Peer,
    from_client: mpsc::Receiver<ToServer>,
    to_client: mpsc::Sender<ToClient>,
}

impl Connection for MemConnection {
    fn peer(&self) -> Peer {
        self.peer.clone()
    }

    fn split(self: Box<Self>) -> (Box<dyn ConnectionReader>, Box<dyn ConnectionWriter>) {
        (
            Box::new(Reader(self.from_client)),
            Box::new(Writer(self.to_client)),
        )
    }
}

struct Reader(mpsc::Receiver<ToServer>);
struct Writer(mpsc::Sender<ToClient>);

#[async_trait]
impl ConnectionReader for Reader {
    async fn recv(&mut self) -> Option<Incoming> {
        Some(match self.0.recv().await? {
            ToServer::Msg(msg) => Incoming::Msg(msg),
            ToServer::Text(text) => match decode_json(&text) {
                Ok(msg) => Incoming::Msg(msg),
                Err(e) => Incoming::Bad(e.to_string()),
            },
        })
    }
}

#[async_trait]
impl ConnectionWriter for Writer {
    async fn send(&mut self, frame: Frame) -> Result<(), Closed> {
        self.0
            .send(ToClient::Frame(frame))
            .await
            .map_err(|_| Closed)
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        let _ = self
            .0
            .send(ToClient::Close(code.code(), reason.to_owned()))
            .await;
    }
}
