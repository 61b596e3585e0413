//! Connect Four: 7 columns by 6 rows, red (seat 0) then yellow (seat 1), four in a row in any
//! direction wins, a full board is a draw. The rules of seed 001's tutorial.

use serde::{Deserialize, Serialize};
use umpire_engine::{Actor, Ctx, Game, Outcome, Seat};

/// Columns on the board.
pub const COLUMNS: usize = 7;
/// Rows on the board; row 0 is the bottom.
pub const ROWS: usize = 6;

/// The game. Stateless: everything is in [`Board`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Connect4;

/// A player's colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Seat 0, moves first.
    Red,
    /// Seat 1.
    Yellow,
}

impl Color {
    /// The colour a seat plays, if the seat plays at all.
    pub fn of(seat: Seat) -> Option<Color> {
        match seat.0 {
            0 => Some(Color::Red),
            1 => Some(Color::Yellow),
            _ => None,
        }
    }

    /// The seat that plays this colour.
    pub fn seat(self) -> Seat {
        match self {
            Color::Red => Seat(0),
            Color::Yellow => Seat(1),
        }
    }

    fn other(self) -> Color {
        match self {
            Color::Red => Color::Yellow,
            Color::Yellow => Color::Red,
        }
    }
}

/// Drop a disc into `column` (0 to 6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Play {
    /// The column, counted from 0 on the left. Wide so that any number gets a rule's answer.
    pub column: i64,
}

/// A disc landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Played {
    /// Whose disc.
    pub player: Color,
    /// The column it was dropped in.
    pub column: u8,
    /// The row it landed on; 0 is the bottom.
    pub row: u8,
}

/// Why a move is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Illegal {
    /// It is the other colour's turn.
    #[error("It isn't your turn.")]
    NotYourTurn,
    /// The column has six discs already.
    #[error("This slot is full.")]
    ColumnFull(u8),
    /// Columns are 0 to 6.
    #[error("Column {0} is out of range.")]
    ColumnOutOfRange(i64),
    /// Someone already won, or the board is full.
    #[error("The game is over.")]
    GameOver,
    /// Only seats 0 and 1 play.
    #[error("Only the two players may play.")]
    NotAPlayer,
}

/// The board and whose turn it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// `columns[c][r]`, row 0 at the bottom.
    pub columns: [[Option<Color>; ROWS]; COLUMNS],
    /// Who plays next.
    pub next: Color,
    /// Every move so far, in order.
    pub moves: Vec<Played>,
    /// Set by the winning move.
    pub winner: Option<Color>,
}

impl Board {
    fn height(&self, column: usize) -> usize {
        self.columns[column]
            .iter()
            .take_while(|c| c.is_some())
            .count()
    }

    fn is_full(&self) -> bool {
        self.moves.len() == ROWS * COLUMNS
    }

    /// Whether the disc at (`column`, `row`) is part of four in a row.
    fn wins_at(&self, column: usize, row: usize) -> bool {
        let Some(color) = self.columns[column][row] else {
            return false;
        };
        let at = |c: isize, r: isize| -> bool {
            (0..COLUMNS as isize).contains(&c)
                && (0..ROWS as isize).contains(&r)
                && self.columns[c as usize][r as usize] == Some(color)
        };
        let (c, r) = (column as isize, row as isize);
        [(1, 0), (0, 1), (1, 1), (1, -1)].iter().any(|&(dc, dr)| {
            let run = |sign: isize| {
                (1..4)
                    .take_while(|&k| at(c + sign * k * dc, r + sign * k * dr))
                    .count()
            };
            1 + run(1) + run(-1) >= 4
        })
    }
}

impl Game for Connect4 {
    const KIND: &'static str = "connect4";
    type Config = ();
    type State = Board;
    type Command = Play;
    type Event = Played;
    type Rejection = Illegal;

    fn seats(&self, _: &()) -> u16 {
        2
    }

    fn setup(&self, _: &()) -> Board {
        Board {
            columns: [[None; ROWS]; COLUMNS],
            next: Color::Red,
            moves: Vec::new(),
            winner: None,
        }
    }

    fn decide(
        &self,
        board: &Board,
        by: Actor,
        play: &Play,
        _ctx: &mut Ctx<'_, Play>,
    ) -> Result<Vec<Played>, Illegal> {
        let player = by.seat().and_then(Color::of).ok_or(Illegal::NotAPlayer)?;
        if board.winner.is_some() || board.is_full() {
            return Err(Illegal::GameOver);
        }
        if player != board.next {
            return Err(Illegal::NotYourTurn);
        }
        let column = usize::try_from(play.column)
            .ok()
            .filter(|c| *c < COLUMNS)
            .ok_or(Illegal::ColumnOutOfRange(play.column))?;
        let row = board.height(column);
        if row == ROWS {
            return Err(Illegal::ColumnFull(column as u8));
        }
        Ok(vec![Played {
            player,
            column: column as u8,
            row: row as u8,
        }])
    }

    fn apply(&self, board: &mut Board, played: &Played) {
        let (column, row) = (usize::from(played.column), usize::from(played.row));
        board.columns[column][row] = Some(played.player);
        board.next = played.player.other();
        if board.wins_at(column, row) {
            board.winner = Some(played.player);
        }
        board.moves.push(played.clone());
    }

    fn outcome(&self, board: &Board) -> Option<Outcome> {
        match board.winner {
            Some(color) => Some(Outcome::Win(color.seat())),
            None if board.is_full() => Some(Outcome::Draw),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umpire_engine::testing::GameTest;
    use umpire_engine::Seq;

    const RED: Seat = Seat(0);
    const YELLOW: Seat = Seat(1);

    fn moves(columns: &[i64]) -> Vec<(Actor, Play)> {
        columns
            .iter()
            .enumerate()
            .map(|(i, &column)| (Actor::Seat(Seat((i % 2) as u16)), Play { column }))
            .collect()
    }

    #[test]
    fn the_winning_move_sent_again_is_answered_with_its_seq_not_game_over() {
        // postmortem: the crash harness killed the server after red's winning move was logged
        // but before its answer left; red sent it again with its cid and was told game_over,
        // so red never learned its move had counted.
        use umpire_engine::{Action, Match, MatchError};
        let (mut m, _) = Match::create(&Connect4, (), 1, 0);
        for player in ["red", "yellow"] {
            let join = Action::Join {
                player: player.into(),
            };
            m.execute(&Connect4, Actor::System, join, 0, None).unwrap();
        }
        let mut last = Seq(0);
        for (i, (by, play)) in moves(&[0, 1, 0, 1, 0, 1, 0]).into_iter().enumerate() {
            let cid = format!("m{i}");
            let envs = m
                .execute(&Connect4, by, Action::Play(play), 0, Some(&cid))
                .unwrap();
            last = envs.last().unwrap().seq;
        }
        assert!(m.is_over());
        let again = m.execute(
            &Connect4,
            Actor::Seat(RED),
            Action::Play(Play { column: 0 }),
            0,
            Some("m6"),
        );
        assert_eq!(again.unwrap_err(), MatchError::Duplicate { seq: last });
        // A new command is still refused.
        let new = m.execute(
            &Connect4,
            Actor::Seat(YELLOW),
            Action::Play(Play { column: 3 }),
            0,
            Some("m7"),
        );
        assert_eq!(new.unwrap_err(), MatchError::GameOver);
    }

    #[test]
    fn red_moves_first_and_lands_on_the_bottom() {
        GameTest::new(Connect4)
            .when(RED, Play { column: 3 })
            .then_events([Played {
                player: Color::Red,
                column: 3,
                row: 0,
            }]);
    }

    #[test]
    fn yellow_cannot_move_first() {
        GameTest::new(Connect4)
            .when(YELLOW, Play { column: 3 })
            .then_rejects(Illegal::NotYourTurn);
    }

    #[test]
    fn discs_stack() {
        GameTest::new(Connect4)
            .given_commands(moves(&[2, 2, 2]))
            .when(YELLOW, Play { column: 2 })
            .then_events([Played {
                player: Color::Yellow,
                column: 2,
                row: 3,
            }]);
    }

    #[test]
    fn a_full_column_is_refused() {
        GameTest::new(Connect4)
            .given_commands(moves(&[0, 0, 0, 0, 0, 0]))
            .when(RED, Play { column: 0 })
            .then_rejects(Illegal::ColumnFull(0));
    }

    #[test]
    fn columns_out_of_range_are_refused() {
        for column in [-1, 7, 1 << 40] {
            GameTest::new(Connect4)
                .when(RED, Play { column })
                .then_rejects(Illegal::ColumnOutOfRange(column));
        }
    }

    #[test]
    fn spectators_and_the_system_cannot_play() {
        GameTest::new(Connect4)
            .when(Seat(2), Play { column: 0 })
            .then_rejects(Illegal::NotAPlayer);
        GameTest::new(Connect4)
            .when(Actor::System, Play { column: 0 })
            .then_rejects(Illegal::NotAPlayer);
    }

    fn winner_after(columns: &[i64]) -> Option<Outcome> {
        let (last, given) = columns.split_last().expect("at least one move");
        let by = Actor::Seat(Seat(((columns.len() - 1) % 2) as u16));
        let mut outcome = None;
        GameTest::new(Connect4)
            .given_commands(moves(given))
            .when(by, Play { column: *last })
            .then_state(|board| outcome = Connect4.outcome(board));
        outcome
    }

    #[test]
    fn four_in_a_row_wins_in_every_direction() {
        // Horizontal: red 0,1,2,3 along the bottom; yellow stacks on top of them.
        assert_eq!(
            winner_after(&[0, 0, 1, 1, 2, 2, 3]),
            Some(Outcome::Win(RED))
        );
        // Vertical: red in column 0 four times.
        assert_eq!(
            winner_after(&[0, 1, 0, 1, 0, 1, 0]),
            Some(Outcome::Win(RED))
        );
        // Rising diagonal for red: (0,0) (1,1) (2,2) (3,3).
        assert_eq!(
            winner_after(&[0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3]),
            Some(Outcome::Win(RED))
        );
        // Falling diagonal for red: (0,3) (1,2) (2,1) (3,0).
        assert_eq!(
            winner_after(&[3, 2, 2, 1, 0, 1, 1, 0, 6, 0, 0]),
            Some(Outcome::Win(RED))
        );
        // Yellow wins too: vertical in column 6 while red scatters.
        assert_eq!(
            winner_after(&[0, 6, 1, 6, 3, 6, 0, 6]),
            Some(Outcome::Win(YELLOW))
        );
        // Three in a row is not yet a win.
        assert_eq!(winner_after(&[0, 0, 1, 1, 2]), None);
    }

    #[test]
    fn no_move_after_a_win() {
        GameTest::new(Connect4)
            .given_commands(moves(&[0, 1, 0, 1, 0, 1, 0]))
            .when(YELLOW, Play { column: 1 })
            .then_rejects(Illegal::GameOver);
    }

    #[test]
    fn a_full_board_without_four_is_a_draw() {
        // Fill columns in pairs of three so colours alternate in blocks and never line up:
        // a standard drawn pattern.
        let order = [
            0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 2, 3, 2, 3, 2, 3, 3, 2, 3, 2, 3, 2, 4, 5, 4, 5, 4,
            5, 5, 4, 5, 4, 5, 4, 6, 6, 6, 6, 6, 6,
        ];
        let mut outcome = None;
        let (last, given) = order.split_last().unwrap();
        GameTest::new(Connect4)
            .given_commands(moves(given))
            .when(YELLOW, Play { column: *last })
            .then_state(|board| {
                assert!(board.winner.is_none(), "{board:?}");
                outcome = Connect4.outcome(board);
            });
        assert_eq!(outcome, Some(Outcome::Draw));
    }
}
