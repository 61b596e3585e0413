//! Lazy games: a game nobody follows leaves memory and comes back on its next use, or by
//! itself when a timer is due (the log's wake-up index); a restart loads no game at all until
//! one is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use crate::common::{game_event, paused_runtime, records, signed_in, start, with_auth, within};
use serde_json::{json, Value};
use umpire_engine::protocol::{ErrorCode, GameId};
use umpire_hub::{Clock, Hub, HubConfig, Limits, TokioClock};
use umpire_store::{Log, MemLog, SledLog};

/// Builds of one and five minutes.
const CONFIG: &str = r#"{"build_ms": {"hut": 60000, "hall": 300000}, "seats": 4}"#;

fn evicting(after: u64) -> HubConfig {
    HubConfig {
        evict_after: Some(Duration::from_secs(after)),
        ..HubConfig::default()
    }
}

/// When each build of `game` completed, by order number.
async fn completions(log: &Arc<dyn Log>, game: GameId) -> Vec<(u64, u64)> {
    records(&**log, game.0)
        .await
        .iter()
        .filter_map(|env| {
            let order = game_event(env)?.get("completed")?["order"].as_u64()?;
            Some((order, env["at"].as_u64()?))
        })
        .collect()
}

fn is_loaded(hub: &Hub, game: GameId) -> bool {
    hub.live_games().contains(&game)
}

#[test]
fn a_game_nobody_follows_leaves_memory_and_comes_back_for_its_timer_and_its_players() {
    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new());
        let log: Arc<dyn Log> = Arc::new(MemLog::new());
        let (hub, net) = start(Arc::clone(&log), evicting(10), Some(clock.clone())).await;
        let mut me = net.connect().await.unwrap();
        let g = me
            .create("colony", serde_json::from_str(CONFIG).unwrap())
            .await
            .unwrap();
        me.command(g.game, json!({"order": {"building": "hut"}}))
            .await
            .unwrap();
        let ordered = clock.now();
        assert!(is_loaded(&hub, g.game));

        // Followed, it stays however long it is quiet.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(is_loaded(&hub, g.game), "a followed game stays in memory");

        // Nobody follows it: ten quiet seconds later it is gone, its timer still pending.
        drop(me);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(!is_loaded(&hub, g.game), "the unfollowed game left memory");
        assert_eq!(
            completions(&log, g.game).await,
            vec![],
            "the hut is not due yet"
        );

        // Due at one minute: the game is loaded for it and the hut completes on time.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let done = completions(&log, g.game).await;
        assert_eq!(done.len(), 1, "the timer fired without anyone asking");
        let late = done[0].1 - (ordered + 60_000);
        assert!(late < 1_000, "fired on time (late by {late} ms)");

        // It leaves again; a spectator who comes later loads it and sees the whole story.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(!is_loaded(&hub, g.game));
        let mut fan = net.connect().await.unwrap();
        fan.watch(g.watch.as_ref().unwrap(), None).await.unwrap();
        let mut seen = Vec::new();
        while seen.last() != Some(&done[0].1) {
            let env = within(fan.next_event(g.game)).await.unwrap();
            if game_event(&env).is_some_and(|e| e.get("completed").is_some()) {
                seen.push(env["at"].as_u64().unwrap());
            }
        }
        assert!(is_loaded(&hub, g.game));
        // And the player takes the seat back with the seat token and plays on.
        let mut back = net.connect().await.unwrap();
        back.join(&g.token).await.unwrap();
        back.command(g.game, json!({"order": {"building": "hall"}}))
            .await
            .unwrap();
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn after_a_restart_no_game_is_loaded_until_it_is_used_or_its_timer_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let sled = || -> Arc<dyn Log> {
        Arc::new(SledLog::open_retrying(dir.path(), Duration::from_secs(10)).unwrap())
    };
    let (colony, tally, due) = paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new());
        let (hub, net) = start(sled(), HubConfig::default(), Some(clock.clone())).await;
        let mut me = net.connect().await.unwrap();
        let colony = me
            .create("colony", serde_json::from_str(CONFIG).unwrap())
            .await
            .unwrap();
        // Ordered second but due first: the hut.
        me.command(colony.game, json!({"order": {"building": "hall"}}))
            .await
            .unwrap();
        me.command(colony.game, json!({"order": {"building": "hut"}}))
            .await
            .unwrap();
        let tally = me.create("tally", Value::Null).await.unwrap();
        me.command(tally.game, json!({"add": 7})).await.unwrap();
        let due = clock.now() + 60_000;
        hub.shutdown().await.unwrap();
        (colony.game, tally.game, due)
    });

    paused_runtime().block_on(async {
        let clock = Arc::new(TokioClock::new());
        let log = sled();
        let (hub, _net) = start(Arc::clone(&log), HubConfig::default(), Some(clock.clone())).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            hub.live_games(),
            Vec::<GameId>::new(),
            "nothing loaded at start"
        );

        // The hut falls due: the colony loads for it, the hall later, in due order.
        tokio::time::sleep(Duration::from_millis(due.saturating_sub(clock.now()) + 500)).await;
        assert_eq!(
            hub.live_games(),
            vec![colony],
            "only the game with a due timer"
        );
        tokio::time::sleep(Duration::from_secs(240)).await;
        let done = completions(&log, colony).await;
        assert_eq!(done.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![1, 0]);
        assert!(done[0].1 - due < 1_000, "the hut on time");

        // The tally loads when asked for, as it was.
        let tally_state = hub.inspect(tally).await.unwrap();
        assert_eq!(tally_state.state["total"], json!(7));
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_game_out_of_memory_still_counts_against_its_creator() {
    paused_runtime().block_on(async {
        let (hub, net) = with_auth(HubConfig {
            limits: Limits {
                live_games_per_player: 1,
                ..Limits::default()
            },
            ..evicting(5)
        })
        .await;
        let mut ada = signed_in(&net, "ada").await;
        let mut bob = signed_in(&net, "bob").await;
        let g = ada.create("connect4", Value::Null).await.unwrap();
        let b = bob.join(g.join.as_ref().unwrap()).await.unwrap();
        drop((ada, bob));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!is_loaded(&hub, g.game), "left memory");
        let mut ada = signed_in(&net, "ada").await;
        let refused = ada.create("tally", Value::Null).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::LimitReached), "{refused}");
        // Loaded again, it is still counted once, not twice: finishing it frees the place.
        let mut bob = signed_in(&net, "bob").await;
        ada.join(&g.token).await.unwrap();
        bob.join(&b.token).await.unwrap();
        for column in [0, 1, 0, 1, 0, 1, 0] {
            let player = if column == 0 { &mut ada } else { &mut bob };
            player
                .command(g.game, json!({"column": column}))
                .await
                .unwrap();
        }
        ada.create("tally", Value::Null).await.unwrap();
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn finished_games_are_removed_after_retention_unless_someone_is_replaying_them() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(SledLog::open_retrying(dir.path(), Duration::from_secs(10)).unwrap());
    paused_runtime().block_on(async {
        let config = HubConfig {
            retain_finished: Some(Duration::from_secs(30 * 86_400)),
            // The game under way must not expire meanwhile.
            limits: Limits {
                expire_idle_games: None,
                ..Limits::default()
            },
            ..evicting(60)
        };
        let (hub, net) = start(Arc::clone(&log), config, None).await;
        // Two finished games and one under way.
        let mut finished = Vec::new();
        for _ in 0..2 {
            let mut red = net.connect().await.unwrap();
            let mut yellow = net.connect().await.unwrap();
            let g = red.create("connect4", Value::Null).await.unwrap();
            yellow.join(g.join.as_ref().unwrap()).await.unwrap();
            for column in [0, 1, 0, 1, 0, 1, 0] {
                let player = if column == 0 { &mut red } else { &mut yellow };
                player
                    .command(g.game, json!({"column": column}))
                    .await
                    .unwrap();
            }
            finished.push(g);
        }
        let mut host = net.connect().await.unwrap();
        let live = host.create("tally", Value::Null).await.unwrap();
        // Someone replays the second one and stays.
        let mut fan = net.connect().await.unwrap();
        fan.watch(finished[1].watch.as_ref().unwrap(), None)
            .await
            .unwrap();

        // A month and a day later (the hub looks every hour).
        tokio::time::sleep(Duration::from_secs(31 * 86_400)).await;
        assert_eq!(
            records(&*log, finished[0].game.0).await,
            Vec::<Value>::new(),
            "the first is gone"
        );
        let mut late = net.connect().await.unwrap();
        let refused = late
            .watch(finished[0].watch.as_ref().unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotFound), "{refused}");
        assert!(
            !records(&*log, finished[1].game.0).await.is_empty(),
            "the one being replayed is kept"
        );
        assert!(
            !records(&*log, live.game.0).await.is_empty(),
            "a live game is never removed"
        );

        // Its spectator leaves; once it is out of memory it goes too.
        fan.leave(finished[1].game).await.unwrap();
        tokio::time::sleep(Duration::from_secs(61)).await;
        hub.prune_finished().await.unwrap();
        assert_eq!(
            records(&*log, finished[1].game.0).await,
            Vec::<Value>::new()
        );
        let refused = late.join(&finished[1].token).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotFound), "{refused}");
        hub.shutdown().await.unwrap();
    });
}
