//! [`Login`]: the embedding application names the user of a WebSocket, its groups and its web
//! session, from its upgrade request.

use hyper::http::request::Parts;
use hyper::StatusCode;

/// Who is opening a WebSocket, decided by the application umpire is embedded in: from its own
/// session cookie, a header its proxy sets, its own session store.
///
/// The user named is the connection's as if it had said `hello` with a token: seats it takes
/// are bound to it, it may subscribe to `user:<name>`, and the hub's
/// [`GroupPolicy`](umpire_hub::GroupPolicy) is asked about other groups. A connection with a
/// user from its login cannot `hello` as someone else. The [`Identity`]'s groups let it
/// subscribe to their `group:` channels, and its web session to each facility's
/// `session:<key>` (what a ws4redis client's `subscribe-group` and `subscribe-session` ask).
///
/// ```
/// use umpire_ws::{Identity, Login, Parts, Refusal};
///
/// #[derive(Debug)]
/// struct Cookie;
///
/// #[async_trait::async_trait]
/// impl Login for Cookie {
///     async fn identify(&self, request: &Parts) -> Result<Identity, Refusal> {
///         let cookies = request.headers.get("cookie").and_then(|v| v.to_str().ok());
///         match cookies.and_then(|c| c.split("; ").find_map(|c| c.strip_prefix("user="))) {
///             Some(user) => Ok(Identity::user(user).in_groups(["players"])),
///             None => Err(Refusal::unauthorized("sign in first")),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Login: Send + Sync + std::fmt::Debug + 'static {
    /// Who opens this WebSocket ([`Identity::guest`] for nobody signed in), or `Err` to
    /// refuse the upgrade with that status and message. Called once per upgrade, after the
    /// Origin check and before any limit takes a place, so keep it quick: the client waits.
    /// An identity outside [`Identity`]'s bounds is a bug of the login: the upgrade is
    /// answered 500 and the server's log says why.
    ///
    /// # Errors
    /// The refusal to answer the upgrade with.
    async fn identify(&self, request: &Parts) -> Result<Identity, Refusal>;
}

/// Who a [`Login`] says a WebSocket's client is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user, 1 to [`MAX_USER_BYTES`](umpire_hub::MAX_USER_BYTES) bytes; `None`: a guest.
    pub user: Option<String>,
    /// The groups the user is in (at most [`MAX_GROUPS`](umpire_hub::MAX_GROUPS), each 1 to
    /// [`MAX_NAME_BYTES`] bytes).
    pub groups: Vec<String>,
    /// The key of the application's session (its session cookie, shared by a browser's
    /// tabs), 1 to [`MAX_NAME_BYTES`] bytes: a facility's `session:<key>` channel is open to
    /// the connections that bring it.
    pub session: Option<String>,
}

/// The longest group name or session key an [`Identity`] may hold.
pub const MAX_NAME_BYTES: usize = 64;

impl Identity {
    /// Nobody signed in.
    pub fn guest() -> Self {
        Identity::default()
    }

    /// `user`, signed in.
    pub fn user(user: impl Into<String>) -> Self {
        Identity {
            user: Some(user.into()),
            ..Identity::default()
        }
    }

    /// The same, in `groups` as well.
    #[must_use]
    pub fn in_groups<G: Into<String>>(mut self, groups: impl IntoIterator<Item = G>) -> Self {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// The same, in the application's session `key`.
    #[must_use]
    pub fn in_session(mut self, key: impl Into<String>) -> Self {
        self.session = Some(key.into());
        self
    }

    /// Why this identity cannot be a connection's, if it cannot.
    pub(crate) fn invalid(&self) -> Option<String> {
        let name_ok =
            |s: &str| !s.is_empty() && s.len() <= MAX_NAME_BYTES && !s.contains(char::is_control);
        if let Some(user) = &self.user {
            if user.is_empty() || user.len() > umpire_hub::MAX_USER_BYTES {
                return Some(format!(
                    "a user of {} bytes (1 to {} are allowed)",
                    user.len(),
                    umpire_hub::MAX_USER_BYTES
                ));
            }
        }
        if self.groups.len() > umpire_hub::MAX_GROUPS {
            return Some(format!(
                "{} groups (at most {} are allowed)",
                self.groups.len(),
                umpire_hub::MAX_GROUPS
            ));
        }
        if let Some(group) = self.groups.iter().find(|g| !name_ok(g)) {
            return Some(format!(
                "the group {group:?} (1 to {MAX_NAME_BYTES} bytes, no control characters)"
            ));
        }
        if self.session.as_deref().is_some_and(|s| !name_ok(s)) {
            return Some(format!(
                "a session key that is not 1 to {MAX_NAME_BYTES} bytes without control characters"
            ));
        }
        None
    }
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
