//! One client connection as the hub serves it: a [`Session`]. The transport reads the client's
//! messages and hands them to [`Session::handle`], and sends whatever [`Session::next`] gives
//! back. The session never waits for a game: a request goes to the game's task, and the
//! answer comes back through the session's outbox, in order with the game's events.
//!
//! This file is the request side; `feed` is the sending side, `resume` keeps and takes back
//! sessions, `quota` counts creates per minute, `shared` is what every session shares.

mod answers;
pub(crate) mod feed;
mod play;
pub(crate) mod quota;
pub(crate) mod resume;
pub(crate) mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio_util::task::task_tracker::TaskTrackerToken;
use umpire_engine::protocol::{ClientMsg, CloseCode, ErrorCode, GameId, ServerMsg};
use umpire_engine::{Actor, Seat, Seq};

use crate::error::{Denied, Held, HubError, Malformed, Missing, Quota, Unauthenticated};
use crate::frames::Frame;
use crate::handle::{RoomHandle, RoomMsg, SessionId, Subscriber};
use crate::outbox::{Item, Outbox, ReplyTo};
use crate::session::shared::Inner;

/// A request to a game that waits for the log first (a create, a join), owning all it needs.
pub(crate) type Pending =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RoomHandle, HubError>> + Send>>;

/// A page of records read from the log, or why not.
pub(crate) type PageRead = umpire_store::Result<Vec<(Seq, bytes::Bytes)>>;

/// A rematch under way: the finished game, whether it creates the next one, the request's
/// `ref`, and the request to the registry.
pub(crate) struct Rematching {
    old: GameId,
    creates: bool,
    r: Option<Value>,
    pending: Pending,
}

impl std::fmt::Debug for Rematching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rematching")
            .field("old", &self.old)
            .field("creates", &self.creates)
            .finish_non_exhaustive()
    }
}

/// Who is on the other end of a connection, as the transport learned it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// A user the transport authenticated (from a handshake, say), if any.
    pub user: Option<String>,
    /// A description for logs (an address).
    pub label: String,
    /// The client's address, if the transport knows it: creates and subscriptions are
    /// counted per address as well as per connection, so that a client opening many
    /// connections is held like one. `None` (an in-process client): counted per connection.
    pub address: Option<std::net::IpAddr>,
    /// The groups the transport's login put the user in: the connection may subscribe to
    /// their `group:` channels (and each facility's) whatever the hub's
    /// [`GroupPolicy`](crate::GroupPolicy) says. At most [`MAX_GROUPS`] are kept.
    pub groups: Vec<String>,
    /// The key of the web application's session this connection belongs to (its session
    /// cookie), if the login knows it: the connection may subscribe to each facility's
    /// `session:<key>` channel.
    pub web_session: Option<String>,
}

/// The most groups a [`Peer`] brings in.
pub const MAX_GROUPS: usize = 64;

/// What a login said beyond the user, kept boxed: most connections have none.
#[derive(Debug, Default)]
struct Membership {
    groups: Vec<String>,
    web_session: Option<String>,
}

/// What the transport sends next.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A frame for the client.
    Frame(Frame),
    /// Close the connection with this code and reason; the session is done.
    Close(CloseCode, String),
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stage {
    /// Taking requests.
    Open,
    /// The hub is shutting down: no new requests; answers in flight are still sent, until
    /// they are all in or the deadline passes. Then `closing` and 1001.
    Stopping(tokio::time::Instant),
    /// The close has been handed to the transport.
    Closed,
}

/// Reading from the log still to do: send `game`'s events up to `upto`, then `then` (see
/// `feed.rs`).
#[derive(Debug)]
struct CatchUp {
    game: GameId,
    upto: Seq,
    then: Option<Outgoing>,
}

/// What the session knows about one game it talks to.
#[derive(Debug)]
pub(crate) struct Link {
    handle: RoomHandle,
    seat: Option<Seat>,
    watching: bool,
    /// The next seq to send; `None` until the game's answer subscribed the session.
    next: Option<Seq>,
    /// Requests to enter the game (create, join, watch) not answered yet: a link that never
    /// got in is forgotten once none is left.
    entering: u32,
    /// The first seq to send once the game answers (1 unless resuming).
    from: Seq,
    /// Entered by `resume`: the game's answer is not shown to the client (`resumed` was).
    quiet: bool,
    /// The seat token, once seated.
    token: Option<String>,
    /// The game's kind, once answered.
    kind: String,
    /// The channel's name, if the stream is a channel.
    channel: Option<String>,
}

impl Link {
    /// Who this session is in the game, for what it may see of its events.
    pub(crate) fn viewer(&self) -> umpire_engine::Viewer {
        self.seat.map_or(
            umpire_engine::Viewer::Spectator,
            umpire_engine::Viewer::Seat,
        )
    }
}

/// One client connection. Made by [`crate::Hub::session`]; driven by a transport.
///
/// Dropping it unsubscribes from every game and lets a shutdown that waits for it go on.
#[derive(Debug)]
pub struct Session {
    hub: Arc<Inner>,
    id: SessionId,
    user: Option<String>,
    /// Random, not the session number: numbers restart with the process, and a guest name
    /// that recurs after a restart would inherit the old guest's seat.
    guest: String,
    /// The resume token: the session is kept in the log under it (see `resume.rs`).
    token: String,
    /// Whether a record of this session is in the log.
    saved: bool,
    /// Whether it may be kept for resuming at all (see [`Session::never_resumed`]).
    resumable: bool,
    /// Rematches this session is creating: new game -> the finished game to tell.
    rematches: HashMap<GameId, GameId>,
    /// Rematches to start (the finished game's plan came), in order: each waits for the log
    /// in [`Session::next`], the one at the front first.
    rematching: VecDeque<Rematching>,
    /// The session's public id: its channel is `session:<sid>`.
    sid: String,
    /// Boxed: a session is mostly in one game, and a map's first allocation holds four
    /// entries (four links inline were 700 bytes a connection).
    games: HashMap<GameId, Box<Link>>,
    /// Games this connection created in the last minute.
    creates: crate::session::quota::Window,
    /// The client's address as the per-address quotas count it.
    address: Option<String>,
    /// Groups and web session from the transport's login, if it named any.
    membership: Option<Box<Membership>>,
    /// Quick play and matchmaking, once the connection has asked to play.
    plays: Option<Box<play::Plays>>,
    outbox: Arc<Outbox>,
    /// Taken from the outbox, not yet looked at.
    items: VecDeque<Item>,
    lagged: Vec<GameId>,
    /// Ready to send, in order.
    ready: VecDeque<Outgoing>,
    /// Reading from the log still to do, in order (see `feed.rs`).
    work: VecDeque<CatchUp>,
    /// The page the first job needs next: game, from, how many (read by `Session::next`).
    to_read: Option<(GameId, Seq, usize)>,
    /// That page, once read, with the game and seq it was read from.
    page: Option<((GameId, Seq), PageRead)>,
    /// A catch-up read failed on a storage error: try again at this time, not before.
    retry_at: Option<tokio::time::Instant>,
    /// Since when the connection has been behind (its outbox overflowed and it has not
    /// caught up since): past `max_behind` it is closed.
    behind_since: Option<tokio::time::Instant>,
    /// Requests sent to games and not answered yet.
    in_flight: usize,
    stage: Stage,
    /// What the monitor was last told: games followed, signed in, behind.
    noted: (usize, bool, bool),
    _alive: TaskTrackerToken,
}

/// The longest user id a token or a transport may name: it is stored with every seat the user
/// takes.
pub const MAX_USER_BYTES: usize = 128;

impl Session {
    pub(crate) fn new(hub: Arc<Inner>, id: SessionId, peer: Peer) -> Self {
        let rt = &hub.registry.rt;
        let outbox = Arc::new(Outbox::new(rt.config.queue_len));
        let alive = rt.tracker.token();
        let token = crate::game::keys::new_key();
        hub.sessions.open(&token, &outbox);
        let sid = crate::game::keys::new_key()[..12].to_owned();
        outbox.update_card(|card| {
            card.session = id;
            card.peer.clone_from(&peer.label);
            card.opened = rt.clock.now();
            card.user.clone_from(&peer.user);
            card.sid.clone_from(&sid);
        });
        tracing::debug!(session = %id, peer = %peer.label, "session opened");
        Session {
            id,
            user: peer.user,
            guest: crate::game::keys::guest_name(),
            token,
            saved: false,
            resumable: true,
            rematches: HashMap::new(),
            rematching: VecDeque::new(),
            sid,
            games: HashMap::new(),
            creates: crate::session::quota::Window::default(),
            address: peer.address.map(|ip| ip.to_string()),
            plays: None,
            membership: (!peer.groups.is_empty() || peer.web_session.is_some()).then(|| {
                let mut groups = peer.groups;
                groups.truncate(MAX_GROUPS);
                Box::new(Membership {
                    groups,
                    web_session: peer.web_session,
                })
            }),
            outbox,
            items: VecDeque::new(),
            lagged: Vec::new(),
            ready: VecDeque::new(),
            work: VecDeque::new(),
            to_read: None,
            page: None,
            retry_at: None,
            behind_since: None,
            in_flight: 0,
            stage: Stage::Open,
            noted: (0, false, false),
            _alive: alive,
            hub,
        }
    }

    /// The session's number in this process, as logs name it.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Tell the hub that this session's client can never resume it (its protocol does not
    /// give the client its token, as the `websockets` tutorial's does not): nothing is kept
    /// for resuming it. Call before the first request.
    pub fn never_resumed(&mut self) {
        self.resumable = false;
    }

    /// What every game task runs on: the settings, the clock, the metrics.
    pub(crate) fn rt(&self) -> &crate::game::runtime::Runtime {
        &self.hub.registry.rt
    }

    /// Whether the session takes another request now. While it does not (too many requests
    /// in flight, or shutting down), the transport should stop reading the client: its
    /// messages wait in the socket.
    pub fn ready_for_input(&self) -> bool {
        self.stage == Stage::Open && self.in_flight < self.rt().config.max_in_flight
    }

    /// Who this connection is, as `welcome` and `resumed` say: the user, or the guest name.
    pub(crate) fn shown_user(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.guest.clone())
    }

    /// Who this connection plays as: the authenticated user, or its guest name.
    pub(crate) fn player(&self) -> String {
        match &self.user {
            Some(user) => crate::game::keys::user_name(user),
            None => self.guest.clone(),
        }
    }

    pub(crate) fn reply(&self, r#ref: Option<Value>) -> ReplyTo {
        ReplyTo::session(Arc::clone(&self.outbox), r#ref)
    }

    pub(crate) fn subscriber(&self) -> Subscriber {
        Subscriber {
            session: self.id,
            outbox: Arc::clone(&self.outbox),
            seat: None,
        }
    }

    /// Queue a message for the client.
    pub(crate) fn say(&mut self, msg: ServerMsg) {
        self.ready
            .push_back(Outgoing::Frame(Frame::Msg(Box::new(msg))));
    }

    /// Answer with an error.
    pub(crate) fn refuse_with(&mut self, e: &HubError, r#ref: Option<Value>) {
        self.answer_error(e.code(), e.to_string(), e.reason().cloned(), r#ref);
    }

    /// Answer something the transport could not take (bytes that are no message, a message
    /// over the rate limit) with `code`, echoing the message's `ref` if it had one.
    pub fn refuse(&mut self, code: ErrorCode, message: String, r#ref: Option<Value>) {
        self.answer_error(code, message, None, r#ref);
    }

    /// Count and send an `error` answer.
    fn answer_error(
        &mut self,
        code: ErrorCode,
        message: String,
        reason: Option<Value>,
        r#ref: Option<Value>,
    ) {
        self.rt().metrics.rejected(code);
        self.say(ServerMsg::Error {
            code,
            message,
            reason,
            r#ref,
        });
    }

    /// Close the connection after what is queued, with `code` and `reason`.
    pub(crate) fn close(&mut self, code: CloseCode, reason: &str) {
        self.ready
            .push_back(Outgoing::Close(code, reason.to_owned()));
        self.stage = Stage::Closed;
        self.work.clear();
        self.to_read = None;
    }

    /// Handle one message from the client. Never waits for a game: answers come out of
    /// [`Session::next`], each echoing its request's `ref`. Answers about one game come in
    /// the order of the requests; answers about different games may cross. It waits for the
    /// log only where a request needs it now (a key to look up, a game to load, a session to
    /// take back); the transport handles the client's next message after this returns.
    pub async fn handle(&mut self, msg: ClientMsg) {
        if self.stage != Stage::Open {
            return;
        }
        let r = msg.reference().cloned();
        let anonymous_ok = matches!(msg, ClientMsg::Hello { .. } | ClientMsg::Ping { .. });
        if self.rt().config.require_auth && self.user.is_none() && !anonymous_ok {
            let e = HubError::Unauthorized(Unauthenticated::HelloFirst);
            self.refuse_with(&e, r);
            return;
        }
        let result = match msg {
            ClientMsg::Ping { .. } => {
                let now = self.rt().clock.now();
                self.say(ServerMsg::Pong {
                    now,
                    r#ref: r.clone(),
                });
                Ok(())
            }
            ClientMsg::Hello { token, .. } => self.hello(&token, r.clone()),
            ClientMsg::Command { game, cmd, cid, .. } => {
                self.command(game, cmd, cid, r.clone()).await
            }
            // The rest wait for the log (a key, a load, a session): boxed, so that what they
            // hold while waiting is not part of every connection's task, idle or not.
            other => Box::pin(self.handle_slow(other, r.clone())).await,
        };
        if let Err(e) = result {
            self.refuse_with(&e, r);
        }
    }

    /// The requests that may wait for the log.
    async fn handle_slow(&mut self, msg: ClientMsg, r: Option<Value>) -> Result<(), HubError> {
        match msg {
            ClientMsg::Create {
                kind, config, open, ..
            } => {
                let listed = open.then(|| config.clone());
                let game = self.create(&kind, config, r).await?;
                if let Some(config) = listed {
                    // Made now, so that the lobby runs when the game's keys come.
                    self.hub.registry.lobby(&kind).await?;
                    self.list_when_created(game, &kind, config);
                }
                Ok(())
            }
            ClientMsg::Play {
                kind,
                config,
                props,
                ..
            } => self.play(&kind, config, props, r).await,
            ClientMsg::Cancel { kind, .. } => {
                self.cancel(kind.as_deref(), r);
                Ok(())
            }
            ClientMsg::Rematch { game, .. } => self.rematch(game, r).await,
            ClientMsg::Join { key, .. } => self.join(&key, r).await,
            ClientMsg::Watch { key, from, .. } => self.watch(&key, from, r).await,
            ClientMsg::Leave { game, .. } => self.leave(game, r).await,
            ClientMsg::Subscribe {
                channel,
                from,
                last,
                ..
            } => self.subscribe(&channel, from, last, r).await,
            ClientMsg::Resume { session, seen, .. } => self.resume(&session, &seen, r).await,
            ClientMsg::Ping { .. } | ClientMsg::Hello { .. } | ClientMsg::Command { .. } => Ok(()),
        }
    }

    /// Tell the monitor what changed about this connection (cheap when nothing did). Called
    /// as each frame is taken to send, so after every request too.
    pub(crate) fn note(&mut self) {
        let now = (
            self.games.len(),
            self.user.is_some(),
            self.behind_since.is_some(),
        );
        if now == self.noted {
            return;
        }
        self.noted = now;
        let clock = self.rt().clock.now();
        let behind = self.behind_since.map(|since| {
            clock.saturating_sub(u64::try_from(since.elapsed().as_millis()).unwrap_or(0))
        });
        let user = self.user.clone();
        self.outbox.update_card(|card| {
            card.games = now.0;
            card.user = user;
            card.behind_since = behind;
        });
    }

    /// A request to enter `handle`'s game went out: remember the game, count the answer owed.
    pub(crate) fn sent(&mut self, handle: RoomHandle) -> &mut Link {
        self.in_flight += 1;
        let link = self.games.entry(handle.game).or_insert_with(|| {
            Box::new(Link {
                handle,
                seat: None,
                watching: false,
                next: None,
                entering: 0,
                from: Seq(1),
                quiet: false,
                token: None,
                kind: String::new(),
                channel: None,
            })
        });
        link.entering += 1;
        link
    }

    fn hello(&mut self, token: &str, r: Option<Value>) -> Result<(), HubError> {
        // One identity per connection, taken before it plays or watches anything.
        if let Some(user) = &self.user {
            return Err(HubError::Forbidden(Denied::SignedIn(user.clone())));
        }
        if !self.games.is_empty() {
            return Err(HubError::Forbidden(Denied::HelloLate));
        }
        let verified = match &self.hub.auth {
            Some(auth) => auth
                .verify(token)
                .map_err(|why| HubError::Unauthorized(Unauthenticated::Token(why)))
                .and_then(|user| {
                    if user.is_empty() || user.len() > MAX_USER_BYTES {
                        Err(HubError::Unauthorized(Unauthenticated::UserLength(
                            MAX_USER_BYTES,
                        )))
                    } else {
                        Ok(user)
                    }
                }),
            None => Err(HubError::Unauthorized(Unauthenticated::NoAuthenticator)),
        };
        match verified {
            Ok(user) => {
                self.user = Some(user.clone());
                self.say(ServerMsg::Welcome {
                    user,
                    session: Some(self.token.clone()),
                    r#ref: r,
                });
            }
            Err(e) => {
                // A bad token is a policy violation, not a typo to retry on this connection.
                self.refuse_with(&e, r);
                self.close(CloseCode::Policy, "bad token");
            }
        }
        Ok(())
    }

    /// Refuse to enter one more game past the connection's limit.
    fn room_for_one_more(&self) -> Result<(), HubError> {
        let limit = self.rt().config.limits.games_per_connection;
        if self.games.len() >= limit {
            return Err(HubError::Limit(Held::ConnectionGames(limit)));
        }
        Ok(())
    }

    /// Refuse to enter a game when entering would make this session one more kept for
    /// resuming and the server keeps as many as it may.
    fn room_to_keep(&self) -> Result<(), HubError> {
        let max = self.rt().config.limits.max_kept_sessions;
        if !self.saved && self.hub.sessions.kept() >= max {
            return Err(HubError::Limit(Held::KeptSessions(max)));
        }
        Ok(())
    }

    /// Create a game; its id (the answer comes later).
    pub(crate) async fn create(
        &mut self,
        kind: &str,
        config: Value,
        r: Option<Value>,
    ) -> Result<GameId, HubError> {
        let handle = self.start_create(kind, config, r)?.await?;
        Ok(self.created(handle))
    }

    /// Check that this connection may create a game now, and the creation to wait for (the
    /// registry's, owning all it needs: the session may be busy with other things meanwhile).
    pub(crate) fn start_create(
        &mut self,
        kind: &str,
        config: Value,
        r: Option<Value>,
    ) -> Result<Pending, HubError> {
        self.room_for_one_more()?;
        self.room_to_keep()?;
        let limits = &self.rt().config.limits;
        let (per_minute, per_player) = (limits.creates_per_minute, limits.live_games_per_player);
        let per_address = limits.creates_per_minute_per_address;
        let now = tokio::time::Instant::now();
        let too_fast = || HubError::TooFast(Quota::Creates(per_minute));
        // Only games created count: a refused config costs the client a message, not a game.
        if !self.creates.allows(now, per_minute) {
            return Err(too_fast());
        }
        if let Some(user) = &self.user {
            if !self.hub.creates.allows(user, now, per_minute) {
                return Err(too_fast());
            }
        }
        if let Some(address) = &self.address {
            if !self.hub.address_creates.allows(address, now, per_address) {
                return Err(HubError::TooFast(Quota::AddressCreates(per_address)));
            }
        }
        let sub = Some(self.subscriber());
        let reply = self.reply(r);
        let player = self.player();
        let hub = Arc::clone(&self.hub);
        let kind = kind.to_owned();
        Ok(Box::pin(async move {
            hub.registry
                .create(&kind, config, player, Some(per_player), sub, reply)
                .await
        }))
    }

    /// A creation went out: count it against the quotas, follow the game; its id.
    pub(crate) fn created(&mut self, handle: RoomHandle) -> GameId {
        let now = tokio::time::Instant::now();
        self.creates.record(now);
        if let Some(user) = &self.user {
            self.hub.creates.record(user, now);
        }
        if let Some(address) = &self.address {
            self.hub.address_creates.record(address, now);
        }
        let game = handle.game;
        self.sent(handle);
        game
    }

    /// Ask the finished `game` for its rematch (see `Answer::Rematch` in `feed.rs`).
    async fn rematch(&mut self, game: GameId, r: Option<Value>) -> Result<(), HubError> {
        if self.games.get(&game).and_then(|l| l.seat).is_none() {
            return Err(HubError::NotFound(Missing::NoSeatForRematch(game)));
        }
        self.live(game).await?.send(RoomMsg::Rematch {
            reply: self.reply(r),
        })?;
        self.in_flight += 1;
        Ok(())
    }

    pub(crate) async fn join(&mut self, key: &str, r: Option<Value>) -> Result<(), HubError> {
        let handle = self.start_join(key, None, r)?.await?;
        self.sent(handle);
        Ok(())
    }

    /// Check that this connection may take one more seat, and the join to wait for (`seat`,
    /// if free: the one a matchmaker gave).
    pub(crate) fn start_join(
        &mut self,
        key: &str,
        seat: Option<Seat>,
        r: Option<Value>,
    ) -> Result<Pending, HubError> {
        self.room_for_one_more()?;
        self.room_to_keep()?;
        let sub = Some(self.subscriber());
        let reply = self.reply(r);
        let player = self.player();
        let hub = Arc::clone(&self.hub);
        let key = key.to_owned();
        Ok(Box::pin(async move {
            hub.registry.join(&key, player, seat, sub, reply).await
        }))
    }

    async fn watch(
        &mut self,
        key: &str,
        from: Option<Seq>,
        r: Option<Value>,
    ) -> Result<(), HubError> {
        self.room_for_one_more()?;
        self.room_to_keep()?;
        let (_, game) = self.hub.registry.find_key(key).await?;
        let msg = RoomMsg::Watch {
            sub: self.subscriber(),
            from: from.unwrap_or(Seq(1)).max(Seq(1)),
            reply: self.reply(r),
        };
        let handle = self.hub.registry.send(game, msg).await?;
        self.sent(handle);
        Ok(())
    }

    /// Follow channel `channel` from seq `from` (default 1: its whole kept history), or from
    /// its `last` notices.
    async fn subscribe(
        &mut self,
        channel: &str,
        from: Option<Seq>,
        last: Option<u32>,
        r: Option<Value>,
    ) -> Result<(), HubError> {
        use crate::game::channel::Access;
        let name = if channel == "session" {
            format!("session:{}", self.sid)
        } else {
            channel.to_owned()
        };
        let membership = self.membership.as_deref();
        match crate::game::channel::access(&name)? {
            Access::Everyone => {}
            Access::User(id) if self.user.as_deref() == Some(id) => {}
            Access::User(id) => {
                return Err(HubError::Forbidden(Denied::UserChannel(id.to_owned())))
            }
            Access::Group(group) => {
                let user = self.user.as_deref();
                let member = membership.is_some_and(|m| m.groups.iter().any(|g| g == group));
                if !member
                    && !self
                        .hub
                        .groups
                        .as_ref()
                        .is_some_and(|p| p.may_subscribe(user, group))
                {
                    return Err(HubError::Forbidden(Denied::GroupChannel(group.to_owned())));
                }
            }
            Access::Session(sid) if sid == self.sid => {}
            Access::Session(_) => return Err(HubError::Forbidden(Denied::SessionChannel)),
            Access::WebSession(key)
                if membership.and_then(|m| m.web_session.as_deref()) == Some(key) => {}
            Access::WebSession(_) => return Err(HubError::Forbidden(Denied::WebSessionChannel)),
        }
        self.room_for_one_more()?;
        let now = tokio::time::Instant::now();
        let per_address = self.rt().config.limits.subscribes_per_minute_per_address;
        if let Some(address) = &self.address {
            if !self
                .hub
                .address_subscribes
                .allows(address, now, per_address)
            {
                return Err(HubError::TooFast(Quota::AddressSubscribes(per_address)));
            }
        }
        if let Some(kind) = name.strip_prefix("lobby:") {
            // A kind's open games: its lobby publishes them (and makes the channel).
            self.hub.registry.lobby(kind).await?;
        }
        let handle = if crate::game::channel::made_by_subscribing(&name) {
            self.hub.registry.channel(&name).await?
        } else {
            self.hub
                .registry
                .existing_channel(&name)
                .await?
                .ok_or_else(|| HubError::NotFound(Missing::Unpublished(name.clone())))?
        };
        if let Some(address) = &self.address {
            self.hub.address_subscribes.record(address, now);
        }
        let from = match last {
            // The head as the task last published it: a notice on its way is sent live.
            Some(last) => handle.head().saturating_sub(u64::from(last)) + 1,
            None => from.unwrap_or(Seq(1)).max(Seq(1)),
        };
        handle.send(RoomMsg::Watch {
            sub: self.subscriber(),
            from,
            reply: self.reply(r),
        })?;
        self.sent(handle).channel = Some(name);
        Ok(())
    }

    /// The handle of a game this session talks to, loading the game again if its task
    /// stopped (a storage failure stops it): the session follows the new task where it
    /// followed the old one.
    async fn live(&mut self, game: GameId) -> Result<RoomHandle, HubError> {
        let Some(link) = self.games.get(&game) else {
            return Err(HubError::NotFound(Missing::NotIn(game)));
        };
        if !link.handle.is_closed() {
            return Ok(link.handle.clone());
        }
        // Rare, and waits for the log: boxed (see `handle`).
        Box::pin(self.follow_again(game)).await
    }

    /// `game`'s task stopped: its handle anew, loading the game (following it again if this
    /// session followed it).
    async fn follow_again(&mut self, game: GameId) -> Result<RoomHandle, HubError> {
        let Some(link) = self.games.get(&game) else {
            return Err(HubError::NotFound(Missing::NotIn(game)));
        };
        let (followed, seat) = (link.next.is_some(), link.seat);
        let handle = if followed {
            let msg = RoomMsg::Follow {
                sub: Subscriber {
                    seat,
                    ..self.subscriber()
                },
                reply: self.reply(None),
            };
            let handle = self.hub.registry.send(game, msg).await?;
            self.in_flight += 1;
            handle
        } else {
            self.hub.registry.room(game).await?
        };
        if let Some(link) = self.games.get_mut(&game) {
            link.handle = handle.clone();
        }
        Ok(handle)
    }

    async fn command(
        &mut self,
        game: GameId,
        cmd: Value,
        cid: Option<String>,
        r: Option<Value>,
    ) -> Result<(), HubError> {
        let max_cid = self.rt().config.limits.max_cid_bytes;
        if cid.as_ref().is_some_and(|c| c.len() > max_cid) {
            return Err(HubError::BadCommand(Malformed::CidTooLong(max_cid)));
        }
        let link = self.games.get(&game);
        let Some(seat) = link.and_then(|l| l.seat) else {
            return Err(if link.is_some_and(|l| l.watching) {
                HubError::Forbidden(Denied::Spectator)
            } else {
                HubError::NotFound(Missing::NoSeat(game))
            });
        };
        self.live(game).await?.send(RoomMsg::Submit {
            by: Actor::Seat(seat),
            cmd,
            cid,
            reply: self.reply(r),
        })?;
        self.in_flight += 1;
        Ok(())
    }

    async fn leave(&mut self, game: GameId, r: Option<Value>) -> Result<(), HubError> {
        let handle = self.live(game).await?;
        let seat = self.games.get(&game).and_then(|l| l.seat);
        if let Some(seat) = seat {
            handle.send(RoomMsg::Leave {
                seat,
                session: self.id,
                reply: self.reply(r),
            })?;
            self.in_flight += 1;
        } else {
            handle.unsubscribe(self.id);
            self.games.remove(&game);
            self.save();
            self.say(ServerMsg::Ok {
                game: Some(game),
                seq: None,
                r#ref: r,
            });
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.plays_closed();
        // The record's time is now the connection's last: a resume may come until
        // `resume_for` after it.
        if self.saved {
            self.save();
        }
        self.outbox.close();
        for link in self.games.values() {
            link.handle.unsubscribe(self.id);
        }
        self.hub.sessions.close(&self.token);
        tracing::debug!(session = %self.id, "session closed");
    }
}
