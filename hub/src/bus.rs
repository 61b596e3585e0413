//! What crosses between the nodes that serve one log: the seam a multi-node backend plugs
//! into ([`Bus`]), and what the hub gives it to deliver to ([`Inbound`]).
//!
//! - **Who runs a game.** One node at a time leads a game: it alone writes the stream. Before
//!   a node starts a game's task it asks [`Bus::place`], which takes the game for this node
//!   (a lease with a time limit, kept alive by the bus while the task runs, given up with
//!   [`Bus::release`]) or names the node that holds it. The log fences every write with the
//!   same lease, so a node that stalled past its lease is refused and never forks a game.
//! - **Followers.** A node with sessions in a game another node leads runs the game's task
//!   as a follower: it follows the stream ([`Bus::follow`]), hears each durable version
//!   ([`Bus::announce`] on the leader, [`Inbound::announced`] here), reads the new records
//!   from the log, and sends them to its own sessions.
//! - **Forwarded requests.** What a follower cannot do itself (a command, a seat, presence)
//!   goes to the leader as bytes ([`Bus::send`], [`Inbound::received`]); the answer comes
//!   back the same way. The hub encodes both (`game::remote`); the bus only carries them.
//!
//! One node needs none of it: [`LocalBus`] places every game here and carries nothing.
//! [`MemBus`] joins several hubs in one process (tests, and the testing kit's "node dies").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use umpire_engine::protocol::GameId;
use umpire_engine::Seq;
use umpire_store::StoreError;

/// Where a stream's task runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Here: this node now holds the stream (until it releases it or loses it).
    Here,
    /// On another node, named as the bus names nodes.
    Elsewhere(String),
}

/// What the bus delivers to a hub. Called from the bus's own tasks: each call returns at
/// once (it queues work for the hub's tasks).
pub trait Inbound: Send + Sync + std::fmt::Debug + 'static {
    /// `stream`, which this node follows, is durable up to `version`, as node `by` (its
    /// leader) said.
    fn announced(&self, stream: GameId, version: Seq, by: &str);
    /// Bytes another node sent this one ([`Bus::send`]).
    fn received(&self, msg: Vec<u8>);
    /// This node no longer holds `stream` (its lease ran out and another node took it): its
    /// task must stop writing.
    fn lost(&self, stream: GameId);
}

/// The seam between the nodes serving one log. See the module's notes.
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// This node's name, unique among the nodes.
    fn node(&self) -> &str;

    /// Where `stream`'s task runs: here (the stream is now this node's, kept alive by the
    /// bus until [`Bus::release`]), or on the node that holds it.
    ///
    /// # Errors
    /// The bus cannot reach the store that keeps the leases.
    async fn place(&self, stream: GameId) -> Result<Placement, StoreError>;

    /// This node's task for `stream` ended: another node may take it at once.
    fn release(&self, stream: GameId);

    /// `stream` is durable up to `version`: tell the nodes that follow it. Never waits; an
    /// announcement lost is caught up by the next one, or by the followers' own polling.
    fn announce(&self, stream: GameId, version: Seq);

    /// Start hearing `stream`'s announcements ([`Inbound::announced`]).
    fn follow(&self, stream: GameId);

    /// Stop hearing them.
    fn unfollow(&self, stream: GameId);

    /// Send `msg` to `node`. At most once: a lost message is a request that times out.
    fn send(&self, node: &str, msg: Vec<u8>);

    /// Deliver what comes in to `inbound` from now on (the hub calls it once, as it starts).
    fn attach(&self, inbound: Weak<dyn Inbound>);

    /// Whether other nodes may exist: stream tasks look at the log for what they may have
    /// missed only then.
    fn shared(&self) -> bool {
        true
    }

    /// How long a lease lasts: a node that stops renewing loses its games to others after
    /// this. Followers time their looks at the log and their requests by it.
    fn lease(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// The bus of a single node: every stream runs here, nobody else listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBus;

#[async_trait]
impl Bus for LocalBus {
    fn node(&self) -> &str {
        "local"
    }

    async fn place(&self, _stream: GameId) -> Result<Placement, StoreError> {
        Ok(Placement::Here)
    }

    fn release(&self, _stream: GameId) {}

    fn announce(&self, _stream: GameId, _version: Seq) {}

    fn follow(&self, _stream: GameId) {}

    fn unfollow(&self, _stream: GameId) {}

    fn send(&self, _node: &str, _msg: Vec<u8>) {}

    fn attach(&self, _inbound: Weak<dyn Inbound>) {}

    fn shared(&self) -> bool {
        false
    }
}

/// Several hubs in one process, sharing one log: the in-memory twin of the Redis bus, for
/// tests. Leases run out on tokio's clock (paused time works); [`MemBus::freeze`] makes a node
/// stop renewing and stop hearing anything, as a stalled process would.
#[derive(Debug, Clone, Default)]
pub struct MemBus {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    /// stream -> (node, until).
    leases: HashMap<GameId, (String, tokio::time::Instant)>,
    nodes: HashMap<String, Weak<dyn Inbound>>,
    following: HashMap<GameId, HashSet<String>>,
    frozen: HashSet<String>,
    held: HashMap<String, HashSet<GameId>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("leases", &self.leases)
            .field("frozen", &self.frozen)
            .finish_non_exhaustive()
    }
}

impl MemBus {
    /// An empty bus.
    pub fn new() -> Self {
        MemBus::default()
    }

    /// The bus as node `name` sees it, its leases `ttl` long.
    pub fn node(&self, name: &str, ttl: Duration) -> Arc<MemNode> {
        Arc::new(MemNode {
            bus: self.clone(),
            name: name.to_owned(),
            ttl,
        })
    }

    /// `node` stalls (or comes back): it renews nothing and hears nothing meanwhile.
    pub fn freeze(&self, node: &str, frozen: bool) {
        let mut shared = crate::lock(&self.shared);
        if frozen {
            shared.frozen.insert(node.to_owned());
        } else {
            shared.frozen.remove(node);
        }
    }

    /// The node holding `stream`'s lease now, if any.
    pub fn holder(&self, stream: GameId) -> Option<String> {
        let shared = crate::lock(&self.shared);
        shared
            .leases
            .get(&stream)
            .filter(|(_, until)| *until > tokio::time::Instant::now())
            .map(|(node, _)| node.clone())
    }

    fn inbound(&self, node: &str) -> Option<Arc<dyn Inbound>> {
        let shared = crate::lock(&self.shared);
        if shared.frozen.contains(node) {
            return None;
        }
        shared.nodes.get(node).and_then(Weak::upgrade)
    }
}

/// One node's view of a [`MemBus`].
#[derive(Debug)]
pub struct MemNode {
    bus: MemBus,
    name: String,
    ttl: Duration,
}

#[async_trait]
impl Bus for MemNode {
    fn node(&self) -> &str {
        &self.name
    }

    async fn place(&self, stream: GameId) -> Result<Placement, StoreError> {
        let now = tokio::time::Instant::now();
        let mut shared = crate::lock(&self.bus.shared);
        match shared.leases.get(&stream) {
            Some((node, until)) if *until > now && *node != self.name => {
                Ok(Placement::Elsewhere(node.clone()))
            }
            _ => {
                shared
                    .leases
                    .insert(stream, (self.name.clone(), now + self.ttl));
                shared
                    .held
                    .entry(self.name.clone())
                    .or_default()
                    .insert(stream);
                Ok(Placement::Here)
            }
        }
    }

    fn release(&self, stream: GameId) {
        let mut shared = crate::lock(&self.bus.shared);
        if shared.frozen.contains(&self.name) {
            // A dead or stalled node lets nothing go: its leases run out.
            return;
        }
        if shared
            .leases
            .get(&stream)
            .is_some_and(|(n, _)| *n == self.name)
        {
            shared.leases.remove(&stream);
        }
        if let Some(held) = shared.held.get_mut(&self.name) {
            held.remove(&stream);
        }
    }

    fn announce(&self, stream: GameId, version: Seq) {
        let nodes: Vec<String> = {
            let shared = crate::lock(&self.bus.shared);
            if shared.frozen.contains(&self.name) {
                return;
            }
            shared
                .following
                .get(&stream)
                .map(|n| n.iter().filter(|n| **n != self.name).cloned().collect())
                .unwrap_or_default()
        };
        for node in nodes {
            if let Some(inbound) = self.bus.inbound(&node) {
                inbound.announced(stream, version, &self.name);
            }
        }
    }

    fn follow(&self, stream: GameId) {
        crate::lock(&self.bus.shared)
            .following
            .entry(stream)
            .or_default()
            .insert(self.name.clone());
    }

    fn unfollow(&self, stream: GameId) {
        let mut shared = crate::lock(&self.bus.shared);
        if let Some(nodes) = shared.following.get_mut(&stream) {
            nodes.remove(&self.name);
        }
    }

    fn send(&self, node: &str, msg: Vec<u8>) {
        if crate::lock(&self.bus.shared).frozen.contains(&self.name) {
            return;
        }
        if let Some(inbound) = self.bus.inbound(node) {
            inbound.received(msg);
        }
    }

    fn lease(&self) -> Duration {
        self.ttl
    }

    fn attach(&self, inbound: Weak<dyn Inbound>) {
        crate::lock(&self.bus.shared)
            .nodes
            .insert(self.name.clone(), inbound.clone());
        // Renew this node's leases every third of their time while the hub lives; a frozen
        // node renews nothing, and learns what it lost when it thaws.
        let bus = self.bus.clone();
        let name = self.name.clone();
        let ttl = self.ttl;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let Some(inbound) = inbound.upgrade() else {
                    return;
                };
                let lost: Vec<GameId> = {
                    let now = tokio::time::Instant::now();
                    let mut shared = crate::lock(&bus.shared);
                    if shared.frozen.contains(&name) {
                        continue;
                    }
                    let held: Vec<GameId> = shared
                        .held
                        .get(&name)
                        .map(|h| h.iter().copied().collect())
                        .unwrap_or_default();
                    let mut lost = Vec::new();
                    for stream in held {
                        match shared.leases.get(&stream) {
                            Some((node, until)) if *node != name && *until > now => {
                                lost.push(stream)
                            }
                            _ => {
                                shared.leases.insert(stream, (name.clone(), now + ttl));
                            }
                        }
                    }
                    if let Some(held) = shared.held.get_mut(&name) {
                        for stream in &lost {
                            held.remove(stream);
                        }
                    }
                    lost
                };
                for stream in lost {
                    inbound.lost(stream);
                }
            }
        });
    }
}
