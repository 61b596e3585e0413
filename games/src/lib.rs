//! The games that ship with umpire, each a few pure functions over the engine's [`Game`] trait.
//!
//! # Layout
//! - [`connect4`]: Connect Four, as in the `websockets` tutorial (seed 001).
//! - [`tally`]: a running total anyone may add to (seed 004).
//! - [`colony`]: a build queue whose orders complete through timers and can be cancelled (seed 000).
//! - [`highcard`]: two players, a shuffled deck, cards face down: hidden information.
//! - [`fuzz`]: the fuzzing oracles (structure-aware command sequences through each game).
//!
//! [`Game`]: umpire_engine::Game

pub mod colony;
pub mod connect4;
pub mod fuzz;
pub mod highcard;
pub mod tally;

pub use colony::Colony;
pub use connect4::Connect4;
pub use highcard::HighCard;
pub use tally::Tally;
