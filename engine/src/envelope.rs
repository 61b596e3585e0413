//! The envelope every logged record travels in, and the engine's own events.

use serde::{Deserialize, Serialize};

use crate::ctx::TimerId;
use crate::game::{Actor, Game, Millis, Outcome, Seat, Seq, Viewer};

/// One record of a stream: an event with its position, time, author and the client's id for
/// the command that caused it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Envelope<G: Game> {
    /// Position in the stream, from 1, without gaps.
    pub seq: Seq,
    /// When the command that caused it was handled.
    pub at: Millis,
    /// Who caused it.
    pub by: Actor,
    /// The client's id for the command, so a retried command is recognised and applied once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// What happened.
    pub body: Body<G>,
}

impl<G: Game> Clone for Envelope<G> {
    fn clone(&self) -> Self {
        Envelope {
            seq: self.seq,
            at: self.at,
            by: self.by,
            cid: self.cid.clone(),
            body: self.body.clone(),
        }
    }
}

impl<G: Game> PartialEq for Envelope<G> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
            && self.at == other.at
            && self.by == other.by
            && self.cid == other.cid
            && self.body == other.body
    }
}

/// Whether a seed is the zero a viewer's copy carries instead of the real one.
fn is_zero(seed: &u64) -> bool {
    *seed == 0
}

impl<G: Game> Envelope<G> {
    /// This envelope as `viewer` may see it, or `None` if they see it as stored: `Created`
    /// without the rng seed, a game event as [`Game::view`] shows it (asked only when
    /// [`Game::HIDES`]).
    pub fn viewed(&self, game: &G, viewer: Viewer) -> Option<Envelope<G>> {
        let body = match &self.body {
            Body::Created { kind, config, .. } => Body::Created {
                kind: kind.clone(),
                config: config.clone(),
                seed: 0,
            },
            Body::Game(event) if G::HIDES => Body::Game(game.view(event, viewer)?),
            _ => return None,
        };
        Some(Envelope {
            seq: self.seq,
            at: self.at,
            by: self.by,
            cid: self.cid.clone(),
            body,
        })
    }
}

/// What an envelope holds: one of the game's events, or one of the engine's.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "", rename_all = "snake_case")]
pub enum Body<G: Game> {
    /// The first record of every game: everything after it follows from it deterministically.
    Created {
        /// [`Game::KIND`].
        kind: String,
        /// The config the game was created with.
        config: G::Config,
        /// Seeds the game's deterministic rng. Kept in the log, never shown to a client (see
        /// [`Envelope::viewed`]): anyone who knew it could predict every roll.
        #[serde(default, skip_serializing_if = "is_zero")]
        seed: u64,
    },
    /// A player took a seat.
    Seated {
        /// The seat taken.
        seat: Seat,
        /// Who took it: a user id, or a guest name.
        player: String,
    },
    /// A player gave up their seat; it is free again.
    Left {
        /// The seat freed.
        seat: Seat,
    },
    /// A seated player's connection came back (`online`) or went away: every player and
    /// spectator sees it, and the game may react ([`crate::Game::presence`]).
    Presence {
        /// The seat.
        seat: Seat,
        /// Whether a connection now holds it.
        online: bool,
    },
    /// The game asked for `command` to be submitted by the system at `at`.
    Scheduled {
        /// The timer's id, for cancelling.
        timer: TimerId,
        /// When it is due.
        at: Millis,
        /// What will be submitted.
        command: G::Command,
    },
    /// A pending timer was cancelled and will never fire.
    Cancelled {
        /// The timer.
        timer: TimerId,
    },
    /// A timer fired; the events its command caused follow.
    Fired {
        /// The timer.
        timer: TimerId,
    },
    /// The game ended. No command is accepted after this and pending timers are dropped.
    Over {
        /// How it ended.
        outcome: Outcome,
    },
    /// One of the game's own events.
    Game(G::Event),
}

impl<G: Game> Clone for Body<G> {
    fn clone(&self) -> Self {
        match self {
            Body::Created { kind, config, seed } => Body::Created {
                kind: kind.clone(),
                config: config.clone(),
                seed: *seed,
            },
            Body::Seated { seat, player } => Body::Seated {
                seat: *seat,
                player: player.clone(),
            },
            Body::Left { seat } => Body::Left { seat: *seat },
            Body::Presence { seat, online } => Body::Presence {
                seat: *seat,
                online: *online,
            },
            Body::Scheduled { timer, at, command } => Body::Scheduled {
                timer: *timer,
                at: *at,
                command: command.clone(),
            },
            Body::Cancelled { timer } => Body::Cancelled { timer: *timer },
            Body::Fired { timer } => Body::Fired { timer: *timer },
            Body::Over { outcome } => Body::Over {
                outcome: outcome.clone(),
            },
            Body::Game(event) => Body::Game(event.clone()),
        }
    }
}

impl<G: Game> PartialEq for Body<G> {
    fn eq(&self, other: &Self) -> bool {
        use Body::*;
        match (self, other) {
            (
                Created {
                    kind: a,
                    config: b,
                    seed: c,
                },
                Created {
                    kind: x,
                    config: y,
                    seed: z,
                },
            ) => a == x && b == y && c == z,
            (Seated { seat: a, player: b }, Seated { seat: x, player: y }) => a == x && b == y,
            (Left { seat: a }, Left { seat: x }) => a == x,
            (Presence { seat: a, online: b }, Presence { seat: x, online: y }) => a == x && b == y,
            (
                Scheduled {
                    timer: a,
                    at: b,
                    command: c,
                },
                Scheduled {
                    timer: x,
                    at: y,
                    command: z,
                },
            ) => a == x && b == y && c == z,
            (Cancelled { timer: a }, Cancelled { timer: x }) => a == x,
            (Fired { timer: a }, Fired { timer: x }) => a == x,
            (Over { outcome: a }, Over { outcome: x }) => a == x,
            (Game(a), Game(x)) => a == x,
            _ => false,
        }
    }
}

/// One record of a channel (seed 002): a notice published on it. A channel has no rules and
/// no state, so its records are not [`Envelope`]s of a game; this is their one schema, for
/// the hub that writes them, the clients that read them and the tools that check them.
///
/// ```json
/// {"seq": 3, "at": 1796101658334, "by": "system",
///  "body": {"notice": {"channel": "broadcast", "data": {"text": "maintenance at noon"}}}}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeEnvelope {
    /// Position in the channel's stream, from 1.
    pub seq: Seq,
    /// When it was published.
    pub at: Millis,
    /// Always [`Actor::System`]: notices come from the server's side.
    pub by: Actor,
    /// The notice.
    pub body: NoticeBody,
}

/// What a channel record holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeBody {
    /// Data published on `channel`: any JSON.
    Notice {
        /// The channel's name (`broadcast`, `user:ID`, `group:NAME`, `session:ID`).
        channel: String,
        /// What was published.
        data: serde_json::Value,
    },
}

impl NoticeEnvelope {
    /// The notice of `data` on `channel`, at `seq` and `at`.
    pub fn new(seq: Seq, at: Millis, channel: String, data: serde_json::Value) -> Self {
        NoticeEnvelope {
            seq,
            at,
            by: Actor::System,
            body: NoticeBody::Notice { channel, data },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_notice_reads_as_documented_and_round_trips() {
        let notice =
            NoticeEnvelope::new(Seq(3), 7, "broadcast".into(), serde_json::json!({"n": 1}));
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"seq": 3, "at": 7, "by": "system",
                "body": {"notice": {"channel": "broadcast", "data": {"n": 1}}}})
        );
        let packed = rmp_serde::to_vec_named(&notice).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<NoticeEnvelope>(&packed).unwrap(),
            notice
        );
    }
}
