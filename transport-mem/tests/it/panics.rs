//! A panic in a game's code stops that game alone, and for good until the server restarts:
//! whoever asks is told `internal` instead of the game being loaded (and panicking) again and
//! again, the connection and the other games go on, and a timer that panics is not retried.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{paused_runtime, records, within};
use crate::flawed::*;
use serde_json::{json, Value};
use umpire_engine::protocol::ErrorCode;
use umpire_games::Colony;
use umpire_hub::Hub;
use umpire_store::{Log, MemLog};

async fn hub(log: &Arc<MemLog>, flaw: Flaw) -> Hub {
    Hub::builder(Arc::clone(log) as Arc<dyn Log>)
        .register(Flawed(flaw))
        .register(Colony)
        .start()
        .await
        .unwrap()
}

#[test]
fn a_panic_in_decide_stops_that_game_alone_until_a_restart() {
    paused_runtime().block_on(async {
        let log = Arc::new(MemLog::new());
        let hub = hub(&log, PanicsOn13).await;
        let net = umpire_mem::connector(&hub);
        let mut ada = net.connect().await.unwrap();
        let broken = ada.create("flawed", Value::Null).await.unwrap().game;
        let fine = ada.create("flawed", Value::Null).await.unwrap().game;
        ada.command(broken, json!({"add": 1})).await.unwrap();

        // The command that panics is answered, not left hanging.
        let first = within(ada.command(broken, json!({"add": 13})))
            .await
            .unwrap_err();
        assert!(first.code().is_some(), "{first}");
        // From then on the game is stopped: not loaded again to panic again.
        for _ in 0..3 {
            let again = within(ada.command(broken, json!({"add": 1})))
                .await
                .unwrap_err();
            assert_eq!(again.code(), Some(ErrorCode::Internal), "{again}");
            assert!(again.to_string().contains("its code panicked"), "{again}");
        }
        assert!(hub.inspect(broken).await.is_err());
        assert!(!hub.live_games().contains(&broken));
        // The same connection plays its other game.
        ada.command(fine, json!({"add": 2})).await.unwrap();
        assert_eq!(hub.inspect(fine).await.unwrap().state["total"], 2);
        hub.shutdown().await.unwrap();

        // After a restart the game loads from its log as it was before the panic.
        let hub = self::hub(&log, PanicsOn13).await;
        assert_eq!(hub.inspect(broken).await.unwrap().state["total"], 1);
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_timer_that_panics_is_not_fired_again_and_other_timers_go_on() {
    paused_runtime().block_on(async {
        let log = Arc::new(MemLog::new());
        let hub = hub(&log, TimerPanics).await;
        let net = umpire_mem::connector(&hub);
        let mut ada = net.connect().await.unwrap();
        let broken = ada.create("flawed", Value::Null).await.unwrap().game;
        ada.command(broken, json!("later")).await.unwrap();
        let colony = ada
            .create("colony", json!({"build_ms": {"mine": 30_000}}))
            .await
            .unwrap()
            .game;
        ada.command(colony, json!({"order": {"building": "mine"}}))
            .await
            .unwrap();
        // Nobody follows the flawed game: the wake-up index would load it when its timer is
        // due, and loading fires the overdue timer, which panics.
        ada.leave(broken).await.unwrap();

        tokio::time::sleep(Duration::from_secs(60)).await;
        let built = hub.inspect(colony).await.unwrap();
        assert_eq!(built.timers, 0, "the colony's timer fired: {}", built.state);
        let stopped = hub.inspect(broken).await.unwrap_err();
        assert!(
            stopped.to_string().contains("its code panicked"),
            "{stopped}"
        );
        // The log holds what happened before the panic, and nothing from the timer.
        let fired = records(&*log, broken.0)
            .await
            .iter()
            .filter(|env| env["body"].get("fired").is_some())
            .count();
        assert_eq!(fired, 0);
        hub.shutdown().await.unwrap();
    });
}
