//! [`Login`]: the embedding application names the user of a WebSocket from its upgrade request.

use hyper::http::request::Parts;
use hyper::StatusCode;

/// Who is opening a WebSocket, decided by the application umpire is embedded in: from its own
/// session cookie, a header its proxy sets, its own session store.
///
/// The user named is the connection's as if it had said `hello` with a token: seats it takes
/// are bound to it, it may subscribe to `user:<name>`, and the hub's
/// [`GroupPolicy`](umpire_hub::GroupPolicy) is asked about its groups. A connection with a
/// user from its login cannot `hello` as someone else.
///
/// ```
/// use umpire_ws::{Login, Parts, Refusal};
///
/// #[derive(Debug)]
/// struct Cookie;
///
/// #[async_trait::async_trait]
/// impl Login for Cookie {
///     async fn identify(&self, request: &Parts) -> Result<Option<String>, Refusal> {
///         let cookies = request.headers.get("cookie").and_then(|v| v.to_str().ok());
///         match cookies.and_then(|c| c.split("; ").find_map(|c| c.strip_prefix("user="))) {
///             Some(user) => Ok(Some(user.to_owned())),
///             None => Err(Refusal::unauthorized("sign in first")),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Login: Send + Sync + std::fmt::Debug + 'static {
    /// The user opening this WebSocket: `Ok(Some(name))` signed in (1 to
    /// [`MAX_USER_BYTES`](umpire_hub::MAX_USER_BYTES) bytes), `Ok(None)` a guest, `Err` the
    /// upgrade refused with that status and message. Called once per upgrade, after the
    /// Origin check and before any limit takes a place, so keep it quick: the client waits.
    ///
    /// # Errors
    /// The refusal to answer the upgrade with.
    async fn identify(&self, request: &Parts) -> Result<Option<String>, Refusal>;
}

/// An upgrade refused by a [`Login`]: the HTTP status and a plain-text message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status of the answer (401, 403, 503, ...).
    pub status: StatusCode,
    /// Said to the client as the answer's body.
    pub message: String,
}

impl Refusal {
    /// A refusal with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// 401: not signed in.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: signed in, but not allowed here.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::FORBIDDEN, message)
    }
}
