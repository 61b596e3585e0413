//! A counter with one flaw of choice, for the tests of what umpire does with flawed games.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use umpire_engine::{Actor, Ctx, Game, Seat};

/// What is wrong with a [`Flawed`] counter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flaw {
    /// Nothing: it passes.
    Sound,
    /// `decide` panics on 13.
    PanicsOn13,
    /// The event keeps what `apply` needs in a field that is not serialised.
    EventForgets,
    /// The state keeps a count in a field a snapshot does not hold.
    StateForgets,
    /// `decide` reads a global that changes from one game to the next.
    Fickle,
    /// The timer's command panics.
    TimerPanics,
    /// `presence` panics when a player goes.
    PresencePanics,
}
pub use Flaw::*;

/// A counter with a flaw.
#[derive(Clone, Debug)]
pub struct Flawed(pub Flaw);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    Add(i64),
    /// Add 1 in ten seconds.
    Later,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Added {
    amount: i64,
    #[serde(skip)]
    copy: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sum {
    total: i64,
    #[serde(skip)]
    events: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("too big")]
pub struct TooBig;

/// Games of the fickle kind created so far.
static CREATED: AtomicI64 = AtomicI64::new(0);

impl Game for Flawed {
    const KIND: &'static str = "flawed";
    type Config = ();
    type State = Sum;
    type Command = Cmd;
    type Event = Added;
    type Rejection = TooBig;

    fn seats(&self, _: &()) -> u16 {
        2
    }

    fn check_config(&self, _: &()) -> Result<(), String> {
        if self.0 == Fickle {
            CREATED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn setup(&self, _: &()) -> Sum {
        Sum::default()
    }

    fn decide(
        &self,
        _: &Sum,
        by: Actor,
        cmd: &Cmd,
        ctx: &mut Ctx<'_, Cmd>,
    ) -> Result<Vec<Added>, TooBig> {
        let amount = match (cmd, self.0) {
            (Cmd::Add(n), _) if *n > 1000 => return Err(TooBig),
            (Cmd::Add(13), PanicsOn13) => panic!("thirteen!"),
            (Cmd::Add(n), Fickle) => n + CREATED.load(Ordering::Relaxed),
            (Cmd::Add(n), _) => *n,
            (Cmd::Later, _) if by == Actor::System && self.0 == TimerPanics => {
                panic!("the timer went off")
            }
            (Cmd::Later, _) if by == Actor::System => 1,
            (Cmd::Later, _) => {
                ctx.schedule(ctx.now() + 10_000, Cmd::Later);
                return Ok(Vec::new());
            }
        };
        let copy = if self.0 == EventForgets { amount } else { 0 };
        Ok(vec![Added { amount, copy }])
    }

    fn apply(&self, sum: &mut Sum, added: &Added) {
        sum.total += if self.0 == EventForgets {
            added.copy
        } else {
            added.amount
        };
        if self.0 == StateForgets {
            sum.events += 1;
        }
    }

    fn presence(&self, _: &Sum, _: Seat, online: bool, _: &mut Ctx<'_, Cmd>) -> Vec<Added> {
        assert!(online || self.0 != PresencePanics, "where did they go?");
        Vec::new()
    }
}
