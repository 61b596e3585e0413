//! Colony: seed 000's build queue. A player orders a building; it completes after its build
//! time through a timer, and the completion is an event everyone in the game receives. An
//! order can be cancelled until it completes, and a cancelled order never completes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use umpire_engine::{Actor, Ctx, Game, Millis, Seat, TimerId};

/// The game.
#[derive(Debug, Default, Clone, Copy)]
pub struct Colony;

/// Which buildings exist and how long each takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColonyConfig {
    /// Build time in milliseconds, by building name.
    pub build_ms: BTreeMap<String, Millis>,
    /// Seats in one colony.
    pub seats: u16,
}

impl Default for ColonyConfig {
    fn default() -> Self {
        let build_ms = [("mine", 30_000), ("farm", 60_000), ("shipyard", 300_000)]
            .into_iter()
            .map(|(name, ms)| (name.to_owned(), ms))
            .collect();
        ColonyConfig { build_ms, seats: 8 }
    }
}

/// What a player (or the build timer) asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColonyCommand {
    /// Start building.
    Order {
        /// A name from the config's `build_ms`.
        building: String,
    },
    /// Stop an order that has not completed.
    Cancel {
        /// The order's number.
        order: u32,
    },
    /// Finish an order. Only the order's timer sends this.
    Complete {
        /// The order's number.
        order: u32,
    },
}

/// What happened in the colony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColonyEvent {
    /// Construction started; it completes at `due` unless cancelled.
    Ordered {
        /// The order's number, counted from 0 per colony.
        order: u32,
        /// Who ordered it.
        seat: Seat,
        /// What is being built.
        building: String,
        /// When it completes.
        due: Millis,
        /// The timer that completes it.
        timer: TimerId,
    },
    /// The order was cancelled; it will never complete.
    Cancelled {
        /// The order.
        order: u32,
    },
    /// Construction complete.
    Completed {
        /// The order.
        order: u32,
        /// Who ordered it.
        seat: Seat,
        /// What was built.
        building: String,
    },
}

/// Why a colony command is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ColonyRejection {
    /// The building is not in the config.
    #[error("there is no building called {0:?}")]
    UnknownBuilding(String),
    /// No pending order has this number (it completed, was cancelled, or never existed).
    #[error("order {0} is not pending")]
    NoSuchOrder(u32),
    /// Only the player who ordered may cancel.
    #[error("order {0} is not yours")]
    NotYourOrder(u32),
    /// `Complete` comes from timers only; players may not order it, and timers may not order.
    #[error("not allowed")]
    NotAllowed,
    /// A player has [`MAX_PENDING_PER_SEAT`] orders under way already.
    #[error(
        "you have {MAX_PENDING_PER_SEAT} orders under way already; wait for one or cancel one"
    )]
    TooManyOrders,
}

/// Seats one colony may have.
pub const MAX_SEATS: u16 = 64;
/// Kinds of building one colony's config may name.
pub const MAX_BUILDINGS: usize = 32;
/// The longest building name, in bytes.
pub const MAX_BUILDING_NAME: usize = 64;
/// The longest build time: a week.
pub const MAX_BUILD_MS: Millis = 7 * 24 * 3600 * 1000;
/// Orders one player may have under construction at once.
pub const MAX_PENDING_PER_SEAT: usize = 64;

/// An order under construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Who ordered it.
    pub seat: Seat,
    /// What is being built.
    pub building: String,
    /// When it completes.
    pub due: Millis,
    /// Its timer.
    pub timer: TimerId,
}

/// The colony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// Build times, from the config.
    pub build_ms: BTreeMap<String, Millis>,
    /// The number the next order gets.
    pub next_order: u32,
    /// Orders under construction, by number.
    pub pending: BTreeMap<u32, Pending>,
    /// What has been built, by whom, in completion order.
    pub built: Vec<(Seat, String)>,
}

impl Game for Colony {
    const KIND: &'static str = "colony";
    type Config = ColonyConfig;
    type State = Settlement;
    type Command = ColonyCommand;
    type Event = ColonyEvent;
    type Rejection = ColonyRejection;

    fn seats(&self, config: &ColonyConfig) -> u16 {
        config.seats
    }

    fn check_config(&self, config: &ColonyConfig) -> Result<(), String> {
        if config.seats > MAX_SEATS {
            return Err(format!("a colony has at most {MAX_SEATS} seats"));
        }
        if config.build_ms.len() > MAX_BUILDINGS {
            return Err(format!(
                "a colony has at most {MAX_BUILDINGS} kinds of building"
            ));
        }
        for (name, ms) in &config.build_ms {
            if name.is_empty() || name.len() > MAX_BUILDING_NAME {
                return Err(format!(
                    "a building's name has 1 to {MAX_BUILDING_NAME} bytes"
                ));
            }
            if *ms > MAX_BUILD_MS {
                return Err(format!("{name:?} takes longer than a week to build"));
            }
        }
        Ok(())
    }

    fn setup(&self, config: &ColonyConfig) -> Settlement {
        Settlement {
            build_ms: config.build_ms.clone(),
            next_order: 0,
            pending: BTreeMap::new(),
            built: Vec::new(),
        }
    }

    fn decide(
        &self,
        colony: &Settlement,
        by: Actor,
        command: &ColonyCommand,
        ctx: &mut Ctx<'_, ColonyCommand>,
    ) -> Result<Vec<ColonyEvent>, ColonyRejection> {
        match (command, by) {
            (ColonyCommand::Order { building }, Actor::Seat(seat)) => {
                let ms = colony
                    .build_ms
                    .get(building)
                    .ok_or_else(|| ColonyRejection::UnknownBuilding(building.clone()))?;
                let mine = colony.pending.values().filter(|p| p.seat == seat).count();
                if mine >= MAX_PENDING_PER_SEAT {
                    return Err(ColonyRejection::TooManyOrders);
                }
                let order = colony.next_order;
                let due = ctx.now().saturating_add(*ms);
                let timer = ctx.schedule(due, ColonyCommand::Complete { order });
                Ok(vec![ColonyEvent::Ordered {
                    order,
                    seat,
                    building: building.clone(),
                    due,
                    timer,
                }])
            }
            (ColonyCommand::Cancel { order }, Actor::Seat(seat)) => {
                let pending = colony
                    .pending
                    .get(order)
                    .ok_or(ColonyRejection::NoSuchOrder(*order))?;
                if pending.seat != seat {
                    return Err(ColonyRejection::NotYourOrder(*order));
                }
                ctx.cancel(pending.timer);
                Ok(vec![ColonyEvent::Cancelled { order: *order }])
            }
            (ColonyCommand::Complete { order }, Actor::System) => {
                // The timer was cancelled with the order, but check anyway: a cancelled order
                // must never complete, whatever the timers do.
                let pending = colony
                    .pending
                    .get(order)
                    .ok_or(ColonyRejection::NoSuchOrder(*order))?;
                Ok(vec![ColonyEvent::Completed {
                    order: *order,
                    seat: pending.seat,
                    building: pending.building.clone(),
                }])
            }
            _ => Err(ColonyRejection::NotAllowed),
        }
    }

    fn apply(&self, colony: &mut Settlement, event: &ColonyEvent) {
        match event {
            ColonyEvent::Ordered {
                order,
                seat,
                building,
                due,
                timer,
            } => {
                colony.next_order = order + 1;
                colony.pending.insert(
                    *order,
                    Pending {
                        seat: *seat,
                        building: building.clone(),
                        due: *due,
                        timer: *timer,
                    },
                );
            }
            ColonyEvent::Cancelled { order } => {
                colony.pending.remove(order);
            }
            ColonyEvent::Completed {
                order,
                seat,
                building,
            } => {
                colony.pending.remove(order);
                colony.built.push((*seat, building.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umpire_engine::testing::GameTest;

    fn ordered(order: u32, seat: u16, building: &str, due: Millis, timer: u64) -> ColonyEvent {
        ColonyEvent::Ordered {
            order,
            seat: Seat(seat),
            building: building.into(),
            due,
            timer: TimerId(timer),
        }
    }

    #[test]
    fn ordering_schedules_completion_after_the_build_time() {
        GameTest::new(Colony)
            .at(1_000)
            .when(
                Seat(0),
                ColonyCommand::Order {
                    building: "mine".into(),
                },
            )
            .then_events([ordered(0, 0, "mine", 31_000, 0)])
            .then_schedules([(31_000, ColonyCommand::Complete { order: 0 })]);
    }

    #[test]
    fn unknown_buildings_are_refused() {
        GameTest::new(Colony)
            .when(
                Seat(0),
                ColonyCommand::Order {
                    building: "castle".into(),
                },
            )
            .then_rejects(ColonyRejection::UnknownBuilding("castle".into()));
    }

    #[test]
    fn the_timer_completes_a_pending_order() {
        GameTest::new(Colony)
            .given([ordered(0, 2, "farm", 60_000, 0)])
            .when(Actor::System, ColonyCommand::Complete { order: 0 })
            .then_events([ColonyEvent::Completed {
                order: 0,
                seat: Seat(2),
                building: "farm".into(),
            }])
            .then_state(|c| {
                assert!(c.pending.is_empty());
                assert_eq!(c.built, vec![(Seat(2), "farm".to_owned())]);
            });
    }

    #[test]
    fn cancelling_cancels_the_timer() {
        GameTest::new(Colony)
            .given([ordered(0, 1, "mine", 30_000, 7)])
            .when(Seat(1), ColonyCommand::Cancel { order: 0 })
            .then_events([ColonyEvent::Cancelled { order: 0 }])
            .then_cancels([TimerId(7)]);
    }

    #[test]
    fn a_cancelled_order_never_completes() {
        GameTest::new(Colony)
            .given([
                ordered(0, 1, "mine", 30_000, 0),
                ColonyEvent::Cancelled { order: 0 },
            ])
            .when(Actor::System, ColonyCommand::Complete { order: 0 })
            .then_rejects(ColonyRejection::NoSuchOrder(0));
    }

    #[test]
    fn only_the_orderer_may_cancel() {
        GameTest::new(Colony)
            .given([ordered(0, 1, "mine", 30_000, 0)])
            .when(Seat(2), ColonyCommand::Cancel { order: 0 })
            .then_rejects(ColonyRejection::NotYourOrder(0));
    }

    #[test]
    fn players_cannot_complete_and_timers_cannot_order() {
        GameTest::new(Colony)
            .given([ordered(0, 1, "mine", 30_000, 0)])
            .when(Seat(1), ColonyCommand::Complete { order: 0 })
            .then_rejects(ColonyRejection::NotAllowed);
        GameTest::new(Colony)
            .when(
                Actor::System,
                ColonyCommand::Order {
                    building: "mine".into(),
                },
            )
            .then_rejects(ColonyRejection::NotAllowed);
    }

    #[test]
    fn build_times_come_from_the_config() {
        let config = ColonyConfig {
            build_ms: [("hut".to_owned(), 5)].into_iter().collect(),
            seats: 2,
        };
        GameTest::new(Colony)
            .with_config(config)
            .at(10)
            .when(
                Seat(0),
                ColonyCommand::Order {
                    building: "hut".into(),
                },
            )
            .then_schedules([(15, ColonyCommand::Complete { order: 0 })]);
    }

    #[test]
    fn a_player_has_a_bounded_number_of_orders_under_way() {
        let mine = |order: u32, seat: u16| ordered(order, seat, "mine", 30_000, u64::from(order));
        let full: Vec<ColonyEvent> = (0..64).map(|o| mine(o, 1)).collect();
        let order = ColonyCommand::Order {
            building: "mine".into(),
        };
        GameTest::new(Colony)
            .given(full.clone())
            .when(Seat(1), order.clone())
            .then_rejects(ColonyRejection::TooManyOrders);
        // Another player's orders are theirs to count.
        GameTest::new(Colony)
            .given(full)
            .when(Seat(2), order)
            .then_schedules([(30_000, ColonyCommand::Complete { order: 64 })]);
    }

    #[test]
    fn configs_a_client_may_not_ask_for_are_refused() {
        let too_many = |n: usize| ColonyConfig {
            build_ms: (0..n).map(|i| (format!("b{i}"), 1)).collect(),
            seats: 2,
        };
        assert!(Colony.check_config(&ColonyConfig::default()).is_ok());
        assert!(Colony.check_config(&too_many(MAX_BUILDINGS)).is_ok());
        assert!(Colony.check_config(&too_many(MAX_BUILDINGS + 1)).is_err());
        let seats = ColonyConfig {
            seats: MAX_SEATS + 1,
            ..ColonyConfig::default()
        };
        assert!(Colony.check_config(&seats).is_err());
    }
}
