//! A kind's lobby: its open games and the players waiting to play, kept in a stream of the log
//! (`#lobby:<kind>`), so that every node serving the log shares one lobby.
//!
//! Each node runs a task per lobby it uses, modelled on a channel's: it takes the requests
//! waiting in its inbox, reads what other nodes appended, decides the whole batch against the
//! lobby (`state::decide`, pure), and appends the records with a version check. If another
//! node appended first, the write is refused: it reads their records and decides again. So
//! every decision is made against the whole lobby, and two players asking at once, on one node
//! or three, share one game.
//!
//! Quick play reserves a game before it exists (`Open`): the asker's session creates it and
//! reports it (`Opened`); players given a place in it meanwhile (`Take`), on any node, join it
//! then. A reserved game not created within [`state::OPENING_FOR`] (its node died) is closed
//! by any node and its places asked again. The game's task reports its players as they change
//! (`Seats`), which closes it once full, over or empty. With a [`Matchmaker`], players wait
//! (`Wait`) until it groups them (`Match`); a group is a reserved game like the others.
//!
//! The open games, as a list, are published on the channel `lobby:<kind>` by the node that
//! changed them (at most every [`PUBLISH_EVERY`]).

pub(crate) mod state;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use umpire_engine::protocol::GameId;
use umpire_engine::{Millis, Seq};
use umpire_store::{Refused, Write};

use crate::error::{Denied, HubError, Malformed, Result};
use crate::game::kind::Kind;
use crate::game::runtime::Runtime;
use crate::handle::{Inbox, RoomHandle, RoomMsg, SessionId};
use crate::matchmaker::{Matchmaker, Waiting};
use crate::outbox::{Answer, PlayPlan, ReplyTo};
use state::{Ask, Entry, Given, Record, State};

/// The kind stored in a lobby stream's metadata.
pub(crate) const KIND: &str = "lobby";

/// The key under which the lobby of `kind` is indexed (not a possible random key).
pub(crate) fn index_key(kind: &str) -> String {
    format!("#lobby:{kind}")
}

/// The channel on which the lobby of `kind` publishes its open games.
pub(crate) fn channel_name(kind: &str) -> String {
    format!("lobby:{kind}")
}

/// The most open games a listing names (the oldest).
pub(crate) const MAX_LISTED: usize = 100;

/// The longest `props` a player may ask with, as JSON text.
pub(crate) const MAX_PROPS: usize = 4096;

/// How often the lobby publishes its open games, at most.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// How often a lobby with players waiting here looks at the log for what other nodes
/// appended (an announcement lost on the way), when other nodes may exist.
const POLL: Duration = Duration::from_secs(1);

/// How many times a batch is decided again after another node appended first.
const RETRIES: usize = 32;

/// Records after which the lobby writes a snapshot and forgets what is before it.
const SNAPSHOT_EVERY: u64 = 512;

/// A player asking to play, as a session sends it.
#[derive(Debug)]
pub(crate) struct PlayAsk {
    pub(crate) player: String,
    pub(crate) config: Value,
    pub(crate) props: Value,
    pub(crate) session: SessionId,
    /// How many times this player asked before (their join was refused).
    pub(crate) tries: u8,
}

/// An open game, as listed (`GET /api/games`, the `lobby:<kind>` channel).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenGame {
    /// The game.
    pub game: GameId,
    /// Its kind.
    pub kind: String,
    /// Its config (`null`: the default).
    pub config: Value,
    /// How many seats it has.
    pub seats: u16,
    /// How many are taken.
    pub taken: u16,
    /// Who holds them (user ids or guest names).
    pub players: Vec<String>,
    /// When it was opened, in ms since the epoch.
    pub since: Millis,
    /// How long it has been open, in ms, when listed.
    pub age_ms: u64,
    /// Its join key: `join` with it to take a seat.
    pub join: String,
    /// Its watch key.
    pub watch: String,
}

/// A local player waiting for an answer.
#[derive(Debug)]
struct Asker {
    ask: Ask,
    config: Value,
    props: Value,
    session: SessionId,
    tries: u8,
    /// The seat its matchmaker's group gives it.
    seat: Option<u16>,
    reply: ReplyTo,
}

/// What the lobby tasks share with the game tasks: the listed games, so that their tasks
/// report their players. (How many players wait on this node is the `waiting_players` gauge.)
#[derive(Debug, Default)]
pub(crate) struct Lobbies {
    listed: std::sync::Mutex<std::collections::HashMap<GameId, RoomHandle>>,
}

impl Lobbies {
    /// The lobby that lists `game`, if one on this node does.
    pub(crate) fn lobby_of(&self, game: GameId) -> Option<RoomHandle> {
        crate::lock(&self.listed).get(&game).cloned()
    }
}

/// A lobby's task.
struct Lobby {
    id: GameId,
    kind: Arc<dyn Kind>,
    rt: Arc<Runtime>,
    inbox: Arc<Inbox>,
    head: Arc<AtomicU64>,
    durable: u64,
    announced: u64,
    state: State,
    matchmaker: Option<Arc<dyn Matchmaker>>,
    channel: RoomHandle,
    /// Local players with a place in a game not created yet, by its ticket.
    takers: BTreeMap<u64, Vec<Asker>>,
    /// Local players waiting for the matchmaker, by ticket.
    waits: BTreeMap<u64, Asker>,
    /// Players to decide again (their game was never created).
    again: Vec<Asker>,
    /// The games this lobby put in `Lobbies::listed`.
    mine: HashSet<GameId>,
    /// The listing as last published, and whether this node changed the lobby since.
    published: Vec<OpenGame>,
    changed: bool,
    last_publish: tokio::time::Instant,
    /// When the matchmaker was last asked.
    last_match: tokio::time::Instant,
    /// Read the log's version before the next catch-up (woken by the poll).
    look: bool,
    /// This lobby's games as last counted in the metrics.
    counted: usize,
    /// Games listed before their `Opened` record is applied here.
    early: HashSet<GameId>,
}

/// Start the lobby of `kind` on stream `id`, its state read from the log.
pub(crate) async fn spawn(
    rt: &Arc<Runtime>,
    id: GameId,
    kind: Arc<dyn Kind>,
    matchmaker: Option<Arc<dyn Matchmaker>>,
    channel: RoomHandle,
) -> Result<RoomHandle> {
    let inbox = Arc::new(Inbox::default());
    let head = Arc::new(AtomicU64::new(0));
    rt.bus.follow(id);
    let mut lobby = Lobby {
        id,
        kind,
        rt: Arc::clone(rt),
        inbox: Arc::clone(&inbox),
        head: Arc::clone(&head),
        durable: 0,
        announced: 0,
        state: State::default(),
        matchmaker,
        channel,
        takers: BTreeMap::new(),
        waits: BTreeMap::new(),
        again: Vec::new(),
        mine: HashSet::new(),
        published: Vec::new(),
        changed: false,
        last_publish: tokio::time::Instant::now(),
        last_match: tokio::time::Instant::now(),
        look: rt.bus.shared(),
        counted: 0,
        early: HashSet::new(),
    };
    lobby.announced = rt.log.version(id.0).await?;
    if let Err(e) = lobby.catch_up().await {
        rt.bus.unfollow(id);
        return Err(e);
    }
    // The first task on a new lobby lists its (empty) games at once: a subscriber hears a
    // listing as soon as it subscribes.
    lobby.changed = lobby.channel.head() == Seq::ZERO;
    rt.tracker.spawn(lobby.run());
    Ok(RoomHandle::new(id, inbox, head, None))
}

impl Lobby {
    async fn run(mut self) {
        let max_batch = self.rt.config.max_batch.max(1);
        let mut msgs = VecDeque::new();
        loop {
            self.inbox.take(max_batch, &mut msgs);
            if msgs.is_empty() && self.inbox.is_closed() {
                return;
            }
            if msgs.is_empty() && self.again.is_empty() {
                let wake = self.next_wake();
                tokio::select! {
                    biased;
                    () = self.rt.shutdown.cancelled() => break,
                    () = self.inbox.ready() => continue,
                    () = tokio::time::sleep_until(wake.unwrap_or_else(far)), if wake.is_some() => {
                        // Woken by time: look at the log for what other nodes appended (an
                        // announcement may have been lost on the way).
                        self.look = self.rt.bus.shared();
                    }
                }
            }
            let batch: Vec<RoomMsg> = msgs.drain(..).collect();
            if let Err(e) = self.turn(batch).await {
                tracing::error!(kind = self.kind.name(), error = %e, "the lobby stops: its log could not be written");
                self.fail_all(&e);
                return;
            }
        }
        let rest: Vec<RoomMsg> = self.inbox.close().into_iter().collect();
        for msg in rest {
            msg.fail(self.id, &HubError::Unavailable);
        }
        self.fail_all(&HubError::Unavailable);
    }

    /// When the task must look again without a message: to publish, to ask the matchmaker,
    /// to close a reservation never created, to read other nodes' records.
    fn next_wake(&self) -> Option<tokio::time::Instant> {
        let mut wake: Option<tokio::time::Instant> = None;
        let mut at = |t: tokio::time::Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.changed {
            at(self.last_publish + PUBLISH_EVERY);
        }
        if let Some(mm) = &self.matchmaker {
            if !self.state.waiting.is_empty() {
                at(self.last_match + mm.tick());
            }
        }
        let now = self.rt.clock.now();
        // The first game to close for want of a creation, or of a report (`close_stale`).
        let closes = self.state.games.values().filter_map(|o| {
            if o.game.is_none() {
                Some(o.since + state::OPENING_FOR + 1)
            } else if o.members.len() >= usize::from(o.seats) {
                Some(o.since + state::UNREPORTED_FOR + 1)
            } else {
                None
            }
        });
        if let Some(due) = closes.min() {
            let left = due.saturating_sub(now);
            at(tokio::time::Instant::now() + Duration::from_millis(left));
        }
        let waiting_here = !self.takers.is_empty() || !self.waits.is_empty();
        if self.rt.bus.shared() && (waiting_here || !self.state.games.is_empty()) {
            at(tokio::time::Instant::now() + POLL);
        }
        wake
    }

    fn fail_all(&mut self, e: &HubError) {
        let askers = std::mem::take(&mut self.takers)
            .into_values()
            .flatten()
            .chain(std::mem::take(&mut self.waits).into_values())
            .chain(std::mem::take(&mut self.again));
        for asker in askers {
            self.answer(asker, Err(e.clone()));
        }
        self.forget_listed();
    }

    fn forget_listed(&mut self) {
        let mut listed = crate::lock(&self.rt.lobbies.listed);
        for game in self.mine.drain() {
            listed.remove(&game);
        }
    }

    /// Answer `asker`'s `play`.
    fn answer(&self, asker: Asker, result: Result<PlayPlan>) {
        self.rt.metrics.waiting_players.dec();
        asker.reply.send(Answer::Play {
            kind: self.kind.name(),
            result,
        });
    }

    /// One turn: what the messages ask, decided against the whole lobby and appended; then
    /// the matchmaker; then the answers, the listing.
    async fn turn(&mut self, msgs: Vec<RoomMsg>) -> Result<()> {
        let mut asks: Vec<Asker> = std::mem::take(&mut self.again);
        let mut records = Vec::new();
        let mut cancelled: HashSet<SessionId> = HashSet::new();
        let mut reports = Vec::new();
        let mut listings = Vec::new();
        for msg in msgs {
            match msg {
                RoomMsg::Play { ask, reply } => match self.asker(*ask, reply) {
                    Ok(asker) => {
                        // Counted until answered (`answer`).
                        self.rt.metrics.waiting_players.inc();
                        asks.push(asker);
                    }
                    Err((reply, e)) => {
                        reply.send(Answer::Play {
                            kind: self.kind.name(),
                            result: Err(e),
                        });
                    }
                },
                RoomMsg::Opened { ticket, opened } => records.push(match opened {
                    Some((game, join, watch)) => {
                        // The game exists (durably): listed now, so that its task reports the
                        // players who join it; the players given places in it here join now,
                        // without waiting for the lobby's record of it.
                        self.list(game);
                        self.seat_takers(ticket, &join);
                        Record::Opened {
                            ticket,
                            game,
                            join,
                            watch,
                        }
                    }
                    None => Record::Close { ticket },
                }),
                RoomMsg::Listed {
                    game,
                    config,
                    player,
                    join,
                    watch,
                } => {
                    if let Ok(seats) = self.kind.seats(&config) {
                        records.push(Record::Listed {
                            config: canonical(&config),
                            seats,
                            player,
                            game,
                            join,
                            watch,
                        });
                    }
                }
                RoomMsg::Players {
                    game,
                    players,
                    over,
                } => reports.push((game, players, over)),
                RoomMsg::Cancel { session } => {
                    cancelled.insert(session);
                }
                RoomMsg::OpenGames { reply } => listings.push(reply),
                RoomMsg::Announced { version, .. } => {
                    self.announced = self.announced.max(version.0);
                }
                other => other.fail(self.id, &HubError::Forbidden(Denied::ChannelPlay)),
            }
        }
        // Players who cancelled: out of the waiting list, their plays answered.
        let mut dropped: Vec<Asker> = Vec::new();
        if !cancelled.is_empty() {
            let (gone, keep): (Vec<Asker>, Vec<Asker>) = asks
                .into_iter()
                .partition(|a| cancelled.contains(&a.session));
            asks = keep;
            dropped.extend(gone);
            for list in self.takers.values_mut() {
                let (gone, keep): (Vec<Asker>, Vec<Asker>) = std::mem::take(list)
                    .into_iter()
                    .partition(|a| cancelled.contains(&a.session));
                *list = keep;
                dropped.extend(gone);
            }
            self.takers.retain(|_, l| !l.is_empty());
            let tickets: Vec<u64> = self
                .waits
                .iter()
                .filter(|(_, a)| cancelled.contains(&a.session))
                .map(|(t, _)| *t)
                .collect();
            for ticket in tickets {
                records.push(Record::Cancel { ticket });
                dropped.extend(self.waits.remove(&ticket));
            }
        }
        for asker in dropped {
            self.answer(asker, Err(HubError::Cancelled));
        }
        self.catch_up().await?;
        for (game, players, over) in reports {
            self.seats_record(game, players, over, &mut records);
        }
        self.close_stale(&mut records);
        self.decide(asks, records).await?;
        self.run_matchmaker().await?;
        self.settle();
        self.snapshot().await?;
        self.publish();
        for reply in listings {
            let _ = reply.send(self.listing());
        }
        Ok(())
    }

    /// A play checked: its config's seats, its props' size.
    fn asker(
        &self,
        ask: PlayAsk,
        reply: ReplyTo,
    ) -> std::result::Result<Asker, (ReplyTo, HubError)> {
        let seats = match self.kind.seats(&ask.config) {
            Ok(seats) => seats,
            Err(e) => return Err((reply, e)),
        };
        let props = canonical(&ask.props);
        if props.len() > MAX_PROPS {
            return Err((reply, HubError::BadCommand(Malformed::PropsTooLarge)));
        }
        Ok(Asker {
            ask: Ask {
                player: ask.player,
                config: canonical(&ask.config),
                seats,
                props,
            },
            config: ask.config,
            props: ask.props,
            session: ask.session,
            tries: ask.tries,
            seat: None,
            reply,
        })
    }

    /// The record a game's report of its players makes, if it changes the lobby.
    fn seats_record(&self, game: GameId, players: Vec<String>, over: bool, out: &mut Vec<Record>) {
        let Some(ticket) = self.state.ticket_of(game) else {
            return;
        };
        let Some(open) = self.state.games.get(&ticket) else {
            return;
        };
        // Full, empty or over: no longer open. Otherwise its players, if they changed.
        if over || players.is_empty() || players.len() >= usize::from(open.seats) {
            out.push(Record::Close { ticket });
        } else if open.members != players {
            out.push(Record::Seats { ticket, players });
        }
    }

    /// Reservations never created (their node died, or its create is lost): closed, their
    /// places asked again. And games whose places were all given out but whose players were
    /// never reported (their task ran where no lobby listed them, after a node died): no
    /// longer open to anyone, closed after [`state::UNREPORTED_FOR`] so that the lobby does not
    /// keep them.
    fn close_stale(&self, records: &mut Vec<Record>) {
        let now = self.rt.clock.now();
        let stale = now.saturating_sub(state::OPENING_FOR);
        let unreported = now.saturating_sub(state::UNREPORTED_FOR);
        for (ticket, open) in &self.state.games {
            let full = open.members.len() >= usize::from(open.seats);
            if (open.game.is_none() && open.since < stale) || (full && open.since < unreported) {
                records.push(Record::Close { ticket: *ticket });
            }
        }
    }

    /// Decide `asks` with `records` (the other requests') against the lobby and append them
    /// all as one write; if another node appended first, read its records and decide again.
    async fn decide(&mut self, asks: Vec<Asker>, records: Vec<Record>) -> Result<()> {
        if asks.is_empty() && records.is_empty() {
            return Ok(());
        }
        let node = self.rt.bus.node().to_owned();
        let mm = self.matchmaker.is_some();
        let wanted: Vec<Ask> = asks.iter().map(|a| a.ask.clone()).collect();
        for _ in 0..RETRIES {
            let stale = self.rt.clock.now().saturating_sub(state::OPENING_FOR);
            let (all, given) = decide_with(
                &self.state,
                self.durable,
                &records,
                &wanted,
                mm,
                &node,
                stale,
            );
            if self.append(all).await? {
                for (asker, given) in asks.into_iter().zip(given) {
                    match given {
                        Given::Create(ticket) => {
                            let config = asker.config.clone();
                            self.answer(asker, Ok(PlayPlan::Create { ticket, config }));
                        }
                        Given::Take(ticket) => self.takers.entry(ticket).or_default().push(asker),
                        Given::Wait(ticket) => {
                            self.waits.insert(ticket, asker);
                        }
                    }
                }
                return Ok(());
            }
        }
        for asker in asks {
            self.answer(asker, Err(HubError::Unavailable));
        }
        Ok(())
    }

    /// Ask the matchmaker for groups of the waiting players and append them (if another node
    /// appended first: read, ask again).
    async fn run_matchmaker(&mut self) -> Result<()> {
        let Some(mm) = self.matchmaker.clone() else {
            return Ok(());
        };
        if self.state.waiting.is_empty() {
            return Ok(());
        }
        self.last_match = tokio::time::Instant::now();
        for _ in 0..RETRIES {
            let waiting: Vec<Waiting> = self
                .state
                .waiting
                .iter()
                .map(|(ticket, w)| Waiting {
                    ticket: *ticket,
                    player: w.player.clone(),
                    config: serde_json::from_str(&w.config).unwrap_or(Value::Null),
                    props: serde_json::from_str(&w.props).unwrap_or(Value::Null),
                    since: w.since,
                    seats: w.seats,
                })
                .collect();
            let now = self.rt.clock.now();
            let groups = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                mm.matches(&waiting, now)
            }))
            .unwrap_or_else(|_| {
                tracing::error!(
                    kind = self.kind.name(),
                    "the matchmaker panicked; nobody matched this time"
                );
                Vec::new()
            });
            let groups = state::valid_groups(&self.state, groups, self.kind.name());
            if groups.is_empty() {
                return Ok(());
            }
            let records = groups
                .into_iter()
                .map(|tickets| Record::Match { tickets })
                .collect();
            if self.append(records).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Append `records` if the lobby's log still ends where this task read it. `Ok(false)`:
    /// another node appended first (its records are read now).
    async fn append(&mut self, records: Vec<Record>) -> Result<bool> {
        if records.is_empty() {
            return Ok(true);
        }
        let at = self.rt.clock.now();
        let mut encoded = Vec::with_capacity(records.len());
        for record in &records {
            let entry = Entry {
                at,
                record: record.clone(),
            };
            let bytes = rmp_serde::to_vec_named(&entry).map_err(|e| {
                HubError::BadCommand(Malformed::Encoding {
                    what: "a lobby record",
                    why: e.to_string(),
                })
            })?;
            encoded.push(Bytes::from(bytes));
        }
        let forget_before = match records.first() {
            Some(Record::Snapshot(_)) => Some(self.durable + 1),
            _ => None,
        };
        let write = Write {
            stream: self.id.0,
            expected: self.durable,
            records: encoded,
            forget_before,
            ..Write::default()
        };
        match self.rt.writer.write(write).await {
            Ok(version) => {
                for (i, record) in records.iter().enumerate() {
                    self.state.apply(self.durable + i as u64 + 1, at, record);
                }
                self.durable = version;
                self.announced = self.announced.max(version);
                self.head.store(version, Ordering::Release);
                self.rt.bus.announce(self.id, Seq(version));
                self.changed = true;
                self.sync_listed();
                Ok(true)
            }
            Err(HubError::Refused(Refused::Stale { actual, .. })) => {
                self.announced = self.announced.max(actual);
                self.catch_up().await?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Read what other nodes appended, up to what was announced (or the log's end).
    async fn catch_up(&mut self) -> Result<()> {
        if std::mem::take(&mut self.look) {
            self.announced = self.announced.max(self.rt.log.version(self.id.0).await?);
        }
        let before = self.durable;
        while self.announced > self.durable {
            let page = self.rt.log.read(self.id.0, self.durable + 1, 256).await?;
            let Some(&(last, _)) = page.last() else {
                self.durable = self.announced;
                break;
            };
            for (seq, bytes) in page {
                match rmp_serde::from_slice::<Entry>(&bytes) {
                    Ok(entry) => self.state.apply(seq, entry.at, &entry.record),
                    Err(e) => {
                        tracing::warn!(kind = self.kind.name(), %seq, error = %e, "a lobby record does not read; skipped");
                    }
                }
            }
            self.durable = last;
        }
        if self.durable != before {
            self.head.store(self.durable, Ordering::Release);
            self.sync_listed();
        }
        Ok(())
    }

    /// Put `game` in `Lobbies::listed` now (its `Opened` record is on its way).
    fn list(&mut self, game: GameId) {
        self.early.insert(game);
        self.sync_listed();
    }

    /// Keep `Lobbies::listed` to the games this lobby lists, so their tasks report players;
    /// and the count of its games in the metrics.
    fn sync_listed(&mut self) {
        let count = self.state.games.len();
        let metric = &self.rt.metrics.lobby_games;
        if count >= self.counted {
            metric.inc_by(crate::metrics::gauge(count - self.counted));
        } else {
            metric.dec_by(crate::metrics::gauge(self.counted - count));
        }
        self.counted = count;
        let state = &self.state;
        self.early.retain(|game| state.ticket_of(*game).is_none());
        let now: HashSet<GameId> = state
            .games
            .values()
            .filter_map(|o| o.game)
            .chain(self.early.iter().copied())
            .collect();
        if now == self.mine {
            return;
        }
        let mut listed = crate::lock(&self.rt.lobbies.listed);
        for gone in self.mine.difference(&now) {
            listed.remove(gone);
        }
        let me = RoomHandle::new(
            self.id,
            Arc::clone(&self.inbox),
            Arc::clone(&self.head),
            None,
        );
        for new in now.difference(&self.mine) {
            listed.insert(*new, me.clone());
        }
        drop(listed);
        self.mine = now;
    }

    /// Answer the local players whose place the lobby now settles: a place in a game that
    /// exists (join it), a group made by the matchmaker (create it, or wait for it), a game
    /// never created (ask again), a wait cancelled elsewhere.
    fn settle(&mut self) {
        let tickets: Vec<u64> = self.waits.keys().copied().collect();
        for ticket in tickets {
            if self.state.waiting.contains_key(&ticket) {
                continue;
            }
            let Some(asker) = self.waits.remove(&ticket) else {
                continue;
            };
            match self.state.matched.get(&ticket).copied() {
                Some((group, 0)) => {
                    let config = asker.config.clone();
                    self.answer(
                        asker,
                        Ok(PlayPlan::Create {
                            ticket: group,
                            config,
                        }),
                    );
                }
                Some((group, place)) => {
                    let asker = Asker {
                        seat: Some(place),
                        ..asker
                    };
                    self.takers.entry(group).or_default().push(asker);
                }
                // Matched, and the group's game closed before it was created (only this node
                // cancels its own waits, and it answers those as it does): ask again.
                None => self.again.push(asker),
            }
        }
        let tickets: Vec<u64> = self.takers.keys().copied().collect();
        for ticket in tickets {
            let opened = match self.state.games.get(&ticket) {
                Some(open) if open.game.is_none() => continue,
                Some(open) => Some(open.join.clone()),
                None => None,
            };
            match opened {
                Some(key) => self.seat_takers(ticket, &key),
                // Never created: ask again (as new askers, still counted as waiting).
                None => self
                    .again
                    .extend(self.takers.remove(&ticket).unwrap_or_default()),
            }
        }
    }

    /// Answer the local players with a place in `ticket`'s game: join it with `key`.
    fn seat_takers(&mut self, ticket: u64, key: &str) {
        for asker in self.takers.remove(&ticket).unwrap_or_default() {
            let plan = PlayPlan::Join {
                ticket,
                key: key.to_owned(),
                seat: asker.seat.map(umpire_engine::Seat),
                config: asker.config.clone(),
                props: asker.props.clone(),
                tries: asker.tries,
            };
            self.answer(asker, Ok(plan));
        }
    }

    /// Write a snapshot once enough records have passed, forgetting what is before it.
    async fn snapshot(&mut self) -> Result<()> {
        if self.durable < self.state.snapshot + SNAPSHOT_EVERY {
            return Ok(());
        }
        let record = Record::Snapshot(Box::new(self.state.clone()));
        // Refused if another node appended first: the next turn tries again.
        self.append(vec![record]).await.map(drop)
    }

    /// Publish the open games on the lobby's channel, if this node changed them and the last
    /// publish is old enough.
    fn publish(&mut self) {
        if !self.changed || self.last_publish.elapsed() < PUBLISH_EVERY {
            return;
        }
        self.changed = false;
        let listing = self.listing();
        let same = listing.len() == self.published.len()
            && listing
                .iter()
                .zip(&self.published)
                .all(|(a, b)| (a.game, a.taken, &a.players) == (b.game, b.taken, &b.players));
        if same && self.channel.head() > Seq::ZERO {
            return;
        }
        self.last_publish = tokio::time::Instant::now();
        let data = json!({
            "type": "open_games",
            "kind": self.kind.name(),
            "version": self.durable,
            "games": listing,
        });
        self.published = listing;
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let msg = RoomMsg::Publish {
            data,
            reply: ReplyTo::caller(tx),
        };
        if self.channel.send(msg).is_err() {
            tracing::warn!(
                kind = self.kind.name(),
                "the lobby's channel stopped; its listing is not published"
            );
        }
    }

    /// The open games with a free seat, oldest first, at most [`MAX_LISTED`].
    fn listing(&self) -> Vec<OpenGame> {
        let now = self.rt.clock.now();
        self.state
            .listed()
            .take(MAX_LISTED)
            .filter_map(|(_, o)| {
                Some(OpenGame {
                    game: o.game?,
                    kind: self.kind.name().to_owned(),
                    config: serde_json::from_str(&o.config).unwrap_or(Value::Null),
                    seats: o.seats,
                    taken: u16::try_from(o.members.len()).unwrap_or(u16::MAX),
                    players: o.members.clone(),
                    since: o.since,
                    age_ms: now.saturating_sub(o.since),
                    join: o.join.clone(),
                    watch: o.watch.clone(),
                })
            })
            .collect()
    }
}

impl Drop for Lobby {
    fn drop(&mut self) {
        // However the task ends: nothing more is queued, what is queued is answered, and the
        // registry starts the lobby again on next use.
        for msg in self.inbox.close() {
            msg.fail(self.id, &HubError::Unavailable);
        }
        self.rt.bus.unfollow(self.id);
        self.forget_listed();
        let left =
            self.takers.values().map(Vec::len).sum::<usize>() + self.waits.len() + self.again.len();
        self.rt
            .metrics
            .waiting_players
            .dec_by(crate::metrics::gauge(left));
        self.rt
            .metrics
            .lobby_games
            .dec_by(crate::metrics::gauge(self.counted));
    }
}

/// `records` (the requests that are not plays) then the plays' records, decided after them.
fn decide_with(
    state: &State,
    version: u64,
    records: &[Record],
    asks: &[Ask],
    matchmaker: bool,
    node: &str,
    stale: Millis,
) -> (Vec<Record>, Vec<Given>) {
    if records.is_empty() {
        return state::decide(state, version, asks, matchmaker, node, stale);
    }
    // The plays see what the other records change (a game closed, its players reported).
    let mut after = state.clone();
    for (i, r) in records.iter().enumerate() {
        after.apply(version + i as u64 + 1, 0, r);
    }
    let (plays, given) = state::decide(
        &after,
        version + records.len() as u64,
        asks,
        matchmaker,
        node,
        stale,
    );
    let mut all = records.to_vec();
    all.extend(plays);
    (all, given)
}

/// Whether `record` reads as a lobby stream's record (for `umpire inspect verify`); the
/// decoder's words if not.
///
/// # Errors
/// It does not decode.
pub fn lobby_record_decodes(record: &[u8]) -> std::result::Result<(), String> {
    rmp_serde::from_slice::<Entry>(record)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `value` as canonical JSON text (objects' keys sorted): two equal configs match.
pub(crate) fn canonical(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}
