//! `Endpoints` called as a mounting server would call it, without a socket.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use umpire_hub::Hub;
use umpire_store::MemLog;
use umpire_ws::{Endpoints, WsConfig};

async fn endpoints() -> Endpoints {
    let hub = Hub::builder(Arc::new(MemLog::new())).start().await.unwrap();
    Endpoints::new(hub, WsConfig::default())
}

#[tokio::test]
async fn plain_routes_answer_and_an_upgrade_the_server_cannot_hand_over_is_refused_up_front() {
    let umpire = endpoints().await;
    let health = Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = umpire.handle(health).await;
    assert_eq!(answer.status(), StatusCode::OK);

    // A valid handshake, from a server that kept no `OnUpgrade` for it: never a 101.
    let upgrade = Request::get("/ws")
        .header("host", "127.0.0.1")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = umpire.handle(upgrade).await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("cannot upgrade"),
        "{body:?}"
    );
}
