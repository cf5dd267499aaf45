//! Test harness: a devserver upstream and relays in-process on port 0,
//! token minting, a tiny HTTP client, WebSocket helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use devserver::{EngineKind, Server, ServerConfig, Timeouts as DevTimeouts};
use futures_util::{SinkExt, StreamExt};
use resilient_relay::{ClientAuth, Config, DrainHandle, JwtConfig, Relay, RunSummary, Secret};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";
pub const AUDIENCE: &str = "resilient-relay-test";
/// The operator's provider credential, which only the relay holds.
pub const PROVIDER_KEY: &str = "provider-key-42";
pub const DG: &str = "/v1/listen?encoding=linear16&sample_rate=16000";

// --- the upstream -----------------------------------------------------------

pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A devserver (meter engine) that accepts only `PROVIDER_KEY`, so a
/// session the relay did not credential would show up as a 401.
pub async fn upstream() -> Upstream {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../devserver");
    let cfg = ServerConfig {
        port: 0,
        engine: EngineKind::Meter,
        www: root.join("tests/www"),
        pkg: root.join("tests/www/pkg"),
        token: Some(PROVIDER_KEY.into()),
        timeouts: DevTimeouts {
            close_handshake: Duration::from_secs(2),
            ..DevTimeouts::default()
        },
        ..Default::default()
    };
    let server = Server::bind(cfg).await.expect("devserver binds port 0");
    let addr = server.local_addr();
    let task = tokio::spawn(server.run());
    Upstream { addr, task }
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub async fn sessions(&self) -> Vec<Value> {
        let (status, body) = http(self.addr, "GET", "/control/sessions").await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).expect("sessions JSON");
        v["sessions"].as_array().cloned().unwrap_or_default()
    }

    pub async fn control(&self, command: &str, body: &str) {
        let (status, _) = http_body(self.addr, "POST", &format!("/control/{command}"), body).await;
        assert_eq!(status, 200, "control {command}");
    }

    /// Waits until a session matching `pred` exists (bounded: 3 s).
    pub async fn wait_session(&self, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            if let Some(s) = self.sessions().await.into_iter().find(|s| pred(s)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("no matching session in {:?}", self.sessions().await);
    }
}

// --- relays -------------------------------------------------------------------

pub fn jwt() -> ClientAuth {
    ClientAuth::Jwt(JwtConfig {
        secrets: vec![Secret::new(SECRET)],
        audience: AUDIENCE.into(),
        issuer: None,
        leeway: Duration::ZERO,
    })
}

/// The default test configuration: tokens required, the provider key
/// injected, short close waits.
pub fn config(upstream: &str) -> Config {
    let mut c = Config::new("127.0.0.1:0", upstream, jwt());
    c.upstream_auth = Some(Secret::new(format!("Token {PROVIDER_KEY}")));
    c.timeouts.close = Duration::from_secs(2);
    c.timeouts.drain = Duration::from_secs(5);
    c
}

pub struct TestRelay {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub drain: DrainHandle,
    pub task: Option<tokio::task::JoinHandle<RunSummary>>,
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl TestRelay {
    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Drains and waits for `run` to return (bounded: 15 s).
    pub async fn drain_and_join(&mut self) -> RunSummary {
        self.drain.drain();
        let task = self.task.take().expect("relay still running");
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("run returns after a drain")
            .expect("run does not panic")
    }

    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr.unwrap_or(self.addr);
        let (status, body) = http(addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        String::from_utf8(body).expect("metrics are text")
    }
}

pub async fn start_relay(config: Config) -> TestRelay {
    let relay = Relay::bind(config).await.expect("relay binds");
    let addr = relay.local_addr();
    let metrics_addr = relay.metrics_addr();
    let drain = relay.drain_handle();
    let task = Some(tokio::spawn(relay.run()));
    TestRelay {
        addr,
        metrics_addr,
        drain,
        task,
    }
}

// --- tokens -------------------------------------------------------------------

pub fn token(sub: &str) -> String {
    resilient_relay::auth::mint(
        SECRET.as_bytes(),
        sub,
        AUDIENCE,
        None,
        Duration::from_secs(300),
    )
    .unwrap()
}

/// A token with `exp` and `nbf` offset from now by the given seconds.
pub fn token_at(sub: &str, exp_in: i64, nbf_in: Option<i64>, aud: &str, secret: &str) -> String {
    let now = resilient_relay::auth::unix_now() as i64;
    resilient_relay::auth::mint_claims(
        secret.as_bytes(),
        &resilient_relay::auth::Claims {
            sub: sub.into(),
            aud: aud.into(),
            exp: (now + exp_in) as u64,
            nbf: nbf_in.map(|n| (now + n) as u64),
            iat: Some(now as u64),
            iss: None,
        },
    )
    .unwrap()
}

// --- HTTP ---------------------------------------------------------------------

pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    http_body(addr, method, path, "").await
}

/// A minimal HTTP/1.1 request (Connection: close): status and body.
pub async fn http_body(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = http_raw(addr, method, path, body, &[]).await;
    (status, body)
}

pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("http response in time")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

// --- WebSockets -----------------------------------------------------------------

/// Opens a WebSocket with subprotocols and headers: the socket and the
/// subprotocol the server selected.
pub async fn connect(
    url: &str,
    protocols: &[&str],
    headers: &[(&str, &str)],
) -> Result<(Ws, Option<String>), WsError> {
    let mut req = url.into_client_request()?;
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    for (k, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (ws, res) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake in time")?;
    let selected = res
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ws, selected))
}

/// Connects with a fresh token for `sub` as the `token, T` subprotocol pair.
pub async fn connect_as(url: &str, sub: &str) -> Ws {
    let t = token(sub);
    let (ws, sel) = connect(url, &["token", &t], &[])
        .await
        .expect("an authenticated client connects");
    assert_eq!(sel.as_deref(), Some("token"));
    ws
}

/// The HTTP status of a refused handshake.
pub fn refused_status(r: Result<(Ws, Option<String>), WsError>) -> u16 {
    match r {
        Err(WsError::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e:?}"),
        Ok(_) => panic!("expected an HTTP refusal, the handshake succeeded"),
    }
}

#[derive(Debug)]
pub enum Got {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<(u16, String)>),
    Error(String),
    Timeout,
}

/// The next data or close frame (pings skipped).
pub async fn next(ws: &mut Ws, within: Duration) -> Got {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Got::Timeout,
            Ok(None) => return Got::Error("stream ended".into()),
            Ok(Some(Err(e))) => return Got::Error(format!("{e:?}")),
            Ok(Some(Ok(Message::Text(t)))) => return Got::Text(t.to_string()),
            Ok(Some(Ok(Message::Binary(b)))) => return Got::Binary(b.to_vec()),
            Ok(Some(Ok(Message::Close(f)))) => {
                return Got::Close(f.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Reads until a close frame arrives: it and the JSON texts before it.
/// Panics on a stream that ends without one (a reset is a bug here).
pub async fn until_close(ws: &mut Ws, within: Duration) -> (Option<(u16, String)>, Vec<Value>) {
    let deadline = tokio::time::Instant::now() + within;
    let mut texts = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next(ws, left).await {
            Got::Text(t) => {
                if let Ok(v) = serde_json::from_str(&t) {
                    texts.push(v);
                }
            }
            Got::Binary(_) => {}
            Got::Close(c) => {
                // Answer the close like a browser: polling once more
                // flushes tungstenite's queued reply.
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
                return (c, texts);
            }
            other => panic!("expected a close frame, got {other:?} after {texts:?}"),
        }
    }
}

pub async fn send_text(ws: &mut Ws, t: &str) {
    ws.send(Message::Text(t.into())).await.expect("send text");
}

pub async fn send_bin(ws: &mut Ws, b: &[u8]) {
    ws.send(Message::Binary(b.to_vec().into()))
        .await
        .expect("send binary");
}

pub async fn close(ws: &mut Ws, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        })))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// PCM16 bytes of a sine tone (speech-loud for the meter engine).
pub fn tone(secs: f64, amp: f64) -> Vec<u8> {
    (0..(16_000.0 * secs) as usize)
        .flat_map(|i| (((i as f64 * 0.15).sin() * amp * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// The value of a metric series in Prometheus text (`name{labels}` exactly
/// as rendered, labels sorted by name), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
