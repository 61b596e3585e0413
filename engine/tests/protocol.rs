//! Every wire message, both directions, round-trips through JSON and MessagePack, and the JSON
//! looks the way docs/PROTOCOL.md says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use serde_json::{json, Value};
use umpire_engine::protocol::GameId;
use umpire_engine::protocol::{
    decode_json, decode_msgpack, encode_json, encode_msgpack, ClientMsg, ErrorCode, ServerMsg,
};
use umpire_engine::Seat;
use umpire_engine::Seq;

fn client_messages() -> Vec<ClientMsg> {
    let r = Some(json!(7));
    vec![
        ClientMsg::Hello {
            token: "jwt".into(),
            r#ref: r.clone(),
        },
        ClientMsg::Create {
            kind: "colony".into(),
            config: json!({"seats": 2}),
            open: false,
            r#ref: r.clone(),
        },
        ClientMsg::Create {
            kind: "connect4".into(),
            config: Value::Null,
            open: false,
            r#ref: None,
        },
        ClientMsg::Join {
            key: "k".into(),
            r#ref: r.clone(),
        },
        ClientMsg::Watch {
            key: "w".into(),
            from: Some(Seq(4)),
            r#ref: r.clone(),
        },
        ClientMsg::Watch {
            key: "w".into(),
            from: None,
            r#ref: None,
        },
        ClientMsg::Command {
            game: GameId(3),
            cmd: json!({"column": 2}),
            cid: Some("c".into()),
            r#ref: r.clone(),
        },
        ClientMsg::Leave {
            game: GameId(3),
            r#ref: r.clone(),
        },
        ClientMsg::Subscribe {
            channel: "broadcast".into(),
            from: Some(Seq(1)),
            last: None,
            r#ref: r.clone(),
        },
        ClientMsg::Ping {
            r#ref: Some(json!("any json")),
        },
        ClientMsg::Resume {
            session: "s".into(),
            seen: [("12".to_owned(), Seq(40)), ("7".to_owned(), Seq(0))].into(),
            r#ref: r.clone(),
        },
        ClientMsg::Resume {
            session: "s".into(),
            seen: Default::default(),
            r#ref: None,
        },
    ]
}

fn server_messages() -> Vec<ServerMsg> {
    let r = Some(json!(7));
    vec![
        ServerMsg::Welcome {
            user: "ada".into(),
            session: Some("s".into()),
            r#ref: r.clone(),
        },
        ServerMsg::Created {
            game: GameId(1),
            kind: "connect4".into(),
            join: "j".into(),
            watch: "w".into(),
            seat: Seat(0),
            token: "t".into(),
            session: Some("s".into()),
            now: 1_795_313_849_219,
            r#ref: r.clone(),
        },
        ServerMsg::Joined {
            game: GameId(1),
            kind: "tally".into(),
            seat: Seat(5),
            token: "t".into(),
            join: Some("j".into()),
            watch: None,
            session: None,
            now: 0,
            r#ref: None,
        },
        ServerMsg::Watching {
            game: GameId(1),
            kind: "colony".into(),
            session: Some("s".into()),
            now: 42,
            r#ref: r.clone(),
        },
        ServerMsg::Event {
            game: GameId(1),
            env: json!({"seq": 1, "at": 5, "by": "system", "body": {"left": {"seat": 1}}}),
        },
        ServerMsg::Ok {
            game: Some(GameId(1)),
            seq: Some(Seq(9)),
            r#ref: r.clone(),
        },
        ServerMsg::Ok {
            game: None,
            seq: None,
            r#ref: None,
        },
        ServerMsg::Error {
            code: ErrorCode::Rejected,
            message: "It isn't your turn.".into(),
            reason: None,
            r#ref: r.clone(),
        },
        ServerMsg::Error {
            code: ErrorCode::Rejected,
            message: "adding 1 would overflow the total".into(),
            reason: Some(serde_json::json!({"overflow": 1})),
            r#ref: None,
        },
        ServerMsg::Resumed {
            session: "s2".into(),
            user: "guest-abcdefgh".into(),
            games: vec![
                umpire_engine::protocol::ResumedGame {
                    game: GameId(4),
                    kind: "tally".into(),
                    seat: Some(Seat(1)),
                    token: Some("t".into()),
                    channel: None,
                },
                umpire_engine::protocol::ResumedGame {
                    game: GameId(5),
                    kind: "channel".into(),
                    seat: None,
                    token: None,
                    channel: Some("broadcast".into()),
                },
            ],
            lost: vec![GameId(9)],
            now: 3,
            r#ref: r.clone(),
        },
        ServerMsg::Subscribed {
            channel: "user:ada".into(),
            game: GameId(40),
            session: Some("s".into()),
            now: 5,
            r#ref: r.clone(),
        },
        ServerMsg::Audience {
            game: GameId(4),
            spectators: 12,
        },
        ServerMsg::Pong { now: 7, r#ref: r },
        ServerMsg::Closing {
            reason: "bye".into(),
        },
    ]
}

#[test]
fn client_messages_round_trip_in_both_codecs() {
    for msg in client_messages() {
        assert_eq!(decode_json(&encode_json(&msg)).unwrap(), msg);
        assert_eq!(decode_msgpack(&encode_msgpack(&msg)).unwrap(), msg);
    }
}

#[test]
fn server_messages_round_trip_in_both_codecs() {
    for msg in server_messages() {
        let json: ServerMsg = serde_json::from_str(&encode_json(&msg)).unwrap();
        assert_eq!(json, msg);
        let packed: ServerMsg = rmp_serde::from_slice(&encode_msgpack(&msg)).unwrap();
        assert_eq!(packed, msg);
    }
}

#[test]
fn the_json_is_tagged_by_type_and_echoes_ref() {
    let msg = decode_json(r#"{"type":"command","game":3,"cmd":{"column":2},"ref":"r1"}"#).unwrap();
    assert_eq!(msg.reference(), Some(&json!("r1")));
    let answer = ServerMsg::Ok {
        game: Some(GameId(3)),
        seq: Some(Seq(12)),
        r#ref: msg.reference().cloned(),
    };
    assert_eq!(
        serde_json::from_str::<Value>(&encode_json(&answer)).unwrap(),
        json!({"type": "ok", "game": 3, "seq": 12, "ref": "r1"})
    );
    let error = ServerMsg::error(ErrorCode::GameOver, "the game is over", None);
    assert_eq!(
        serde_json::from_str::<Value>(&encode_json(&error)).unwrap(),
        json!({"type": "error", "code": "game_over", "message": "the game is over"})
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for text in [
        "",
        "{",
        "[]",
        "null",
        r#"{"type":"fly"}"#,
        r#"{"type":"command"}"#,
        r#"{"type":"command","game":-1,"cmd":1}"#,
        r#"{"kind":"x"}"#,
    ] {
        assert!(decode_json(text).is_err(), "{text} should not decode");
    }
    for bytes in [&[][..], &[0xc1], &[0x81, 0xa4], &[0xff; 8]] {
        assert!(decode_msgpack(bytes).is_err());
    }
}

#[test]
fn every_error_code_has_its_wire_name() {
    for code in [
        ErrorCode::BadMessage,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::Rejected,
        ErrorCode::Full,
        ErrorCode::GameOver,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
    ] {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
    }
}

#[test]
fn values_may_nest_32_deep_and_no_deeper_in_either_encoding() {
    let nested = |depth: usize| {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    };
    for (depth, ok) in [(32, true), (33, false)] {
        let msg = ClientMsg::Command {
            game: GameId(1),
            cmd: nested(depth),
            cid: None,
            r#ref: None,
        };
        assert_eq!(
            decode_json(&encode_json(&msg)).is_ok(),
            ok,
            "JSON, depth {depth}"
        );
        assert_eq!(
            decode_msgpack(&encode_msgpack(&msg)).is_ok(),
            ok,
            "MessagePack, depth {depth}"
        );
    }
}

#[test]
fn a_null_ref_is_no_ref() {
    let msg = decode_json(r#"{"type":"ping","ref":null}"#).unwrap();
    assert_eq!(msg, ClientMsg::Ping { r#ref: None });
    // A NaN, which MessagePack can carry and JSON cannot, becomes null on the way in.
    let packed = [
        0x92, 0xa4, b'p', b'i', b'n', b'g', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        decode_msgpack(&packed).unwrap(),
        ClientMsg::Ping { r#ref: None }
    );
}
