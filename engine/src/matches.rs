//! `Match<G>`: the aggregate around one game: its version, seats, pending timers and status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ctx::{Ctx, TimerId};
use crate::envelope::{Body, Envelope};
use crate::game::{Actor, Game, Millis, Outcome, Seat, Seq};

pub use crate::cids::{
    CIDS_KEPT_MS, RECENT_CIDS, RECENT_CIDS_PER_PLAYER, RECENT_CIDS_PER_PLAYER_MOST,
};

/// What can be asked of a match.
#[derive(Clone, Debug, PartialEq)]
pub enum Action<C> {
    /// A game command from a seated player.
    Play(C),
    /// Take a free seat (or get back the seat `player` already holds).
    Join {
        /// A user id or a guest name.
        player: String,
    },
    /// Take `seat` if it is free, else the first free seat (or get back the seat `player`
    /// already holds): a matchmaker's seating.
    JoinAt {
        /// A user id or a guest name.
        player: String,
        /// The seat wanted.
        seat: Seat,
    },
    /// Give up the actor's seat.
    Leave,
    /// Fire a pending timer (system only).
    Fire(TimerId),
    /// End the game because nobody has played it for too long (system only): it ends as
    /// [`Outcome::Expired`].
    Expire,
    /// A seated player's connection came or went (system only). Logs a presence event if
    /// it changes whether the seat is online, nothing otherwise.
    Presence {
        /// The seat.
        seat: Seat,
        /// Whether a connection holds it now.
        online: bool,
    },
}

/// Why a match refused an action. Nothing changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MatchError<R> {
    /// The rules refused the command. Show the player the reason.
    #[error("{0}")]
    Rejected(R),
    /// The game has ended; it accepts nothing more.
    #[error("the game is over")]
    GameOver,
    /// Every seat is taken.
    #[error("every seat is taken")]
    Full,
    /// Only the system may do this (fire timers); or a seatless actor tried to play.
    #[error("not allowed for this actor")]
    Forbidden,
    /// The timer already fired or was cancelled.
    #[error("timer {} is not pending", .0 .0)]
    TimerNotPending(TimerId),
    /// The seat is empty or does not exist.
    #[error("that seat is not taken")]
    NotSeated,
    /// This client command id was already handled from this actor: answer with the original
    /// result instead of applying it again.
    #[error("already handled as seq {seq}")]
    Duplicate {
        /// The last seq the original command produced.
        seq: Seq,
    },
}

/// Why a sequence of envelopes is not a valid match history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A stream must start with `Created` at seq 1.
    #[error("the first record is not Created at seq 1")]
    NotCreated,
    /// The record was created by a different game kind.
    #[error("the stream holds a {found} game, not {expected}")]
    WrongKind {
        /// The kind we tried to rebuild.
        expected: &'static str,
        /// The kind in the log.
        found: String,
    },
    /// Seqs must follow each other without gaps.
    #[error("expected seq {expected}, found {found}")]
    Gap {
        /// The seq that should come next.
        expected: Seq,
        /// The seq found.
        found: Seq,
    },
    /// A player was seated in a seat the game's config does not have.
    #[error("seat {seat} does not exist: the game has {seats} seats")]
    NoSuchSeat {
        /// The seat in the record.
        seat: u16,
        /// How many seats the config gives.
        seats: u16,
    },
}

/// A timer the game asked for that has neither fired nor been cancelled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingTimer<C> {
    /// When it is due.
    pub at: Millis,
    /// What will be submitted as [`Actor::System`].
    pub command: C,
}

/// One game's full state: the game's own state plus what the engine keeps around it.
///
/// Everything here is rebuilt by [`Match::apply`] from the log alone, and it serialises, so a
/// snapshot is this value at a version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Match<G: Game> {
    kind: String,
    config: G::Config,
    seed: u64,
    version: Seq,
    /// Seats up to the highest one ever taken: a game with thousands of seats costs only
    /// the seats in use. How many there may be is [`Game::seats`] of the config.
    seats: Vec<Option<String>>,
    timers: BTreeMap<TimerId, PendingTimer<G::Command>>,
    /// Seats whose player is connected, as the presence events say. In seat order.
    #[serde(default)]
    online: Vec<Seat>,
    next_timer: u64,
    over: Option<Outcome>,
    recent: crate::cids::Cids,
    state: G::State,
    /// When the last record happened (its `at`): how long the game has sat idle.
    #[serde(default)]
    last_at: Millis,
}

impl<G: Game> Clone for Match<G> {
    fn clone(&self) -> Self {
        Match {
            kind: self.kind.clone(),
            config: self.config.clone(),
            seed: self.seed,
            version: self.version,
            seats: self.seats.clone(),
            timers: self.timers.clone(),
            online: self.online.clone(),
            next_timer: self.next_timer,
            over: self.over.clone(),
            recent: self.recent.clone(),
            state: self.state.clone(),
            last_at: self.last_at,
        }
    }
}

impl<G: Game> PartialEq for Match<G> {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.config == other.config
            && self.seed == other.seed
            && self.version == other.version
            && self.seats == other.seats
            && self.timers == other.timers
            && self.online == other.online
            && self.next_timer == other.next_timer
            && self.over == other.over
            && self.recent == other.recent
            && self.state == other.state
            && self.last_at == other.last_at
    }
}

impl<G: Game> Match<G> {
    /// A new game: returns the match and its first record, `Created` at seq 1, which must be
    /// logged before anything else.
    pub fn create(game: &G, config: G::Config, seed: u64, now: Millis) -> (Self, Envelope<G>) {
        let created = Envelope {
            seq: Seq(1),
            at: now,
            by: Actor::System,
            cid: None,
            body: Body::Created {
                kind: G::KIND.to_owned(),
                config,
                seed,
            },
        };
        let m = Self::start(game, &created).unwrap_or_else(|_| unreachable!("built above"));
        (m, created)
    }

    /// The match as it stands right after its `Created` record.
    ///
    /// # Errors
    /// [`ReplayError`] if `created` is not a `Created` record at seq 1 of this kind.
    pub fn start(game: &G, created: &Envelope<G>) -> Result<Self, ReplayError> {
        let Body::Created { kind, config, seed } = &created.body else {
            return Err(ReplayError::NotCreated);
        };
        if created.seq != 1 {
            return Err(ReplayError::NotCreated);
        }
        if kind != G::KIND {
            return Err(ReplayError::WrongKind {
                expected: G::KIND,
                found: kind.clone(),
            });
        }
        Ok(Match {
            kind: kind.clone(),
            config: config.clone(),
            seed: *seed,
            version: Seq(1),
            seats: Vec::new(),
            timers: BTreeMap::new(),
            online: Vec::new(),
            next_timer: 0,
            over: None,
            recent: crate::cids::Cids::default(),
            state: game.setup(config),
            last_at: created.at,
        })
    }

    /// Rebuild a match from its whole history.
    ///
    /// # Errors
    /// [`ReplayError`] when the history does not start with `Created` or has a gap.
    pub fn replay<'e>(
        game: &G,
        history: impl IntoIterator<Item = &'e Envelope<G>>,
    ) -> Result<Self, ReplayError> {
        let mut history = history.into_iter();
        let first = history.next().ok_or(ReplayError::NotCreated)?;
        let mut m = Self::start(game, first)?;
        for env in history {
            m.replay_one(game, env)?;
        }
        Ok(m)
    }

    /// Apply one more logged envelope, checking that it is the next seq.
    ///
    /// # Errors
    /// [`ReplayError::Gap`] when `env.seq` is not `version + 1`.
    pub fn replay_one(&mut self, game: &G, env: &Envelope<G>) -> Result<(), ReplayError> {
        if env.seq != self.version + 1 {
            return Err(ReplayError::Gap {
                expected: self.version + 1,
                found: env.seq,
            });
        }
        if let Body::Seated { seat, .. } = &env.body {
            let seats = game.seats(&self.config);
            if seat.0 >= seats {
                return Err(ReplayError::NoSuchSeat {
                    seat: seat.0,
                    seats,
                });
            }
        }
        self.apply(game, env);
        Ok(())
    }

    /// Decide `action` without changing anything: the envelopes that would be logged.
    ///
    /// # Errors
    /// [`MatchError`] when the action is refused.
    pub fn handle(
        &self,
        game: &G,
        by: Actor,
        action: Action<G::Command>,
        now: Millis,
        cid: Option<&str>,
    ) -> Result<Vec<Envelope<G>>, MatchError<G::Rejection>> {
        self.clone().execute(game, by, action, now, cid)
    }

    /// Decide `action` and apply what it produced, in place. The returned envelopes are what
    /// must be logged; on error nothing changed.
    ///
    /// This is [`Match::handle`] followed by [`Match::apply`] without the clone.
    ///
    /// # Errors
    /// [`MatchError`] when the action is refused.
    pub fn execute(
        &mut self,
        game: &G,
        by: Actor,
        action: Action<G::Command>,
        now: Millis,
        cid: Option<&str>,
    ) -> Result<Vec<Envelope<G>>, MatchError<G::Rejection>> {
        // A command sent again (its answer was lost) is answered as the first time, even if
        // it was the one that ended the game.
        if let (Action::Play(_), Some(cid)) = (&action, cid) {
            if let Some(seq) = self.recent_cid(by, cid) {
                return Err(MatchError::Duplicate { seq });
            }
        }
        if self.over.is_some() {
            return Err(MatchError::GameOver);
        }
        let mut bodies = Vec::new();
        let mut by = by;
        match action {
            Action::Join { player } => match self.free_seat(game, &player, None)? {
                Some(seat) => {
                    by = Actor::Seat(seat);
                    bodies.push(Body::Seated { seat, player });
                }
                None => return Ok(Vec::new()),
            },
            Action::JoinAt { player, seat } => match self.free_seat(game, &player, Some(seat))? {
                Some(seat) => {
                    by = Actor::Seat(seat);
                    bodies.push(Body::Seated { seat, player });
                }
                None => return Ok(Vec::new()),
            },
            Action::Leave => {
                let seat = by.seat().ok_or(MatchError::Forbidden)?;
                if self.player(seat).is_none() {
                    return Err(MatchError::NotSeated);
                }
                bodies.push(Body::Left { seat });
            }
            Action::Play(command) => {
                let seat = by.seat().ok_or(MatchError::Forbidden)?;
                if self.player(seat).is_none() {
                    return Err(MatchError::NotSeated);
                }
                self.decide(now, &mut bodies, |state, ctx| {
                    game.decide(state, by, &command, ctx)
                })
                .map_err(MatchError::Rejected)?;
            }
            Action::Presence { seat, online } => {
                if by != Actor::System {
                    return Err(MatchError::Forbidden);
                }
                if self.player(seat).is_none() {
                    return Err(MatchError::NotSeated);
                }
                if self.is_online(seat) == online {
                    return Ok(Vec::new());
                }
                bodies.push(Body::Presence { seat, online });
                let _never = self.decide(now, &mut bodies, |state, ctx| {
                    Ok::<_, G::Rejection>(game.presence(state, seat, online, ctx))
                });
            }
            Action::Fire(timer) => {
                if by != Actor::System {
                    return Err(MatchError::Forbidden);
                }
                let pending = self
                    .timers
                    .get(&timer)
                    .ok_or(MatchError::TimerNotPending(timer))?;
                let command = pending.command.clone();
                bodies.push(Body::Fired { timer });
                // The timer is consumed even if the rules now refuse its command: a refused
                // timer command is the game's business (it may no longer apply), not an error.
                let _refused = self.decide(now, &mut bodies, |state, ctx| {
                    game.decide(state, by, &command, ctx)
                });
            }
            Action::Expire => {
                if by != Actor::System {
                    return Err(MatchError::Forbidden);
                }
                let cid = cid.map(str::to_owned);
                let outcome = Outcome::Expired;
                return Ok(vec![self.record(
                    game,
                    by,
                    now,
                    cid,
                    Body::Over { outcome },
                )]);
            }
        }
        let cid = cid.map(str::to_owned);
        let mut out = Vec::with_capacity(bodies.len() + 1);
        for body in bodies {
            out.push(self.record(game, by, now, cid.clone(), body));
        }
        if self.over.is_none() && !out.is_empty() {
            if let Some(outcome) = game.outcome(&self.state) {
                out.push(self.record(game, by, now, cid, Body::Over { outcome }));
            }
        }
        Ok(out)
    }

    /// Run one of the game's deciding functions (`decide`, `presence`) and turn its events
    /// and timer requests into bodies.
    fn decide(
        &self,
        now: Millis,
        bodies: &mut Vec<Body<G>>,
        rules: impl FnOnce(&G::State, &mut Ctx<'_, G::Command>) -> Result<Vec<G::Event>, G::Rejection>,
    ) -> Result<(), G::Rejection> {
        // A copy: a refused command must not consume timer ids. `apply(Scheduled)` advances
        // the real counter.
        let mut next_timer = self.next_timer;
        let first_seq = self.version + 1 + bodies.len() as u64;
        let mut ctx = Ctx::new(now, self.seed, first_seq, &mut next_timer);
        let events = rules(&self.state, &mut ctx)?;
        bodies.extend(events.into_iter().map(Body::Game));
        for (timer, at, command) in ctx.scheduled {
            bodies.push(Body::Scheduled { timer, at, command });
        }
        for timer in ctx.cancelled {
            if self.timers.contains_key(&timer) {
                bodies.push(Body::Cancelled { timer });
            }
        }
        Ok(())
    }

    /// Wrap `body` at the next seq and apply it.
    fn record(
        &mut self,
        game: &G,
        by: Actor,
        at: Millis,
        cid: Option<String>,
        body: Body<G>,
    ) -> Envelope<G> {
        let env = Envelope {
            seq: self.version + 1,
            at,
            by,
            cid,
            body,
        };
        self.apply(game, &env);
        env
    }

    /// Fold one logged envelope into the match. Never fails; trusts that `env` is the next seq
    /// (use [`Match::replay_one`] for records from outside).
    pub fn apply(&mut self, game: &G, env: &Envelope<G>) {
        match &env.body {
            Body::Created { .. } => {}
            Body::Seated { seat, player } => {
                let index = usize::from(seat.0);
                if index >= self.seats.len() {
                    self.seats.resize(index + 1, None);
                }
                self.seats[index] = Some(player.clone());
            }
            Body::Left { seat } => {
                if let Some(slot) = self.seats.get_mut(usize::from(seat.0)) {
                    *slot = None;
                }
                self.online.retain(|s| s != seat);
            }
            Body::Presence { seat, online } => match (self.online.binary_search(seat), online) {
                (Err(at), true) => self.online.insert(at, *seat),
                (Ok(at), false) => {
                    self.online.remove(at);
                }
                _ => {}
            },
            Body::Scheduled { timer, at, command } => {
                self.next_timer = self.next_timer.max(timer.0 + 1);
                self.timers.insert(
                    *timer,
                    PendingTimer {
                        at: *at,
                        command: command.clone(),
                    },
                );
            }
            Body::Cancelled { timer } | Body::Fired { timer } => {
                self.timers.remove(timer);
            }
            Body::Over { outcome } => {
                self.over = Some(outcome.clone());
                self.timers.clear();
            }
            Body::Game(event) => game.apply(&mut self.state, event),
        }
        if let Some(cid) = &env.cid {
            self.recent.remember(env.by, cid, env.seq, env.at);
        }
        self.version = env.seq;
        self.last_at = env.at;
    }

    fn recent_cid(&self, by: Actor, cid: &str) -> Option<Seq> {
        self.recent.find(by, cid)
    }

    /// The seq of the last applied record.
    pub fn version(&self) -> Seq {
        self.version
    }

    /// When the last record happened, in ms since the epoch.
    pub fn last_at(&self) -> Millis {
        self.last_at
    }

    /// The game kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The config the game was created with.
    pub fn config(&self) -> &G::Config {
        &self.config
    }

    /// The seed of the game's deterministic rng.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The game's own state.
    pub fn state(&self) -> &G::State {
        &self.state
    }

    /// Who holds `seat`, if anyone.
    pub fn player(&self, seat: Seat) -> Option<&str> {
        self.seats.get(usize::from(seat.0))?.as_deref()
    }
    /// The seat `player` takes: `wanted` if it is free, else the first free one; `None` if
    /// they hold one already.
    fn free_seat<E>(
        &self,
        game: &G,
        player: &str,
        wanted: Option<Seat>,
    ) -> Result<Option<Seat>, MatchError<E>> {
        if self.seat_of(player).is_some() {
            return Ok(None);
        }
        let capacity = usize::from(game.seats(&self.config));
        let is_free = |i: usize| self.seats.get(i).is_none_or(Option::is_none);
        let free = wanted
            .map(|s| usize::from(s.0))
            .filter(|&i| i < capacity && is_free(i))
            .or_else(|| self.seats.iter().position(Option::is_none))
            .unwrap_or(self.seats.len());
        if free >= capacity {
            return Err(MatchError::Full);
        }
        u16::try_from(free)
            .map(|s| Some(Seat(s)))
            .map_err(|_| MatchError::Full)
    }

    /// The seat `player` holds, if any.
    pub fn seat_of(&self, player: &str) -> Option<Seat> {
        let index = self
            .seats
            .iter()
            .position(|p| p.as_deref() == Some(player))?;
        u16::try_from(index).ok().map(Seat)
    }

    /// The seats up to the highest one ever taken, each with its player if it is taken now.
    /// Seats past the end are free.
    pub fn seats(&self) -> &[Option<String>] {
        &self.seats
    }

    /// Whether `seat`'s player is connected, as the presence events say.
    pub fn is_online(&self, seat: Seat) -> bool {
        self.online.binary_search(&seat).is_ok()
    }

    /// The seats whose player is connected, in seat order.
    pub fn online(&self) -> &[Seat] {
        &self.online
    }

    /// Pending timers by id.
    pub fn timers(&self) -> &BTreeMap<TimerId, PendingTimer<G::Command>> {
        &self.timers
    }

    /// The pending timer due first (ties by id), if any.
    pub fn next_due(&self) -> Option<(Millis, TimerId)> {
        self.timers.iter().map(|(id, t)| (t.at, *id)).min()
    }

    /// How the game ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.over.as_ref()
    }

    /// Whether the game has ended.
    pub fn is_over(&self) -> bool {
        self.over.is_some()
    }
}
