//! A given/when/then harness for testing a game's rules without a server.
//!
//! ```
//! # use umpire_engine::doc::{Counter, Refused};
//! use umpire_engine::{testing::GameTest, Seat};
//!
//! GameTest::new(Counter)
//!     .given([i64::MAX - 1])
//!     .when(Seat(0), 2)
//!     .then_rejects(Refused::Overflow);
//! ```

use crate::ctx::{Ctx, TimerId};
use crate::game::{Actor, Game, Millis};

/// The "given" half: a game, its config and the events that already happened.
#[derive(Debug)]
pub struct GameTest<G: Game> {
    game: G,
    state: G::State,
    now: Millis,
    seed: u64,
    next_timer: u64,
}

/// What one `decide` call said.
#[derive(Debug)]
struct Decision<G: Game> {
    result: Result<Vec<G::Event>, G::Rejection>,
    scheduled: Vec<(TimerId, Millis, G::Command)>,
    cancelled: Vec<TimerId>,
}

impl<G: Game> GameTest<G> {
    /// A fresh game with the default config, at time 0, seed 0.
    pub fn new(game: G) -> Self {
        let state = game.setup(&G::Config::default());
        GameTest {
            game,
            state,
            now: 0,
            seed: 0,
            next_timer: 0,
        }
    }

    /// Start over from `config`'s initial state.
    pub fn with_config(mut self, config: G::Config) -> Self {
        self.state = self.game.setup(&config);
        self
    }

    /// Seed the rng `decide` sees.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The time `decide` sees.
    pub fn at(mut self, now: Millis) -> Self {
        self.now = now;
        self
    }

    /// Events that already happened, applied in order.
    pub fn given(mut self, events: impl IntoIterator<Item = G::Event>) -> Self {
        for event in events {
            self.game.apply(&mut self.state, &event);
        }
        self
    }

    /// Commands that already happened: each is decided and its events applied.
    ///
    /// # Panics
    /// If the rules refuse one of them: the test's setup is wrong.
    pub fn given_commands(
        mut self,
        commands: impl IntoIterator<Item = (Actor, G::Command)>,
    ) -> Self {
        for (by, command) in commands {
            match self.decide(by, &command).result {
                Ok(events) => {
                    for event in &events {
                        self.game.apply(&mut self.state, event);
                    }
                }
                Err(rejection) => panic!("given command {command:?} was refused: {rejection}"),
            }
        }
        self
    }

    /// The state as the givens left it.
    pub fn state(&self) -> &G::State {
        &self.state
    }

    /// Decide `command` from `by`.
    pub fn when(mut self, by: impl Into<Actor>, command: G::Command) -> Then<G> {
        let decision = self.decide(by.into(), &command);
        Then {
            game: self.game,
            state: self.state,
            decision,
        }
    }

    fn decide(&mut self, by: Actor, command: &G::Command) -> Decision<G> {
        let mut next_timer = self.next_timer;
        let mut ctx = Ctx::new(self.now, self.seed, 1, &mut next_timer);
        let result = self.game.decide(&self.state, by, command, &mut ctx);
        let scheduled = ctx.scheduled().to_vec();
        let cancelled = ctx.cancelled().to_vec();
        if result.is_ok() {
            self.next_timer = next_timer;
        }
        Decision {
            result,
            scheduled,
            cancelled,
        }
    }
}

/// The "then" half: what `decide` said, with assertions that panic with a readable message.
#[derive(Debug)]
pub struct Then<G: Game> {
    game: G,
    state: G::State,
    decision: Decision<G>,
}

impl<G: Game> Then<G> {
    /// Assert that the command was accepted with exactly these events.
    ///
    /// # Panics
    /// If it was refused, or produced other events.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = G::Event>) -> Self {
        let expected: Vec<G::Event> = expected.into_iter().collect();
        match &self.decision.result {
            Ok(events) => assert_eq!(events, &expected, "events differ"),
            Err(rejection) => panic!("expected {expected:?}, the command was refused: {rejection}"),
        }
        self
    }

    /// Assert that the rules refused the command with `expected`.
    ///
    /// # Panics
    /// If it was accepted, or refused for another reason.
    #[track_caller]
    pub fn then_rejects(self, expected: G::Rejection) -> Self {
        match &self.decision.result {
            Ok(events) => panic!("expected rejection {expected:?}, got events {events:?}"),
            Err(rejection) => assert_eq!(rejection, &expected, "rejected for another reason"),
        }
        self
    }

    /// Assert on the state after applying the events (the state is unchanged if refused).
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&G::State)) -> Self {
        let mut state = self.state.clone();
        if let Ok(events) = &self.decision.result {
            for event in events {
                self.game.apply(&mut state, event);
            }
        }
        check(&state);
        self
    }

    /// Assert that the command scheduled exactly these timers, as `(due, command)`.
    ///
    /// # Panics
    /// If other timers were scheduled.
    #[track_caller]
    pub fn then_schedules(self, expected: impl IntoIterator<Item = (Millis, G::Command)>) -> Self {
        let expected: Vec<(Millis, G::Command)> = expected.into_iter().collect();
        let got: Vec<(Millis, G::Command)> = self
            .decision
            .scheduled
            .iter()
            .map(|(_, at, c)| (*at, c.clone()))
            .collect();
        assert_eq!(got, expected, "scheduled timers differ");
        self
    }

    /// Assert that the command cancelled exactly these timers.
    ///
    /// # Panics
    /// If other timers were cancelled.
    #[track_caller]
    pub fn then_cancels(self, expected: impl IntoIterator<Item = TimerId>) -> Self {
        let expected: Vec<TimerId> = expected.into_iter().collect();
        assert_eq!(self.decision.cancelled, expected, "cancelled timers differ");
        self
    }

    /// The events, for assertions the helpers do not cover.
    ///
    /// # Panics
    /// If the command was refused.
    #[track_caller]
    pub fn events(&self) -> &[G::Event] {
        match &self.decision.result {
            Ok(events) => events,
            Err(rejection) => panic!("the command was refused: {rejection}"),
        }
    }
}
