//! umpire inside an axum app of your own. The app has pages of its own and signs its users in
//! with a cookie of its own; umpire is mounted under `/play` on the app's router, and knows
//! each WebSocket's user from that cookie (a [`Login`]), as if it had said `hello`.
//!
//! `cargo run --example axum [ADDRESS [DATA]]` serves http://127.0.0.1:8091/ (log in
//! ./axum-data). Sign in with any name, then play Connect Four at /play/connect4.html.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use umpire_ws::{Endpoints, Identity, Login, Parts, Refusal, WsConfig};

/// The app's own sign-in: a random token in a cookie, and who it stands for.
#[derive(Debug, Default)]
struct Accounts {
    sessions: Mutex<HashMap<String, String>>,
}

impl Accounts {
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("session="))?;
        let sessions = self.sessions.lock().ok()?;
        sessions.get(token).cloned()
    }
}

/// umpire asks the app who opens each WebSocket.
#[derive(Debug)]
struct CookieLogin(Arc<Accounts>);

#[async_trait::async_trait]
impl Login for CookieLogin {
    async fn identify(&self, request: &Parts) -> Result<Identity, Refusal> {
        match self.0.user(&request.headers) {
            Some(user) => Ok(Identity::user(user)),
            None => Err(Refusal::unauthorized("sign in at / first")),
        }
    }
}

async fn home(State(accounts): State<Arc<Accounts>>, headers: HeaderMap) -> Html<String> {
    Html(match accounts.user(&headers) {
        Some(user) => format!(
            "<!doctype html><title>Arcade</title><h1>Arcade</h1>\
             <p>Signed in as <b class=\"user\">{user}</b>.</p>\
             <p><a href=\"/play/connect4.html\">Play Connect Four</a></p>\
             <form method=post action=/logout><button>Sign out</button></form>"
        ),
        None => "<!doctype html><title>Arcade</title><h1>Arcade</h1>\
                 <form method=post action=/login><input name=name placeholder=\"your name\">\
                 <button>Sign in</button></form>"
            .into(),
    })
}

#[derive(serde::Deserialize)]
struct SignIn {
    name: String,
}

async fn login(
    State(accounts): State<Arc<Accounts>>,
    Form(SignIn { name }): Form<SignIn>,
) -> impl IntoResponse {
    let valid = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            "a name is 1 to 32 letters, digits or _",
        )
            .into_response();
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Ok(mut sessions) = accounts.sessions.lock() {
        sessions.insert(token.clone(), name);
    }
    let cookie = format!("session={token}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout(State(accounts): State<Arc<Accounts>>, headers: HeaderMap) -> Redirect {
    if let (Some(user), Ok(mut sessions)) = (accounts.user(&headers), accounts.sessions.lock()) {
        sessions.retain(|_, name| *name != user);
    }
    Redirect::to("/")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8091".into());
    let data = args.next().unwrap_or_else(|| "axum-data".into());

    let log = Arc::new(umpire_store::SledLog::open(data)?);
    let hub = umpire_hub::Hub::builder(log)
        .register(umpire_games::Connect4)
        .start()
        .await?;
    let accounts = Arc::new(Accounts::default());
    let umpire = Endpoints::new(
        hub.clone(),
        WsConfig {
            login: Some(Arc::new(CookieLogin(Arc::clone(&accounts)))),
            ..WsConfig::default()
        },
    );
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        // /play/ws, /play/connect4.html, /play/umpire.js, /play/metrics, ...
        .nest_service("/play", umpire)
        .with_state(accounts);

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("The arcade is served on http://{}/", listener.local_addr()?);
    let stopping = hub.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        // Answers what is in flight, closes umpire's sockets with 1001, flushes the log.
        if let Err(e) = stopping.shutdown().await {
            eprintln!("shutting down: {e}");
        }
    })
    .await?;
    Ok(())
}
