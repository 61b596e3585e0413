//! The tasks that own streams, and what they run on: a game's task (`room`), a channel's
//! (`channel`), the one publish step both share (`publish`), the registry that starts, loads
//! and finds them (`registry`, with the game kinds behind `kind`), keys and guest names
//! (`keys`), creators' counts (`owners`), and the removal of finished games (`retention`).

pub(crate) mod channel;
pub(crate) mod keys;
pub(crate) mod kind;
pub(crate) mod lobby;
pub(crate) mod owners;
pub(crate) mod publish;
pub(crate) mod registry;
pub(crate) mod remote;
pub(crate) mod retention;
pub(crate) mod room;
pub(crate) mod runtime;
