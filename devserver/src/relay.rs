//! `devserver relay`: a WebSocket relay in front of a real upstream.
//!
//! It exists because of root cause 5 in DESIGN.md: the production relay tore
//! client connections down on any error without a close frame and threw the
//! upstream's close code away. This one:
//! - adds credentials from the environment (`RELAY_AUTH_HEADER`, the full
//!   `Authorization` value, or `DEEPGRAM_API_KEY` → `Token K`), never logged;
//! - relays text, binary and ping frames both ways;
//! - on any close or error on one side sends a proper close frame to the
//!   other side, preserving code and reason (reserved codes mapped), and
//!   waits at most 5 s for the closing handshake;
//! - turns its own failures (upstream unreachable or rejecting the
//!   handshake) into close 1011 (1008 for 401/403) with a reason, never a
//!   bare TCP reset.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::util::truncate_utf8;

/// How long the relay waits for the closing handshake of either side.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound relay.
pub struct Relay {
    listener: TcpListener,
    upstream: String,
    auth: Option<String>,
}

/// The credential from the environment: `RELAY_AUTH_HEADER` (a full
/// `Authorization` value) or `DEEPGRAM_API_KEY` (sent as `Token K`).
pub fn auth_from_env() -> Option<String> {
    if let Ok(v) = std::env::var("RELAY_AUTH_HEADER") {
        if !v.trim().is_empty() {
            return Some(v.trim().to_string());
        }
    }
    match std::env::var("DEEPGRAM_API_KEY") {
        Ok(k) if !k.trim().is_empty() => Some(format!("Token {}", k.trim())),
        _ => None,
    }
}

impl Relay {
    /// Binds `listen` and checks the upstream URL; credentials come from the
    /// environment.
    pub async fn bind(listen: &str, upstream: &str) -> std::io::Result<Relay> {
        Relay::bind_with_auth(listen, upstream, auth_from_env()).await
    }

    /// Like [`Relay::bind`] with an explicit credential (tests).
    pub async fn bind_with_auth(
        listen: &str,
        upstream: &str,
        auth: Option<String>,
    ) -> std::io::Result<Relay> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        if !(upstream.starts_with("ws://") || upstream.starts_with("wss://")) {
            return Err(invalid(format!(
                "upstream must start with ws:// or wss://, got {upstream:?}"
            )));
        }
        if auth
            .as_deref()
            .is_some_and(|a| HeaderValue::from_str(a).is_err())
        {
            return Err(invalid("the credential is not a valid header value".into()));
        }
        // tokio-tungstenite's rustls has no crypto provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        Ok(Relay {
            listener,
            upstream: upstream.trim_end_matches('/').to_string(),
            auth,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run(self) {
        let shared = Arc::new((self.upstream, self.auth));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("relay: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                if let Err(e) = handle(stream, &shared.0, shared.1.as_deref()).await {
                    eprintln!("relay: {peer}: {e}");
                }
            });
        }
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// What the client asked for in its handshake.
#[derive(Default)]
struct ClientAsk {
    path_and_query: String,
    protocols: Vec<String>,
    authorization: Option<HeaderValue>,
}

async fn handle(stream: TcpStream, upstream: &str, auth: Option<&str>) -> Result<(), String> {
    let ask = Arc::new(Mutex::new(ClientAsk::default()));
    let ask_cb = ask.clone();
    // The error type is tungstenite's `ErrorResponse`, imposed by its
    // callback trait; this closure never fails.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut res: Response| {
        let protocols = crate::util::offered_protocols(req.headers());
        // Browsers fail a handshake whose offered subprotocols get no
        // answer, and the upstream's choice is not known yet: select the
        // first offered one (`token` for Deepgram-style auth).
        if let Some(first) = protocols
            .first()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            res.headers_mut().insert("sec-websocket-protocol", first);
        }
        let mut a = ask_cb.lock().unwrap_or_else(|e| e.into_inner());
        a.path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/".into(), |p| p.to_string());
        a.protocols = protocols;
        a.authorization = req.headers().get("authorization").cloned();
        Ok(res)
    };
    let mut client =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config()))
            .await
            .map_err(|e| format!("client handshake failed: {e}"))?;
    let ask = std::mem::take(&mut *ask.lock().unwrap_or_else(|e| e.into_inner()));

    let mut upstream_ws = match connect_upstream(upstream, auth, &ask).await {
        Ok(ws) => ws,
        Err((code, reason)) => {
            close_and_wait(&mut client, code, &reason).await;
            return Err(reason);
        }
    };
    pump(&mut client, &mut upstream_ws).await;
    Ok(())
}

type Upstream = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect_upstream(
    upstream: &str,
    auth: Option<&str>,
    ask: &ClientAsk,
) -> Result<Upstream, (u16, String)> {
    let url = format!("{upstream}{}", ask.path_and_query);
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| (1011, format!("bad upstream url: {e}")))?;
    let headers = req.headers_mut();
    match auth {
        // The relay's own credential replaces whatever the client sent,
        // including a `token, K` subprotocol, which is therefore not passed on.
        Some(a) => {
            if let Ok(v) = HeaderValue::from_str(a) {
                headers.insert("authorization", v);
            }
        }
        None => {
            if let Some(v) = &ask.authorization {
                headers.insert("authorization", v.clone());
            }
            if !ask.protocols.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&ask.protocols.join(", ")) {
                    headers.insert("sec-websocket-protocol", v);
                }
            }
        }
    }
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Http(res))) => {
            let s = res.status().as_u16();
            let code = if s == 401 || s == 403 { 1008 } else { 1011 };
            Err((code, format!("upstream handshake failed: {s}")))
        }
        Ok(Err(e)) => Err((
            1011,
            truncate_utf8(&format!("upstream unreachable: {e}"), 123).to_string(),
        )),
        Err(_) => Err((1011, "upstream handshake timed out".into())),
    }
}

/// Maps a received close (or its absence) to one the relay may send on.
pub fn map_close(code: Option<u16>, reason: &str, side: &str) -> (u16, String) {
    let reason = truncate_utf8(reason, 123).to_string();
    match code {
        None | Some(1005) => (1000, reason),
        Some(1006) => (1011, format!("{side} closed abnormally")),
        Some(1015) => (1011, format!("{side} TLS failure")),
        Some(c) if crate::faults::valid_close_code(i64::from(c)) => (c, reason),
        Some(_) => (1011, reason),
    }
}

enum Side {
    Client,
    Upstream,
}

/// Relays frames until either side closes or fails, then closes the other.
async fn pump<C, U>(client: &mut WebSocketStream<C>, upstream: &mut WebSocketStream<U>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let (from, msg) = tokio::select! {
            m = client.next() => (Side::Client, m),
            m = upstream.next() => (Side::Upstream, m),
        };
        let (side_name, other_name) = match from {
            Side::Client => ("client", "upstream"),
            Side::Upstream => ("upstream", "client"),
        };
        let ended: Option<(u16, String)> = match msg {
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((None, String::new()), |f| {
                    (Some(u16::from(f.code)), f.reason.to_string())
                });
                Some(map_close(code, &reason, side_name))
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => None,
            Some(Ok(m)) => {
                let sent = match from {
                    Side::Client => upstream.send(m).await,
                    Side::Upstream => client.send(m).await,
                };
                if sent.is_err() {
                    // The other side failed while we wrote to it: close the
                    // side that is still there.
                    let (code, reason) = map_close(Some(1006), "", other_name);
                    match from {
                        Side::Client => close_and_wait(client, code, &reason).await,
                        Side::Upstream => close_and_wait(upstream, code, &reason).await,
                    }
                    return;
                }
                None
            }
            Some(Err(_)) | None => Some(map_close(Some(1006), "", side_name)),
        };
        if let Some((code, reason)) = ended {
            // Finish the closed side's handshake (tungstenite queued the
            // echo) while closing the other side properly.
            match from {
                Side::Client => {
                    tokio::join!(close_and_wait(upstream, code, &reason), drain(client));
                }
                Side::Upstream => {
                    tokio::join!(close_and_wait(client, code, &reason), drain(upstream));
                }
            }
            return;
        }
    }
}

/// Sends a close frame and waits (bounded) for the peer's answer.
async fn close_and_wait<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: &str,
) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: truncate_utf8(reason, 123).to_string().into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    drain(ws).await;
}

/// Reads until the stream ends (the closing handshake completes), at most
/// `CLOSE_WAIT`.
async fn drain<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::map_close;

    #[test]
    fn reserved_codes_are_mapped() {
        assert_eq!(map_close(None, "", "upstream"), (1000, String::new()));
        assert_eq!(map_close(Some(1006), "", "upstream").0, 1011);
        assert_eq!(
            map_close(Some(1006), "", "upstream").1,
            "upstream closed abnormally"
        );
        assert_eq!(map_close(Some(1015), "x", "upstream").0, 1011);
        assert_eq!(
            map_close(Some(4321), "custom", "upstream"),
            (4321, "custom".into())
        );
        assert_eq!(
            map_close(Some(4321), &"é".repeat(100), "upstream").1.len(),
            122
        );
    }
}
