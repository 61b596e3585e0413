//! HS256 JWT authentication: for `hello` ([`JwtAuth`]), and for the upgrade from a cookie the
//! application set ([`JwtCookie`], a [`Login`]).

use hyper::http::request::Parts;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use umpire_hub::Authenticator;

use crate::login::{Identity, Login, Refusal};

/// Accepts HS256 tokens signed with one shared secret: `sub` names the user, `exp` is
/// required and enforced, and so is `nbf` when present, each with a leeway for clocks that
/// disagree (30 s by default).
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtAuth(HS256)")
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// The user's groups (a [`JwtCookie`]'s identity).
    #[serde(default)]
    groups: Vec<String>,
    /// The application's session key (a [`JwtCookie`]'s identity).
    #[serde(default)]
    sid: Option<String>,
}

impl JwtAuth {
    /// Verify tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        JwtAuth {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// How far the issuer's clock may be from this server's (default 30 s).
    #[must_use]
    pub fn leeway(mut self, leeway: std::time::Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }
}

impl Authenticator for JwtAuth {
    fn verify(&self, token: &str) -> Result<String, String> {
        decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims.sub)
            .map_err(|e| format!("bad token: {e}"))
    }
}

/// A [`Login`] for an application that signs its users in elsewhere (a Django site, say) and
/// sets a cookie holding an HS256 JWT with the same secret as `hello`'s tokens: `sub` the user,
/// `exp` required, optionally `groups` (a list: the user's groups) and `sid` (the application's
/// session key: a facility's `session:<sid>` channel). No cookie: a guest. A cookie whose token
/// does not verify: the upgrade is refused with 401. `umpire serve --login-cookie NAME`.
pub struct JwtCookie {
    name: String,
    auth: JwtAuth,
}

impl std::fmt::Debug for JwtCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtCookie({:?}, HS256)", self.name)
    }
}

impl JwtCookie {
    /// Tokens in the cookie `name`, verified by `auth`.
    pub fn new(name: impl Into<String>, auth: JwtAuth) -> Self {
        JwtCookie {
            name: name.into(),
            auth,
        }
    }

    /// The cookie's value in `request`, if it has the cookie.
    fn value<'a>(&self, request: &'a Parts) -> Option<&'a str> {
        request
            .headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find_map(|(name, value)| (name == self.name).then_some(value.trim_matches('"')))
    }
}

#[async_trait::async_trait]
impl Login for JwtCookie {
    async fn identify(&self, request: &Parts) -> Result<Identity, Refusal> {
        let Some(token) = self.value(request) else {
            return Ok(Identity::guest());
        };
        let claims = decode::<Claims>(token, &self.auth.key, &self.auth.validation)
            .map_err(|e| {
                Refusal::unauthorized(format!("the {} cookie: bad token: {e}", self.name))
            })?
            .claims;
        let identity = Identity::user(claims.sub).in_groups(claims.groups);
        Ok(match claims.sid {
            Some(sid) => identity.in_session(sid),
            None => identity,
        })
    }
}
