//! `/v1/stream`: the resumable generic protocol of docs/protocol.md.

mod common;

use std::time::Duration;

use common::*;
use devserver::engine::counter::encode_bytes;
use serde_json::{json, Value};

const Q: &str = "/v1/stream?encoding=linear16&sample_rate=16000&channels=1";

async fn started(srv: &TestServer, stream: &str, offset: u64) -> (Ws, u64) {
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(
        &mut ws,
        &json!({"type": "start", "stream": stream, "offset": offset}).to_string(),
    )
    .await;
    let v = next_json(&mut ws).await;
    assert_eq!(v["type"], "started");
    assert_eq!(v["stream"], stream);
    (ws, v["offset"].as_u64().unwrap())
}

/// Waits for an ack at or beyond `at_least`, skipping transcripts.
async fn ack_reaching(ws: &mut Ws, at_least: u64) -> u64 {
    loop {
        let v = next_json(ws).await;
        if v["type"] == "ack" {
            let o = v["offset"].as_u64().unwrap();
            if o >= at_least {
                return o;
            }
        }
    }
}

/// The scenario the protocol exists for: a connection drops after part of
/// the audio was acknowledged, the client reconnects and resends from its
/// last ack, overlapping what the server already had. The stored stream
/// must equal the original bytes exactly.
#[tokio::test]
async fn resume_after_drop_stores_the_stream_without_holes_or_duplicates() {
    let srv = start().await;
    let mut audio = tone(0.2, 0.0, 16_000);
    audio.extend(tone(0.8, 0.4, 16_000));
    audio.extend(tone(0.5, 0.0, 16_000));
    let (mut ws, h) = started(&srv, "st-1", 0).await;
    assert_eq!(h, 0);
    for chunk in audio[..12_000].chunks(3_000) {
        send_bin(&mut ws, chunk).await;
    }
    let acked = ack_reaching(&mut ws, 12_000).await;
    assert_eq!(acked, 12_000);
    // 4 000 more bytes arrive but the client never sees their ack.
    send_bin(&mut ws, &audio[12_000..16_000]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(ws);

    let (mut ws, h) = started(&srv, "st-1", 12_000).await;
    assert_eq!(h, 16_000, "started reports the server's high-water mark");
    for chunk in audio[12_000..].chunks(3_000) {
        send_bin(&mut ws, chunk).await;
    }
    send_text(&mut ws, r#"{"type":"finish"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1000, "finished".into())));
    let n = audio.len() as u64;
    assert_eq!(
        msgs.last().unwrap(),
        &json!({"type": "finished", "offset": n})
    );
    assert_eq!(msgs[msgs.len() - 2], json!({"type": "ack", "offset": n}));
    let mut offsets = msgs
        .iter()
        .filter(|m| m["type"] == "ack")
        .map(|m| m["offset"].as_u64().unwrap());
    let mut prev = 0;
    assert!(offsets.all(|o| {
        let ok = o >= prev;
        prev = o;
        ok
    }));
    let finals: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "transcript").collect();
    assert!(finals.iter().any(|m| m["is_final"] == true), "{msgs:?}");

    let s = srv
        .wait_session(|s| s["start_offset"] == 12_000 && !s["ended_at_ms"].is_null())
        .await;
    assert_eq!(s["duplicate_bytes"], 4_000);
    assert_eq!(s["gap_bytes"], 0);
    assert_eq!(s["stream"], "st-1");
    let (status, wav) = srv.http("GET", "/control/streams/st-1/audio", None).await;
    assert_eq!(status, 200);
    assert_eq!(devserver::wav::parse_wav(&wav).unwrap().pcm, audio);
}

#[tokio::test]
async fn acks_arrive_at_least_every_second_while_audio_flows() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(5)).await;
    let (mut ws, _) = started(&srv, "acks", 0).await;
    let t0 = std::time::Instant::now();
    let mut sent = 0u64;
    let mut acks = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        send_bin(&mut ws, &tone(0.1, 0.0, 16_000)).await;
        sent += 3200;
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Got::Text(t) = next(&mut ws, Duration::from_millis(1)).await {
            if t.contains("\"ack\"") {
                acks += 1;
            }
        }
    }
    assert!(acks >= 2, "only {acks} acks for {sent} bytes in 1.5 s");
}

#[tokio::test]
async fn gap_is_recorded_when_the_client_skips_dropped_audio() {
    let srv = start().await;
    let (mut ws, _) = started(&srv, "gappy", 0).await;
    send_bin(&mut ws, &[1; 100]).await;
    ack_reaching(&mut ws, 100).await;
    drop(ws);
    let (mut ws, h) = started(&srv, "gappy", 300).await;
    assert_eq!(h, 100);
    send_bin(&mut ws, &[2; 100]).await;
    assert_eq!(ack_reaching(&mut ws, 400).await, 400);
    let s = srv.wait_session(|s| s["start_offset"] == 300).await;
    assert_eq!(s["gap_bytes"], 200);
}

/// Mid-connection drops: the client announces the next offset with `seek`,
/// so the stream stays aligned with real time and the gap is recorded;
/// a seek backwards is a protocol violation.
#[tokio::test]
async fn seek_skips_dropped_audio_within_a_connection() {
    let srv = start().await;
    let (mut ws, _) = started(&srv, "seeky", 0).await;
    send_bin(&mut ws, &[1; 100]).await;
    send_text(&mut ws, &json!({"type": "seek", "offset": 250}).to_string()).await;
    send_bin(&mut ws, &[2; 50]).await;
    assert_eq!(ack_reaching(&mut ws, 300).await, 300);
    let s = srv.wait_session(|s| s["stream"] == "seeky").await;
    assert_eq!(s["gap_bytes"], 150);
    send_text(&mut ws, &json!({"type": "seek", "offset": 10}).to_string()).await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|(code, _)| code), Some(4400));
}

#[tokio::test]
async fn wrong_token_closes_4001_after_the_upgrade() {
    let srv = start_with(|c| c.token = Some("t0k".into())).await;
    let (mut ws, sel) = connect(&srv.ws_url(Q), &["token", "nope"], &[])
        .await
        .unwrap();
    assert_eq!(sel.as_deref(), Some("token"));
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3)).await.0,
        Some((4001, "unauthorized".into()))
    );
    let mut ws = connect_ok(&srv.ws_url(&format!("{Q}&token=bad"))).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(4001)
    );
    // The right token, by query this time, works.
    let mut ws = connect_ok(&srv.ws_url(&format!("{Q}&token=t0k"))).await;
    send_text(&mut ws, r#"{"type":"start","stream":"ok","offset":0}"#).await;
    assert_eq!(next_json(&mut ws).await["type"], "started");
    let sessions = srv.sessions().await;
    assert!(sessions.iter().all(|s| s["query"].get("token").is_none()));
}

#[tokio::test]
async fn protocol_violations_close_with_the_documented_codes() {
    let srv = start().await;
    // Audio before start.
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_bin(&mut ws, &[0; 10]).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(4400)
    );
    // A bad stream id.
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(
        &mut ws,
        r#"{"type":"start","stream":"no spaces!","offset":0}"#,
    )
    .await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(4400)
    );
    // An offset beyond JSON's exact integers.
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    send_text(
        &mut ws,
        r#"{"type":"start","stream":"big","offset":18446744073709551615}"#,
    )
    .await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(4400)
    );
    // No start at all.
    let mut ws = connect_ok(&srv.ws_url(Q)).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(4400)
    );
    // An empty binary frame.
    let (mut ws, _) = started(&srv, "empty", 0).await;
    send_bin(&mut ws, &[]).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(1003)
    );
    // Unknown messages are reported, not fatal.
    let (mut ws, _) = started(&srv, "chatty", 0).await;
    send_text(&mut ws, r#"{"type":"what"}"#).await;
    assert_eq!(next_json(&mut ws).await["type"], "error");
    send_text(&mut ws, r#"{"type":"keepalive"}"#).await;
    send_bin(&mut ws, &[0; 320]).await;
    assert_eq!(ack_reaching(&mut ws, 320).await, 320);
}

#[tokio::test]
async fn idle_stream_closes_1001() {
    let srv = start().await;
    let (mut ws, _) = started(&srv, "idle", 0).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3))
            .await
            .0
            .map(|c| c.0),
        Some(1001)
    );
}

/// A start message with the counter engine's query.
const QC: &str = "/v1/stream?encoding=linear16&sample_rate=16000&channels=1&engine=counter";

async fn started_with(srv: &TestServer, start: Value) -> (Ws, u64) {
    let mut ws = connect_ok(&srv.ws_url(QC)).await;
    send_text(&mut ws, &start.to_string()).await;
    let v = next_json(&mut ws).await;
    assert_eq!(v["type"], "started", "{v}");
    (ws, v["offset"].as_u64().unwrap())
}

/// `(text, start, end)` of the final transcripts in `msgs`.
fn finals(msgs: &[Value]) -> Vec<(String, f64, f64)> {
    msgs.iter()
        .filter(|m| m["type"] == "transcript" && m["is_final"] == true)
        .map(|m| {
            (
                m["text"].as_str().unwrap().to_string(),
                m["start"].as_f64().unwrap(),
                m["end"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Sends `finish` and returns the JSON messages up to the 1000 close.
async fn finish(ws: &mut Ws) -> Vec<Value> {
    send_text(ws, r#"{"type":"finish"}"#).await;
    let (close, msgs) = until_close(ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1000, "finished".into())), "{msgs:#?}");
    msgs
}

fn f(text: &str, start: f64, end: f64) -> (String, f64, f64) {
    (text.to_string(), start, end)
}

/// Before: the audio of a `seek` gap was never given to the engine, so
/// its clock fell behind and every transcript after the gap lagged stream
/// time by the gap (here `pos 32000-48000` came out at 1-2 s instead of
/// 2-3 s). Now the engine's clock moves on by the gap.
#[tokio::test]
async fn transcript_times_after_a_seek_gap_are_stream_time() {
    let srv = start().await;
    let (mut ws, _) = started_with(
        &srv,
        json!({"type": "start", "stream": "gap-t", "offset": 0}),
    )
    .await;
    for c in encode_bytes(0, 16_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    // Positions 16 000..32 000 were dropped by the client (and reported).
    send_text(
        &mut ws,
        &json!({"type": "seek", "offset": 64_000}).to_string(),
    )
    .await;
    for c in encode_bytes(32_000, 48_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let msgs = finish(&mut ws).await;
    assert_eq!(
        finals(&msgs),
        vec![f("pos 0-16000", 0.0, 1.0), f("pos 32000-48000", 2.0, 3.0)],
        "{msgs:#?}"
    );
    // Interims after the gap are stream time too.
    let interim = msgs
        .iter()
        .find(|m| m["is_final"] == false && m["text"] == "pos 32000-36000")
        .expect("an interim after the gap");
    assert_eq!(
        (interim["start"].as_f64(), interim["end"].as_f64()),
        (Some(2.0), Some(2.25))
    );
    let s = srv.wait_session(|s| s["stream"] == "gap-t").await;
    assert_eq!(s["gap_bytes"], 32_000);
}
