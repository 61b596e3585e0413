//! How many games a connection, and a user across connections, created in the last minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

/// The times of the creates of the last minute: exact, and at most the limit of them.
#[derive(Debug, Default)]
pub(crate) struct Window {
    times: VecDeque<Instant>,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.times.pop_front();
        }
    }

    /// Whether one more at `now` would be within `max` a minute.
    pub(crate) fn allows(&mut self, now: Instant, max: u32) -> bool {
        self.prune(now);
        self.times.len() < usize::try_from(max).unwrap_or(usize::MAX)
    }

    /// Count one at `now`.
    pub(crate) fn record(&mut self, now: Instant) {
        self.times.push_back(now);
    }

    /// Count one more at `now` if fewer than `max` happened in the minute before.
    #[cfg(test)]
    fn admit(&mut self, now: Instant, max: u32) -> bool {
        let allowed = self.allows(now, max);
        if allowed {
            self.record(now);
        }
        allowed
    }
}

/// A [`Window`] per user; users with nothing in the last minute are dropped now and then.
#[derive(Debug, Default)]
pub(crate) struct PerUser {
    windows: Mutex<(HashMap<String, Window>, usize)>,
}

/// Users kept before the first sweep of idle ones.
const SWEEP_FROM: usize = 1024;

impl PerUser {
    fn windows(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Window>, usize)> {
        crate::lock(&self.windows)
    }

    /// Whether `user` may create one more game at `now`, at most `max` a minute.
    pub(crate) fn allows(&self, user: &str, now: Instant, max: u32) -> bool {
        self.windows()
            .0
            .get_mut(user)
            .is_none_or(|w| w.allows(now, max))
    }

    /// Count one create of `user` at `now`.
    pub(crate) fn record(&self, user: &str, now: Instant) {
        let mut guard = self.windows();
        let (windows, sweep_at) = &mut *guard;
        if windows.len() >= (*sweep_at).max(SWEEP_FROM) {
            windows.retain(|_, w| {
                w.prune(now);
                !w.times.is_empty()
            });
            // Sweep again once the map has doubled: amortised constant work per create.
            *sweep_at = windows.len() * 2;
        }
        match windows.get_mut(user) {
            Some(window) => window.record(now),
            None => {
                let mut window = Window::default();
                window.record(now);
                windows.insert(user.to_owned(), window);
            }
        }
    }

    /// Count one more create for `user` at `now` if they made fewer than `max` in the last
    /// minute.
    #[cfg(test)]
    fn admit(&self, user: &str, now: Instant, max: u32) -> bool {
        let allowed = self.allows(user, now, max);
        if allowed {
            self.record(user, now);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_max_per_minute_and_frees_up_as_the_minute_passes() {
        let start = Instant::now();
        let mut w = Window::default();
        for i in 0..3 {
            assert!(w.admit(start + Duration::from_secs(i), 3));
        }
        assert!(!w.admit(start + Duration::from_secs(10), 3));
        assert!(!w.admit(start + Duration::from_secs(59), 3));
        // The first create is a minute old: one place again, and only one.
        assert!(w.admit(start + Duration::from_secs(60), 3));
        assert!(!w.admit(start + Duration::from_secs(60), 3));
    }

    #[test]
    fn users_are_counted_apart_and_idle_ones_are_swept() {
        let start = Instant::now();
        let users = PerUser::default();
        assert!(users.admit("ada", start, 1));
        assert!(!users.admit("ada", start, 1));
        assert!(users.admit("bo", start, 1));
        for i in 0..SWEEP_FROM * 2 {
            users.admit(&format!("u{i}"), start, 1);
        }
        // Users of a minute ago go in the next sweep, which comes before the map doubles.
        let later = start + MINUTE * 2;
        let len = || users.windows.lock().unwrap().0.len();
        let before = len();
        let swept = (0..before * 2).any(|i| {
            users.admit(&format!("v{i}"), later, 1);
            len() == i + 1 // only this minute's users are left
        });
        assert!(swept, "idle users were not swept: {} kept", len());
        assert!(users.admit("ada", later, 1), "ada's minute has passed");
    }
}
