//! One relayed session: open the upstream, pump frames both ways, and end
//! both sides with close frames, whoever ends it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{info, warn};

use crate::close::{self, map_close, truncate_utf8, GOING_AWAY};
use crate::limits::{Permit, Refusal};
use crate::shared::Shared;

/// What the handshake decided for one session.
pub(crate) struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    /// The request path (never the query: it may carry a token).
    pub path: String,
    pub subject: Option<String>,
    pub upstream_url: String,
    pub upstream_protocols: Vec<String>,
    pub upstream_authorization: Option<HeaderValue>,
}

type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Resolves once a drain has begun (or the relay is gone).
pub(crate) async fn wait_drain(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|draining| *draining).await;
}

/// Decrements the open-connections gauge however the session ends.
struct OpenGuard(prometheus::IntGauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Runs a session whose client is upgraded, to its end.
pub(crate) async fn run<C>(
    mut client: WebSocketStream<C>,
    s: Session,
    admission: Result<Permit, Refusal>,
    shared: &Shared,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let m = &shared.metrics;
    m.connections_total.inc();
    m.connections_open.inc();
    let _open = OpenGuard(m.connections_open.clone());
    let close_wait = shared.config.timeouts.close;
    let sub = s.subject.as_deref().unwrap_or("-");

    let _permit = match admission {
        Ok(p) => p,
        Err(r) => {
            let (code, reason) = match r {
                Refusal::AtCapacity => close::AT_CAPACITY,
                Refusal::SubjectAtCapacity => close::SUBJECT_AT_CAPACITY,
            };
            info!(session = s.id, peer = %s.peer, sub, code, reason, "refused: limit");
            close_and_wait(&mut client, code, reason, close_wait).await;
            m.close("relay", code);
            return;
        }
    };

    let mut drain = shared.drain.clone();
    let started = Instant::now();
    let connected = tokio::select! {
        r = connect_upstream(&s, shared) => Some(r),
        _ = wait_drain(&mut drain) => None,
    };
    let mut upstream = match connected {
        None => {
            let (code, reason) = close::SERVICE_RESTART;
            close_and_wait(&mut client, code, reason, close_wait).await;
            m.close("relay", code);
            return;
        }
        Some(Err((code, reason))) => {
            warn!(session = s.id, peer = %s.peer, path = %s.path, sub, code, reason = %reason, "upstream failed");
            close_and_wait(&mut client, code, &reason, close_wait).await;
            m.close("relay", code);
            return;
        }
        Some(Ok(u)) => u,
    };
    info!(session = s.id, peer = %s.peer, path = %s.path, sub, "session opened");

    let end = pump(&mut client, &mut upstream, shared, &mut drain, started).await;
    m.close(end.side, end.code);
    info!(
        session = s.id,
        peer = %s.peer,
        sub,
        side = end.side,
        code = end.code,
        bytes_up = end.up,
        bytes_down = end.down,
        secs = started.elapsed().as_secs_f64(),
        "session ended"
    );
}

async fn connect_upstream(s: &Session, shared: &Shared) -> Result<Upstream, (u16, String)> {
    let m = &shared.metrics;
    let mut req = s
        .upstream_url
        .as_str()
        .into_client_request()
        .map_err(|_| (1011, "bad upstream url".to_string()))?;
    let headers = req.headers_mut();
    if let Some(a) = &s.upstream_authorization {
        headers.insert(http::header::AUTHORIZATION, a.clone());
    }
    if !s.upstream_protocols.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&s.upstream_protocols.join(", ")) {
            headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    let t0 = std::time::Instant::now();
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(shared.upstream_ws), true);
    match tokio::time::timeout(shared.config.timeouts.upstream_connect, connect).await {
        Ok(Ok((ws, _))) => {
            m.upstream_connect_seconds
                .observe(t0.elapsed().as_secs_f64());
            Ok(ws)
        }
        Ok(Err(WsError::Http(res))) => {
            m.upstream_failures.with_label_values(&["rejected"]).inc();
            let status = res.status().as_u16();
            let code = if status == 401 || status == 403 {
                1008
            } else {
                1011
            };
            Err((code, format!("upstream handshake failed: {status}")))
        }
        Ok(Err(e)) => {
            m.upstream_failures
                .with_label_values(&["unreachable"])
                .inc();
            Err((
                1011,
                format!("upstream unreachable: {}", close::describe(&e)),
            ))
        }
        Err(_) => {
            m.upstream_failures.with_label_values(&["timeout"]).inc();
            Err((1011, "upstream handshake timed out".into()))
        }
    }
}

/// How a session ended: who ended it (client, upstream or relay) and the
/// code that side used (1006: it vanished without a close frame).
struct End {
    side: &'static str,
    code: u16,
    up: u64,
    down: u64,
}

enum Ev {
    Client(Option<Result<Message, WsError>>),
    Upstream(Option<Result<Message, WsError>>),
    Idle,
    Deadline,
    Drain,
}

fn payload_len(m: &Message) -> u64 {
    match m {
        Message::Text(t) => t.len() as u64,
        Message::Binary(b) => b.len() as u64,
        _ => 0,
    }
}

fn raw_code(frame: &Option<CloseFrame>) -> (Option<u16>, String) {
    frame.as_ref().map_or((None, String::new()), |f| {
        (Some(u16::from(f.code)), f.reason.to_string())
    })
}

/// Relays frames until one side closes or fails, a limit fires or a drain
/// begins; then closes both sides properly.
async fn pump<C, U>(
    client: &mut WebSocketStream<C>,
    upstream: &mut WebSocketStream<U>,
    shared: &Shared,
    drain: &mut watch::Receiver<bool>,
    started: Instant,
) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &shared.config.limits;
    let close_wait = shared.config.timeouts.close;
    // A send that cannot complete for this long means the peer stopped
    // reading; bounding it keeps idle, deadline and drain responsive.
    let send_stall = close_wait;
    let up_bytes = shared.metrics.bytes.with_label_values(&["up"]);
    let down_bytes = shared.metrics.bytes.with_label_values(&["down"]);
    let mut last_client = Instant::now();
    let (mut up, mut down) = (0u64, 0u64);
    let end = |side, code, up, down| End {
        side,
        code,
        up,
        down,
    };
    // The timers and the drain watch live across iterations: created per
    // iteration, each frame would register and cancel two timer entries in
    // the runtime's shared timer wheel. The idle timer is re-armed only
    // when it fires early (a frame came since it was set).
    let idle = sleep_until(last_client + limits.idle_timeout);
    let deadline = sleep_until(started + limits.max_session);
    let drained = wait_drain(drain);
    tokio::pin!(idle, deadline, drained);
    loop {
        let ev = tokio::select! {
            m = client.next() => Ev::Client(m),
            m = upstream.next() => Ev::Upstream(m),
            _ = &mut idle => {
                let due = last_client + limits.idle_timeout;
                if due > Instant::now() {
                    idle.as_mut().reset(due);
                    continue;
                }
                Ev::Idle
            }
            _ = &mut deadline => Ev::Deadline,
            _ = &mut drained => Ev::Drain,
        };
        match ev {
            Ev::Client(Some(Ok(msg))) => {
                last_client = Instant::now();
                match msg {
                    Message::Close(frame) => {
                        let (raw, reason) = raw_code(&frame);
                        let (code, reason) = map_close(raw, &reason, "client");
                        // Finish the client's handshake (tungstenite queued
                        // the echo) while closing the upstream properly.
                        tokio::join!(
                            close_and_wait(upstream, code, &reason, close_wait),
                            drain_ws(client, close_wait)
                        );
                        return end("client", raw.unwrap_or(1005), up, down);
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                    msg => {
                        let n = payload_len(&msg);
                        let sent = tokio::time::timeout(send_stall, upstream.send(msg)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            let (code, reason) = map_close(Some(1006), "", "upstream");
                            close_and_wait(client, code, &reason, close_wait).await;
                            return end("upstream", 1006, up, down);
                        }
                        up += n;
                        up_bytes.inc_by(n);
                    }
                }
            }
            Ev::Client(Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. })))) => {
                let (code, reason) = close::TOO_BIG;
                tokio::join!(
                    close_and_wait(client, code, reason, close_wait),
                    close_and_wait(upstream, GOING_AWAY, "client message too big", close_wait)
                );
                return end("relay", code, up, down);
            }
            Ev::Client(Some(Err(_)) | None) => {
                let (code, reason) = map_close(Some(1006), "", "client");
                close_and_wait(upstream, code, &reason, close_wait).await;
                return end("client", 1006, up, down);
            }
            Ev::Upstream(Some(Ok(msg))) => match msg {
                Message::Close(frame) => {
                    let (raw, reason) = raw_code(&frame);
                    let (code, reason) = map_close(raw, &reason, "upstream");
                    tokio::join!(
                        close_and_wait(client, code, &reason, close_wait),
                        drain_ws(upstream, close_wait)
                    );
                    return end("upstream", raw.unwrap_or(1005), up, down);
                }
                Message::Pong(_) | Message::Frame(_) => {}
                msg => {
                    let n = payload_len(&msg);
                    let sent = tokio::time::timeout(send_stall, client.send(msg)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        let (code, reason) = map_close(Some(1006), "", "client");
                        close_and_wait(upstream, code, &reason, close_wait).await;
                        return end("client", 1006, up, down);
                    }
                    down += n;
                    down_bytes.inc_by(n);
                }
            },
            Ev::Upstream(Some(Err(_)) | None) => {
                let (code, reason) = map_close(Some(1006), "", "upstream");
                close_and_wait(client, code, &reason, close_wait).await;
                return end("upstream", 1006, up, down);
            }
            Ev::Idle => {
                let (code, reason) = close::IDLE;
                tokio::join!(
                    close_and_wait(client, code, reason, close_wait),
                    close_and_wait(upstream, GOING_AWAY, "client idle", close_wait)
                );
                return end("relay", code, up, down);
            }
            Ev::Deadline => {
                let (code, reason) = close::SESSION_LIMIT;
                tokio::join!(
                    close_and_wait(client, code, reason, close_wait),
                    close_and_wait(upstream, GOING_AWAY, "session time limit", close_wait)
                );
                return end("relay", code, up, down);
            }
            Ev::Drain => {
                // The client library reconnects on 1012 and replays what
                // the upstream has not confirmed, through another relay.
                let (code, reason) = close::SERVICE_RESTART;
                tokio::join!(
                    close_and_wait(client, code, reason, close_wait),
                    close_and_wait(upstream, GOING_AWAY, "relay restarting", close_wait)
                );
                return end("relay", code, up, down);
            }
        }
    }
}

/// Sends a close frame and waits (bounded) for the peer's answer.
pub(crate) async fn close_and_wait<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: &str,
    wait: Duration,
) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: truncate_utf8(reason, 123).to_string().into(),
    };
    if let Ok(Ok(())) = tokio::time::timeout(wait, ws.send(Message::Close(Some(frame)))).await {
        drain_ws(ws, wait).await;
    }
}

/// Reads until the stream ends (the closing handshake completes), at most
/// `wait`.
async fn drain_ws<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, wait: Duration) {
    let _ = tokio::time::timeout(wait, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}
