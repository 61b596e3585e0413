//! django-websocket-redis's protocol at `/ws/<facility>` (seed 002), spoken by a raw
//! WebSocket the way `ws4redis.js` speaks it: query keys choose channels, notices arrive as
//! raw text, the heartbeat is echoed, the last message comes on connect.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use umpire_engine::protocol::ErrorCode;
use umpire_ws::client::Format;
use umpire_ws::{Identity, Login, Parts, Refusal, WsConfig};

use crate::common::{http_get, serve, within, Options, TestServer};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const BEAT: &str = "--heartbeat--";

/// The test's sign-in: the user from `x-user`, groups from `x-groups`, the web session from
/// the cookie `sessionid` (Django's name for it).
#[derive(Debug)]
struct Headers;

#[async_trait::async_trait]
impl Login for Headers {
    async fn identify(&self, request: &Parts) -> Result<Identity, Refusal> {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let mut identity = match header("x-user") {
            Some(user) => Identity::user(user),
            None => Identity::guest(),
        };
        if let Some(groups) = header("x-groups") {
            identity = identity.in_groups(groups.split(','));
        }
        if let Some(key) = header("cookie").and_then(|c| c.strip_prefix("sessionid=")) {
            identity = identity.in_session(key);
        }
        Ok(identity)
    }
}

async fn server(login: bool) -> TestServer {
    let ws = WsConfig {
        login: login.then(|| Arc::new(Headers) as Arc<dyn Login>),
        ..WsConfig::default()
    };
    serve(Options {
        ws,
        ..Options::default()
    })
    .await
}

async fn open(server: &TestServer, path: &str, headers: &[(&'static str, &str)]) -> Ws {
    let mut request = server.url(path).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next text frame (pings are answered by tungstenite).
async fn text(ws: &mut Ws) -> String {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next `n` text frames, sorted: frames from different channels have no order.
async fn texts(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(text(ws).await);
    }
    all.sort();
    all
}

async fn publish(server: &TestServer, channel: &str, data: Value) {
    server.hub.publish(channel, data).await.unwrap();
}

#[tokio::test]
async fn a_ws4redis_client_hears_its_facility_as_raw_text_with_heartbeats_and_the_last_message() {
    let server = server(false).await;
    // Not an upgrade; a facility with a colon: refused with why.
    let (status, body) = http_get(server.addr, "/ws/notifications").await;
    assert_eq!(status, 400, "{body}");
    let refused = tokio_tungstenite::connect_async(server.url("/ws/a:b?subscribe-broadcast"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("400"), "{refused}");

    // Nothing was ever published on the facility: the client still hears the first notice.
    let mut first = open(&server, "/ws/notifications?subscribe-broadcast", &[]).await;
    assert_eq!(
        text(&mut first).await,
        BEAT,
        "a heartbeat comes right after connecting"
    );
    let site = "facility:notifications:broadcast";
    publish(&server, site, json!("There will be a site maintenance")).await;
    assert_eq!(text(&mut first).await, "There will be a site maintenance");
    publish(&server, site, json!({"level": "warning"})).await;
    assert_eq!(text(&mut first).await, r#"{"level":"warning"}"#);

    // Each heartbeat is answered at once; other text is taken and not published.
    first.send(Message::text(BEAT)).await.unwrap();
    assert_eq!(text(&mut first).await, BEAT);
    first.send(Message::text("from the client")).await.unwrap();
    assert_eq!(text(&mut first).await, BEAT);

    // Another facility's broadcast is not this one's: the next frame is this one's marker.
    publish(&server, "facility:other:broadcast", json!("elsewhere")).await;
    publish(&server, site, json!("marker")).await;
    assert_eq!(text(&mut first).await, "marker");

    // A client connecting now gets the heartbeat and the last message (only it), then live.
    let mut late = open(&server, "/ws/notifications?Subscribe-Broadcast", &[]).await;
    assert_eq!(texts(&mut late, 2).await, [BEAT, "marker"]);
    publish(&server, site, json!("live")).await;
    assert_eq!(text(&mut late).await, "live");
    assert_eq!(text(&mut first).await, "live");
    server.stop().await;
}

#[tokio::test]
async fn the_login_opens_user_group_and_session_channels_to_their_own_only() {
    let server = server(true).await;
    let chat = |audience: &str| format!("facility:chat:{audience}");
    publish(&server, &chat("user:alice"), json!("for alice")).await;
    publish(&server, &chat("user:bob"), json!("for bob")).await;
    publish(&server, &chat("group:staff"), json!("for staff")).await;
    publish(&server, &chat("session:k1"), json!("for k1")).await;

    let all = "/ws/chat?subscribe-user&subscribe-group&subscribe-session";
    let alice = [
        ("x-user", "alice"),
        ("x-groups", "staff,admins"),
        ("cookie", "sessionid=k1"),
    ];
    let mut a = open(&server, all, &alice).await;
    assert_eq!(
        texts(&mut a, 4).await,
        [BEAT, "for alice", "for k1", "for staff"]
    );
    let mut b = open(
        &server,
        all,
        &[("x-user", "bob"), ("cookie", "sessionid=k2")],
    )
    .await;
    assert_eq!(texts(&mut b, 2).await, [BEAT, "for bob"]);

    // What is published for one reaches that one only: bob's next frame is his own.
    publish(&server, &chat("user:alice"), json!("alice again")).await;
    publish(&server, &chat("group:staff"), json!("staff again")).await;
    publish(&server, &chat("session:k1"), json!("k1 again")).await;
    publish(&server, &chat("user:bob"), json!("bob again")).await;
    assert_eq!(text(&mut b).await, "bob again");
    assert_eq!(
        texts(&mut a, 3).await,
        ["alice again", "k1 again", "staff again"]
    );
    // A group first published on after alice connected reaches her too.
    publish(&server, &chat("group:admins"), json!("for admins")).await;
    assert_eq!(text(&mut a).await, "for admins");

    // The same names are umpire channels, with the same rules for native clients: a guest
    // may not read alice's, and alice (signed in by the login) may.
    let mut guest = server.client(Format::Json).await;
    let refused = guest
        .subscribe(&chat("user:alice"), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
    let mut native = umpire_ws::client::connect_with_headers(
        &server.url("/ws"),
        Format::Json,
        [("x-user", "alice")],
    )
    .await
    .unwrap();
    let (_, game) = native.subscribe(&chat("user:alice"), None).await.unwrap();
    let first = within(native.next_event(game)).await.unwrap();
    assert_eq!(first["body"]["notice"]["data"], json!("for alice"));
    server.stop().await;
}

#[tokio::test]
async fn guests_cannot_make_the_server_keep_a_channel_per_facility_they_invent() {
    let server = server(false).await;
    for i in 0..40 {
        let mut ws = open(
            &server,
            &format!("/ws/made-up-{i}?subscribe-broadcast"),
            &[],
        )
        .await;
        assert_eq!(text(&mut ws).await, BEAT);
        ws.close(None).await.unwrap();
    }
    let mut native = server.client(Format::Json).await;
    let refused = native
        .subscribe("facility:made-up-0:broadcast", None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotFound), "{refused}");
    assert!(
        refused.to_string().contains("nothing was published"),
        "{refused}"
    );
    assert_eq!(
        server.hub.metrics().channels.get(),
        0,
        "no channel was made"
    );
    // A publisher makes one.
    publish(&server, "facility:made-up-0:broadcast", json!(1)).await;
    assert_eq!(server.hub.metrics().channels.get(), 1);
    server.stop().await;
}

#[tokio::test]
async fn without_ws4redis_its_paths_are_not_found() {
    let server = serve(Options {
        ws: WsConfig {
            ws4redis: None,
            ..WsConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (status, _) = http_get(server.addr, "/ws/notifications?subscribe-broadcast").await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// `JwtCookie` (`umpire serve --login-cookie`): a site that signs users in itself sets a cookie
/// with an HS256 token; its `sub`, `groups` and `sid` open the user, group and session
/// channels; no cookie is a guest, a forged one 401.
#[tokio::test]
async fn a_jwt_cookie_names_user_groups_and_session() {
    use crate::limits::{now, signed};
    const SECRET: &str = "cookie-secret";
    let login = umpire_ws::JwtCookie::new("umpire", umpire_ws::JwtAuth::hs256(SECRET.as_bytes()));
    let server = serve(Options {
        ws: WsConfig {
            login: Some(Arc::new(login)),
            ..WsConfig::default()
        },
        ..Options::default()
    })
    .await;
    let chat = |audience: &str| format!("facility:chat:{audience}");
    for audience in ["user:carol", "group:staff", "session:s9", "broadcast"] {
        publish(&server, &chat(audience), json!(format!("to {audience}"))).await;
    }
    let token = signed(
        SECRET,
        &json!({"sub": "carol", "groups": ["staff"], "sid": "s9", "exp": now() + 60}),
    );
    let cookie = format!("csrftoken=x; umpire={token}");
    let all = "/ws/chat?subscribe-user&subscribe-group&subscribe-session&subscribe-broadcast";
    let mut carol = open(&server, all, &[("cookie", &cookie)]).await;
    assert_eq!(
        texts(&mut carol, 5).await,
        [
            BEAT,
            "to broadcast",
            "to group:staff",
            "to session:s9",
            "to user:carol"
        ]
    );
    // No cookie: a guest, who hears the broadcast only.
    let mut guest = open(&server, all, &[]).await;
    assert_eq!(texts(&mut guest, 2).await, [BEAT, "to broadcast"]);
    // A token signed with another secret: refused before the upgrade.
    let forged = signed(
        "not-the-secret",
        &json!({"sub": "carol", "exp": now() + 60}),
    );
    let mut request = server.url(all).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("umpire={forged}").parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    server.stop().await;
}
