//! Players finding each other: quick play (`play`), the open games (listed over the Rust API
//! and on the `lobby:<kind>` channel), a matchmaker, on one node and on three sharing a log.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use umpire_engine::protocol::{ClientMsg, ErrorCode, GameId, ServerMsg};
use umpire_games::{Connect4, Tally};
use umpire_hub::{Bus, FirstCome, Hub, HubConfig, MemBus};
use umpire_mem::{MemClient, MemConnector};
use umpire_store::MemLog;

use crate::common::{start, within};

async fn one_node() -> (Hub, MemConnector) {
    start(Arc::new(MemLog::new()), HubConfig::default(), None).await
}

/// The game a play seated the client in, and whether it created it.
async fn play(client: &mut MemClient, kind: &str) -> (GameId, bool) {
    let game = within(client.play(kind, Value::Null, Value::Null))
        .await
        .unwrap();
    (game.game, game.join.is_some())
}

/// Every client plays connect4 at once; the clients (still connected) and their games.
async fn play_all(clients: Vec<MemClient>) -> (Vec<MemClient>, Vec<umpire_client::Game>) {
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in clients {
        tasks.spawn(async move {
            let game = within(c.play("connect4", Value::Null, Value::Null))
                .await
                .unwrap();
            (c, game)
        });
    }
    let mut out = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (c, game) = done.unwrap();
        out.0.push(c);
        out.1.push(game);
    }
    out
}

/// Wait until the open games of `kind` satisfy `ok`; the last listing.
async fn listed_until(
    hub: &Hub,
    kind: &str,
    ok: impl Fn(&[umpire_hub::OpenGame]) -> bool,
) -> Vec<umpire_hub::OpenGame> {
    within(async {
        loop {
            let games = hub.open_games(Some(kind)).await.unwrap();
            if ok(&games) {
                return games;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn two_players_asking_at_once_share_one_game() {
    let (hub, net) = one_node().await;
    let mut a = net.connect().await.unwrap();
    let mut b = net.connect().await.unwrap();
    let (x, y) = tokio::join!(play(&mut a, "connect4"), play(&mut b, "connect4"));
    assert_eq!(x.0, y.0, "one game");
    assert!(x.1 != y.1, "one created it, the other joined: {x:?} {y:?}");
    // Full: not listed; they play it.
    listed_until(&hub, "connect4", <[_]>::is_empty).await;
    let (first, second) = if x.1 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    within(first.command(x.0, json!({"column": 0})))
        .await
        .unwrap();
    within(second.command(x.0, json!({"column": 1})))
        .await
        .unwrap();
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn two_hundred_asking_at_once_make_one_hundred_full_games() {
    let (hub, net) = one_node().await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(net.connect().await.unwrap());
    }
    let (_clients, seated) = play_all(clients).await;
    let mut games: BTreeMap<GameId, Vec<u16>> = BTreeMap::new();
    for g in &seated {
        games.entry(g.game).or_default().push(g.seat.0);
    }
    assert_eq!(games.len(), 100, "100 games");
    for (game, mut seats) in games {
        seats.sort_unstable();
        assert_eq!(seats, vec![0, 1], "game {game}: two players, one per seat");
    }
    listed_until(&hub, "connect4", <[_]>::is_empty).await;
    // Each full game reported its players and left the lobby: it keeps nothing of them (well
    // before it would close games it never heard of, after a minute).
    tokio::time::timeout(Duration::from_secs(5), async {
        while hub.metrics().lobby_games.get() != 0 || hub.metrics().waiting_players.get() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the lobby forgets full games: {} games, {} waiting",
            hub.metrics().lobby_games.get(),
            hub.metrics().waiting_players.get()
        )
    });
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_player_who_disconnects_while_waiting_is_not_matched() {
    let (hub, net) = one_node().await;
    let mut a = net.connect().await.unwrap();
    let (waited, created) = play(&mut a, "connect4").await;
    assert!(created);
    let listed = listed_until(&hub, "connect4", |g| g.len() == 1).await;
    assert_eq!(listed[0].game, waited);
    assert_eq!(listed[0].taken, 1);
    drop(a);
    // Its seat given back, the game leaves the list; the next player gets a new game.
    listed_until(&hub, "connect4", <[_]>::is_empty).await;
    let mut b = net.connect().await.unwrap();
    let (game, created) = play(&mut b, "connect4").await;
    assert!(
        created && game != waited,
        "b must not be put with a player who left"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_private_game_is_never_listed_an_open_one_is() {
    let (hub, net) = one_node().await;
    let mut a = net.connect().await.unwrap();
    let private = within(a.create("connect4", Value::Null)).await.unwrap();
    let open = within(a.create_open("connect4", Value::Null))
        .await
        .unwrap();
    let listed = listed_until(&hub, "connect4", |g| !g.is_empty()).await;
    let ids: Vec<GameId> = listed.iter().map(|g| g.game).collect();
    assert_eq!(ids, vec![open.game], "only the open game");
    assert!(!ids.contains(&private.game));
    assert_eq!(listed[0].join, open.join.clone().unwrap());
    assert_eq!(listed[0].players.len(), 1);
    // Quick play finds the open game, never the private one.
    let mut b = net.connect().await.unwrap();
    let (game, created) = play(&mut b, "connect4").await;
    assert_eq!((game, created), (open.game, false));
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_listing_follows_seats_taken_and_games_finished() {
    let config = HubConfig {
        limits: umpire_hub::Limits {
            expire_idle_games: Some(Duration::from_secs(30)),
            ..umpire_hub::Limits::default()
        },
        ..HubConfig::default()
    };
    let (hub, net) = start(Arc::new(MemLog::new()), config, None).await;
    let mut watcher = net.connect().await.unwrap();
    let (_, lobby) = within(watcher.subscribe("lobby:tally", None))
        .await
        .unwrap();
    let seats = json!({"seats": 3});
    let mut players = Vec::new();
    for _ in 0..2 {
        let mut p = net.connect().await.unwrap();
        within(p.play("tally", seats.clone(), Value::Null))
            .await
            .unwrap();
        players.push(p);
    }
    let listed = listed_until(&hub, "tally", |g| g.first().is_some_and(|g| g.taken == 2)).await;
    assert_eq!((listed[0].seats, listed[0].config.clone()), (3, seats));
    // The live list heard it too: the listings on the channel end with two seats taken.
    let taken_two = |env: &Value| env["body"]["notice"]["data"]["games"][0]["taken"] == json!(2);
    within(watcher.events_until(lobby, taken_two))
        .await
        .unwrap();
    // Nobody plays: the game expires, and leaves the list.
    listed_until(&hub, "tally", <[_]>::is_empty).await;
    let empty = |env: &Value| env["body"]["notice"]["data"]["games"] == json!([]);
    within(watcher.events_until(lobby, empty)).await.unwrap();
    hub.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_bad_play_is_refused_clearly() {
    let (hub, net) = one_node().await;
    let mut a = net.connect().await.unwrap();
    let refused = |msg: ServerMsg| match msg {
        ServerMsg::Error { code, .. } => code,
        other => panic!("{other:?}"),
    };
    let unknown = ClientMsg::Play {
        kind: "chess".into(),
        config: Value::Null,
        props: Value::Null,
        r#ref: None,
    };
    assert_eq!(
        refused(within(a.request(unknown)).await.unwrap()),
        ErrorCode::NotFound
    );
    let bad = ClientMsg::Play {
        kind: "tally".into(),
        config: json!({"seats": 0}),
        props: Value::Null,
        r#ref: None,
    };
    assert_eq!(
        refused(within(a.request(bad)).await.unwrap()),
        ErrorCode::BadMessage
    );
    let big = ClientMsg::Play {
        kind: "connect4".into(),
        config: Value::Null,
        props: json!("x".repeat(5000)),
        r#ref: None,
    };
    assert_eq!(
        refused(within(a.request(big)).await.unwrap()),
        ErrorCode::BadMessage
    );
    hub.shutdown().await.unwrap();
}

/// Three hubs over one memory log, joined by one `MemBus`; one with a matchmaker for
/// connect4 if `matchmaker`.
async fn three_nodes(log: &Arc<MemLog>, matchmaker: bool) -> (MemBus, Vec<(Hub, MemConnector)>) {
    let bus = MemBus::new();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let node: Arc<dyn Bus> = bus.node(name, Duration::from_secs(2));
        let mut builder = Hub::builder(Arc::clone(log) as Arc<dyn umpire_store::Log>)
            .bus(node)
            .register(Connect4)
            .register(Tally);
        if matchmaker {
            builder = builder.matchmaker("connect4", Arc::new(FirstCome));
        }
        let hub = builder.start().await.unwrap();
        let net = umpire_mem::connector(&hub);
        nodes.push((hub, net));
    }
    (bus, nodes)
}

#[tokio::test(start_paused = true)]
async fn players_asking_on_three_nodes_at_once_are_paired_never_twice() {
    let log = Arc::new(MemLog::new());
    let (_bus, nodes) = three_nodes(&log, false).await;
    let mut clients = Vec::new();
    for i in 0..30 {
        clients.push(nodes[i % 3].1.connect().await.unwrap());
    }
    let (_clients, seated) = play_all(clients).await;
    let mut games: BTreeMap<GameId, HashSet<u16>> = BTreeMap::new();
    for g in &seated {
        assert!(
            games.entry(g.game).or_default().insert(g.seat.0),
            "a seat given twice"
        );
    }
    assert_eq!(games.len(), 15, "30 players, 15 full games: {games:?}");
    assert!(games.values().all(|s| s.len() == 2));
    for (hub, _) in &nodes {
        listed_until(hub, "connect4", <[_]>::is_empty).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_matchmaker_pairs_waiting_players_across_nodes_and_cancel_ends_a_wait() {
    let log = Arc::new(MemLog::new());
    let (_bus, nodes) = three_nodes(&log, true).await;
    let mut a = nodes[0].1.connect().await.unwrap();
    let mut b = nodes[1].1.connect().await.unwrap();
    let (x, y) = tokio::join!(play(&mut a, "connect4"), play(&mut b, "connect4"));
    assert_eq!(x.0, y.0, "paired in one game");
    assert!(x.1 != y.1);
    // A lone player waits; cancel answers the wait `cancelled`.
    let mut c = nodes[2].1.connect().await.unwrap();
    c.send(ClientMsg::Play {
        kind: "connect4".into(),
        config: Value::Null,
        props: Value::Null,
        r#ref: Some(json!("wait")),
    })
    .await
    .unwrap();
    let ok = within(c.request(ClientMsg::Cancel {
        kind: None,
        r#ref: None,
    }))
    .await
    .unwrap();
    assert!(matches!(ok, ServerMsg::Ok { .. }), "{ok:?}");
    let answer = within(c.next_reply()).await.unwrap();
    assert!(
        matches!(&answer, ServerMsg::Error { code: ErrorCode::Cancelled, r#ref: Some(r), .. } if *r == json!("wait")),
        "{answer:?}"
    );
    // A later pair is not put with the player who cancelled.
    let mut d = nodes[2].1.connect().await.unwrap();
    let mut e = nodes[0].1.connect().await.unwrap();
    let (p, q) = tokio::join!(play(&mut d, "connect4"), play(&mut e, "connect4"));
    assert_eq!(p.0, q.0);
    assert_ne!(p.0, x.0);
}

/// Groups of three, last to arrive first: the seats follow the group's order.
struct LastFirst;

impl umpire_hub::Matchmaker for LastFirst {
    fn matches(&self, waiting: &[umpire_hub::Waiting], _now: u64) -> Vec<Vec<u64>> {
        if waiting.len() < 3 {
            return Vec::new();
        }
        vec![waiting[..3].iter().rev().map(|w| w.ticket).collect()]
    }
}

#[tokio::test(start_paused = true)]
async fn a_matchmaker_decides_the_seats() {
    let hub = Hub::builder(Arc::new(MemLog::new()))
        .register(Tally)
        .matchmaker("tally", Arc::new(LastFirst))
        .start()
        .await
        .unwrap();
    let net = umpire_mem::connector(&hub);
    let config = json!({"seats": 3});
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..3u16 {
        let mut c = net.connect().await.unwrap();
        // Asked in order 0, 1, 2 (each request in the lobby before the next is sent).
        let msg = ClientMsg::Play {
            kind: "tally".into(),
            config: config.clone(),
            props: json!({"arrived": i}),
            r#ref: Some(json!(i)),
        };
        c.send(msg).await.unwrap();
        if i < 2 {
            waiting_for(&hub, usize::from(i) + 1).await;
        }
        tasks.spawn(async move {
            let answer = within(c.next_reply()).await.unwrap();
            (i, answer, c)
        });
    }
    let mut seats = BTreeMap::new();
    let mut games = HashSet::new();
    let mut clients = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, answer, c) = done.unwrap();
        let (game, seat) = match answer {
            ServerMsg::Created { game, seat, .. } | ServerMsg::Joined { game, seat, .. } => {
                (game, seat)
            }
            other => panic!("{other:?}"),
        };
        games.insert(game);
        seats.insert(i, seat.0);
        clients.push(c);
    }
    assert_eq!(games.len(), 1);
    assert_eq!(
        seats,
        BTreeMap::from([(0, 2), (1, 1), (2, 0)]),
        "last to arrive in seat 0"
    );
    hub.shutdown().await.unwrap();
}

/// Wait until `n` players wait in the hub's lobbies (the matchmaker has them).
async fn waiting_for(hub: &Hub, n: usize) {
    within(async {
        while hub.waiting_players() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
