//! `/v1/listen`: the Deepgram-compatible endpoint, as a client sees it.

mod common;

use std::time::Duration;

use common::*;

const Q: &str = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1&interim_results=true";

/// A client that stops the stream must get every final, then Metadata, then a
/// clean 1000, or it cannot tell a finished session from a broken one.
#[tokio::test]
async fn close_stream_yields_finals_then_metadata_then_1000() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let mut audio = tone(0.3, 0.0, 16_000);
    audio.extend(tone(1.0, 0.5, 16_000));
    for chunk in audio.chunks(3200) {
        send_bin(&mut ws, chunk).await;
    }
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1000, String::new())));
    let last = msgs.last().expect("messages before close");
    assert_eq!(last["type"], "Metadata");
    assert_eq!(last["transaction_key"], "deprecated");
    assert_eq!(last["channels"], 1);
    assert!(
        (last["duration"].as_f64().unwrap() - 1.3).abs() < 0.01,
        "{last}"
    );
    assert!(last["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(last["sha256"].as_str().unwrap().len(), 64);
    let finals: Vec<_> = msgs
        .iter()
        .filter(|m| m["type"] == "Results" && m["is_final"] == true)
        .filter(|m| {
            m["channel"]["alternatives"][0]["transcript"]
                .as_str()
                .unwrap()
                != ""
        })
        .collect();
    assert_eq!(finals.len(), 1, "{msgs:?}");
    let f = finals[0];
    assert_eq!(f["from_finalize"], true);
    assert_eq!(f["channel_index"], serde_json::json!([0, 1]));
    let alt = &f["channel"]["alternatives"][0];
    assert!(
        alt["transcript"]
            .as_str()
            .unwrap()
            .starts_with("[meter] speech 1.0s"),
        "{alt}"
    );
    assert!(alt["confidence"].is_number());
    let w = &alt["words"][0];
    for k in ["word", "start", "end", "confidence", "punctuated_word"] {
        assert!(!w[k].is_null(), "word lacks {k}: {w}");
    }
    assert_eq!(f["metadata"]["request_id"], last["request_id"]);
    let s = srv
        .wait_session(|s| s["endpoint"] == "deepgram" && !s["ended_at_ms"].is_null())
        .await;
    assert_eq!(s["close_stream"], true);
    assert_eq!(s["bytes_received"], audio.len());
    assert_eq!(s["close_code_sent"], 1000);
    assert!(s["transcripts_sent"].as_u64().unwrap() >= 1);
}

/// The client's liveness watchdog relies on results arriving for streamed
/// audio even when nobody speaks.
#[tokio::test]
async fn silence_still_gets_a_result_every_second_of_audio() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    for chunk in tone(3.0, 0.0, 16_000).chunks(3200) {
        send_bin(&mut ws, chunk).await;
    }
    let mut results = 0;
    for _ in 0..3 {
        let m = next_json(&mut ws).await;
        assert_eq!(m["type"], "Results");
        assert_eq!(m["channel"]["alternatives"][0]["transcript"], "");
        results += 1;
    }
    assert_eq!(results, 3);
}

#[tokio::test]
async fn finalize_flushes_a_final_marked_from_finalize_and_keeps_the_socket() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_bin(&mut ws, &tone(0.4, 0.5, 16_000)).await;
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    // Results until the Finalize's final, which ends at the audio sent.
    let mut m = next_json(&mut ws).await;
    while m["from_finalize"] != true {
        assert_eq!(m["type"], "Results", "{m}");
        m = next_json(&mut ws).await;
    }
    assert_eq!(m["is_final"], true);
    assert_eq!(us(&m["start"]) + us(&m["duration"]), 400_000, "{m}");
    send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    let s = srv
        .wait_session(|s| s["finalize_count"] == 1 && s["keepalives"] == 1)
        .await;
    assert_eq!(s["invalid_messages"], 0);
    assert!(s["ended_at_ms"].is_null(), "Finalize must not close: {s}");
}

/// Deepgram answers a text message it cannot parse with an `Error` of
/// variant `SchemaError` (its Configure page documents one; the SDKs'
/// Listen V1 types carry it) and keeps the stream open. The old `Warning`
/// was a type neither SDK knows.
#[tokio::test]
async fn unknown_or_invalid_messages_get_a_schema_error_and_keep_the_socket() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    for bad in [
        r#"{"type":"Nonsense"}"#,
        r#"{"type":"KeepAlive "}"#,
        "hello",
    ] {
        send_text(&mut ws, bad).await;
        let e = next_json(&mut ws).await;
        assert_eq!(e["type"], "Error", "{e}");
        assert_eq!(e["variant"], "SchemaError");
        assert_eq!(e["message"], bad);
        assert!(
            e["description"]
                .as_str()
                .unwrap()
                .starts_with("Could not deserialize last text message"),
            "{e}"
        );
    }
    send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    let s = srv.wait_session(|s| s["keepalives"] == 1).await;
    assert_eq!(s["invalid_messages"], 3);
    assert!(s["ended_at_ms"].is_null(), "must not close: {s}");
    let msgs = stream_and_close(&mut ws, &[], 16_000, Duration::from_secs(5)).await;
    assert!(msgs.iter().all(|m| m["type"] != "Warning"), "{msgs:?}");
}

/// The Python SDK's `send_configure`: accepted without an answer (Deepgram's
/// Configure page: no acknowledgement on success for /v1/listen), recorded
/// in the session; a malformed one is a SchemaError, keyterms on a model
/// without them Deepgram's documented `InvalidConfigureMessage`.
#[tokio::test]
async fn configure_is_accepted_silently_and_recorded() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(
        &mut ws,
        r#"{"type":"Configure","keyterms":["Deepgram","customer service"],"features":{"numerals":true}}"#,
    )
    .await;
    assert!(
        matches!(
            next(&mut ws, Duration::from_millis(300)).await,
            Got::Timeout
        ),
        "a successful Configure has no answer"
    );
    let s = srv.wait_session(|s| s["configure_count"] == 1).await;
    assert_eq!(
        s["last_configure"]["keyterms"],
        serde_json::json!(["Deepgram", "customer service"])
    );
    assert_eq!(s["last_configure"]["features"]["numerals"], true);
    assert_eq!(s["invalid_messages"], 0);
    send_text(&mut ws, r#"{"type":"Configure","keyterm":["Deepgram"]}"#).await;
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["variant"].as_str()),
        (Some("Error"), Some("SchemaError"))
    );
    assert!(
        e["description"]
            .as_str()
            .unwrap()
            .contains("unknown field `keyterm`"),
        "{e}"
    );

    let mut ws = connect_ok(&srv.ws_url(&format!("{Q}&model=nova-2"))).await;
    send_text(&mut ws, r#"{"type":"Configure","keyterms":["x"]}"#).await;
    let e = next_json(&mut ws).await;
    assert_eq!(e["variant"], "InvalidConfigureMessage", "{e}");
    assert_eq!(e["code"], "KeytermsNotSupported");
    send_text(
        &mut ws,
        r#"{"type":"Configure","features":{"numerals":false}}"#,
    )
    .await;
    let s = srv
        .wait_session(|s| s["query"]["model"] == "nova-2" && s["configure_count"] == 1)
        .await;
    assert_eq!(s["invalid_messages"], 1);
    assert!(s["ended_at_ms"].is_null());
}

/// Results' `metadata.model_uuid` is the one model `Metadata` lists, with
/// the same `model_info`.
#[tokio::test]
async fn metadata_names_the_model_the_results_carry() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let msgs = stream_and_close(
        &mut ws,
        &tone(1.2, 0.0, 16_000),
        16_000,
        Duration::from_secs(5),
    )
    .await;
    let meta = msgs.last().unwrap();
    assert_eq!(meta["type"], "Metadata");
    let uuid = meta["models"][0].as_str().expect("models: [uuid]");
    assert_eq!(meta["models"].as_array().unwrap().len(), 1);
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
    assert_ne!(uuid, "00000000-0000-0000-0000-000000000000");
    let info = &meta["model_info"][uuid];
    for k in ["name", "version", "arch"] {
        assert!(info[k].is_string(), "model_info lacks {k}: {meta}");
    }
    let results: Vec<_> = msgs.iter().filter(|m| m["type"] == "Results").collect();
    assert!(!results.is_empty());
    for r in results {
        assert_eq!(r["metadata"]["model_uuid"], uuid, "{r}");
        assert_eq!(&r["metadata"]["model_info"], info, "{r}");
        assert_eq!(r["metadata"]["request_id"], meta["request_id"]);
    }
}

/// Reads JSON messages until none arrives for `quiet` (at most 100).
async fn drain(ws: &mut Ws, quiet: Duration) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for _ in 0..100 {
        match next(ws, quiet).await {
            Got::Text(t) => out.push(serde_json::from_str(&t).unwrap()),
            Got::Timeout => return out,
            other => panic!("{other:?} after {out:?}"),
        }
    }
    panic!("no quiet moment in {out:?}")
}

fn keys(m: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = m.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// `vad_events=true` gives Deepgram's `SpeechStarted` when speech starts;
/// `utterance_end_ms=1000` an `UtteranceEnd` once a second of audio passed
/// after the last word (not 0.9 s); both in the shapes the SDKs' types
/// declare.
#[tokio::test]
async fn vad_events_and_utterance_end_are_sent_when_asked_for() {
    let srv = start().await;
    let mut audio = tone(0.5, 0.0, 16_000);
    audio.extend(tone(1.0, 0.5, 16_000));
    audio.extend(tone(0.9, 0.0, 16_000));
    let url = format!("{Q}&vad_events=true&utterance_end_ms=1000");
    let mut ws = connect_ok(&srv.ws_url(&url)).await;
    for c in audio.chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let msgs = drain(&mut ws, Duration::from_millis(400)).await;
    let started: Vec<_> = msgs
        .iter()
        .filter(|m| m["type"] == "SpeechStarted")
        .collect();
    assert_eq!(started.len(), 1, "{msgs:#?}");
    assert_eq!(keys(started[0]), ["channel", "timestamp", "type"]);
    assert_eq!(started[0]["channel"], serde_json::json!([0, 1]));
    let ts = started[0]["timestamp"].as_f64().unwrap();
    assert!((ts - 0.5).abs() <= 0.02, "speech starts at 0.5 s, got {ts}");
    let first_words = msgs
        .iter()
        .position(|m| m["type"] == "Results" && !transcript(m).is_empty())
        .unwrap();
    let started_at = msgs.iter().position(|m| m["type"] == "SpeechStarted");
    assert!(started_at.unwrap() < first_words);
    let speech_final = msgs
        .iter()
        .find(|m| m["type"] == "Results" && m["is_final"] == true && !transcript(m).is_empty())
        .expect("the speech's final")
        .clone();
    assert!(
        msgs.iter().all(|m| m["type"] != "UtteranceEnd"),
        "0.9 s after the last word is too early: {msgs:#?}"
    );

    send_bin(&mut ws, &tone(0.2, 0.0, 16_000)).await;
    let more = drain(&mut ws, Duration::from_millis(400)).await;
    let ends: Vec<_> = more
        .iter()
        .filter(|m| m["type"] == "UtteranceEnd")
        .collect();
    assert_eq!(ends.len(), 1, "{more:#?}");
    assert_eq!(keys(ends[0]), ["channel", "last_word_end", "type"]);
    assert_eq!(ends[0]["channel"], serde_json::json!([0, 1]));
    let words = speech_final["channel"]["alternatives"][0]["words"]
        .as_array()
        .unwrap();
    assert_eq!(
        us(&ends[0]["last_word_end"]),
        us(&words.last().unwrap()["end"]),
        "last_word_end is the end of the last word"
    );
    assert!((ends[0]["last_word_end"].as_f64().unwrap() - 1.5).abs() <= 0.02);
    // Once per pause: more silence brings no second one.
    let rest = stream_and_close(
        &mut ws,
        &tone(1.5, 0.0, 16_000),
        16_000,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        rest.iter().all(|m| m["type"] != "UtteranceEnd"),
        "{rest:#?}"
    );

    // Not asked for: neither is sent.
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let msgs = stream_and_close(&mut ws, &audio, 16_000, Duration::from_secs(5)).await;
    assert!(
        msgs.iter()
            .all(|m| m["type"] != "SpeechStarted" && m["type"] != "UtteranceEnd"),
        "{msgs:#?}"
    );
}

#[tokio::test]
async fn bad_vad_options_are_a_400() {
    let srv = start().await;
    for q in [
        "vad_events=yes",
        "utterance_end_ms=soon",
        "utterance_end_ms=0",
    ] {
        match connect(&srv.ws_url(&format!("{Q}&{q}")), &[], &[]).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 400, "{q}")
            }
            other => panic!("{q}: expected 400, got {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn idle_connection_closes_with_net_0001() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let t0 = std::time::Instant::now();
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1011, "NET-0001".into())));
    assert!(t0.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn keepalives_hold_an_idle_connection_open() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    }
    // 1.2 s > the 0.6 s idle timeout, yet still open.
    assert!(matches!(
        next(&mut ws, Duration::from_millis(100)).await,
        Got::Timeout
    ));
    let s = srv.wait_session(|s| s["keepalives"] == 6).await;
    assert!(s["close_code_sent"].is_null());
}

#[tokio::test]
async fn auth_by_header_or_subprotocol_and_bad_tokens_get_401() {
    let srv = start().await;
    let url = srv.ws_url(Q);
    let (_ws, selected) = connect(&url, &["token", "secret-1"], &[]).await.unwrap();
    assert_eq!(
        selected.as_deref(),
        Some("token"),
        "browsers fail unless `token` is selected"
    );
    connect(&url, &[], &[("authorization", "Token k2")])
        .await
        .unwrap();
    connect(&url, &[], &[])
        .await
        .expect("no token is fine without --token");
    for (protocols, headers) in [
        (vec!["token", "bad-key"], vec![]),
        (vec![], vec![("authorization", "Token bad")]),
    ] {
        match connect(&url, &protocols, &headers).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    let sessions = srv.sessions().await;
    let fp: Vec<_> = sessions
        .iter()
        .map(|s| s["token_fingerprint"].clone())
        .collect();
    assert!(fp[0].as_str().unwrap().len() >= 8 && !fp[0].as_str().unwrap().contains("secret"));
    assert_eq!(sessions[0]["subprotocol"], "token");
    assert_eq!(sessions[3]["http_status"], 401);
    assert_eq!(sessions[3]["authenticated"], false);
}

#[tokio::test]
async fn configured_token_is_the_only_one_accepted() {
    let srv = start_with(|c| c.token = Some("s3cret".into())).await;
    let url = srv.ws_url(Q);
    connect(&url, &["token", "s3cret"], &[])
        .await
        .expect("right token");
    for protocols in [vec!["token", "other"], vec![]] {
        match connect(&url, &protocols, &[]).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
}

/// The Deepgram SDK's browser path for short-lived access tokens offers
/// `bearer, T`; the 101 must select `bearer` (Chromium rejects a 101 that
/// selects none of the offered subprotocols).
#[tokio::test]
async fn bearer_subprotocol_is_accepted_and_selected() {
    let srv = start().await;
    let url = srv.ws_url(Q);
    let (_ws, selected) = connect(&url, &["bearer", "eyJhbGciOi.access.token"], &[])
        .await
        .unwrap();
    assert_eq!(selected.as_deref(), Some("bearer"));
    let (_ws, selected) = connect(&url, &["token", "k1"], &[]).await.unwrap();
    assert_eq!(selected.as_deref(), Some("token"));
    let (_ws, selected) = connect(&url, &[], &[("authorization", "Bearer t2")])
        .await
        .unwrap();
    assert_eq!(selected, None);
    match connect(&url, &["bearer", "bad-token"], &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let sessions = srv.sessions().await;
    assert_eq!(sessions[0]["subprotocol"], "bearer");
    assert_eq!(sessions[0]["authenticated"], true);
    let fp = sessions[0]["token_fingerprint"].as_str().unwrap();
    assert!(!fp.contains("access"), "the token itself is never recorded");
    assert_eq!(sessions[1]["subprotocol"], "token");
    assert_eq!(sessions[3]["http_status"], 401);
}

#[tokio::test]
async fn bearer_with_a_configured_token_accepts_only_that_token() {
    let srv = start_with(|c| c.token = Some("s3cret".into())).await;
    let url = srv.ws_url(Q);
    let (_ws, selected) = connect(&url, &["bearer", "s3cret"], &[]).await.unwrap();
    assert_eq!(selected.as_deref(), Some("bearer"));
    let (_ws, selected) = connect(&url, &["token", "s3cret"], &[]).await.unwrap();
    assert_eq!(selected.as_deref(), Some("token"));
    connect(&url, &[], &[("authorization", "Bearer s3cret")])
        .await
        .expect("Authorization: Bearer with the right token");
    for (protocols, headers) in [
        (vec!["bearer", "other"], vec![]),
        (vec!["bearer"], vec![]),
        (vec![], vec![("authorization", "Bearer other")]),
    ] {
        match connect(&url, &protocols, &headers).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!(
                "{protocols:?} {headers:?}: expected 401, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

/// Deepgram's original end-of-stream signal was an empty binary message; it
/// is deprecated but still honoured like CloseStream, so a client that sends
/// an empty frame by accident ends its session.
#[tokio::test]
async fn empty_binary_frame_ends_the_stream_like_close_stream() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_bin(&mut ws, &tone(0.2, 0.5, 16_000)).await;
    send_bin(&mut ws, &[]).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert_eq!(msgs.last().unwrap()["type"], "Metadata");
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(&mut ws, &"x".repeat(65 * 1024)).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5))
            .await
            .0
            .map(|c| c.0),
        Some(1009)
    );
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_bin(&mut ws, &vec![0u8; (1 << 20) + 2]).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5))
            .await
            .0
            .map(|c| c.0),
        Some(1009)
    );
}

#[tokio::test]
async fn recording_keeps_the_audio_and_strips_tokens_from_the_query() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(&format!("{Q}&token=abc&language=en"))).await;
    let audio = tone(0.5, 0.3, 16_000);
    send_bin(&mut ws, &audio[..1000]).await;
    send_bin(&mut ws, &audio[1000..]).await;
    close(&mut ws, 4000, "bye").await;
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["close_code_received"], 4000);
    assert_eq!(s["close_reason_received"], "bye");
    assert_eq!(s["audio_frames"], 2);
    assert!(s["query"].get("token").is_none());
    assert_eq!(s["query"]["language"], "en");
    assert_eq!(s["engine"], "meter");
    assert!(s["first_audio_ms"].as_u64().unwrap() <= s["last_audio_ms"].as_u64().unwrap());
    let (status, wav) = srv
        .http(
            "GET",
            &format!("/control/sessions/{}/audio", s["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let w = devserver::wav::parse_wav(&wav).unwrap();
    assert_eq!((w.sample_rate, w.channels), (16_000, 1));
    assert_eq!(w.pcm, audio);
    let (status, _) = srv.http("DELETE", "/control/sessions", None).await;
    assert_eq!(status, 200);
    assert!(srv.sessions().await.is_empty());
}

/// `--record-dir` writes each session's audio when the session ends.
#[tokio::test]
async fn record_dir_gets_a_wav_per_session() {
    let dir = std::env::temp_dir().join(format!("devserver-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.clone();
    let srv = start_with(move |c| c.record_dir = Some(d)).await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let audio = tone(0.25, 0.2, 16_000);
    send_bin(&mut ws, &audio).await;
    close(&mut ws, 1000, "").await;
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    let path = dir.join(format!("{}.wav", s["id"].as_str().unwrap()));
    let mut bytes = Vec::new();
    for _ in 0..50 {
        if let Ok(b) = std::fs::read(&path) {
            bytes = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(devserver::wav::parse_wav(&bytes).unwrap().pcm, audio);
}

#[tokio::test]
async fn engine_is_chosen_per_connection_and_unknown_ones_are_a_400() {
    let srv = start().await;
    connect_ok(&srv.ws_url(&format!("{Q}&engine=meter"))).await;
    match connect(&srv.ws_url(&format!("{Q}&engine=whisper")), &[], &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected 400, got {:?}", other.map(|_| ())),
    }
    let s = srv.sessions().await;
    assert_eq!(s[0]["engine"], "meter");
    assert_eq!(s[1]["http_status"], 400);
}
