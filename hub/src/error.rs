//! The hub's errors, one enum for every request, each variant mapped to a wire code.

use umpire_engine::protocol::ErrorCode;
use umpire_store::{Refused, StoreError};

/// Why a request to the hub failed.
///
/// Cloneable: one failed flush is the answer to every request that waited on it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum HubError {
    /// No game kind of that name is registered. Handling: `not_found`.
    #[error("no game kind called {0:?}")]
    UnknownKind(String),
    /// The config does not parse as the game's config. Handling: `bad_message`.
    #[error("bad config: {0}")]
    BadConfig(String),
    /// The command does not parse as the game's command. Handling: `bad_message`.
    #[error("bad command: {0}")]
    BadCommand(String),
    /// No game has this id, or no key matches. Handling: `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this. Handling: `forbidden`.
    #[error("{0}")]
    Forbidden(String),
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
    /// Authentication is required or failed. Handling: `unauthorized`.
    #[error("{0}")]
    Unauthorized(String),
    /// Too many games created in the last minute, by this connection or this user.
    /// Handling: `rate_limited`.
    #[error("{0}")]
    TooFast(String),
    /// A limit on what one client may hold is reached. Handling: `limit_reached`.
    #[error("{0}")]
    Limit(String),
    /// The hub is shutting down, or the game's task stopped. Handling: `overloaded`; retry.
    #[error("the game is unavailable, try again")]
    Unavailable,
    /// The game runs on another node (see [`crate::Bus`]); this one does not forward requests.
    /// Handling: `overloaded`; retry (on the node that runs it).
    #[error("game {game} runs on another node ({node}); try again")]
    Elsewhere {
        /// The game.
        game: u64,
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
    Panicked(String),
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
    pub(crate) fn panicked(game: umpire_engine::protocol::GameId) -> Self {
        HubError::Panicked(format!(
            "game {game} stopped: its code panicked (the server's log says where); it stays \
             stopped until the server restarts"
        ))
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
