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
//!
//! [`Then::then_consistent`] checks what a server needs of any decision, whatever the rules:
//! `umpire-mem`'s testing kit prints the cases it finds in this form, with the events and
//! commands as JSON (`given_json`, `when_json`).

use serde::{de::DeserializeOwned, Serialize};

use crate::ctx::{Ctx, TimerId};
use crate::game::{Actor, Game, Millis, Seat, Seq, Viewer};

/// The "given" half: a game, its config and the events that already happened.
#[derive(Debug)]
pub struct GameTest<G: Game> {
    game: G,
    state: G::State,
    now: Millis,
    seed: u64,
    seq: Seq,
    next_timer: u64,
}

/// What was asked of the rules.
#[derive(Debug)]
enum Input<G: Game> {
    Command(Actor, G::Command),
    Presence(Seat, bool),
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
            seq: Seq(1),
            next_timer: 0,
        }
    }

    /// Start over from `config`'s initial state.
    pub fn with_config(mut self, config: G::Config) -> Self {
        self.state = self.game.setup(&config);
        self
    }

    /// [`GameTest::with_config`] from JSON text, as a client would send it in `create`.
    ///
    /// # Panics
    /// If `config` is not this game's config.
    #[track_caller]
    pub fn with_config_json(self, config: &str) -> Self {
        let config: G::Config = from_json(config, "the game's config");
        self.with_config(config)
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

    /// The seq the decision's first event will have (default 1). The rng `decide` sees is
    /// seeded from the seed and this, as on a server.
    pub fn at_seq(mut self, seq: impl Into<Seq>) -> Self {
        let seq = seq.into();
        self.seq = seq;
        self
    }

    /// Events that already happened, as JSON text: an array of the game's events as a
    /// client sees them.
    ///
    /// # Panics
    /// If `events` is not an array of this game's events.
    #[track_caller]
    pub fn given_json(self, events: &str) -> Self {
        let events: Vec<G::Event> = from_json(events, "an array of the game's events");
        self.given(events)
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
            match self.decide(Input::Command(by, command.clone())).result {
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
    pub fn when(self, by: impl Into<Actor>, command: G::Command) -> Then<G> {
        self.then(Input::Command(by.into(), command))
    }

    /// Decide a command given as the JSON text a client would send.
    ///
    /// # Panics
    /// If `command` is not one of this game's commands.
    #[track_caller]
    pub fn when_json(self, by: impl Into<Actor>, command: &str) -> Then<G> {
        let command: G::Command = from_json(command, "one of the game's commands");
        self.when(by, command)
    }

    /// The player in `seat` came back (`online`) or went away: what [`Game::presence`] says.
    pub fn when_presence(self, seat: Seat, online: bool) -> Then<G> {
        self.then(Input::Presence(seat, online))
    }

    fn then(self, input: Input<G>) -> Then<G> {
        let asked = self.asking(input);
        let (decision, _) = asked.ask(&self.game, &self.state);
        Then {
            game: self.game,
            state: self.state,
            decision,
            asked,
        }
    }

    /// `input`, asked now, with this seed, seq and timer count.
    fn asking(&self, input: Input<G>) -> Asked<G> {
        Asked {
            input,
            now: self.now,
            seed: self.seed,
            seq: self.seq,
            next_timer: self.next_timer,
        }
    }

    fn decide(&mut self, input: Input<G>) -> Decision<G> {
        let asked = self.asking(input);
        let (decision, next_timer) = asked.ask(&self.game, &self.state);
        if decision.result.is_ok() {
            self.next_timer = next_timer;
        }
        decision
    }
}

/// What the decision was asked, to ask it again.
#[derive(Debug)]
struct Asked<G: Game> {
    input: Input<G>,
    now: Millis,
    seed: u64,
    seq: Seq,
    next_timer: u64,
}

impl<G: Game> Asked<G> {
    /// What the rules say, and the next timer id after it.
    fn ask(&self, game: &G, state: &G::State) -> (Decision<G>, u64) {
        let mut next_timer = self.next_timer;
        let mut ctx = Ctx::new(self.now, self.seed, self.seq, &mut next_timer);
        let result = match &self.input {
            Input::Command(by, command) => game.decide(state, *by, command, &mut ctx),
            Input::Presence(seat, online) => Ok(game.presence(state, *seat, *online, &mut ctx)),
        };
        let decision = Decision {
            result,
            scheduled: ctx.scheduled().to_vec(),
            cancelled: ctx.cancelled().to_vec(),
        };
        (decision, next_timer)
    }
}

/// The "then" half: what `decide` said, with assertions that panic with a readable message.
#[derive(Debug)]
pub struct Then<G: Game> {
    game: G,
    state: G::State,
    decision: Decision<G>,
    asked: Asked<G>,
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

    /// Assert what a server needs of any decision, whatever the rules say:
    /// - asked again with the same state, time, seed and seq, the rules say the same (events,
    ///   timers, rejection): they depend on nothing else;
    /// - each event and each timer's command reads back equal from MessagePack (the log) and
    ///   JSON (the wire), and so does every viewer's copy of each event ([`Game::view`]);
    /// - the state reads back equal from a MessagePack snapshot, and applying the events to the
    ///   read-back state gives the same state as applying them to the original, twice over;
    /// - [`Game::outcome`] says the same of both.
    ///
    /// A refused command passes if the rejection is given again.
    ///
    /// ```
    /// # use umpire_engine::doc::Counter;
    /// use umpire_engine::{testing::GameTest, Seat};
    ///
    /// GameTest::new(Counter).given([40]).when(Seat(0), 2).then_consistent();
    /// ```
    ///
    /// # Panics
    /// Naming the first of these that does not hold.
    #[track_caller]
    pub fn then_consistent(self) -> Self {
        let (again, _) = self.asked.ask(&self.game, &self.state);
        assert_eq!(
            again, self.decision,
            "asked the same twice, the rules answered differently: they depend on something \
             besides the state, the command and the ctx (a clock, a global rng, hash order)"
        );
        let Ok(events) = &self.decision.result else {
            return self;
        };
        for event in events {
            round_trips(event, "an event");
            if G::HIDES {
                for viewer in viewers() {
                    if let Some(copy) = self.game.view(event, viewer) {
                        round_trips(&copy, "a viewer's copy of an event");
                    }
                }
            }
        }
        for (_, _, command) in &self.decision.scheduled {
            round_trips(command, "a timer's command");
        }
        let snapshot: G::State = read_back(&self.state, "the state before the events");
        assert_eq!(
            snapshot, self.state,
            "the state before the events reads back different from a snapshot"
        );
        let mut live = self.state.clone();
        let mut restored = snapshot;
        let mut twice = self.state.clone();
        for event in events {
            self.game.apply(&mut live, event);
            self.game.apply(&mut restored, event);
            self.game.apply(&mut twice, event);
        }
        assert_eq!(
            live, twice,
            "applying the same events to the same state gave different states"
        );
        assert_eq!(
            restored, live,
            "the events applied to the state read back from a snapshot give another state"
        );
        let after: G::State = read_back(&live, "the state after the events");
        assert_eq!(
            after, live,
            "the state after the events reads back different from a snapshot"
        );
        assert_eq!(
            self.game.outcome(&after),
            self.game.outcome(&live),
            "the outcome of the state read back from a snapshot differs"
        );
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

impl<G: Game> PartialEq for Decision<G> {
    fn eq(&self, other: &Self) -> bool {
        self.result == other.result
            && self.scheduled == other.scheduled
            && self.cancelled == other.cancelled
    }
}

/// Read a value a test wrote as JSON, or say what it should have been.
#[track_caller]
fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text} is not {what}: {e}"))
}

/// `value` written to a MessagePack snapshot (as the log stores it) and read back.
#[track_caller]
fn read_back<T: Serialize + DeserializeOwned>(value: &T, what: &str) -> T {
    let bytes = rmp_serde::to_vec_named(value)
        .unwrap_or_else(|e| panic!("{what} does not encode as MessagePack: {e}"));
    rmp_serde::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{what} does not decode from its MessagePack: {e}"))
}

/// Assert that `value` reads back equal from MessagePack and from JSON.
#[track_caller]
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
    what: &str,
) {
    let packed: T = read_back(value, what);
    assert_eq!(
        &packed, value,
        "{what} reads back different from MessagePack"
    );
    let json = serde_json::to_string(value)
        .unwrap_or_else(|e| panic!("{what} does not encode as JSON: {e} ({value:?})"));
    let read: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{what} does not decode from its JSON {json}: {e}"));
    assert_eq!(
        &read, value,
        "{what} reads back different from its JSON {json}"
    );
}

/// Everyone who may see an event differently: the state alone does not say which seats are
/// taken, so the first eight seats and a spectator.
fn viewers() -> impl Iterator<Item = Viewer> {
    (0..8)
        .map(|s| Viewer::Seat(Seat(s)))
        .chain(std::iter::once(Viewer::Spectator))
}
