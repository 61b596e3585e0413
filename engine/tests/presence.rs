//! Presence: a seated player's connection coming and going is logged, replays, and lets a
//! game react (here: a player away for a minute forfeits, unless they come back first).

use serde::{Deserialize, Serialize};
use umpire_engine::{Action, Actor, Body, Ctx, Game, Match, MatchError, Outcome, Seat, TimerId};

#[derive(Debug)]
struct Patient;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    /// The forfeit timer of each absent seat.
    away: Vec<(Seat, TimerId)>,
    forfeited: Option<Seat>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Cmd {
    Forfeit(Seat),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Ev {
    Away(Seat, TimerId),
    Back(Seat),
    Forfeited(Seat),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, thiserror::Error)]
#[error("never")]
struct Never;

const MINUTE: u64 = 60_000;

impl Game for Patient {
    const KIND: &'static str = "patient";
    type Config = ();
    type State = State;
    type Command = Cmd;
    type Event = Ev;
    type Rejection = Never;

    fn seats(&self, (): &()) -> u16 {
        2
    }
    fn setup(&self, (): &()) -> State {
        State::default()
    }
    fn decide(
        &self,
        _: &State,
        by: Actor,
        cmd: &Cmd,
        _: &mut Ctx<'_, Cmd>,
    ) -> Result<Vec<Ev>, Never> {
        let Cmd::Forfeit(seat) = cmd;
        Ok(if by == Actor::System {
            vec![Ev::Forfeited(*seat)]
        } else {
            vec![]
        })
    }
    fn presence(&self, state: &State, seat: Seat, online: bool, ctx: &mut Ctx<'_, Cmd>) -> Vec<Ev> {
        if online {
            if let Some((_, timer)) = state.away.iter().find(|(s, _)| *s == seat) {
                ctx.cancel(*timer);
                return vec![Ev::Back(seat)];
            }
            return vec![];
        }
        let timer = ctx.schedule(ctx.now() + MINUTE, Cmd::Forfeit(seat));
        vec![Ev::Away(seat, timer)]
    }
    fn apply(&self, state: &mut State, event: &Ev) {
        match event {
            Ev::Away(seat, timer) => state.away.push((*seat, *timer)),
            Ev::Back(seat) => state.away.retain(|(s, _)| s != seat),
            Ev::Forfeited(seat) => state.forfeited = Some(*seat),
        }
    }
    fn outcome(&self, state: &State) -> Option<Outcome> {
        state.forfeited.map(|Seat(s)| Outcome::Win(Seat(1 - s)))
    }
}

fn seated() -> Match<Patient> {
    let (mut m, _) = Match::create(&Patient, (), 7, 0);
    for player in ["ada", "bob"] {
        let join = Action::Join {
            player: player.into(),
        };
        m.execute(&Patient, Actor::System, join, 0, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    m
}

fn presence(m: &mut Match<Patient>, seat: u16, online: bool, now: u64) -> Vec<Body<Patient>> {
    let action = Action::Presence {
        seat: Seat(seat),
        online,
    };
    let envs = m
        .execute(&Patient, Actor::System, action, now, None)
        .unwrap_or_else(|e| panic!("{e}"));
    envs.into_iter().map(|e| e.body).collect()
}

#[test]
fn presence_is_logged_only_when_it_changes() {
    let mut m = seated();
    let bodies = presence(&mut m, 0, true, 5);
    assert_eq!(
        bodies,
        vec![Body::Presence {
            seat: Seat(0),
            online: true
        }]
    );
    assert!(m.is_online(Seat(0)) && !m.is_online(Seat(1)));
    assert!(
        presence(&mut m, 0, true, 6).is_empty(),
        "already online: nothing to log"
    );
    assert_eq!(m.online(), &[Seat(0)]);
}

#[test]
fn an_absent_player_forfeits_unless_back_in_time() {
    // Back within the minute: the timer is cancelled, the game goes on.
    let mut m = seated();
    presence(&mut m, 0, true, 0);
    presence(&mut m, 1, true, 0);
    let away = presence(&mut m, 1, false, 1_000);
    assert!(matches!(away[0], Body::Presence { online: false, .. }));
    assert!(matches!(away[1], Body::Game(Ev::Away(Seat(1), _))));
    assert!(matches!(away[2], Body::Scheduled { at, .. } if at == 1_000 + MINUTE));
    let back = presence(&mut m, 1, true, 30_000);
    assert!(back.iter().any(|b| matches!(b, Body::Cancelled { .. })));
    assert!(m.timers().is_empty() && !m.is_over());

    // Away for good: the timer fires and the other player wins.
    presence(&mut m, 0, false, 40_000);
    let (at, timer) = m.next_due().unwrap_or_else(|| panic!("a forfeit timer"));
    m.execute(&Patient, Actor::System, Action::Fire(timer), at, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.outcome(), Some(&Outcome::Win(Seat(1))));
}

#[test]
fn presence_replays_and_ends_with_the_seat() {
    let (mut m, created) = Match::create(&Patient, (), 7, 0);
    let mut log = vec![created];
    let join = Action::Join {
        player: "ada".into(),
    };
    log.extend(
        m.execute(&Patient, Actor::System, join, 0, None)
            .unwrap_or_default(),
    );
    let action = Action::Presence {
        seat: Seat(0),
        online: true,
    };
    log.extend(
        m.execute(&Patient, Actor::System, action, 1, None)
            .unwrap_or_default(),
    );
    let replayed = Match::replay(&Patient, &log).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed, m);
    assert!(replayed.is_online(Seat(0)));

    let leave = m.execute(&Patient, Actor::Seat(Seat(0)), Action::Leave, 2, None);
    assert!(leave.is_ok());
    assert!(!m.is_online(Seat(0)), "a seat given up is no longer online");
}

#[test]
fn only_the_system_reports_presence_and_only_for_taken_seats() {
    let mut m = seated();
    let action = Action::Presence {
        seat: Seat(0),
        online: true,
    };
    let by_player = m.execute(&Patient, Actor::Seat(Seat(0)), action.clone(), 0, None);
    assert_eq!(by_player, Err(MatchError::Forbidden));
    let empty = Action::Presence {
        seat: Seat(5),
        online: true,
    };
    assert_eq!(
        m.execute(&Patient, Actor::System, empty, 0, None),
        Err(MatchError::NotSeated)
    );
}
