//! `/v4/web/listen`: the Omi-compatible endpoint.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const Q: &str = "/v4/web/listen?language=en&sample_rate=16000&codec=pcm16&channels=1&source=web";

async fn authed(srv: &TestServer) -> Ws {
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(&mut ws, r#"{"type":"auth","token":"tok"}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "auth_response", "success": true})
    );
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "service_status", "status": "ready"})
    );
    ws
}

/// Ready means auth_response success then service_status ready; transcripts
/// are arrays of segments with Omi's fields.
#[tokio::test]
async fn auth_then_ready_then_segment_arrays() {
    let srv = start().await;
    let mut ws = authed(&srv).await;
    send_bin(&mut ws, &tone(0.8, 0.5, 16_000)).await;
    send_bin(&mut ws, &tone(0.5, 0.0, 16_000)).await;
    let mut final_seen = false;
    for _ in 0..10 {
        let v = next_json(&mut ws).await;
        let seg = &v.as_array().expect("segments are an array")[0];
        for k in [
            "id",
            "text",
            "speaker",
            "speaker_id",
            "is_user",
            "person_id",
            "start",
            "end",
        ] {
            assert!(seg.get(k).is_some(), "segment lacks {k}: {seg}");
        }
        assert_eq!(seg["speaker"], "SPEAKER_00");
        assert!(seg["text"].as_str().unwrap().starts_with("[meter] speech"));
        if seg["text"].as_str().unwrap().contains("0.8s") {
            final_seen = true;
            break;
        }
    }
    assert!(final_seen);
    let s = srv
        .wait_session(|s| s["transcripts_sent"].as_u64() >= Some(1))
        .await;
    assert_eq!(s["authenticated"], true);
    assert_eq!(s["endpoint"], "omi");
}

#[tokio::test]
async fn bad_token_gets_auth_response_false_then_1008() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(&mut ws, r#"{"type":"auth","token":"bad-token"}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "auth_response", "success": false})
    );
    let (close, _) = until_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close.map(|c| c.0), Some(1008));
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["authenticated"], false);
}

#[tokio::test]
async fn configured_token_is_enforced() {
    let srv = start_with(|c| c.token = Some("right".into())).await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(&mut ws, r#"{"type":"auth","token":"wrong"}"#).await;
    assert_eq!(next_json(&mut ws).await["success"], false);
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(&mut ws, r#"{"type":"auth","token":"right"}"#).await;
    assert_eq!(next_json(&mut ws).await["success"], true);
}

#[tokio::test]
async fn missing_auth_times_out_with_1008() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close, Some((1008, "auth timeout".into())));
}

#[tokio::test]
async fn server_pings_and_tiny_binary_frames_are_keepalives_not_audio() {
    let srv = start().await;
    let mut ws = authed(&srv).await;
    send_bin(&mut ws, &[0]).await;
    send_bin(&mut ws, &[0, 0]).await;
    match next(&mut ws, Duration::from_secs(2)).await {
        Got::Text(t) => assert_eq!(t, "ping"),
        other => panic!("expected ping, got {other:?}"),
    }
    let s = srv.wait_session(|s| s["keepalives"] == 2).await;
    assert_eq!(s["bytes_received"], 0);
    assert_eq!(s["audio_frames"], 0);
}

#[tokio::test]
async fn silence_from_the_client_closes_1001() {
    let srv = start().await;
    let mut ws = authed(&srv).await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(4)).await;
    assert_eq!(close.map(|c| c.0), Some(1001));
}

#[tokio::test]
async fn unsupported_codec_closes_1003() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url("/v4/web/listen?codec=opus&sample_rate=16000")).await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close.map(|c| c.0), Some(1003));
}
