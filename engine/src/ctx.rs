//! The context `decide` runs in: the current time, a deterministic rng, and timers.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::ids::{Millis, Seq};

/// A timer's identity within one match, handed out in order by the match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimerId(pub u64);

/// The random number generator a game sees: ChaCha8 seeded from the game's seed and the seq of
/// the next event, so a replay or a second server computes the same numbers.
pub type DetRng = ChaCha8Rng;

/// What `decide` may use besides the state and the command. Built by the match for each call.
///
/// Whatever `decide` draws from here must end up in the events it returns: the clock reading
/// and the random numbers are not logged on their own.
#[derive(Debug)]
pub struct Ctx<'a, C> {
    now: Millis,
    seed: u64,
    next_seq: Seq,
    rng: Option<DetRng>,
    next_timer: &'a mut u64,
    pub(crate) scheduled: Vec<(TimerId, Millis, C)>,
    pub(crate) cancelled: Vec<TimerId>,
}

impl<'a, C> Ctx<'a, C> {
    /// A context at `now`, whose rng derives from `seed` and `next_seq`, handing out timer ids
    /// from `next_timer`. The match builds these; tests may too.
    pub fn new(now: Millis, seed: u64, next_seq: Seq, next_timer: &'a mut u64) -> Self {
        Ctx {
            now,
            seed,
            next_seq,
            rng: None,
            next_timer,
            scheduled: Vec::new(),
            cancelled: Vec::new(),
        }
    }

    /// The time the command is handled at.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// A deterministic rng. Record what you draw in your events: `apply` never sees this.
    pub fn rng(&mut self) -> &mut DetRng {
        let (seed, seq) = (self.seed, self.next_seq);
        self.rng.get_or_insert_with(|| {
            // Mix the seq into the seed (splitmix64's finaliser) so consecutive seqs give
            // unrelated streams.
            let mut z = seed ^ seq.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
        })
    }

    /// Ask umpire to submit `command` as [`crate::Actor::System`] at `at`. The returned id is
    /// what [`Ctx::cancel`] takes; keep it in your events if you may cancel.
    pub fn schedule(&mut self, at: Millis, command: C) -> TimerId {
        let id = TimerId(*self.next_timer);
        *self.next_timer += 1;
        self.scheduled.push((id, at, command));
        id
    }

    /// Cancel a pending timer. A timer that already fired or was cancelled is ignored.
    pub fn cancel(&mut self, timer: TimerId) {
        let before = self.scheduled.len();
        self.scheduled.retain(|(id, _, _)| *id != timer);
        if self.scheduled.len() == before {
            self.cancelled.push(timer);
        }
    }

    /// The timers scheduled so far in this call, in order.
    pub fn scheduled(&self) -> &[(TimerId, Millis, C)] {
        &self.scheduled
    }

    /// The timers cancelled so far in this call, in order.
    pub fn cancelled(&self) -> &[TimerId] {
        &self.cancelled
    }
}
