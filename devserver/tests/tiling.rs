//! Finals that a client can confirm audio by: they tile the stream on every
//! engine, and `CloseStream`/`Finalize` finalize everything received.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const Q: &str = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1&interim_results=true";

/// The issue: with the meter, an empty final covered 0-1.0 s while the next
/// final started at 0.52 s, and the end of each fixture (2.40-3.37 s of
/// hello, 14.78-15.76 s of speech-a) was never finalized, not even by
/// CloseStream.
#[tokio::test]
async fn meter_finals_tile_both_fixtures_through_close_stream() {
    let srv = start().await;
    for name in ["hello-16k.wav", "speech-a-16k.wav"] {
        let wav = fixture(name);
        let frames = (wav.pcm.len() / 2) as u64;
        let mut ws = connect_ok(&srv.ws_url(Q)).await;
        let msgs = stream_and_close(&mut ws, &wav.pcm, 16_000, Duration::from_secs(10)).await;
        let finals = assert_finals_tile(&msgs, frames, 16_000);
        assert!(
            finals
                .iter()
                .any(|f| transcript(f).starts_with("[meter] speech")),
            "{name}: {finals:#?}"
        );
        // Silence is covered by empty finals, speech by the meter's.
        assert!(finals.iter().any(|f| transcript(f).is_empty()), "{name}");
        let meta = msgs.last().unwrap();
        assert_eq!(meta["type"], "Metadata");
        assert_eq!(
            us(&meta["duration"]),
            (frames as f64 * 62.5) as i64,
            "{meta}"
        );
    }
}

/// Finalize finalizes what was received so far, and the finals after it go
/// on from there; audio sent after CloseStream is not transcribed.
#[tokio::test]
async fn finalize_mid_stream_keeps_the_tiling() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_bin(&mut ws, &tone(0.25, 0.0, 16_000)).await;
    send_bin(&mut ws, &tone(0.5, 0.5, 16_000)).await;
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    let mut first = Vec::new();
    loop {
        let m = next_json(&mut ws).await;
        let done = m["from_finalize"] == true;
        first.push(m);
        if done {
            break;
        }
    }
    assert_finals_tile(&first, 12_000, 16_000);
    let mut rest = tone(1.3, 0.0, 16_000);
    rest.extend(tone(0.33, 0.5, 16_000));
    let msgs = stream_and_close(&mut ws, &rest, 16_000, Duration::from_secs(5)).await;
    let all: Vec<Value> = first.into_iter().chain(msgs).collect();
    let total = 12_000 + (rest.len() / 2) as u64;
    let finals = assert_finals_tile(&all, total, 16_000);
    assert_eq!(
        finals.iter().filter(|f| f["from_finalize"] == true).count(),
        2
    );
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["finalize_count"], 1);
}

#[tokio::test]
async fn audio_after_close_stream_is_recorded_but_not_finalized() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_bin(&mut ws, &tone(0.5, 0.0, 16_000)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    send_bin(&mut ws, &tone(0.5, 0.0, 16_000)).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert_finals_tile(&msgs, 8_000, 16_000);
    assert_eq!(us(&msgs.last().unwrap()["duration"]), 500_000);
}
