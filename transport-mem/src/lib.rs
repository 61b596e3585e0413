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
//! let connector = umpire_mem::connector(&hub);
//!
//! let mut ada = connector.connect().await?;
//! let game = ada.create("counter", json!(null)).await?;
//! // Created, Ada seated, Ada online (her connection follows the game), then the addition.
//! assert_eq!(ada.command(game.game, json!(2)).await?, 4);
//! let mut events = ada.events(game.game, 4).await?;
//! assert_eq!(events.pop().unwrap()["body"]["game"], json!(2));
//! # Ok(()) }
//! ```
//!
//! [`Hub`]: umpire_hub::Hub

mod client;

use tokio::sync::mpsc;
use umpire_engine::protocol::{decode_json, ClientMsg, ErrorCode};
use umpire_hub::{Frame, Hub, Outgoing, Peer, Session};

pub use client::{MemClient, MemWire};
pub use umpire_client::{ClientError, Game};

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

/// Makes in-memory connections to one hub.
#[derive(Debug, Clone)]
pub struct MemConnector {
    hub: Hub,
}

/// A connector for `hub`: each connection it opens is a session of the hub, served by a task
/// of its own until either side goes away.
pub fn connector(hub: &Hub) -> MemConnector {
    MemConnector { hub: hub.clone() }
}

impl MemConnector {
    /// Open an anonymous connection.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the hub is shutting down.
    pub async fn connect(&self) -> Result<MemClient, ClientError> {
        self.open(None, CLIENT_QUEUE)
    }

    /// Open a connection the transport vouches is `user` (as a handshake might).
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the hub is shutting down.
    pub async fn connect_as(&self, user: &str) -> Result<MemClient, ClientError> {
        self.open(Some(user.to_owned()), CLIENT_QUEUE)
    }

    /// Open a connection whose client buffers only `queue` frames, to model a slow reader.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the hub is shutting down.
    pub async fn connect_with_queue(&self, queue: usize) -> Result<MemClient, ClientError> {
        self.open(None, queue.max(1))
    }

    fn open(&self, user: Option<String>, queue: usize) -> Result<MemClient, ClientError> {
        if self.hub.shutdown_token().is_cancelled() {
            return Err(ClientError::Closed);
        }
        let (to_server, from_client) = mpsc::channel(64);
        let (to_client, from_server) = mpsc::channel(queue);
        let peer = Peer {
            user,
            label: "memory".into(),
            ..Peer::default()
        };
        tokio::spawn(serve(self.hub.session(peer), from_client, to_client));
        Ok(MemClient::new(MemWire::new(to_server, from_server)))
    }
}

/// One connection: the client's messages into the session, the session's frames out. A
/// client that does not read makes `send` wait, and the session falls back on the log.
async fn serve(
    mut session: Session,
    mut from_client: mpsc::Receiver<ToServer>,
    to_client: mpsc::Sender<ToClient>,
) {
    loop {
        tokio::select! {
            biased;
            out = session.next() => {
                let sent = match out {
                    Outgoing::Frame(frame) => to_client.send(ToClient::Frame(frame)).await,
                    Outgoing::Close(code, reason) => {
                        let _ = to_client.send(ToClient::Close(code.code(), reason)).await;
                        break;
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
            msg = from_client.recv(), if session.ready_for_input() => match msg {
                None => break,
                Some(ToServer::Msg(msg)) => session.handle(msg).await,
                Some(ToServer::Text(text)) => match decode_json(&text) {
                    Ok(msg) => session.handle(msg).await,
                    Err(e) => session.refuse(ErrorCode::BadMessage, e.to_string(), None),
                },
            },
        }
    }
}

#[cfg(feature = "testing")]
pub mod testing;
