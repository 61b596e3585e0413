//! Hidden information over real sockets, in both formats: a High Card player's hand and the
//! card laid face down reach their owner alone; the seed reaches nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use serde_json::{json, Value};
use umpire_engine::{Seat, Viewer};
use umpire_games::highcard;
use umpire_ws::client::Format;

use crate::common::{serve, within, Options};
use umpire_engine::Seq;

/// How many of `events` showed `viewer` what was not theirs to see.
fn leaks(viewer: Viewer, events: &[Value]) -> usize {
    let shown = |env: &Value| serde_json::from_value(env.clone()).unwrap();
    events
        .iter()
        .filter(|env| highcard::shows_hidden(&shown(env), viewer))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_json_and_messagepack_a_hand_reaches_its_owner_alone() {
    let server = serve(Options::default()).await;
    let mut ada = server.client(Format::Json).await;
    let mut bob = server.client(Format::MsgPack).await;
    let mut fan = server.client(Format::MsgPack).await;
    let g = ada.create("highcard", json!({"hand": 2})).await.unwrap();
    bob.join(g.join.as_ref().unwrap()).await.unwrap();
    fan.watch(g.watch.as_ref().unwrap(), Some(Seq(1)))
        .await
        .unwrap();
    let dealt = ada.command(g.game, json!("deal")).await.unwrap();
    let until = |head: u64| move |env: &Value| env["seq"].as_u64() >= Some(head);
    let mine = within(bob.events_until(g.game, until(dealt.0)))
        .await
        .unwrap();
    let hand = mine
        .iter()
        .find_map(|e| {
            let dealt = &e["body"]["game"]["dealt"];
            (dealt["seat"] == json!(1)).then(|| dealt["hand"].clone())
        })
        .unwrap();
    assert_eq!(hand.as_array().unwrap().len(), 2, "bob sees his own hand");
    let head = bob
        .command(g.game, json!({ "play": hand[0] }))
        .await
        .unwrap();
    let mut seen = vec![mine];
    seen[0].extend(
        within(bob.events_until(g.game, until(head.0)))
            .await
            .unwrap(),
    );
    for client in [&mut ada, &mut fan] {
        seen.push(
            within(client.events_until(g.game, until(head.0)))
                .await
                .unwrap(),
        );
    }
    let viewers = [
        Viewer::Seat(Seat(1)),
        Viewer::Seat(Seat(0)),
        Viewer::Spectator,
    ];
    for (viewer, events) in viewers.into_iter().zip(&seen) {
        assert_eq!(events.len() as u64, head);
        assert_eq!(leaks(viewer, events), 0, "{viewer:?}: {events:?}");
    }
    // A late spectator catches up from the log in the other format: the same.
    let mut late = server.client(Format::Json).await;
    late.watch(g.watch.as_ref().unwrap(), Some(Seq(1)))
        .await
        .unwrap();
    let caught_up = within(late.events_until(g.game, until(head.0)))
        .await
        .unwrap();
    assert_eq!(leaks(Viewer::Spectator, &caught_up), 0);
    assert_eq!(caught_up, seen[2]);
    server.stop().await;
}
