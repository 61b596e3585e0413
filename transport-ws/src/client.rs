//! A Rust client for the native protocol over WebSocket, in JSON or MessagePack: what the
//! tests and benchmarks use, and a starting point for bots.

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use umpire_client::{Client, ClientError, Wire};
use umpire_engine::protocol::{encode_json, encode_msgpack, ClientMsg, ServerMsg};

/// A native-protocol client over WebSocket.
pub type WsClient = Client<WsWire>;

/// Which encoding to ask the server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON text frames (subprotocol `umpire.json`).
    Json,
    /// MessagePack binary frames (subprotocol `umpire.msgpack`).
    MsgPack,
}

/// The client's end of a WebSocket connection.
#[derive(Debug)]
pub struct WsWire {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    format: Format,
    closed: Option<(u16, String)>,
}

/// Connect to `url` (`ws://host:port/ws`) asking for `format`.
///
/// # Errors
/// [`ClientError::Connect`], with the HTTP status if the server refused the handshake.
pub async fn connect(url: &str, format: Format) -> Result<WsClient, ClientError> {
    connect_with(url, format, None).await
}

/// Connect as a browser page from `origin` would.
///
/// # Errors
/// [`ClientError::Connect`], with the HTTP status if the server refused the handshake.
pub async fn connect_with(
    url: &str,
    format: Format,
    origin: Option<&str>,
) -> Result<WsClient, ClientError> {
    connect_with_headers(url, format, origin.map(|origin| ("Origin", origin))).await
}

/// Connect with more request headers: a `Cookie` from an application's own sign-in, an
/// `Origin`.
///
/// # Errors
/// [`ClientError::Connect`], with the HTTP status if the server refused the handshake, or
/// without one if a header is not a valid header.
pub async fn connect_with_headers<'a>(
    url: &str,
    format: Format,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<WsClient, ClientError> {
    let failed = |message: String| ClientError::Connect {
        status: None,
        message,
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| failed(e.to_string()))?;
    let protocol = match format {
        Format::Json => "umpire.json",
        Format::MsgPack => "umpire.msgpack",
    };
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| failed(e.to_string()))?;
        request.headers_mut().append(name, value);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client::new(WsWire {
            ws,
            format,
            closed: None,
        })),
        Err(WsError::Http(response)) => Err(ClientError::Connect {
            status: Some(response.status().as_u16()),
            message: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        }),
        Err(e) => Err(failed(e.to_string())),
    }
}

impl WsWire {
    /// Send any WebSocket message, well-formed or not, to test the server.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.ws.send(message).await.map_err(|_| ClientError::Closed)
    }
}

#[async_trait]
impl Wire for WsWire {
    async fn send(&mut self, msg: ClientMsg) -> Result<(), ClientError> {
        let message = match self.format {
            Format::Json => Message::text(encode_json(&msg)),
            Format::MsgPack => Message::binary(encode_msgpack(&msg)),
        };
        self.send_raw(message).await
    }

    async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send_raw(Message::text(text)).await
    }

    async fn recv(&mut self) -> Result<ServerMsg, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| ClientError::Decode(e.to_string()));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    return rmp_serde_decode(&bytes);
                }
                Some(Ok(Message::Close(frame))) => {
                    if let Some(frame) = frame {
                        self.closed = Some((u16::from(frame.code), frame.reason.to_string()));
                    }
                    return Err(ClientError::Closed);
                }
                Some(Ok(_)) => continue, // pings are answered by tungstenite
                Some(Err(_)) | None => return Err(ClientError::Closed),
            }
        }
    }

    fn close_reason(&self) -> Option<&(u16, String)> {
        self.closed.as_ref()
    }
}

fn rmp_serde_decode(bytes: &[u8]) -> Result<ServerMsg, ClientError> {
    umpire_engine::protocol::decode_server_msgpack(bytes)
        .map_err(|e| ClientError::Decode(e.to_string()))
}
