//! A tiny game for the doctests. Not part of the API.

use crate::{Actor, Ctx, Game};

/// A shared counter anyone may add to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter;

/// Why [`Counter`] refuses an addition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// The total would not fit in an i64.
    #[error("the total would overflow")]
    Overflow,
}

impl Game for Counter {
    const KIND: &'static str = "counter";
    type Config = ();
    type State = i64;
    type Command = i64;
    type Event = i64;
    type Rejection = Refused;

    fn seats(&self, _: &()) -> u16 {
        100
    }
    fn setup(&self, _: &()) -> i64 {
        0
    }
    fn decide(
        &self,
        total: &i64,
        _: Actor,
        add: &i64,
        _: &mut Ctx<'_, i64>,
    ) -> Result<Vec<i64>, Refused> {
        total.checked_add(*add).ok_or(Refused::Overflow)?;
        Ok(vec![*add])
    }
    fn apply(&self, total: &mut i64, added: &i64) {
        *total += added;
    }
}
