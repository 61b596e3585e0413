//! Identity: a seat belongs to who took it; users and guests never share a name; one
//! identity per connection; who may watch with which key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use serde_json::{json, Value};
use umpire_engine::protocol::{ErrorCode, ServerMsg};
use umpire_hub::HubConfig;
use umpire_store::MemLog;

use crate::common::{hello, signed_in, start, with_auth, within};

fn tally() -> Value {
    json!({"seats": 2})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_seat_token_is_no_use_to_another_user() {
    let (hub, net) = with_auth(HubConfig::default()).await;
    let mut ada = signed_in(&net, "ada").await;
    let game = ada.create("tally", tally()).await.unwrap();

    // Bob got hold of Ada's seat token: it does not seat him, and he cannot play as her.
    let mut bob = signed_in(&net, "bob").await;
    let refused = bob.join(&game.token).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused:?}");
    let refused = bob.command(game.game, json!({"add": 1})).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotFound), "{refused:?}");

    // Ada, on a new connection, takes her seat back with it, while the old one still holds it.
    let mut again = signed_in(&net, "ada").await;
    let back = again.join(&game.token).await.unwrap();
    assert_eq!(back.seat, game.seat);
    again.command(game.game, json!({"add": 2})).await.unwrap();
    let state = hub.inspect(game.game).await.unwrap().state;
    assert_eq!(state["total"], json!(2), "only Ada's add counted");
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_seat_token_is_all_a_guest_has_and_it_is_enough() {
    let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
    let mut first = net.connect().await.unwrap();
    let game = first.create("tally", tally()).await.unwrap();
    drop(first);
    // The guest reconnects: a new connection, a new guest name, the same seat.
    let mut back = net.connect().await.unwrap();
    let seat = back.join(&game.token).await.unwrap();
    assert_eq!(seat.seat, game.seat);
    back.command(game.game, json!({"add": 1})).await.unwrap();
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_named_like_a_guest_does_not_get_the_guests_seat() {
    let (hub, net) = with_auth(HubConfig::default()).await;
    let mut guest = net.connect().await.unwrap();
    let game = guest.create("tally", tally()).await.unwrap();
    let seated = within(guest.events(game.game, 2)).await.unwrap();
    let name = seated[1]["body"]["seated"]["player"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("guest-"), "{name}");

    // A token whose user id is the guest's name, used with the join key: a seat of its own.
    let mut impostor = signed_in(&net, &name).await;
    let joined = impostor.join(game.join.as_ref().unwrap()).await.unwrap();
    assert_ne!(joined.seat, game.seat);
    let seats = hub.inspect(game.game).await.unwrap().seats;
    assert_eq!(seats[0].as_deref(), Some(name.as_str()));
    assert_eq!(seats[1], Some(format!("user:{name}")));
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_has_one_identity_taken_before_it_plays() {
    let (hub, net) = with_auth(HubConfig::default()).await;
    let mut ada = signed_in(&net, "ada").await;
    let second = hello(&mut ada, "bob").await;
    assert!(
        matches!(
            second,
            ServerMsg::Error {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{second:?}"
    );
    let game = ada.create("tally", tally()).await.unwrap();
    let seated = within(ada.events(game.game, 2)).await.unwrap();
    assert_eq!(seated[1]["body"]["seated"]["player"], "user:ada");

    // A guest that has played cannot become someone else on the same connection.
    let mut guest = net.connect().await.unwrap();
    guest.create("tally", tally()).await.unwrap();
    let late = hello(&mut guest, "carol").await;
    assert!(
        matches!(
            late,
            ServerMsg::Error {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{late:?}"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_key_the_join_key_and_a_seat_token_each_let_their_holder_watch() {
    let (hub, net) = start(Arc::new(MemLog::new()), HubConfig::default(), None).await;
    let mut owner = net.connect().await.unwrap();
    let game = owner.create("tally", tally()).await.unwrap();
    owner.command(game.game, json!({"add": 5})).await.unwrap();
    let keys = [
        game.watch.clone().unwrap(),
        game.join.clone().unwrap(),
        game.token.clone(),
    ];
    for key in keys {
        let mut watcher = net.connect().await.unwrap();
        assert_eq!(watcher.watch(&key, None).await.unwrap(), game.game);
        // Created, seated, the owner online, the add.
        let events = within(watcher.events(game.game, 4)).await.unwrap();
        assert_eq!(events[3]["body"]["game"]["total"], json!(5));
        // Watching seats no one and takes no command.
        let refused = watcher
            .command(game.game, json!({"add": 1}))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    }
    let mut stranger = net.connect().await.unwrap();
    let refused = stranger.watch("no-such-key", None).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotFound));
    // A watch key seats no one.
    let refused = stranger
        .join(game.watch.as_ref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    hub.shutdown().await.unwrap();
}

/// A player who takes their seat back with its token gets the game's join and watch keys
/// again (a reloaded page can share them), also from a hub restarted on the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_a_seat_back_gives_the_games_keys_again() {
    let log = Arc::new(MemLog::new());
    let (hub, net) = start(log.clone(), HubConfig::default(), None).await;
    let mut first = net.connect().await.unwrap();
    let game = first.create("tally", tally()).await.unwrap();
    let mut back = net.connect().await.unwrap();
    let again = back.join(&game.token).await.unwrap();
    assert_eq!((&again.join, &again.watch), (&game.join, &game.watch));
    // Someone joining with the join key learns no watch key from it.
    let mut guest = net.connect().await.unwrap();
    let joined = guest.join(game.join.as_ref().unwrap()).await.unwrap();
    assert_eq!((joined.join, joined.watch), (None, None));
    hub.shutdown().await.unwrap();

    let (hub, net) = start(log, HubConfig::default(), None).await;
    let mut after = net.connect().await.unwrap();
    let again = after.join(&game.token).await.unwrap();
    assert_eq!((&again.join, &again.watch), (&game.join, &game.watch));
    hub.shutdown().await.unwrap();
}
