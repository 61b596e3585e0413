//! The integration tests of this crate, in one binary (one link instead of one per file).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod admin;
mod closes;
mod common;
mod hidden;
mod lifecycle;
mod limits;
mod mount;
mod native;
mod play;
mod sessions;
mod tls;
mod ws4redis;
