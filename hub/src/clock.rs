//! Where the hub gets the time. The engine never reads a clock; the hub reads this one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use umpire_engine::Millis;

/// A source of "now" in ms since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Millis;
}

/// Wall-clock time read once at start and advanced by tokio's monotonic clock.
///
/// Advancing with tokio's clock means `tokio::time::pause()` controls it too, so tests of
/// timers run in virtual time; in production it is the wall clock without its jumps.
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall0: Millis,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Now, per the system clock.
    pub fn new() -> Self {
        let wall0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        TokioClock {
            wall0: u64::try_from(wall0).unwrap_or(u64::MAX),
            start: tokio::time::Instant::now(),
        }
    }

    /// A clock that reads `wall0` now, for tests that need the same timestamps every run.
    pub fn starting_at(wall0: Millis) -> Self {
        TokioClock {
            wall0,
            start: tokio::time::Instant::now(),
        }
    }

    /// This clock, `ms` ahead: for tests that pretend the server was down for a while.
    pub fn ahead_by(mut self, ms: Millis) -> Self {
        self.wall0 = self.wall0.saturating_add(ms);
        self
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Millis {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall0.saturating_add(elapsed)
    }
}
