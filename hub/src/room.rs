//! The game task: one per live game. It owns the match and is the only writer of its stream.
//!
//! Each turn of the loop takes every message already waiting (up to `max_batch`), decides
//! them one after another against the evolving match, appends all resulting events in one
//! append, waits for one group commit, and only then publishes the events and answers the
//! senders. So an acknowledgement means durable, and nobody sees an event a crash could undo.
//!
//! If the log fails, the task stops ("fail-stop"): its in-memory match may be ahead of the
//! log, so it must not serve anyone again. The registry reloads the game from the log on its
//! next use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use umpire_engine::{Action, Actor, Body, Envelope, Game, Match, MatchError, Seq};
use umpire_store::{KeyEntry, Role, StreamStatus};

use crate::error::{HubError, Result};
use crate::fanout::Subscriber;
use crate::frames::Published;
use crate::handle::{Inspection, Joined, Reply, RoomHandle, RoomMsg};
use crate::hub::Shared;
use crate::keys::new_key;
use crate::session::Out;

/// How many messages may wait in a game's inbox before senders wait.
const INBOX: usize = 1024;

/// A game's task.
pub(crate) struct Room<G: Game> {
    game: Arc<G>,
    id: u64,
    m: Match<G>,
    shared: Arc<Shared>,
    inbox: mpsc::Receiver<RoomMsg>,
    subscribers: Vec<Subscriber>,
    /// Shared with every handle: the last durable, published seq.
    head: Arc<AtomicU64>,
    /// The version of the last snapshot written.
    snapshot_at: Seq,
}

/// The answers owed for one batch, sent once its events are durable.
enum Owed {
    Seq(Reply<Seq>, Result<Seq>),
    Joined(Reply<Joined>, Result<Joined>),
}

/// Everything one turn of the loop produced.
#[derive(Default)]
struct Batch {
    records: Vec<(Seq, Vec<u8>)>,
    keys: Vec<(String, KeyEntry)>,
    owed: Vec<Owed>,
    over: bool,
    /// An event failed to encode: the match is ahead of what can be logged.
    poisoned: Option<String>,
}

impl<G: Game> Room<G> {
    /// Start the task for `m`, whose every event up to `m.version()` is durable in the log.
    pub(crate) fn spawn(shared: &Arc<Shared>, game: Arc<G>, id: u64, m: Match<G>) -> RoomHandle {
        let (tx, inbox) = mpsc::channel(INBOX);
        let head = Arc::new(AtomicU64::new(m.version()));
        let room = Room {
            game,
            id,
            snapshot_at: m.version(),
            m,
            shared: Arc::clone(shared),
            inbox,
            subscribers: Vec::new(),
            head: Arc::clone(&head),
        };
        shared.tracker.spawn(room.run());
        RoomHandle::new(id, G::KIND, tx, head)
    }

    async fn run(mut self) {
        self.shared.metrics.live_games.inc();
        let max_batch = self.shared.config.max_batch.max(1);
        loop {
            let due = self
                .m
                .next_due()
                .map(|(at, _)| Duration::from_millis(at.saturating_sub(self.shared.clock.now())));
            let first = tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled() => break,
                msg = self.inbox.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => break,
                },
                () = sleep_opt(due) => None,
            };
            let mut batch = Batch::default();
            if let Some(msg) = first {
                self.take(msg, &mut batch);
            }
            while batch.owed.len() < max_batch {
                match self.inbox.try_recv() {
                    Ok(msg) => self.take(msg, &mut batch),
                    Err(_) => break,
                }
            }
            self.fire_due(&mut batch, max_batch);
            // Never raced against shutdown: a batch that started is appended and committed.
            if self.finish(batch).await.is_err() {
                self.shared.metrics.live_games.dec();
                return;
            }
        }
        // Shutting down: answer what is already queued, so commands in flight are not lost.
        self.inbox.close();
        let mut batch = Batch::default();
        while let Ok(msg) = self.inbox.try_recv() {
            self.take(msg, &mut batch);
        }
        let _ = self.finish(batch).await;
        self.shared.metrics.live_games.dec();
    }

    /// Decide one message into `batch`. Answers that do not depend on durability go out now.
    fn take(&mut self, msg: RoomMsg, batch: &mut Batch) {
        let now = self.shared.clock.now();
        match msg {
            RoomMsg::Submit {
                by,
                cmd,
                cid,
                reply,
            } => {
                let command = match serde_json::from_value::<G::Command>(cmd) {
                    Ok(command) => command,
                    Err(e) => {
                        let _ = reply.send(Err(HubError::BadCommand(e.to_string())));
                        return;
                    }
                };
                let result =
                    self.m
                        .execute(&self.game, by, Action::Play(command), now, cid.as_deref());
                let result = self.absorb(result, batch);
                // Owed, not sent: even a refusal may rest on events of this batch that are
                // not durable yet.
                batch.owed.push(Owed::Seq(reply, result));
            }
            RoomMsg::Join { player, reply } => {
                let action = Action::Join {
                    player: player.clone(),
                };
                let result = self.m.execute(&self.game, Actor::System, action, now, None);
                let result = self.absorb(result, batch).and_then(|_| {
                    let seat = self.m.seat_of(&player).ok_or(HubError::Full)?;
                    let token = new_key();
                    let entry = KeyEntry {
                        stream: self.id,
                        role: Role::Seat(seat.0),
                    };
                    batch.keys.push((token.clone(), entry));
                    Ok(Joined {
                        game: self.id,
                        kind: G::KIND.to_owned(),
                        seat,
                        token,
                    })
                });
                batch.owed.push(Owed::Joined(reply, result));
            }
            RoomMsg::Leave {
                seat,
                session,
                reply,
            } => {
                self.subscribers.retain(|s| s.session != session);
                let result =
                    self.m
                        .execute(&self.game, Actor::Seat(seat), Action::Leave, now, None);
                let result = self.absorb(result, batch);
                batch.owed.push(Owed::Seq(reply, result));
            }
            RoomMsg::Subscribe { sub, reply } => {
                // Registered before this batch publishes, and the head is the durable version
                // before it: the subscriber reads up to the head from the log and gets every
                // later event pushed. No gap, no duplicate.
                self.subscribers.push(sub);
                let _ = reply.send(Ok(self.head.load(Ordering::Acquire)));
            }
            RoomMsg::Unsubscribe { session } => {
                self.subscribers.retain(|s| s.session != session);
            }
            RoomMsg::Inspect { reply } => {
                let _ = reply.send(Ok(self.inspect()));
            }
        }
    }

    /// Fire every timer that is due, earliest first.
    fn fire_due(&mut self, batch: &mut Batch, max: usize) {
        let now = self.shared.clock.now();
        for _ in 0..max {
            let Some((at, timer)) = self.m.next_due() else {
                break;
            };
            if at > now {
                break;
            }
            let result = self
                .m
                .execute(&self.game, Actor::System, Action::Fire(timer), now, None);
            if let Err(e) = self.absorb(result, batch) {
                tracing::warn!(game = self.id, timer = timer.0, error = %e, "a due timer did not fire");
                break;
            }
        }
    }

    /// Queue what the match produced for logging; turn refusals into hub errors.
    fn absorb(
        &mut self,
        result: std::result::Result<Vec<Envelope<G>>, MatchError<G::Rejection>>,
        batch: &mut Batch,
    ) -> Result<Seq> {
        match result {
            Ok(envelopes) => {
                for env in &envelopes {
                    match rmp_serde::to_vec_named(env) {
                        Ok(bytes) => batch.records.push((env.seq, bytes)),
                        Err(e) => {
                            batch.poisoned = Some(format!("seq {} does not encode: {e}", env.seq))
                        }
                    }
                    batch.over |= matches!(env.body, Body::Over { .. });
                }
                Ok(self.m.version())
            }
            // The same client command again: answer as the first time, apply nothing.
            Err(MatchError::Duplicate { seq }) => Ok(seq),
            Err(MatchError::Rejected(r)) => Err(HubError::Rejected(r.to_string())),
            Err(MatchError::GameOver) => Err(HubError::GameOver),
            Err(MatchError::Full) => Err(HubError::Full),
            Err(MatchError::NotSeated) => Err(HubError::Forbidden("that seat is not taken".into())),
            Err(e @ (MatchError::Forbidden | MatchError::TimerNotPending(_))) => {
                Err(HubError::Forbidden(e.to_string()))
            }
        }
    }

    /// Append, commit, publish, answer. On a storage failure every sender is told and the
    /// task must stop.
    async fn finish(&mut self, batch: Batch) -> Result<(), ()> {
        let Batch {
            records,
            keys,
            owed,
            over,
            poisoned,
        } = batch;
        if records.is_empty() && keys.is_empty() && poisoned.is_none() {
            answer(owed, None);
            return Ok(());
        }
        let stored = match poisoned {
            Some(e) => Err(HubError::Store(e)),
            None => self.store(&records, &keys, over),
        };
        let durable = match stored {
            Ok(()) => self.shared.committer.commit().await,
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            tracing::error!(game = self.id, error = %e, "the game stops: its events could not be made durable");
            answer(owed, Some(&e));
            return Err(());
        }
        self.shared
            .metrics
            .events_appended
            .inc_by(records.len() as u64);
        self.head.store(self.m.version(), Ordering::Release);
        self.publish(&records);
        answer(owed, None);
        self.snapshot();
        Ok(())
    }

    fn store(
        &self,
        records: &[(Seq, Vec<u8>)],
        keys: &[(String, KeyEntry)],
        over: bool,
    ) -> Result<()> {
        let log = &self.shared.log;
        if let Some(&(first, _)) = records.first() {
            let bytes: Vec<Vec<u8>> = records.iter().map(|(_, b)| b.clone()).collect();
            if let Err(conflict) = log.append(self.id, first - 1, &bytes)? {
                return Err(HubError::Store(format!(
                    "another writer touched game {}: {conflict}",
                    self.id
                )));
            }
        }
        for (key, entry) in keys {
            log.put_key(key, *entry)?;
        }
        if over {
            log.set_status(self.id, StreamStatus::Over)?;
        }
        Ok(())
    }

    /// Queue each event for every subscriber. Never waits: a full queue marks the subscriber
    /// lagging and it catches up from the log.
    fn publish(&mut self, records: &[(Seq, Vec<u8>)]) {
        for (seq, bytes) in records {
            let frame = match Published::from_record(self.id, *seq, bytes) {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::error!(game = self.id, error = %e, "an appended event does not decode");
                    continue;
                }
            };
            let (id, metrics) = (self.id, &self.shared.metrics);
            self.subscribers.retain(
                |sub| match sub.tx.try_send(Out::Event(Arc::clone(&frame))) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics.subscribers_lagged.inc();
                        sub.lag.mark(id);
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            );
        }
    }

    /// Save the match every `snapshot_every` events. It becomes durable with a later flush;
    /// until then a restore uses the previous snapshot and a longer tail.
    fn snapshot(&mut self) {
        let every = self.shared.config.snapshot_every;
        if every == 0 || self.m.version() < self.snapshot_at + every {
            return;
        }
        match rmp_serde::to_vec_named(&self.m) {
            Ok(bytes) => match self
                .shared
                .log
                .save_snapshot(self.id, self.m.version(), &bytes)
            {
                Ok(()) => self.snapshot_at = self.m.version(),
                Err(e) => tracing::warn!(game = self.id, error = %e, "snapshot not saved"),
            },
            Err(e) => tracing::warn!(game = self.id, error = %e, "snapshot does not encode"),
        }
    }

    fn inspect(&self) -> Inspection {
        Inspection {
            kind: G::KIND.to_owned(),
            version: self.m.version(),
            state: serde_json::to_value(self.m.state()).unwrap_or_default(),
            whole: serde_json::to_value(&self.m).unwrap_or_default(),
            seats: self.m.seats().to_vec(),
            timers: self.m.timers().len(),
            outcome: self.m.outcome().cloned(),
        }
    }
}

fn answer(owed: Vec<Owed>, failure: Option<&HubError>) {
    let fail = |e: &HubError| HubError::Store(e.to_string());
    for o in owed {
        match o {
            Owed::Seq(reply, result) => {
                let _ = reply.send(failure.map_or(result, |e| Err(fail(e))));
            }
            Owed::Joined(reply, result) => {
                let _ = reply.send(failure.map_or(result, |e| Err(fail(e))));
            }
        }
    }
}

async fn sleep_opt(due: Option<Duration>) {
    match due {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
