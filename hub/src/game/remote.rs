//! Requests that cross to the node leading a game, and their answers: what the hub puts on
//! the bus (`crate::bus`), in MessagePack. A follower forwards what it cannot decide; the
//! leader answers through a [`ReplyTo`] that sends the answer back over the bus.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use umpire_engine::protocol::{ErrorCode, GameId};
use umpire_engine::{Actor, Seat, Seq};

use crate::error::{HubError, Result};
use crate::handle::RoomMsg;
use crate::handle::SessionId;
use crate::outbox::{Answer, Joined, RematchPlan, ReplyTo, Seated};

/// The session id the leader uses for a request that came from another node: no local
/// subscriber has it.
pub(crate) const REMOTE_SESSION: SessionId = SessionId(u64::MAX);

/// What crosses the bus.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BusMsg {
    /// A request for the leader of `game`, from node `from`; `id` names its answer.
    Request {
        from: String,
        id: u64,
        game: GameId,
        req: Forwarded,
    },
    /// The answer to request `id`.
    Reply { id: u64, answer: WireAnswer },
    /// The seats played by sessions on node `node`, for the leader's presence. Sent when
    /// they change and again every few seconds; they count until `for_ms` after it came.
    Presence {
        node: String,
        game: GameId,
        seats: Vec<u16>,
        /// Spectators watching there.
        #[serde(default)]
        spectators: u64,
        for_ms: u64,
    },
    /// The leader's spectator count, all nodes together, for the subscribers on this one.
    Audience { game: GameId, spectators: u64 },
    /// The finished game's rematch exists (its id, join and watch keys): tell the
    /// subscribers on this node.
    Rematch {
        game: GameId,
        next: (GameId, String, String),
    },
}

impl BusMsg {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Every field is plain data: encoding cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        rmp_serde::from_slice(bytes).ok()
    }
}

/// A request a follower forwards.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    Submit {
        by: Actor,
        /// The command as JSON text (MessagePack cannot carry every JSON value untyped).
        cmd: String,
        cid: Option<String>,
    },
    Join {
        player: String,
        #[serde(default)]
        seat: Option<u16>,
    },
    Reclaim {
        seat: u16,
        token: String,
        player: String,
    },
    Leave {
        seat: u16,
    },
    Rematch,
    RematchReady {
        next: Option<(GameId, String, String)>,
    },
    /// A waiting player's connection closed: their seat is given up if the game has not
    /// started.
    LeaveIfWaiting {
        seat: u16,
    },
}

impl Forwarded {
    /// The message for the leader's task, answered through `reply`.
    pub(crate) fn into_msg(self, reply: ReplyTo) -> RoomMsg {
        match self {
            Forwarded::Submit { by, cmd, cid } => RoomMsg::Submit {
                by,
                cmd: serde_json::from_str(&cmd).unwrap_or(Value::Null),
                cid,
                reply,
            },
            Forwarded::Join { player, seat } => RoomMsg::Join {
                player,
                seat: seat.map(Seat),
                sub: None,
                reply,
            },
            Forwarded::Reclaim {
                seat,
                token,
                player,
            } => RoomMsg::Reclaim {
                seat: Seat(seat),
                token,
                player,
                sub: None,
                reply,
            },
            Forwarded::Leave { seat } => RoomMsg::Leave {
                seat: Seat(seat),
                session: REMOTE_SESSION,
                reply,
            },
            Forwarded::Rematch => RoomMsg::Rematch { reply },
            Forwarded::LeaveIfWaiting { seat } => {
                drop(reply);
                RoomMsg::LeaveIfWaiting {
                    seat: Seat(seat),
                    session: REMOTE_SESSION,
                }
            }
            Forwarded::RematchReady { next } => {
                drop(reply);
                RoomMsg::RematchReady { next }
            }
        }
    }
}

/// An error as it crosses: its code and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireError {
    code: ErrorCode,
    message: String,
    #[serde(default)]
    reason: Option<serde_json::Value>,
}

impl From<&HubError> for WireError {
    fn from(e: &HubError) -> Self {
        WireError {
            code: e.code(),
            message: e.to_string(),
            reason: e.reason().cloned(),
        }
    }
}

impl From<WireError> for HubError {
    fn from(e: WireError) -> Self {
        HubError::Remote {
            code: e.code,
            message: e.message,
            reason: e.reason,
        }
    }
}

/// A seat taken, as it crosses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireSeated {
    game: GameId,
    kind: String,
    seat: u16,
    token: String,
    invite: Option<(String, String)>,
    keys: Option<(String, String)>,
    head: Seq,
}

/// An answer, as it crosses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireAnswer {
    Command(std::result::Result<Seq, WireError>),
    Seated(std::result::Result<WireSeated, WireError>),
    Left(std::result::Result<Option<Seq>, WireError>),
    Rematch(std::result::Result<(bool, String, String), WireError>),
    /// Anything else: not forwarded.
    Other,
}

fn wire<T, U>(r: Result<T>, f: impl FnOnce(T) -> U) -> std::result::Result<U, WireError> {
    r.map(f).map_err(|e| WireError::from(&e))
}

impl From<Answer> for WireAnswer {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Command { result, .. } => WireAnswer::Command(wire(result, |s| s)),
            Answer::Seated { result, .. } => WireAnswer::Seated(wire(result, |s| WireSeated {
                game: s.joined.game,
                kind: s.joined.kind,
                seat: s.joined.seat.0,
                token: s.joined.token,
                invite: s.invite,
                keys: s.keys,
                head: s.head,
            })),
            Answer::Left { result, .. } => WireAnswer::Left(wire(result, |s| s)),
            Answer::Rematch { result, .. } => WireAnswer::Rematch(wire(result, |p| match p {
                RematchPlan::Create { kind, config } => (true, kind, config.to_string()),
                RematchPlan::Join { key } => (false, key, String::new()),
            })),
            Answer::Watching { .. } | Answer::Followed { .. } | Answer::Play { .. } => {
                WireAnswer::Other
            }
        }
    }
}

impl WireAnswer {
    /// The seq the leader's log reached when it answered: the follower catches up to it
    /// before it answers, so the session is shown what the answer rests on.
    pub(crate) fn head(&self) -> Seq {
        match self {
            WireAnswer::Command(Ok(seq)) | WireAnswer::Left(Ok(Some(seq))) => *seq,
            WireAnswer::Seated(Ok(s)) => s.head,
            _ => Seq(0),
        }
    }

    /// The answer for the session, in `game`, of the kind it waits for.
    pub(crate) fn into_answer(self, game: GameId, expect: crate::game::room::Expect) -> Answer {
        use crate::game::room::Expect;
        let kind = match &self {
            WireAnswer::Command(_) => Some(Expect::Command),
            WireAnswer::Seated(_) => Some(Expect::Seated),
            WireAnswer::Left(_) => Some(Expect::Left),
            WireAnswer::Rematch(_) => Some(Expect::Rematch),
            WireAnswer::Other => None,
        };
        if kind != Some(expect) {
            // Another kind than asked (the request failed on its way, answered by whoever
            // had it): the session gets the kind it waits for, failed.
            let e = match self {
                WireAnswer::Command(Err(e))
                | WireAnswer::Seated(Err(e))
                | WireAnswer::Left(Err(e))
                | WireAnswer::Rematch(Err(e)) => HubError::from(e),
                _ => HubError::Unavailable,
            };
            let mut answer = expect.failed(game);
            answer.fail(&e);
            return answer;
        }
        match self {
            WireAnswer::Command(r) => Answer::Command {
                game,
                result: r.map_err(HubError::from),
            },
            WireAnswer::Seated(r) => Answer::Seated {
                game,
                result: r.map_err(HubError::from).map(|s| Seated {
                    joined: Joined {
                        game: s.game,
                        kind: s.kind,
                        seat: Seat(s.seat),
                        token: s.token,
                    },
                    invite: s.invite,
                    keys: s.keys,
                    head: s.head,
                }),
            },
            WireAnswer::Left(r) => Answer::Left {
                game,
                result: r.map_err(HubError::from),
            },
            WireAnswer::Rematch(r) => Answer::Rematch {
                game,
                result: r
                    .map_err(HubError::from)
                    .map(|(create, a, b)| match create {
                        true => RematchPlan::Create {
                            kind: a,
                            config: serde_json::from_str(&b).unwrap_or(Value::Null),
                        },
                        false => RematchPlan::Join { key: a },
                    }),
            },
            WireAnswer::Other => Answer::Command {
                game,
                result: Err(HubError::Unavailable),
            },
        }
    }
}

/// Requests this node forwarded and waits on: which game's task gets each answer.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    games: Mutex<HashMap<u64, GameId>>,
}

impl Pending {
    /// A new request id, for `game`.
    pub(crate) fn open(&self, game: GameId) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        crate::lock(&self.games).insert(id, game);
        id
    }

    /// The game waiting on `id`, forgetting it.
    pub(crate) fn close(&self, id: u64) -> Option<GameId> {
        crate::lock(&self.games).remove(&id)
    }
}

/// Seats played and spectators watching on other nodes, as their presence messages said,
/// each until a time.
#[derive(Debug, Default)]
pub(crate) struct RemoteSeats {
    by_node: HashMap<String, (BTreeSet<Seat>, u64, u64)>,
}

impl RemoteSeats {
    /// The seats the log says are online, taken as played elsewhere until `until`: a node
    /// that has just taken a game over has not heard the other nodes' presence yet (each tells
    /// its leader at least every third of a lease), and would otherwise log their players
    /// offline and online again. Held under no node's name; what a node tells replaces it as
    /// it comes, and a seat nobody claims by `until` is logged offline then.
    pub(crate) fn assumed(seats: BTreeSet<Seat>, until: u64) -> Self {
        let mut remote = RemoteSeats::default();
        if !seats.is_empty() {
            remote.by_node.insert(String::new(), (seats, 0, until));
        }
        remote
    }

    /// Node `node` plays `seats` and has `spectators` until `until`. Whether the seats
    /// changed, and whether the count did.
    pub(crate) fn set(
        &mut self,
        node: String,
        seats: BTreeSet<Seat>,
        spectators: u64,
        until: u64,
    ) -> (bool, bool) {
        let before = self.by_node.get(&node);
        let seats_changed = before.map(|(s, _, _)| s) != Some(&seats);
        let count_changed = before.map_or(0, |(_, n, _)| *n) != spectators;
        if seats.is_empty() && spectators == 0 {
            self.by_node.remove(&node);
        } else {
            self.by_node.insert(node, (seats, spectators, until));
        }
        (seats_changed, count_changed)
    }

    /// Spectators on other nodes.
    pub(crate) fn spectators(&self) -> u64 {
        self.by_node.values().map(|(_, n, _)| *n).sum()
    }

    /// The nodes that told.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_node
            .keys()
            .map(String::as_str)
            .filter(|node| !node.is_empty())
    }

    /// Forget what ran out by `now`; whether anything did.
    pub(crate) fn expire(&mut self, now: u64) -> bool {
        let before = self.by_node.len();
        self.by_node.retain(|_, (_, _, until)| *until > now);
        self.by_node.len() != before
    }

    /// The seats online elsewhere.
    pub(crate) fn seats(&self) -> impl Iterator<Item = Seat> + '_ {
        self.by_node
            .values()
            .flat_map(|(s, _, _)| s.iter().copied())
    }

    /// When the next entry runs out.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.by_node.values().map(|(_, _, until)| *until).min()
    }
}

/// Send `answer` to request `id` of node `node`.
pub(crate) fn reply(bus: &Arc<dyn crate::bus::Bus>, node: &str, id: u64, answer: Answer) {
    let msg = BusMsg::Reply {
        id,
        answer: WireAnswer::from(answer),
    };
    bus.send(node, msg.encode());
}
