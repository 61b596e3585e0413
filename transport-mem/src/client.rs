//! `MemClient`: speaks the native protocol over an in-memory connection, with helpers that
//! wait for the answer to each request while keeping every other message in order.

use std::collections::VecDeque;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use umpire_engine::protocol::{ClientMsg, ErrorCode, GameId, ServerMsg};
use umpire_engine::{Seat, Seq};
use umpire_hub::Frame;

use crate::{ToClient, ToServer};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// The server answered with an error.
    #[error("{code:?}: {message}")]
    Server {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server answered with something else than expected.
    #[error("unexpected answer: {0:?}")]
    Unexpected(Box<ServerMsg>),
    /// A frame did not decode.
    #[error("undecodable frame: {0}")]
    Decode(String),
}

impl ClientError {
    /// The server's error code, if this is a server error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A game as a client sees it after `create` or `join`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Game {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// This client's seat.
    pub seat: Seat,
    /// The seat token.
    pub token: String,
    /// The join key (only the creator learns it).
    pub join: Option<String>,
    /// The watch key (only the creator learns it).
    pub watch: Option<String>,
}

/// One in-memory client connection.
#[derive(Debug)]
pub struct MemClient {
    tx: mpsc::Sender<ToServer>,
    rx: mpsc::Receiver<ToClient>,
    /// Messages received while waiting for something else, in arrival order.
    stash: VecDeque<ServerMsg>,
    next_ref: u64,
    closed: Option<(u16, String)>,
}

impl MemClient {
    pub(crate) fn new(tx: mpsc::Sender<ToServer>, rx: mpsc::Receiver<ToClient>) -> Self {
        MemClient {
            tx,
            rx,
            stash: VecDeque::new(),
            next_ref: 0,
            closed: None,
        }
    }

    /// Send a message without waiting for anything.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn send(&self, msg: ClientMsg) -> Result<(), ClientError> {
        self.tx
            .send(ToServer::Msg(msg))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Send raw text, as a WebSocket text frame: the server parses it.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        self.tx
            .send(ToServer::Text(text.to_owned()))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// The close code and reason, once the server closed the connection.
    pub fn close_reason(&self) -> Option<&(u16, String)> {
        self.closed.as_ref()
    }

    /// The next message off the wire, ignoring the stash.
    async fn read(&mut self) -> Result<ServerMsg, ClientError> {
        match self.rx.recv().await {
            Some(ToClient::Frame(Frame::Msg(msg))) => Ok(msg),
            Some(ToClient::Frame(Frame::Event(published))) => {
                serde_json::from_str(published.json())
                    .map_err(|e| ClientError::Decode(e.to_string()))
            }
            Some(ToClient::Close(code, reason)) => {
                self.closed = Some((code, reason));
                Err(ClientError::Closed)
            }
            None => Err(ClientError::Closed),
        }
    }

    /// The next message, stashed ones first.
    ///
    /// # Errors
    /// [`ClientError::Closed`] once the connection is closed and nothing is stashed.
    pub async fn recv(&mut self) -> Result<ServerMsg, ClientError> {
        match self.stash.pop_front() {
            Some(msg) => Ok(msg),
            None => self.read().await,
        }
    }

    /// The next message that is not an event (an answer, an error, `closing`); events that
    /// arrive first stay stashed.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn next_reply(&mut self) -> Result<ServerMsg, ClientError> {
        let position = self
            .stash
            .iter()
            .position(|m| !matches!(m, ServerMsg::Event { .. }));
        if let Some(msg) = position.and_then(|i| self.stash.remove(i)) {
            return Ok(msg);
        }
        loop {
            match self.read().await? {
                event @ ServerMsg::Event { .. } => self.stash.push_back(event),
                other => return Ok(other),
            }
        }
    }

    /// Send `msg` with a fresh `ref` and wait for the answer carrying it. Everything else that
    /// arrives meanwhile is stashed for [`MemClient::recv`] and the event helpers.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn request(&mut self, mut msg: ClientMsg) -> Result<ServerMsg, ClientError> {
        self.next_ref += 1;
        let wanted = json!(self.next_ref);
        msg.set_reference(wanted.clone());
        self.send(msg).await?;
        loop {
            let answer = self.read().await?;
            if answer.reference() == Some(&wanted) {
                return Ok(answer);
            }
            self.stash.push_back(answer);
        }
    }

    /// Create a game of `kind` and take its first seat.
    ///
    /// # Errors
    /// The server's error, or [`ClientError::Closed`].
    pub async fn create(&mut self, kind: &str, config: Value) -> Result<Game, ClientError> {
        let msg = ClientMsg::Create {
            kind: kind.into(),
            config,
            r#ref: None,
        };
        match self.request(msg).await? {
            ServerMsg::Created {
                game,
                kind,
                join,
                watch,
                seat,
                token,
                ..
            } => Ok(Game {
                game,
                kind,
                seat,
                token,
                join: Some(join),
                watch: Some(watch),
            }),
            other => Err(failure(other)),
        }
    }

    /// Take a seat with a join key or seat token.
    ///
    /// # Errors
    /// The server's error, or [`ClientError::Closed`].
    pub async fn join(&mut self, key: &str) -> Result<Game, ClientError> {
        let msg = ClientMsg::Join {
            key: key.into(),
            r#ref: None,
        };
        match self.request(msg).await? {
            ServerMsg::Joined {
                game,
                kind,
                seat,
                token,
                ..
            } => Ok(Game {
                game,
                kind,
                seat,
                token,
                join: None,
                watch: None,
            }),
            other => Err(failure(other)),
        }
    }

    /// Watch a game from seq `from` (1 if `None`).
    ///
    /// # Errors
    /// The server's error, or [`ClientError::Closed`].
    pub async fn watch(&mut self, key: &str, from: Option<Seq>) -> Result<GameId, ClientError> {
        let msg = ClientMsg::Watch {
            key: key.into(),
            from,
            r#ref: None,
        };
        match self.request(msg).await? {
            ServerMsg::Watching { game, .. } => Ok(game),
            other => Err(failure(other)),
        }
    }

    /// Send a game command; returns the last seq it produced, durable.
    ///
    /// # Errors
    /// The server's error (`rejected` with the game's reason, ...), or [`ClientError::Closed`].
    pub async fn command(&mut self, game: GameId, cmd: Value) -> Result<Seq, ClientError> {
        self.command_with_cid(game, cmd, None).await
    }

    /// Send a game command with a client id, so a retry is applied once.
    ///
    /// # Errors
    /// The server's error, or [`ClientError::Closed`].
    pub async fn command_with_cid(
        &mut self,
        game: GameId,
        cmd: Value,
        cid: Option<String>,
    ) -> Result<Seq, ClientError> {
        let msg = ClientMsg::Command {
            game,
            cmd,
            cid,
            r#ref: None,
        };
        match self.request(msg).await? {
            ServerMsg::Ok { seq: Some(seq), .. } => Ok(seq),
            other => Err(failure(other)),
        }
    }

    /// Leave a game (give up the seat, or stop watching).
    ///
    /// # Errors
    /// The server's error, or [`ClientError::Closed`].
    pub async fn leave(&mut self, game: GameId) -> Result<(), ClientError> {
        match self.request(ClientMsg::Leave { game, r#ref: None }).await? {
            ServerMsg::Ok { .. } => Ok(()),
            other => Err(failure(other)),
        }
    }

    /// The next event envelope of `game`, stashed ones first; other messages stay stashed.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn next_event(&mut self, game: GameId) -> Result<Value, ClientError> {
        let position = self
            .stash
            .iter()
            .position(|m| matches!(m, ServerMsg::Event { game: g, .. } if *g == game));
        if let Some(i) = position {
            if let Some(ServerMsg::Event { env, .. }) = self.stash.remove(i) {
                return Ok(env);
            }
        }
        loop {
            match self.read().await? {
                ServerMsg::Event { game: g, env } if g == game => return Ok(env),
                other => self.stash.push_back(other),
            }
        }
    }

    /// The next `n` event envelopes of `game`.
    ///
    /// # Errors
    /// [`ClientError::Closed`] before `n` arrived.
    pub async fn events(&mut self, game: GameId, n: usize) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event(game).await?);
        }
        Ok(out)
    }

    /// Events of `game` until one satisfies `done` (included).
    ///
    /// # Errors
    /// [`ClientError::Closed`] before that.
    pub async fn events_until(
        &mut self,
        game: GameId,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        loop {
            let env = self.next_event(game).await?;
            let stop = done(&env);
            out.push(env);
            if stop {
                return Ok(out);
            }
        }
    }
}

fn failure(msg: ServerMsg) -> ClientError {
    match msg {
        ServerMsg::Error { code, message, .. } => ClientError::Server { code, message },
        other => ClientError::Unexpected(Box::new(other)),
    }
}
