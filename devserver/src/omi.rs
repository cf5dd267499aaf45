//! Omi-compatible web listening: `GET /v4/web/listen`.
//!
//! The session is ready only after the first message, `{"type":"auth",
//! "token":...}`, is answered by `auth_response` success and
//! `service_status` ready; this is what the client's "ready" means for Omi.
//! Transcripts are JSON arrays of segments, one per non-empty final (the
//! same finals as Deepgram's for the same audio, in this socket's audio
//! time, so they never overlap); the server sends a text `ping` every 10 s;
//! binary frames of at most 2 bytes are keepalives; one channel only
//! (`channels` other than 1 is an HTTP 400). Omi has no flush, and
//! none is needed: the recognisers end utterances on their own (a pause,
//! or 5 s of speech; the counter every second).

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::app::AppState;
use crate::conn::{Conn, ConnInfo, Ev, Upgrade, MAX_BINARY, MAX_TEXT};
use crate::engine::{self, EngineIn, EngineOut, EngineSpec};
use crate::params::Params;
use crate::recording::SessionRecord;
use crate::util::{fingerprint, token_ok};

pub async fn handler(
    State(app): State<AppState>,
    Extension(info): Extension<ConnInfo>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let record = SessionRecord {
        endpoint: "omi".into(),
        path: "/v4/web/listen".into(),
        ..Default::default()
    };
    match Upgrade::admit(app, info, ws, q, record).await {
        // Omi transcribes one audio stream: say so before the upgrade
        // rather than transcribe half of a stereo stream.
        Ok(up) if up.params.channels != 1 => {
            let msg = format!(
                "channels must be 1 (Omi transcribes a single channel), got {}",
                up.params.channels
            );
            up.reject(StatusCode::BAD_REQUEST, &msg)
        }
        Ok(up) => up.accept(None, |c, p| run(c, p).boxed()),
        Err(res) => res,
    }
}

async fn run(c: &mut Conn, p: Params) {
    let codec = p.query.get("codec").map(String::as_str).unwrap_or("pcm16");
    if !matches!(codec, "pcm16" | "linear16") {
        c.close(1003, &format!("unsupported codec {codec}")).await;
        return;
    }
    if !authenticate(c).await {
        return;
    }
    if !c
        .send_json(&json!({"type": "service_status", "status": "ready"}))
        .await
    {
        return;
    }
    c.set_engine(engine::spawn(EngineSpec {
        kind: p.engine,
        sample_rate: p.sample_rate,
        channels: p.channels,
        per_channel: false,
        grammar: p.grammar,
        base_frames: 0,
        utterance_end_ms: None,
    }));
    let t = c.app.cfg.timeouts.clone();
    let mut last_inbound = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        let ev = c.next().await;
        if matches!(ev, Ev::Text(_) | Ev::Binary(_) | Ev::Control) {
            last_inbound = Instant::now();
        }
        match ev {
            Ev::Binary(b) if b.len() <= 2 => c.session.update(|r| r.keepalives += 1),
            Ev::Binary(b) if b.len() > MAX_BINARY => {
                c.close(1009, "binary frame too large").await;
                return;
            }
            Ev::Binary(b) => {
                c.session.add_audio(&b);
                c.engine_send(EngineIn::Audio(b.to_vec()));
            }
            Ev::Text(t) if t.len() > MAX_TEXT => {
                c.close(1009, "text frame too large").await;
                return;
            }
            Ev::Text(t) => {
                // The web client may send its own `pong`/keepalive texts;
                // anything else is counted and ignored, never fatal.
                if t.trim() == "pong" || t.trim() == "ping" {
                    c.session.update(|r| r.keepalives += 1);
                } else {
                    c.session.update(|r| r.invalid_messages += 1);
                }
            }
            Ev::Engine(EngineOut::Transcript(tr)) => {
                // Segments are committed text, as Omi's own: its backend
                // asks its recogniser for finals only (Deepgram with
                // `interim_results=False`), and clients take each
                // segment's end as proof that the audio before it was
                // processed. An interim here would confirm audio whose
                // words are still to come, and come back as a second,
                // overlapping "final". Empty finals (silence) are not sent.
                if !tr.is_final || tr.text.is_empty() {
                    continue;
                }
                let seg = json!([{
                    "id": uuid::Uuid::new_v4().to_string(),
                    "text": tr.text,
                    "speaker": "SPEAKER_00",
                    "speaker_id": 0,
                    "is_user": false,
                    "person_id": Value::Null,
                    "start": tr.start,
                    "end": tr.end,
                }]);
                if !c.send_json(&seg).await {
                    return;
                }
                c.session.update(|r| r.transcripts_sent += 1);
            }
            // Omi has no VAD events and no flush.
            Ev::Engine(
                EngineOut::Flushed
                | EngineOut::SpeechStarted { .. }
                | EngineOut::UtteranceEnd { .. },
            ) => {}
            Ev::Engine(EngineOut::Failed(e)) => {
                eprintln!("devserver: engine failed: {e}");
                c.close(1011, &format!("engine failed: {e}")).await;
                return;
            }
            Ev::Tick => {
                if last_inbound.elapsed() >= t.omi_idle {
                    c.close(1001, "no data received").await;
                    return;
                }
                if last_ping.elapsed() >= t.ping {
                    last_ping = Instant::now();
                    if !c
                        .send(axum::extract::ws::Message::Text("ping".into()))
                        .await
                    {
                        return;
                    }
                }
            }
            Ev::Control => {}
            Ev::ClientClosed | Ev::Gone | Ev::End => return,
        }
    }
}

/// Waits for the `auth` message. True when the session may go on.
async fn authenticate(c: &mut Conn) -> bool {
    let deadline = Instant::now() + c.app.cfg.timeouts.auth;
    loop {
        match c.next().await {
            Ev::Tick => {
                if Instant::now() >= deadline {
                    c.close(1008, "auth timeout").await;
                    return false;
                }
            }
            // Keepalive bytes may precede auth.
            Ev::Binary(b) if b.len() <= 2 => c.session.update(|r| r.keepalives += 1),
            Ev::Text(t) if t.len() <= MAX_TEXT => {
                let v: Option<Value> = serde_json::from_str(&t).ok();
                let is_auth = v
                    .as_ref()
                    .and_then(|v| v.get("type"))
                    .and_then(Value::as_str)
                    == Some("auth");
                if !is_auth {
                    c.session.update(|r| r.invalid_messages += 1);
                    c.close(1008, "auth required").await;
                    return false;
                }
                let token = v
                    .as_ref()
                    .and_then(|v| v.get("token"))
                    .and_then(Value::as_str);
                let ok = token_ok(c.app.cfg.token.as_deref(), token);
                c.session.update(|r| {
                    r.token_fingerprint = token.map(fingerprint);
                    r.authenticated = ok;
                });
                let sent = c
                    .send_json(&json!({"type": "auth_response", "success": ok}))
                    .await;
                if !ok {
                    if sent {
                        c.close(1008, "unauthorized").await;
                    }
                    return false;
                }
                return sent;
            }
            Ev::Text(_) | Ev::Binary(_) => {
                c.session.update(|r| r.invalid_messages += 1);
                c.close(1008, "auth required").await;
                return false;
            }
            Ev::Engine(_) | Ev::Control => {}
            Ev::ClientClosed | Ev::Gone | Ev::End => return false,
        }
    }
}
