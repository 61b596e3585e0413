//! What the kit says about a failing game: its steps, and a given/when/then test of the
//! decision it failed at.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;
use umpire_engine::testing::GameTest;
use umpire_engine::{Actor, Body, Envelope, Game, Match, Millis, Seat, Seq};

use super::run::{panic_message, same, Case, Failure, Played, Step};
use super::Check;

/// The decision a failure is pinned on, as a [`GameTest`] asks it.
struct Decision {
    seed: u64,
    /// The game events logged before it, as JSON text each.
    given: Vec<String>,
    at: Millis,
    seq: Seq,
    when: When,
}

enum When {
    Command(Actor, String),
    Presence(Seat, bool),
}

impl<G: Game + Clone> Check<G> {
    /// `case` with every step it fails without taken out, one at a time: proptest's
    /// shrinking can stop short of that.
    pub(crate) fn fewer_steps(&self, mut case: Case<G::Command>) -> Case<G::Command> {
        let mut i = 0;
        while i < case.steps.len() {
            let mut fewer = case.clone();
            fewer.steps.remove(i);
            if self.holds(&fewer).is_err() {
                case = fewer;
            } else {
                i += 1;
            }
        }
        case
    }

    /// The report for a failing case (already shrunk): played again to learn the details.
    pub(crate) fn report(&self, case: &Case<G::Command>) -> String {
        let (first, second) = self.twice(case);
        let failure = match same(&first, &second) {
            Err(failure) => failure,
            Ok(()) => Failure {
                step: None,
                between_plays: true,
                message: "it failed while shrinking, and passes when played again (the game \
                          or the server depends on something outside the steps)"
                    .into(),
            },
        };
        let mut out = String::new();
        let at = failure
            .step
            .map_or("before the first step".to_owned(), |s| {
                format!("at step {}", s + 1)
            });
        let _ = writeln!(out, "umpire's check of `{}` failed {at}:", G::KIND);
        let _ = writeln!(out, "  {}\n", failure.message.replace('\n', "\n  "));
        let _ = writeln!(
            out,
            "The game, shrunk to its fewest steps (the server snapshots every {} events):",
            case.snapshot_every
        );
        if case.steps.is_empty() {
            let _ = writeln!(
                out,
                "  (no step: creating the game and seating the players)"
            );
        }
        for (i, step) in case.steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", i + 1, describe(step));
        }
        let Some(decision) = self.decision(case, &first, failure.step) else {
            let _ = writeln!(out, "\nNo decision of the rules to show as a test.");
            return out;
        };
        let test = self.as_test(&decision);
        let verdict = match self.reproduce(&decision) {
            Err(message) => format!("It fails on its own too: {message}"),
            Ok(()) if failure.between_plays => "It passes on its own: what the rules read \
                besides the state, the command and the ctx did not change within this test. \
                Look for it in the code of this decision (a static, a clock, an rng of its own, \
                the order of a HashMap)."
                .to_owned(),
            Ok(()) => "It passes on its own: the rules hold for this decision, so what failed is \
                       how the server ran them. Please report it to umpire with the steps above."
                .to_owned(),
        };
        let _ = writeln!(
            out,
            "\nThe decision it failed at, as a test to paste next to the game:\n\n{test}\n{verdict}"
        );
        out
    }

    /// The decision the failure at `step` is pinned on: the step's own (a command, the last
    /// timer it fired, a presence change), or the last one before it.
    fn decision(
        &self,
        case: &Case<G::Command>,
        played: &Played,
        step: Option<usize>,
    ) -> Option<Decision> {
        let typed: Vec<Envelope<G>> = played
            .records
            .iter()
            .map_while(|r| rmp_serde::from_slice(r).ok())
            .collect();
        let seed = match typed.first().map(|e| &e.body) {
            Some(Body::Created { seed, .. }) => *seed,
            _ => return None,
        };
        // The steps begun, up to the failing one.
        let upto = step.map_or(played.marks.len(), |s| s + 1);
        let failed_here = |i: usize| step == Some(i);
        for (i, mark) in played.marks.iter().enumerate().take(upto).rev() {
            let end = played
                .marks
                .get(i + 1)
                .map_or(Seq(typed.len() as u64), |m| m.version);
            let logged = typed
                .iter()
                .filter(|e| e.seq > mark.version && e.seq <= end);
            let (before, at, seq, when) = match &case.steps[i] {
                Step::Play(p, command) => {
                    let seat = Seat(*p % self.players_count());
                    let command = json(command)?;
                    (
                        mark.version,
                        mark.now,
                        mark.version + 1,
                        When::Command(Actor::Seat(seat), command),
                    )
                }
                Step::Wait(ms) => {
                    let fired = logged
                        .filter_map(|e| match e.body {
                            Body::Fired { timer } => Some((e.seq, e.at, timer)),
                            _ => None,
                        })
                        .last();
                    match fired {
                        Some((f, at, timer)) => {
                            let m =
                                Match::replay(&self.game, typed.iter().take_while(|e| e.seq < f))
                                    .ok()?;
                            let command = json(&m.timers().get(&timer)?.command)?;
                            (f - 1, at, f + 1, When::Command(Actor::System, command))
                        }
                        None if failed_here(i) => {
                            // The game stopped before it could log the timer.
                            let m = Match::replay(&self.game, &typed).ok()?;
                            let (due, timer) = m.next_due()?;
                            if due > mark.now.saturating_add(*ms) {
                                continue;
                            }
                            let command = json(&m.timers().get(&timer)?.command)?;
                            let v = m.version();
                            (v, due, v + 2, When::Command(Actor::System, command))
                        }
                        None => continue,
                    }
                }
                Step::Drop(p) => {
                    let seat = Seat(*p % self.players_count());
                    let gone = logged
                        .filter(|e| matches!(e.body, Body::Presence { seat: s, online: false } if s == seat))
                        .map(|e| (e.seq, e.at))
                        .last();
                    match gone {
                        Some((s, at)) => (s - 1, at, s + 1, When::Presence(seat, false)),
                        None if failed_here(i) => {
                            let v = Seq(typed.len() as u64);
                            (v, mark.now, v + 2, When::Presence(seat, false))
                        }
                        None => continue,
                    }
                }
                Step::Watch | Step::Restart | Step::NodeDies => continue,
            };
            // The game's events among the records before the decision's.
            let given = typed
                .iter()
                .take_while(|e| e.seq <= before)
                .filter_map(|e| match &e.body {
                    Body::Game(event) => json(event),
                    _ => None,
                })
                .collect();
            return Some(Decision {
                seed,
                given,
                at,
                seq,
                when,
            });
        }
        None
    }

    /// `decision` as the text of a `#[test]`.
    fn as_test(&self, d: &Decision) -> String {
        let mut uses = vec!["testing::GameTest"];
        match d.when {
            When::Command(Actor::System, _) => uses.push("Actor"),
            When::Command(Actor::Seat(_), _) | When::Presence(..) => uses.push("Seat"),
        }
        let name: String = G::KIND
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let config = serde_json::to_string(&self.config).unwrap_or_else(|_| "null".into());
        let mut t = String::new();
        let _ = writeln!(t, "#[test]\nfn {name}_found_by_check() {{");
        let _ = writeln!(t, "    use umpire_engine::{{{}}};\n", uses.join(", "));
        let _ = writeln!(t, "    GameTest::new({:?})", self.game);
        let _ = writeln!(t, "        .with_config_json({})", raw(&config));
        let _ = writeln!(t, "        .with_seed({})", d.seed);
        if !d.given.is_empty() {
            let events = format!(
                "[\n            {}\n        ]",
                d.given.join(",\n            ")
            );
            let _ = writeln!(t, "        .given_json({})", raw(&events));
        }
        let _ = writeln!(t, "        .at({})\n        .at_seq({})", d.at, d.seq);
        match &d.when {
            When::Command(Actor::System, command) => {
                let _ = writeln!(t, "        .when_json(Actor::System, {})", raw(command));
            }
            When::Command(Actor::Seat(seat), command) => {
                let _ = writeln!(t, "        .when_json(Seat({}), {})", seat.0, raw(command));
            }
            When::Presence(seat, online) => {
                let _ = writeln!(t, "        .when_presence(Seat({}), {online})", seat.0);
            }
        }
        let _ = writeln!(t, "        .then_consistent();\n}}");
        t
    }

    /// Run the printed test here: `Err` with its panic message if it fails.
    fn reproduce(&self, d: &Decision) -> Result<(), String> {
        let config = serde_json::to_string(&self.config).map_err(|e| e.to_string())?;
        let given = format!("[{}]", d.given.join(","));
        let run = || {
            let test = GameTest::new(self.game.clone())
                .with_config_json(&config)
                .with_seed(d.seed)
                .given_json(&given)
                .at(d.at)
                .at_seq(d.seq);
            let then = match &d.when {
                When::Command(by, command) => test.when_json(*by, command),
                When::Presence(seat, online) => test.when_presence(*seat, *online),
            };
            then.then_consistent();
        };
        catch_unwind(AssertUnwindSafe(run)).map_err(|panic| panic_message(&*panic))
    }
}

/// JSON text of `value`, if it has one.
fn json<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

/// `text` as a Rust raw string literal.
fn raw(text: &str) -> String {
    let mut hashes = "#".to_owned();
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{text}\"{hashes}")
}

fn describe<C: Serialize + std::fmt::Debug>(step: &Step<C>) -> String {
    match step {
        Step::Play(p, command) => {
            let command = json(command).unwrap_or_else(|| format!("{command:?}"));
            format!("player {p} sends {command}")
        }
        Step::Wait(ms) => format!("{ms} ms pass"),
        Step::Watch => "a spectator comes".into(),
        Step::Drop(p) => format!("player {p}'s connection drops"),
        Step::Restart => "the server restarts".into(),
        Step::NodeDies => "the node serving the game dies; another takes it over".into(),
    }
}
