//! Finals that a client can confirm audio by: they tile the stream on every
//! engine, and `CloseStream`/`Finalize` finalize everything received. Also
//! the `counter` engine, which names the stream positions each result
//! covers, on the Deepgram, Omi and generic endpoints.

mod common;

use std::time::Duration;

use common::*;
use devserver::engine::counter::encode_bytes;
use devserver::EngineKind;
use serde_json::{json, Value};

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

fn results_finals(msgs: &[Value]) -> Vec<(String, i64, i64)> {
    msgs.iter()
        .filter(|m| m["type"] == "Results" && m["is_final"] == true)
        .map(|m| {
            let s = us(&m["start"]);
            (transcript(m).to_string(), s, s + us(&m["duration"]))
        })
        .collect()
}

/// The fault matrix's engine: each final names the stream positions its
/// audio carried, one final per second of received audio; a resend going
/// back and a gap show as separate runs; times stay the socket's audio
/// time.
#[tokio::test]
async fn counter_engine_names_the_positions_each_final_covers() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(&format!("{Q}&engine=counter"))).await;
    let mut pcm = encode_bytes(0, 8_000);
    pcm.extend(encode_bytes(6_400, 16_000)); // resend from 6 400
    pcm.extend(encode_bytes(20_000, 28_000)); // gap: 16 000..20 000 lost
    let msgs = stream_and_close(&mut ws, &pcm, 16_000, Duration::from_secs(5)).await;
    assert_finals_tile(&msgs, 25_600, 16_000);
    assert_eq!(
        results_finals(&msgs),
        vec![
            ("pos 0-8000 pos 6400-14400".to_string(), 0, 1_000_000),
            (
                "pos 14400-16000 pos 20000-28000".to_string(),
                1_000_000,
                1_600_000
            ),
        ]
    );
    let interims: Vec<(&str, i64)> = msgs
        .iter()
        .filter(|m| m["type"] == "Results" && m["is_final"] == false)
        .map(|m| (transcript(m), us(&m["start"]) + us(&m["duration"])))
        .collect();
    assert_eq!(
        &interims[..3],
        &[
            ("pos 0-4000", 250_000),
            ("pos 0-8000", 500_000),
            ("pos 0-8000 pos 6400-10400", 750_000)
        ],
        "{interims:?}"
    );
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["engine"], "counter");
}

#[tokio::test]
async fn counter_is_also_the_server_default_with_engine_counter() {
    let srv = start_with(|c| c.engine = EngineKind::Counter).await;
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let msgs = stream_and_close(
        &mut ws,
        &encode_bytes(32_000, 56_000),
        16_000,
        Duration::from_secs(5),
    )
    .await;
    let texts: Vec<String> = results_finals(&msgs).into_iter().map(|f| f.0).collect();
    assert_eq!(texts, ["pos 32000-48000", "pos 48000-56000"]);
}

async fn omi(srv: &TestServer, engine: &str) -> Ws {
    let url = format!(
        "/v4/web/listen?language=en&sample_rate=16000&codec=pcm16&channels=1&engine={engine}"
    );
    let mut ws = connect_ok(&srv.ws_url(&url)).await;
    send_text(&mut ws, r#"{"type":"auth","token":"tok"}"#).await;
    assert_eq!(next_json(&mut ws).await["success"], true);
    assert_eq!(next_json(&mut ws).await["status"], "ready");
    ws
}

/// Reads Omi segments until `n` arrived: `(id, text, start us, end us)`.
async fn omi_segments(ws: &mut Ws, n: usize) -> Vec<(String, String, i64, i64)> {
    let mut segs = Vec::new();
    while segs.len() < n {
        let v = next_json(ws).await;
        for s in v.as_array().expect("segment array") {
            segs.push((
                s["id"].as_str().unwrap().to_string(),
                s["text"].as_str().unwrap().to_string(),
                us(&s["start"]),
                us(&s["end"]),
            ));
        }
    }
    segs
}

/// Nothing but `ping` for `ms`.
async fn only_pings_for(ws: &mut Ws, ms: u64) -> usize {
    let t0 = std::time::Instant::now();
    let mut pings = 0;
    while t0.elapsed() < Duration::from_millis(ms) {
        match next(ws, Duration::from_millis(100)).await {
            Got::Text(t) if t == "ping" => pings += 1,
            Got::Timeout => {}
            other => panic!("nothing but ping expected, got {other:?}"),
        }
    }
    pings
}

/// Omi segments are the non-empty finals, exactly those Deepgram gives for
/// the same audio (one tiling, in this socket's audio time), so they are
/// ordered, never overlap, and each confirms only audio whose words it
/// carries. They need no flush (Omi has none): the meter ends a run after
/// 300 ms of quiet, and the pause after it is covered by no segment.
/// Before: every interim was a segment too (updating one id), and clients,
/// which take each segment's end as proof that the audio before it was
/// processed and each segment as final, confirmed audio whose words were
/// still to come and showed every update as another final.
#[tokio::test]
async fn omi_segments_are_the_non_empty_finals_and_need_no_flush() {
    let srv = start().await;
    let mut pcm = fixture("speech-a-16k.wav").pcm;
    pcm.extend(tone(0.5, 0.0, 16_000));
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    let msgs = stream_and_close(&mut ws, &pcm, 16_000, Duration::from_secs(10)).await;
    let want: Vec<(String, i64, i64)> = results_finals(&msgs)
        .into_iter()
        .filter(|f| !f.0.is_empty())
        .collect();
    assert!(want.len() >= 2, "{want:?}");

    let mut ws = omi(&srv, "meter").await;
    for c in pcm.chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let segs = omi_segments(&mut ws, want.len()).await;
    let got: Vec<(String, i64, i64)> = segs
        .iter()
        .map(|(_, t, s, e)| (t.clone(), *s, *e))
        .collect();
    assert_eq!(got, want);
    let ids: std::collections::BTreeSet<&String> = segs.iter().map(|s| &s.0).collect();
    assert_eq!(ids.len(), segs.len(), "one segment per final: {segs:#?}");
    only_pings_for(&mut ws, 500).await;

    // The counter: one segment per second of audio, named by the stream
    // positions it carries; the last half second waits for a final that
    // only a flush would bring, so no segment claims it.
    let mut ws = omi(&srv, "counter").await;
    for c in encode_bytes(48_000, 88_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let segs = omi_segments(&mut ws, 2).await;
    let got: Vec<(&str, i64, i64)> = segs
        .iter()
        .map(|(_, t, s, e)| (t.as_str(), *s, *e))
        .collect();
    assert_eq!(
        got,
        vec![
            ("pos 48000-64000", 0, 1_000_000),
            ("pos 64000-80000", 1_000_000, 2_000_000)
        ]
    );
    only_pings_for(&mut ws, 500).await;

    // Silence on the meter: only pings, no segments.
    let mut ws = omi(&srv, "meter").await;
    for c in tone(2.5, 0.0, 16_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    assert!(
        only_pings_for(&mut ws, 700).await >= 1,
        "the 300 ms test ping keeps coming"
    );
}

/// The generic endpoint's transcript times are stream time: a resumed
/// connection's worker starts at the server's high-water mark.
#[tokio::test]
async fn generic_transcripts_are_stream_time_across_a_resume() {
    let srv = start().await;
    let q = "/v1/stream?encoding=linear16&sample_rate=16000&channels=1&engine=counter";
    let start_msg =
        |offset: u64| json!({"type":"start","stream":"cnt","offset":offset}).to_string();
    let mut ws = connect_ok(&srv.ws_url(q)).await;
    send_text(&mut ws, &start_msg(0)).await;
    assert_eq!(next_json(&mut ws).await["offset"], 0);
    for c in encode_bytes(0, 16_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    loop {
        let v = next_json(&mut ws).await;
        if v["type"] == "transcript" && v["is_final"] == true {
            assert_eq!(v["text"], "pos 0-16000");
            assert_eq!(
                (v["start"].as_f64(), v["end"].as_f64()),
                (Some(0.0), Some(1.0))
            );
            break;
        }
    }
    drop(ws);
    // Resend from position 12 000 (byte 24 000): the overlap is dropped as
    // a duplicate, so the worker starts at the mark, 1.0 s.
    let mut ws = connect_ok(&srv.ws_url(q)).await;
    send_text(&mut ws, &start_msg(24_000)).await;
    assert_eq!(next_json(&mut ws).await["offset"], 32_000);
    for c in encode_bytes(12_000, 40_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    send_text(&mut ws, r#"{"type":"finish"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    let finals: Vec<(&str, f64, f64)> = msgs
        .iter()
        .filter(|m| m["type"] == "transcript" && m["is_final"] == true)
        .map(|m| {
            (
                m["text"].as_str().unwrap(),
                m["start"].as_f64().unwrap(),
                m["end"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        finals,
        vec![("pos 16000-32000", 1.0, 2.0), ("pos 32000-40000", 2.0, 2.5)],
        "{msgs:#?}"
    );
}
