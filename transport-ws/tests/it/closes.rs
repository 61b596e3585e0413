//! Every close the server decides reaches the client with its code and reason; clients that
//! stop reading, or never finish their HTTP request, are let go after a set time; none of them
//! delays shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use umpire_engine::protocol::ServerMsg;
use umpire_hub::HubConfig;
use umpire_ws::client::Format;
use umpire_ws::WsConfig;

use crate::common::{
    assert_told_closing_then_1001, serve, stalled_spectator, within, Options, TestServer,
};

/// Flood the server with pings from one connection, reading all the while as a browser or
/// Python's `websockets` does; return the close frame the server sent, if any.
async fn flood(url: String) -> Option<(u16, String)> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        let ping = json!({"type": "ping"}).to_string();
        for _ in 0..100_000 {
            if sink.send(Message::text(ping.clone())).await.is_err() {
                return;
            }
        }
    });
    let mut close = None;
    loop {
        match within(stream.next()).await {
            Some(Ok(Message::Close(frame))) => {
                close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    writer.abort();
    close
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_of_twenty_flooding_clients_see_1008_and_why() {
    let server = serve(Options::default()).await;
    let floods: Vec<_> = (0..20)
        .map(|_| tokio::spawn(flood(server.url("/ws"))))
        .collect();
    let mut seen = Vec::new();
    for flood in floods {
        seen.push(flood.await.unwrap());
    }
    for close in &seen {
        let (code, reason) = close.as_ref().expect("a close frame, not a reset");
        assert_eq!(*code, 1008, "{reason}");
        assert!(reason.contains("rate limit"), "{reason}");
    }
    server.stop().await;
}

fn open_connections(server: &TestServer) -> i64 {
    server.hub.metrics().connections_open.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let ws = WsConfig {
        rate_per_sec: 0,
        send_buffer_bytes: Some(4096),
        write_timeout: Duration::from_millis(300),
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    let game = player.create("tally", Value::Null).await.unwrap();
    let _stalled = stalled_spectator(&server, game.watch.as_ref().unwrap()).await;
    assert_eq!(open_connections(&server), 2);

    // Events pile up toward the spectator until a write waits longer than 300 ms; then it is
    // let go, and the player plays on.
    let mut n = 0;
    while open_connections(&server) == 2 {
        within(player.command(game.game, json!({"add": 1})))
            .await
            .unwrap();
        n += 1;
        assert!(n < 100_000, "the stalled client was never dropped");
        if n % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(open_connections(&server), 1);
    within(player.command(game.game, json!({"add": 1})))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_delay_shutdown_and_the_others_see_1001() {
    // Long timeouts: only the shutdown's own short write deadline can let go of the stalled
    // client in time.
    let ws = WsConfig {
        rate_per_sec: 0,
        send_buffer_bytes: Some(4096),
        write_timeout: Duration::from_secs(600),
        ..WsConfig::default()
    };
    let hub = HubConfig {
        shutdown_grace: Duration::from_secs(600),
        ..HubConfig::default()
    };
    let server = serve(Options {
        ws,
        hub,
        ..Options::default()
    })
    .await;
    let mut player = server.client(Format::Json).await;
    let game = player.create("tally", Value::Null).await.unwrap();
    let _stalled = stalled_spectator(&server, game.watch.as_ref().unwrap()).await;
    // A spectator that keeps up, reading all the while: it sees every event, then `closing`
    // and 1001.
    let mut healthy = server.client(Format::MsgPack).await;
    healthy
        .watch(game.watch.as_ref().unwrap(), None)
        .await
        .unwrap();
    let healthy = tokio::spawn(async move {
        let (mut events, mut saw_closing) = (0, false);
        loop {
            match within(healthy.recv()).await {
                Ok(ServerMsg::Event { .. }) => events += 1,
                Ok(ServerMsg::Closing { .. }) => saw_closing = true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (events, saw_closing, healthy.close_reason().cloned())
    });
    for _ in 0..2000 {
        within(player.command(game.game, json!({"add": 1})))
            .await
            .unwrap();
    }

    let started = Instant::now();
    let TestServer { hub, task, .. } = server;
    tokio::time::timeout(Duration::from_secs(60), hub.shutdown())
        .await
        .expect("shutdown waited for the stalled client")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?} with a stalled client"
    );
    assert_told_closing_then_1001(&mut player).await;
    let (events, saw_closing, close) = within(healthy).await.unwrap();
    assert_eq!(
        events,
        3 + 2000,
        "the spectator saw every event (created, seated, online, the adds)"
    );
    assert!(saw_closing, "the spectator was told why");
    assert_eq!(close.map(|(code, _)| code), Some(1001));
    within(task).await.unwrap().unwrap();
}

/// Open a TCP connection and send half an HTTP request.
async fn half_request(server: &TestServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    stream
}

/// Whether the server has closed `stream` (read gives end of file or a reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0; 256];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_capped_and_cut_off_after_the_handshake_timeout() {
    let ws = WsConfig {
        max_handshakes: 20,
        handshake_timeout: Duration::from_millis(500),
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(half_request(&server).await);
    }
    // Past the cap, a connection is closed at once.
    let mut extra = half_request(&server).await;
    assert!(
        closed_within(&mut extra, Duration::from_millis(400)).await,
        "a connection past max_handshakes was kept"
    );
    // The slow ones are cut off after the handshake timeout, and players get in again.
    for stream in &mut slow {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a half-sent request was kept past the handshake timeout"
        );
    }
    let mut player = server.client(Format::Json).await;
    player.create("tally", Value::Null).await.unwrap();
    // Upgraded connections do not count against the cap.
    let mut more = Vec::new();
    for _ in 0..25 {
        more.push(server.client(Format::Json).await);
    }
    server.stop().await;
}

/// Read `ws` until the server's close frame and then the end of the stream, both within ten
/// seconds; the close's code and reason.
async fn close_and_end(mut ws: WebSocketStream<TcpStream>) -> (u16, String) {
    let deadline = Duration::from_secs(10);
    let read = async {
        let mut close = None;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return close,
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .expect("the close and the end of the stream came only with the drain timeout")
        .expect("a close frame, not a reset")
}

/// A connection to `/ws` whose bytes the test writes itself.
async fn raw_client(server: &TestServer) -> WebSocketStream<TcpStream> {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(server.url("/ws"), stream)
        .await
        .unwrap();
    ws
}

/// A masked client frame: `opcode`, a header announcing `announced` payload bytes, and the
/// first `payload.len()` of them (masked with a zero key, so sent as given).
fn client_frame(opcode: u8, announced: u64, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match announced {
        0..=125 => frame.push(0x80 | announced as u8),
        126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(announced as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&announced.to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// Every close the server decides reaches the client at once, code and reason, followed by
/// the end of the stream, although the server would wait ten minutes for the client's own
/// close: the frame is flushed and the server's half shut before the drain starts. (Before:
/// after an oversized frame or invalid UTF-8 the frame came only when the drain ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_arrive_at_once_though_the_drain_would_wait_ten_minutes() {
    let ws = WsConfig {
        close_drain: Duration::from_secs(600),
        rate_per_sec: 50,
        rate_burst: 10,
        ping_every: Duration::from_secs(600),
        idle_timeout: Duration::from_millis(600),
        ..WsConfig::default()
    };
    let server = serve(Options {
        ws,
        ..Options::default()
    })
    .await;

    // A message over the limit: its header announces 1 MiB, and a part of it follows (the
    // client is still sending the rest when the server decides).
    let mut big = raw_client(&server).await;
    let frame = client_frame(0x1, 1 << 20, &[b'x'; 32 * 1024]);
    big.get_mut().write_all(&frame).await.unwrap();
    let (code, reason) = close_and_end(big).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("65536 bytes"), "{reason}");

    // A text frame that is not UTF-8.
    let mut bad = raw_client(&server).await;
    let frame = client_frame(0x1, 3, &[0xff, 0xfe, 0xfd]);
    bad.get_mut().write_all(&frame).await.unwrap();
    let (code, reason) = close_and_end(bad).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("UTF-8"), "{reason}");

    // Rate abuse: a flood.
    let mut flooder = raw_client(&server).await;
    let ping = json!({"type": "ping"}).to_string();
    let mut burst = Vec::new();
    for _ in 0..2_000 {
        burst.extend(client_frame(0x1, ping.len() as u64, ping.as_bytes()));
    }
    flooder.get_mut().write_all(&burst).await.unwrap();
    let (code, reason) = close_and_end(flooder).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("rate limit"), "{reason}");

    // Silence past the idle timeout (the heartbeat's close).
    let quiet = raw_client(&server).await;
    let (code, reason) = close_and_end(quiet).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("too long"), "{reason}");

    server.stop().await;
}
