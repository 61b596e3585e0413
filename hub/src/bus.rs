//! What crosses between processes that serve one log: the seam a multi-node backend plugs
//! into. Two things cross:
//!
//! - **New records, for followers elsewhere.** After every durable turn the stream's task
//!   announces the stream's new version ([`Bus::announce`]); a node where someone follows the
//!   stream but does not run it reads the new records from the log.
//! - **Requests, to the node that runs a game.** Before loading a game, the registry asks where
//!   it runs ([`Bus::placement`]): here (load it, or serve the task already loaded), or on
//!   another node, whose task alone may write the stream; a request for it is then refused
//!   with a retry, until forwarding requests crosses the seam too.
//!
//! One node needs neither: [`LocalBus`] runs everything here and announces to nobody (the
//! followers in this process are already in the stream task's subscriber list).

use umpire_engine::protocol::GameId;
use umpire_engine::Seq;

/// Where a stream's task runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Here: this node may load the stream's task (it holds, or may take, the stream).
    Here,
    /// On another node, named as the bus names nodes.
    Elsewhere(String),
}

/// The seam between the nodes serving one log. See the module's notes.
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// `stream` is durable up to `version`: tell the nodes that follow it. Never waits; an
    /// announcement lost is caught up by the next one (followers read the log from where they
    /// are to the version announced).
    fn announce(&self, stream: GameId, version: Seq);

    /// Where `stream`'s task runs now.
    fn placement(&self, stream: GameId) -> Placement;
}

/// The bus of a single node: every stream runs here, nobody else listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBus;

impl Bus for LocalBus {
    fn announce(&self, _stream: GameId, _version: Seq) {}

    fn placement(&self, _stream: GameId) -> Placement {
        Placement::Here
    }
}
