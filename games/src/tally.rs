//! Tally: any number of players add integers to one shared total (seed 004's running total).
//! A sum that would overflow an `i64` is refused, never wrapped.

use serde::{Deserialize, Serialize};
use umpire_engine::{Actor, Ctx, Game, Seat};

/// The game.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally;

/// How many may play.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TallyConfig {
    /// Seats in one game.
    pub seats: u16,
}

/// Seats one tally may have.
pub const MAX_SEATS: u16 = 1024;

impl Default for TallyConfig {
    fn default() -> Self {
        TallyConfig { seats: MAX_SEATS }
    }
}

/// What a player may ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TallyCommand {
    /// Add this (possibly negative) amount to the total.
    Add(i64),
}

/// An amount was added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    /// Who added it.
    pub seat: Seat,
    /// How much.
    pub amount: i64,
    /// The total afterwards, so a client needs no state to show it.
    pub total: i64,
}

/// Why an addition is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum TallyRejection {
    /// The total would leave the range of an `i64`.
    #[error("adding {0} would overflow the total")]
    Overflow(i64),
    /// Timers and spectators cannot add.
    #[error("only players may add")]
    NotAPlayer,
}

/// The running total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// The sum of every accepted addition.
    pub total: i64,
    /// How many additions were accepted.
    pub additions: u64,
}

impl Game for Tally {
    const KIND: &'static str = "tally";
    type Config = TallyConfig;
    type State = Total;
    type Command = TallyCommand;
    type Event = Added;
    type Rejection = TallyRejection;

    fn seats(&self, config: &TallyConfig) -> u16 {
        config.seats
    }

    fn check_config(&self, config: &TallyConfig) -> Result<(), String> {
        if config.seats > MAX_SEATS {
            return Err(format!("a tally has at most {MAX_SEATS} seats"));
        }
        Ok(())
    }

    fn setup(&self, _: &TallyConfig) -> Total {
        Total::default()
    }

    fn decide(
        &self,
        state: &Total,
        by: Actor,
        command: &TallyCommand,
        _ctx: &mut Ctx<'_, TallyCommand>,
    ) -> Result<Vec<Added>, TallyRejection> {
        let seat = by.seat().ok_or(TallyRejection::NotAPlayer)?;
        let TallyCommand::Add(amount) = *command;
        let total = state
            .total
            .checked_add(amount)
            .ok_or(TallyRejection::Overflow(amount))?;
        Ok(vec![Added {
            seat,
            amount,
            total,
        }])
    }

    fn apply(&self, state: &mut Total, added: &Added) {
        state.total = added.total;
        state.additions += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umpire_engine::testing::GameTest;

    #[test]
    fn an_addition_reports_the_new_total() {
        GameTest::new(Tally)
            .given([Added {
                seat: Seat(1),
                amount: 40,
                total: 40,
            }])
            .when(Seat(0), TallyCommand::Add(2))
            .then_events([Added {
                seat: Seat(0),
                amount: 2,
                total: 42,
            }])
            .then_state(|s| assert_eq!((s.total, s.additions), (42, 2)));
    }

    #[test]
    fn negative_amounts_subtract() {
        GameTest::new(Tally)
            .when(Seat(3), TallyCommand::Add(-5))
            .then_state(|s| assert_eq!(s.total, -5));
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        GameTest::new(Tally)
            .given_commands([(Actor::Seat(Seat(0)), TallyCommand::Add(i64::MAX))])
            .when(Seat(1), TallyCommand::Add(1))
            .then_rejects(TallyRejection::Overflow(1))
            .then_state(|s| assert_eq!(s.total, i64::MAX));
        GameTest::new(Tally)
            .given_commands([(Actor::Seat(Seat(0)), TallyCommand::Add(i64::MIN))])
            .when(Seat(1), TallyCommand::Add(-1))
            .then_rejects(TallyRejection::Overflow(-1));
    }

    #[test]
    fn the_system_cannot_add() {
        GameTest::new(Tally)
            .when(Actor::System, TallyCommand::Add(1))
            .then_rejects(TallyRejection::NotAPlayer);
    }
}
