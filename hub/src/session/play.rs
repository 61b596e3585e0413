//! Quick play and the matchmaker from a connection's side. `play` asks the kind's lobby
//! (`game/lobby`) where to sit; the lobby answers with a plan (create the game it reserved,
//! or join one), which the session carries out like a `create` or a `join`, so the client is
//! answered `created` or `joined`. The session reports the game it created to the lobby; a
//! join refused because the game filled or ended meanwhile asks the lobby again. `cancel`
//! ends the plays still waiting; a connection that closes gives back the seats it waits in.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;
use umpire_engine::protocol::GameId;

use crate::error::{Held, HubError};
use crate::game::lobby::PlayAsk;
use crate::handle::{RoomHandle, RoomMsg};
use crate::outbox::PlayPlan;
use crate::session::{Pending, Session};

/// How many times a player whose join was refused (the game filled or ended meanwhile) asks
/// the lobby again before the refusal is theirs.
const TRIES: u8 = 4;

/// What a session knows of its plays; boxed in the session, most have none.
#[derive(Debug, Default)]
pub(crate) struct Plays {
    /// Games entered through `play` (or created `open`), by game.
    played: HashMap<GameId, Played>,
    /// Creates and joins the lobby asked for, each waiting for the log, in order.
    starting: VecDeque<Starting>,
    /// Plays asked and not answered by their lobby yet.
    waiting: usize,
    /// The kinds asked: their lobbies hear when the connection closes.
    kinds: Vec<String>,
}

/// A game entered through `play`.
#[derive(Debug, Clone)]
pub(crate) struct Played {
    kind: String,
    /// Its ticket in the lobby; `None` for a game created `open` (listed once created).
    ticket: Option<u64>,
    creates: bool,
    tries: u8,
    config: Value,
    props: Value,
    r: Option<Value>,
}

/// A create or join under way.
pub(crate) struct Starting {
    played: Played,
    pending: Pending,
}

impl std::fmt::Debug for Starting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starting")
            .field("played", &self.played)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn plays(&mut self) -> &mut Plays {
        self.plays.get_or_insert_with(Box::default)
    }

    /// `play`: ask the lobby of `kind` for a seat.
    pub(crate) async fn play(
        &mut self,
        kind: &str,
        config: Value,
        props: Value,
        r: Option<Value>,
    ) -> Result<(), HubError> {
        self.room_for_one_more()?;
        self.room_to_keep()?;
        let per_connection = self.rt().config.limits.plays_per_connection;
        if self.plays.as_ref().map_or(0, |p| p.waiting) >= per_connection {
            return Err(HubError::Limit(Held::Plays(per_connection)));
        }
        let max = self.rt().config.limits.max_waiting;
        let waiting = usize::try_from(self.rt().metrics.waiting_players.get()).unwrap_or(0);
        if waiting >= max {
            return Err(HubError::Limit(Held::Waiting(max)));
        }
        let lobby = self.hub.registry.lobby(kind).await?;
        let played = Played {
            kind: kind.to_owned(),
            ticket: None,
            creates: false,
            tries: 0,
            config,
            props,
            r,
        };
        self.ask(&lobby, played)
    }

    /// Send `played`'s request to `lobby`.
    fn ask(&mut self, lobby: &RoomHandle, played: Played) -> Result<(), HubError> {
        let ask = PlayAsk {
            player: self.player(),
            config: played.config,
            props: played.props,
            session: self.id,
            tries: played.tries,
        };
        lobby.send(RoomMsg::Play {
            ask: Box::new(ask),
            reply: self.reply(played.r),
        })?;
        self.in_flight += 1;
        let plays = self.plays();
        plays.waiting += 1;
        if !plays.kinds.contains(&played.kind) {
            plays.kinds.push(played.kind);
        }
        Ok(())
    }

    /// `cancel`: the plays (of `kind`) still waiting in their lobby are answered `cancelled`.
    pub(crate) fn cancel(&mut self, kind: Option<&str>, r: Option<Value>) {
        let kinds = self
            .plays
            .as_ref()
            .map(|p| p.kinds.clone())
            .unwrap_or_default();
        for k in kinds
            .iter()
            .filter(|k| kind.is_none_or(|kind| kind == k.as_str()))
        {
            if let Some(lobby) = self.hub.registry.lobby_loaded(k) {
                let _ = lobby.send(RoomMsg::Cancel { session: self.id });
            }
        }
        self.say(umpire_engine::protocol::ServerMsg::Ok {
            game: None,
            seq: None,
            r#ref: r,
        });
    }

    /// The lobby's answer to a play of `kind`: create or join as it says (from
    /// [`Session::next`], since both wait for the log), or the refusal.
    pub(crate) fn on_play(
        &mut self,
        kind: &'static str,
        result: Result<PlayPlan, HubError>,
        r: Option<Value>,
    ) {
        let plays = self.plays();
        plays.waiting = plays.waiting.saturating_sub(1);
        let (plan, played) = match result {
            Ok(PlayPlan::Create { ticket, config }) => {
                let played = Played {
                    kind: kind.to_owned(),
                    ticket: Some(ticket),
                    creates: true,
                    tries: 0,
                    config: config.clone(),
                    props: Value::Null,
                    r: r.clone(),
                };
                (self.start_create(kind, config, r.clone()), played)
            }
            Ok(PlayPlan::Join {
                ticket,
                key,
                seat,
                config,
                props,
                tries,
            }) => {
                let played = Played {
                    kind: kind.to_owned(),
                    ticket: Some(ticket),
                    creates: false,
                    tries,
                    config,
                    props,
                    r: r.clone(),
                };
                (self.start_join(&key, seat, r.clone()), played)
            }
            Err(e) => {
                self.refuse_with(&e, r);
                return;
            }
        };
        match plan {
            Ok(pending) => {
                // The answer it is owed counts from now: a shutdown waits for it.
                self.in_flight += 1;
                self.plays()
                    .starting
                    .push_back(Starting { played, pending });
            }
            Err(e) => {
                self.opened(&played, None);
                self.refuse_with(&e, r);
            }
        }
    }

    /// Whether a create or join the lobby asked for waits for the log.
    pub(crate) fn starting(&mut self) -> Option<&mut Pending> {
        self.plays
            .as_mut()
            .and_then(|p| p.starting.front_mut())
            .map(|s| &mut s.pending)
    }

    /// The create or join at the front went to the game, or could not.
    pub(crate) fn started(&mut self, sent: Result<RoomHandle, HubError>) {
        let Some(done) = self.plays.as_mut().and_then(|p| p.starting.pop_front()) else {
            return;
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        let played = done.played;
        match sent {
            Ok(handle) => {
                let game = if played.creates {
                    self.created(handle)
                } else {
                    let game = handle.game;
                    self.sent(handle);
                    game
                };
                self.plays().played.insert(game, played);
            }
            Err(e) => {
                if !self.ask_again(&played, &e) {
                    self.opened(&played, None);
                    self.refuse_with(&e, played.r);
                }
            }
        }
    }

    /// Tell the lobby the game `played` reserved exists (`Some`), or will not (`None`).
    fn opened(&self, played: &Played, opened: Option<(GameId, String, String)>) {
        let (Some(ticket), true) = (played.ticket, played.creates) else {
            return;
        };
        if let Some(lobby) = self.hub.registry.lobby_loaded(&played.kind) {
            let _ = lobby.send(RoomMsg::Opened { ticket, opened });
        }
    }

    /// A seat was taken in `game` (its join and watch keys, for a creator): a game created
    /// through `play` is reported to its lobby, one created `open` is listed.
    pub(crate) fn play_seated(&mut self, game: GameId, invite: Option<&(String, String)>) {
        let Some(played) = self.plays.as_ref().and_then(|p| p.played.get(&game)) else {
            return;
        };
        let Some((join, watch)) = invite.cloned() else {
            return;
        };
        if played.ticket.is_some() {
            self.opened(&played.clone(), Some((game, join, watch)));
        } else if let Some(lobby) = self.hub.registry.lobby_loaded(&played.kind) {
            let _ = lobby.send(RoomMsg::Listed {
                game,
                config: played.config.clone(),
                player: self.player(),
                join,
                watch,
            });
        }
    }

    /// Entering `game` was refused with `e`: whether the play asked its lobby again instead
    /// of passing the refusal on (a game that filled or ended meanwhile).
    pub(crate) fn play_refused(&mut self, game: GameId, e: &HubError) -> bool {
        let Some(played) = self.plays.as_mut().and_then(|p| p.played.remove(&game)) else {
            return false;
        };
        if self.ask_again(&played, e) {
            return true;
        }
        self.opened(&played, None);
        false
    }

    /// A join the lobby gave was refused: tell the lobby if the game is gone, and ask again,
    /// a few times at most.
    fn ask_again(&mut self, played: &Played, e: &HubError) -> bool {
        if played.creates || played.tries + 1 >= TRIES {
            return false;
        }
        let gone = matches!(e, HubError::GameOver | HubError::NotFound(_));
        if !gone && !matches!(e, HubError::Full) {
            return false;
        }
        let Some(lobby) = self.hub.registry.lobby_loaded(&played.kind) else {
            return false;
        };
        if let (true, Some(ticket)) = (gone, played.ticket) {
            // Listed, but over or removed: out of the list.
            let _ = lobby.send(RoomMsg::Opened {
                ticket,
                opened: None,
            });
        }
        let again = Played {
            tries: played.tries + 1,
            ticket: None,
            ..played.clone()
        };
        self.ask(&lobby, again).is_ok()
    }

    /// Created `open`: list `game` once its keys come.
    pub(crate) fn list_when_created(&mut self, game: GameId, kind: &str, config: Value) {
        self.plays().played.insert(
            game,
            Played {
                kind: kind.to_owned(),
                ticket: None,
                creates: true,
                tries: 0,
                config,
                props: Value::Null,
                r: None,
            },
        );
    }

    /// `game` was left: no longer a play.
    pub(crate) fn play_left(&mut self, game: GameId) {
        if let Some(plays) = self.plays.as_mut() {
            plays.played.remove(&game);
        }
    }

    /// The connection closed: its waits end, and it gives up the seats it waits in (in games
    /// not full yet).
    pub(crate) fn plays_closed(&mut self) {
        let Some(plays) = self.plays.take() else {
            return;
        };
        for kind in &plays.kinds {
            if let Some(lobby) = self.hub.registry.lobby_loaded(kind) {
                let _ = lobby.send(RoomMsg::Cancel { session: self.id });
            }
        }
        for game in plays.played.keys() {
            if let Some(link) = self.games.get(game) {
                if let Some(seat) = link.seat {
                    let _ = link.handle.send(RoomMsg::LeaveIfWaiting {
                        seat,
                        session: self.id,
                    });
                }
            }
        }
    }
}
