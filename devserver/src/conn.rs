//! What the three audio endpoints share: the upgrade (query, session
//! record, handshake-time faults, the WebSocket limits), written once in
//! [`Upgrade`], and the session loop that applies faults, gates reads,
//! records closes and multiplexes the socket, control commands, the engine
//! and a tick.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use crate::app::AppState;
use crate::engine::{EngineHandle, EngineIn, EngineOut};
use crate::faults::{Cmd, MalformedKind, NextFault};
use crate::params::{params, Params};
use crate::recording::{Session, SessionRecord};
use crate::util::{now_ms, redacted_query, truncate_utf8};
use crate::wav::wav_bytes;

/// Largest frame tungstenite will accept at all. The endpoints enforce their
/// own, smaller limits with a proper 1009 close; beyond this one the socket
/// just errors.
const MAX_WS_MESSAGE: usize = 16 << 20;
/// Text frames above this close with 1009.
pub const MAX_TEXT: usize = 64 << 10;
/// Binary frames above this close with 1009.
pub const MAX_BINARY: usize = 1 << 20;
/// A send that does not complete in this time means the peer stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A blackhole without an end still ends after this, so no session lives forever.
const MAX_BLACKHOLE: Duration = Duration::from_secs(600);
const TICK: Duration = Duration::from_millis(100);

/// The connection a request arrived on. The accept loop (`http.rs`) attaches it to every
/// request, because the `reset` fault needs the socket's fd after hyper has
/// taken the stream.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The socket's fd. Valid while the connection (or the WebSocket that took
    /// it over) is alive, which is every time a handler looks at it.
    pub fd: RawFd,
}

impl ConnInfo {
    /// Makes the kernel answer the final close() with an RST instead of a FIN
    /// (SO_LINGER with a zero timeout). The caller then drops the socket.
    pub fn arm_reset(&self) {
        // SAFETY: the fd belongs to the live connection this handler serves
        // (see the field doc); it is only borrowed for one setsockopt call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        if let Err(e) = socket2::SockRef::from(&fd).set_linger(Some(std::time::Duration::ZERO)) {
            eprintln!("devserver: cannot arm TCP reset: {e}");
        }
    }
}

/// A session admitted past the handshake faults.
struct Admitted {
    session: Arc<Session>,
    cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    /// Session faults to apply right after the upgrade.
    post: Vec<NextFault>,
}

/// Creates the session record and applies handshake-time faults: `down`
/// (503), `delay-handshake`, `reject`. On `Err` the response is the answer to
/// the upgrade request.
async fn admit(app: &AppState, record: SessionRecord) -> Result<Admitted, Response> {
    let max_pcm = app.cfg.max_audio_secs as usize
        * record.sample_rate.max(1) as usize
        * usize::from(record.channels.max(1))
        * 2;
    let (session, cmd_rx) = app.recorder.create(record, max_pcm);
    if app.faults.is_down() {
        session.add_fault("down");
        return Err(end_http(
            &session,
            StatusCode::SERVICE_UNAVAILABLE,
            "server is down (fault injected)",
        ));
    }
    let mut post = Vec::new();
    for fault in app.faults.take_next() {
        session.add_fault(fault.label());
        match fault {
            NextFault::DelayHandshake { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            NextFault::Reject { status } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return Err(end_http(
                    &session,
                    status,
                    "handshake rejected (fault injected)",
                ));
            }
            other => post.push(other),
        }
    }
    Ok(Admitted {
        session,
        cmd_rx,
        post,
    })
}

/// A WebSocket upgrade request past the opening every endpoint shares:
/// its query read ([`params`]), its session recorded and admitted past the
/// handshake faults. The endpoint then checks what is its own (Deepgram's
/// options, credentials) and either [`reject`](Upgrade::reject)s it with an
/// HTTP status or [`accept`](Upgrade::accept)s it with its session loop.
pub struct Upgrade {
    ws: WebSocketUpgrade,
    app: AppState,
    info: ConnInfo,
    admitted: Admitted,
    /// The shared query settings, for the endpoint's own checks.
    pub params: Params,
}

impl Upgrade {
    /// Records what the query says, admits the session past the handshake
    /// faults, and answers HTTP 400 for a bad query (after recording it, so
    /// tests see the attempt). On `Err` the response is the answer to the
    /// upgrade request.
    pub async fn admit(
        app: AppState,
        info: ConnInfo,
        ws: WebSocketUpgrade,
        q: HashMap<String, String>,
        mut record: SessionRecord,
    ) -> Result<Upgrade, Response> {
        let p = params(&app, q);
        if let Ok(p) = &p {
            record.query = redacted_query(&p.query);
            record.sample_rate = p.sample_rate;
            record.channels = p.channels;
            record.engine = p.engine.name().into();
        }
        let admitted = admit(&app, record).await?;
        match p {
            Ok(params) => Ok(Upgrade {
                ws,
                app,
                info,
                admitted,
                params,
            }),
            Err(msg) => Err(end_http(&admitted.session, StatusCode::BAD_REQUEST, &msg)),
        }
    }

    pub fn app(&self) -> &AppState {
        &self.app
    }

    pub fn session(&self) -> &Session {
        &self.admitted.session
    }

    /// Ends the session without upgrading, answering with `status`.
    pub fn reject(self, status: StatusCode, msg: &str) -> Response {
        end_http(&self.admitted.session, status, msg)
    }

    /// Upgrades, selecting `protocol` when the client offered it, and runs
    /// `run` as the session loop; the session is finished (socket dropped,
    /// recording written) when it returns.
    pub fn accept<F>(self, protocol: Option<&'static str>, run: F) -> Response
    where
        F: for<'c> FnOnce(&'c mut Conn, Params) -> BoxFuture<'c, ()> + Send + 'static,
    {
        let Upgrade {
            ws,
            app,
            info,
            admitted,
            params,
        } = self;
        ws.protocols(protocol)
            .max_message_size(MAX_WS_MESSAGE)
            .max_frame_size(MAX_WS_MESSAGE)
            .on_upgrade(move |socket| async move {
                let mut c = Conn::new(socket, admitted, app, info);
                run(&mut c, params).await;
                c.finish().await;
            })
    }
}

/// Ends a session that never upgraded, answering with `status`.
fn end_http(session: &Session, status: StatusCode, msg: &str) -> Response {
    session.update(|r| {
        r.http_status = status.as_u16();
        r.ended_at_ms = Some(now_ms());
    });
    (
        status,
        axum::Json(json!({ "error": msg, "status": status.as_u16() })),
    )
        .into_response()
}

/// What the session loop hands to an endpoint.
#[derive(Debug)]
pub enum Ev {
    Text(String),
    Binary(Bytes),
    /// A ping or pong arrived (counts as inbound activity).
    Control,
    /// The client sent a close frame (already recorded and answered).
    ClientClosed,
    /// The socket failed or ended without a close frame.
    Gone,
    Engine(EngineOut),
    /// Periodic wake-up (every 100 ms) for timers.
    Tick,
    /// The session was ended by a fault (close, reset, flap).
    End,
}

pub struct Conn {
    ws: WebSocket,
    pub session: Arc<Session>,
    pub app: AppState,
    info: ConnInfo,
    cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    /// Where audio for this connection's own engine goes (Deepgram, Omi).
    engine_tx: Option<mpsc::UnboundedSender<EngineIn>>,
    /// Where results come from: this connection's engine, or the generic
    /// stream's engine it listens to.
    engine_rx: Option<mpsc::UnboundedReceiver<EngineOut>>,
    read_gate: Option<Instant>,
    blackhole_until: Option<Instant>,
    /// `stuck-reader`: no reads until then; writes go on.
    stuck_until: Option<Instant>,
    tick: tokio::time::Interval,
    started: Instant,
    closed: bool,
}

impl Conn {
    fn new(ws: WebSocket, admitted: Admitted, app: AppState, info: ConnInfo) -> Conn {
        let Admitted {
            session,
            cmd_rx,
            post,
        } = admitted;
        session.ctl.live.store(true, Ordering::SeqCst);
        session.update(|r| r.http_status = 101);
        for fault in post {
            let cmd = match fault {
                NextFault::Close {
                    code,
                    reason,
                    hold_ms,
                } => Some(Cmd::Close {
                    code,
                    reason,
                    hold: hold_ms.map(Duration::from_millis),
                }),
                NextFault::Reset => Some(Cmd::Reset),
                NextFault::Blackhole { ms } => Some(Cmd::Blackhole(ms.map(Duration::from_millis))),
                NextFault::StuckReader { ms } => {
                    Some(Cmd::StuckReader(ms.map(Duration::from_millis)))
                }
                NextFault::Malformed { malformed } => Some(Cmd::Malformed(malformed)),
                NextFault::StopAcking => {
                    session.ctl.stop_acking.store(true, Ordering::SeqCst);
                    None
                }
                NextFault::InterimsOnly => {
                    session.ctl.interims_only.store(true, Ordering::SeqCst);
                    None
                }
                NextFault::SlowReads { bytes_per_sec } => {
                    session
                        .ctl
                        .slow_reads_bps
                        .store(bytes_per_sec, Ordering::SeqCst);
                    None
                }
                NextFault::DelayHandshake { .. } | NextFault::Reject { .. } => None,
            };
            if let Some(cmd) = cmd {
                let _ = session.ctl.tx.send(cmd);
            }
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Conn {
            ws,
            session,
            app,
            info,
            cmd_rx,
            engine_tx: None,
            engine_rx: None,
            read_gate: None,
            blackhole_until: None,
            stuck_until: None,
            tick,
            started: Instant::now(),
            closed: false,
        }
    }

    /// Gives the connection an engine of its own; its results come out of
    /// [`Conn::next`] as [`Ev::Engine`].
    pub fn set_engine(&mut self, engine: EngineHandle) {
        self.engine_tx = Some(engine.tx);
        self.engine_rx = Some(engine.rx);
    }

    /// Hears results of an engine the connection does not own (a generic
    /// stream's, fed through the stream).
    pub fn listen_engine(&mut self, rx: mpsc::UnboundedReceiver<EngineOut>) {
        self.engine_rx = Some(rx);
    }

    pub fn engine_send(&self, msg: EngineIn) {
        if let Some(tx) = &self.engine_tx {
            let _ = tx.send(msg);
        }
    }

    /// Whether acks/transcripts are suppressed (`stop-acking`).
    pub fn stop_acking(&self) -> bool {
        self.app.faults.stop_acking() || self.session.ctl.stop_acking.load(Ordering::SeqCst)
    }

    /// Whether finals go out as interims (`interims-only`, Deepgram).
    pub fn interims_only(&self) -> bool {
        self.app.faults.interims_only() || self.session.ctl.interims_only.load(Ordering::SeqCst)
    }

    fn slow_reads(&self) -> u64 {
        let per_session = self.session.ctl.slow_reads_bps.load(Ordering::SeqCst);
        let global = self.app.faults.slow_reads();
        match (per_session, global) {
            (0, g) => g,
            (s, 0) => s,
            (s, g) => s.min(g),
        }
    }

    /// The next event. Faults are applied here, so endpoints never see them.
    pub async fn next(&mut self) -> Ev {
        loop {
            if self.closed {
                return Ev::End;
            }
            if let Some(until) = self.blackhole_until {
                // Blackhole: neither read nor write nor tick; only control
                // commands are heard.
                tokio::select! {
                    _ = sleep_until(until) => self.blackhole_until = None,
                    cmd = self.cmd_rx.recv() => match cmd {
                        Some(Cmd::Blackhole(_)) => {}
                        Some(cmd) => {
                            self.blackhole_until = None;
                            if let Some(ev) = self.apply(cmd).await {
                                return ev;
                            }
                        }
                        None => self.blackhole_until = None,
                    },
                }
                if self.blackhole_until.is_none() {
                    if let Some(ev) = self.discard_blackholed().await {
                        return ev;
                    }
                    self.tick.reset();
                }
                continue;
            }
            if let Some(every) = self.app.faults.flap() {
                if self.started.elapsed() >= every {
                    self.session.add_fault("flap");
                    self.close(1012, "flap").await;
                    return Ev::End;
                }
            }
            let gate = self.read_gate;
            let stuck = self.stuck_until;
            tokio::select! {
                // Order matters: control first; then the tick and the engine,
                // which are ready at most every 100 ms or per result, so a
                // client sending as fast as it can (a replayed backlog)
                // cannot starve acks, pings and transcripts; the socket last.
                biased;
                cmd = self.cmd_rx.recv() => {
                    if let Some(cmd) = cmd {
                        if let Some(ev) = self.apply(cmd).await {
                            return ev;
                        }
                    }
                }
                _ = self.tick.tick() => return Ev::Tick,
                out = recv_engine(&mut self.engine_rx) => match out {
                    Some(out) => return Ev::Engine(out),
                    None => self.engine_rx = None,
                },
                _ = sleep_until(gate.unwrap_or_else(Instant::now)), if gate.is_some() => {
                    self.read_gate = None;
                }
                _ = sleep_until(stuck.unwrap_or_else(Instant::now)), if stuck.is_some() => {
                    self.stuck_until = None;
                }
                msg = self.ws.recv(), if gate.is_none() && stuck.is_none() => {
                    return self.incoming(msg).await;
                }
            }
        }
    }

    /// Ends a blackhole: what the client sent into it is in the socket
    /// buffer now, and is dropped as a dead network path would have dropped
    /// it (recording it would duplicate the audio the client replays on its
    /// next connection). A close or failure found there ends the session.
    async fn discard_blackholed(&mut self) -> Option<Ev> {
        let mut bytes = 0u64;
        let mut found = None;
        while let Some(msg) = self.ws.recv().now_or_never() {
            match msg {
                Some(Ok(Message::Text(t))) => bytes += t.len() as u64,
                Some(Ok(Message::Binary(b))) => bytes += b.len() as u64,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => {
                    found = Some(self.incoming(other).await);
                    break;
                }
            }
        }
        self.session.update(|r| r.blackholed_bytes += bytes);
        found
    }

    async fn incoming(&mut self, msg: Option<Result<Message, axum::Error>>) -> Ev {
        match msg {
            Some(Ok(Message::Text(t))) => {
                self.gate_reads(t.len());
                Ev::Text(t.to_string())
            }
            Some(Ok(Message::Binary(b))) => {
                self.gate_reads(b.len());
                Ev::Binary(b)
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ev::Control,
            Some(Ok(Message::Close(frame))) => {
                self.session.update(|r| {
                    r.close_code_received = Some(frame.as_ref().map_or(1005, |f| f.code));
                    r.close_reason_received = frame.as_ref().map(|f| f.reason.to_string());
                });
                // tungstenite queued the echo; reading once more flushes it
                // and completes the closing handshake.
                let _ = timeout(Duration::from_secs(1), self.ws.recv()).await;
                self.closed = true;
                Ev::ClientClosed
            }
            Some(Err(_)) | None => {
                self.closed = true;
                Ev::Gone
            }
        }
    }

    /// `slow-reads`: after a frame of `len` bytes, pause reading for as long
    /// as the budget takes to cover it, so the client's buffers fill up.
    fn gate_reads(&mut self, len: usize) {
        let bps = self.slow_reads();
        if bps > 0 {
            let secs = len as f64 / bps as f64;
            self.read_gate = Some(Instant::now() + Duration::from_secs_f64(secs.min(60.0)));
        }
    }

    async fn apply(&mut self, cmd: Cmd) -> Option<Ev> {
        match cmd {
            Cmd::Close {
                code,
                reason,
                hold: None,
            } => {
                self.close(code, &reason).await;
                Some(Ev::End)
            }
            Cmd::Close {
                code,
                reason,
                hold: Some(hold),
            } => {
                self.close_and_hold(code, &reason, hold).await;
                Some(Ev::End)
            }
            Cmd::Reset => {
                self.info.arm_reset();
                self.closed = true;
                Some(Ev::End)
            }
            Cmd::Blackhole(d) => {
                self.blackhole_until =
                    Some(Instant::now() + d.unwrap_or(MAX_BLACKHOLE).min(MAX_BLACKHOLE));
                None
            }
            Cmd::Malformed(kind) => {
                let msg = match kind {
                    MalformedKind::InvalidJson => {
                        Message::Text("{\"type\": \"Results\", oops".into())
                    }
                    MalformedKind::HugeText => Message::Text("x".repeat(2 << 20).into()),
                    MalformedKind::UnexpectedBinary => {
                        Message::Binary(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]))
                    }
                };
                if !self.send(msg).await {
                    return Some(Ev::Gone);
                }
                None
            }
            Cmd::StuckReader(d) => {
                self.stuck_until =
                    Some(Instant::now() + d.unwrap_or(MAX_BLACKHOLE).min(MAX_BLACKHOLE));
                None
            }
            Cmd::Wake => {
                // Faults changed: a read pause from slow-reads or a stuck
                // reader ends now (what waits in the socket is read as usual).
                self.read_gate = None;
                self.stuck_until = None;
                None
            }
        }
    }

    /// Sends a frame; false when the socket is gone (the session should end).
    pub async fn send(&mut self, msg: Message) -> bool {
        if self.closed {
            return false;
        }
        match timeout(SEND_TIMEOUT, self.ws.send(msg)).await {
            Ok(Ok(())) => true,
            _ => {
                self.closed = true;
                false
            }
        }
    }

    pub async fn send_json(&mut self, v: &serde_json::Value) -> bool {
        self.send(Message::Text(v.to_string().into())).await
    }

    /// Starts the closing handshake and waits (bounded) for the client's reply.
    pub async fn close(&mut self, code: u16, reason: &str) {
        if self.closed || !self.send_close(code, reason).await {
            return;
        }
        let wait = self.app.cfg.timeouts.close_handshake;
        let deadline = Instant::now() + wait;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, self.ws.recv()).await {
            if let Message::Close(frame) = msg {
                self.session.update(|r| {
                    r.close_code_received = Some(frame.as_ref().map_or(1005, |f| f.code));
                    r.close_reason_received = frame.as_ref().map(|f| f.reason.to_string());
                });
                break;
            }
        }
        self.closed = true;
    }

    /// Sends a close frame, then holds the TCP connection for `hold`
    /// without reading or answering (a proxy that forwarded the close but
    /// keeps its leg open): the client sits in CLOSING until it gives up or
    /// the connection drops.
    async fn close_and_hold(&mut self, code: u16, reason: &str, hold: Duration) {
        if self.closed {
            return;
        }
        if self.send_close(code, reason).await {
            tokio::time::sleep(hold.min(MAX_BLACKHOLE)).await;
        }
        self.closed = true;
    }

    /// Records and sends a close frame (the reason cut to the 123 bytes a
    /// frame holds); false when the connection is gone.
    async fn send_close(&mut self, code: u16, reason: &str) -> bool {
        let reason = truncate_utf8(reason, 123).to_string();
        self.session.update(|r| {
            r.close_code_sent = Some(code);
            r.close_reason_sent = Some(reason.clone());
        });
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.send(Message::Close(Some(frame))).await
    }

    /// Ends the session: marks it finished, drops the socket (an RST when a
    /// reset was armed) and writes the recording.
    async fn finish(self) {
        let Conn {
            ws, session, app, ..
        } = self;
        // Dropping the WebSocket closes the fd; with SO_LINGER 0 armed this
        // is what sends the RST.
        drop(ws);
        session.ctl.live.store(false, Ordering::SeqCst);
        // The recording is complete on disk before the session reads as
        // ended, and appears under its name whole (written aside, then
        // renamed): whoever sees `ended_at_ms` or the file reads it all.
        if let Some(dir) = app.cfg.record_dir.clone() {
            let rec = session.snapshot();
            let bytes = wav_bytes(&session.pcm(), rec.sample_rate, rec.channels.max(1));
            let path = dir.join(format!("{}.wav", session.id));
            let partial = dir.join(format!(".{}.wav.partial", session.id));
            let written = match tokio::fs::write(&partial, bytes).await {
                Ok(()) => tokio::fs::rename(&partial, &path).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                eprintln!("devserver: cannot write {}: {e}", path.display());
            }
        }
        session.update(|r| r.ended_at_ms = Some(now_ms()));
    }
}

async fn recv_engine(rx: &mut Option<mpsc::UnboundedReceiver<EngineOut>>) -> Option<EngineOut> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
