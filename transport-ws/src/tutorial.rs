//! The Connect Four protocol of the Python `websockets` tutorial (seed 001), as a layer over
//! a native session: this task speaks the tutorial's messages to the browser and the native
//! protocol to the hub, like any other client. It holds no rules: every move is an ordinary
//! command to an ordinary `connect4` game, logged and replayable like any other.
//!
//! | tutorial client sends            | the layer sends the hub                  |
//! |----------------------------------|------------------------------------------|
//! | `{"type":"init"}`                | `create` connect4; answers `init` with keys |
//! | `{"type":"init","join":K}`       | `join` K (the moves so far follow)       |
//! | `{"type":"init","watch":W}`      | `watch` W (the moves so far follow)      |
//! | `{"type":"play","column":c}`     | `command` `{"column":c}`                 |
//!
//! Events go out as `{"type":"play","player","column","row"}` and `{"type":"win","player"}`,
//! each translated once and shared by every tutorial connection; errors go out as
//! `{"type":"error","message"}` to the sender only. A `play` sent before the game is known
//! (the answer to `init` is on its way) is held until it is.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use umpire_engine::protocol::{ClientMsg, ErrorCode, GameId, ServerMsg};
use umpire_hub::{Format, Frame, Published, Session};

use crate::conn::{counted, write_batch, End};
use crate::socket::{Inbound, Socket};
use umpire_engine::Seq;

/// The tutorial's slot in every event: its translation is made once, for every connection.
const TUTORIAL: Format = Format::custom(0);

/// Plays held while the game is not known yet; more are refused.
const MAX_HELD: usize = 16;

/// What a tutorial client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TutorialIn {
    Init {
        join: Option<String>,
        watch: Option<String>,
    },
    Play {
        column: i64,
    },
}

/// Why a tutorial message has no native form yet.
#[derive(Debug, PartialEq)]
enum Refusal {
    /// Not a tutorial message.
    Bad(String),
    /// A `play` before any `init`.
    NoGame,
}

/// This connection's side of the translation.
#[derive(Debug, Default)]
struct Layer {
    /// The game, once the hub's answer to `init` named it.
    game: Option<GameId>,
    /// Columns played before that.
    held: VecDeque<i64>,
}

impl Layer {
    /// Translate one tutorial message into a native one; a `play` without a game is held.
    fn decode(&mut self, text: &str) -> Result<Option<ClientMsg>, Refusal> {
        let msg: TutorialIn =
            serde_json::from_str(text).map_err(|e| Refusal::Bad(e.to_string()))?;
        Ok(Some(match msg {
            TutorialIn::Init {
                join: Some(key), ..
            } => ClientMsg::Join { key, r#ref: None },
            TutorialIn::Init {
                watch: Some(key), ..
            } => ClientMsg::Watch {
                key,
                from: None,
                r#ref: None,
            },
            TutorialIn::Init { .. } => ClientMsg::Create {
                kind: "connect4".into(),
                config: Value::Null,
                open: false,
                r#ref: None,
            },
            TutorialIn::Play { column } => match self.game {
                Some(game) => play(game, column),
                None if self.held.len() < MAX_HELD => {
                    self.held.push_back(column);
                    return Ok(None);
                }
                None => return Err(Refusal::NoGame),
            },
        }))
    }

    /// Translate one native frame for the tutorial client; `None` when it has no tutorial
    /// form. An answer naming the game releases the held plays into `release`.
    fn encode(&mut self, frame: &Frame, release: &mut Vec<ClientMsg>) -> Option<Bytes> {
        let msg = match frame {
            Frame::Event(event) => return event.encoded(TUTORIAL, translate),
            Frame::Msg(msg) => msg,
        };
        let out = match &**msg {
            ServerMsg::Created {
                game, join, watch, ..
            } => {
                self.learn(*game, release);
                json!({"type": "init", "join": join, "watch": watch})
            }
            ServerMsg::Joined { game, .. } | ServerMsg::Watching { game, .. } => {
                self.learn(*game, release);
                return None;
            }
            ServerMsg::Error { message, .. } => json!({"type": "error", "message": message}),
            _ => return None,
        };
        Some(Bytes::from(out.to_string()))
    }

    fn learn(&mut self, game: GameId, release: &mut Vec<ClientMsg>) {
        self.game = Some(game);
        release.extend(self.held.drain(..).map(|column| play(game, column)));
    }
}

fn play(game: GameId, column: i64) -> ClientMsg {
    ClientMsg::Command {
        game,
        cmd: json!({ "column": column }),
        cid: None,
        r#ref: None,
    }
}

fn color(seat: &Value) -> &'static str {
    if seat.as_u64() == Some(0) {
        "red"
    } else {
        "yellow"
    }
}

/// A logged event in the tutorial's words, if it has any: moves and wins.
/// The fuzzing oracle for the tutorial protocol: untrusted lines from a browser (one message a
/// line) never panic the translation, and a stored record of any shape never panics its
/// translation for tutorial clients.
#[doc(hidden)]
pub fn fuzz_tutorial(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut layer = Layer::default();
    for (i, line) in text.lines().enumerate() {
        if i == 3 {
            // A game named midway: held plays go out with it.
            layer.learn(GameId(7), &mut Vec::new());
        }
        if let Ok(Some(msg)) = layer.decode(line) {
            let json = umpire_engine::protocol::encode_json(&msg);
            assert_eq!(umpire_engine::protocol::decode_json(&json).ok(), Some(msg));
        }
    }
    let _ = translate(&Published::new(
        GameId(7),
        Seq(1),
        Bytes::copy_from_slice(bytes),
    ));
}

fn translate(event: &Published) -> Option<Bytes> {
    let env = event.envelope().ok()?;
    let body = &env["body"];
    let out = if let Some(played) = body.get("game") {
        json!({
            "type": "play",
            "player": played["player"],
            "column": played["column"],
            "row": played["row"],
        })
    } else if let Some(seat) = body.pointer("/over/outcome/win") {
        json!({"type": "win", "player": color(seat)})
    } else {
        return None;
    };
    Some(Bytes::from(out.to_string()))
}

/// Serve one tutorial connection until either side ends it.
#[allow(clippy::manual_async_fn)] // deliberately not an async fn: see the body
pub(crate) fn serve<S>(
    mut socket: Socket<S>,
    mut session: Box<Session>,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // An async block, not an async fn: see `conn::serve`.
    async move {
        let mut layer = Layer::default();
        let end = loop {
            tokio::select! {
                biased;
                out = session.next() => {
                    let mut release = Vec::new();
                    let translate = |frame: Frame, _: &mut Session| {
                        let text = layer.encode(&frame, &mut release);
                        match text {
                            Some(text) => Ok(Some(Message::Text(Utf8Bytes::try_from(text).map_err(|_| End::Gone)?))),
                            None => Ok(None),
                        }
                    };
                    let written = write_batch(&mut socket, &mut session, out, translate).await;
                    // An answer that named the game lets the plays held for it go.
                    for msg in release {
                        session.handle(msg).await;
                    }
                    if let Err(end) = written {
                        break end;
                    }
                }
                inbound = socket.recv(), if session.ready_for_input() => {
                    let text = match counted(&mut socket, &mut session, inbound) {
                        Err(end) => break end,
                        Ok(None) => continue,
                        Ok(Some(Inbound::Text(text))) => Some(text),
                        Ok(Some(_)) => None,
                    };
                    let refusal = match text.map(|t| layer.decode(t.as_str())) {
                        Some(Ok(Some(msg))) => {
                            session.handle(msg).await;
                            continue;
                        }
                        Some(Ok(None)) => continue,
                        Some(Err(Refusal::Bad(why))) => (ErrorCode::BadMessage, why),
                        Some(Err(Refusal::NoGame)) => {
                            (ErrorCode::NotFound, "Start or join a game first.".into())
                        }
                        None => (
                            ErrorCode::BadMessage,
                            "the tutorial protocol is JSON text only".into(),
                        ),
                    };
                    session.refuse(refusal.0, refusal.1, None);
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
    use super::*;

    #[test]
    fn init_messages_become_create_join_and_watch() {
        let mut layer = Layer::default();
        assert!(
            matches!(layer.decode(r#"{"type":"init"}"#), Ok(Some(ClientMsg::Create { kind, .. })) if kind == "connect4")
        );
        assert!(
            matches!(layer.decode(r#"{"type":"init","join":"k"}"#), Ok(Some(ClientMsg::Join { key, .. })) if key == "k")
        );
        assert!(
            matches!(layer.decode(r#"{"type":"init","watch":"w"}"#), Ok(Some(ClientMsg::Watch { key, .. })) if key == "w")
        );
        assert!(matches!(
            layer.decode(r#"{"type":"jump"}"#),
            Err(Refusal::Bad(_))
        ));
    }

    #[test]
    fn plays_wait_for_the_game_then_target_it() {
        let mut layer = Layer::default();
        assert!(matches!(
            layer.decode(r#"{"type":"play","column":3}"#),
            Ok(None)
        ));
        let joined = Frame::Msg(Box::new(ServerMsg::Joined {
            game: GameId(9),
            kind: "connect4".into(),
            seat: umpire_engine::Seat(1),
            token: "t".into(),
            join: None,
            watch: None,
            session: None,
            now: 0,
            r#ref: None,
        }));
        let mut release = Vec::new();
        assert_eq!(layer.encode(&joined, &mut release), None);
        assert!(
            matches!(&release[..], [ClientMsg::Command { game: GameId(9), cmd, .. }] if *cmd == json!({"column": 3}))
        );
        assert!(matches!(
            layer.decode(r#"{"type":"play","column":4}"#),
            Ok(Some(ClientMsg::Command {
                game: GameId(9),
                ..
            }))
        ));
    }

    #[test]
    fn too_many_early_plays_are_refused() {
        let mut layer = Layer::default();
        for _ in 0..MAX_HELD {
            assert!(matches!(
                layer.decode(r#"{"type":"play","column":0}"#),
                Ok(None)
            ));
        }
        assert_eq!(
            layer.decode(r#"{"type":"play","column":0}"#).err(),
            Some(Refusal::NoGame)
        );
    }

    fn event(env: Value) -> Frame {
        let record = rmp_serde::to_vec_named(&env).unwrap_or_default();
        Frame::Event(Published::new(GameId(1), Seq(1), Bytes::from(record)))
    }

    #[test]
    fn events_become_play_and_win() {
        let mut layer = Layer::default();
        let mut release = Vec::new();
        let played =
            event(json!({"seq": 4, "body": {"game": {"player": "red", "column": 3, "row": 0}}}));
        assert_eq!(
            layer.encode(&played, &mut release).unwrap_or_default(),
            r#"{"column":3,"player":"red","row":0,"type":"play"}"#
        );
        let won = event(json!({"seq": 9, "body": {"over": {"outcome": {"win": 1}}}}));
        assert_eq!(
            layer.encode(&won, &mut release).unwrap_or_default(),
            r#"{"player":"yellow","type":"win"}"#
        );
        let seated = event(json!({"seq": 2, "body": {"seated": {"seat": 0}}}));
        assert_eq!(layer.encode(&seated, &mut release), None);
    }
}
