//! The transport's limits. Every one is configurable; the defaults suit a public game server.

use std::time::Duration;

/// Limits and settings for [`crate::serve`].
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// The largest message accepted, in bytes. A larger one closes the connection with 1009.
    pub max_message_bytes: usize,
    /// WebSocket connections open at once. Past it, upgrades are refused with HTTP 503.
    pub max_connections: usize,
    /// Messages per second per connection (a token bucket); 0 turns the limit off.
    pub rate_per_sec: u32,
    /// Bucket size: how many messages may arrive at once.
    pub rate_burst: u32,
    /// How often the server pings each connection.
    pub ping_every: Duration,
    /// A connection silent (no message, no pong) this long is closed.
    pub idle_timeout: Duration,
    /// A write the client has not taken within this time ends the connection: a client that
    /// stops reading holds its place and its buffers no longer. During shutdown the limit is
    /// one second, so stalled clients never delay the exit.
    pub write_timeout: Duration,
    /// Time from accepting a TCP connection to its WebSocket upgrade (or the end of its one
    /// plain HTTP request). A client that sends its request slowly is cut off after it.
    pub handshake_timeout: Duration,
    /// TCP connections not yet upgraded (or served) at once; more are closed at once. Counted
    /// apart from `max_connections`, so half-sent requests cannot crowd out the players.
    pub max_handshakes: usize,
    /// Origins allowed besides the server's own host and localhost; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Host names the server may be reached under besides IP addresses and `localhost`
    /// (`*` allows any). Requests naming another host get 403: a DNS-rebinding page's
    /// requests name the attacker's host.
    pub allowed_hosts: Vec<String>,
    /// tungstenite's per-connection read buffer (its default, 128 KiB, is costly per idle
    /// connection).
    pub read_buffer_bytes: usize,
    /// The kernel's send buffer per connection (`SO_SNDBUF`); `None` leaves it to the kernel's
    /// autotuning, which lets one stalled client hold megabytes. A small value makes a slow
    /// client fall back to catch-up from the log sooner.
    pub send_buffer_bytes: Option<usize>,
    /// WebSocket connections open at once from one client address (IPv6 addresses count by
    /// their /64 prefix). Past it, upgrades from that address are refused with HTTP 429.
    pub max_connections_per_address: usize,
    /// A request header naming the client's address, set by a reverse proxy in front of the
    /// server (`X-Forwarded-For`: its last address is taken, the one the proxy saw). `None`:
    /// the TCP peer's address. Only for a proxy every connection passes through: anyone
    /// reaching the server directly could name any address.
    pub client_address_header: Option<String>,
    /// How long a connection the server closes is held open for the client's own close. The
    /// close frame and the end of the server's stream go out at once; this only bounds how
    /// long the client may take to close its side (what it still sends meanwhile is read and
    /// thrown away, so that the close frame is not lost to a reset).
    pub close_drain: Duration,
    /// The bearer token `POST /api/publish` requires; `None` turns publishing over HTTP off.
    pub admin_token: Option<String>,
    /// A folder of pages served instead of the built-in ones: a file there answers its path
    /// (`/` is `index.html`); a path it lacks gets the built-in file if there is one (so
    /// `/umpire.js` stays available), else 404. Hidden names (`.git`) and links that lead out
    /// of the folder are never served.
    pub web_dir: Option<std::path::PathBuf>,
    /// Names the user of each WebSocket from its upgrade request (the application's own
    /// sign-in), or refuses it. `None`: every connection starts as a guest and may sign in with
    /// `hello`.
    pub login: Option<std::sync::Arc<dyn crate::Login>>,
    /// django-websocket-redis's clients (seed 002) at `/ws/<facility>`; `None`: those paths
    /// are 404.
    pub ws4redis: Option<crate::Ws4Redis>,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_bytes: 64 * 1024,
            max_connections: 10_000,
            rate_per_sec: 100,
            rate_burst: 200,
            ping_every: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 1024,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            read_buffer_bytes: 1024,
            send_buffer_bytes: None,
            close_drain: Duration::from_secs(5),
            max_connections_per_address: 256,
            client_address_header: None,
            admin_token: None,
            web_dir: None,
            login: None,
            ws4redis: Some(crate::Ws4Redis::default()),
        }
    }
}
