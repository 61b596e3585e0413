//! django-websocket-redis's protocol (seed 002), as a layer over a native session, so that its
//! own `ws4redis.js` works unchanged: one WebSocket per facility at `/ws/<facility>`, whose
//! query keys choose the channels, messages as raw text frames, a heartbeat text echoed, and
//! each channel's last message (if recent) on every connect.
//!
//! | the query key        | the layer subscribes the session to            |
//! |----------------------|------------------------------------------------|
//! | `subscribe-broadcast`| `facility:<f>:broadcast`                       |
//! | `subscribe-user`     | `facility:<f>:user:<user>` (a signed-in user)  |
//! | `subscribe-group`    | `facility:<f>:group:<g>`, each group of the login |
//! | `subscribe-session`  | `facility:<f>:session:<key>` (the login's session) |
//!
//! Keys are trimmed and lower-cased; the rest (`publish-*`, `echo`, unknown ones) is ignored:
//! publishing is the server's (`Hub::publish`, `POST /api/publish`, a Redis publisher through
//! the bridge). A notice goes out as its data: a JSON string as that text, anything else as its
//! JSON. Nothing else the session says reaches the client: answers and errors are the layer's.
//! A facility's channel exists once something was published on it; a subscription to one that
//! does not is asked again when this node makes a channel, and every two seconds (another node
//! may have).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use umpire_engine::protocol::{ClientMsg, ErrorCode, ServerMsg};
use umpire_hub::{
    facility_channel, is_facility, Audience, Format, Frame, GameId, Published, Seq, Session,
    MAX_FACILITY,
};

use crate::conn::{counted, write_batch, End};
use crate::socket::Socket;
use crate::Identity;

/// The ws4redis translation's slot in every event: made once, for every connection.
const WS4REDIS: Format = Format::custom(1);

/// How often subscriptions to channels nobody published on yet are asked again.
const RETRY: Duration = Duration::from_secs(2);

/// Seed 002's ws4redis clients at `/ws/<facility>` (see [`crate::WsConfig::ws4redis`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ws4Redis {
    /// The text both sides send to tell they are alive (ws4redis's `WS4REDIS_HEARTBEAT`;
    /// `ws4redis.js`'s `heartbeat_msg`): never taken as a message, answered at once, and sent
    /// right after connecting. Default `--heartbeat--`, what ws4redis's docs and the seed use;
    /// `None`: no heartbeat text (then a client configured with one drops the connection
    /// every 20 seconds).
    pub heartbeat: Option<String>,
    /// How old a channel's last message may be and still be sent on connect (ws4redis's
    /// `WS4REDIS_EXPIRE`). Default an hour; zero: nothing is sent on connect.
    pub expire: Duration,
}

impl Default for Ws4Redis {
    fn default() -> Self {
        Ws4Redis {
            heartbeat: Some("--heartbeat--".into()),
            expire: Duration::from_secs(3600),
        }
    }
}

/// The facility of a ws4redis path (`/ws/<facility>`), or why it cannot be one.
pub(crate) fn facility(path: &str) -> Option<Result<&str, String>> {
    let facility = path.strip_prefix("/ws/")?;
    Some(if is_facility(facility) {
        Ok(facility)
    } else {
        Err(format!(
            "a facility (the path after /ws/) has 1 to {MAX_FACILITY} bytes and no colon"
        ))
    })
}

/// The channels a ws4redis client asks for with `query` on `facility`, as `identity` may have
/// them: `subscribe-user` without a user, `subscribe-session` without a session, and names
/// too long to be channels are left out (ws4redis itself subscribes to names nobody publishes
/// on then).
pub(crate) fn channels(facility: &str, query: Option<&str>, identity: &Identity) -> Vec<String> {
    let keys: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
        .map(|key| key.trim().to_ascii_lowercase())
        .collect();
    let asks = |key: &str| keys.iter().any(|k| k == key);
    let mut audiences = Vec::new();
    if asks("subscribe-broadcast") {
        audiences.push(Audience::Broadcast);
    }
    if asks("subscribe-user") {
        audiences.extend(identity.user.as_deref().map(Audience::User));
    }
    if asks("subscribe-group") {
        audiences.extend(identity.groups.iter().map(|g| Audience::Group(g)));
    }
    if asks("subscribe-session") {
        audiences.extend(identity.session.as_deref().map(Audience::Session));
    }
    audiences
        .into_iter()
        .filter_map(|audience| match facility_channel(facility, audience) {
            Ok(name) => Some(name),
            Err(e) => {
                tracing::debug!(error = %e, "a ws4redis subscription left out");
                None
            }
        })
        .collect()
}

/// Where one of the connection's subscriptions is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Asked; no answer yet.
    Asking,
    /// Nothing was published on it yet: asked again later.
    Waiting,
    /// Subscribed, or refused for good.
    Settled,
}

/// This connection's side of the translation.
#[derive(Debug)]
struct Layer {
    /// The channels, each with where its subscription is; the index is the request's `ref`.
    subs: Vec<(String, Stage)>,
    /// Notices older than this (ms) are not sent (only a channel's last one can be).
    expire_ms: u64,
}

impl Layer {
    fn new(channels: Vec<String>, expire: Duration) -> Self {
        Layer {
            subs: channels.into_iter().map(|c| (c, Stage::Asking)).collect(),
            expire_ms: u64::try_from(expire.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The first requests: each channel from its last notice (none when nothing is kept).
    fn first_requests(&self) -> Vec<ClientMsg> {
        let last = u32::from(self.expire_ms > 0);
        (0..self.subs.len())
            .map(|i| self.subscribe(i, None, Some(last)))
            .collect()
    }

    fn subscribe(&self, i: usize, from: Option<Seq>, last: Option<u32>) -> ClientMsg {
        ClientMsg::Subscribe {
            channel: self.subs[i].0.clone(),
            from,
            last,
            r#ref: Some(json!(i)),
        }
    }

    fn waiting(&self) -> bool {
        self.subs.iter().any(|(_, stage)| *stage == Stage::Waiting)
    }

    /// Ask again for the channels nobody had published on: from their first notice, all of
    /// which came after this client connected.
    fn ask_again(&mut self) -> Vec<ClientMsg> {
        let mut again = Vec::new();
        for i in 0..self.subs.len() {
            if self.subs[i].1 == Stage::Waiting {
                self.subs[i].1 = Stage::Asking;
                again.push(self.subscribe(i, Some(Seq(1)), None));
            }
        }
        again
    }

    /// What the client gets for one native frame, if anything: a notice's text.
    fn encode(&mut self, frame: &Frame, now_ms: u64) -> Option<Bytes> {
        let msg = match frame {
            Frame::Event(event) => {
                let out = event.encoded(WS4REDIS, translate)?;
                let at = u64::from_be_bytes(out.get(..8)?.try_into().ok()?);
                if now_ms.saturating_sub(at) > self.expire_ms {
                    return None;
                }
                return Some(out.slice(8..));
            }
            Frame::Msg(msg) => msg,
        };
        let (stage, r) = match &**msg {
            ServerMsg::Subscribed { r#ref, .. } => (Stage::Settled, r#ref),
            ServerMsg::Error {
                code: ErrorCode::NotFound,
                r#ref,
                ..
            } => (Stage::Waiting, r#ref),
            ServerMsg::Error {
                code,
                message,
                r#ref,
                ..
            } => {
                tracing::debug!(?code, message, "a ws4redis subscription refused");
                (Stage::Settled, r#ref)
            }
            _ => return None,
        };
        let i = r.as_ref().and_then(Value::as_u64)?;
        if let Some(sub) = usize::try_from(i).ok().and_then(|i| self.subs.get_mut(i)) {
            sub.1 = stage;
        }
        None
    }
}

/// A channel's notice as ws4redis sends it, after its time (8 bytes, big-endian ms): the data
/// as text if it is a JSON string, else its JSON.
fn translate(event: &Published) -> Option<Bytes> {
    let env = event.envelope().ok()?;
    let at = env.get("at").and_then(Value::as_u64).unwrap_or(0);
    let data = env.pointer("/body/notice/data")?;
    let text = match data {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut out = BytesMut::with_capacity(8 + text.len());
    out.put_u64(at);
    out.put_slice(text.as_bytes());
    Some(out.freeze())
}

/// The fuzzing oracle for ws4redis paths and queries: untrusted, never a panic, and every
/// channel made is a facility channel of that facility.
#[doc(hidden)]
pub fn fuzz_ws4redis(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    let identity = Identity::user("u:1")
        .in_groups(["g", "a:b"])
        .in_session("s");
    if let Some(Ok(facility)) = facility(path) {
        for name in channels(facility, Some(query), &identity) {
            assert!(name.starts_with(&format!("facility:{facility}:")));
        }
    }
    let _ = translate(&Published::new(
        GameId(7),
        Seq(1),
        Bytes::copy_from_slice(bytes),
    ));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Send the heartbeat text, if there is one; whether the client is still there.
async fn beat<S>(socket: &mut Socket<S>, heartbeat: Option<&Utf8Bytes>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match heartbeat {
        Some(text) => {
            socket.feed(Message::Text(text.clone())).await.is_ok() && socket.flush().await.is_ok()
        }
        None => true,
    }
}

/// Serve one ws4redis connection until either side ends it.
#[allow(clippy::manual_async_fn)] // deliberately not an async fn: see `conn::serve`
pub(crate) fn serve<S>(
    mut socket: Socket<S>,
    mut session: Box<Session>,
    channels: Vec<String>,
    config: Ws4Redis,
    mut made: watch::Receiver<u64>,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let mut layer = Layer::new(channels, config.expire);
        let heartbeat = config.heartbeat.map(Utf8Bytes::from);
        for msg in layer.first_requests() {
            session.handle(msg).await;
        }
        // Right away, as ws4redis does: a reconnecting ws4redis.js counts the heartbeats it
        // missed while away, and closes the new socket unless one comes soon.
        let greeted = beat(&mut socket, heartbeat.as_ref()).await;
        let mut watching = true;
        let mut retry = tokio::time::interval(RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            if !greeted {
                break End::Gone;
            }
            let waiting = layer.waiting();
            tokio::select! {
                biased;
                out = session.next() => {
                    let now = now_ms();
                    let encode = |frame: Frame, _: &mut Session| {
                        let text = layer.encode(&frame, now);
                        match text {
                            Some(text) => Ok(Some(Message::Text(Utf8Bytes::try_from(text).map_err(|_| End::Gone)?))),
                            None => Ok(None),
                        }
                    };
                    if let Err(end) = write_batch(&mut socket, &mut session, out, encode).await {
                        break end;
                    }
                }
                again = async {
                    tokio::select! {
                        changed = made.changed(), if watching => changed.is_ok(),
                        _ = retry.tick() => watching,
                    }
                }, if waiting => {
                    watching = again;
                    for msg in layer.ask_again() {
                        session.handle(msg).await;
                    }
                }
                inbound = socket.recv(), if session.ready_for_input() => {
                    match counted(&mut socket, &mut session, inbound) {
                        Err(end) => break end,
                        Ok(None) => continue,
                        Ok(Some(_)) => {}
                    }
                    // Every message is answered with the heartbeat, as ws4redis does after each
                    // turn; what the client says is not published (publishing is the server's).
                    if !beat(&mut socket, heartbeat.as_ref()).await {
                        break End::Gone;
                    }
                }
            }
        };
        end.log(session.id());
        if let End::Close(code, reason) = end {
            Box::pin(socket.close(code, &reason)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_path_names_the_facility() {
        assert_eq!(facility("/ws/notifications"), Some(Ok("notifications")));
        assert_eq!(facility("/ws/a/b"), Some(Ok("a/b")));
        assert!(matches!(facility("/ws/"), Some(Err(_))));
        assert!(matches!(facility("/ws/a:b"), Some(Err(_))));
        assert!(matches!(
            facility(&format!("/ws/{}", "x".repeat(65))),
            Some(Err(_))
        ));
        assert_eq!(facility("/ws"), None);
        assert_eq!(facility("/tutorial"), None);
    }

    #[test]
    fn query_keys_choose_channels_as_ws4redis_reads_them() {
        let alice = Identity::user("alice")
            .in_groups(["staff", "a:b"])
            .in_session("k1");
        assert_eq!(
            channels(
                "chat",
                Some(" Subscribe-Broadcast &subscribe-user=1&subscribe-group&subscribe-session&publish-broadcast&echo&bogus"),
                &alice
            ),
            [
                "facility:chat:broadcast",
                "facility:chat:user:alice",
                "facility:chat:group:staff",
                "facility:chat:group:a:b",
                "facility:chat:session:k1"
            ]
        );
        // A guest's user and session subscriptions are left out, not made up.
        let guest = Identity::guest();
        assert_eq!(
            channels(
                "chat",
                Some("subscribe-user&subscribe-session&subscribe-broadcast"),
                &guest
            ),
            ["facility:chat:broadcast"]
        );
        assert!(channels("chat", None, &alice).is_empty());
    }

    fn notice(at: u64, data: Value) -> Frame {
        let env = json!({"seq": 1, "at": at, "by": "system",
            "body": {"notice": {"channel": "facility:f:broadcast", "data": data}}});
        Frame::Event(Published::new(
            GameId(1),
            Seq(1),
            Bytes::from(rmp_serde::to_vec_named(&env).unwrap()),
        ))
    }

    #[test]
    fn notices_go_out_as_raw_text_and_old_ones_not_at_all() {
        let mut layer = Layer::new(
            vec!["facility:f:broadcast".into()],
            Duration::from_secs(3600),
        );
        let now = 10_000_000;
        assert_eq!(
            layer.encode(&notice(now - 5, json!("site maintenance")), now),
            Some(Bytes::from("site maintenance"))
        );
        assert_eq!(
            layer.encode(&notice(now, json!({"n": 1})), now),
            Some(Bytes::from(r#"{"n":1}"#))
        );
        assert_eq!(
            layer.encode(&notice(now - 3_600_001, json!("stale")), now),
            None
        );
    }

    #[test]
    fn a_channel_not_yet_published_on_is_asked_again_from_its_start() {
        let mut layer = Layer::new(vec!["facility:f:broadcast".into()], Duration::from_secs(1));
        assert!(matches!(
            &layer.first_requests()[..],
            [ClientMsg::Subscribe {
                last: Some(1),
                from: None,
                ..
            }]
        ));
        let refused = Frame::Msg(Box::new(ServerMsg::Error {
            code: ErrorCode::NotFound,
            message: "nothing yet".into(),
            reason: None,
            r#ref: Some(json!(0)),
        }));
        assert_eq!(layer.encode(&refused, 0), None);
        assert!(layer.waiting());
        assert!(matches!(
            &layer.ask_again()[..],
            [ClientMsg::Subscribe {
                from: Some(Seq(1)),
                last: None,
                ..
            }]
        ));
        assert!(!layer.waiting());
        let subscribed = Frame::Msg(Box::new(ServerMsg::Subscribed {
            channel: "facility:f:broadcast".into(),
            game: GameId(3),
            session: None,
            now: 0,
            r#ref: Some(json!(0)),
        }));
        assert_eq!(layer.encode(&subscribed, 0), None);
        assert!(layer.ask_again().is_empty());
    }
}
