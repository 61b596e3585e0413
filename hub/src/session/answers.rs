//! A session's answers: what the client is told when a game answers one of its requests, and
//! what the session then knows (seats, games followed, what to catch up). One method per
//! answer; refusals of entering a game share one.

use serde_json::Value;
use umpire_engine::protocol::{GameId, ServerMsg};
use umpire_engine::Seq;

use crate::error::HubError;
use crate::frames::Frame;
use crate::outbox::{Answer, RematchPlan, Seated};
use crate::session::{CatchUp, Outgoing, Session};

impl Session {
    /// What game `answer` (to the request whose `ref` was `r`) means for this session.
    pub(crate) fn answer(&mut self, r: Option<Value>, answer: Answer) {
        match answer {
            Answer::Command {
                game,
                result: Ok(seq),
            } => self.on_command(game, seq, r),
            Answer::Seated {
                game,
                result: Ok(seated),
            } => self.on_seated(game, seated, r),
            Answer::Watching {
                game,
                kind,
                from,
                result: Ok(head),
            } => self.on_watching(game, kind, from, head, r),
            Answer::Left {
                game,
                result: Ok(seq),
            } => self.on_left(game, seq, r),
            Answer::Followed {
                game,
                result: Ok(head),
            } => {
                // Silent: the client never asked. What the old task published was sent; the
                // rest up to the new task's head comes from the log.
                self.work.push_back(CatchUp {
                    game,
                    upto: head,
                    then: None,
                });
            }
            // The game stopped again; the next request loads it again.
            Answer::Followed { result: Err(_), .. } => {}
            Answer::Seated {
                game,
                result: Err(e),
            }
            | Answer::Watching {
                game,
                result: Err(e),
                ..
            } => self.on_not_entered(game, &e, r),
            Answer::Command { result: Err(e), .. } | Answer::Left { result: Err(e), .. } => {
                self.refuse_with(&e, r);
            }
            Answer::Rematch { game, result } => self.on_rematch(game, result, r),
            Answer::Play { kind, result } => self.on_play(kind, result, r),
        }
    }

    /// A command was made durable at `seq`: `ok`, after the events it produced.
    fn on_command(&mut self, game: GameId, seq: Seq, r: Option<Value>) {
        self.rt().metrics.commands_accepted.inc();
        let ok = Outgoing::Frame(Frame::Msg(Box::new(ServerMsg::Ok {
            game: Some(game),
            seq: Some(seq),
            r#ref: r,
        })));
        let behind = self
            .games
            .get(&game)
            .and_then(|l| l.next)
            .is_some_and(|next| next <= seq);
        if behind {
            self.work.push_back(CatchUp {
                game,
                upto: seq,
                then: Some(ok),
            });
        } else {
            self.ready.push_back(ok);
        }
    }

    /// A seat was taken (a create, a join, a seat token): `created` or `joined`, then the
    /// game's events.
    fn on_seated(&mut self, game: GameId, seated: Seated, r: Option<Value>) {
        let Some(link) = self.entered(game) else {
            return;
        };
        link.seat = Some(seated.joined.seat);
        link.token = Some(seated.joined.token.clone());
        link.kind.clone_from(&seated.joined.kind);
        let (quiet, from) = (std::mem::take(&mut link.quiet), link.from);
        if let (Some(old), Some((join, watch))) =
            (self.rematches.remove(&game), seated.invite.clone())
        {
            self.rematch_ready(old, Some((game, join, watch)));
        }
        if self.plays.is_some() {
            self.play_seated(game, seated.invite.as_ref());
        }
        let j = seated.joined;
        let now = self.rt().clock.now();
        let session = Some(self.token.clone());
        let msg = match seated.invite {
            Some((join, watch)) => ServerMsg::Created {
                game,
                kind: j.kind,
                join,
                watch,
                seat: j.seat,
                token: j.token,
                session,
                now,
                r#ref: r,
            },
            None => ServerMsg::Joined {
                game,
                kind: j.kind,
                seat: j.seat,
                token: j.token,
                join: seated.keys.as_ref().map(|k| k.0.clone()),
                watch: seated.keys.map(|k| k.1),
                session,
                now,
                r#ref: r,
            },
        };
        if !quiet {
            self.say(msg);
        }
        self.follow(game, from, seated.head);
        self.save();
    }

    /// Watching a game or subscribed to a channel from `from`: `watching` or `subscribed`,
    /// then the events.
    fn on_watching(
        &mut self,
        game: GameId,
        kind: &'static str,
        from: Seq,
        head: Seq,
        r: Option<Value>,
    ) {
        let Some(link) = self.entered(game) else {
            return;
        };
        link.watching = true;
        link.kind = kind.into();
        let channel = link.channel.clone();
        if !std::mem::take(&mut link.quiet) {
            let now = self.rt().clock.now();
            let session = Some(self.token.clone());
            self.say(match channel {
                Some(channel) => ServerMsg::Subscribed {
                    channel,
                    game,
                    session,
                    now,
                    r#ref: r,
                },
                None => ServerMsg::Watching {
                    game,
                    kind: kind.into(),
                    session,
                    now,
                    r#ref: r,
                },
            });
        }
        self.follow(game, from, head);
        self.save();
    }

    /// A seat given up (at `seq`) or watching stopped: `ok`.
    fn on_left(&mut self, game: GameId, seq: Option<Seq>, r: Option<Value>) {
        self.games.remove(&game);
        self.play_left(game);
        self.save();
        self.say(ServerMsg::Ok {
            game: Some(game),
            seq,
            r#ref: r,
        });
    }

    /// Entering `game` was refused. A game asked for but never entered is forgotten again,
    /// once nothing else asked for it is still on its way; one given back by `resume` is
    /// not there after all.
    fn on_not_entered(&mut self, game: GameId, e: &HubError, r: Option<Value>) {
        if let Some(old) = self.rematches.remove(&game) {
            self.rematch_ready(old, None);
        }
        let asked_again = self.plays.is_some() && self.play_refused(game, e);
        let mut resumed = false;
        if let Some(link) = self.entered(game) {
            resumed = std::mem::take(&mut link.quiet);
            if resumed {
                link.seat = None;
                link.watching = false;
            }
            if link.entering == 0 && link.seat.is_none() && !link.watching {
                self.games.remove(&game);
            }
        }
        if resumed {
            let message = format!("game {game} could not be taken back: {e}");
            self.refuse(e.code(), message, r);
            self.save();
        } else if !asked_again {
            self.refuse_with(e, r);
        }
    }

    /// What to do for the rematch of the finished `game`: create it, or join it. Checked now,
    /// sent to the registry from [`Session::next`] (it waits for the log).
    fn on_rematch(&mut self, game: GameId, plan: Result<RematchPlan, HubError>, r: Option<Value>) {
        let started = match plan {
            Ok(RematchPlan::Create { kind, config }) => self
                .start_create(&kind, config, r.clone())
                .map(|pending| (true, pending))
                .inspect_err(|_| self.rematch_ready(game, None)),
            Ok(RematchPlan::Join { key }) => self
                .start_join(&key, None, r.clone())
                .map(|pending| (false, pending)),
            Err(e) => Err(e),
        };
        match started {
            Ok((creates, pending)) => {
                // The answer it is owed counts from now: a shutdown waits for it.
                self.in_flight += 1;
                self.rematching.push_back(super::Rematching {
                    old: game,
                    creates,
                    r,
                    pending,
                });
            }
            Err(e) => self.refuse_with(&e, r),
        }
    }

    /// The rematch at the front of the queue went to the registry, or could not.
    pub(super) fn rematch_sent(
        &mut self,
        old: GameId,
        creates: bool,
        r: Option<Value>,
        sent: Result<crate::handle::RoomHandle, HubError>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match sent {
            Ok(handle) if creates => {
                let next = self.created(handle);
                self.rematches.insert(next, old);
            }
            Ok(handle) => {
                self.sent(handle);
            }
            Err(e) => {
                if creates {
                    self.rematch_ready(old, None);
                }
                self.refuse_with(&e, r);
            }
        }
    }
}
