//! What an anonymous client leaves behind is bounded: a session in nothing but its own
//! channel is not kept and its channel goes with it; one in channels only is kept for the
//! shorter time; kept sessions and channel streams have server-wide caps.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{paused_runtime, start, within};
use serde_json::{json, Value};
use umpire_engine::protocol::ErrorCode;
use umpire_hub::{HubConfig, Limits};
use umpire_mem::ClientError;
use umpire_store::MemLog;

/// Resuming for an hour after a game, a minute after channels only.
fn config() -> HubConfig {
    HubConfig {
        resume_for: Duration::from_secs(3600),
        resume_channels_for: Duration::from_secs(60),
        ..HubConfig::default()
    }
}

/// Longer than a housekeeping pass takes to come (a quarter of a minute, here) plus the
/// age a session channel must reach before it may go.
const PASS: Duration = Duration::from_secs(30);

fn refused_with(result: Result<impl std::fmt::Debug, ClientError>, code: ErrorCode) {
    match result {
        Err(ClientError::Server { code: c, .. }) if c == code => {}
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

#[test]
fn a_session_in_nothing_but_its_own_channel_leaves_nothing_behind() {
    paused_runtime().block_on(async {
        let log = Arc::new(MemLog::new());
        let (hub, net) = start(log.clone(), config(), None).await;
        let mut gone = Vec::new();
        for _ in 0..50 {
            let mut client = net.connect().await.unwrap();
            let (_, stream) = client.subscribe("session", None).await.unwrap();
            gone.push(stream);
        }
        // One stays connected: its channel must stay, and keep working.
        let mut stays = net.connect().await.unwrap();
        let (own, kept) = stays.subscribe("session", None).await.unwrap();
        assert_eq!(hub.metrics().channels.get(), 51);
        tokio::time::sleep(PASS).await;
        assert!(log.sessions().unwrap().is_empty(), "none of them was kept");
        for stream in &gone {
            assert_eq!(log.meta(stream.0).unwrap(), None, "channel {stream} stayed");
        }
        assert_eq!(hub.metrics().channels.get(), 1);
        assert!(log.meta(kept.0).unwrap().is_some());
        hub.publish(&own, json!("still here")).await.unwrap();
        let env = within(stays.next_event(kept)).await.unwrap();
        assert_eq!(env["body"]["notice"]["data"], json!("still here"));
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_session_in_channels_only_is_kept_for_the_shorter_time_and_its_channel_with_it() {
    paused_runtime().block_on(async {
        let log = Arc::new(MemLog::new());
        let (hub, net) = start(log.clone(), config(), None).await;
        let mut client = net.connect().await.unwrap();
        let (_, broadcast) = client.subscribe("broadcast", None).await.unwrap();
        let (own, session) = client.subscribe("session", None).await.unwrap();
        hub.publish(&own, json!("for you")).await.unwrap();
        within(client.next_event(session)).await.unwrap();
        drop(client);
        tokio::time::sleep(PASS).await;
        assert_eq!(log.sessions().unwrap().len(), 1, "kept for a minute");
        assert!(log.meta(session.0).unwrap().is_some(), "its channel too");
        assert_eq!(hub.metrics().kept_sessions.get(), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(log.sessions().unwrap().is_empty(), "expired after a minute");
        assert_eq!(log.meta(session.0).unwrap(), None, "and its channel went");
        assert!(
            log.meta(broadcast.0).unwrap().is_some(),
            "broadcast is everyone's"
        );
        assert_eq!(hub.metrics().kept_sessions.get(), 0);
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_session_in_a_game_is_kept_for_the_longer_time() {
    paused_runtime().block_on(async {
        let log = Arc::new(MemLog::new());
        let (hub, net) = start(log.clone(), config(), None).await;
        let mut client = net.connect().await.unwrap();
        client.create("tally", Value::Null).await.unwrap();
        let (_, session) = client.subscribe("session", None).await.unwrap();
        drop(client);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(
            log.sessions().unwrap().len(),
            1,
            "kept past the channels' minute"
        );
        assert!(log.meta(session.0).unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(log.sessions().unwrap().is_empty(), "expired after the hour");
        assert_eq!(log.meta(session.0).unwrap(), None);
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn kept_sessions_and_channel_streams_are_capped_with_limit_reached() {
    paused_runtime().block_on(async {
        let config = HubConfig {
            limits: Limits {
                max_kept_sessions: 2,
                max_channels: 3,
                ..Limits::default()
            },
            ..config()
        };
        let log = Arc::new(MemLog::new());
        let (hub, net) = start(log.clone(), config, None).await;
        for _ in 0..2 {
            let mut player = net.connect().await.unwrap();
            player.create("tally", Value::Null).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.sessions().unwrap().len(), 2);
        // Two kept (their connections went): a third may not enter a game.
        let mut third = net.connect().await.unwrap();
        refused_with(
            third.create("tally", Value::Null).await,
            ErrorCode::LimitReached,
        );
        // Channels are still served (a session in channels only is not kept past the cap).
        let mut fourth = net.connect().await.unwrap();
        fourth.subscribe("broadcast", None).await.unwrap();
        // Channels: broadcast is one; two sessions' own make three; a fourth is refused.
        third.subscribe("session", None).await.unwrap();
        fourth.subscribe("session", None).await.unwrap();
        let mut fifth = net.connect().await.unwrap();
        refused_with(
            fifth.subscribe("session", None).await,
            ErrorCode::LimitReached,
        );
        drop(fourth);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.sessions().unwrap().len(), 2, "the cap held");
        assert_eq!(hub.metrics().channels.get(), 3);
        hub.shutdown().await.unwrap();
    });
}
