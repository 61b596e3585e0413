//! Channels (seed 002): `broadcast`, `user:<id>`, `group:<name>`, `session:<id>`, and each
//! facility's own four (`facility:<f>:broadcast`, ..., for ws4redis clients). Each is a
//! stream in the log like a game, without rules: publishing appends a `notice` envelope, and
//! subscribers get its events exactly as a game's spectators do (from a seq, live after,
//! caught up from the log when slow, resumable). Only the last
//! [`crate::HubConfig::channel_history`] notices are kept.
//!
//! A channel's task is loaded on first use (a publish or a subscribe) and, unlike a game's,
//! holds no state to replay: its version is read from the log.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use umpire_engine::protocol::GameId;
use umpire_engine::{NoticeEnvelope, Seq};
use umpire_store::Write;

use crate::error::{BadChannel, Denied, HubError, Malformed};
use crate::frames::Published;
use crate::game::runtime::Runtime;
use crate::handle::{Inbox, RoomHandle, RoomMsg, Subscriber};
use crate::outbox::Answer;

/// The kind stored in a channel stream's metadata.
pub(crate) const KIND: &str = "channel";

/// The longest channel name.
const MAX_NAME: usize = 160;

/// What a channel's name says about who may subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access<'a> {
    /// Anyone.
    Everyone,
    /// Only this user's connections.
    User(&'a str),
    /// Whoever the embedding server's group policy lets in, or its login put in the group.
    Group(&'a str),
    /// Only the connections of this umpire session (`session:<sid>`).
    Session(&'a str),
    /// Only the connections whose login gave this web session key (a facility's
    /// `session:<key>`: the web application's session, shared by a browser's tabs).
    WebSession(&'a str),
}

/// Whether a channel's stream is made by a subscriber as well as a publisher. A facility's
/// channels are named by the client (any facility): only publishing makes their streams, so
/// no guest can make the server keep a stream per name it invents.
pub(crate) fn made_by_subscribing(name: &str) -> bool {
    !name.starts_with(FACILITY_PREFIX)
}

/// The longest facility name.
pub const MAX_FACILITY: usize = 64;

/// Where a facility's channel names start (see [`facility_channel`]).
const FACILITY_PREFIX: &str = "facility:";

/// Who hears a facility's channel (seed 002's ws4redis audiences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Everyone subscribed to the facility.
    Broadcast,
    /// One user.
    User(&'a str),
    /// The members of a group.
    Group(&'a str),
    /// The connections of one web session (the key of the application's session cookie).
    Session(&'a str),
}

/// The umpire channel of `facility` for `audience`: `facility:<facility>:broadcast`,
/// `facility:<facility>:user:<id>`, `…:group:<name>` or `…:session:<key>`. A facility has 1
/// to 64 bytes, no `:` and no control character; it comes first, so that a user id or a
/// group name holding `:` cannot reach another facility's channel.
///
/// # Errors
/// [`HubError::BadCommand`] for a facility or a name that cannot be part of a channel name.
pub fn facility_channel(facility: &str, audience: Audience<'_>) -> Result<String, HubError> {
    if !is_facility(facility) {
        return Err(HubError::BadCommand(Malformed::Channel {
            name: facility.to_owned(),
            why: BadChannel::FacilityName,
        }));
    }
    let name = match audience {
        Audience::Broadcast => format!("{FACILITY_PREFIX}{facility}:broadcast"),
        Audience::User(id) => format!("{FACILITY_PREFIX}{facility}:user:{id}"),
        Audience::Group(group) => format!("{FACILITY_PREFIX}{facility}:group:{group}"),
        Audience::Session(key) => format!("{FACILITY_PREFIX}{facility}:session:{key}"),
    };
    access(&name)?;
    Ok(name)
}

/// Whether `facility` can name a facility: 1 to [`MAX_FACILITY`] bytes, no `:` and no control
/// character.
pub fn is_facility(facility: &str) -> bool {
    !facility.is_empty()
        && facility.len() <= MAX_FACILITY
        && !facility.contains(|c: char| c == ':' || c.is_control())
}

/// Who may subscribe to `name`, or why it is no channel name.
pub(crate) fn access(name: &str) -> Result<Access<'_>, HubError> {
    let bad = |why: BadChannel| {
        HubError::BadCommand(Malformed::Channel {
            name: name.to_owned(),
            why,
        })
    };
    if name.len() > MAX_NAME {
        return Err(bad(BadChannel::TooLong));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(BadChannel::Control));
    }
    if name == "broadcast" {
        return Ok(Access::Everyone);
    }
    if let Some(rest) = name.strip_prefix(FACILITY_PREFIX) {
        let (facility, audience) = rest
            .split_once(':')
            .ok_or_else(|| bad(BadChannel::FacilityForm))?;
        if audience.starts_with(FACILITY_PREFIX) {
            return Err(bad(BadChannel::FacilityForm));
        }
        if facility.is_empty() || facility.len() > MAX_FACILITY {
            return Err(bad(BadChannel::FacilityName));
        }
        return match access(audience) {
            Ok(Access::Session(key)) => Ok(Access::WebSession(key)),
            Ok(Access::WebSession(_)) | Err(_) => Err(bad(BadChannel::FacilityForm)),
            Ok(access) => Ok(access),
        };
    }
    let (prefix, rest) = name
        .split_once(':')
        .ok_or_else(|| bad(BadChannel::Unknown))?;
    if rest.is_empty() {
        return Err(bad(BadChannel::Empty));
    }
    match prefix {
        "lobby" => Ok(Access::Everyone),
        "user" => Ok(Access::User(rest)),
        "group" => Ok(Access::Group(rest)),
        "session" => Ok(Access::Session(rest)),
        _ => Err(bad(BadChannel::Unknown)),
    }
}

/// The key under which a channel's stream is indexed. Not a possible random key (those are
/// base64url), so no one can open a channel with a key or a game with a channel name.
pub(crate) fn index_key(name: &str) -> String {
    format!("#channel:{name}")
}

/// A channel's task.
struct Channel {
    id: GameId,
    name: String,
    rt: Arc<Runtime>,
    inbox: Arc<Inbox>,
    subscribers: Vec<Subscriber>,
    head: Arc<AtomicU64>,
    durable: Seq,
    /// The highest version another node announced: read from the log before the next turn.
    announced: Seq,
}

/// How often a channel with subscribers here looks at the log for notices other nodes
/// published (an announcement lost on the way), when other nodes may exist.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How many times a publish is tried again after another node appended first.
const RETRIES: usize = 16;

/// Start the task of channel `name`, stream `id`, whose log ends at `version`.
pub(crate) fn spawn(rt: &Arc<Runtime>, id: GameId, name: String, version: Seq) -> RoomHandle {
    let inbox = Arc::new(Inbox::default());
    let head = Arc::new(AtomicU64::new(version.0));
    let channel = Channel {
        id,
        name,
        rt: Arc::clone(rt),
        inbox: Arc::clone(&inbox),
        subscribers: Vec::new(),
        head: Arc::clone(&head),
        durable: version,
        announced: version,
    };
    // Any node may publish to a channel: each node's task hears the others' notices.
    rt.bus.follow(id);
    rt.tracker.spawn(channel.run());
    RoomHandle::new(id, inbox, head, None)
}

impl Channel {
    async fn run(mut self) {
        let max_batch = self.rt.config.max_batch.max(1);
        let mut msgs = VecDeque::new();
        loop {
            self.inbox.take(max_batch, &mut msgs);
            if msgs.is_empty() && self.inbox.is_closed() {
                // Stopped: its stream is being removed.
                return;
            }
            if msgs.is_empty() {
                let poll = self.rt.bus.shared() && !self.subscribers.is_empty();
                tokio::select! {
                    biased;
                    () = self.rt.shutdown.cancelled() => break,
                    () = self.inbox.ready() => continue,
                    () = tokio::time::sleep(POLL), if poll => {
                        if let Ok(version) = self.rt.log.version(self.id.0).await {
                            self.announced = self.announced.max(Seq(version));
                        }
                        self.catch_up().await;
                        continue;
                    }
                }
            }
            let batch: Vec<RoomMsg> = msgs.drain(..).collect();
            if self.turn(batch).await.is_err() {
                return;
            }
        }
        let rest: Vec<RoomMsg> = self.inbox.close().into_iter().collect();
        let _ = self.turn(rest).await;
    }

    /// Read what other nodes published, up to what was announced (or the log's end), and
    /// send it to the subscribers here.
    async fn catch_up(&mut self) {
        while self.announced > self.durable {
            let page = match self.rt.log.read(self.id.0, self.durable.0 + 1, 256).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(channel = %self.name, error = %e, "cannot read other nodes' notices");
                    return;
                }
            };
            let Some(&(last, _)) = page.last() else {
                // Forgotten already (history is bounded): nothing to send.
                self.durable = self.announced;
                break;
            };
            let published: Vec<Arc<Published>> = page
                .into_iter()
                .map(|(seq, record)| Published::new(self.id, Seq(seq), record))
                .collect();
            self.durable = Seq(last);
            crate::game::publish::publish(
                &mut self.subscribers,
                &self.head,
                self.durable,
                &published,
                &[],
                Vec::new(),
                &self.rt,
                false,
            );
        }
        self.head
            .store(self.durable.0, std::sync::atomic::Ordering::Release);
    }

    /// Take `msgs`, write what they publish as one write, then publish, subscribe, answer.
    async fn turn(&mut self, msgs: Vec<RoomMsg>) -> Result<(), ()> {
        let mut notices = Vec::new();
        let mut joiners = Vec::new();
        let mut answers = Vec::new();
        let now = self.rt.clock.now();
        let game = self.id;
        for msg in msgs {
            match msg {
                RoomMsg::Publish { data, reply } => notices.push((data, reply)),
                RoomMsg::Announced { version, .. } => {
                    self.announced = self.announced.max(version);
                }
                RoomMsg::Watch { sub, from, reply } => {
                    joiners.push(sub);
                    let answer = Answer::Watching {
                        game,
                        kind: KIND,
                        from,
                        result: Ok(Seq(0)),
                    };
                    answers.push((reply, answer));
                }
                RoomMsg::Follow { sub, reply } => {
                    joiners.push(sub);
                    answers.push((
                        reply,
                        Answer::Followed {
                            game,
                            result: Ok(Seq(0)),
                        },
                    ));
                }
                RoomMsg::Unsubscribe { session } => {
                    self.subscribers.retain(|s| s.session != session);
                    joiners.retain(|s: &Subscriber| s.session != session);
                }
                other => other.fail(game, &HubError::Forbidden(Denied::ChannelPlay)),
            }
        }
        self.catch_up().await;
        let mut published = Vec::new();
        let mut tries = 0;
        while !notices.is_empty() {
            // Numbered from where the log is: another node may have appended since.
            let first = self.durable + 1;
            let mut records = Vec::with_capacity(notices.len());
            let mut encoded = Vec::with_capacity(notices.len());
            for (data, reply) in std::mem::take(&mut notices) {
                let seq = first + records.len() as u64;
                let env = NoticeEnvelope::new(seq, now, self.name.clone(), data.clone());
                match rmp_serde::to_vec_named(&env) {
                    Ok(bytes) => {
                        records.push(Bytes::from(bytes));
                        encoded.push((data, reply));
                    }
                    Err(e) => {
                        let e = HubError::BadCommand(Malformed::Encoding {
                            what: "the notice",
                            why: e.to_string(),
                        });
                        let result = Err(e);
                        answers.push((reply, Answer::Command { game, result }));
                    }
                }
            }
            if records.is_empty() {
                break;
            }
            let version = self.durable + records.len() as u64;
            let history = self.rt.config.channel_history.max(1);
            let write = Write {
                stream: self.id.0,
                expected: self.durable.0,
                records: records.clone(),
                forget_before: (version > history).then(|| (version - history + 1).0),
                ..Write::default()
            };
            match self.rt.writer.write(write).await {
                Ok(version) => {
                    self.durable = Seq(version);
                    for (seq, ((_, reply), record)) in
                        (first.0..).map(Seq).zip(encoded.into_iter().zip(records))
                    {
                        published.push(Published::new(self.id, seq, record));
                        answers.push((
                            reply,
                            Answer::Command {
                                game,
                                result: Ok(seq),
                            },
                        ));
                    }
                }
                // Another node published first: send its notices, number these after them.
                Err(HubError::Refused(umpire_store::Refused::Stale { actual, .. }))
                    if tries < RETRIES =>
                {
                    tries += 1;
                    self.announced = self.announced.max(Seq(actual));
                    self.catch_up().await;
                    notices = encoded;
                }
                Err(e) => {
                    tracing::error!(channel = %self.name, error = %e, "the channel stops: a notice could not be made durable");
                    let failed = encoded.into_iter().map(|(_, reply)| {
                        (
                            reply,
                            Answer::Command {
                                game,
                                result: Ok(Seq(0)),
                            },
                        )
                    });
                    answers.extend(failed);
                    crate::outbox::fail_all(answers, &e);
                    return Err(());
                }
            }
        }
        crate::game::publish::publish(
            &mut self.subscribers,
            &self.head,
            self.durable,
            &published,
            &joiners,
            answers,
            &self.rt,
            true,
        );
        Ok(())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.rt.bus.unfollow(self.id);
    }
}

/// The JSON a notice's data may be: anything JSON, nested at most as deep as a command.
pub(crate) fn check_data(data: &Value) -> Result<(), HubError> {
    let bytes = serde_json::to_vec(data).map_or(usize::MAX, |b| b.len());
    if bytes > 64 * 1024 {
        return Err(HubError::BadCommand(Malformed::NoticeTooLarge));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_facility_comes_first_so_no_name_reaches_another_facility() {
        assert_eq!(
            facility_channel("chat", Audience::User("a:b"))
                .ok()
                .as_deref(),
            Some("facility:chat:user:a:b")
        );
        assert!(matches!(
            access("facility:chat:user:a:b"),
            Ok(Access::User("a:b"))
        ));
        assert!(matches!(
            access("facility:chat:broadcast"),
            Ok(Access::Everyone)
        ));
        assert!(matches!(
            access("facility:chat:group:x"),
            Ok(Access::Group("x"))
        ));
        assert!(matches!(
            access("facility:chat:session:k"),
            Ok(Access::WebSession("k"))
        ));
        for bad in [
            "facility:chat",
            "facility::broadcast",
            "facility:chat:session",
            "facility:chat:nothing:x",
            "facility:a:facility:b:broadcast",
            "broadcast:chat",
            "user:a\nb",
        ] {
            assert!(access(bad).is_err(), "{bad}");
        }
        assert!(facility_channel(&"f".repeat(65), Audience::Broadcast).is_err());
        assert!(!made_by_subscribing("facility:chat:broadcast"));
        assert!(made_by_subscribing("broadcast") && made_by_subscribing("user:facility:x"));
    }
}
