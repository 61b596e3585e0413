//! One connection's session: reads client messages and answers them; a writer task sends
//! answers and events in order, and catches up from the log whenever events were skipped.
//!
//! The writer is the only one that sends on the connection, and it alone subscribes to games,
//! so the order on the wire is always: the answer (`created`, `joined`, `watching`), then every
//! past event from the log, then live events, each game's seqs without gap or repeat.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use umpire_engine::protocol::{ClientMsg, CloseCode, ErrorCode, GameId, ServerMsg};
use umpire_engine::{Actor, Seat, Seq};
use umpire_store::Role;

use crate::error::{HubError, Result};
use crate::fanout::{LagSignal, Subscriber};
use crate::frames::{Frame, Published};
use crate::handle::RoomHandle;
use crate::hub::Shared;
use crate::transport::{Closed, Connection, ConnectionWriter, Incoming};

/// Records read from the log per page while catching up.
const CATCH_UP_PAGE: usize = 256;

/// What the reader (and game tasks) queue for the writer.
#[derive(Debug)]
pub(crate) enum Out {
    /// An answer for this connection.
    Msg(ServerMsg),
    /// A game event, pushed by the game's task.
    Event(Arc<Published>),
    /// Send `ack`, then subscribe to the game and replay it from `from`.
    Subscribe {
        handle: RoomHandle,
        sub: Subscriber,
        from: Seq,
        ack: ServerMsg,
    },
    /// Stop delivering this game's events.
    Unsubscribe(GameId),
    /// Close the connection and stop.
    Close(CloseCode, String),
}

struct Session {
    shared: Arc<Shared>,
    id: u64,
    user: Option<String>,
    /// Random, not the session number: numbers restart with the process, and a guest name
    /// that recurs after a restart would inherit the old guest's seat.
    guest: String,
    seats: HashMap<GameId, (Seat, RoomHandle)>,
    watching: HashMap<GameId, RoomHandle>,
    subscribed: HashSet<GameId>,
    out: mpsc::Sender<Out>,
    lag: Arc<LagSignal>,
}

/// Serve one connection until the client leaves or the hub shuts down.
pub(crate) async fn run(shared: Arc<Shared>, conn: Box<dyn Connection>) {
    let peer = conn.peer();
    let (mut reader, writer) = conn.split();
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed) + 1;
    let (out, rx) = mpsc::channel(shared.config.queue_len.max(1));
    let lag = Arc::new(LagSignal::default());
    // Cancelled when either half is done: the client left, or the writer could not send.
    let stop = CancellationToken::new();
    shared.tracker.spawn(write_loop(
        Arc::clone(&shared),
        writer,
        rx,
        Arc::clone(&lag),
        stop.clone(),
    ));
    let mut session = Session {
        shared: Arc::clone(&shared),
        id,
        user: peer.user,
        guest: format!("guest-{}", &crate::keys::new_key()[..8]),
        seats: HashMap::new(),
        watching: HashMap::new(),
        subscribed: HashSet::new(),
        out,
        lag,
    };
    tracing::debug!(session = id, peer = %peer.label, "session opened");
    loop {
        let incoming = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = shared.shutdown.cancelled() => {
                session.closing().await;
                session.leave_all();
                return;
            }
            incoming = reader.recv() => incoming,
        };
        match incoming {
            None => break,
            Some(Incoming::Bad(why)) => {
                session.shared.metrics.rejected(ErrorCode::BadMessage);
                session
                    .send(ServerMsg::error(ErrorCode::BadMessage, why, None))
                    .await;
            }
            Some(Incoming::Refused {
                code,
                message,
                r#ref,
            }) => {
                session.shared.metrics.rejected(code);
                session.send(ServerMsg::error(code, message, r#ref)).await;
            }
            Some(Incoming::Msg(msg)) => session.handle(msg).await,
        }
    }
    session.leave_all();
    stop.cancel();
    tracing::debug!(session = id, "session closed");
}

impl Session {
    /// Who this connection plays as: the authenticated user, or its guest name.
    fn player(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.guest.clone())
    }

    async fn send(&self, msg: ServerMsg) {
        // Waits while the queue is full: a client that does not read stops being read.
        let _ = self.out.send(Out::Msg(msg)).await;
    }

    /// Tell the client the server is going away, then close with 1001.
    async fn closing(&self) {
        let reason = "the server is shutting down".to_owned();
        let grace = Duration::from_secs(1);
        let msg = Out::Msg(ServerMsg::Closing {
            reason: reason.clone(),
        });
        let _ = tokio::time::timeout(grace, self.out.send(msg)).await;
        let _ = tokio::time::timeout(
            grace,
            self.out.send(Out::Close(CloseCode::GoingAway, reason)),
        )
        .await;
    }

    fn leave_all(&self) {
        for game in &self.subscribed {
            let handle = self
                .seats
                .get(game)
                .map(|(_, h)| h)
                .or(self.watching.get(game));
            if let Some(handle) = handle {
                handle.unsubscribe(self.id);
            }
        }
    }

    async fn handle(&mut self, msg: ClientMsg) {
        let r = msg.reference().cloned();
        let anonymous_ok = matches!(msg, ClientMsg::Hello { .. } | ClientMsg::Ping { .. });
        if self.shared.config.require_auth && self.user.is_none() && !anonymous_ok {
            let e = HubError::Unauthorized("send hello with a token first".into());
            self.shared.metrics.rejected(e.code());
            self.send(ServerMsg::error(e.code(), e.to_string(), r))
                .await;
            return;
        }
        let is_hello = matches!(msg, ClientMsg::Hello { .. });
        let result = match msg {
            ClientMsg::Ping { .. } => Ok(Some(ServerMsg::Pong { r#ref: r.clone() })),
            ClientMsg::Hello { token, .. } => self.hello(&token).map(|user| {
                Some(ServerMsg::Welcome {
                    user,
                    r#ref: r.clone(),
                })
            }),
            ClientMsg::Create { kind, config, .. } => {
                self.create(&kind, config, r.clone()).await.map(|()| None)
            }
            ClientMsg::Join { key, .. } => self.join(&key, r.clone()).await.map(|()| None),
            ClientMsg::Watch { key, from, .. } => {
                self.watch(&key, from, r.clone()).await.map(|()| None)
            }
            ClientMsg::Command { game, cmd, cid, .. } => {
                self.command(game, cmd, cid).await.map(|seq| {
                    self.shared.metrics.commands_accepted.inc();
                    Some(ServerMsg::Ok {
                        game: Some(game),
                        seq: Some(seq),
                        r#ref: r.clone(),
                    })
                })
            }
            ClientMsg::Leave { game, .. } => self.leave(game).await.map(|seq| {
                Some(ServerMsg::Ok {
                    game: Some(game),
                    seq,
                    r#ref: r.clone(),
                })
            }),
            ClientMsg::Subscribe { channel, .. } => Err(HubError::NotFound(format!(
                "no channel {channel:?}: this server has no channels yet"
            ))),
        };
        match result {
            Ok(Some(answer)) => self.send(answer).await,
            Ok(None) => {}
            Err(e) => {
                self.shared.metrics.rejected(e.code());
                self.send(ServerMsg::error(e.code(), e.to_string(), r))
                    .await;
                if is_hello {
                    // A bad token is a policy violation, not a typo to retry on this connection.
                    let close = Out::Close(CloseCode::Policy, "bad token".into());
                    let _ = self.out.send(close).await;
                }
            }
        }
    }

    fn hello(&mut self, token: &str) -> Result<String> {
        let auth =
            self.shared.auth.as_ref().ok_or_else(|| {
                HubError::Unauthorized("this server does not authenticate".into())
            })?;
        let user = auth.verify(token).map_err(HubError::Unauthorized)?;
        self.user = Some(user.clone());
        Ok(user)
    }

    async fn create(&mut self, kind: &str, config: Value, r: Option<Value>) -> Result<()> {
        let created = Shared::create(&self.shared, kind, config, self.player()).await?;
        let handle = self.shared.room(created.game)?;
        self.seats
            .insert(created.game, (created.seat, handle.clone()));
        let ack = ServerMsg::Created {
            game: created.game,
            kind: created.kind,
            join: created.join,
            watch: created.watch,
            seat: created.seat,
            token: created.token,
            r#ref: r,
        };
        self.subscribe(handle, 1, ack).await;
        Ok(())
    }

    async fn join(&mut self, key: &str, r: Option<Value>) -> Result<()> {
        let (role, handle) = self.shared.open_key(key)?;
        let (seat, token) = match role {
            Role::Join => {
                let joined = handle.join(self.player()).await?;
                (joined.seat, joined.token)
            }
            Role::Seat(seat) => (Seat(seat), key.to_owned()),
            Role::Watch => {
                return Err(HubError::Forbidden("a watch key cannot take a seat".into()))
            }
        };
        self.seats.insert(handle.game, (seat, handle.clone()));
        let ack = ServerMsg::Joined {
            game: handle.game,
            kind: handle.kind.to_owned(),
            seat,
            token,
            r#ref: r,
        };
        self.subscribe(handle, 1, ack).await;
        Ok(())
    }

    async fn watch(&mut self, key: &str, from: Option<Seq>, r: Option<Value>) -> Result<()> {
        let (_, handle) = self.shared.open_key(key)?;
        self.watching.insert(handle.game, handle.clone());
        let ack = ServerMsg::Watching {
            game: handle.game,
            kind: handle.kind.to_owned(),
            r#ref: r,
        };
        self.subscribe(handle, from.unwrap_or(1).max(1), ack).await;
        Ok(())
    }

    /// Answer with `ack`; then, unless already subscribed, have the writer subscribe and replay.
    async fn subscribe(&mut self, handle: RoomHandle, from: Seq, ack: ServerMsg) {
        if !self.subscribed.insert(handle.game) {
            self.send(ack).await;
            return;
        }
        let sub = Subscriber {
            session: self.id,
            tx: self.out.clone(),
            lag: Arc::clone(&self.lag),
        };
        let _ = self
            .out
            .send(Out::Subscribe {
                handle,
                sub,
                from,
                ack,
            })
            .await;
    }

    async fn command(&mut self, game: GameId, cmd: Value, cid: Option<String>) -> Result<Seq> {
        let Some((seat, handle)) = self.seats.get(&game) else {
            return Err(if self.watching.contains_key(&game) {
                HubError::Forbidden("spectators cannot play".into())
            } else {
                HubError::NotFound(format!("you have no seat in game {game}"))
            });
        };
        let (seat, handle) = (*seat, handle.clone());
        handle.submit(Actor::Seat(seat), cmd, cid).await
    }

    async fn leave(&mut self, game: GameId) -> Result<Option<Seq>> {
        let seq = if let Some((seat, handle)) = self.seats.remove(&game) {
            Some(handle.leave(seat, self.id).await?)
        } else if let Some(handle) = self.watching.remove(&game) {
            handle.unsubscribe(self.id);
            None
        } else {
            return Err(HubError::NotFound(format!("you are not in game {game}")));
        };
        self.watching.remove(&game);
        if self.subscribed.remove(&game) {
            let _ = self.out.send(Out::Unsubscribe(game)).await;
        }
        Ok(seq)
    }
}

/// Where the writer is in one game: the next seq to send, and the game's head.
struct Cursor {
    next: Seq,
    handle: RoomHandle,
}

/// Send everything queued for the connection, in order, filling gaps from the log.
async fn write_loop(
    shared: Arc<Shared>,
    mut writer: Box<dyn ConnectionWriter>,
    mut rx: mpsc::Receiver<Out>,
    lag: Arc<LagSignal>,
    stop: CancellationToken,
) {
    let mut cursors: HashMap<GameId, Cursor> = HashMap::new();
    loop {
        let item = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            () = lag.notify.notified() => {
                if catch_up_lagging(&shared, &mut *writer, &mut cursors, &lag).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let sent = match item {
            Out::Msg(msg) => writer.send(Frame::Msg(msg)).await,
            Out::Event(frame) => deliver(&shared, &mut *writer, &mut cursors, frame).await,
            Out::Subscribe {
                handle,
                sub,
                from,
                ack,
            } => subscribe(&shared, &mut *writer, &mut cursors, handle, sub, from, ack).await,
            Out::Unsubscribe(game) => {
                cursors.remove(&game);
                Ok(())
            }
            Out::Close(code, reason) => {
                writer.close(code, &reason).await;
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    stop.cancel();
}

async fn subscribe(
    shared: &Shared,
    writer: &mut dyn ConnectionWriter,
    cursors: &mut HashMap<GameId, Cursor>,
    handle: RoomHandle,
    sub: Subscriber,
    from: Seq,
    ack: ServerMsg,
) -> Result<(), Closed> {
    writer.send(Frame::Msg(ack)).await?;
    let game = handle.game;
    let head = match handle.subscribe(sub).await {
        Ok(head) => head,
        Err(e) => {
            let msg = ServerMsg::error(e.code(), format!("game {game}: {e}"), None);
            return writer.send(Frame::Msg(msg)).await;
        }
    };
    let mut cursor = Cursor { next: from, handle };
    let caught_up = catch_up(shared, writer, game, &mut cursor, head).await;
    cursors.insert(game, cursor);
    caught_up
}

/// Send a live event, first filling any gap before it from the log; drop repeats.
async fn deliver(
    shared: &Shared,
    writer: &mut dyn ConnectionWriter,
    cursors: &mut HashMap<GameId, Cursor>,
    frame: Arc<Published>,
) -> Result<(), Closed> {
    let Some(cursor) = cursors.get_mut(&frame.game) else {
        return Ok(()); // unsubscribed meanwhile
    };
    if frame.seq < cursor.next {
        return Ok(()); // already sent from the log
    }
    if frame.seq > cursor.next {
        catch_up(shared, writer, frame.game, cursor, frame.seq - 1).await?;
    }
    writer.send(Frame::Event(Arc::clone(&frame))).await?;
    cursor.next = frame.seq + 1;
    Ok(())
}

async fn catch_up_lagging(
    shared: &Shared,
    writer: &mut dyn ConnectionWriter,
    cursors: &mut HashMap<GameId, Cursor>,
    lag: &LagSignal,
) -> Result<(), Closed> {
    for game in lag.take() {
        if let Some(cursor) = cursors.get_mut(&game) {
            let head = cursor.handle.head();
            catch_up(shared, writer, game, cursor, head).await?;
        }
    }
    Ok(())
}

/// Send `cursor.next ..= upto` from the log. Everything up to a game's head is durable.
async fn catch_up(
    shared: &Shared,
    writer: &mut dyn ConnectionWriter,
    game: GameId,
    cursor: &mut Cursor,
    upto: Seq,
) -> Result<(), Closed> {
    while cursor.next <= upto {
        let want = usize::try_from(upto - cursor.next + 1)
            .unwrap_or(usize::MAX)
            .min(CATCH_UP_PAGE);
        let page = match shared.log.read(game, cursor.next, want) {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(game, error = %e, "catch-up read failed");
                let msg = ServerMsg::error(
                    ErrorCode::Internal,
                    "the game's history could not be read",
                    None,
                );
                writer.send(Frame::Msg(msg)).await?;
                writer.close(CloseCode::Internal, "storage failure").await;
                return Err(Closed);
            }
        };
        if page.is_empty() {
            break;
        }
        for (seq, record) in page {
            match Published::from_record(game, seq, &record) {
                Ok(frame) => writer.send(Frame::Event(frame)).await?,
                Err(e) => tracing::error!(game, seq, error = %e, "skipping an undecodable record"),
            }
            cursor.next = seq + 1;
        }
    }
    Ok(())
}
