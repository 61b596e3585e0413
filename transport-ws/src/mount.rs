//! [`Endpoints`]: umpire's HTTP side as a service an application mounts on its own server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use umpire_hub::Hub;

use crate::config::WsConfig;
use crate::server::{answer, Ctx, RequestBody};

/// umpire's endpoints for a server of the application's own: `/ws` (the native protocol),
/// `/tutorial`, `/healthz`, `/metrics`, `/api/publish`, `/api/admin/…` and the web pages, all
/// relative to wherever the application mounts them.
///
/// It is a [`tower_service::Service`], so an axum app mounts it with
/// `Router::nest_service("/umpire", endpoints)` (or `route_service` for one path), and a
/// plain hyper server calls [`Endpoints::handle`]. Every limit and heartbeat of
/// [`WsConfig`] applies to the connections it upgrades, and they close with 1001 when the hub
/// shuts down. What the application's server owns instead: accepting connections, TLS, and
/// the time a request may take before its upgrade (`handshake_timeout` and `max_handshakes`
/// apply to [`serve`](crate::serve) alone).
///
/// The client's address (for the per-address limits and the logs) comes from the request's
/// extensions: axum's `ConnectInfo<SocketAddr>` (serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`), or a plain `SocketAddr` a hyper
/// server inserts; else from `client_address_header` if configured. With none of them the
/// connection is counted on its own, not with others from its address.
#[derive(Clone)]
pub struct Endpoints(Arc<Ctx>);

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// umpire's endpoints over `hub`, with `config`'s limits (and its [`Login`](crate::Login),
    /// if it has one).
    pub fn new(hub: Hub, config: WsConfig) -> Self {
        Endpoints(Ctx::new(hub, config))
    }

    /// Answer one request. Its path is taken as it is: a server that mounts these endpoints
    /// under a prefix strips the prefix first (axum's `nest_service` does).
    pub async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let addr = peer_address(&req);
        answer(&self.0, req, addr).await
    }
}

/// The client's address, where the server the request came through put it.
fn peer_address<B>(req: &Request<B>) -> Option<SocketAddr> {
    let extensions = req.extensions();
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    extensions.get::<SocketAddr>().copied()
}

impl<B: RequestBody> tower_service::Service<Request<B>> for Endpoints {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let endpoints = self.clone();
        Box::pin(async move { Ok(endpoints.handle(req).await) })
    }
}
