//! The session guarantees under random schedules: players and spectators send commands (each
//! with a client id, some retried), drop their connections, come back with `resume`, read
//! slowly or not at all, while the hub restarts. Afterwards every client's events equal the
//! log (no gap, no repeat, same order), and every acknowledged `cid` was applied exactly once,
//! at the seq its acknowledgement named.

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::start;
use proptest::prelude::*;
use serde_json::{json, Value};
use umpire_hub::{Durability, Hub, HubConfig};
use umpire_mem::{ClientError, MemClient, MemConnector};
use umpire_store::MemLog;

/// Clients 0..PLAYERS play; the rest watch, with a one-frame buffer (slow readers).
const PLAYERS: usize = 3;
const CLIENTS: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    /// Client `c` adds 1 with a fresh cid.
    Add(usize),
    /// Client `c` sends its last cid again.
    Retry(usize),
    /// Client `c`'s connection drops.
    Drop(usize),
    /// Client `c` reconnects and resumes.
    Resume(usize),
    /// Client `c` reads up to `n` events.
    Read(usize, usize),
    /// The hub restarts on the same log; every connection drops.
    Restart,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let c = 0..CLIENTS;
    let op = prop_oneof![
        6 => c.clone().prop_map(Op::Add),
        1 => c.clone().prop_map(Op::Retry),
        2 => c.clone().prop_map(Op::Drop),
        2 => c.clone().prop_map(Op::Resume),
        3 => (c, 1usize..20).prop_map(|(c, n)| Op::Read(c, n)),
        1 => Just(Op::Restart),
    ];
    proptest::collection::vec(op, 1..40)
}

struct Player {
    client: MemClient,
    connected: bool,
    /// Every event this client consumed, in order, across its connections.
    observed: Vec<Value>,
    /// The cids it sent, in order.
    cids: Vec<String>,
}

/// Carry `p` over to a new connection and resume its session.
async fn resume(p: &mut Player, net: &MemConnector) -> Result<(), TestCaseError> {
    let wire = net.connect().await.unwrap().into_wire();
    drop(p.client.replace_wire(wire));
    match tokio::time::timeout(std::time::Duration::from_secs(60), p.client.resume(None)).await {
        Ok(Ok(_)) => {
            p.connected = true;
            Ok(())
        }
        other => Err(TestCaseError::fail(format!("resume failed: {other:?}"))),
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let log = Arc::new(MemLog::new());
        let config = HubConfig {
            durability: Durability::None,
            queue_len: 2,
            ..HubConfig::default()
        };
        let (mut hub, mut net): (Hub, MemConnector) =
            start(log.clone(), config.clone(), None).await;
        let mut host = net.connect().await.unwrap();
        let game = host.create("tally", json!({"seats": 8})).await.unwrap();
        let id = game.game;
        let mut clients = vec![Player {
            client: host,
            connected: true,
            observed: Vec::new(),
            cids: Vec::new(),
        }];
        for c in 1..CLIENTS {
            let client = if c < PLAYERS {
                let mut client = net.connect().await.unwrap();
                client.join(game.join.as_deref().unwrap()).await.unwrap();
                client
            } else {
                let mut client = net.connect_with_queue(1).await.unwrap();
                client
                    .watch(game.watch.as_deref().unwrap(), None)
                    .await
                    .unwrap();
                client
            };
            clients.push(Player {
                client,
                connected: true,
                observed: Vec::new(),
                cids: Vec::new(),
            });
        }
        // cid -> the seq its acknowledgement named.
        let mut acked: HashMap<String, u64> = HashMap::new();
        for op in ops {
            match *op {
                Op::Add(c) | Op::Retry(c) if c < PLAYERS => {
                    let p = &mut clients[c];
                    if !p.connected {
                        resume(p, &net).await?;
                    }
                    let cid = match op {
                        Op::Retry(_) if !p.cids.is_empty() => p.cids[p.cids.len() - 1].clone(),
                        _ => {
                            let cid = format!("c{c}-{}", p.cids.len());
                            p.cids.push(cid.clone());
                            cid
                        }
                    };
                    let sent = p
                        .client
                        .command_with_cid(id, json!({"add": 1}), Some(cid.clone()));
                    match tokio::time::timeout(std::time::Duration::from_secs(60), sent).await {
                        Ok(Ok(seq)) => {
                            if let Some(first) = acked.insert(cid.clone(), seq.0) {
                                prop_assert_eq!(
                                    first,
                                    seq,
                                    "a retry of {} answered differently",
                                    cid
                                );
                            }
                        }
                        Ok(Err(ClientError::Closed)) => p.connected = false,
                        other => return Err(TestCaseError::fail(format!("{cid}: {other:?}"))),
                    }
                }
                Op::Add(_) | Op::Retry(_) => {}
                Op::Drop(c) => {
                    let p = &mut clients[c];
                    let dead = net.connect().await.unwrap().into_wire();
                    drop(p.client.replace_wire(dead));
                    // The spare connection stands in for a dead one: it is never used until
                    // the client resumes on a fresh one.
                    p.connected = false;
                }
                Op::Resume(c) => resume(&mut clients[c], &net).await?,
                Op::Read(c, n) => {
                    let p = &mut clients[c];
                    for _ in 0..n {
                        // Only what has already arrived: a short wait, then stop.
                        let next = p.client.next_event(id);
                        match tokio::time::timeout(std::time::Duration::from_millis(5), next).await
                        {
                            Ok(Ok(env)) => p.observed.push(env),
                            Ok(Err(_)) => {
                                p.connected = false;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Op::Restart => {
                    hub.shutdown().await.unwrap();
                    (hub, net) = start(log.clone(), config.clone(), None).await;
                    for p in &mut clients {
                        p.connected = false;
                    }
                }
            }
        }
        // Everyone comes back; one more acknowledged command puts every turn before it in
        // the log (the resumes' presence events included).
        for p in &mut clients {
            if !p.connected {
                resume(p, &net).await?;
            }
        }
        let last = clients[0]
            .client
            .command_with_cid(id, json!({"add": 1}), Some("last".into()))
            .await;
        prop_assert!(last.is_ok(), "{:?}", last);
        let records = log.read(id.0, 1, usize::MAX).unwrap();
        let expected: Vec<Value> = records
            .iter()
            .map(|(_, r)| umpire_engine::protocol::as_shown(rmp_serde::from_slice(r).unwrap()))
            .collect();
        for (c, p) in clients.iter_mut().enumerate() {
            let rest = expected.len().saturating_sub(p.observed.len());
            let more = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                p.client.events(id, rest),
            )
            .await;
            let Ok(Ok(more)) = more else {
                return Err(TestCaseError::fail(format!(
                    "client {c}: the rest did not come: {more:?}"
                )));
            };
            p.observed.extend(more);
            prop_assert_eq!(
                &p.observed,
                &expected,
                "client {} saw something else than the log",
                c
            );
        }
        // Every acknowledged cid is in the log once, at the seq it was acknowledged with.
        let mut applied: HashMap<String, Vec<u64>> = HashMap::new();
        for env in &expected {
            if let Some(cid) = env["cid"].as_str() {
                applied
                    .entry(cid.to_owned())
                    .or_default()
                    .push(env["seq"].as_u64().unwrap());
            }
        }
        for (cid, seqs) in &applied {
            prop_assert_eq!(seqs.len(), 1, "{} applied {} times", cid, seqs.len());
        }
        for (cid, seq) in &acked {
            prop_assert_eq!(applied.get(cid), Some(&vec![*seq]), "acknowledged {}", cid);
        }
        hub.shutdown().await.unwrap();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn every_client_sees_the_log_and_every_acked_cid_is_applied_once(ops in ops()) {
        run(&ops)?;
    }
}
