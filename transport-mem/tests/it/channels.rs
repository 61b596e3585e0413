//! Channels (seed 002): broadcast, user, group and session notices, with a bounded history
//! that late subscribers and returning users read, and that resume carries on.

use std::sync::Arc;

use crate::common::{paused_runtime, signed_in, start, within, Names};
use serde_json::{json, Value};
use umpire_engine::protocol::{ErrorCode, ServerMsg};
use umpire_engine::Seq;
use umpire_games::Tally;
use umpire_hub::{GroupPolicy, Hub, HubConfig};
use umpire_mem::MemConnector;
use umpire_store::MemLog;

fn data(env: &Value) -> Value {
    env["body"]["notice"]["data"].clone()
}

/// Signed-in users may join the groups their name starts with.
#[derive(Debug)]
struct Initials;

impl GroupPolicy for Initials {
    fn may_subscribe(&self, user: Option<&str>, group: &str) -> bool {
        user.is_some_and(|u| u.starts_with(group))
    }
}

async fn hub(config: HubConfig) -> (Hub, MemConnector) {
    let hub = Hub::builder(Arc::new(MemLog::new()))
        .config(config)
        .register(Tally)
        .authenticator(Arc::new(Names))
        .groups(Arc::new(Initials))
        .start()
        .await
        .unwrap();
    let net = umpire_mem::connector(&hub);
    (hub, net)
}

#[test]
fn a_broadcast_reaches_every_subscriber_and_late_ones_read_its_history() {
    paused_runtime().block_on(async {
        let (hub, net) = hub(HubConfig::default()).await;
        let (mut a, mut b) = (net.connect().await.unwrap(), net.connect().await.unwrap());
        let (name, stream) = a.subscribe("broadcast", None).await.unwrap();
        assert_eq!(name, "broadcast");
        assert_eq!(b.subscribe("broadcast", None).await.unwrap().1, stream);
        let seq = hub
            .publish("broadcast", json!({"text": "maintenance at noon"}))
            .await
            .unwrap();
        assert_eq!(seq, 1);
        for client in [&mut a, &mut b] {
            let env = within(client.next_event(stream)).await.unwrap();
            assert_eq!(data(&env), json!({"text": "maintenance at noon"}));
            assert_eq!(env["body"]["notice"]["channel"], "broadcast");
        }
        hub.publish("broadcast", json!("second")).await.unwrap();
        let mut late = net.connect().await.unwrap();
        late.subscribe("broadcast", None).await.unwrap();
        let past = within(late.events(stream, 2)).await.unwrap();
        assert_eq!(
            past.iter().map(data).collect::<Vec<_>>(),
            vec![json!({"text": "maintenance at noon"}), json!("second")]
        );
        // `from` skips what was seen.
        let mut resumed = net.connect().await.unwrap();
        resumed.subscribe("broadcast", Some(Seq(2))).await.unwrap();
        assert_eq!(
            data(&within(resumed.next_event(stream)).await.unwrap()),
            json!("second")
        );
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_notice_to_an_offline_user_arrives_when_they_return_and_is_theirs_alone() {
    paused_runtime().block_on(async {
        let (hub, net) = hub(HubConfig::default()).await;
        hub.publish("user:ada", json!({"built": "mine"}))
            .await
            .unwrap();
        let mut guest = net.connect().await.unwrap();
        let refused = guest.subscribe("user:ada", None).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
        let mut bob = signed_in(&net, "bob").await;
        let refused = bob.subscribe("user:ada", None).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");

        // Ada comes back on two connections: both get what was sent while she was away.
        let mut ada = signed_in(&net, "ada").await;
        let mut ada2 = signed_in(&net, "ada").await;
        for c in [&mut ada, &mut ada2] {
            let (_, stream) = c.subscribe("user:ada", None).await.unwrap();
            assert_eq!(
                data(&within(c.next_event(stream)).await.unwrap()),
                json!({"built": "mine"})
            );
        }
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn a_channel_keeps_only_its_last_notices() {
    paused_runtime().block_on(async {
        let config = HubConfig {
            channel_history: 3,
            ..HubConfig::default()
        };
        let (hub, net) = hub(config).await;
        for n in 1..=5 {
            hub.publish("broadcast", json!(n)).await.unwrap();
        }
        let mut late = net.connect().await.unwrap();
        let (_, stream) = late.subscribe("broadcast", None).await.unwrap();
        let kept = within(late.events(stream, 3)).await.unwrap();
        assert_eq!(
            kept.iter().map(data).collect::<Vec<_>>(),
            vec![json!(3), json!(4), json!(5)]
        );
        assert_eq!(kept[0]["seq"], json!(3));
        hub.publish("broadcast", json!(6)).await.unwrap();
        assert_eq!(
            data(&within(late.next_event(stream)).await.unwrap()),
            json!(6)
        );
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn groups_follow_the_servers_policy_and_session_channels_their_session() {
    paused_runtime().block_on(async {
        let (hub, net) = hub(HubConfig::default()).await;
        let mut ada = signed_in(&net, "ada").await;
        let (_, team) = ada.subscribe("group:a", None).await.unwrap();
        let refused = ada.subscribe("group:b", None).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
        let bad = ada.subscribe("lobby", None).await.unwrap_err();
        assert_eq!(bad.code(), Some(ErrorCode::BadMessage), "{bad}");
        hub.publish("group:a", json!("team meeting")).await.unwrap();
        assert_eq!(
            data(&within(ada.next_event(team)).await.unwrap()),
            json!("team meeting")
        );

        let (mine, stream) = ada.subscribe("session", None).await.unwrap();
        assert!(mine.starts_with("session:"), "{mine}");
        hub.publish(&mine, json!("for this tab")).await.unwrap();
        assert_eq!(
            data(&within(ada.next_event(stream)).await.unwrap()),
            json!("for this tab")
        );
        let mut other = net.connect().await.unwrap();
        let refused = other.subscribe(&mine, None).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
        hub.shutdown().await.unwrap();
    });
}

#[test]
fn resume_carries_channel_subscriptions_on_with_what_was_missed() {
    let log = Arc::new(MemLog::new());
    paused_runtime().block_on(async {
        let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
        let mut fan = net.connect().await.unwrap();
        let (_, stream) = fan.subscribe("broadcast", None).await.unwrap();
        hub.publish("broadcast", json!("one")).await.unwrap();
        within(fan.next_event(stream)).await.unwrap();
        let token = fan.session().unwrap().to_owned();
        let seen = fan.seen().clone();
        drop(fan);
        hub.publish("broadcast", json!("two")).await.unwrap();
        hub.shutdown().await.unwrap();

        let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
        hub.publish("broadcast", json!("three")).await.unwrap();
        let mut back = net.connect().await.unwrap();
        let msg = umpire_engine::protocol::ClientMsg::Resume {
            session: token,
            seen: seen.iter().map(|(g, s)| (g.to_string(), *s)).collect(),
            r#ref: None,
        };
        let resumed = back.request(msg).await.unwrap();
        let ServerMsg::Resumed { games, .. } = resumed else {
            panic!("{resumed:?}")
        };
        assert_eq!(games[0].channel.as_deref(), Some("broadcast"));
        let missed = within(back.events(stream, 2)).await.unwrap();
        assert_eq!(
            missed.iter().map(data).collect::<Vec<_>>(),
            vec![json!("two"), json!("three")]
        );
        hub.shutdown().await.unwrap();
    });
}
