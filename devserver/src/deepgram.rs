//! Deepgram-compatible live transcription: `GET /v1/listen`.
//!
//! Mirrors the behaviour clients depend on: auth by `Authorization: Token K`
//! (or `Bearer T`) or subprotocols `token, K` / `bearer, T` (401 at the
//! upgrade when rejected), binary PCM16 in (`channels=2` interleaved; with
//! `multichannel=true` each channel transcribed on its own, its `Results`
//! naming it in `channel_index`), `Results` out at least once per
//! second of audio, finals that tile the stream, `SpeechStarted` and
//! `UtteranceEnd` when asked for, `KeepAlive`, `Finalize`, `Configure`,
//! `CloseStream` → finals + `Metadata` + close 1000, and the 10 s idle
//! close 1011 `NET-0001`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::app::AppState;
use crate::conn::{Conn, ConnInfo, Ev, Upgrade, MAX_BINARY, MAX_TEXT};
use crate::engine::{self, EngineIn, EngineOut, EngineSpec, Transcript};
use crate::params::Params;
use crate::recording::SessionRecord;
use crate::util::{self, fingerprint, iso8601, now_ms, token_ok};

/// The one model this server claims to be: Results' `metadata.model_uuid`,
/// and `Metadata`'s `models` and `model_info` key.
pub const MODEL_UUID: &str = "4f1e9b2c-7d3a-4c68-9e05-b8a1d6c2f370";

/// `{name, version, arch}` of [`MODEL_UUID`], the same in Results and Metadata.
fn model_info() -> Value {
    json!({ "name": "devserver", "version": env!("CARGO_PKG_VERSION"), "arch": "devserver" })
}

pub async fn handler(
    State(app): State<AppState>,
    Extension(info): Extension<ConnInfo>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let protocols = util::offered_protocols(&headers);
    let offered = util::subprotocol_credential(&protocols);
    let (scheme, sub_token) = match &offered {
        Some((scheme, token)) => (Some(*scheme), token.clone()),
        None => (None, None),
    };
    let token = util::header_token(&headers).or_else(|| sub_token.clone());
    let record = SessionRecord {
        endpoint: "deepgram".into(),
        path: "/v1/listen".into(),
        token_fingerprint: token.as_deref().map(fingerprint),
        ..Default::default()
    };
    let up = match Upgrade::admit(app, info, ws, q, record).await {
        Ok(up) => up,
        Err(res) => return res,
    };
    let query = &up.params.query;
    let bad_encoding = query
        .get("encoding")
        .filter(|e| *e != "linear16")
        .map(|enc| format!("devserver only decodes encoding=linear16, got {enc:?}"));
    if let Some(msg) = bad_encoding {
        return up.reject(StatusCode::BAD_REQUEST, &msg);
    }
    let opts = match Options::parse(query, up.params.channels) {
        Ok(o) => o,
        Err(msg) => return up.reject(StatusCode::BAD_REQUEST, &msg),
    };
    if !token_ok(up.app().cfg.token.as_deref(), token.as_deref()) {
        // Deepgram rejects bad credentials at the upgrade with HTTP 401.
        return up.reject(StatusCode::UNAUTHORIZED, "invalid credentials");
    }
    up.session().update(|r| {
        r.authenticated = true;
        r.subprotocol = scheme.map(Into::into);
    });
    // Select exactly the scheme the credential came with (`token` or
    // `bearer`): a browser that offered subprotocols fails a 101 that
    // selects none.
    up.accept(scheme, move |c, p| run(c, p, opts).boxed())
}

/// The Deepgram-only query options.
#[derive(Debug, Clone, Default)]
struct Options {
    /// `vad_events=true`: send `SpeechStarted`.
    vad_events: bool,
    /// `utterance_end_ms=N`: send `UtteranceEnd` after N ms without words.
    utterance_end_ms: Option<u32>,
    /// `model=`, for Configure's keyterms rule.
    model: Option<String>,
    /// `multichannel=true`: each channel transcribed on its own; without
    /// it the channels are mixed down (`channel_index` `[0, 1]`).
    multichannel: bool,
}

impl Options {
    fn parse(q: &BTreeMap<String, String>, channels: u16) -> Result<Options, String> {
        // One recogniser per channel costs a decoder each; the client
        // sends at most two (Deepgram itself takes up to 20).
        if channels > 2 {
            return Err(format!("channels must be 1 or 2, got {channels}"));
        }
        let multichannel = match q.get("multichannel").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(format!("multichannel must be true or false, got {v:?}")),
        };
        let vad_events = match q.get("vad_events").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(format!("vad_events must be true or false, got {v:?}")),
        };
        let utterance_end_ms = match q.get("utterance_end_ms") {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|ms| (1..=600_000).contains(ms))
                    .ok_or_else(|| format!("utterance_end_ms must be 1..=600000, got {v:?}"))?,
            ),
        };
        Ok(Options {
            vad_events,
            utterance_end_ms,
            model: q.get("model").cloned(),
            multichannel,
        })
    }
}

/// The text messages a client may send (Deepgram's names and fields). The
/// JSON errors serde gives for anything else read like the real server's
/// `SchemaError` descriptions (it is a serde schema too).
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum ClientMessage {
    KeepAlive,
    Finalize,
    CloseStream,
    Configure(Configure),
}

/// Deepgram's mid-stream `Configure` (the Python SDK's `send_configure`):
/// replaces keyterms and switches formatting features. The engines here
/// use neither, so it is recorded, not applied.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Configure {
    #[serde(default)]
    keyterms: Option<Vec<String>>,
    #[serde(default)]
    features: Option<BTreeMap<String, bool>>,
    #[serde(default)]
    processors: Option<Value>,
    #[serde(default)]
    language_hints: Option<Value>,
}

/// Deepgram's `Error` message for a text message it could not parse: the
/// stream stays open (documented for Configure; seen for a misspelt
/// `KeepAlive`).
fn schema_error(e: &serde_json::Error, original: &str) -> Value {
    json!({
        "type": "Error",
        "variant": "SchemaError",
        "description": format!("Could not deserialize last text message: {e}"),
        "message": original,
    })
}

async fn run(c: &mut Conn, p: Params, opts: Options) {
    let request_id = uuid::Uuid::new_v4().to_string();
    c.set_engine(engine::spawn(EngineSpec {
        kind: p.engine,
        sample_rate: p.sample_rate,
        channels: p.channels,
        per_channel: opts.multichannel,
        grammar: p.grammar,
        base_frames: 0,
        utterance_end_ms: opts.utterance_end_ms,
    }));
    let idle = c.app.cfg.timeouts.idle;
    let mut last_activity = Instant::now();
    let mut audio_bytes: u64 = 0;
    let mut sha = Sha256::new();
    // Set while a flush is outstanding: true when it came from CloseStream.
    let mut flushing: Vec<bool> = Vec::new();
    // After CloseStream, audio is recorded but no longer transcribed: the
    // finals end at what was received before it.
    let mut closing = false;
    let bytes_per_sec = f64::from(p.sample_rate) * f64::from(p.channels) * 2.0;
    // `channel_index`'s and `channel`'s second element: the channels
    // transcribed apart (1 for the mix).
    let n = if opts.multichannel { p.channels } else { 1 };
    loop {
        match c.next().await {
            Ev::Binary(b) if b.is_empty() => {
                // Deepgram's original end-of-stream signal (deprecated in
                // favour of CloseStream in 2022, still honoured): treat it
                // exactly like CloseStream.
                c.session.update(|r| r.close_stream = true);
                closing = true;
                c.engine_send(EngineIn::Flush);
                flushing.push(true);
            }
            Ev::Binary(b) if b.len() > MAX_BINARY => {
                c.close(1009, "binary frame too large").await;
                return;
            }
            Ev::Binary(b) => {
                last_activity = Instant::now();
                c.session.add_audio(&b);
                if !closing {
                    audio_bytes += b.len() as u64;
                    sha.update(&b);
                    c.engine_send(EngineIn::Audio(b.to_vec()));
                }
            }
            Ev::Text(t) if t.len() > MAX_TEXT => {
                c.close(1009, "text frame too large").await;
                return;
            }
            Ev::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                Ok(ClientMessage::KeepAlive) => {
                    last_activity = Instant::now();
                    c.session.update(|r| r.keepalives += 1);
                }
                Ok(ClientMessage::Finalize) => {
                    last_activity = Instant::now();
                    c.session.update(|r| r.finalize_count += 1);
                    c.engine_send(EngineIn::Flush);
                    flushing.push(false);
                }
                Ok(ClientMessage::CloseStream) => {
                    c.session.update(|r| r.close_stream = true);
                    closing = true;
                    c.engine_send(EngineIn::Flush);
                    flushing.push(true);
                }
                Ok(ClientMessage::Configure(cfg)) => {
                    last_activity = Instant::now();
                    if let Some(err) = configure_rejection(&cfg, opts.model.as_deref()) {
                        c.session.update(|r| r.invalid_messages += 1);
                        if !c.send_json(&err).await {
                            return;
                        }
                        continue;
                    }
                    // Deepgram's Configure page: "A successful Configure on
                    // /v1/listen produces no response message" (unlike Flux's
                    // ConfigureSuccess, which neither SDK's Listen V1 types
                    // know). A changelog entry announces a ConfigureSuccess
                    // for /v1/listen too; until the SDKs carry that type,
                    // success stays silent here and is only recorded.
                    let cfg = serde_json::to_value(&cfg).unwrap_or(Value::Null);
                    c.session.update(|r| {
                        r.configure_count += 1;
                        r.last_configure = Some(cfg);
                    });
                }
                Err(e) => {
                    c.session.update(|r| r.invalid_messages += 1);
                    if !c.send_json(&schema_error(&e, &t)).await {
                        return;
                    }
                }
            },
            Ev::Engine(EngineOut::Transcript(mut t)) => {
                if t.is_final && c.interims_only() {
                    // `interims-only`: the socket delivers what a Deepgram
                    // that died between an interim and its final did: the
                    // words, never the final that commits them.
                    t.is_final = false;
                    t.speech_final = false;
                    t.from_finalize = false;
                }
                let msg = results(&t, &request_id, n);
                if !c.send_json(&msg).await {
                    return;
                }
                c.session.update(|r| r.transcripts_sent += 1);
            }
            Ev::Engine(EngineOut::SpeechStarted { at, channel }) => {
                if opts.vad_events {
                    let msg = json!({
                        "type": "SpeechStarted",
                        "channel": [channel, n],
                        "timestamp": round_us(at),
                    });
                    if !c.send_json(&msg).await {
                        return;
                    }
                }
            }
            Ev::Engine(EngineOut::UtteranceEnd {
                last_word_end,
                channel,
            }) => {
                let msg = json!({
                    "type": "UtteranceEnd",
                    "channel": [channel, n],
                    "last_word_end": round_us(last_word_end),
                });
                if !c.send_json(&msg).await {
                    return;
                }
            }
            Ev::Engine(EngineOut::Flushed) => {
                if flushing.is_empty() {
                    continue;
                }
                if flushing.remove(0) {
                    let meta = json!({
                        "type": "Metadata",
                        "transaction_key": "deprecated",
                        "request_id": request_id,
                        "sha256": format!("{:x}", sha.clone().finalize()),
                        "created": iso8601(now_ms()),
                        "duration": audio_bytes as f64 / bytes_per_sec,
                        "channels": p.channels,
                        "models": [MODEL_UUID],
                        "model_info": { MODEL_UUID: model_info() },
                    });
                    if c.send_json(&meta).await {
                        c.close(1000, "").await;
                    }
                    return;
                }
            }
            Ev::Engine(EngineOut::Failed(e)) => {
                eprintln!("devserver: engine failed: {e}");
                c.close(1011, &format!("engine failed: {e}")).await;
                return;
            }
            Ev::Tick => {
                // A pending CloseStream is not idle time: the finals are coming.
                if flushing.is_empty() && last_activity.elapsed() >= idle {
                    c.close(1011, "NET-0001").await;
                    return;
                }
            }
            Ev::Control => {}
            Ev::ClientClosed | Ev::Gone | Ev::End => return,
        }
    }
}

/// Deepgram's documented rejection of a well-formed Configure: keyterms on
/// a model other than Nova-3 (or Flux). The stream keeps its settings.
/// Without `model=` the devserver's own model accepts keyterms.
fn configure_rejection(cfg: &Configure, model: Option<&str>) -> Option<Value> {
    let model = model?;
    let supports = model.starts_with("nova-3") || model.starts_with("flux");
    (cfg.keyterms.is_some() && !supports).then(|| {
        json!({
            "type": "Error",
            "variant": "InvalidConfigureMessage",
            "description": "`keyterms` are only supported for Nova-3 and Flux.",
            "code": "KeytermsNotSupported",
        })
    })
}

/// A Deepgram `Results` message; `channels` is `channel_index`'s second
/// element (the channels transcribed apart, 1 without `multichannel`).
///
/// Times are rounded to whole microseconds, and `duration` is the rounded
/// end minus the rounded start, so finals that tile in the engine tile in
/// the JSON too: a final's `start` is exactly the previous final's `start +
/// duration` in integer microseconds (and in samples, at any rate up to
/// 500 kHz). Microseconds rather than Deepgram-like milliseconds, because a
/// stream's end is rarely a whole millisecond (53 858 samples at 16 kHz are
/// 3.366125 s) and a client confirming audio by the last final's end would
/// otherwise miss up to half a millisecond of it.
pub fn results(t: &Transcript, request_id: &str, channels: u16) -> Value {
    let words: Vec<Value> = t
        .words
        .iter()
        .map(|w| {
            json!({
                "word": w.word,
                "start": round_us(w.start),
                "end": round_us(w.end),
                "confidence": w.confidence,
                "punctuated_word": w.word,
            })
        })
        .collect();
    let (start, end) = (micros(t.start), micros(t.end));
    json!({
        "type": "Results",
        "channel_index": [t.channel, channels],
        "duration": (end - start) as f64 / 1e6,
        "start": start as f64 / 1e6,
        "is_final": t.is_final,
        "speech_final": t.speech_final,
        "from_finalize": t.from_finalize,
        "channel": {
            "alternatives": [{
                "transcript": t.text,
                "confidence": t.confidence,
                "words": words,
            }]
        },
        "metadata": {
            "request_id": request_id,
            "model_info": model_info(),
            "model_uuid": MODEL_UUID,
        },
    })
}

/// Seconds as whole microseconds.
fn micros(secs: f64) -> i64 {
    (secs * 1e6).round() as i64
}

/// Seconds rounded to whole microseconds.
fn round_us(secs: f64) -> f64 {
    micros(secs) as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: &str) -> Result<ClientMessage, serde_json::Error> {
        serde_json::from_str(t)
    }

    #[test]
    fn control_messages_parse_and_others_get_a_schema_error() {
        assert!(matches!(
            msg(r#"{"type":"KeepAlive"}"#),
            Ok(ClientMessage::KeepAlive)
        ));
        assert!(matches!(
            msg(r#"{"type":"Finalize"}"#),
            Ok(ClientMessage::Finalize)
        ));
        assert!(matches!(
            msg(r#"{"type":"CloseStream"}"#),
            Ok(ClientMessage::CloseStream)
        ));
        let cfg = r#"{"type":"Configure","keyterms":["Deepgram"],"features":{"numerals":true}}"#;
        match msg(cfg) {
            Ok(ClientMessage::Configure(c)) => {
                assert_eq!(c.keyterms, Some(vec!["Deepgram".to_string()]));
                assert!(c.features.unwrap()["numerals"]);
            }
            other => panic!("{other:?}"),
        }
        // The Python SDK may send explicit nulls for fields it leaves alone.
        assert!(matches!(
            msg(r#"{"type":"Configure","keyterms":null,"features":null}"#),
            Ok(ClientMessage::Configure(_))
        ));
        for bad in [
            r#"{"type":"KeepAlive "}"#,
            r#"{"type":"Configure","keyterm":["x"]}"#,
            r#"{"type":"Configure","keyterms":"x"}"#,
            r#"{"kind":"KeepAlive"}"#,
            "not json",
        ] {
            let e = msg(bad).expect_err(bad);
            let v = schema_error(&e, bad);
            assert_eq!(v["type"], "Error");
            assert_eq!(v["variant"], "SchemaError");
            assert_eq!(v["message"], bad);
            let d = v["description"].as_str().unwrap();
            assert!(
                d.starts_with("Could not deserialize last text message: "),
                "{d}"
            );
        }
        let e = msg(r#"{"type":"Configure","keyterm":["x"]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `keyterm`"), "{e}");
    }

    #[test]
    fn keyterms_are_rejected_only_on_models_without_them() {
        let cfg = Configure {
            keyterms: Some(vec!["a".into()]),
            features: None,
            processors: None,
            language_hints: None,
        };
        let err = configure_rejection(&cfg, Some("nova-2")).unwrap();
        assert_eq!(err["variant"], "InvalidConfigureMessage");
        assert_eq!(err["code"], "KeytermsNotSupported");
        assert!(configure_rejection(&cfg, Some("nova-3-medical")).is_none());
        assert!(configure_rejection(&cfg, None).is_none());
        let features_only = Configure {
            keyterms: None,
            ..cfg
        };
        assert!(configure_rejection(&features_only, Some("nova-2")).is_none());
    }

    /// `start + duration` of one final is the next one's `start`, exactly,
    /// in the JSON's own rounding, for boundaries at any frame.
    #[test]
    fn rounded_results_still_tile() {
        let rate = 44_100.0;
        let bounds = [0u64, 1, 7, 22_050, 53_858, 99_999, 100_000];
        let mut prev_end: Option<i64> = None;
        for w in bounds.windows(2) {
            let t = Transcript::new(
                "a b".into(),
                w[0] as f64 / rate,
                w[1] as f64 / rate,
                true,
                1.0,
            );
            let r = results(&t, "rid", 1);
            let (s, d) = (
                r["start"].as_f64().unwrap(),
                r["duration"].as_f64().unwrap(),
            );
            if let Some(e) = prev_end {
                assert_eq!(micros(s), e, "{r}");
            }
            prev_end = Some(micros(s) + micros(d));
            // Within one sample of the true end.
            assert!(((s + d) * rate - w[1] as f64).abs() < 0.5, "{r}");
            assert_eq!(r["metadata"]["model_uuid"], MODEL_UUID);
        }
    }
}
