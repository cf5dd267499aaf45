//! The generic resumable protocol: `GET /v1/stream` (docs/protocol.md).
//!
//! The server keeps, per stream id, a high-water mark `H` of bytes stored,
//! in memory across connections, so a client that reconnects and resends
//! from its last acknowledged offset produces neither holes nor duplicates.
//! The stream's transcription lives there too (`stream.rs`): finals in
//! flight when a connection died are finalized and sent on the next one
//! (`final_from`), and transcript times are stream time across reconnects
//! and `seek` gaps. Each channel is transcribed on its own (`channel` in
//! every transcript); `flush` finalizes what is stored and is answered
//! with `flushed`, the socket staying open.

use std::collections::{HashMap, VecDeque};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::app::AppState;
use crate::conn::{Conn, ConnInfo, Ev, Upgrade, MAX_BINARY, MAX_TEXT};
use crate::engine::{EngineOut, EngineSpec, Transcript};
use crate::params::Params;
use crate::recording::SessionRecord;
use crate::util::{self, fingerprint, token_ok};

pub async fn handler(
    State(app): State<AppState>,
    Extension(info): Extension<ConnInfo>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let protocols = util::offered_protocols(&headers);
    let sub_token = util::subprotocol_token(&protocols);
    let token = sub_token.clone().or_else(|| q.get("token").cloned());
    let record = SessionRecord {
        endpoint: "generic".into(),
        path: "/v1/stream".into(),
        token_fingerprint: token.as_deref().map(fingerprint),
        subprotocol: sub_token.as_ref().map(|_| "token".into()),
        ..Default::default()
    };
    let up = match Upgrade::admit(app, info, ws, q, record).await {
        Ok(up) => up,
        Err(res) => return res,
    };
    // The protocol rejects a wrong token *after* the upgrade, with 4001, so
    // the client can tell it apart from a network failure.
    let authorized = token_ok(up.app().cfg.token.as_deref(), token.as_deref());
    up.session().update(|r| r.authenticated = authorized);
    up.accept(Some("token"), move |c, p| {
        async move {
            if authorized {
                run(c, p).await;
            } else {
                c.close(4001, "unauthorized").await;
            }
        }
        .boxed()
    })
}

fn valid_stream_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message})
}

/// Offsets stay within JSON's exact integers, which also keeps
/// `offset + frame length` far from overflowing.
const MAX_OFFSET: u64 = 1 << 53;

/// A valid `start` message.
struct Start {
    stream: String,
    offset: u64,
    /// Seconds of stream time up to which the client has finals.
    final_from: Option<f64>,
}

/// Waits for `start`.
async fn await_start(c: &mut Conn) -> Option<Start> {
    let deadline = Instant::now() + c.app.cfg.timeouts.start;
    loop {
        match c.next().await {
            Ev::Tick if Instant::now() >= deadline => {
                c.close(4400, "missing start").await;
                return None;
            }
            Ev::Text(t) if t.len() <= MAX_TEXT => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v.get("type").and_then(Value::as_str) == Some("keepalive") {
                    c.session.update(|r| r.keepalives += 1);
                    continue;
                }
                let stream = v
                    .get("stream")
                    .and_then(Value::as_str)
                    .filter(|s| valid_stream_id(s));
                // Offsets stay within JSON's exact integers (2^53), which also
                // keeps `offset + frame length` far from overflowing.
                let offset = v
                    .get("offset")
                    .and_then(Value::as_u64)
                    .filter(|o| *o <= MAX_OFFSET);
                // Optional; a number of seconds >= 0 when given.
                let final_from = match v.get("final_from") {
                    None | Some(Value::Null) => Some(None),
                    Some(f) => f.as_f64().filter(|f| *f >= 0.0).map(Some),
                };
                match (
                    v.get("type").and_then(Value::as_str),
                    stream,
                    offset,
                    final_from,
                ) {
                    (Some("start"), Some(s), Some(o), Some(final_from)) => {
                        return Some(Start {
                            stream: s.to_string(),
                            offset: o,
                            final_from,
                        })
                    }
                    _ => {
                        c.session.update(|r| r.invalid_messages += 1);
                        let _ = c
                            .send_json(&error(
                                "bad-start",
                                "the first message must be start with a valid stream and offset \
                                 (and final_from, if any, a number of seconds >= 0)",
                            ))
                            .await;
                        c.close(4400, "bad start").await;
                        return None;
                    }
                }
            }
            Ev::Text(_) | Ev::Binary(_) => {
                c.session.update(|r| r.invalid_messages += 1);
                c.close(4400, "missing start").await;
                return None;
            }
            Ev::Tick | Ev::Engine(_) | Ev::Control => {}
            Ev::ClientClosed | Ev::Gone | Ev::End => return None,
        }
    }
}

async fn run(c: &mut Conn, p: Params) {
    let Some(start) = await_start(c).await else {
        return;
    };
    let cap =
        c.app.cfg.max_audio_secs as usize * p.sample_rate as usize * usize::from(p.channels) * 2;
    let t = c.app.cfg.timeouts.clone();
    // The stream's engine (started here when none runs) gets the audio
    // through the stream, whichever connection brings it.
    let stream = c.app.streams.open(&start.stream, t.stream_idle);
    let spec = EngineSpec {
        kind: p.engine,
        sample_rate: p.sample_rate,
        channels: p.channels,
        per_channel: true,
        grammar: p.grammar,
        base_frames: 0,
        utterance_end_ms: None,
    };
    let (att, joined) = stream.attach(spec, start.final_from);
    c.listen_engine(joined.rx);
    c.session.update(|r| {
        r.stream = Some(start.stream.clone());
        r.start_offset = Some(start.offset);
    });
    let started = json!({"type": "started", "stream": start.stream, "offset": joined.hwm});
    if !c.send_json(&started).await {
        return;
    }
    // Finals this client may not have: never sent, or after `final_from`.
    // Under `stop-acking` the server's output is stalled: transcripts are
    // held back (not lost) and go out, in order, once it flows again.
    let mut held: Vec<Transcript> = Vec::new();
    for tr in joined.resend {
        if c.stop_acking() {
            held.push(tr);
        } else if !send_transcript(c, &tr).await {
            return;
        }
    }
    if let Some(e) = joined.failed {
        c.close(1011, &format!("engine failed: {e}")).await;
        return;
    }
    let mut off = start.offset;
    let mut last_activity = Instant::now();
    let mut last_ack = Instant::now();
    let mut acked: Option<u64> = None;
    let mut finishing = false;
    // The high-water marks of the `flush`es not answered yet, oldest
    // first: the engine answers flushes in order, and a `finish` (after
    // which flushes are ignored) comes last.
    let mut flushes: VecDeque<u64> = VecDeque::new();
    loop {
        match c.next().await {
            Ev::Binary(b) if b.is_empty() => {
                let _ = c
                    .send_json(&error("empty-frame", "empty binary frames are not allowed"))
                    .await;
                c.close(1003, "empty frame").await;
                return;
            }
            Ev::Binary(b) if b.len() > MAX_BINARY => {
                c.close(1009, "binary frame too large").await;
                return;
            }
            Ev::Binary(b) => {
                last_activity = Instant::now();
                c.session.add_audio(&b);
                let placed = att.put(off, &b, cap);
                off += b.len() as u64;
                c.session.update(|r| {
                    r.duplicate_bytes += placed.duplicate;
                    r.gap_bytes += placed.gap;
                });
            }
            Ev::Text(t) if t.len() > MAX_TEXT => {
                c.close(1009, "text frame too large").await;
                return;
            }
            Ev::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                match v.get("type").and_then(Value::as_str) {
                    Some("keepalive") => {
                        last_activity = Instant::now();
                        c.session.update(|r| r.keepalives += 1);
                    }
                    Some("finish") if !finishing => {
                        finishing = true;
                        c.session.update(|r| r.close_stream = true);
                        att.flush();
                    }
                    Some("finish") => {}
                    // Push-to-talk: finalize what is stored, keep streaming.
                    Some("flush") if !finishing => {
                        last_activity = Instant::now();
                        flushes.push_back(att.flush());
                    }
                    Some("flush") => {}
                    // The client dropped audio (and reported it): the next
                    // frame starts further on. Offsets never go backwards.
                    Some("seek") => match v.get("offset").and_then(Value::as_u64) {
                        Some(o) if o >= off && o <= MAX_OFFSET => off = o,
                        _ => {
                            c.session.update(|r| r.invalid_messages += 1);
                            let _ = c
                                .send_json(&error(
                                    "bad-seek",
                                    "seek needs an offset >= the current one",
                                ))
                                .await;
                            c.close(4400, "bad seek").await;
                            return;
                        }
                    },
                    Some("start") => {
                        c.session.update(|r| r.invalid_messages += 1);
                        let _ = c
                            .send_json(&error("duplicate-start", "start may only be sent once"))
                            .await;
                        c.close(4400, "duplicate start").await;
                        return;
                    }
                    _ => {
                        c.session.update(|r| r.invalid_messages += 1);
                        if !c
                            .send_json(&error("unknown-message", "unknown message ignored"))
                            .await
                        {
                            return;
                        }
                    }
                }
            }
            Ev::Engine(EngineOut::Transcript(tr)) => {
                if tr.text.is_empty() {
                    continue;
                }
                if c.stop_acking() {
                    held.push(tr);
                    continue;
                }
                // In stream order: what was held goes out before anything
                // newer (clients show each stretch in one final, in order).
                if !send_held(c, &mut held).await || !send_transcript(c, &tr).await {
                    return;
                }
            }
            Ev::Engine(EngineOut::Flushed) => {
                if let Some(h) = flushes.pop_front() {
                    if !c.send_json(&json!({"type": "flushed", "offset": h})).await {
                        return;
                    }
                } else if finishing {
                    if !send_held(c, &mut held).await {
                        return;
                    }
                    let h = att.hwm();
                    let acked =
                        c.stop_acking() || c.send_json(&json!({"type": "ack", "offset": h})).await;
                    let done =
                        acked && c.send_json(&json!({"type": "finished", "offset": h})).await;
                    if done {
                        c.close(1000, "finished").await;
                    }
                    return;
                }
            }
            Ev::Engine(EngineOut::SpeechStarted { .. } | EngineOut::UtteranceEnd { .. }) => {}
            Ev::Engine(EngineOut::Failed(e)) => {
                eprintln!("devserver: engine failed: {e}");
                c.close(1011, &format!("engine failed: {e}")).await;
                return;
            }
            Ev::Tick => {
                if !finishing && last_activity.elapsed() >= t.idle {
                    c.close(1001, "idle timeout").await;
                    return;
                }
                if !send_held(c, &mut held).await {
                    return;
                }
                // Ack whenever the mark moved, at most once per `ack` interval
                // (default 200 ms, well inside the protocol's 1 s): a burst
                // of frames costs one ack, not one each.
                let h = att.hwm();
                if acked != Some(h) && h > 0 && last_ack.elapsed() >= t.ack && !c.stop_acking() {
                    if !c.send_json(&json!({"type": "ack", "offset": h})).await {
                        return;
                    }
                    acked = Some(h);
                    last_ack = Instant::now();
                }
            }
            Ev::Control => {}
            Ev::ClientClosed | Ev::Gone | Ev::End => return,
        }
    }
}

/// Sends a transcript; false when the socket is gone.
/// Sends the transcripts held back while the output was stalled, once it
/// flows again. False when the connection is gone.
async fn send_held(c: &mut Conn, held: &mut Vec<Transcript>) -> bool {
    if c.stop_acking() {
        return true;
    }
    for tr in std::mem::take(held) {
        if !send_transcript(c, &tr).await {
            return false;
        }
    }
    true
}

async fn send_transcript(c: &mut Conn, tr: &Transcript) -> bool {
    let msg = json!({
        "type": "transcript",
        "text": tr.text,
        "is_final": tr.is_final,
        "start": tr.start,
        "end": tr.end,
        "channel": tr.channel,
    });
    let sent = c.send_json(&msg).await;
    if sent {
        c.session.update(|r| r.transcripts_sent += 1);
    }
    sent
}
