//! The Connect Four protocol of the Python `websockets` tutorial (seed 001), as a second wire
//! codec over the same hub. It translates messages and holds no rules: every move is an
//! ordinary command to an ordinary `connect4` game, logged and replayable like any other.
//!
//! | tutorial client sends            | umpire does                              |
//! |----------------------------------|------------------------------------------|
//! | `{"type":"init"}`                | `create` connect4; answers `init` with keys |
//! | `{"type":"init","join":K}`       | `join` K (replays the moves so far)      |
//! | `{"type":"init","watch":W}`      | `watch` W (replays the moves so far)     |
//! | `{"type":"play","column":c}`     | `command` `{"column":c}`                 |
//!
//! Events go out as `{"type":"play","player","column","row"}` and `{"type":"win","player"}`;
//! errors as `{"type":"error","message"}` to the sender only.

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use umpire_engine::protocol::{ClientMsg, GameId, ServerMsg};

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

/// Which game this connection is in, learned from the hub's answers, read by the decoder.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    game: watch::Sender<Option<GameId>>,
}

impl Link {
    pub(crate) fn new() -> Self {
        Link {
            game: watch::channel(None).0,
        }
    }
}

/// Why a tutorial message cannot be translated.
pub(crate) enum Refusal {
    /// Not a tutorial message.
    Bad(String),
    /// A `play` before any `init`.
    NoGame,
}

/// Translate one tutorial message into a native one.
pub(crate) async fn decode(text: &str, link: &Link) -> Result<ClientMsg, Refusal> {
    let msg: TutorialIn = serde_json::from_str(text).map_err(|e| Refusal::Bad(e.to_string()))?;
    Ok(match msg {
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
            r#ref: None,
        },
        TutorialIn::Play { column } => {
            // The answer to `init` may still be on its way: wait for it briefly.
            let mut rx = link.game.subscribe();
            let game = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                rx.wait_for(Option::is_some),
            )
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|g| *g))
            .ok_or(Refusal::NoGame)?;
            ClientMsg::Command {
                game,
                cmd: json!({ "column": column }),
                cid: None,
                r#ref: None,
            }
        }
    })
}

fn color(seat: &Value) -> &'static str {
    if seat.as_u64() == Some(0) {
        "red"
    } else {
        "yellow"
    }
}

/// Translate one native message for a tutorial client; `None` when it has no tutorial form.
pub(crate) fn encode(msg: &ServerMsg, link: &Link) -> Option<String> {
    let out = match msg {
        ServerMsg::Created {
            game, join, watch, ..
        } => {
            link.game.send_replace(Some(*game));
            json!({"type": "init", "join": join, "watch": watch})
        }
        ServerMsg::Joined { game, .. } | ServerMsg::Watching { game, .. } => {
            link.game.send_replace(Some(*game));
            return None;
        }
        ServerMsg::Event { env, .. } => {
            let body = &env["body"];
            if let Some(played) = body.get("game") {
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
            }
        }
        ServerMsg::Error { message, .. } => json!({"type": "error", "message": message}),
        _ => return None,
    };
    Some(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn init_messages_become_create_join_and_watch() {
        let link = Link::new();
        assert!(
            matches!(decode(r#"{"type":"init"}"#, &link).await, Ok(ClientMsg::Create { kind, .. }) if kind == "connect4")
        );
        assert!(
            matches!(decode(r#"{"type":"init","join":"k"}"#, &link).await, Ok(ClientMsg::Join { key, .. }) if key == "k")
        );
        assert!(
            matches!(decode(r#"{"type":"init","watch":"w"}"#, &link).await, Ok(ClientMsg::Watch { key, .. }) if key == "w")
        );
        assert!(matches!(
            decode(r#"{"type":"jump"}"#, &link).await,
            Err(Refusal::Bad(_))
        ));
    }

    #[tokio::test]
    async fn play_needs_a_game_and_then_targets_it() {
        let link = Link::new();
        tokio::time::pause();
        assert!(matches!(
            decode(r#"{"type":"play","column":3}"#, &link).await,
            Err(Refusal::NoGame)
        ));
        let joined = ServerMsg::Joined {
            game: 9,
            kind: "connect4".into(),
            seat: umpire_engine::Seat(1),
            token: "t".into(),
            r#ref: None,
        };
        assert_eq!(encode(&joined, &link), None);
        match decode(r#"{"type":"play","column":3}"#, &link).await {
            Ok(ClientMsg::Command { game, cmd, .. }) => {
                assert_eq!((game, cmd), (9, json!({"column": 3})))
            }
            _ => panic!("expected a command"),
        }
    }

    #[test]
    fn events_become_play_and_win() {
        let link = Link::new();
        let played = ServerMsg::Event {
            game: 1,
            env: json!({"seq": 4, "body": {"game": {"player": "red", "column": 3, "row": 0}}}),
        };
        assert_eq!(
            encode(&played, &link).unwrap(),
            r#"{"column":3,"player":"red","row":0,"type":"play"}"#
        );
        let won = ServerMsg::Event {
            game: 1,
            env: json!({"seq": 9, "body": {"over": {"outcome": {"win": 1}}}}),
        };
        assert_eq!(
            encode(&won, &link).unwrap(),
            r#"{"player":"yellow","type":"win"}"#
        );
        let seated = ServerMsg::Event {
            game: 1,
            env: json!({"seq": 2, "body": {"seated": {"seat": 0}}}),
        };
        assert_eq!(encode(&seated, &link), None);
    }
}
