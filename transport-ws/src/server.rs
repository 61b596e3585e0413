//! HTTP/1.1 on one port (hyper): the web page, `/healthz`, `/metrics`, and the WebSocket
//! upgrades for `/ws` (native protocol), `/tutorial` (the tutorial's protocol) and
//! `/ws/<facility>` (ws4redis's).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::TaskTracker;
use umpire_hub::{GameId, Health, Hub, Peer};

use crate::address::{client_address, PerAddress};
use crate::coalesce::Coalesce;
use crate::config::WsConfig;
use crate::conn::Encoding;
use crate::limits::{host_allowed, origin_allowed};
use crate::login::Identity;
use crate::socket::{Slot, Socket};
use crate::tls::Tls;
use crate::{conn, tutorial, web, ws4redis};

/// What every request handler shares.
pub(crate) struct Ctx {
    hub: Hub,
    pub(crate) config: Arc<WsConfig>,
    /// WebSocket connections open now, counted against `max_connections`.
    open: Arc<AtomicUsize>,
    /// TCP connections not yet upgraded or served, counted against `max_handshakes`.
    handshaking: AtomicUsize,
    /// WebSocket connections open per client address, counted against
    /// `max_connections_per_address`.
    per_address: Arc<PerAddress>,
}

/// Holds a place under `max_handshakes` until the connection upgrades or ends.
struct Handshaking(Arc<Ctx>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serve HTTP and WebSocket on `listener` until the hub shuts down.
///
/// Stops accepting as soon as `hub.shutdown()` begins; open WebSocket connections are closed
/// by their sessions (with 1001), plain HTTP connections finish their request.
///
/// # Errors
/// None so far: failed accepts are logged and retried. The `Result` leaves room for the
/// listener failing for good.
pub async fn serve(listener: TcpListener, hub: Hub, config: WsConfig) -> std::io::Result<()> {
    serve_with(listener, hub, config, None).await
}

/// [`serve`] over TLS: `https://` and `wss://` on the same port.
///
/// # Errors
/// As [`serve`]. A client whose TLS handshake fails is dropped and logged.
pub async fn serve_tls(
    listener: TcpListener,
    hub: Hub,
    config: WsConfig,
    tls: Tls,
) -> std::io::Result<()> {
    serve_with(listener, hub, config, Some(tls)).await
}

impl Ctx {
    pub(crate) fn new(hub: Hub, config: WsConfig) -> Arc<Ctx> {
        Arc::new(Ctx {
            hub,
            config: Arc::new(config),
            open: Arc::new(AtomicUsize::new(0)),
            handshaking: AtomicUsize::new(0),
            per_address: Arc::default(),
        })
    }
}

async fn serve_with(
    listener: TcpListener,
    hub: Hub,
    config: WsConfig,
    tls: Option<Tls>,
) -> std::io::Result<()> {
    let ctx = Ctx::new(hub, config);
    let stop = ctx.hub.shutdown_token();
    let tracker = TaskTracker::new();
    loop {
        let (stream, addr) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if ctx.handshaking.fetch_add(1, Ordering::AcqRel) >= ctx.config.max_handshakes {
            ctx.handshaking.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(%addr, "too many connections before their upgrade; closed at once");
            continue;
        }
        let place = Handshaking(Arc::clone(&ctx));
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = ctx.config.send_buffer_bytes {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
        }
        let (ctx, stop, tls) = (Arc::clone(&ctx), stop.clone(), tls.clone());
        tracker.spawn(async move {
            let limit = ctx.config.handshake_timeout;
            // The TLS handshake, the request and the upgrade, all within `handshake_timeout`.
            let handshake = async {
                match tls {
                    None => http(ctx, stream, addr, stop).await,
                    Some(Tls(acceptor)) => match acceptor.accept(stream).await {
                        Ok(stream) => http(ctx, stream, addr, stop).await,
                        Err(e) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                    },
                }
            };
            if tokio::time::timeout(limit, handshake).await.is_err() {
                tracing::debug!(%addr, "closed: no complete request within the handshake timeout");
            }
            drop(place);
        });
    }
    drop(listener);
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    Ok(())
}

/// Serve HTTP/1.1 (and upgrades) on one connection until it ends or shutdown begins.
async fn http<I>(ctx: Arc<Ctx>, io: I, addr: SocketAddr, stop: tokio_util::sync::CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(answer(&ctx, req, Some(addr)).await) }
    });
    // Kept alive for more requests only within `handshake_timeout`, like the upgrade.
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%addr, error = %e, "http connection ended");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A request body umpire can read: hyper's own, axum's, any `http_body::Body` of bytes whose
/// error converts to a boxed error. Implemented for every such type; nothing to implement.
pub trait RequestBody: hyper::body::Body<Data = Bytes, Error = Self::E> + Send + 'static {
    /// The body's error.
    type E: Into<Box<dyn std::error::Error + Send + Sync>>;
}

impl<B> RequestBody for B
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type E = B::Error;
}

/// Answer one request, on this server or mounted in another. `addr`: the client's, when the
/// server it came through says (per-address limits and logs use it).
pub(crate) async fn answer<B: RequestBody>(
    ctx: &Arc<Ctx>,
    req: Request<B>,
    addr: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let from = ClientAddr(addr);
    if req.method() == Method::POST && req.uri().path() == "/api/publish" {
        return publish(ctx, req, from).await;
    }
    if req.method() == Method::GET && req.uri().path().starts_with("/api/admin/") {
        return admin(ctx, &req.into_parts().0, from).await;
    }
    if req.method() == Method::GET && req.uri().path() == "/api/games" {
        return open_games(ctx, req.uri().query()).await;
    }
    if let Some(dir) = &ctx.config.web_dir {
        if req.method() == Method::GET
            && host_allowed(
                header(req.headers(), header::HOST),
                &ctx.config.allowed_hosts,
            )
        {
            if let Some(page) = web::from_dir(dir, req.uri().path()).await {
                return respond(StatusCode::OK, page.0, page.1);
            }
        }
    }
    route(ctx, req, addr).await
}

/// A client's address in logs, where the server it came through may not have said it.
#[derive(Clone, Copy)]
struct ClientAddr(Option<SocketAddr>);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("(address unknown)"),
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

async fn route<B: RequestBody>(
    ctx: &Arc<Ctx>,
    req: Request<B>,
    addr: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let host = header(req.headers(), header::HOST);
    if !host_allowed(host, &ctx.config.allowed_hosts) {
        tracing::info!(addr = %ClientAddr(addr), host, "refused a request for another host name");
        return respond(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            format!(
                "this server is not served as {:?}; start it with --allow-host to allow it\n",
                host.unwrap_or_default()
            ),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
    }
    match req.uri().path() {
        "/healthz" => match ctx.hub.health() {
            Health::Ok => plain(StatusCode::OK, "ok\n"),
            failing => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("{failing}\n"),
            ),
        },
        "/metrics" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ctx.hub.metrics().render(),
        ),
        "/ws" => upgrade(ctx, req, addr, Mode::Native).await,
        "/tutorial" => upgrade(ctx, req, addr, Mode::Tutorial).await,
        path if ctx.config.ws4redis.is_some() && path.starts_with("/ws/") => {
            match ws4redis::facility(path) {
                Some(Ok(facility)) => {
                    let mode = Mode::Ws4Redis(facility.to_owned());
                    upgrade(ctx, req, addr, mode).await
                }
                Some(Err(why)) => respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    format!("{why}\n"),
                ),
                None => plain(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
        path => match web::asset(path) {
            Some((content_type, body)) => {
                respond(StatusCode::OK, content_type, Bytes::from_static(body))
            }
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// The largest body `POST /api/publish` reads.
const MAX_PUBLISH_BODY: usize = 128 * 1024;

/// `POST /api/publish` with `Authorization: Bearer <admin token>` and a body
/// `{"channel": "...", "data": ...}`: publish a notice; answers `{"channel", "seq"}`.
async fn publish<B: RequestBody>(
    ctx: &Arc<Ctx>,
    req: Request<B>,
    addr: ClientAddr,
) -> Response<Full<Bytes>> {
    if let Err(refused) = authorized(ctx, req.headers(), addr, "publishing over HTTP") {
        return refused;
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_PUBLISH_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body could not be read (at most {MAX_PUBLISH_BODY} bytes): {e}"),
            )
        }
    };
    #[derive(serde::Deserialize)]
    struct Notice {
        channel: String,
        #[serde(default)]
        data: serde_json::Value,
    }
    let notice: Notice = match serde_json::from_slice(&body) {
        Ok(notice) => notice,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"channel\": \"...\", \"data\": ...}}: {e}"),
            )
        }
    };
    match ctx.hub.publish(&notice.channel, notice.data).await {
        Ok(seq) => json(
            StatusCode::OK,
            &serde_json::json!({ "channel": notice.channel, "seq": seq }),
        ),
        Err(e) => {
            let status = match e.code() {
                umpire_engine::protocol::ErrorCode::BadMessage => StatusCode::BAD_REQUEST,
                umpire_engine::protocol::ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, e.to_string())
        }
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", body.to_string())
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

/// Whether the request carries the admin token; the answer to send if not. `what` names
/// the feature in the answer when no token is configured.
#[allow(clippy::result_large_err)] // the refusal is the response itself
fn authorized(
    ctx: &Ctx,
    headers: &HeaderMap,
    addr: ClientAddr,
    what: &str,
) -> Result<(), Response<Full<Bytes>>> {
    let Some(admin) = ctx.config.admin_token.as_deref() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("{what} is off: start the server with --admin-token"),
        ));
    };
    let given = header(headers, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(given.as_bytes(), admin.as_bytes()) {
        tracing::info!(%addr, what, "refused a request without the admin token");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "send the admin token as Authorization: Bearer <token>".into(),
        ));
    }
    Ok(())
}

/// `GET /api/games[?kind=K]`: the open games (of kind `K`), oldest first, as
/// `{"games": [...]}`; anyone may ask. An unknown kind is 404.
async fn open_games(ctx: &Arc<Ctx>, query: Option<&str>) -> Response<Full<Bytes>> {
    let kind = query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("kind=")));
    match ctx.hub.open_games(kind.filter(|k| !k.is_empty())).await {
        Ok(games) => json(StatusCode::OK, &serde_json::json!({ "games": games })),
        Err(e) => {
            let status = match e.code() {
                umpire_engine::protocol::ErrorCode::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, e.to_string())
        }
    }
}

/// Games listed by `/api/admin/overview`, and events by `/api/admin/games/ID`, at most.
const ADMIN_GAMES: usize = 200;
const ADMIN_EVENTS: usize = 5_000;

/// The monitor's reads, with the admin token:
/// - `GET /api/admin/overview`: games in memory, counts, open connections;
/// - `GET /api/admin/games/ID?at=SEQ`: a game's events and its state after seq `SEQ`.
async fn admin(
    ctx: &Arc<Ctx>,
    req: &hyper::http::request::Parts,
    addr: ClientAddr,
) -> Response<Full<Bytes>> {
    if let Err(refused) = authorized(ctx, &req.headers, addr, "the monitor") {
        return refused;
    }
    let hub = &ctx.hub;
    let path = req.uri.path();
    if path == "/api/admin/overview" {
        let games = hub.game_summaries(ADMIN_GAMES).await;
        let body = serde_json::json!({
            "live": hub.live_games().len(),
            "sleeping": hub.sleeping_games(),
            "games": games,
            "connections": hub.connections(),
        });
        return json(StatusCode::OK, &body);
    }
    let Some(game) = path
        .strip_prefix("/api/admin/games/")
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no such admin resource: {path}"),
        );
    };
    let at = req.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("at="))
            .and_then(|seq| seq.parse().ok())
    });
    match hub.history(GameId(game), at, ADMIN_EVENTS).await {
        Ok(history) => match serde_json::to_value(&history) {
            Ok(body) => json(StatusCode::OK, &body),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(e) => {
            let status = match e.code() {
                umpire_engine::protocol::ErrorCode::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
    }
}

/// Compare secrets in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Which protocol an upgraded connection speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// umpire's own (`/ws`).
    Native,
    /// The `websockets` tutorial's Connect Four (`/tutorial`, seed 001).
    Tutorial,
    /// django-websocket-redis's, on this facility (`/ws/<facility>`, seed 002).
    Ws4Redis(String),
}

/// Check and accept a WebSocket handshake, then hand the connection to the hub.
async fn upgrade<B>(
    ctx: &Arc<Ctx>,
    req: Request<B>,
    addr: Option<SocketAddr>,
    mode: Mode,
) -> Response<Full<Bytes>> {
    let (mut parts, _body) = req.into_parts();
    let query = parts.uri.query().map(str::to_owned);
    let headers = &parts.headers;
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket");
    let (Some(key), true) = (key, is_upgrade) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "this endpoint speaks WebSocket only\n",
        );
    };
    if header(headers, header::SEC_WEBSOCKET_VERSION) != Some("13") {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket version 13 is required\n",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    // Cross-site WebSocket hijacking: a page elsewhere must not act with this user's cookies.
    let origin = header(headers, header::ORIGIN);
    if !origin_allowed(
        origin,
        header(headers, header::HOST),
        &ctx.config.allowed_origins,
    ) {
        tracing::info!(addr = %ClientAddr(addr), origin, "refused a WebSocket from another origin");
        return plain(
            StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket here\n",
        );
    }
    let encoding = if has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, "umpire.msgpack") {
        Encoding::MsgPack
    } else {
        Encoding::Json
    };
    let protocol = match encoding {
        _ if mode != Mode::Native => None,
        Encoding::MsgPack => Some("umpire.msgpack"),
        Encoding::Json if has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, "umpire.json") => {
            Some("umpire.json")
        }
        Encoding::Json => None,
    };

    // The connection hyper hands over after the 101. A server that does not (hyper without
    // `with_upgrades`) is told before anything is reserved, not after the 101.
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        tracing::error!(
            "a WebSocket upgrade came without hyper's OnUpgrade: serve the connection \
             with upgrades (hyper's `serve_connection(..).with_upgrades()`; axum::serve does)"
        );
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this server cannot upgrade connections to WebSocket\n",
        );
    };

    // The application's own sign-in, if it gave one.
    let identity = match &ctx.config.login {
        None => Identity::guest(),
        Some(login) => match login.identify(&parts).await {
            Ok(identity) => {
                if let Some(why) = identity.invalid() {
                    tracing::error!(addr = %ClientAddr(addr), "the login named {why}; refused");
                    return plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the server's login named an invalid identity\n",
                    );
                }
                identity
            }
            Err(refusal) => {
                tracing::info!(addr = %ClientAddr(addr), status = %refusal.status, "the login refused a WebSocket");
                let mut message = refusal.message;
                message.push('\n');
                return respond(refusal.status, "text/plain; charset=utf-8", message);
            }
        },
    };
    let headers = &parts.headers;

    // Reserve places before upgrading: refused here, the client learns why (429, 503).
    let ip = client_address(
        headers,
        addr.map(|a| a.ip()),
        ctx.config.client_address_header.as_deref(),
    );
    let max_per_address = ctx.config.max_connections_per_address;
    let address_slot = match ip {
        None => None,
        Some(ip) => match ctx.per_address.take(ip, max_per_address) {
            Some(slot) => Some(slot),
            None => {
                tracing::info!(%ip, "refused a WebSocket: too many connections from one address");
                let mut response = respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    "text/plain; charset=utf-8",
                    format!("at most {max_per_address} connections from one address at once\n"),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return response;
            }
        },
    };
    let metrics = Arc::clone(ctx.hub.metrics());
    if ctx.open.fetch_add(1, Ordering::AcqRel) >= ctx.config.max_connections {
        ctx.open.fetch_sub(1, Ordering::AcqRel);
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is at capacity; try again later\n",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    }
    metrics.connections_open.inc();
    metrics.connections.inc();
    let slot = Slot {
        open: Arc::clone(&ctx.open),
        metrics: Arc::clone(&metrics),
    };

    let (hub, config) = (ctx.hub.clone(), Arc::clone(&ctx.config));
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(addr = %ClientAddr(addr), error = %e, "upgrade failed");
                return;
            }
        };
        // tungstenite hands each frame down at once (its own write buffer never shrinks);
        // `Coalesce` gathers a batch's frames for one write at the flush and frees its buffer
        // after.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.read_buffer_bytes)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_message_bytes));
        let ws = WebSocketStream::from_raw_socket(
            Coalesce::new(TokioIo::new(upgraded)),
            Role::Server,
            Some(ws_config),
        )
        .await;
        let ws4redis = config.ws4redis.clone();
        let socket = Socket::new(ws, config, metrics, slot, hub.shutdown_token());
        let channels = match &mode {
            Mode::Ws4Redis(facility) => ws4redis::channels(facility, query.as_deref(), &identity),
            _ => Vec::new(),
        };
        let mut session = hub.session(Peer {
            user: identity.user,
            label: ClientAddr(addr).to_string(),
            address: ip,
            groups: identity.groups,
            web_session: identity.session,
        });
        if mode != Mode::Native {
            // The tutorial's and ws4redis's protocols never give a client its resume token.
            session.never_resumed();
        }
        // The connection's one task from here on, this one ending: it reads the client into
        // the session and writes what the session gives back, and holds the connection's place
        // under the address's cap until it ends. A task of its own, not awaited here: this
        // task's state (the upgrade, what built the socket) would stay beside it for the
        // connection's life, 1.3 KiB a connection.
        let hold = move |()| drop(address_slot);
        let session = Box::new(session);
        match (mode, ws4redis) {
            (Mode::Native, _) => tokio::spawn(conn::serve(socket, session, encoding).map(hold)),
            (Mode::Tutorial, _) => tokio::spawn(tutorial::serve(socket, session).map(hold)),
            (Mode::Ws4Redis(_), Some(ws4redis)) => {
                let made = hub.channels_made();
                let serve = ws4redis::serve(socket, session, channels, ws4redis, made);
                tokio::spawn(serve.map(hold))
            }
            (Mode::Ws4Redis(_), None) => return,
        };
    });

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    response
}
