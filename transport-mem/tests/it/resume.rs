//! Resume: a connection that comes back with its session token gets its identity, seats and
//! games back, and exactly the events it missed, also after a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{hello, paused_runtime, signed_in, start, with_auth, within};
use serde_json::{json, Value};
use umpire_engine::protocol::{ErrorCode, ServerMsg};
use umpire_hub::HubConfig;
use umpire_mem::{MemClient, MemConnector};
use umpire_store::MemLog;

fn seqs(envs: &[Value]) -> Vec<u64> {
    envs.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// `client` carries on over a new connection and resumes its session.
async fn come_back(client: &mut MemClient, net: &MemConnector) -> ServerMsg {
    let wire = net.connect().await.unwrap().into_wire();
    drop(client.replace_wire(wire));
    within(client.resume(None)).await.unwrap()
}

#[test]
fn a_player_who_comes_back_gets_exactly_what_was_missed_and_plays_on() {
    paused_runtime().block_on(async {
        let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
        let mut red = net.connect().await.unwrap();
        let game = red.create("connect4", Value::Null).await.unwrap();
        let mut yellow = net.connect().await.unwrap();
        yellow.join(game.join.as_deref().unwrap()).await.unwrap();
        red.command(game.game, json!({"column": 0})).await.unwrap();
        let before = within(yellow.events(game.game, 6)).await.unwrap();
        assert_eq!(seqs(&before), (1..=6).collect::<Vec<_>>());

        // Yellow's connection drops (red's next move is missed), then it resumes.
        let old = yellow.replace_wire(net.connect().await.unwrap().into_wire());
        drop(old);
        red.command(game.game, json!({"column": 1})).await.ok(); // not yellow's turn: refused
        let resumed = within(yellow.resume(None)).await.unwrap();
        let ServerMsg::Resumed { games, user, .. } = resumed else {
            panic!("{resumed:?}")
        };
        assert!(user.starts_with("guest-"), "the same guest again: {user}");
        assert_eq!(games.len(), 1);
        assert_eq!(games[0].seat.map(|s| s.0), Some(1));
        // Missed: yellow offline (7), then online again (8). Nothing twice.
        let missed = within(yellow.events(game.game, 2)).await.unwrap();
        assert_eq!(seqs(&missed), vec![7, 8]);
        assert_eq!(
            missed[0]["body"]["presence"],
            json!({"seat": 1, "online": false})
        );
        assert_eq!(
            missed[1]["body"]["presence"],
            json!({"seat": 1, "online": true})
        );
        // The seat is back: yellow plays, and the move is the next event, once.
        let seq = yellow
            .command(game.game, json!({"column": 1}))
            .await
            .unwrap();
        assert_eq!(seq, 9);
        assert_eq!(
            seqs(&within(yellow.events(game.game, 1)).await.unwrap()),
            vec![9]
        );
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_spectator_resumes_after_a_restart_from_where_it_was() {
    let log = Arc::new(MemLog::new());
    let (game, seat_token, mut fan_state) = paused_runtime().block_on(async {
        let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
        let mut ada = net.connect().await.unwrap();
        let game = ada.create("tally", json!({"seats": 2})).await.unwrap();
        let mut fan = net.connect().await.unwrap();
        fan.watch(game.watch.as_deref().unwrap(), None)
            .await
            .unwrap();
        for _ in 0..3 {
            ada.command(game.game, json!({"add": 1})).await.unwrap();
        }
        let seen = within(fan.events(game.game, 6)).await.unwrap();
        assert_eq!(seqs(&seen).last(), Some(&6));
        hub.shutdown().await.unwrap();
        (game.game, game.token, fan)
    });
    paused_runtime().block_on(async {
        let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
        // Ada is back first and adds while the spectator is still away.
        let mut ada = net.connect().await.unwrap();
        ada.join(&seat_token).await.unwrap();
        ada.command(game, json!({"add": 10})).await.unwrap();
        let resumed = come_back(&mut fan_state, &net).await;
        assert!(matches!(resumed, ServerMsg::Resumed { ref games, .. } if games.len() == 1));
        // Exactly what came after seq 6: Ada offline at the restart, online, the add.
        let missed = within(fan_state.events(game, 3)).await.unwrap();
        assert_eq!(seqs(&missed), vec![7, 8, 9]);
        assert_eq!(missed[2]["body"]["game"]["total"], json!(13));
        // And live ones after that.
        ada.command(game, json!({"add": 1})).await.unwrap();
        let live = within(fan_state.events(game, 1)).await.unwrap();
        assert_eq!(seqs(&live), vec![10]);
        assert_eq!(log.version(game.0).unwrap(), 10);
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_session_token_resumes_once_and_an_unknown_one_is_refused_clearly() {
    paused_runtime().block_on(async {
        let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
        let mut ada = net.connect().await.unwrap();
        ada.create("tally", json!({"seats": 2})).await.unwrap();
        let first = ada.session().unwrap().to_owned();
        come_back(&mut ada, &net).await;
        assert_ne!(
            ada.session().unwrap(),
            first,
            "a resumed session has a new token"
        );

        let mut thief = net.connect().await.unwrap();
        let used = thief.resume(Some(&first)).await.unwrap_err();
        assert_eq!(used.code(), Some(ErrorCode::NotFound), "{used}");
        assert!(used.to_string().contains("start over"), "{used}");
        let unknown = thief.resume(Some("no-such-session")).await.unwrap_err();
        assert_eq!(unknown.code(), Some(ErrorCode::NotFound));
        // The connection is fine afterwards: it can still start over.
        thief.create("tally", json!({"seats": 2})).await.unwrap();
        let late = thief
            .resume(Some(ada.session().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(
            late.code(),
            Some(ErrorCode::Forbidden),
            "resume comes first: {late}"
        );
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_connection_whose_session_is_resumed_elsewhere_is_closed() {
    paused_runtime().block_on(async {
        let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
        let mut tab = net.connect().await.unwrap();
        let game = tab.create("tally", json!({"seats": 2})).await.unwrap();
        // The same session resumed while the first connection is still up (its end not
        // noticed yet, or a copied tab): the first is closed, the second plays.
        let mut other = net.connect().await.unwrap();
        other.resume(tab.session()).await.unwrap();
        while within(tab.recv()).await.is_ok() {}
        let (code, reason) = tab.close_reason().cloned().unwrap();
        assert_eq!(code, 1008);
        assert!(reason.contains("resumed on another connection"), "{reason}");
        other.command(game.game, json!({"add": 1})).await.unwrap();
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_signed_in_users_session_is_theirs_alone() {
    paused_runtime().block_on(async {
        let (hub, net) = with_auth(HubConfig::default()).await;
        let mut ada = signed_in(&net, "ada").await;
        ada.create("tally", json!({"seats": 2})).await.unwrap();
        let token = ada.session().unwrap().to_owned();
        drop(ada);

        let mut anonymous = net.connect().await.unwrap();
        let refused = anonymous.resume(Some(&token)).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");
        let mut bob = signed_in(&net, "bob").await;
        let refused = bob.resume(Some(&token)).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
        // Refusals do not use the token up: Ada herself still can.
        let mut ada = net.connect().await.unwrap();
        hello(&mut ada, "ada").await;
        let resumed = ada.resume(Some(&token)).await.unwrap();
        assert!(matches!(resumed, ServerMsg::Resumed { ref user, .. } if user == "ada"));
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_session_can_be_resumed_only_for_a_while() {
    paused_runtime().block_on(async {
        let config = HubConfig {
            resume_for: Duration::from_secs(600),
            ..HubConfig::default()
        };
        let (hub, net) = start(Arc::new(MemLog::new()), config, None).await;
        let mut ada = net.connect().await.unwrap();
        ada.create("tally", json!({"seats": 2})).await.unwrap();
        let token = ada.session().unwrap().to_owned();
        drop(ada);
        tokio::time::sleep(Duration::from_secs(601)).await;
        let mut again = net.connect().await.unwrap();
        let refused = again.resume(Some(&token)).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotFound), "{refused}");
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_reader_too_slow_for_too_long_is_closed_and_resumes_without_a_gap() {
    paused_runtime().block_on(async {
        let config = HubConfig {
            queue_len: 2,
            max_behind: Duration::from_secs(1),
            ..HubConfig::default()
        };
        let (hub, net) = start(Arc::new(MemLog::new()), config, None).await;
        let mut player = net.connect().await.unwrap();
        let game = player.create("tally", json!({"seats": 2})).await.unwrap();
        let mut slow = net.connect_with_queue(1).await.unwrap();
        slow.watch(game.watch.as_deref().unwrap(), None)
            .await
            .unwrap();
        // The player is not slowed by a spectator that does not read.
        for _ in 0..500 {
            within(player.command(game.game, json!({"add": 1})))
                .await
                .unwrap();
        }
        // The spectator reads one event every 10 ms: far behind, for more than a second.
        let mut got = Vec::new();
        while let Ok(env) = slow.next_event(game.game).await {
            got.push(env);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (code, reason) = slow.close_reason().cloned().unwrap();
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("too far behind"), "{reason}");
        assert!(
            got.len() < 503,
            "closed before it caught up ({} events)",
            got.len()
        );

        // It resumes and gets the rest, each event once, in order.
        let resumed = come_back(&mut slow, &net).await;
        assert!(matches!(resumed, ServerMsg::Resumed { .. }), "{resumed:?}");
        let rest = 503 - got.len();
        got.extend(within(slow.events(game.game, rest)).await.unwrap());
        assert_eq!(seqs(&got), (1..=503).collect::<Vec<_>>());
        hub.shutdown().await.unwrap();
    });
}
