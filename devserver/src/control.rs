//! The control API (`/control/*`): recordings and fault injection, JSON in
//! and out. Bad input is answered with HTTP 400 and a message naming the
//! field and the value; nothing here panics on input.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::faults::{self, BadInput, Body, Cmd, MalformedKind, NextFault, Scope, MAX_MS};
use crate::wav::wav_bytes;

/// Every `POST /control/<command>`.
pub const COMMANDS: &[&str] = &[
    "delay-handshake",
    "reject",
    "close",
    "reset",
    "blackhole",
    "stuck-reader",
    "down",
    "flap",
    "stop-acking",
    "interims-only",
    "malformed",
    "slow-reads",
    "clear",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/control", get(help))
        .route("/control/sessions", get(sessions).delete(clear_sessions))
        .route("/control/sessions/{id}/audio", get(session_audio))
        .route("/control/sessions/{id}/frames", get(session_frames))
        .route("/control/streams/{stream}/audio", get(stream_audio))
        .route("/control/faults", get(faults_now))
        .route("/control/{command}", post(command))
}

async fn help() -> Json<Value> {
    Json(json!({
        "commands": COMMANDS,
        "get": ["/control/sessions", "/control/sessions/{id}/audio", "/control/sessions/{id}/frames", "/control/streams/{stream}/audio", "/control/faults"],
        "delete": ["/control/sessions"],
    }))
}

async fn sessions(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "sessions": app.recorder.list() }))
}

async fn clear_sessions(State(app): State<AppState>) -> Json<Value> {
    let n = app.recorder.clear();
    app.streams.clear();
    Json(json!({ "ok": true, "cleared": n }))
}

fn wav_response(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": what }))).into_response()
}

async fn session_audio(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match app.recorder.get(&id) {
        Some(s) => {
            let r = s.snapshot();
            wav_response(wav_bytes(&s.pcm(), r.sample_rate.max(1), r.channels.max(1)))
        }
        None => not_found(format!("no session {id:?}")),
    }
}

/// When each stretch of a session's recording arrived: `[[ms, bytes], ...]`
/// in order, the frames of `/control/sessions/:id/audio` one by one.
async fn session_frames(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match app.recorder.get(&id) {
        Some(s) => Json(json!({ "frames": s.frames() })).into_response(),
        None => not_found(format!("no session {id:?}")),
    }
}

async fn stream_audio(State(app): State<AppState>, Path(stream): Path<String>) -> Response {
    match app.streams.get(&stream) {
        Some(s) => wav_response(
            s.with_store(|s| wav_bytes(&s.pcm, s.sample_rate.max(1), s.channels.max(1))),
        ),
        None => not_found(format!("no stream {stream:?}")),
    }
}

async fn faults_now(State(app): State<AppState>) -> Json<Value> {
    Json(app.faults.describe())
}

fn bad(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": msg.into() })),
    )
        .into_response()
}

async fn command(
    State(app): State<AppState>,
    Path(command): Path<String>,
    body: Bytes,
) -> Response {
    if !COMMANDS.contains(&command.as_str()) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("unknown command {command:?}"), "commands": COMMANDS })),
        )
            .into_response();
    }
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad(format!("body is not valid JSON: {e}")),
        }
    };
    let Value::Object(obj) = value else {
        return bad(format!("body must be a JSON object, got {value}"));
    };
    match apply(&app, &command, &Body(&obj)) {
        Ok(v) => Json(v).into_response(),
        Err(BadInput(msg)) => bad(msg),
    }
}

/// Sends `cmd` to every live session and labels them.
fn to_current(app: &AppState, cmd: Cmd, label: &str) -> usize {
    let live = app.recorder.live();
    for s in &live {
        s.add_fault(label);
        let _ = s.ctl.tx.send(cmd.clone());
    }
    live.len()
}

fn ms_field(body: &Body<'_>, field: &str) -> Result<Option<u64>, BadInput> {
    Ok(body.int(field, 0, MAX_MS)?.map(|v| v as u64))
}

fn session_fault(
    app: &AppState,
    body: &Body<'_>,
    fault: NextFault,
    cmd: Cmd,
) -> Result<Value, BadInput> {
    match faults::scope(body, Scope::Current)? {
        Scope::Current => {
            let n = to_current(app, cmd, &fault.label());
            Ok(json!({ "ok": true, "scope": "current", "applied_to": n }))
        }
        Scope::Next(count) => {
            app.faults.push_next(fault, count);
            Ok(json!({ "ok": true, "scope": "next", "count": count }))
        }
    }
}

fn handshake_fault(app: &AppState, body: &Body<'_>, fault: NextFault) -> Result<Value, BadInput> {
    match faults::scope(body, Scope::Next(1))? {
        Scope::Current => Err(BadInput(format!(
            "field `scope`: {} acts on handshakes, so only \"next\" applies",
            fault.label().split(':').next().unwrap_or("")
        ))),
        Scope::Next(count) => {
            app.faults.push_next(fault, count);
            Ok(json!({ "ok": true, "scope": "next", "count": count }))
        }
    }
}

fn apply(app: &AppState, command: &str, body: &Body<'_>) -> Result<Value, BadInput> {
    match command {
        "delay-handshake" => {
            let ms = body.req_int("ms", 0, MAX_MS)? as u64;
            handshake_fault(app, body, NextFault::DelayHandshake { ms })
        }
        "reject" => {
            let status = body.req_int("status", 400, 599)? as u16;
            handshake_fault(app, body, NextFault::Reject { status })
        }
        "close" => {
            let code = body.int("code", i64::MIN, i64::MAX)?.unwrap_or(1011);
            if !faults::valid_close_code(code) {
                return Err(BadInput(format!(
                    "field `code` must be a sendable close code (1000-1003, 1007-1014, 3000-4999), got {code}"
                )));
            }
            let reason = body.string("reason")?.unwrap_or_default();
            if reason.len() > 123 {
                return Err(BadInput(format!(
                    "field `reason` must be at most 123 bytes, got {}",
                    reason.len()
                )));
            }
            let hold_ms = ms_field(body, "holdMs")?;
            let code = code as u16;
            let fault = NextFault::Close {
                code,
                reason: reason.clone(),
                hold_ms,
            };
            let hold = hold_ms.map(Duration::from_millis);
            session_fault(app, body, fault, Cmd::Close { code, reason, hold })
        }
        "reset" => session_fault(app, body, NextFault::Reset, Cmd::Reset),
        "blackhole" => {
            let ms = ms_field(body, "ms")?;
            session_fault(
                app,
                body,
                NextFault::Blackhole { ms },
                Cmd::Blackhole(ms.map(Duration::from_millis)),
            )
        }
        "stuck-reader" => {
            let ms = ms_field(body, "ms")?;
            session_fault(
                app,
                body,
                NextFault::StuckReader { ms },
                Cmd::StuckReader(ms.map(Duration::from_millis)),
            )
        }
        "malformed" => {
            let kind = match body.string("kind")?.as_deref() {
                Some("invalid-json") => MalformedKind::InvalidJson,
                Some("huge-text") => MalformedKind::HugeText,
                Some("unexpected-binary") => MalformedKind::UnexpectedBinary,
                other => {
                    return Err(BadInput(format!(
                        "field `kind` must be invalid-json, huge-text or unexpected-binary, got {}",
                        other.map_or("nothing".to_string(), |k| format!("{k:?}"))
                    )))
                }
            };
            session_fault(
                app,
                body,
                NextFault::Malformed { malformed: kind },
                Cmd::Malformed(kind),
            )
        }
        "down" => {
            let ms = body.req_int("ms", 1, MAX_MS)? as u64;
            app.faults.set_down(Duration::from_millis(ms));
            Ok(json!({ "ok": true, "down_ms": ms, "answer": 503 }))
        }
        "flap" => {
            let ms = body.req_int("ms", 1, MAX_MS)? as u64;
            let duration = body.int("durationMs", 1, MAX_MS)?.map(|d| d as u64);
            app.faults.set_flap(
                Duration::from_millis(ms),
                duration.map(Duration::from_millis),
            );
            Ok(json!({ "ok": true, "ms": ms, "durationMs": duration }))
        }
        "stop-acking" => {
            let enabled = body
                .bool("enabled")?
                .ok_or_else(|| BadInput("field `enabled` is required".into()))?;
            match faults::scope(body, Scope::Current)? {
                Scope::Current => {
                    app.faults.set_stop_acking(enabled);
                    if !enabled {
                        for s in app.recorder.live() {
                            s.ctl.stop_acking.store(false, Ordering::SeqCst);
                        }
                    } else {
                        for s in app.recorder.live() {
                            s.add_fault("stop-acking");
                        }
                    }
                    Ok(json!({ "ok": true, "scope": "current", "enabled": enabled }))
                }
                Scope::Next(count) if enabled => {
                    app.faults.push_next(NextFault::StopAcking, count);
                    Ok(json!({ "ok": true, "scope": "next", "count": count }))
                }
                Scope::Next(_) => Err(BadInput(
                    "field `enabled`: false only applies with scope \"current\"".into(),
                )),
            }
        }
        "interims-only" => {
            let enabled = body
                .bool("enabled")?
                .ok_or_else(|| BadInput("field `enabled` is required".into()))?;
            match faults::scope(body, Scope::Current)? {
                Scope::Current => {
                    app.faults.set_interims_only(enabled);
                    for s in app.recorder.live() {
                        if enabled {
                            s.add_fault("interims-only");
                        } else {
                            s.ctl.interims_only.store(false, Ordering::SeqCst);
                        }
                    }
                    Ok(json!({ "ok": true, "scope": "current", "enabled": enabled }))
                }
                Scope::Next(count) if enabled => {
                    app.faults.push_next(NextFault::InterimsOnly, count);
                    Ok(json!({ "ok": true, "scope": "next", "count": count }))
                }
                Scope::Next(_) => Err(BadInput(
                    "field `enabled`: false only applies with scope \"current\"".into(),
                )),
            }
        }
        "slow-reads" => {
            let bps = body.req_int("bytesPerSec", 0, 1 << 40)? as u64;
            match faults::scope(body, Scope::Current)? {
                Scope::Current => {
                    app.faults.set_slow_reads(bps);
                    for s in app.recorder.live() {
                        if bps == 0 {
                            s.ctl.slow_reads_bps.store(0, Ordering::SeqCst);
                            let _ = s.ctl.tx.send(Cmd::Wake);
                        } else {
                            s.add_fault(format!("slow-reads:{bps}"));
                        }
                    }
                    Ok(json!({ "ok": true, "scope": "current", "bytesPerSec": bps }))
                }
                Scope::Next(count) => {
                    app.faults
                        .push_next(NextFault::SlowReads { bytes_per_sec: bps }, count);
                    Ok(json!({ "ok": true, "scope": "next", "count": count }))
                }
            }
        }
        "clear" => {
            app.faults.clear();
            for s in app.recorder.live() {
                s.ctl.stop_acking.store(false, Ordering::SeqCst);
                s.ctl.interims_only.store(false, Ordering::SeqCst);
                s.ctl.slow_reads_bps.store(0, Ordering::SeqCst);
                let _ = s.ctl.tx.send(Cmd::Wake);
            }
            Ok(json!({ "ok": true }))
        }
        _ => Err(BadInput(format!("unknown command {command:?}"))),
    }
}
