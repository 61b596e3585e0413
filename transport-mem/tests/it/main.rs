//! The integration tests of this crate, in one binary (one link instead of one per file).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod bounds;
mod bus;
mod channels;
mod common;
mod connect4;
mod flawed;
mod hidden;
mod identity;
mod kit;
mod lazy;
mod limits;
mod panics;
mod play;
mod presence;
mod rematch;
mod restart;
mod resume;
mod session;
mod sessions_props;
mod storage;
mod tally;
