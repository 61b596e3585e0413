//! The in-memory [`Wire`]: what `MemClient` speaks over.

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use umpire_client::{Client, ClientError, Wire};
use umpire_engine::protocol::{ClientMsg, ServerMsg};
use umpire_hub::Frame;

use crate::{ToClient, ToServer};

/// A native-protocol client over an in-memory connection.
pub type MemClient = Client<MemWire>;

/// The client's end of an in-memory connection.
#[derive(Debug)]
pub struct MemWire {
    tx: mpsc::Sender<ToServer>,
    rx: mpsc::Receiver<ToClient>,
    closed: Option<(u16, String)>,
}

impl MemWire {
    pub(crate) fn new(tx: mpsc::Sender<ToServer>, rx: mpsc::Receiver<ToClient>) -> Self {
        MemWire {
            tx,
            rx,
            closed: None,
        }
    }
}

#[async_trait]
impl Wire for MemWire {
    async fn send(&mut self, msg: ClientMsg) -> Result<(), ClientError> {
        self.tx
            .send(ToServer::Msg(msg))
            .await
            .map_err(|_| ClientError::Closed)
    }

    async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.tx
            .send(ToServer::Text(text.to_owned()))
            .await
            .map_err(|_| ClientError::Closed)
    }

    async fn recv(&mut self) -> Result<ServerMsg, ClientError> {
        match self.rx.recv().await {
            Some(ToClient::Frame(Frame::Msg(msg))) => Ok(*msg),
            Some(ToClient::Frame(Frame::Event(published))) => {
                // Parse the frame's JSON as a plain value: the test of what goes on the wire,
                // and cheaper than the tagged-enum decoder when thousands arrive.
                let json = published
                    .json()
                    .ok_or_else(|| ClientError::Decode("an event that does not encode".into()))?;
                let mut frame: Value = serde_json::from_slice(&json)
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                if frame["type"] != "event" || frame["game"] != published.game.0 {
                    return Err(ClientError::Decode(format!("not an event frame: {frame}")));
                }
                Ok(ServerMsg::Event {
                    game: published.game,
                    env: frame["env"].take(),
                })
            }
            Some(ToClient::Close(code, reason)) => {
                self.closed = Some((code, reason));
                Err(ClientError::Closed)
            }
            None => Err(ClientError::Closed),
        }
    }

    fn close_reason(&self) -> Option<&(u16, String)> {
        self.closed.as_ref()
    }
}
