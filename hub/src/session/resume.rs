//! Sessions that outlive their connection. Every session has a token (told to the client in
//! its first answers); once it plays or watches something, the hub keeps a record of it in
//! the log under that token: who the connection is and which games it is in, with which
//! seat. A new connection that sends `resume` with the token (and, per game, the last seq it
//! saw) gets all of that back and exactly the events it missed, also after a server restart.
//!
//! A token is used up by resuming: the resumed session has a new one, so two connections
//! never share a session. A record unused for [`crate::HubConfig::resume_for`] is pruned
//! ([`crate::HubConfig::resume_channels_for`] for a session in channels only). A session in
//! nothing but its own `session` channel is not kept at all: nothing would come back but a
//! channel nobody else can follow, and its stream is removed once the session is gone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use umpire_engine::protocol::{GameId, ResumedGame, ServerMsg};
use umpire_engine::{Millis, Seat, Seq};
use umpire_store::LogRead;

use crate::error::{Denied, HubError, Missing, Unauthenticated};
use crate::handle::{RoomMsg, Subscriber};
use crate::session::Session;

/// What the log keeps of a session.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// The authenticated user, if the connection signed in.
    user: Option<String>,
    /// The guest name it played under otherwise.
    guest: String,
    /// When the record was last written: its connection was alive then.
    touched: Millis,
    /// The session's public id (its `session:<id>` channel).
    #[serde(default)]
    sid: String,
    games: Vec<SavedGame>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedGame {
    game: GameId,
    kind: String,
    /// The seat and its token, or `None` for a game watched.
    seat: Option<(Seat, String)>,
    /// The channel's name, for a channel.
    #[serde(default)]
    channel: Option<String>,
}

impl Saved {
    fn decode(bytes: &[u8]) -> Option<Saved> {
        rmp_serde::from_slice(bytes).ok()
    }

    /// When the record may be forgotten: `resume_for` after it was written, or
    /// `resume_channels_for` for a session in channels only, rounded up to the next
    /// [`EXPIRY_STEP`]: a session saved again within a step keeps its place in the log's
    /// expiry index, and only its record is rewritten.
    fn expires(&self, config: &crate::HubConfig) -> Millis {
        let keep_for = if self.games.iter().all(|g| g.channel.is_some()) {
            config.resume_channels_for
        } else {
            config.resume_for
        };
        let keep = u64::try_from(keep_for.as_millis()).unwrap_or(u64::MAX);
        let step = u64::try_from(EXPIRY_STEP.as_millis()).unwrap_or(1).max(1);
        self.touched
            .saturating_add(keep)
            .div_ceil(step)
            .saturating_mul(step)
    }
}

/// Kept sessions expire on whole steps of this (at most this much later than asked): a
/// session saved again and again keeps one place in the expiry index.
const EXPIRY_STEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Expired sessions taken per query.
const PAGE: usize = 256;

/// Remove every kept session past its time, found through the log's expiry index; how many.
///
/// # Errors
/// The log cannot be read or written.
pub(crate) async fn expire(
    log: &dyn LogRead,
    writer: &crate::storage::writer::Writer,
    now: Millis,
) -> Result<usize, HubError> {
    let mut removed = 0;
    loop {
        let tokens = log.expired_sessions(now, PAGE).await?;
        removed += tokens.len();
        for token in &tokens {
            writer.take_session_later(token.clone());
        }
        // Taken before the next page is asked for, which would list them again.
        if !tokens.is_empty() {
            writer.sync().await?;
        }
        if tokens.len() < PAGE {
            return Ok(removed);
        }
    }
}

impl Session {
    /// Write down what this session is in, so a later connection can resume it. Called when
    /// that changes and when the connection goes. Costs nothing for a session that never
    /// entered a game or a channel other than its own.
    pub(crate) fn save(&mut self) {
        if !self.resumable {
            return;
        }
        let mut games: Vec<SavedGame> = self
            .games
            .iter()
            .filter(|(_, l)| l.seat.is_some() || l.watching)
            .map(|(game, l)| SavedGame {
                game: *game,
                kind: l.kind.clone(),
                seat: l.seat.zip(l.token.clone()),
                channel: l.channel.clone(),
            })
            .collect();
        let own = format!("session:{}", self.sid);
        if games
            .iter()
            .all(|g| g.channel.as_deref() == Some(own.as_str()))
        {
            // Its own channel alone is nothing to come back to.
            games.clear();
        }
        if games.is_empty() && !self.saved {
            return;
        }
        let keeps = !games.is_empty();
        let writer = &self.rt().writer;
        let entry = if games.is_empty() {
            None
        } else {
            let saved = Saved {
                user: self.user.clone(),
                guest: self.guest.clone(),
                touched: self.rt().clock.now(),
                sid: self.sid.clone(),
                games,
            };
            match rmp_serde::to_vec_named(&saved) {
                Ok(record) => Some(umpire_store::SessionEntry {
                    sid: self.sid.clone(),
                    expires: saved.expires(&self.rt().config),
                    record,
                }),
                Err(e) => {
                    tracing::error!(error = %e, "a session record does not encode");
                    return;
                }
            }
        };
        // A place under the cap is taken before the record is written, and given back if it
        // is not: the count never passes the cap, however many sessions save at once.
        let newly_kept = keeps && !self.saved;
        let sessions = &self.hub.sessions;
        if newly_kept && !sessions.try_keep(self.rt().config.limits.max_kept_sessions) {
            // Entering a game was refused at this cap; channels alone are served, not kept.
            tracing::debug!(
                session = %self.id,
                "not kept for resuming: the server keeps its most"
            );
            return;
        }
        let token = &self.token;
        // Queued for the writer, in order with every other save and take of this token (a
        // failure is logged: the connection goes on, only a later resume of it would fail).
        let queued = self.outbox.unless_taken(|| match entry {
            Some(entry) => writer.save_session_later(token.clone(), entry),
            None => writer.take_session_later(token.clone()),
        });
        let done = queued.is_some();
        if (newly_kept && !done) || (done && self.saved && !keeps) {
            sessions.forget_kept();
        }
        // Not done: resumed elsewhere, the record is the other connection's now.
        self.saved = done && keeps;
    }

    /// Take back the session kept under `token`.
    pub(crate) async fn resume(
        &mut self,
        token: &str,
        seen: &BTreeMap<String, Seq>,
        r: Option<Value>,
    ) -> Result<(), HubError> {
        if !self.games.is_empty() {
            return Err(HubError::Forbidden(Denied::ResumeLate));
        }
        let now = self.rt().clock.now();
        let unknown = || HubError::NotFound(Missing::Session);
        let saved = self
            .rt()
            .log
            .load_session(token)
            .await?
            .filter(|entry| entry.expires >= now)
            .and_then(|entry| Saved::decode(&entry.record))
            .ok_or_else(unknown)?;
        match (&saved.user, &self.user) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), None) => return Err(HubError::Unauthorized(Unauthenticated::UserSession)),
            (None, None) => self.guest.clone_from(&saved.guest),
            _ => return Err(HubError::Forbidden(Denied::SessionOfAnother)),
        }
        if !saved.sid.is_empty() {
            self.sid.clone_from(&saved.sid);
            let sid = self.sid.clone();
            self.outbox.update_card(|card| card.sid = sid);
        }
        // Used up: a connection still holding it is closed, and this connection's own token
        // takes over.
        self.hub.sessions.take_over(token);
        self.rt().writer.take_session(token.to_owned()).await?;
        self.hub.sessions.forget_kept();
        let player = self.player();
        let (mut games, mut lost) = (Vec::new(), Vec::new());
        for g in saved.games {
            let from = seen
                .get(&g.game.to_string())
                .map_or(Seq(1), |seen| seen.saturating_add(1));
            let sub = Subscriber {
                seat: g.seat.as_ref().map(|(seat, _)| *seat),
                ..self.subscriber()
            };
            let msg = match &g.seat {
                Some((seat, token)) => RoomMsg::Reclaim {
                    seat: *seat,
                    token: token.clone(),
                    player: player.clone(),
                    sub: Some(sub),
                    reply: self.reply(None),
                },
                None => RoomMsg::Watch {
                    sub,
                    from,
                    reply: self.reply(None),
                },
            };
            let Ok(handle) = self.hub.registry.send(g.game, msg).await else {
                lost.push(g.game);
                continue;
            };
            let link = self.sent(handle);
            link.quiet = true;
            link.from = from;
            // `resumed` tells the client its seats: a command may follow at once, and reaches
            // the game after the message that takes the seat back.
            link.seat = g.seat.as_ref().map(|(seat, _)| *seat);
            link.token = g.seat.as_ref().map(|(_, token)| token.clone());
            link.watching = g.seat.is_none();
            link.kind.clone_from(&g.kind);
            link.channel.clone_from(&g.channel);
            games.push(ResumedGame {
                game: g.game,
                kind: g.kind,
                seat: g.seat.as_ref().map(|(seat, _)| *seat),
                token: g.seat.map(|(_, token)| token),
                channel: g.channel,
            });
        }
        // Kept under the new token at once: this connection may drop before any game answers.
        self.save();
        tracing::debug!(session = %self.id, games = games.len(), "session resumed");
        self.say(ServerMsg::Resumed {
            session: self.token.clone(),
            user: self.shown_user(),
            games,
            lost,
            now,
            r#ref: r,
        });
        Ok(())
    }
}
