//! umpire's protocol client over any [`Wire`], with helpers that wait for the answer to each
//! request while keeping every other message in order, and reconnection with resume. It knows
//! the wire protocol (`umpire-engine`) and nothing of the server: `umpire-mem` and `umpire-ws`
//! provide wires; tests, benchmarks, bots and tools use it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use umpire_engine::protocol::{ClientMsg, ErrorCode, GameId, ServerMsg};
use umpire_engine::{Seat, Seq};

/// A client connection's two directions, as a transport provides them.
#[async_trait]
pub trait Wire: Send {
    /// Send one message.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    async fn send(&mut self, msg: ClientMsg) -> Result<(), ClientError>;

    /// Send raw text as the transport would carry a text message, unparsed, to test how the
    /// server copes with what it did not expect.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    async fn send_text(&mut self, text: &str) -> Result<(), ClientError>;

    /// The next message.
    ///
    /// # Errors
    /// [`ClientError::Closed`] once the server closed the connection (see [`Wire::close_reason`]).
    async fn recv(&mut self) -> Result<ServerMsg, ClientError>;

    /// The close code and reason, once the server closed the connection.
    fn close_reason(&self) -> Option<&(u16, String)>;
}

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
        /// The game's rejection as data, for `rejected` (see [`ClientError::reason`]).
        reason: Option<Value>,
    },
    /// The server answered with something else than expected.
    #[error("unexpected answer: {0:?}")]
    Unexpected(Box<ServerMsg>),
    /// A frame did not decode.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// The connection could not be opened; `status` is the HTTP status of a refused handshake.
    #[error("could not connect ({status:?}): {message}")]
    Connect {
        /// The HTTP status the server refused with, if it answered.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
}

impl ClientError {
    /// The server's error code, if this is a server error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The game's rejection as data (`{"overflow": 1}`), if the game's rules refused: branch
    /// on this, not on the message.
    pub fn reason(&self) -> Option<&Value> {
        match self {
            ClientError::Server { reason, .. } => reason.as_ref(),
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

/// Opens a new connection for a client whose connection dropped.
pub type Dial<W> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<W, ClientError>> + Send>> + Send + Sync>;

/// How a client reconnects by itself (see [`Client::reconnect_with`]).
pub struct Redial<W> {
    dial: Dial<W>,
    /// Attempts per outage before giving up with [`ClientError::Closed`].
    pub attempts: u32,
    /// The wait before the first attempt; it doubles up to `max_delay`.
    pub first_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

impl<W> Redial<W> {
    /// Reconnect through `dial`: 20 attempts, waiting 100 ms, then twice as long each time up to
    /// 5 s (about a minute in all).
    pub fn new(dial: Dial<W>) -> Self {
        Redial {
            dial,
            attempts: 20,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl<W> std::fmt::Debug for Redial<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redial")
            .field("attempts", &self.attempts)
            .field("first_delay", &self.first_delay)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}

/// A client of the native protocol over some [`Wire`].
#[derive(Debug)]
pub struct Client<W: Wire> {
    wire: W,
    /// Messages received while waiting for something else, in arrival order.
    stash: VecDeque<ServerMsg>,
    next_ref: u64,
    /// The last spectator count told for each game (`audience` messages are kept here, not
    /// stashed).
    audience: std::collections::HashMap<GameId, u64>,
    /// The last seq received of each game: what a resume asks to continue from.
    seen: std::collections::BTreeMap<GameId, Seq>,
    /// The session token the server gave last.
    session: Option<String>,
    /// How to reconnect when the connection drops, if the client should.
    redial: Option<Redial<W>>,
    /// The token of the `hello` that signed this client in: sent again before resuming.
    hello: Option<String>,
    /// Connections this client has had: a request sent on an earlier one has no answer coming.
    generation: u64,
}

impl<W: Wire> Client<W> {
    /// A client over `wire`.
    pub fn new(wire: W) -> Self {
        Client {
            wire,
            stash: VecDeque::new(),
            next_ref: 0,
            audience: std::collections::HashMap::new(),
            seen: std::collections::BTreeMap::new(),
            session: None,
            redial: None,
            hello: None,
            generation: 0,
        }
    }

    /// The wire, for what only it can do.
    pub fn wire_mut(&mut self) -> &mut W {
        &mut self.wire
    }

    /// Send a message without waiting for anything.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn send(&mut self, msg: ClientMsg) -> Result<(), ClientError> {
        self.wire.send(msg).await
    }

    /// Send raw text, as a WebSocket text frame: the server parses it.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.wire.send_text(text).await
    }

    /// The close code and reason, once the server closed the connection.
    pub fn close_reason(&self) -> Option<&(u16, String)> {
        self.wire.close_reason()
    }

    /// The next message off the wire, ignoring the stash; spectator counts are noted, not
    /// returned.
    async fn read(&mut self) -> Result<ServerMsg, ClientError> {
        loop {
            if let Some(msg) = self.read_noting().await? {
                return Ok(msg);
            }
        }
    }

    /// Reconnect by itself when the connection drops: open a new one with `redial` and
    /// resume the session there, so events continue exactly where they stopped. A request
    /// that was waiting is sent again if that is safe (a command with a `cid`, join, watch,
    /// subscribe, ping); otherwise (a `create`, a command without `cid`) it fails with
    /// [`ClientError::Closed`], as it may or may not have been applied.
    #[must_use]
    pub fn reconnect_with(mut self, redial: Redial<W>) -> Self {
        self.redial = Some(redial);
        self
    }

    /// The next message off the wire, or `None` if it was a spectator count (noted) or the
    /// connection was replaced (with [`Client::reconnect_with`]).
    async fn read_noting(&mut self) -> Result<Option<ServerMsg>, ClientError> {
        match self.wire.recv().await {
            Ok(msg) => Ok(self.note(msg)),
            Err(ClientError::Closed) if self.may_redial() => {
                self.redial().await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether to reconnect after the connection closed: unless told not to, or the server
    /// refused the client's token (trying again would not help).
    fn may_redial(&self) -> bool {
        self.redial.is_some()
            && !matches!(self.wire.close_reason(), Some((1008, reason)) if reason == "bad token")
    }

    /// Open a new connection and resume on it, with backoff.
    async fn redial(&mut self) -> Result<(), ClientError> {
        let Some(r) = &self.redial else {
            return Err(ClientError::Closed);
        };
        let (dial, attempts, mut delay, max) =
            (Arc::clone(&r.dial), r.attempts, r.first_delay, r.max_delay);
        for _ in 0..attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max);
            let Ok(wire) = dial().await else {
                continue;
            };
            self.wire = wire;
            self.generation += 1;
            match self.resume_here().await {
                Ok(()) => return Ok(()),
                Err(ClientError::Closed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Closed)
    }

    /// Sign in again if the client had, and resume its session, on the current wire alone
    /// (no reconnecting from inside a reconnect).
    async fn resume_here(&mut self) -> Result<(), ClientError> {
        if let Some(token) = self.hello.clone() {
            let hello = ClientMsg::Hello { token, r#ref: None };
            match self.exchange(hello).await? {
                ServerMsg::Welcome { .. } => {}
                other => return Err(failure(other)),
            }
        }
        let Some(session) = self.session.clone() else {
            return Ok(()); // nothing entered yet: nothing to resume
        };
        match self.exchange(self.resume_msg(session)).await? {
            ServerMsg::Resumed { .. } => Ok(()),
            other => Err(failure(other)),
        }
    }

    /// Send `msg` with a fresh ref on the current wire and wait there for its answer.
    async fn exchange(&mut self, mut msg: ClientMsg) -> Result<ServerMsg, ClientError> {
        self.next_ref += 1;
        let wanted = json!(self.next_ref);
        msg.set_reference(wanted.clone());
        self.wire.send(msg).await?;
        loop {
            let msg = self.wire.recv().await?;
            let Some(answer) = self.note(msg) else {
                continue;
            };
            if answer.reference() == Some(&wanted) {
                return Ok(answer);
            }
            self.stash.push_back(answer);
        }
    }

    /// Keep what a message says about the session (its token, each game's last seq, the
    /// spectator counts); `None` for a message that is only that.
    fn note(&mut self, msg: ServerMsg) -> Option<ServerMsg> {
        match &msg {
            ServerMsg::Audience { game, spectators } => {
                self.audience.insert(*game, *spectators);
                return None;
            }
            ServerMsg::Event { game, env } => {
                if let Some(seq) = env["seq"].as_u64() {
                    let last = self.seen.entry(*game).or_default();
                    *last = (*last).max(Seq(seq));
                }
            }
            ServerMsg::Welcome {
                session: Some(session),
                ..
            }
            | ServerMsg::Created {
                session: Some(session),
                ..
            }
            | ServerMsg::Joined {
                session: Some(session),
                ..
            }
            | ServerMsg::Watching {
                session: Some(session),
                ..
            }
            | ServerMsg::Subscribed {
                session: Some(session),
                ..
            } => self.session = Some(session.clone()),
            ServerMsg::Resumed { session, .. } => self.session = Some(session.clone()),
            _ => {}
        }
        Some(msg)
    }

    /// The session token the server gave last: [`Client::resume`] takes it back.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The last seq received of each game.
    pub fn seen(&self) -> &std::collections::BTreeMap<GameId, Seq> {
        &self.seen
    }

    /// The wire alone, to hand to another client with [`Client::replace_wire`].
    pub fn into_wire(self) -> W {
        self.wire
    }

    /// Carry on over a new wire (after the old connection dropped): what was received and
    /// not yet read stays, and [`Client::resume`] takes the session back.
    pub fn replace_wire(&mut self, wire: W) -> W {
        std::mem::replace(&mut self.wire, wire)
    }

    /// Subscribe to `channel` from seq `from` (1 if `None`): the channel's full name and its
    /// stream id, whose notices arrive as events.
    ///
    /// # Errors
    /// The server's error (`forbidden` for someone else's channel), or
    /// [`ClientError::Closed`].
    pub async fn subscribe(
        &mut self,
        channel: &str,
        from: Option<Seq>,
    ) -> Result<(String, GameId), ClientError> {
        let msg = ClientMsg::Subscribe {
            channel: channel.into(),
            from,
            last: None,
            r#ref: None,
        };
        match self.request(msg).await? {
            ServerMsg::Subscribed { channel, game, .. } => Ok((channel, game)),
            other => Err(failure(other)),
        }
    }

    /// Take back the session `session` (by default the one this client was last given) on
    /// this connection, with every game from just after the last seq received. Answers
    /// `resumed`.
    ///
    /// # Errors
    /// The server's error (`not_found` for an unknown or expired session), or
    /// [`ClientError::Closed`].
    pub async fn resume(&mut self, session: Option<&str>) -> Result<ServerMsg, ClientError> {
        let Some(token) = session.or(self.session.as_deref()).map(str::to_owned) else {
            return Err(ClientError::Server {
                code: ErrorCode::NotFound,
                message: "no session to resume".into(),
                reason: None,
            });
        };
        match self.request(self.resume_msg(token)).await? {
            resumed @ ServerMsg::Resumed { .. } => Ok(resumed),
            other => Err(failure(other)),
        }
    }

    /// `resume` for `session`, from just after each game's last seq received.
    fn resume_msg(&self, session: String) -> ClientMsg {
        let seen = self
            .seen
            .iter()
            .map(|(game, seq)| (game.to_string(), *seq))
            .collect();
        ClientMsg::Resume {
            session,
            seen,
            r#ref: None,
        }
    }

    /// How many spectators the server last said watch `game`, if it said.
    pub fn spectators(&self, game: GameId) -> Option<u64> {
        self.audience.get(&game).copied()
    }

    /// Wait until the server says `want` spectators watch `game`; everything else that
    /// arrives meanwhile is stashed.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn await_spectators(&mut self, game: GameId, want: u64) -> Result<(), ClientError> {
        while self.spectators(game) != Some(want) {
            if let Some(msg) = self.read_noting().await? {
                self.stash.push_back(msg);
            }
        }
        Ok(())
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
    /// arrives meanwhile is stashed for [`Client::recv`] and the event helpers.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn request(&mut self, mut msg: ClientMsg) -> Result<ServerMsg, ClientError> {
        self.next_ref += 1;
        let wanted = json!(self.next_ref);
        msg.set_reference(wanted.clone());
        let mut generation = self.generation;
        match self.wire.send(msg.clone()).await {
            Err(ClientError::Closed) if self.may_redial() => self.redial().await?,
            sent => sent?,
        }
        loop {
            if self.generation != generation {
                // A new connection: the request is lost with the old one.
                if !resendable(&msg) {
                    return Err(ClientError::Closed);
                }
                generation = self.generation;
                self.wire.send(msg.clone()).await?;
            }
            let Some(answer) = self.read_noting().await? else {
                continue;
            };
            if answer.reference() == Some(&wanted) {
                if let (ClientMsg::Hello { token, .. }, ServerMsg::Welcome { .. }) = (&msg, &answer)
                {
                    self.hello = Some(token.clone());
                }
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
        self.create_game(kind, config, false).await
    }

    /// Create a game of `kind` listed among its open games while it has a free seat.
    ///
    /// # Errors
    /// The server's error, or [`ClientError::Closed`].
    pub async fn create_open(&mut self, kind: &str, config: Value) -> Result<Game, ClientError> {
        self.create_game(kind, config, true).await
    }

    async fn create_game(
        &mut self,
        kind: &str,
        config: Value,
        open: bool,
    ) -> Result<Game, ClientError> {
        let msg = ClientMsg::Create {
            kind: kind.into(),
            config,
            open,
            r#ref: None,
        };
        seated(self.request(msg).await?)
    }

    /// Quick play: a seat in the open game of `kind` and `config` that has waited longest,
    /// or in a new one (then [`Game::join`] is set: the game waits for the others). With a
    /// matchmaker on the server, waits until it groups this player (by `props`).
    ///
    /// # Errors
    /// The server's error (`cancelled` after [`Client::cancel`]), or [`ClientError::Closed`].
    pub async fn play(
        &mut self,
        kind: &str,
        config: Value,
        props: Value,
    ) -> Result<Game, ClientError> {
        let msg = ClientMsg::Play {
            kind: kind.into(),
            config,
            props,
            r#ref: None,
        };
        seated(self.request(msg).await?)
    }

    /// Stop waiting to play (every kind if `None`): the plays waiting are answered
    /// `cancelled`.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn cancel(&mut self, kind: Option<&str>) -> Result<(), ClientError> {
        let msg = ClientMsg::Cancel {
            kind: kind.map(str::to_owned),
            r#ref: None,
        };
        match self.request(msg).await? {
            ServerMsg::Ok { .. } => Ok(()),
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
        seated(self.request(msg).await?)
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

/// Whether a request lost with its connection may be sent again on the next: it is applied at
/// most once either way.
fn resendable(msg: &ClientMsg) -> bool {
    match msg {
        ClientMsg::Command { cid, .. } => cid.is_some(),
        ClientMsg::Create { .. }
        | ClientMsg::Play { .. }
        | ClientMsg::Resume { .. }
        | ClientMsg::Hello { .. }
        | ClientMsg::Rematch { .. } => false,
        ClientMsg::Join { .. }
        | ClientMsg::Watch { .. }
        | ClientMsg::Leave { .. }
        | ClientMsg::Subscribe { .. }
        | ClientMsg::Cancel { .. }
        | ClientMsg::Ping { .. } => true,
    }
}

/// The game a `created` or `joined` answer seats the client in.
fn seated(answer: ServerMsg) -> Result<Game, ClientError> {
    match answer {
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
        ServerMsg::Joined {
            game,
            kind,
            seat,
            token,
            join,
            watch,
            ..
        } => Ok(Game {
            game,
            kind,
            seat,
            token,
            join,
            watch,
        }),
        other => Err(failure(other)),
    }
}

fn failure(msg: ServerMsg) -> ClientError {
    match msg {
        ServerMsg::Error {
            code,
            message,
            reason,
            ..
        } => ClientError::Server {
            code,
            message,
            reason,
        },
        other => ClientError::Unexpected(Box::new(other)),
    }
}
