//! [`Ws4RedisBridge`]: what django-websocket-redis's `RedisPublisher` publishes to Redis,
//! published on umpire's facility channels, so that a Django site's server code reaches
//! umpire's ws4redis clients unchanged (seed 002).
//!
//! `RedisPublisher(facility=F, broadcast=True | users=[..] | groups=[..] | sessions=[..])`
//! does `PUBLISH {prefix}broadcast:F msg` (or `user:U:F`, `group:G:F`, `session:K:F`) and then
//! a `SETEX` of the same name. The bridge pattern-subscribes to those four forms and
//! publishes each message, as a JSON string, on `facility:F:broadcast` (or `:user:U`, ...).
//! A facility holds no `:` (the last `:` of a name starts the facility, so group names may
//! hold colons); bytes that are not UTF-8 are dropped, as are names that are not a facility's.
//!
//! One node bridges at a time: the one holding the lease `{umpire prefix}ws4redis`, renewed
//! every second and taken by another node within three seconds of its holder dying. Redis
//! pub/sub delivers at most once: what is published while no node holds the lease (those
//! seconds) is missed, as it is by ws4redis's own subscribers while they reconnect; a node
//! that takes the lease over sends, for each persisted channel whose last value differs from
//! its umpire channel's last notice, that value: what ws4redis's clients would get on connect.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use umpire_hub::{facility_channel, Audience, Hub};

/// How often the lease is renewed (and, by the other nodes, tried).
const RENEW: Duration = Duration::from_secs(1);

/// How long the lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(3);

/// The bridge from ws4redis's Redis publisher to umpire's facility channels. See the
/// module's notes.
#[derive(Debug, Clone)]
pub struct Ws4RedisBridge {
    client: redis::Client,
    /// ws4redis's `WS4REDIS_PREFIX` followed by `:`, or empty.
    prefix: String,
    /// The lease's key.
    lease: String,
    /// This node's name, the lease's value.
    node: String,
}

/// The umpire channel for the ws4redis channel `name` (with `prefix` already removed), if it
/// is one.
pub fn channel_of(name: &str) -> Option<String> {
    let (kind, rest) = name.split_once(':')?;
    // The facility is after the last colon (a group name may hold colons); the hub refuses an
    // empty name or a facility it cannot take.
    let (who, facility) = match kind {
        "broadcast" => ("", rest),
        _ => rest.rsplit_once(':')?,
    };
    let audience = match kind {
        "broadcast" => Audience::Broadcast,
        "user" => Audience::User(who),
        "group" => Audience::Group(who),
        "session" => Audience::Session(who),
        _ => return None,
    };
    facility_channel(facility, audience).ok()
}

impl Ws4RedisBridge {
    /// The bridge of node `node` to the Redis at `url`, for ws4redis's `WS4REDIS_PREFIX`
    /// `ws4redis_prefix` (`None`: ws4redis's default, no prefix), its lease under umpire's key
    /// prefix `umpire_prefix`.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(
        url: &str,
        ws4redis_prefix: Option<&str>,
        umpire_prefix: &str,
        node: &str,
    ) -> Result<Self, redis::RedisError> {
        Ok(Ws4RedisBridge {
            client: redis::Client::open(url)?,
            prefix: ws4redis_prefix.map_or_else(String::new, |p| format!("{p}:")),
            lease: format!("{umpire_prefix}:ws4redis"),
            node: node.to_owned(),
        })
    }

    /// Bridge into `hub` until it shuts down.
    pub async fn run(self, hub: Hub) {
        let stop = hub.shutdown_token();
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.bridge(&hub) => {}
        }
    }

    async fn bridge(&self, hub: &Hub) {
        let mut leading = false;
        loop {
            let pubsub = match self.client.get_async_pubsub().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "the ws4redis bridge cannot reach Redis; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let Ok(mut conn) = self.client.get_multiplexed_async_connection().await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let (mut sink, mut stream) = pubsub.split();
            let mut subscribed = true;
            for kind in ["broadcast", "user", "group", "session"] {
                let pattern = format!("{}{kind}:*", self.prefix);
                subscribed &= sink.psubscribe(&pattern).await.is_ok();
            }
            if !subscribed {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let mut renew = tokio::time::interval(RENEW);
            // What the last catch-up published: a message published while it ran arrives
            // live after it too, and is not published twice. Forgotten at the next renewal.
            let mut caught: HashSet<(String, Vec<u8>)> = HashSet::new();
            loop {
                tokio::select! {
                    _ = renew.tick() => {
                        caught.clear();
                        let was = leading;
                        leading = self.hold(&mut conn).await;
                        if leading && !was {
                            tracing::info!(node = %self.node, "this node bridges ws4redis's publisher");
                            caught = self.catch_up(&mut conn, hub).await;
                        }
                    }
                    msg = stream.next() => {
                        let Some(msg) = msg else { break };
                        let (channel, payload) = (msg.get_channel_name(), msg.get_payload_bytes());
                        if leading && !caught.remove(&(channel.to_owned(), payload.to_vec())) {
                            self.forward(hub, channel, payload).await;
                        }
                    }
                }
            }
            tracing::warn!("the ws4redis bridge's subscription dropped; subscribing again");
            leading = false;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Take or renew the lease; whether this node holds it.
    async fn hold(&self, conn: &mut redis::aio::MultiplexedConnection) -> bool {
        let script = redis::Script::new(
            r"local v = redis.call('GET', KEYS[1])
              if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
              if v then return 0 end
              redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1",
        );
        let ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
        let held: redis::RedisResult<i64> = script
            .key(&self.lease)
            .arg(&self.node)
            .arg(ms)
            .invoke_async(conn)
            .await;
        match held {
            Ok(n) => n == 1,
            Err(e) => {
                tracing::warn!(error = %e, "the ws4redis bridge's lease not renewed");
                false
            }
        }
    }

    /// The umpire channel of the Redis channel `channel` and the text of `payload`, if they
    /// are a facility channel's and text.
    fn resolve<'a>(&self, channel: &str, payload: &'a [u8]) -> Option<(String, &'a str)> {
        let Some(name) = channel.strip_prefix(&self.prefix).and_then(channel_of) else {
            tracing::debug!(channel, "not a ws4redis facility channel; ignored");
            return None;
        };
        let Ok(text) = std::str::from_utf8(payload) else {
            tracing::warn!(
                channel,
                "a ws4redis message that is not UTF-8 text; dropped"
            );
            return None;
        };
        Some((name, text))
    }

    /// Publish the ws4redis message `payload` on `channel` in umpire.
    async fn forward(&self, hub: &Hub, channel: &str, payload: &[u8]) {
        if let Some((name, text)) = self.resolve(channel, payload) {
            publish(hub, &name, text).await;
        }
    }

    /// On taking the lease: each persisted ws4redis channel whose value is not its umpire
    /// channel's last notice is published (what was missed while no node bridged). Returns
    /// what it published, by Redis channel.
    async fn catch_up(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        hub: &Hub,
    ) -> HashSet<(String, Vec<u8>)> {
        let mut published = HashSet::new();
        for kind in ["broadcast", "user", "group", "session"] {
            let pattern = format!("{}{kind}:*", self.prefix);
            let keys = match scan(conn, &pattern).await {
                Ok(keys) => keys,
                Err(e) => {
                    tracing::warn!(error = %e, "the ws4redis bridge cannot list persisted messages");
                    return published;
                }
            };
            for key in keys {
                let value: redis::RedisResult<Option<Vec<u8>>> =
                    redis::cmd("GET").arg(&key).query_async(conn).await;
                let Ok(Some(value)) = value else { continue };
                let Some((name, text)) = self.resolve(&key, &value) else {
                    continue;
                };
                let last = hub.last_notice(&name).await.ok().flatten();
                if last.as_ref().and_then(Value::as_str) != Some(text) {
                    publish(hub, &name, text).await;
                    published.insert((key, value));
                }
            }
        }
        published
    }
}

/// Publish `text` on the umpire channel `name`, as a JSON string.
async fn publish(hub: &Hub, name: &str, text: &str) {
    if let Err(e) = hub.publish(name, Value::String(text.to_owned())).await {
        tracing::warn!(channel = name, error = %e, "a ws4redis message not published");
    }
}

/// The keys matching `pattern`, by SCAN (never KEYS: it blocks Redis).
async fn scan(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await?;
        keys.extend(page);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws4redis_names_become_facility_channels() {
        assert_eq!(
            channel_of("broadcast:notifications").as_deref(),
            Some("facility:notifications:broadcast")
        );
        assert_eq!(
            channel_of("user:john:game42").as_deref(),
            Some("facility:game42:user:john")
        );
        assert_eq!(
            channel_of("group:a:b:chat").as_deref(),
            Some("facility:chat:group:a:b")
        );
        assert_eq!(
            channel_of("session:k1:chat").as_deref(),
            Some("facility:chat:session:k1")
        );
        assert_eq!(channel_of("broadcast:a:b"), None);
        assert_eq!(channel_of("user:chat"), None);
        assert_eq!(channel_of("user::chat"), None);
        assert_eq!(channel_of("broadcast:"), None);
        assert_eq!(channel_of("other:x"), None);
    }
}
