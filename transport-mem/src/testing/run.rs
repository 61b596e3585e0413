//! Playing one random game on a hub of its own, and the checks made after every step.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use umpire_client::ClientError;
use umpire_engine::protocol::{ErrorCode, GameId};
use umpire_engine::{Action, Actor, Envelope, Game, Match, MatchError, Millis, Seat, Seq, Viewer};
use umpire_hub::{Bus, Clock, Durability, Hub, HubConfig, HubError, MemBus, TokioClock};
use umpire_store::{Log, MemLog};

use super::Check;
use crate::{MemClient, MemConnector};

/// What the kit's clock reads when a game starts (2023-11-14).
const START: Millis = 1_700_000_000_000;

/// How long (virtual time) the kit waits for an answer before calling the server stuck.
const PATIENCE: Duration = Duration::from_secs(3600);

/// One random game.
#[derive(Clone, Debug)]
pub(crate) struct Case<C> {
    pub(crate) steps: Vec<Step<C>>,
    /// The server snapshots a game after this many events.
    pub(crate) snapshot_every: u64,
}

/// One thing that happens in a game.
#[derive(Clone, Debug)]
pub(crate) enum Step<C> {
    /// The player in this seat sends a command.
    Play(u16, C),
    /// This many milliseconds pass: due timers fire.
    Wait(u64),
    /// A spectator comes, watches from the start and stays.
    Watch,
    /// The player in this seat loses their connection; they come back before their next
    /// command.
    Drop(u16),
    /// The server stops and starts again on the same log; everyone connected reconnects.
    Restart,
    /// The node serving the game dies (it lets go of nothing); another node on the same log
    /// takes the game over once the dead one's lease runs out, and everyone connected
    /// reconnects to it.
    NodeDies,
}

/// How long a node of the kit holds a game without renewing (virtual time).
const LEASE: Duration = Duration::from_secs(1);

/// The name of the kit's `n`th node.
fn node_name(n: usize) -> String {
    format!("node-{n}")
}

/// A rule of the kit broken: at which step (`None`: before the first), and how.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) step: Option<usize>,
    pub(crate) message: String,
    /// Found by comparing two plays, not within one.
    pub(crate) between_plays: bool,
}

/// Where the log and the clock stood when a step began its decision.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mark {
    pub(crate) version: Seq,
    pub(crate) now: Millis,
}

/// A game played: the log it left, where each step began, and the first failure.
#[derive(Debug, Default)]
pub(crate) struct Played {
    pub(crate) records: Vec<Vec<u8>>,
    pub(crate) marks: Vec<Mark>,
    pub(crate) failure: Option<Failure>,
}

impl<G: Game + Clone> Check<G> {
    /// Whether `case` keeps every rule, played twice.
    pub(crate) fn holds(&self, case: &Case<G::Command>) -> Result<(), Failure> {
        let (first, second) = self.twice(case);
        same(&first, &second)
    }

    /// `case` played twice, each on a fresh hub.
    pub(crate) fn twice(&self, case: &Case<G::Command>) -> (Played, Played) {
        (self.play(case), self.play(case))
    }

    /// Play `case` on a fresh in-memory hub in virtual time.
    fn play(&self, case: &Case<G::Command>) -> Played {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build();
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => return failed(None, format!("no tokio runtime: {e}")),
        };
        runtime.block_on(self.drive(case))
    }

    async fn drive(&self, case: &Case<G::Command>) -> Played {
        let log = Arc::new(MemLog::new());
        let settings = HubConfig {
            durability: Durability::None,
            snapshot_every: case.snapshot_every,
            ..HubConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(START));
        let mut world = match World::open(self, Arc::clone(&log), settings, clock).await {
            Ok(world) => world,
            Err(message) => return failed(None, message),
        };
        let mut played = Played::default();
        let mut failure = world.check().await.err().map(|m| (None, m));
        for (i, step) in case.steps.iter().enumerate() {
            if failure.is_some() {
                break;
            }
            let mark = Mark {
                version: world.version(),
                now: world.clock.now(),
            };
            played.marks.push(mark);
            let done = match world.step(step, &mut played.marks[i]).await {
                Ok(()) => world.check().await,
                Err(message) => Err(message),
            };
            failure = done.err().map(|m| (Some(i), m));
        }
        if failure.is_none() {
            failure = match world.hub.shutdown().await {
                Err(e) => Some((None, format!("the server did not stop cleanly: {e}"))),
                Ok(()) => world.saved_snapshot_restores().err().map(|m| (None, m)),
            };
        }
        played.records = log
            .read(world.id.0, 1, usize::MAX)
            .map(|records| records.into_iter().map(|(_, r)| r.to_vec()).collect())
            .unwrap_or_default();
        played.failure = failure.map(|(step, message)| Failure {
            step,
            message,
            between_plays: false,
        });
        played
    }
}

/// The two plays of one case logged the same, or the first difference.
pub(crate) fn same(first: &Played, second: &Played) -> Result<(), Failure> {
    if let Some(failure) = first.failure.as_ref().or(second.failure.as_ref()) {
        return Err(failure.clone());
    }
    let differs = first
        .records
        .iter()
        .zip(&second.records)
        .position(|(a, b)| a != b)
        .or_else(|| {
            (first.records.len() != second.records.len())
                .then_some(first.records.len().min(second.records.len()))
        });
    let Some(index) = differs else {
        return Ok(());
    };
    let seq = Seq(index as u64 + 1);
    // The step whose decision logged that seq: the last one that began before it.
    let step = first.marks.iter().rposition(|m| m.version < seq);
    let show = |records: &[Vec<u8>]| {
        records
            .get(index)
            .map_or("nothing".to_owned(), |r| json_of(r).to_string())
    };
    Err(Failure {
        step,
        between_plays: true,
        message: format!(
            "the same steps played twice logged different records: seq {seq} was\n    {}\nthe first time and\n    {}\nthe second (do the rules depend on something besides the state, the command and the ctx: a clock, a global rng, hash order?)",
            show(&first.records),
            show(&second.records),
        ),
    })
}

fn failed(step: Option<usize>, message: String) -> Played {
    Played {
        failure: Some(Failure {
            step,
            message,
            between_plays: false,
        }),
        ..Played::default()
    }
}

/// A record as a client is sent it: MessagePack transcoded to JSON, as the server does.
fn json_of(record: &[u8]) -> Value {
    let mut from = rmp_serde::Deserializer::from_read_ref(record);
    let mut text = Vec::new();
    let mut to = serde_json::Serializer::new(&mut text);
    match serde_transcode::transcode(&mut from, &mut to) {
        Ok(()) => serde_json::from_slice(&text).unwrap_or(Value::Null),
        Err(e) => Value::String(format!("<does not transcode: {e}>")),
    }
}

/// A panic's message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// A connection that follows the game, and what it was sent of it.
struct Follower {
    client: MemClient,
    viewer: Viewer,
    seen: Vec<Value>,
    who: String,
}

/// A seated player.
struct Player {
    name: String,
    seat: Seat,
    token: String,
    follower: Option<Follower>,
}

/// One game on one hub, and everyone in it.
struct World<'a, G: Game + Clone> {
    check: &'a Check<G>,
    log: Arc<MemLog>,
    settings: HubConfig,
    clock: Arc<dyn Clock>,
    hub: Hub,
    net: MemConnector,
    /// The nodes' seam, and which node serves now.
    bus: MemBus,
    node: usize,
    id: GameId,
    watch_key: String,
    players: Vec<Player>,
    spectators: Vec<Follower>,
    /// The match replayed from the log after the last check.
    replayed: Option<Match<G>>,
}

impl<'a, G: Game + Clone> World<'a, G> {
    /// A hub with the game created and every player seated.
    async fn open(
        check: &'a Check<G>,
        log: Arc<MemLog>,
        settings: HubConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let bus = MemBus::new();
        let hub = start(
            check,
            &log,
            &settings,
            &clock,
            bus.node(&node_name(0), LEASE),
        )
        .await?;
        let net = crate::connector(&hub);
        let config = serde_json::to_value(&check.config)
            .map_err(|e| format!("the config does not encode as JSON: {e}"))?;
        let mut host = connect(&net, "p0").await?;
        let created = patient(host.create(G::KIND, config))
            .await?
            .map_err(|e| format!("the server refused to create the game: {e}"))?;
        let (Some(join), Some(watch_key)) = (created.join, created.watch) else {
            return Err("the creator was not given the game's keys".into());
        };
        let mut players = vec![Player {
            name: "p0".into(),
            seat: created.seat,
            token: created.token,
            follower: Some(follower(host, Viewer::Seat(created.seat), "p0")),
        }];
        for p in 1..check.players_count() {
            let name = format!("p{p}");
            let mut client = connect(&net, &name).await?;
            let joined = patient(client.join(&join))
                .await?
                .map_err(|e| format!("{name} could not join: {e}"))?;
            players.push(Player {
                follower: Some(follower(client, Viewer::Seat(joined.seat), &name)),
                name,
                seat: joined.seat,
                token: joined.token,
            });
        }
        let mut world = World {
            check,
            log,
            settings,
            clock,
            hub,
            net,
            bus,
            node: 0,
            id: created.game,
            watch_key,
            players,
            spectators: Vec::new(),
            replayed: None,
        };
        world.settle().await?;
        Ok(world)
    }

    fn version(&self) -> Seq {
        Seq(self.log.version(self.id.0).unwrap_or(0))
    }

    async fn step(&mut self, step: &Step<G::Command>, mark: &mut Mark) -> Result<(), String> {
        match step {
            Step::Play(p, command) => {
                let p = usize::from(*p) % self.players.len();
                self.reconnect(p).await?;
                self.settle().await?;
                *mark = Mark {
                    version: self.version(),
                    now: self.clock.now(),
                };
                self.play(p, command, *mark).await
            }
            Step::Wait(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                self.settle().await
            }
            Step::Watch => self.watch().await,
            Step::Drop(p) => {
                let p = usize::from(*p) % self.players.len();
                self.players[p].follower = None;
                self.settle().await
            }
            Step::Restart => self.restart().await,
            Step::NodeDies => self.node_dies().await,
        }
    }

    /// A spectator comes and watches from the start.
    async fn watch(&mut self) -> Result<(), String> {
        let mut client = self.net.connect().await.map_err(|e| e.to_string())?;
        patient(client.watch(&self.watch_key, None))
            .await?
            .map_err(|e| format!("a spectator could not watch: {e}"))?;
        let who = format!("spectator {}", self.spectators.len() + 1);
        self.spectators
            .push(follower(client, Viewer::Spectator, &who));
        Ok(())
    }

    /// Send `command` from player `p`, and hold the server's answer against the rules'.
    async fn play(&mut self, p: usize, command: &G::Command, mark: Mark) -> Result<(), String> {
        let game = &self.check.game;
        let model = self.replay()?;
        let by = Actor::Seat(self.players[p].seat);
        let decided = catch_unwind(AssertUnwindSafe(|| {
            model.handle(game, by, Action::Play(command.clone()), mark.now, None)
        }))
        .map_err(|panic| format!("`decide` panicked: {}", panic_message(&*panic)))?;
        let json = serde_json::to_value(command)
            .map_err(|e| format!("the command does not encode as JSON: {e}"))?;
        let before = self.inspect().await?;
        let Some(follower) = self.players[p].follower.as_mut() else {
            return Err("the player is not connected".into());
        };
        let answer = patient(follower.client.command(self.id, json)).await?;
        match (decided, answer) {
            (Ok(decided), Ok(seq)) => {
                let logged = self.typed(mark.version + 1, decided.len())?;
                if logged != decided {
                    return Err(format!(
                        "the server logged other events than the rules decided (read back from the log: do the game's events read back from MessagePack as they were written?)\n  decided: {decided:?}\n  logged:  {logged:?}"
                    ));
                }
                let last = mark.version + decided.len() as u64;
                if seq != last && !decided.is_empty() {
                    return Err(format!(
                        "the server answered seq {seq}, the rules' events end at {last}"
                    ));
                }
                Ok(())
            }
            (Err(refused), Err(e)) if agrees(&refused, &e) => {
                let after = self.inspect().await?;
                if after != before {
                    return Err(format!(
                        "a refused command ({refused}) changed the game:\n  before: {}\n  after:  {}",
                        before.whole, after.whole
                    ));
                }
                Ok(())
            }
            (Ok(decided), Err(e)) => Err(format!(
                "the rules accept the command ({decided:?}), the server answered: {e} (if the game stopped, a panic in the game's code is printed above)"
            )),
            (Err(refused), answer) => Err(format!(
                "the rules refuse the command ({refused}), the server answered {answer:?}"
            )),
        }
    }

    /// Bring player `p` back on a new connection if theirs dropped.
    async fn reconnect(&mut self, p: usize) -> Result<(), String> {
        if self.players[p].follower.is_some() {
            return Ok(());
        }
        let name = self.players[p].name.clone();
        let mut client = connect(&self.net, &name).await?;
        // While another node still holds the game (it died and its lease has not run out),
        // the answer is `overloaded`: ask again a little later, as a client would.
        let mut tries = 0;
        loop {
            match patient(client.join(&self.players[p].token)).await? {
                Ok(_) => break,
                Err(e) if e.code() == Some(ErrorCode::Overloaded) && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("{name} could not take their seat back: {e}")),
            }
        }
        let seat = self.players[p].seat;
        self.players[p].follower = Some(follower(client, Viewer::Seat(seat), &name));
        Ok(())
    }

    /// Stop the hub, start another on the same log, and bring everyone back.
    async fn restart(&mut self) -> Result<(), String> {
        self.hub
            .shutdown()
            .await
            .map_err(|e| format!("the server did not stop cleanly: {e}"))?;
        let node = self.bus.node(&node_name(self.node), LEASE);
        self.hub = start(self.check, &self.log, &self.settings, &self.clock, node).await?;
        self.back().await
    }

    /// The node dies: everyone's connections to it drop (its game logs them gone), then it
    /// hears, renews and lets go of nothing and its tasks stop; another node on the same log
    /// takes over once the lease runs out (no time passes before: the players' first requests
    /// reach a node that only follows the game, and wait for it to take over), and everyone
    /// comes back to it.
    async fn node_dies(&mut self) -> Result<(), String> {
        let connected: Vec<usize> = (0..self.players.len())
            .filter(|&p| self.players[p].follower.take().is_some())
            .collect();
        let spectators = std::mem::take(&mut self.spectators).len();
        self.settle().await?;
        self.bus.freeze(&node_name(self.node), true);
        self.hub
            .shutdown()
            .await
            .map_err(|e| format!("the dying node did not stop: {e}"))?;
        self.node += 1;
        let node = self.bus.node(&node_name(self.node), LEASE);
        self.hub = start(self.check, &self.log, &self.settings, &self.clock, node).await?;
        self.net = crate::connector(&self.hub);
        for p in connected {
            self.reconnect(p).await?;
        }
        for _ in 0..spectators {
            self.watch().await?;
        }
        self.settle().await
    }

    /// Everyone connected before comes back to the hub now serving.
    async fn back(&mut self) -> Result<(), String> {
        self.net = crate::connector(&self.hub);
        let connected: Vec<usize> = (0..self.players.len())
            .filter(|&p| self.players[p].follower.take().is_some())
            .collect();
        for p in connected {
            self.reconnect(p).await?;
        }
        let spectators = std::mem::take(&mut self.spectators).len();
        for _ in 0..spectators {
            self.watch().await?;
        }
        self.settle().await
    }

    /// Wait (without letting time pass) until the game has fired every timer due and logged
    /// who is online, so that the next step starts from a still game.
    async fn settle(&mut self) -> Result<(), String> {
        for _ in 0..10_000 {
            let inspected = self.inspect().await?;
            let now = self.clock.now();
            let due = inspected.whole["timers"].as_object().is_some_and(|t| {
                t.values()
                    .any(|t| t["at"].as_u64().is_some_and(|at| at <= now))
            });
            let online: Vec<u64> = inspected.whole["online"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let connected: Vec<u64> = self
                .players
                .iter()
                .filter(|p| p.follower.is_some())
                .filter(|p| {
                    inspected
                        .seats
                        .get(usize::from(p.seat.0))
                        .is_some_and(Option::is_some)
                })
                .map(|p| u64::from(p.seat.0))
                .collect();
            let mut expected = connected;
            expected.sort_unstable();
            if !due && (inspected.outcome.is_some() || online == expected) {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
        Err(
            "the game did not settle: timers due stay pending, or a player's presence is not \
             logged"
                .into(),
        )
    }

    async fn inspect(&self) -> Result<umpire_hub::Inspection, String> {
        patient(self.hub.inspect(self.id))
            .await?
            .map_err(|e| match e {
                HubError::Panicked(_) => format!("the server lost the game: {e}"),
                e => format!(
                    "the server lost the game: {e} (a panic in the game's code is printed above?)"
                ),
            })
    }

    /// The log's records from `from`, `n` of them, read back as envelopes of the game.
    fn typed(&self, from: Seq, n: usize) -> Result<Vec<Envelope<G>>, String> {
        let records = self
            .log
            .read(self.id.0, from.0, n)
            .map_err(|e| format!("the log cannot be read: {e}"))?;
        records
            .iter()
            .map(|(seq, bytes)| {
                rmp_serde::from_slice(bytes).map_err(|e| {
                    format!(
                        "record {seq} does not read back as a `{}` envelope: {e}\n  record: {}",
                        G::KIND,
                        json_of(bytes)
                    )
                })
            })
            .collect()
    }

    /// The whole log, replayed by the rules.
    fn replay(&self) -> Result<Match<G>, String> {
        let typed = self.typed(Seq(1), usize::MAX)?;
        Match::replay(&self.check.game, &typed).map_err(|e| format!("the log does not replay: {e}"))
    }

    /// Everything the kit checks after a step.
    async fn check(&mut self) -> Result<(), String> {
        let game = &self.check.game;
        let typed = self.typed(Seq(1), usize::MAX)?;
        let replayed =
            Match::replay(game, &typed).map_err(|e| format!("the log does not replay: {e}"))?;
        let live = self.inspect().await?;
        let whole = serde_json::to_value(&replayed)
            .map_err(|e| format!("the match does not encode as JSON: {e}"))?;
        if live.whole != whole {
            return Err(format!(
                "replaying the log gives another match than the server holds:\n  server:   {}\n  replayed: {whole}",
                live.whole
            ));
        }
        if let Some(earlier) = &self.replayed {
            restores(
                game,
                earlier,
                &typed,
                &replayed,
                "a snapshot taken at the previous step",
            )?;
        }
        self.replayed = Some(replayed);
        self.followers_saw(&typed).await
    }

    /// The server's latest saved snapshot and the log's tail give the whole log's match. Only
    /// once the hub has stopped: until its writer is flushed, whether a snapshot is saved yet
    /// is a matter of timing.
    fn saved_snapshot_restores(&self) -> Result<(), String> {
        let Ok(Some((_, bytes))) = self.log.load_snapshot(self.id.0) else {
            return Ok(());
        };
        let typed = self.typed(Seq(1), usize::MAX)?;
        let whole = Match::replay(&self.check.game, &typed)
            .map_err(|e| format!("the log does not replay: {e}"))?;
        let saved: Match<G> = rmp_serde::from_slice(&bytes)
            .map_err(|e| format!("the server's snapshot does not read back: {e}"))?;
        restores(
            &self.check.game,
            &saved,
            &typed,
            &whole,
            "the server's latest snapshot",
        )
    }

    /// Every connection following the game was sent the log up to its head, as its viewer
    /// is shown it.
    async fn followers_saw(&mut self, typed: &[Envelope<G>]) -> Result<(), String> {
        let head = Seq(typed.len() as u64);
        let id = self.id;
        let followers = self
            .players
            .iter_mut()
            .filter_map(|p| p.follower.as_mut())
            .chain(self.spectators.iter_mut());
        for f in followers {
            while f.seen.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0) < head.0 {
                let env = patient(f.client.next_event(id))
                    .await?
                    .map_err(|e| format!("{} was cut off: {e}", f.who))?;
                f.seen.push(env);
            }
        }
        // Read again: a timer may have fired while they read.
        let records = self
            .log
            .read(id.0, 1, usize::MAX)
            .map_err(|e| format!("the log cannot be read: {e}"))?;
        let typed = self.typed(Seq(1), records.len())?;
        let followers = self
            .players
            .iter()
            .filter_map(|p| p.follower.as_ref())
            .chain(&self.spectators);
        for f in followers {
            for (n, seen) in f.seen.iter().enumerate() {
                let (Some((_, bytes)), Some(env)) = (records.get(n), typed.get(n)) else {
                    return Err(format!(
                        "{} was sent {seen}, which is not in the log",
                        f.who
                    ));
                };
                let expected = match env.viewed(&self.check.game, f.viewer) {
                    Some(copy) => json_of(&rmp_serde::to_vec_named(&copy).unwrap_or_default()),
                    None => json_of(bytes),
                };
                if *seen != expected {
                    return Err(format!(
                        "{} was sent something else than the log shows them at seq {}:\n  sent:     {seen}\n  expected: {expected}",
                        f.who,
                        n + 1
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether the server's refusal is the one the rules gave: the same code, and for a
/// rejection the same reason, compared as values.
fn agrees<R: serde::Serialize>(refused: &MatchError<R>, answer: &ClientError) -> bool {
    match (refused, answer.code()) {
        (MatchError::Rejected(r), Some(ErrorCode::Rejected)) => {
            serde_json::to_value(r).ok().as_ref() == answer.reason()
        }
        (MatchError::GameOver, Some(ErrorCode::GameOver)) => true,
        _ => false,
    }
}

/// `from` written as a snapshot, read back and brought up to date with the rest of `log`,
/// must be `whole`.
fn restores<G: Game>(
    game: &G,
    from: &Match<G>,
    log: &[Envelope<G>],
    whole: &Match<G>,
    what: &str,
) -> Result<(), String> {
    let bytes = rmp_serde::to_vec_named(from)
        .map_err(|e| format!("the match does not encode as a snapshot: {e}"))?;
    let mut restored: Match<G> =
        rmp_serde::from_slice(&bytes).map_err(|e| format!("a snapshot does not read back: {e}"))?;
    let from = usize::try_from(restored.version().0).unwrap_or(usize::MAX);
    for env in log.iter().skip(from) {
        restored
            .replay_one(game, env)
            .map_err(|e| format!("the log's tail does not follow {what}: {e}"))?;
    }
    if restored != *whole {
        return Err(format!(
            "{what} (seq {from}) and the log's tail give another match than the whole log:\n  restored: {restored:?}\n  whole:    {whole:?}"
        ));
    }
    Ok(())
}

/// A hub with just this game, drawing seeds from the kit's seed, as node `node`.
async fn start<G: Game + Clone>(
    check: &Check<G>,
    log: &Arc<MemLog>,
    settings: &HubConfig,
    clock: &Arc<dyn Clock>,
    node: Arc<umpire_hub::MemNode>,
) -> Result<Hub, String> {
    Hub::builder(Arc::clone(log) as Arc<dyn Log>)
        .config(settings.clone())
        .clock(Arc::clone(clock))
        .bus(node as Arc<dyn Bus>)
        .seeds(check.seed)
        .register(check.game.clone())
        .start()
        .await
        .map_err(|e| format!("the server did not start: {e}"))
}

async fn connect(net: &MemConnector, name: &str) -> Result<MemClient, String> {
    net.connect_as(name)
        .await
        .map_err(|e| format!("{name} could not connect: {e}"))
}

fn follower(client: MemClient, viewer: Viewer, who: &str) -> Follower {
    Follower {
        client,
        viewer,
        seen: Vec::new(),
        who: who.to_owned(),
    }
}

/// `fut`, or an error if the server has not answered in an hour of virtual time.
async fn patient<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .map_err(|_| "the server did not answer within an hour (virtual time)".to_owned())
}
