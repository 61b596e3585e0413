//! umpire's WebSocket transport: HTTP/1.1 and WebSocket on one port, with hyper for HTTP and
//! the upgrade and tokio-tungstenite for the socket.
//!
//! - `GET /` and the files of the web client; `GET /healthz`; `GET /metrics` (Prometheus).
//! - `GET /ws`: the native protocol, JSON text frames, or MessagePack binary frames when the
//!   client asks for the subprotocol `umpire.msgpack`.
//! - `GET /tutorial`: the Connect Four protocol of the Python `websockets` tutorial.
//! - `GET /ws/<facility>`: django-websocket-redis's protocol, for its `ws4redis.js`.
//!
//! Frames are only adapted here; sessions, games and rules live in the hub.
//!
//! [`serve`] runs umpire's own HTTP server on a listener; [`Endpoints`] puts the same routes
//! on an application's own server (an axum router, a hyper service), and a [`Login`] lets that
//! application say who each WebSocket's user is from its own sign-in.
//!
//! # Layout
//! - `server`: [`serve`]: accept loop, routes, handshake checks (Origin, login, capacity).
//! - `mount`: [`Endpoints`], the routes as a tower service for another server.
//! - `login`: [`Login`], the application's own sign-in for upgrades.
//! - `socket`: an upgraded WebSocket with umpire's limits (size, UTF-8, rate, heartbeat,
//!   write deadline) and the close handshake.
//! - `conn`: the native protocol: a connection's one task, between its socket and its hub
//!   session.
//! - `tutorial`: the tutorial protocol, a translating layer over a native session.
//! - `ws4redis`: django-websocket-redis's protocol, another such layer.
//! - `limits`: token bucket and Origin allow-list.
//! - `address`: the address a client counts under, and connections open per address.
//! - [`client`]: a Rust client ([`client::WsClient`]).
//! - `tls`: [`Tls`], optional rustls for `https://` and `wss://`.
//! - `auth`: [`JwtAuth`], HS256 tokens for `hello`; [`JwtCookie`], the same in a cookie, as a
//!   [`Login`].
//! - `config`: [`WsConfig`].
//! - `web`: the embedded browser client.

mod address;
mod auth;
pub mod client;
mod coalesce;
mod config;
mod conn;
mod limits;
mod login;
mod mount;
mod server;
mod socket;
mod tls;
mod tutorial;
mod web;
mod ws4redis;

pub use auth::{JwtAuth, JwtCookie};
pub use config::WsConfig;
pub use hyper::http::request::Parts;
pub use login::{Identity, Login, Refusal, MAX_NAME_BYTES};
pub use mount::Endpoints;
pub use server::{serve, serve_tls, RequestBody};
pub use tls::{Tls, TlsError};
pub use tutorial::fuzz_tutorial;
pub use ws4redis::{fuzz_ws4redis, Ws4Redis};
