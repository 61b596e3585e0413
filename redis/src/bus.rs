//! [`RedisBus`]: the seam between umpire nodes sharing one Redis (`umpire_hub::Bus`).
//!
//! - Leases: the `u:own` hash holds each led game's node and `u:oexp` until when, taken with
//!   [`RedisLog::acquire`] and renewed every third of the lease by one script for all the
//!   node's games; a game found taken by another node at renewal is reported lost, and the
//!   log refuses that node's writes to it anyway.
//! - Announcements: after every durable turn, the game's new version, sent by one task that
//!   gathers what waits into one `PUBLISH u:ev "<id>:<version> <id>:<version> ...\n<node>"`
//!   (one command per batch, not per game: Redis spent more on fifty publishes than on the
//!   commit's appends). Every node hears `u:ev` and keeps what concerns the games it follows.
//! - Requests and answers between nodes: `PUBLISH u:node:<name> <bytes>`, each node
//!   subscribed to its own channel.
//!
//! Pub/sub is at most once: a lost announcement is caught up by the followers' own look at
//! the log, a lost request times out and is retried by the client. When the subscriber
//! connection drops (Redis restarted) it is opened again and every channel subscribed anew.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use umpire_hub::{Bus, GameId, Inbound, Placement};
use umpire_store::{Seq, StoreError};

use crate::RedisLog;

/// What the subscriber task is asked.
#[derive(Debug)]
enum Sub {
    Follow(u64),
    Unfollow(u64),
}

/// What the publishing task sends.
#[derive(Debug)]
enum Out {
    /// A game's new version, gathered with the others into one message.
    Announce(u64, Seq),
    /// Bytes for a channel.
    Send(String, Vec<u8>),
}

type Outgoing = mpsc::UnboundedReceiver<Out>;

/// The bus of one node over Redis. See the module's notes.
#[derive(Debug)]
pub struct RedisBus {
    log: RedisLog,
    client: redis::Client,
    ttl: Duration,
    held: Arc<Mutex<HashSet<u64>>>,
    subs: mpsc::UnboundedSender<Sub>,
    subs_rx: Mutex<Option<mpsc::UnboundedReceiver<Sub>>>,
    out: mpsc::UnboundedSender<Out>,
    out_rx: Mutex<Option<Outgoing>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisBus {
    /// The bus of the node `log` names, on the Redis at `url` (the log's), with leases
    /// `ttl` long. Its tasks start when a hub attaches to it.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(url: &str, log: RedisLog, ttl: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let (subs, subs_rx) = mpsc::unbounded_channel();
        let (out, out_rx) = mpsc::unbounded_channel();
        Ok(RedisBus {
            log,
            client,
            ttl,
            held: Arc::default(),
            subs,
            subs_rx: Mutex::new(Some(subs_rx)),
            out,
            out_rx: Mutex::new(Some(out_rx)),
        })
    }

    fn channel(&self, rest: &str) -> String {
        format!("{}:{rest}", self.log.options().prefix)
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn node(&self) -> &str {
        self.log.node()
    }

    async fn place(&self, game: GameId) -> Result<Placement, StoreError> {
        let stream = game.0;
        match self.log.acquire(stream, self.ttl).await? {
            Ok(()) => {
                lock(&self.held).insert(stream);
                Ok(Placement::Here)
            }
            Err(holder) => Ok(Placement::Elsewhere(holder)),
        }
    }

    fn release(&self, game: GameId) {
        let stream = game.0;
        lock(&self.held).remove(&stream);
        let log = self.log.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = log.release(&[stream]).await {
                    tracing::debug!(%stream, error = %e, "a lease was not released; it runs out");
                }
            });
        }
    }

    fn announce(&self, game: GameId, version: umpire_hub::Seq) {
        let _ = self.out.send(Out::Announce(game.0, version.0));
    }

    fn follow(&self, game: GameId) {
        let stream = game.0;
        let _ = self.subs.send(Sub::Follow(stream));
    }

    fn unfollow(&self, game: GameId) {
        let stream = game.0;
        let _ = self.subs.send(Sub::Unfollow(stream));
    }

    fn send(&self, node: &str, msg: Vec<u8>) {
        let _ = self
            .out
            .send(Out::Send(self.channel(&format!("node:{node}")), msg));
    }

    fn lease(&self) -> Duration {
        self.ttl
    }

    fn attach(&self, inbound: Weak<dyn Inbound>) {
        let (Some(subs), Some(out)) = (lock(&self.subs_rx).take(), lock(&self.out_rx).take())
        else {
            tracing::warn!("the Redis bus was attached twice; the second hub hears nothing");
            return;
        };
        tokio::spawn(publish(self.log.clone(), self.channel("ev"), out));
        tokio::spawn(subscribe(
            self.client.clone(),
            self.channel(""),
            self.log.node().to_owned(),
            subs,
            inbound.clone(),
        ));
        tokio::spawn(renew(
            self.log.clone(),
            Arc::clone(&self.held),
            self.ttl,
            inbound,
        ));
    }
}

/// Send what waits, a batch at a time, in one pipeline, the announcements in one message.
async fn publish(log: RedisLog, ev: String, mut out: Outgoing) {
    use std::fmt::Write as _;
    let mut conn = log.connection();
    let mut batch = Vec::new();
    let mut versions: HashMap<u64, Seq> = HashMap::new();
    while out.recv_many(&mut batch, 1024).await > 0 {
        let mut pipe = redis::pipe();
        for o in batch.drain(..) {
            match o {
                Out::Announce(stream, version) => {
                    let v = versions.entry(stream).or_insert(version);
                    *v = (*v).max(version);
                }
                Out::Send(channel, msg) => {
                    pipe.cmd("PUBLISH").arg(channel).arg(msg).ignore();
                }
            }
        }
        if !versions.is_empty() {
            let mut text = String::with_capacity(versions.len() * 12 + 32);
            for (stream, version) in versions.drain() {
                let _ = write!(text, "{stream}:{version} ");
            }
            text.push('\n');
            text.push_str(log.node());
            pipe.cmd("PUBLISH").arg(&ev).arg(text).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %e, "messages to other nodes were lost (they are caught up)");
        }
    }
}

/// The announcements in one `u:ev` message: the games' new versions and who sent them.
fn announcements(payload: &[u8]) -> Option<(Vec<(u64, Seq)>, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (pairs, node) = text.split_once('\n')?;
    let pairs = pairs
        .split_ascii_whitespace()
        .filter_map(|p| {
            let (stream, version) = p.split_once(':')?;
            Some((stream.parse().ok()?, version.parse().ok()?))
        })
        .collect();
    Some((pairs, node))
}

/// Hear this node's channel and the games it follows; open the connection again when it
/// drops, and subscribe to everything anew.
async fn subscribe(
    client: redis::Client,
    prefix: String,
    node: String,
    mut subs: mpsc::UnboundedReceiver<Sub>,
    inbound: Weak<dyn Inbound>,
) {
    let mine = format!("{prefix}node:{node}");
    let ev = format!("{prefix}ev");
    let mut following: HashMap<u64, usize> = HashMap::new();
    loop {
        if inbound.strong_count() == 0 {
            return;
        }
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to Redis; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        if sink.subscribe(&mine).await.is_err() || sink.subscribe(&ev).await.is_err() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        loop {
            tokio::select! {
                cmd = subs.recv() => {
                    let Some(cmd) = cmd else { return };
                    match cmd {
                        Sub::Follow(s) => *following.entry(s).or_insert(0) += 1,
                        Sub::Unfollow(s) => {
                            if let Some(n) = following.get_mut(&s) {
                                *n -= 1;
                                if *n == 0 {
                                    following.remove(&s);
                                }
                            }
                        }
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(inbound) = inbound.upgrade() else { return };
                    let channel = msg.get_channel_name();
                    if channel == mine {
                        inbound.received(msg.get_payload_bytes().to_vec());
                    } else if channel == ev {
                        let Some((pairs, by)) = announcements(msg.get_payload_bytes()) else {
                            continue;
                        };
                        for (id, version) in pairs {
                            if following.contains_key(&id) {
                                inbound.announced(GameId(id), umpire_hub::Seq(version), by);
                            }
                        }
                    }
                }
            }
        }
        tracing::warn!("the Redis subscription dropped; subscribing again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renew the node's leases every third of their time; report those another node took.
async fn renew(
    log: RedisLog,
    held: Arc<Mutex<HashSet<u64>>>,
    ttl: Duration,
    inbound: Weak<dyn Inbound>,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        if inbound.strong_count() == 0 {
            return;
        }
        let streams: Vec<u64> = lock(&held).iter().copied().collect();
        let still = match log.renew(&streams, ttl).await {
            Ok(still) => still,
            Err(e) => {
                tracing::warn!(error = %e, "leases not renewed; trying again");
                continue;
            }
        };
        let lost: Vec<u64> = streams
            .iter()
            .zip(still)
            .filter(|(_, held)| !held)
            .map(|(s, _)| *s)
            .collect();
        if lost.is_empty() {
            continue;
        }
        {
            let mut held = lock(&held);
            for s in &lost {
                held.remove(s);
            }
        }
        if let Some(inbound) = inbound.upgrade() {
            for s in lost {
                tracing::warn!(game = %s, "another node took the game over");
                inbound.lost(GameId(s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::announcements;

    #[test]
    fn announcements_read_back_and_bad_ones_are_skipped() {
        let (pairs, node) = announcements(b"7:12 9:3 \nhost:8080").expect("well formed");
        assert_eq!(pairs, vec![(7, 12), (9, 3)]);
        assert_eq!(node, "host:8080");
        let (pairs, _) = announcements(b"7:x 8 :3 9:4\nn").expect("a node");
        assert_eq!(pairs, vec![(9, 4)]);
        assert!(announcements(b"7:12").is_none());
        assert!(announcements(&[0xff, b'\n']).is_none());
    }
}
