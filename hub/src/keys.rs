//! Secrets handed to clients (join keys, watch keys, seat tokens), game seeds, and the names
//! players have in games.

use base64::Engine as _;

/// 128 random bits, URL-safe base64 without padding (22 characters).
pub(crate) fn new_key() -> String {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How guests' names start. Authenticated users are `user:<id>` in games, so no user can
/// be given a guest's name, nor a guest a user's.
const GUEST: &str = "guest-";

/// A fresh guest name: `guest-` and 8 random characters.
pub(crate) fn guest_name() -> String {
    format!("{GUEST}{}", &new_key()[..8])
}

/// Whether `player` is a guest's name. A guest's seat token is all that identifies it, so
/// for a guest's seat the token is enough.
pub(crate) fn is_guest(player: &str) -> bool {
    player.starts_with(GUEST)
}

/// The name an authenticated user plays under.
pub(crate) fn user_name(user: &str) -> String {
    format!("user:{user}")
}

/// A random seed for a new game's rng.
pub(crate) fn new_seed() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

fn fill(bytes: &mut [u8]) {
    // The OS rng failing is not something a game server can work around: keys made from
    // anything weaker would be guessable.
    #[allow(clippy::expect_used)]
    getrandom::fill(bytes).expect("the operating system's random number generator failed");
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_distinct_and_url_safe() {
        let keys: std::collections::HashSet<String> = (0..1000).map(|_| super::new_key()).collect();
        assert_eq!(keys.len(), 1000);
        for key in keys {
            assert_eq!(key.len(), 22);
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
}
