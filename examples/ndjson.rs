//! A transport of your own: umpire's native protocol as newline-delimited JSON over plain TCP,
//! written against the hub's public API alone. One task per connection: lines from the client
//! go to its hub session (`Session::handle`), and what the session gives back
//! (`Session::next`) goes out a line each. Sessions, games, rules, limits per connection and
//! resuming all live in the hub; the transport only moves bytes. Not here, and owed before
//! exposing it: a rate limit per connection and a write deadline (the WebSocket transport's
//! are in `transport-ws/src/socket.rs`).
//!
//! `cargo run --example ndjson [ADDRESS [DATA]]` serves 127.0.0.1:8092 (log in ./ndjson-data);
//! try `nc 127.0.0.1 8092` and type `{"type":"create","kind":"tally","config":null,"ref":1}`.

use std::net::SocketAddr;

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use umpire_engine::protocol::{decode_json, encode_json, ErrorCode};
use umpire_hub::{Frame, Hub, Outgoing, Peer};

/// The longest line read: a longer one ends the connection (a client cannot make the server
/// buffer without bound).
const MAX_LINE: usize = 64 * 1024;

/// Frames written before one flush, so that a burst of events goes out in few writes.
const BATCH: usize = 64;

async fn connection(stream: TcpStream, addr: SocketAddr, hub: Hub) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
    let mut write = tokio::io::BufWriter::new(write);
    let mut session = hub.session(Peer {
        user: None, // guests until they `hello` with a token, as on /ws
        label: addr.to_string(),
        address: Some(addr.ip()),
        ..Peer::default()
    });
    loop {
        tokio::select! {
            out = session.next() => {
                // This one and whatever else is ready, then one flush.
                let mut out = Some(out);
                let mut written = 0;
                while let Some(next) = out.take() {
                    let line = match next {
                        Outgoing::Frame(Frame::Msg(msg)) => encode_json(&*msg).into_bytes(),
                        Outgoing::Frame(Frame::Event(event)) => match event.json() {
                            Some(json) => json.to_vec(),
                            None => continue, // a corrupt record: the hub has logged it
                        },
                        Outgoing::Close(code, reason) => {
                            // The hub closes (shutting down, a policy): say why, then end.
                            let bye = serde_json::json!({
                                "type": "closed", "code": code.code(), "reason": reason,
                            });
                            let _ = write.write_all(format!("{bye}\n").as_bytes()).await;
                            let _ = write.flush().await;
                            return;
                        }
                    };
                    if write.write_all(&line).await.is_err() || write.write_all(b"\n").await.is_err() {
                        return;
                    }
                    written += 1;
                    if written < BATCH {
                        out = session.try_next();
                    }
                }
                if write.flush().await.is_err() {
                    return;
                }
            }
            // Read only while the session takes requests: otherwise they wait in the socket.
            line = lines.next(), if session.ready_for_input() => match line {
                Some(Ok(line)) if line.trim().is_empty() => {}
                Some(Ok(line)) => match decode_json(&line) {
                    Ok(msg) => session.handle(msg).await,
                    Err(e) => session.refuse(ErrorCode::BadMessage, e.to_string(), None),
                },
                Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                    let _ = write.write_all(b"{\"type\":\"closed\",\"reason\":\"line too long\"}\n").await;
                    let _ = write.flush().await;
                    return;
                }
                // The client went away (its session can be resumed on another connection).
                None | Some(Err(LinesCodecError::Io(_))) => return,
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8092".into());
    let data = args.next().unwrap_or_else(|| "ndjson-data".into());
    let log = std::sync::Arc::new(umpire_store::SledLog::open(data)?);
    let hub = Hub::builder(log)
        .register(umpire_games::Tally)
        .register(umpire_games::Connect4)
        .start()
        .await?;
    let listener = TcpListener::bind(&listen).await?;
    println!(
        "newline-delimited JSON on tcp://{}/",
        listener.local_addr()?
    );
    let stop = hub.shutdown_token();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => drop(tokio::spawn(connection(stream, addr, hub.clone()))),
                Err(e) => eprintln!("accept: {e}"),
            },
            _ = tokio::signal::ctrl_c() => break,
            () = stop.cancelled() => break,
        }
    }
    // Answers what is in flight, tells every session to close (each says why), flushes the log.
    hub.shutdown().await?;
    Ok(())
}
