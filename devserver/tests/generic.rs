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

/// Reads messages until `done` says the ones so far are enough.
async fn read_until(ws: &mut Ws, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut msgs = Vec::new();
    while !done(&msgs) {
        msgs.push(next_json(ws).await);
    }
    msgs
}

fn acked(msgs: &[Value], at_least: u64) -> bool {
    msgs.iter()
        .any(|m| m["type"] == "ack" && m["offset"].as_u64() >= Some(at_least))
}

fn has_final(msgs: &[Value], text: &str) -> bool {
    finals(msgs).iter().any(|f| f.0 == text)
}

/// The next frame within `ms`, expecting none: a transcript there would be
/// one the server should not have sent.
async fn assert_no_transcript_within(ws: &mut Ws, ms: u64) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_millis(ms) {
        match next(ws, Duration::from_millis(50)).await {
            Got::Text(t) => assert!(!t.contains("transcript"), "unexpected {t}"),
            Got::Timeout => {}
            other => panic!("{other:?}"),
        }
    }
}

/// Before: transcription belonged to the connection, so audio stored (and
/// acknowledged) on a connection reset before its final was never
/// finalized, and the client, which resends only unacknowledged audio,
/// never got a transcript for it (here 1.0-1.5 s). Now the stream's engine
/// is flushed when its last connection goes, and the final reaches the
/// next connection.
#[tokio::test]
async fn a_final_lost_with_a_reset_connection_arrives_after_the_reconnect() {
    let srv = start().await;
    let (mut ws, _) = started_with(
        &srv,
        json!({"type": "start", "stream": "reset-f", "offset": 0}),
    )
    .await;
    for c in encode_bytes(0, 24_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let first = read_until(&mut ws, |m| acked(m, 48_000) && has_final(m, "pos 0-16000")).await;
    srv.control("reset", "{}").await;
    srv.wait_session(|s| s["stream"] == "reset-f" && !s["ended_at_ms"].is_null())
        .await;
    drop(ws);

    // Everything was acknowledged: the client resumes at 48 000 and has
    // finals up to 1.0 s.
    let start = json!({"type": "start", "stream": "reset-f", "offset": 48_000, "final_from": 1.0});
    let (mut ws, h) = started_with(&srv, start).await;
    assert_eq!(h, 48_000);
    // Sent again right after `started`, or live if the flush was still
    // under way when this connection attached; acks may come first then.
    let v = read_until(&mut ws, |m| {
        m.last().is_some_and(|v| v["type"] == "transcript")
    })
    .await
    .pop()
    .unwrap();
    assert_eq!(
        (&v["type"], &v["text"], &v["is_final"]),
        (
            &json!("transcript"),
            &json!("pos 16000-24000"),
            &json!(true)
        ),
        "{v}"
    );
    assert_eq!(
        (v["start"].as_f64(), v["end"].as_f64()),
        (Some(1.0), Some(1.5))
    );
    for c in encode_bytes(24_000, 32_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let rest = finish(&mut ws).await;
    let all: Vec<Value> = first.into_iter().chain([v]).chain(rest).collect();
    assert_eq!(
        finals(&all),
        vec![
            f("pos 0-16000", 0.0, 1.0),
            f("pos 16000-24000", 1.0, 1.5),
            f("pos 24000-32000", 1.5, 2.0)
        ]
    );
}

/// A final the server sent on a connection that then died may never have
/// reached the client. `final_from` says how far the client's finals go:
/// the server sends again, right after `started`, every final ending after
/// it. Without the field it sends nothing extra.
#[tokio::test]
async fn finals_in_flight_are_sent_again_after_final_from_and_only_then() {
    let srv = start().await;
    let (mut ws, _) = started_with(
        &srv,
        json!({"type": "start", "stream": "flight", "offset": 0}),
    )
    .await;
    for c in encode_bytes(0, 16_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    // The server sends the final; this client loses it with the connection.
    read_until(&mut ws, |m| acked(m, 32_000) && has_final(m, "pos 0-16000")).await;
    drop(ws);
    srv.wait_session(|s| s["stream"] == "flight" && !s["ended_at_ms"].is_null())
        .await;

    let (mut ws, _) = started_with(
        &srv,
        json!({"type": "start", "stream": "flight", "offset": 32_000}),
    )
    .await;
    assert_no_transcript_within(&mut ws, 300).await;
    close(&mut ws, 1000, "").await;

    let start = json!({"type": "start", "stream": "flight", "offset": 32_000, "final_from": 0.0});
    let (mut ws, _) = started_with(&srv, start).await;
    let v = next_json(&mut ws).await;
    assert_eq!(v["text"], "pos 0-16000", "{v}");
    assert_eq!(
        (v["start"].as_f64(), v["end"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    let rest = finish(&mut ws).await;
    assert!(finals(&rest).is_empty(), "{rest:#?}");
}

/// Finals the client already has (`end` not after `final_from`) are not
/// sent again, and none is sent twice on one connection.
#[tokio::test]
async fn no_final_is_sent_twice_when_final_from_covers_it() {
    let srv = start().await;
    let (mut ws, _) = started_with(
        &srv,
        json!({"type": "start", "stream": "nodup", "offset": 0}),
    )
    .await;
    for c in encode_bytes(0, 32_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let first = read_until(&mut ws, |m| {
        acked(m, 64_000) && has_final(m, "pos 0-16000") && has_final(m, "pos 16000-32000")
    })
    .await;
    assert_eq!(
        finals(&first),
        vec![f("pos 0-16000", 0.0, 1.0), f("pos 16000-32000", 1.0, 2.0)]
    );
    close(&mut ws, 1000, "").await;

    // The client has everything: nothing comes again.
    let start = json!({"type": "start", "stream": "nodup", "offset": 64_000, "final_from": 2.0});
    let (mut ws, _) = started_with(&srv, start).await;
    assert_no_transcript_within(&mut ws, 300).await;
    close(&mut ws, 1000, "").await;

    // It has finals up to 1.0 s: only the one after that, once.
    let start = json!({"type": "start", "stream": "nodup", "offset": 64_000, "final_from": 1.0});
    let (mut ws, _) = started_with(&srv, start).await;
    for c in encode_bytes(32_000, 40_000).chunks(3200) {
        send_bin(&mut ws, c).await;
    }
    let msgs = finish(&mut ws).await;
    assert_eq!(
        finals(&msgs),
        vec![
            f("pos 16000-32000", 1.0, 2.0),
            f("pos 32000-40000", 2.0, 2.5)
        ],
        "{msgs:#?}"
    );
}

#[tokio::test]
async fn a_bad_final_from_closes_4400() {
    let srv = start().await;
    for bad in [json!("soon"), json!(-1.0), json!([1])] {
        let mut ws = connect_ok(&srv.ws_url(QC)).await;
        let start = json!({"type": "start", "stream": "bad-ff", "offset": 0, "final_from": bad});
        send_text(&mut ws, &start.to_string()).await;
        let (close, msgs) = until_close(&mut ws, Duration::from_secs(3)).await;
        assert_eq!(close.map(|c| c.0), Some(4400), "{bad}");
        assert_eq!(msgs[0]["code"], "bad-start");
    }
    // null is the field left out.
    let start = json!({"type": "start", "stream": "bad-ff", "offset": 0, "final_from": null});
    started_with(&srv, start).await;
}

/// Streams are kept across connections, but not forever: one with no
/// connection for `stream_idle` is forgotten (audio, mark and finals) when
/// the next stream opens; one with a connection is kept however long.
#[tokio::test]
async fn streams_without_a_connection_are_forgotten_after_stream_idle() {
    let srv = start_with(|c| {
        c.timeouts.stream_idle = Duration::from_millis(300);
        c.timeouts.idle = Duration::from_secs(5);
    })
    .await;
    let (mut old, _) = started(&srv, "old", 0).await;
    send_bin(&mut old, &[0; 320]).await;
    ack_reaching(&mut old, 320).await;
    close(&mut old, 1000, "").await;
    let (mut live, _) = started(&srv, "live", 0).await;
    send_bin(&mut live, &[0; 640]).await;
    ack_reaching(&mut live, 640).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (mut other, _) = started(&srv, "other", 0).await;
    assert_eq!(
        srv.http("GET", "/control/streams/old/audio", None).await.0,
        404
    );
    let (status, wav) = srv.http("GET", "/control/streams/live/audio", None).await;
    assert_eq!(status, 200);
    assert_eq!(devserver::wav::parse_wav(&wav).unwrap().pcm.len(), 640);
    close(&mut other, 1000, "").await;
    let (_old, h) = started(&srv, "old", 0).await;
    assert_eq!(h, 0, "a forgotten stream starts over");
    send_text(&mut live, r#"{"type":"keepalive"}"#).await;
}
