//! A real server on a free 127.0.0.1 port, and small raw-socket helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use umpire_games::{Colony, Connect4, HighCard, Tally};
use umpire_hub::{Hub, HubConfig};
use umpire_store::{Log, MemLog};
use umpire_ws::client::{connect, Format, WsClient};
use umpire_ws::{JwtAuth, WsConfig};

pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn client(&self, format: Format) -> WsClient {
        connect(&self.url("/ws"), format).await.expect("connects")
    }

    /// Shut the hub down and wait for the HTTP server to stop.
    pub async fn stop(self) {
        self.hub.shutdown().await.unwrap();
        within(self.task).await.unwrap().unwrap();
    }
}

pub struct Options {
    pub ws: WsConfig,
    pub hub: HubConfig,
    pub log: Arc<dyn Log>,
    pub secret: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ws: WsConfig::default(),
            hub: HubConfig::default(),
            log: Arc::new(MemLog::new()),
            secret: None,
        }
    }
}

pub async fn serve(options: Options) -> TestServer {
    serve_on(options, "127.0.0.1:0".parse().unwrap()).await
}

/// Serve on `addr` (the address of a server that stopped, to restart it there).
pub async fn serve_on(options: Options, addr: SocketAddr) -> TestServer {
    let mut builder = Hub::builder(options.log)
        .config(options.hub)
        .register(Connect4)
        .register(Tally)
        .register(Colony)
        .register(HighCard);
    if let Some(secret) = options.secret {
        builder = builder.authenticator(Arc::new(JwtAuth::hs256(secret.as_bytes())));
    }
    let hub = builder.start().await.unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(umpire_ws::serve(listener, hub.clone(), options.ws));
    TestServer { addr, hub, task }
}

/// Fail instead of hanging.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("timed out")
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http(addr, &request).await
}

/// Send `request` (whole, with `Connection: close`); the status code and the body.
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within(stream.read_to_string(&mut response)).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A spectator with a tiny receive window that subscribes to a busy game and never reads.
pub async fn stalled_spectator(server: &TestServer, watch: &str) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(server.url("/ws"), stream)
        .await
        .unwrap();
    stalled
        .send(Message::text(
            json!({"type": "watch", "key": watch, "ref": 1}).to_string(),
        ))
        .await
        .unwrap();
    stalled
}

/// Read until the server closes; it must have said `closing`, then closed with 1001.
pub async fn assert_told_closing_then_1001(client: &mut WsClient) {
    let mut saw_closing = false;
    loop {
        match within(client.recv()).await {
            Ok(umpire_engine::protocol::ServerMsg::Closing { .. }) => saw_closing = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(saw_closing, "the client was told why");
    assert_eq!(client.close_reason().map(|(code, _)| *code), Some(1001));
}
