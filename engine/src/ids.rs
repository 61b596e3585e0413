//! The plain numbers everything else speaks of: time and positions in a stream.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The engine never reads a clock: time is handed in.
pub type Millis = u64;

/// A position in a stream. The first record of every stream has seq 1; 0 means "nothing yet".
/// A number on the wire. Adding a count to a seq gives a seq; a seq less a seq is a count.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

/// What every id that is a number on the wire has: shown as that number, made from it and
/// into it, and compared with it (`assert_eq!(env.seq, 3)`).
macro_rules! number {
    ($id:ident) => {
        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $id {
            fn from(n: u64) -> Self {
                $id(n)
            }
        }

        impl From<$id> for u64 {
            fn from(id: $id) -> Self {
                id.0
            }
        }

        impl PartialEq<u64> for $id {
            fn eq(&self, other: &u64) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$id> for u64 {
            fn eq(&self, other: &$id) -> bool {
                *self == other.0
            }
        }
    };
}
pub(crate) use number;

number!(Seq);

impl Seq {
    /// Nothing yet: the version of an empty stream.
    pub const ZERO: Seq = Seq(0);

    /// Beyond any stream's end: "up to the end".
    pub const MAX: Seq = Seq(u64::MAX);

    /// `n` after this one, or [`Seq::MAX`].
    #[must_use]
    pub const fn saturating_add(self, n: u64) -> Seq {
        Seq(self.0.saturating_add(n))
    }

    /// The seq after this one.
    #[must_use]
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// `n` before this one, or 0.
    #[must_use]
    pub const fn saturating_sub(self, n: u64) -> Seq {
        Seq(self.0.saturating_sub(n))
    }
}

impl std::str::FromStr for Seq {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Seq)
    }
}

impl PartialOrd<u64> for Seq {
    fn partial_cmp(&self, other: &u64) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(other)
    }
}

impl std::ops::Add<u64> for Seq {
    type Output = Seq;
    fn add(self, n: u64) -> Seq {
        Seq(self.0 + n)
    }
}

impl std::ops::AddAssign<u64> for Seq {
    fn add_assign(&mut self, n: u64) {
        self.0 += n;
    }
}

impl std::ops::Sub<u64> for Seq {
    type Output = Seq;
    fn sub(self, n: u64) -> Seq {
        Seq(self.0 - n)
    }
}

/// How many seqs lie from `other` up to `self`.
impl std::ops::Sub<Seq> for Seq {
    type Output = u64;
    fn sub(self, other: Seq) -> u64 {
        self.0 - other.0
    }
}
