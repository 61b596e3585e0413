//! HS256 JWT authentication for `hello`.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use umpire_hub::Authenticator;

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
