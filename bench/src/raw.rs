//! The raw limits: what a minimal tokio-tungstenite server does with the same work, written
//! here for the comparison.
//!
//! - `raw-fanout`: keeps Connect Four games in memory (no log, no rules beyond turn order and
//!   column height), encodes each event once per wire format, and hands that one frame to
//!   every socket of the game. It speaks the native protocol on `/ws` (the same messages and
//!   frame shapes umpire sends, so the same load generator drives both) and the tutorial's
//!   protocol on `/tutorial`.
//! - `raw-fanout --durable DIR`: the same, durable the plain way: each event's bytes are
//!   appended to a file in `DIR`, and what a batch of moves sends (events, answers) goes out
//!   only after one `write` and one `fdatasync` of the file, made by one thread for every
//!   move waiting (group commit). The physical limit of a durable fan-out server.
//! - `raw-accept`: accepts WebSockets with the given read buffer and holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use umpire_engine::protocol::GameId;
use umpire_engine::protocol::{
    decode_json, decode_msgpack, encode_json, encode_msgpack, ClientMsg, ErrorCode, ServerMsg,
};
use umpire_engine::Seat;
use umpire_engine::Seq;

/// The read buffer umpire's transport uses, so both sides hold the same.
pub(crate) const READ_BUFFER: usize = 4096;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // The same runtime umpire runs on: multi-threaded, one worker per CPU it may use.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn listen() -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("raw server listening on ws://{}/", listener.local_addr()?);
    Ok(listener)
}

fn config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10))
}

/// `raw-accept [READ_BUFFER]`: accept and hold idle WebSockets.
pub(crate) fn accept_server(args: &[String]) -> anyhow::Result<()> {
    let read_buffer = match args.first() {
        Some(n) => n.parse().context("read buffer size")?,
        None => READ_BUFFER,
    };
    runtime()?.block_on(async move {
        let listener = listen().await?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config(read_buffer)))
                        .await
                else {
                    return;
                };
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    })
}

/// `raw-fanout [--durable DIR]`: Connect Four in memory over both protocols.
pub(crate) fn fanout_server(args: &[String]) -> anyhow::Result<()> {
    match args {
        [] => {}
        [flag, dir] if flag == "--durable" => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(std::path::Path::new(dir).join("raw.log"))?;
            let durable = Arc::new(Durable::default());
            let _ = DURABLE.set(Arc::clone(&durable));
            std::thread::Builder::new()
                .name("raw-commit".into())
                .spawn(move || durable.run(file))?;
        }
        other => anyhow::bail!("raw-fanout takes nothing or --durable DIR, not {other:?}"),
    }
    runtime()?.block_on(async move {
        let listener = listen().await?;
        let state = Arc::new(Shared::default());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(Arc::clone(&state), stream));
        }
    })
}

/// How one socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Json,
    MsgPack,
    Tutorial,
}

/// One event, encoded at most once per mode.
#[derive(Debug)]
struct Event {
    msg: ServerMsg,
    tutorial: String,
    frames: [OnceLock<Message>; 3],
}

impl Event {
    fn frame(&self, mode: Mode) -> Message {
        let slot = &self.frames[mode as usize];
        slot.get_or_init(|| match mode {
            Mode::Json => Message::text(encode_json(&self.msg)),
            Mode::MsgPack => Message::binary(encode_msgpack(&self.msg)),
            Mode::Tutorial => Message::text(self.tutorial.clone()),
        })
        .clone()
    }
}

#[derive(Debug)]
struct Socket {
    id: u64,
    mode: Mode,
    tx: UnboundedSender<Message>,
}

#[derive(Debug, Default)]
struct Game {
    heights: [u8; 7],
    moves: u32,
    players: Vec<u64>,
    history: Vec<Arc<Event>>,
    sockets: Vec<Socket>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    games: HashMap<u64, Game>,
    keys: HashMap<String, (u64, bool)>,
}

#[derive(Debug, Default)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// With `--durable`: what waits for the next `fdatasync`.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    sends: Vec<(UnboundedSender<Message>, Message)>,
}

/// With `--durable`: the group commit (see the module's notes).
#[derive(Debug, Default)]
struct Durable {
    pending: Mutex<Pending>,
    ready: std::sync::Condvar,
}

static DURABLE: OnceLock<Arc<Durable>> = OnceLock::new();

impl Durable {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write what waits, `fdatasync`, then send what it held back; for ever.
    fn run(&self, mut file: std::fs::File) {
        use std::io::Write as _;
        loop {
            let batch = {
                let mut pending = self.lock();
                while pending.sends.is_empty() && pending.bytes.is_empty() {
                    pending = self.ready.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
                std::mem::take(&mut *pending)
            };
            if !batch.bytes.is_empty()
                && (file.write_all(&batch.bytes).is_err() || file.sync_data().is_err())
            {
                // A raw server has no recovery: stop answering, and the run reports it.
                return;
            }
            for (tx, message) in batch.sends {
                let _ = tx.send(message);
            }
        }
    }
}

/// Send `message` at once, or with `--durable` after the next `fdatasync` (so that nothing
/// overtakes an event still waiting for it).
fn deliver(tx: &UnboundedSender<Message>, message: Message) {
    match DURABLE.get() {
        Some(durable) => {
            durable.lock().sends.push((tx.clone(), message));
            durable.ready.notify_one();
        }
        None => {
            let _ = tx.send(message);
        }
    }
}

fn send(socket: &Socket, event: &Event) {
    deliver(&socket.tx, event.frame(socket.mode));
}

fn reply(mode: Mode, tx: &UnboundedSender<Message>, msg: &ServerMsg) {
    let frame = match mode {
        Mode::MsgPack => Message::binary(encode_msgpack(msg)),
        _ => Message::text(encode_json(msg)),
    };
    deliver(tx, frame);
}

fn envelope(game: u64, seq: u64, by: Value, body: Value) -> ServerMsg {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ServerMsg::Event {
        game: GameId(game),
        env: json!({"seq": seq, "at": at, "by": by, "body": body}),
    }
}

impl State {
    /// Record an event in `game` and send it to every socket of the game.
    fn publish(&mut self, game: u64, by: Value, body: Value, tutorial: String) -> u64 {
        let Some(g) = self.games.get_mut(&game) else {
            return 0;
        };
        let seq = g.history.len() as u64 + 1;
        let event = Arc::new(Event {
            msg: envelope(game, seq, by, body),
            tutorial,
            frames: Default::default(),
        });
        if let Some(durable) = DURABLE.get() {
            // The event as it is logged: its JSON, with the game and seq in front.
            let mut pending = durable.lock();
            pending.bytes.extend_from_slice(&game.to_be_bytes());
            pending.bytes.extend_from_slice(&seq.to_be_bytes());
            // The JSON frame: encoded once, and kept for the JSON sockets too.
            pending
                .bytes
                .extend_from_slice(&event.frame(Mode::Json).into_data());
        }
        for socket in &g.sockets {
            send(socket, &event);
        }
        g.history.push(event);
        seq
    }

    fn key(&mut self, game: u64, play: bool) -> String {
        self.next_id += 1;
        // As long as umpire's keys, so frames have the same size.
        let key = format!("{:022}", self.next_id);
        self.keys.insert(key.clone(), (game, play));
        key
    }

    /// Add `socket` to `game` and replay what it missed.
    fn subscribe(&mut self, game: u64, socket: Socket) {
        if let Some(g) = self.games.get_mut(&game) {
            for event in &g.history {
                send(&socket, event);
            }
            g.sockets.push(socket);
        }
    }

    fn create(&mut self, id: u64) -> (u64, String, String) {
        self.next_id += 1;
        let game = self.next_id;
        self.games.insert(
            game,
            Game {
                players: vec![id],
                ..Game::default()
            },
        );
        let join = self.key(game, true);
        let watch = self.key(game, false);
        (game, join, watch)
    }

    /// Drop a closed socket; forget games nobody is connected to.
    fn disconnect(&mut self, id: u64) {
        self.games.retain(|_, g| {
            g.sockets.retain(|s| s.id != id);
            !g.sockets.is_empty()
        });
    }

    /// Play `column` in `game` for connection `id`: the event, and an `over` after the last
    /// cell. Returns the last seq, or why not.
    fn play(&mut self, game: u64, id: u64, column: i64) -> Result<u64, &'static str> {
        let g = self.games.get_mut(&game).ok_or("no such game")?;
        let seat = g
            .players
            .iter()
            .position(|p| *p == id)
            .ok_or("not a player")?;
        if g.moves as usize % 2 != seat {
            return Err("It isn't your turn.");
        }
        let c = usize::try_from(column)
            .ok()
            .filter(|c| *c < 7)
            .ok_or("Column out of range.")?;
        if g.heights[c] == 6 {
            return Err("This slot is full.");
        }
        let row = g.heights[c];
        g.heights[c] += 1;
        g.moves += 1;
        let full = g.moves == 42;
        let player = if seat == 0 { "red" } else { "yellow" };
        let tutorial = json!({"type": "play", "player": player, "column": c, "row": row});
        let mut seq = self.publish(
            game,
            json!({"seat": seat}),
            json!({"game": {"player": player, "column": c, "row": row}}),
            tutorial.to_string(),
        );
        if full {
            let over = json!({"over": {"outcome": "draw"}});
            seq = self.publish(game, json!({"seat": seat}), over, String::new());
        }
        Ok(seq)
    }
}

#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn connection(shared: Arc<Shared>, stream: TcpStream) {
    let mut mode = Mode::Json;
    let callback = |request: &Request, mut response: Response| {
        let asks = |p: &str| {
            request
                .headers()
                .get_all("Sec-WebSocket-Protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(',').any(|t| t.trim() == p))
        };
        if request.uri().path() == "/tutorial" {
            mode = Mode::Tutorial;
        } else if asks("umpire.msgpack") {
            mode = Mode::MsgPack;
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("umpire.msgpack"),
            );
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(config(READ_BUFFER)),
    )
    .await
    else {
        return;
    };
    let (tx, mut rx) = unbounded_channel::<Message>();
    let id = {
        let mut state = shared.lock();
        state.next_id += 1;
        state.next_id
    };
    let socket = |mode| Socket {
        id,
        mode,
        tx: tx.clone(),
    };
    let mut tutorial_game = None;
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(message)) = incoming else { break };
                let mut state = shared.lock();
                match (mode, message) {
                    (Mode::Tutorial, Message::Text(text)) => {
                        let Ok(msg) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                        if msg["type"] == "init" {
                            let game = if let Some(key) = msg["join"].as_str() {
                                let Some(&(game, true)) = state.keys.get(key) else { continue };
                                if let Some(g) = state.games.get_mut(&game) { g.players.push(id) }
                                game
                            } else if let Some(key) = msg["watch"].as_str() {
                                let Some(&(game, _)) = state.keys.get(key) else { continue };
                                game
                            } else {
                                let (game, join, watch) = state.create(id);
                                let init = json!({"type": "init", "join": join, "watch": watch});
                                deliver(&tx, Message::text(init.to_string()));
                                game
                            };
                            state.subscribe(game, socket(mode));
                            tutorial_game = Some(game);
                        } else if let (Some(game), Some(column)) = (tutorial_game, msg["column"].as_i64()) {
                            if let Err(e) = state.play(game, id, column) {
                                deliver(&tx, Message::text(json!({"type": "error", "message": e}).to_string()));
                            }
                        }
                    }
                    (_, message) => {
                        let msg = match &message {
                            Message::Text(text) => decode_json(text.as_str()),
                            Message::Binary(bytes) => decode_msgpack(bytes),
                            _ => continue,
                        };
                        let Ok(msg) = msg else { continue };
                        native(&mut state, id, mode, &tx, msg, &socket);
                    }
                }
            }
            Some(first) = rx.recv() => {
                // Everything already queued goes out with one flush.
                if ws.feed(first).await.is_err() {
                    break;
                }
                let mut failed = false;
                while let Ok(more) = rx.try_recv() {
                    if ws.feed(more).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    shared.lock().disconnect(id);
}

/// Answer one native-protocol request.
fn native(
    state: &mut State,
    id: u64,
    mode: Mode,
    tx: &UnboundedSender<Message>,
    msg: ClientMsg,
    socket: &dyn Fn(Mode) -> Socket,
) {
    let r = msg.reference().cloned();
    let answer = match msg {
        ClientMsg::Create { kind, .. } => {
            let (game, join, watch) = state.create(id);
            reply(
                mode,
                tx,
                &ServerMsg::Created {
                    game: GameId(game),
                    kind,
                    join,
                    watch,
                    seat: Seat(0),
                    token: format!("{:022}", 0),
                    session: Some(format!("{:022}", 0)),
                    now: now_ms(),
                    r#ref: r,
                },
            );
            state.publish(
                game,
                json!("system"),
                json!({"created": {"kind": "connect4", "config": null, "seed": 1}}),
                String::new(),
            );
            state.publish(
                game,
                json!("system"),
                json!({"seated": {"seat": 0, "player": format!("guest-{id:08}")}}),
                String::new(),
            );
            state.publish(
                game,
                json!("system"),
                json!({"presence": {"seat": 0, "online": true}}),
                String::new(),
            );
            state.subscribe(game, socket(mode));
            return;
        }
        ClientMsg::Join { key, .. } => match state.keys.get(&key).copied() {
            Some((game, true)) => {
                reply(
                    mode,
                    tx,
                    &ServerMsg::Joined {
                        game: GameId(game),
                        kind: "connect4".into(),
                        seat: Seat(1),
                        token: format!("{:022}", 0),
                        join: None,
                        watch: None,
                        session: Some(format!("{:022}", 0)),
                        now: now_ms(),
                        r#ref: r,
                    },
                );
                if let Some(g) = state.games.get_mut(&game) {
                    g.players.push(id);
                }
                state.publish(
                    game,
                    json!("system"),
                    json!({"seated": {"seat": 1, "player": format!("guest-{id:08}")}}),
                    String::new(),
                );
                state.publish(
                    game,
                    json!("system"),
                    json!({"presence": {"seat": 1, "online": true}}),
                    String::new(),
                );
                state.subscribe(game, socket(mode));
                return;
            }
            _ => ServerMsg::error(ErrorCode::NotFound, "no such key", r),
        },
        ClientMsg::Watch { key, .. } => match state.keys.get(&key).copied() {
            Some((game, _)) => {
                reply(
                    mode,
                    tx,
                    &ServerMsg::Watching {
                        game: GameId(game),
                        kind: "connect4".into(),
                        session: Some(format!("{:022}", 0)),
                        now: now_ms(),
                        r#ref: r,
                    },
                );
                state.subscribe(game, socket(mode));
                return;
            }
            None => ServerMsg::error(ErrorCode::NotFound, "no such key", r),
        },
        ClientMsg::Command { game, cmd, .. } => {
            match state.play(game.0, id, cmd["column"].as_i64().unwrap_or(-1)) {
                Ok(seq) => ServerMsg::Ok {
                    game: Some(game),
                    seq: Some(Seq(seq)),
                    r#ref: r,
                },
                Err(e) => ServerMsg::error(ErrorCode::Rejected, e, r),
            }
        }
        ClientMsg::Leave { game, .. } => {
            if let Some(g) = state.games.get_mut(&game.0) {
                g.sockets.retain(|s| s.id != id);
            }
            ServerMsg::Ok {
                game: Some(game),
                seq: None,
                r#ref: r,
            }
        }
        ClientMsg::Ping { .. } => ServerMsg::Pong {
            now: now_ms(),
            r#ref: r,
        },
        _ => ServerMsg::error(ErrorCode::BadMessage, "not in the raw server", r),
    };
    reply(mode, tx, &answer);
}

/// The wall clock in ms since the epoch, as umpire puts it in its answers.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
