//! The hub's errors, one enum for every request, each variant mapped to a wire code, each
//! carrying what went wrong as data (which game, which limit and its value); the words a
//! client reads are their `Display`.

use umpire_engine::protocol::{ErrorCode, GameId};
use umpire_store::{Refused, StoreError};

/// Why a request to the hub failed.
///
/// Cloneable: one failed flush is the answer to every request that waited on it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum HubError {
    /// No game kind of that name is registered. Handling: `not_found`.
    #[error("no game kind called {0:?}")]
    UnknownKind(String),
    /// The config is not one the game takes. Handling: `bad_message`.
    #[error("bad config: {0}")]
    BadConfig(Malformed),
    /// A request's content is malformed: the command does not parse as the game's, a channel
    /// name or a notice is not one. Handling: `bad_message`.
    #[error("bad command: {0}")]
    BadCommand(Malformed),
    /// What the request names is not there. Handling: `not_found`.
    #[error("{0}")]
    NotFound(Missing),
    /// The caller may not do this. Handling: `forbidden`.
    #[error("{0}")]
    Forbidden(Denied),
    /// The game's rules refused. Handling: `rejected`, with `reason`.
    #[error("{message}")]
    Rejected {
        /// The rejection's `Display`.
        message: String,
        /// The rejection itself, serialized: what clients branch on.
        reason: serde_json::Value,
    },
    /// Every seat is taken. Handling: `full`.
    #[error("every seat is taken")]
    Full,
    /// The game is over. Handling: `game_over`.
    #[error("the game is over")]
    GameOver,
    /// The player stopped waiting (`cancel`) before a seat was found. Handling: `cancelled`.
    #[error("cancelled: no longer waiting to play")]
    Cancelled,
    /// Authentication is required or failed. Handling: `unauthorized`.
    #[error("{0}")]
    Unauthorized(Unauthenticated),
    /// Too many games created, or channels subscribed, in the last minute. Handling:
    /// `rate_limited`.
    #[error("{0}")]
    TooFast(Quota),
    /// A limit on what one client, or the server, may hold is reached. Handling:
    /// `limit_reached`.
    #[error("{0}")]
    Limit(Held),
    /// The hub is shutting down, or the game's task stopped. Handling: `overloaded`; retry.
    #[error("the game is unavailable, try again")]
    Unavailable,
    /// The game runs on another node (see [`crate::Bus`]); this one does not forward requests.
    /// Handling: `overloaded`; retry (on the node that runs it).
    #[error("game {game} runs on another node ({node}); try again")]
    Elsewhere {
        /// The game.
        game: GameId,
        /// The node that runs it, as the bus names it.
        node: String,
    },
    /// The node that runs the game answered with this error (a request forwarded to it).
    /// Handling: its code.
    #[error("{message}")]
    Remote {
        /// The code the other node gave.
        code: ErrorCode,
        /// Its message.
        message: String,
        /// Its reason, for a rejection.
        reason: Option<serde_json::Value>,
    },
    /// The log failed. Handling: `internal`; the game reloads from the log on next use.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// The log refused the game's write ([`Refused`]): the stream moved under the game's task
    /// (`Stale`: two tasks ran one game; `internal`), or another process now runs the game
    /// (`NotOwner`: `overloaded`, retry: the request reaches the game where it runs now). The
    /// task stops either way; the game reloads from the log on next use.
    #[error("the game's log refused its write: {0}")]
    Refused(Refused),
    /// The game's own code (`setup`, `decide`, `apply`, `presence`, `outcome`, `view`)
    /// panicked. The game stays stopped until the server restarts, so that it cannot take
    /// anything else down with it, nor panic again and again. Handling: `internal`.
    #[error("{0}")]
    Panicked(Panic),
}

/// What is malformed in a request ([`HubError::BadConfig`], [`HubError::BadCommand`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// It does not parse as the game's type: the decoder's words.
    #[error("{0}")]
    Parse(String),
    /// The game's `check_config` refused it, in the game's words.
    #[error("{0}")]
    Refused(String),
    /// The config makes a game without seats.
    #[error("a game needs at least one seat")]
    NoSeats,
    /// It parsed but does not encode for the log: the encoder's words.
    #[error("{what} does not encode: {why}")]
    Encoding {
        /// `the config`, `the notice`.
        what: &'static str,
        /// The encoder's words.
        why: String,
    },
    /// A `play`'s props are over 4 KiB.
    #[error("props have at most 4 KiB")]
    PropsTooLarge,
    /// A notice's data is over 64 KiB.
    #[error("a notice has at most 64 KiB of data")]
    NoticeTooLarge,
    /// A `cid` is over the limit.
    #[error("a cid has at most {0} bytes")]
    CidTooLong(usize),
    /// Not a channel's name.
    #[error("channel {name:?}: {why}")]
    Channel {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: BadChannel,
    },
}

/// What is wrong with a channel's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadChannel {
    /// Over 160 bytes.
    #[error("a channel name has at most 160 bytes")]
    TooLong,
    /// A control character in it.
    #[error("a channel name has no control characters")]
    Control,
    /// None of the forms.
    #[error(
        "channels are broadcast, user:<id>, group:<name>, session, or facility:<f>:<one of these>"
    )]
    Unknown,
    /// Nothing after `user:`, `group:` or `session:`.
    #[error("the part after the colon is empty")]
    Empty,
    /// A facility's channel not of its four forms.
    #[error(
        "a facility's channel is facility:<f>:broadcast, :user:<id>, :group:<name> or :session:<key>"
    )]
    FacilityForm,
    /// A facility name out of bounds.
    #[error("a facility has 1 to 64 bytes, no colon and no control character")]
    FacilityName,
}

/// What a request names that is not there ([`HubError::NotFound`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Missing {
    /// No game (or stream) has this id.
    #[error("no game {0}")]
    Game(GameId),
    /// The game's log holds nothing.
    #[error("game {0} has no records")]
    Records(GameId),
    /// No game has this join or watch key.
    #[error("no game has this key")]
    Key,
    /// The connection is not in this game.
    #[error("you are not in game {0}")]
    NotIn(GameId),
    /// The connection holds no seat in this game.
    #[error("you have no seat in game {0}")]
    NoSeat(GameId),
    /// A rematch asked by a connection without a seat in the game.
    #[error("you have no seat in game {0}: only its players start a rematch")]
    NoSeatForRematch(GameId),
    /// The session to resume is unknown or expired.
    #[error("unknown or expired session: start over (seat tokens and watch keys still work)")]
    Session,
    /// A facility's channel nothing was published on yet.
    #[error("nothing was published on {0} yet: subscribe again once it is")]
    Unpublished(String),
}

/// Why the caller may not ([`HubError::Forbidden`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// A seat or a command sent to a channel.
    #[error("a channel takes no seat and no command")]
    ChannelPlay,
    /// A publish sent to a game.
    #[error("a game is not a channel")]
    NotAChannel,
    /// A seat asked for with a watch key.
    #[error("a watch key cannot take a seat")]
    WatchKeySeat,
    /// The seat token is another player's.
    #[error("this seat belongs to another player")]
    SeatOfAnother,
    /// The seat was given up.
    #[error("this seat was given up; join again with the join key")]
    SeatGivenUp,
    /// The seat is empty or does not exist.
    #[error("that seat is not taken")]
    SeatNotTaken,
    /// Only the system may do this, or a seatless actor tried to play.
    #[error("not allowed for this actor")]
    Actor,
    /// The timer already fired or was cancelled.
    #[error("timer {0} is not pending")]
    TimerNotPending(u64),
    /// A rematch asked before the game ended.
    #[error("the game is not over: a rematch comes after it")]
    NotOver,
    /// A spectator sent a command.
    #[error("spectators cannot play")]
    Spectator,
    /// `hello` after the connection has an identity.
    #[error("this connection is already signed in as {0}; open another to change")]
    SignedIn(String),
    /// `hello` after the connection entered a game.
    #[error("hello must come before any game on this connection")]
    HelloLate,
    /// `resume` after the connection entered a game.
    #[error("resume must come before any game on this connection")]
    ResumeLate,
    /// The session to resume is another user's (or a guest's, for a user).
    #[error("this session belongs to someone else")]
    SessionOfAnother,
    /// `user:<id>` asked by someone else.
    #[error("only {0} may subscribe to user:{0} (hello with their token first)")]
    UserChannel(String),
    /// `group:<name>` asked by a connection not in the group.
    #[error("this connection may not subscribe to group:{0}")]
    GroupChannel(String),
    /// Another session's `session:<id>`.
    #[error("a session's channel is that session's alone (subscribe to \"session\")")]
    SessionChannel,
    /// A facility's `session:<key>` asked by a connection not in that web session.
    #[error("a web session's channel is for the connections its login put in that session")]
    WebSessionChannel,
}

/// Why authentication failed or is needed ([`HubError::Unauthorized`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// The server requires `hello` before anything else.
    #[error("send hello with a token first")]
    HelloFirst,
    /// The token was refused: the [`crate::Authenticator`]'s words.
    #[error("{0}")]
    Token(String),
    /// The token names a user id out of bounds.
    #[error("a user id has 1 to {0} bytes")]
    UserLength(usize),
    /// No authenticator: `hello` cannot succeed here.
    #[error("this server does not authenticate")]
    NoAuthenticator,
    /// The session to resume is a signed-in user's, and this connection is a guest.
    #[error("this session is a signed-in user's: send hello with their token first")]
    UserSession,
}

/// Which rate was exceeded ([`HubError::TooFast`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Quota {
    /// Games created in a minute, by this connection or this user.
    #[error("at most {0} new games a minute; wait a little")]
    Creates(u32),
    /// Games created in a minute from this client address.
    #[error("at most {0} new games a minute from one address; wait a little")]
    AddressCreates(u32),
    /// Channels subscribed in a minute from this client address.
    #[error("at most {0} subscriptions a minute from one address; wait a little")]
    AddressSubscribes(u32),
}

/// Which limit on what is held was reached ([`HubError::Limit`]); each holds the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Held {
    /// Games (and channels) one connection is in.
    #[error("this connection is in {0} games already; leave one first")]
    ConnectionGames(usize),
    /// Unfinished games one player is in.
    #[error("you have {0} unfinished games already; finish or leave one first")]
    PlayerGames(usize),
    /// Live games on the server.
    #[error("this server holds its most live games ({0}); try again later")]
    LiveGames(usize),
    /// Channel streams on the server.
    #[error("the server holds {0} channels, its most; try again later")]
    Channels(usize),
    /// Sessions kept for resuming.
    #[error("the server keeps {0} resumable sessions, its most; try again later")]
    KeptSessions(usize),
    /// `play` requests of one connection waiting for a seat.
    #[error("this connection waits for {0} seats already; wait for one or cancel")]
    Plays(usize),
    /// Players waiting to play (`play`) on this server.
    #[error("{0} players are waiting to play on this server, its most; try again later")]
    Waiting(usize),
}

/// Where a game's own code panicked ([`HubError::Panicked`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Panic {
    /// While it ran: the game stays stopped until the server restarts.
    #[error(
        "game {0} stopped: its code panicked (the server's log says where); it stays stopped \
         until the server restarts"
    )]
    Stopped(GameId),
    /// While a game of this kind was created.
    #[error("the {0} game's code panicked as it was created")]
    Creating(String),
    /// While the game was replayed (to inspect it).
    #[error("replaying game {0}, its code panicked")]
    Replaying(GameId),
}

impl HubError {
    /// The game's `rejection`, as the error that carries it.
    pub fn rejected<R: std::fmt::Display + serde::Serialize>(rejection: &R) -> Self {
        HubError::Rejected {
            message: rejection.to_string(),
            // A rejection that does not serialize still refuses: its reason is then null.
            reason: serde_json::to_value(rejection).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The game's rejection as data, for a `rejected` error (see [`HubError::rejected`]).
    pub fn reason(&self) -> Option<&serde_json::Value> {
        match self {
            HubError::Rejected { reason, .. } => Some(reason),
            HubError::Remote { reason, .. } => reason.as_ref(),
            _ => None,
        }
    }

    /// A game stopped for good by a panic in its code.
    pub(crate) fn panicked(game: GameId) -> Self {
        HubError::Panicked(Panic::Stopped(game))
    }
}

impl HubError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::UnknownKind(_) | HubError::NotFound(_) => ErrorCode::NotFound,
            HubError::BadConfig(_) | HubError::BadCommand(_) => ErrorCode::BadMessage,
            HubError::Forbidden(_) => ErrorCode::Forbidden,
            HubError::Rejected { .. } => ErrorCode::Rejected,
            HubError::Full => ErrorCode::Full,
            HubError::GameOver => ErrorCode::GameOver,
            HubError::Cancelled => ErrorCode::Cancelled,
            HubError::Unauthorized(_) => ErrorCode::Unauthorized,
            HubError::Unavailable
            | HubError::Elsewhere { .. }
            | HubError::Refused(Refused::NotOwner { .. }) => ErrorCode::Overloaded,
            HubError::TooFast(_) => ErrorCode::RateLimited,
            HubError::Remote { code, .. } => *code,
            HubError::Limit(_) => ErrorCode::LimitReached,
            HubError::Store(_)
            | HubError::Refused(Refused::Stale { .. })
            | HubError::Panicked(_) => ErrorCode::Internal,
        }
    }
}

/// The hub's result type.
pub type Result<T, E = HubError> = std::result::Result<T, E>;
