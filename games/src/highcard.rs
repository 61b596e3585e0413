//! High card: two players are dealt hands from a deck shuffled with the game's rng; each round
//! both lay a card face down, and once both have, the higher rank takes the round. The example
//! of hidden information: a player sees their own hand and their own card on the table; the
//! other player and spectators see how many cards, and which were laid, only when revealed.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use umpire_engine::{Actor, Body, Ctx, Envelope, Game, Outcome, Seat, Viewer};

/// The game.
#[derive(Debug, Default, Clone, Copy)]
pub struct HighCard;

/// How long a game is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HighCardConfig {
    /// Cards dealt to each player; one round per card.
    pub hand: u8,
}

impl Default for HighCardConfig {
    fn default() -> Self {
        HighCardConfig { hand: 5 }
    }
}

/// A playing card: rank 2 to 14 (ace high), suit one of `cdhs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Card {
    /// 2 to 14.
    pub rank: u8,
    /// `c`, `d`, `h` or `s`.
    pub suit: char,
}

/// What a player may ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HighCardCommand {
    /// Shuffle and deal (once, by either player).
    Deal,
    /// Lay this card from your hand face down.
    Play(Card),
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HighCardEvent {
    /// `seat` was dealt `hand` (`None` to everyone else, who sees only `cards`).
    Dealt {
        /// Whose hand.
        seat: Seat,
        /// The cards, to their owner only.
        hand: Option<Vec<Card>>,
        /// How many.
        cards: u8,
    },
    /// `seat` laid a card face down (`card` to its owner only).
    Laid {
        /// Who.
        seat: Seat,
        /// The card, to its owner only.
        card: Option<Card>,
    },
    /// Both cards turned over: the higher rank takes the round (`None`: equal ranks).
    Revealed {
        /// Seat 0's card and seat 1's.
        cards: [Card; 2],
        /// Who took it.
        winner: Option<Seat>,
    },
}

/// Why a command is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum HighCardRejection {
    /// Only players play.
    #[error("only the players may play")]
    NotAPlayer,
    /// Dealt already.
    #[error("the cards are dealt already")]
    Dealt,
    /// Not dealt yet.
    #[error("deal first")]
    NotDealt,
    /// The card is not in the player's hand.
    #[error("that card is not in your hand")]
    NotInHand,
    /// The player laid a card this round already.
    #[error("you laid a card this round already; wait for the other player")]
    AlreadyLaid,
}

/// The table. Never sent to a client as it is: clients see events, through [`Game::view`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Each seat's hand.
    pub hands: [Vec<Card>; 2],
    /// Each seat's card laid this round.
    pub laid: [Option<Card>; 2],
    /// Rounds each seat took.
    pub won: [u8; 2],
    /// Rounds played.
    pub rounds: u8,
    /// Whether the cards were dealt.
    pub dealt: bool,
    /// Rounds in the game.
    pub hand: u8,
}

/// The longest hand: half a deck each.
pub const MAX_HAND: u8 = 26;

fn deck() -> Vec<Card> {
    let mut cards = Vec::with_capacity(52);
    for suit in ['c', 'd', 'h', 's'] {
        for rank in 2..=14 {
            cards.push(Card { rank, suit });
        }
    }
    cards
}

impl Game for HighCard {
    const KIND: &'static str = "highcard";
    const HIDES: bool = true;
    type Config = HighCardConfig;
    type State = Table;
    type Command = HighCardCommand;
    type Event = HighCardEvent;
    type Rejection = HighCardRejection;

    fn seats(&self, _: &HighCardConfig) -> u16 {
        2
    }

    fn check_config(&self, config: &HighCardConfig) -> Result<(), String> {
        if config.hand == 0 || config.hand > MAX_HAND {
            return Err(format!("a hand has 1 to {MAX_HAND} cards"));
        }
        Ok(())
    }

    fn setup(&self, config: &HighCardConfig) -> Table {
        Table {
            hand: config.hand,
            ..Table::default()
        }
    }

    fn decide(
        &self,
        table: &Table,
        by: Actor,
        command: &HighCardCommand,
        ctx: &mut Ctx<'_, HighCardCommand>,
    ) -> Result<Vec<HighCardEvent>, HighCardRejection> {
        let seat = by.seat().ok_or(HighCardRejection::NotAPlayer)?;
        let me = usize::from(seat.0);
        match command {
            HighCardCommand::Deal => {
                if table.dealt {
                    return Err(HighCardRejection::Dealt);
                }
                // Fisher-Yates with the game's rng: the same deal on every replay.
                let mut cards = deck();
                let rng = ctx.rng();
                for i in (1..cards.len()).rev() {
                    let j = usize::try_from(rng.next_u64() % (i as u64 + 1)).unwrap_or(0);
                    cards.swap(i, j);
                }
                let n = usize::from(table.hand);
                Ok((0..2u16)
                    .map(|s| HighCardEvent::Dealt {
                        seat: Seat(s),
                        hand: Some(cards[usize::from(s) * n..(usize::from(s) + 1) * n].to_vec()),
                        cards: table.hand,
                    })
                    .collect())
            }
            HighCardCommand::Play(card) => {
                if !table.dealt {
                    return Err(HighCardRejection::NotDealt);
                }
                if !table.hands[me].contains(card) {
                    return Err(HighCardRejection::NotInHand);
                }
                if table.laid[me].is_some() {
                    return Err(HighCardRejection::AlreadyLaid);
                }
                let mut events = vec![HighCardEvent::Laid {
                    seat,
                    card: Some(*card),
                }];
                if let Some(other) = table.laid[1 - me] {
                    let mut cards = [other, other];
                    cards[me] = *card;
                    let winner = match cards[0].rank.cmp(&cards[1].rank) {
                        std::cmp::Ordering::Greater => Some(Seat(0)),
                        std::cmp::Ordering::Less => Some(Seat(1)),
                        std::cmp::Ordering::Equal => None,
                    };
                    events.push(HighCardEvent::Revealed { cards, winner });
                }
                Ok(events)
            }
        }
    }

    fn apply(&self, table: &mut Table, event: &HighCardEvent) {
        match event {
            HighCardEvent::Dealt { seat, hand, .. } => {
                if let Some(slot) = table.hands.get_mut(usize::from(seat.0)) {
                    *slot = hand.clone().unwrap_or_default();
                }
                table.dealt = true;
            }
            HighCardEvent::Laid { seat, card } => {
                let s = usize::from(seat.0).min(1);
                table.laid[s] = *card;
                if let Some(card) = card {
                    table.hands[s].retain(|c| c != card);
                }
            }
            HighCardEvent::Revealed { winner, .. } => {
                table.laid = [None, None];
                table.rounds += 1;
                if let Some(w) = winner {
                    table.won[usize::from(w.0).min(1)] += 1;
                }
            }
        }
    }

    fn outcome(&self, table: &Table) -> Option<Outcome> {
        if !table.dealt || table.rounds < table.hand {
            return None;
        }
        Some(match table.won[0].cmp(&table.won[1]) {
            std::cmp::Ordering::Greater => Outcome::Win(Seat(0)),
            std::cmp::Ordering::Less => Outcome::Win(Seat(1)),
            std::cmp::Ordering::Equal => Outcome::Draw,
        })
    }

    /// A hand and a laid card are their owner's alone until revealed.
    fn view(&self, event: &HighCardEvent, viewer: Viewer) -> Option<HighCardEvent> {
        let owner = |seat: &Seat| viewer == Viewer::Seat(*seat);
        match event {
            HighCardEvent::Dealt { seat, cards, .. } if !owner(seat) => {
                Some(HighCardEvent::Dealt {
                    seat: *seat,
                    hand: None,
                    cards: *cards,
                })
            }
            HighCardEvent::Laid { seat, .. } if !owner(seat) => Some(HighCardEvent::Laid {
                seat: *seat,
                card: None,
            }),
            _ => None,
        }
    }
}

/// Whether `env`, as `viewer` received it, shows them what they may not see: the rng seed, or
/// another seat's hand or card before it is revealed. For tests of transports: nothing a
/// client receives may.
pub fn shows_hidden(env: &Envelope<HighCard>, viewer: Viewer) -> bool {
    match &env.body {
        Body::Created { seed, .. } => *seed != 0,
        Body::Game(event) => HighCard
            .view(event, viewer)
            .is_some_and(|seen| seen != *event),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umpire_engine::testing::GameTest;

    fn c(rank: u8, suit: char) -> Card {
        Card { rank, suit }
    }

    fn dealt() -> [HighCardEvent; 2] {
        [
            HighCardEvent::Dealt {
                seat: Seat(0),
                hand: Some(vec![c(14, 's'), c(3, 'h')]),
                cards: 2,
            },
            HighCardEvent::Dealt {
                seat: Seat(1),
                hand: Some(vec![c(10, 'd'), c(3, 'c')]),
                cards: 2,
            },
        ]
    }

    #[test]
    fn a_deal_gives_each_player_different_cards_from_one_deck() {
        let test = GameTest::new(HighCard)
            .with_config(HighCardConfig { hand: 26 })
            .when(Seat(1), HighCardCommand::Deal);
        test.then_state(|t| {
            let mut all: Vec<Card> = t.hands.concat();
            assert_eq!(all.len(), 52);
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 52, "every card once");
        });
    }

    #[test]
    fn the_second_card_laid_reveals_both_and_the_higher_rank_takes_the_round() {
        GameTest::new(HighCard)
            .with_config(HighCardConfig { hand: 2 })
            .given(dealt())
            .given([HighCardEvent::Laid {
                seat: Seat(1),
                card: Some(c(10, 'd')),
            }])
            .when(Seat(0), HighCardCommand::Play(c(14, 's')))
            .then_events([
                HighCardEvent::Laid {
                    seat: Seat(0),
                    card: Some(c(14, 's')),
                },
                HighCardEvent::Revealed {
                    cards: [c(14, 's'), c(10, 'd')],
                    winner: Some(Seat(0)),
                },
            ])
            .then_state(|t| assert_eq!((t.won, t.rounds, t.laid), ([1, 0], 1, [None, None])));
    }

    #[test]
    fn a_card_not_in_hand_or_a_second_card_in_a_round_is_refused() {
        GameTest::new(HighCard)
            .with_config(HighCardConfig { hand: 2 })
            .given(dealt())
            .when(Seat(0), HighCardCommand::Play(c(10, 'd')))
            .then_rejects(HighCardRejection::NotInHand);
        GameTest::new(HighCard)
            .with_config(HighCardConfig { hand: 2 })
            .given(dealt())
            .given([HighCardEvent::Laid {
                seat: Seat(0),
                card: Some(c(3, 'h')),
            }])
            .when(Seat(0), HighCardCommand::Play(c(14, 's')))
            .then_rejects(HighCardRejection::AlreadyLaid);
    }

    #[test]
    fn hands_and_laid_cards_are_their_owners_alone() {
        let [mine, _] = dealt();
        assert_eq!(HighCard.view(&mine, Viewer::Seat(Seat(0))), None);
        let hidden = HighCardEvent::Dealt {
            seat: Seat(0),
            hand: None,
            cards: 2,
        };
        assert_eq!(
            HighCard.view(&mine, Viewer::Seat(Seat(1))),
            Some(hidden.clone())
        );
        assert_eq!(HighCard.view(&mine, Viewer::Spectator), Some(hidden));
        let laid = HighCardEvent::Laid {
            seat: Seat(1),
            card: Some(c(3, 'c')),
        };
        assert_eq!(
            HighCard.view(&laid, Viewer::Spectator),
            Some(HighCardEvent::Laid {
                seat: Seat(1),
                card: None
            })
        );
        let revealed = HighCardEvent::Revealed {
            cards: [c(2, 'c'), c(2, 'd')],
            winner: None,
        };
        assert_eq!(
            HighCard.view(&revealed, Viewer::Spectator),
            None,
            "the reveal is for all"
        );
    }
}
