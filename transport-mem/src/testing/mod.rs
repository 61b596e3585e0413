//! The testing kit (feature `testing`): one call puts a game's rules through the whole server.
//!
//! ```
//! # use umpire_engine::doc::Counter;
//! use proptest::prelude::*;
//! use umpire_mem::testing::Check;
//!
//! // Players add random numbers, near the edges too, to a shared counter.
//! Check::new(Counter)
//!     .cases(8)
//!     .run(prop_oneof![-5i64..5, Just(i64::MAX), Just(i64::MIN)]);
//! ```
//!
//! [`Check::run`] makes random games from a proptest strategy for the game's commands: players
//! in random seats send them, time passes and fires the game's timers, spectators come, players'
//! connections drop (they come back before their next command), and the server restarts on its
//! log, which it snapshots every few events. Each game is played on an in-memory hub in virtual
//! time, twice. After every step the kit checks that:
//! - `decide` does not panic, and the server logs exactly what the rules decide;
//! - a refused command changes nothing;
//! - replaying the log gives the match the server holds;
//! - a snapshot plus the log's tail gives the same match as the whole log (the server's own
//!   snapshots and one at every step);
//! - every player and spectator has been sent exactly the log, as [`Game::view`] shows it to them;
//!
//! and that the second game logged the same records as the first.
//!
//! A failure is shrunk to its fewest steps and reported with them, and with a given/when/then
//! test of the decision it failed at ([`GameTest`]) to paste next to the game; the kit runs that
//! test too and says whether it fails the same way. The printed test names the game by its
//! `Debug` form (a unit struct prints as its name).
//!
//! Call it from a plain `#[test]`: it runs its own tokio runtime. `PROPTEST_CASES` sets the
//! number of games unless [`Check::cases`] does.
//!
//! [`GameTest`]: umpire_engine::testing::GameTest

mod report;
mod run;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use umpire_engine::Game;

use run::{Case, Step};

/// Random games of `G` through the server; see the [module](self).
#[derive(Debug, Clone)]
pub struct Check<G: Game> {
    game: G,
    config: G::Config,
    players: Option<u16>,
    cases: Option<u32>,
    steps: usize,
    wait: Duration,
    seed: u64,
}

impl<G: Game + Clone> Check<G> {
    /// Check `game` with its default config.
    pub fn new(game: G) -> Self {
        Check {
            game,
            config: G::Config::default(),
            players: None,
            cases: None,
            steps: 30,
            wait: Duration::from_secs(120),
            seed: 1,
        }
    }

    /// Play games with this config.
    pub fn config(mut self, config: G::Config) -> Self {
        self.config = config;
        self
    }

    /// How many players take seats (default: every seat, at most four).
    pub fn players(mut self, players: u16) -> Self {
        self.players = Some(players.max(1));
        self
    }

    /// How many random games to play (default: `PROPTEST_CASES`, or 256).
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = Some(cases);
        self
    }

    /// The most steps in one game (default 30).
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps.max(1);
        self
    }

    /// The longest time one step lets pass (default two minutes): make it longer than the
    /// game's timers.
    pub fn wait_up_to(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The seed the server draws games' rng seeds from (default 1): the same seed and steps
    /// give the same game.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Play random games whose commands come from `commands`, checking every step.
    ///
    /// # Panics
    /// On the first game that breaks a rule of the kit, shrunk to its fewest steps, with a
    /// report and a test to paste.
    #[track_caller]
    pub fn run<S>(&self, commands: S)
    where
        S: Strategy<Value = G::Command> + 'static,
    {
        // proptest's default reads `PROPTEST_CASES` (256 without it).
        let defaults = Config::default();
        let config = Config {
            cases: self.cases.unwrap_or(defaults.cases),
            failure_persistence: None,
            ..defaults
        };
        let mut runner = TestRunner::new(config);
        let strategy = self.cases_of(commands);
        let result = runner.run(&strategy, |case| {
            self.holds(&case)
                .map_err(|f| TestCaseError::fail(f.message))
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(_, case)) => {
                panic!("{}", self.report(&self.fewer_steps(case)))
            }
            Err(TestError::Abort(why)) => {
                panic!("umpire's check of `{}` gave up: {why}", G::KIND)
            }
        }
    }

    fn players_count(&self) -> u16 {
        self.players
            .unwrap_or_else(|| self.game.seats(&self.config).clamp(1, 4))
    }

    /// Random games: a list of steps and how often the server snapshots.
    fn cases_of<S>(&self, commands: S) -> impl Strategy<Value = Case<G::Command>>
    where
        S: Strategy<Value = G::Command> + 'static,
    {
        let players = self.players_count();
        let wait = u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX);
        let step = prop_oneof![
            12 => (0..players, commands).prop_map(|(p, c)| Step::Play(p, c)),
            3 => (0..=wait).prop_map(Step::Wait),
            1 => Just(Step::Watch),
            1 => (0..players).prop_map(Step::Drop),
            1 => Just(Step::Restart),
            1 => Just(Step::NodeDies),
        ];
        let every = prop_oneof![1u64..=4, Just(1_000)];
        (proptest::collection::vec(step, 0..=self.steps), every).prop_map(
            |(steps, snapshot_every)| Case {
                steps,
                snapshot_every,
            },
        )
    }
}
