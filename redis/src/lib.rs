//! umpire on Redis: the log of every game in one Redis (or Valkey) that several umpire nodes
//! share.
//!
//! - [`RedisLog`]: an [`umpire_store::Log`] whose every change is one Lua script, atomic and,
//!   with `appendfsync always`, fsynced before Redis answers. Writes are fenced: each checks
//!   the stream's expected version and that no other node holds the stream's lease.
//! - [`RedisBus`]: the seam between nodes (`umpire_hub::Bus`): leases, announcements and
//!   requests between nodes over pub/sub.
//! - [`Ws4RedisBridge`]: django-websocket-redis's `RedisPublisher`, published on umpire's
//!   facility channels (seed 002).
//! - `settings`: the start-up check of Redis's persistence settings.
//! - [`testing`]: a `redis-server` of a test's own.
//!
//! The key layout is described in the `scripts` module.

mod bus;
mod log;
mod scripts;
mod settings;
#[doc(hidden)]
pub mod testing;
mod ws4redis;

pub use bus::RedisBus;
pub use log::{OpenError, RedisLog, RedisOptions};
pub use ws4redis::{channel_of as ws4redis_channel, Ws4RedisBridge};
