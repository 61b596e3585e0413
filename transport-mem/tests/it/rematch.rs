//! A rematch: after a game ends, its players start another with the same config; the first
//! to ask creates it, everyone in the old game is told, the others join it.

use std::sync::Arc;

use crate::common::{is_over, paused_runtime, start, within};
use serde_json::{json, Value};
use umpire_engine::protocol::GameId;
use umpire_engine::protocol::{ClientMsg, ErrorCode, ServerMsg};
use umpire_hub::HubConfig;
use umpire_store::MemLog;

fn rematch(game: u64) -> ClientMsg {
    ClientMsg::Rematch {
        game: GameId(game),
        r#ref: None,
    }
}

#[test]
fn the_players_of_a_finished_game_play_again_and_spectators_are_told() {
    paused_runtime().block_on(async {
        let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
        let mut red = net.connect().await.unwrap();
        let game = red.create("connect4", Value::Null).await.unwrap();
        let mut yellow = net.connect().await.unwrap();
        yellow.join(game.join.as_deref().unwrap()).await.unwrap();
        let mut fan = net.connect().await.unwrap();
        fan.watch(game.watch.as_deref().unwrap(), None)
            .await
            .unwrap();

        // Not before the end, and not for a spectator.
        let early = red.request(rematch(game.game.0)).await.unwrap();
        assert!(
            matches!(
                early,
                ServerMsg::Error {
                    code: ErrorCode::Forbidden,
                    ..
                }
            ),
            "{early:?}"
        );
        for (i, column) in [0, 1, 0, 1, 0, 1, 0].into_iter().enumerate() {
            let mover = if i % 2 == 0 { &mut red } else { &mut yellow };
            mover
                .command(game.game, json!({ "column": column }))
                .await
                .unwrap();
        }
        within(fan.events_until(game.game, is_over)).await.unwrap();
        let refused = fan.request(rematch(game.game.0)).await.unwrap();
        assert!(
            matches!(
                refused,
                ServerMsg::Error {
                    code: ErrorCode::NotFound,
                    ..
                }
            ),
            "{refused:?}"
        );

        // Yellow asks first: a new Connect Four, yellow in its first seat.
        let ServerMsg::Created {
            game: next, seat, ..
        } = yellow.request(rematch(game.game.0)).await.unwrap()
        else {
            panic!("yellow should create the rematch")
        };
        assert_eq!(seat.0, 0);
        // Everyone in the old game hears of it; the spectator gets the watch key.
        let told = loop {
            match within(fan.recv()).await.unwrap() {
                ServerMsg::Rematch {
                    game: old,
                    next: n,
                    watch,
                } => break (old, n, watch),
                _ => continue,
            }
        };
        assert_eq!((told.0, told.1), (game.game, next));
        assert_eq!(fan.watch(&told.2, None).await.unwrap(), next);
        // Red asks too and takes the other seat of that same game.
        let answer = red.request(rematch(game.game.0)).await.unwrap();
        let ServerMsg::Joined {
            game: joined, seat, ..
        } = answer
        else {
            panic!("{answer:?}")
        };
        assert_eq!((joined, seat.0), (next, 1));
        yellow.command(next, json!({"column": 3})).await.unwrap();
        assert_eq!(
            hub.inspect(next).await.unwrap().state["moves"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Asking again gives the same game, not a third one.
        let again = red.request(rematch(game.game.0)).await.unwrap();
        assert!(
            matches!(again, ServerMsg::Joined { game, .. } if game == next),
            "{again:?}"
        );
        hub.shutdown().await.unwrap();
    });
}
