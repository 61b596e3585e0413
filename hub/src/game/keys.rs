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

/// Where new games' rng seeds come from.
#[derive(Debug, Default)]
pub(crate) enum Seeds {
    /// The operating system: nobody can predict a game's dice.
    #[default]
    Random,
    /// A fixed sequence (splitmix64 from a start), so that the same commands give the same
    /// log: for tests.
    Fixed(std::sync::atomic::AtomicU64),
}

impl Seeds {
    /// The seed for the next game.
    pub(crate) fn next(&self) -> u64 {
        match self {
            Seeds::Random => {
                let mut bytes = [0u8; 8];
                fill(&mut bytes);
                u64::from_le_bytes(bytes)
            }
            Seeds::Fixed(state) => {
                let step = 0x9E37_79B9_7F4A_7C15;
                let mut z = state
                    .fetch_add(step, std::sync::atomic::Ordering::Relaxed)
                    .wrapping_add(step);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
        }
    }
}

fn fill(bytes: &mut [u8]) {
    // The OS rng failing is not something a game server can work around: keys made from
    // anything weaker would be guessable.
    #[allow(clippy::expect_used)]
    getrandom::fill(bytes).expect("the operating system's random number generator failed");
}

#[cfg(test)]
mod tests {
    use super::Seeds;

    #[test]
    fn fixed_seeds_repeat_and_differ_from_each_other() {
        let fixed = || Seeds::Fixed(7.into());
        let (a, b) = (fixed(), fixed());
        let first: Vec<u64> = (0..3).map(|_| a.next()).collect();
        assert_eq!(first, (0..3).map(|_| b.next()).collect::<Vec<_>>());
        assert_ne!(first[0], first[1]);
        assert_ne!(Seeds::Fixed(8.into()).next(), first[0]);
        assert_ne!(Seeds::Random.next(), Seeds::Random.next());
    }

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
