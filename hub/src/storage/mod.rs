//! The log's side of the hub: the writer, the only holder of the log's write half
//! (`writer`), whether the log can be written (`health`), and the queue of sleeping games'
//! wake-ups (`sleepers`).

pub(crate) mod health;
pub(crate) mod sleepers;
pub(crate) mod writer;
