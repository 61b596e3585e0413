//! What every session shares: the registry, who signs users in and who may join groups, the
//! open sessions (so that shutdown and a resume can reach each one), and the quotas counted
//! across connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::game::registry::Registry;
use crate::outbox::Outbox;

/// Turns a client's bearer token into a user id.
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// The user the token names.
    ///
    /// # Errors
    /// Why the token is not acceptable, in words for the client.
    fn verify(&self, token: &str) -> std::result::Result<String, String>;
}

/// Who may subscribe to which `group:<name>` channel: the embedding server decides (a team,
/// a lobby, a guild). Without a policy nobody may.
pub trait GroupPolicy: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the connection of `user` (`None`: a guest) may receive `group`'s notices.
    fn may_subscribe(&self, user: Option<&str>, group: &str) -> bool;
}

/// What the hub's clones and sessions share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) auth: Option<Arc<dyn Authenticator>>,
    pub(crate) groups: Option<Arc<dyn GroupPolicy>>,
    pub(crate) sessions: Sessions,
    /// Games each authenticated user created in the last minute.
    pub(crate) creates: crate::session::quota::PerUser,
    /// Games created from each client address in the last minute.
    pub(crate) address_creates: crate::session::quota::PerUser,
    /// Channel subscriptions from each client address in the last minute.
    pub(crate) address_subscribes: crate::session::quota::PerUser,
    /// What the bus delivers to this hub (the bus holds it weakly).
    pub(crate) hears: Arc<dyn crate::bus::Inbound>,
}

/// The open sessions, so that shutdown can wake each one: a session waits on its outbox
/// alone, which keeps the wait for the next event cheap.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    next: AtomicU64,
    stopping: AtomicBool,
    /// By session token.
    open: Mutex<HashMap<String, Weak<Outbox>>>,
    /// Sessions kept in the log for resuming, counted against `max_kept_sessions`: counted
    /// at start and by each housekeeping pass, and kept up to date in between by the
    /// sessions that save and remove their records.
    kept: AtomicUsize,
    /// `umpire_kept_sessions`: `kept`, shown. Set wherever `kept` changes.
    kept_gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Sessions {
    /// No session yet; the kept count shown in `gauge`.
    pub(crate) fn new(gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        Sessions {
            kept_gauge: gauge,
            ..Sessions::default()
        }
    }

    fn open_map(&self) -> MutexGuard<'_, HashMap<String, Weak<Outbox>>> {
        crate::lock(&self.open)
    }

    pub(crate) fn open(&self, token: &str, outbox: &Arc<Outbox>) {
        self.open_map()
            .insert(token.to_owned(), Arc::downgrade(outbox));
    }

    pub(crate) fn close(&self, token: &str) {
        self.open_map().remove(token);
    }

    /// A connection resumed the session `token`: if a connection still holds it (its end
    /// has not been noticed yet), that one is closed and never saves it again.
    pub(crate) fn take_over(&self, token: &str) {
        let old = self.open_map().remove(token);
        if let Some(outbox) = old.as_ref().and_then(Weak::upgrade) {
            outbox.take_over();
        }
    }

    /// Every open connection, for the monitor.
    pub(crate) fn list(&self, now: umpire_engine::Millis) -> Vec<crate::admin::ConnectionSummary> {
        let outboxes: Vec<Arc<Outbox>> =
            self.open_map().values().filter_map(Weak::upgrade).collect();
        let mut list: Vec<_> = outboxes
            .iter()
            .map(|outbox| {
                let (card, queued) = outbox.card();
                crate::admin::ConnectionSummary {
                    session: card.session,
                    peer: card.peer,
                    user: card.user,
                    opened: card.opened,
                    games: card.games,
                    queued,
                    behind_ms: card.behind_since.map(|since| now.saturating_sub(since)),
                }
            })
            .collect();
        list.sort_by_key(|c| c.session);
        list
    }

    /// The sessions kept for resuming, as last counted.
    pub(crate) fn kept(&self) -> usize {
        self.kept.load(Ordering::Acquire)
    }

    /// Count one session record more, if fewer than `max` are kept.
    pub(crate) fn try_keep(&self, max: usize) -> bool {
        let kept = self
            .kept
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        self.show_kept();
        kept.is_ok()
    }

    /// Count one session record fewer.
    pub(crate) fn forget_kept(&self) {
        let _ = self
            .kept
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.show_kept();
    }

    /// The kept sessions, as a pass over the log counted them.
    pub(crate) fn set_kept(&self, kept: usize) {
        self.kept.store(kept, Ordering::Release);
        self.show_kept();
    }

    fn show_kept(&self) {
        self.kept_gauge.set(crate::metrics::gauge(self.kept()));
    }

    /// The public ids of the sessions of every open connection.
    pub(crate) fn sids(&self) -> std::collections::HashSet<String> {
        let outboxes: Vec<Arc<Outbox>> =
            self.open_map().values().filter_map(Weak::upgrade).collect();
        outboxes.iter().map(|o| o.card().0.sid).collect()
    }

    /// A number for a new session, unique in this process.
    pub(crate) fn next_id(&self) -> crate::SessionId {
        crate::SessionId(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Whether shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Tell every session that shutdown has begun.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for outbox in self.open_map().values().filter_map(Weak::upgrade) {
            outbox.wake();
        }
    }
}
