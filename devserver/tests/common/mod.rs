//! Test harness: an in-process devserver on port 0 with short timeouts, a
//! tiny HTTP client for `/control`, and WebSocket helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use devserver::{EngineKind, Server, ServerConfig, Timeouts};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Timeouts short enough for tests, long enough for a loaded 2-core CI box.
pub fn fast_timeouts() -> Timeouts {
    Timeouts {
        idle: Duration::from_millis(600),
        auth: Duration::from_millis(500),
        ping: Duration::from_millis(300),
        omi_idle: Duration::from_millis(900),
        start: Duration::from_millis(500),
        ack: Duration::from_millis(100),
        close_handshake: Duration::from_secs(2),
        stream_idle: Duration::from_secs(600),
    }
}

pub fn test_config() -> ServerConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    ServerConfig {
        port: 0,
        engine: EngineKind::Meter,
        www: root.join("tests/www"),
        pkg: root.join("tests/www/pkg"),
        timeouts: fast_timeouts(),
        ..Default::default()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut cfg = test_config();
    f(&mut cfg);
    let server = Server::bind(cfg).await.expect("bind on port 0");
    let addr = server.local_addr();
    let task = tokio::spawn(server.run());
    TestServer { addr, task }
}

impl TestServer {
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
        http(self.addr, method, path, body).await
    }

    pub async fn json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, bytes) = self.http(method, path, body).await;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    /// POSTs a control command, asserting success.
    pub async fn control(&self, command: &str, body: &str) -> Value {
        let (status, v) = self
            .json("POST", &format!("/control/{command}"), Some(body))
            .await;
        assert_eq!(status, 200, "control {command} {body}: {v}");
        v
    }

    pub async fn sessions(&self) -> Vec<Value> {
        let (status, v) = self.json("GET", "/control/sessions", None).await;
        assert_eq!(status, 200);
        v["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until a session matching `pred` exists, returning it.
    pub async fn wait_session(&self, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            if let Some(s) = self.sessions().await.into_iter().find(|s| pred(s)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("no matching session in {:?}", self.sessions().await);
    }

    /// Waits until `n` sessions are live (upgraded and not ended).
    pub async fn wait_live(&self, n: usize) {
        self.wait_session_count(|s| s["http_status"] == 101 && s["ended_at_ms"].is_null(), n)
            .await;
    }

    pub async fn wait_session_count(&self, pred: impl Fn(&Value) -> bool, n: usize) {
        for _ in 0..100 {
            if self.sessions().await.iter().filter(|s| pred(s)).count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!(
            "fewer than {n} matching sessions in {:?}",
            self.sessions().await
        );
    }
}

/// A minimal HTTP/1.1 request (Connection: close), returning status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Vec<u8>) {
    let (head, body) = http_full(addr, method, path, body, &[]).await;
    (head.status, body)
}

pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub async fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &[(&str, &str)],
) -> (Head, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
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
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (Head { status, headers }, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
}

/// Opens a WebSocket with optional subprotocols and headers.
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
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (ws, res) = tokio_tungstenite::connect_async(req).await?;
    let selected = res
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ws, selected))
}

pub async fn connect_ok(url: &str) -> Ws {
    connect(url, &[], &[]).await.expect("websocket connects").0
}

/// What the next frame was.
#[derive(Debug)]
pub enum Got {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<(u16, String)>),
    /// The stream ended or failed without a close frame.
    Error(String),
    /// Nothing within the timeout.
    Timeout,
}

/// The next data or close frame (pings are skipped).
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

/// The next JSON text frame, skipping Omi's `ping` texts.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match next(ws, Duration::from_secs(5)).await {
            Got::Text(t) if t == "ping" => continue,
            Got::Text(t) => {
                return serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON: {t}: {e}"))
            }
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }
}

/// Reads until a close frame arrives, returning it and the JSON texts before it.
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
                // Like a browser, answer the close at once: polling once more
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
    // Complete the handshake.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// PCM16 bytes of a sine tone (speech-loud) or silence (`amp` 0).
pub fn tone(secs: f64, amp: f64, rate: u32) -> Vec<u8> {
    (0..(f64::from(rate) * secs) as usize)
        .flat_map(|i| (((i as f64 * 0.15).sin() * amp * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// A fixture's PCM16 bytes.
pub fn fixture(name: &str) -> devserver::wav::Wav {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    devserver::wav::parse_wav(&bytes).expect("fixture is PCM16 WAV")
}

/// A seeded xorshift generator, so fuzz-style tests are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Seconds as whole microseconds (the devserver's Results rounding).
pub fn us(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1e6).round() as i64
}

/// Seconds as whole milliseconds (three decimals).
pub fn ms(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1e3).round() as i64
}

/// Asserts that the `Results` in `msgs` tile the stream, the way a client
/// confirming audio by finals needs: the first final starts at 0, every
/// result (final or interim) starts exactly where the last final ended —
/// in integer microseconds, the JSON's own rounding, and in three-decimal
/// milliseconds too while boundaries are whole milliseconds (every
/// boundary but the stream's end in these tests) — and the last final,
/// `from_finalize`, ends at the audio sent, within one sample. Returns the
/// finals.
pub fn assert_finals_tile(msgs: &[Value], frames_sent: u64, rate: u32) -> Vec<Value> {
    let mut end_us = 0i64;
    let mut end_ms = 0i64;
    let mut finals: Vec<Value> = Vec::new();
    for m in msgs.iter().filter(|m| m["type"] == "Results") {
        let (s, d) = (us(&m["start"]), us(&m["duration"]));
        assert_eq!(
            s, end_us,
            "a result must start where the last final ended ({end_us} us): {m}\nfinals so far: {finals:#?}"
        );
        assert!(d >= 0, "{m}");
        if m["is_final"] == true {
            if s % 1000 == 0 {
                assert_eq!(ms(&m["start"]), end_ms, "three-decimal tiling: {m}");
            }
            end_us = s + d;
            end_ms = ms(&m["start"]) + ms(&m["duration"]);
            finals.push(m.clone());
        }
    }
    let last = finals.last().expect("at least one final");
    assert_eq!(last["from_finalize"], true, "{last}");
    let end = end_us as f64 / 1e6;
    let sent = frames_sent as f64 / f64::from(rate);
    assert!(
        (end - sent).abs() <= 1.0 / f64::from(rate),
        "the last final ends at {end} s, the audio sent is {sent} s"
    );
    finals
}

/// Sends PCM16 in 100 ms chunks (as the browser client does), then
/// `CloseStream`, and returns the JSON messages up to the close, which must
/// be 1000.
pub async fn stream_and_close(ws: &mut Ws, pcm: &[u8], rate: u32, within: Duration) -> Vec<Value> {
    let chunk = rate as usize / 10 * 2;
    for c in pcm.chunks(chunk) {
        send_bin(ws, c).await;
    }
    send_text(ws, r#"{"type":"CloseStream"}"#).await;
    let (close, msgs) = until_close(ws, within).await;
    assert_eq!(close, Some((1000, String::new())), "{msgs:?}");
    msgs
}

/// The transcript text of a Results message.
pub fn transcript(m: &Value) -> &str {
    m["channel"]["alternatives"][0]["transcript"]
        .as_str()
        .unwrap_or("")
}
