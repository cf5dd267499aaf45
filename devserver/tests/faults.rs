//! Every fault of the control API, seen from a client, plus the control
//! API's input validation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use devserver::engine::counter::encode_bytes;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;

const DG: &str = "/v1/listen?encoding=linear16&sample_rate=16000";
const OMI: &str = "/v4/web/listen?sample_rate=16000&codec=pcm16";
const GEN: &str = "/v1/stream?sample_rate=16000";

fn http_status(r: Result<(Ws, Option<String>), WsError>) -> Option<u16> {
    match r {
        Err(WsError::Http(res)) => Some(res.status().as_u16()),
        _ => None,
    }
}

async fn omi_ready(srv: &TestServer) -> Ws {
    let mut ws = connect_ok(&srv.ws_url(OMI)).await;
    send_text(&mut ws, r#"{"type":"auth","token":"t"}"#).await;
    assert_eq!(next_json(&mut ws).await["success"], true);
    assert_eq!(next_json(&mut ws).await["status"], "ready");
    ws
}

#[tokio::test]
async fn delay_handshake_slows_only_the_next_handshake() {
    let srv = start().await;
    srv.control("delay-handshake", r#"{"ms":400}"#).await;
    let t0 = Instant::now();
    connect_ok(&srv.ws_url(DG)).await;
    assert!(t0.elapsed() >= Duration::from_millis(400));
    let t1 = Instant::now();
    connect_ok(&srv.ws_url(DG)).await;
    assert!(t1.elapsed() < Duration::from_millis(300));
    let s = &srv.sessions().await[0];
    assert_eq!(s["faults"][0], "delay-handshake:400");
}

#[tokio::test]
async fn reject_answers_the_next_n_upgrades_with_the_status() {
    let srv = start().await;
    srv.control("reject", r#"{"status":503,"scope":"next","count":2}"#)
        .await;
    assert_eq!(
        http_status(connect(&srv.ws_url(DG), &[], &[]).await),
        Some(503)
    );
    assert_eq!(
        http_status(connect(&srv.ws_url(GEN), &[], &[]).await),
        Some(503)
    );
    connect(&srv.ws_url(DG), &[], &[])
        .await
        .expect("third connect is not rejected");
    let s = srv.sessions().await;
    assert_eq!(s[0]["http_status"], 503);
    assert_eq!(s[1]["faults"][0], "reject:503");
    assert_eq!(s[2]["http_status"], 101);
}

#[tokio::test]
async fn close_current_sessions_with_a_custom_code() {
    let srv = start().await;
    let mut a = connect_ok(&srv.ws_url(DG)).await;
    let mut b = omi_ready(&srv).await;
    srv.wait_live(2).await;
    let v = srv
        .control("close", r#"{"code":4321,"reason":"custom"}"#)
        .await;
    assert_eq!(v["applied_to"], 2);
    assert_eq!(
        until_close(&mut a, Duration::from_secs(3)).await.0,
        Some((4321, "custom".into()))
    );
    assert_eq!(
        until_close(&mut b, Duration::from_secs(3)).await.0,
        Some((4321, "custom".into()))
    );
    let s = srv
        .wait_session(|s| s["close_code_sent"] == 4321 && s["close_code_received"] == 4321)
        .await;
    assert_eq!(s["faults"][0], "close:4321");
}

/// `holdMs`: the close frame goes out, then the TCP connection stays open
/// (nothing read, nothing answered) for that long before it drops.
#[tokio::test]
async fn close_with_hold_keeps_the_connection_open_after_the_close_frame() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    srv.wait_live(1).await;
    srv.control("close", r#"{"code":1001,"reason":"held","holdMs":700}"#)
        .await;
    let t0 = Instant::now();
    assert!(matches!(
        next(&mut ws, Duration::from_secs(2)).await,
        Got::Close(Some((1001, r))) if r == "held"
    ));
    // Our close reply is never answered: the stream ends only when the
    // server drops the connection.
    match next(&mut ws, Duration::from_secs(3)).await {
        Got::Error(_) => {}
        other => panic!("expected the connection to drop, got {other:?}"),
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    let s = &srv.sessions().await[0];
    assert_eq!(s["close_code_sent"], 1001);
    assert!(s["close_code_received"].is_null(), "{s}");
}

#[tokio::test]
async fn close_next_accepts_then_closes() {
    let srv = start().await;
    srv.control(
        "close",
        r#"{"code":1013,"reason":"try later","scope":"next"}"#,
    )
    .await;
    let mut ws = connect_ok(&srv.ws_url(GEN)).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(3)).await.0,
        Some((1013, "try later".into()))
    );
}

/// A reset must be a real TCP RST (ECONNRESET), not a FIN without a close
/// frame, because that is what the production failure looked like.
#[tokio::test]
async fn reset_aborts_the_tcp_connection_without_a_close_frame() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    srv.wait_live(1).await;
    srv.control("reset", "").await;
    match next(&mut ws, Duration::from_secs(3)).await {
        Got::Error(e) => assert!(
            e.contains("ConnectionReset"),
            "expected ECONNRESET, got {e}"
        ),
        other => panic!("expected a reset, got {other:?}"),
    }
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert!(s["close_code_sent"].is_null());
    assert_eq!(s["faults"][0], "reset");
}

#[tokio::test]
async fn reset_next_hits_the_following_connection() {
    let srv = start().await;
    srv.control("reset", r#"{"scope":"next"}"#).await;
    let mut ws = connect_ok(&srv.ws_url(GEN)).await;
    match next(&mut ws, Duration::from_secs(3)).await {
        Got::Error(e) => assert!(e.contains("ConnectionReset"), "{e}"),
        other => panic!("expected a reset, got {other:?}"),
    }
}

fn long_omi_idle(c: &mut devserver::ServerConfig) {
    c.timeouts.omi_idle = Duration::from_secs(10);
}

#[tokio::test]
async fn blackhole_silences_the_server_then_it_resumes() {
    let srv = start_with(long_omi_idle).await;
    let mut ws = omi_ready(&srv).await;
    assert!(matches!(next(&mut ws, Duration::from_secs(2)).await, Got::Text(t) if t == "ping"));
    srv.control("blackhole", r#"{"ms":900}"#).await;
    // The 300 ms pings stop; the socket stays open and writable.
    let t0 = Instant::now();
    assert!(matches!(
        next(&mut ws, Duration::from_millis(600)).await,
        Got::Timeout
    ));
    send_bin(&mut ws, &[0]).await;
    match next(&mut ws, Duration::from_secs(3)).await {
        Got::Text(t) => assert_eq!(t, "ping"),
        other => panic!("expected pings to resume, got {other:?}"),
    }
    assert!(t0.elapsed() >= Duration::from_millis(700));
    send_bin(&mut ws, &[0, 0]).await;
    let s = srv.wait_session(|s| s["keepalives"] == 1).await;
    assert_eq!(s["faults"][0], "blackhole");
    assert_eq!(
        s["blackholed_bytes"], 1,
        "what was sent into the blackhole is lost"
    );
}

/// Audio sent into a blackhole must not be recorded: the client replays it
/// on its next connection, and recording both would duplicate it.
#[tokio::test]
async fn audio_sent_into_a_blackhole_is_dropped() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(10)).await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    send_bin(&mut ws, &tone(0.1, 0.0, 16_000)).await;
    srv.wait_session(|s| s["bytes_received"] == 3200).await;
    srv.control("blackhole", r#"{"ms":400}"#).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_bin(&mut ws, &tone(0.2, 0.0, 16_000)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    send_bin(&mut ws, &tone(0.1, 0.0, 16_000)).await;
    let s = srv.wait_session(|s| s["bytes_received"] == 6400).await;
    assert_eq!(s["blackholed_bytes"], 6400);
    assert_eq!(s["audio_frames"], 2);
}

#[tokio::test]
async fn blackhole_without_end_holds_until_clear() {
    let srv = start_with(long_omi_idle).await;
    let mut ws = omi_ready(&srv).await;
    srv.control("blackhole", "{}").await;
    assert!(matches!(
        next(&mut ws, Duration::from_millis(800)).await,
        Got::Timeout
    ));
    let (_, faults) = srv.json("GET", "/control/faults", None).await;
    assert!(faults.is_object());
    srv.control("clear", "").await;
    assert!(matches!(next(&mut ws, Duration::from_secs(2)).await, Got::Text(t) if t == "ping"));
}

#[tokio::test]
async fn down_refuses_websockets_but_serves_files_and_control() {
    let srv = start().await;
    srv.control("down", r#"{"ms":600}"#).await;
    assert_eq!(
        http_status(connect(&srv.ws_url(DG), &[], &[]).await),
        Some(503)
    );
    assert_eq!(
        http_status(connect(&srv.ws_url(OMI), &[], &[]).await),
        Some(503)
    );
    assert_eq!(srv.http("GET", "/", None).await.0, 200);
    let (_, f) = srv.json("GET", "/control/faults", None).await;
    assert!(f["down_remaining_ms"].as_u64().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    connect(&srv.ws_url(DG), &[], &[]).await.expect("up again");
    assert_eq!(srv.sessions().await[0]["faults"][0], "down");
}

#[tokio::test]
async fn flap_closes_every_session_after_it_lived_n_ms() {
    let srv = start().await;
    srv.control("flap", r#"{"ms":300,"durationMs":5000}"#).await;
    for _ in 0..2 {
        let mut ws = connect_ok(&srv.ws_url(DG)).await;
        let t0 = Instant::now();
        send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
        assert_eq!(
            until_close(&mut ws, Duration::from_secs(3)).await.0,
            Some((1012, "flap".into()))
        );
        assert!(t0.elapsed() >= Duration::from_millis(250));
    }
    srv.control("clear", "").await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    assert!(matches!(
        next(&mut ws, Duration::from_millis(450)).await,
        Got::Timeout
    ));
}

#[tokio::test]
async fn stop_acking_starves_the_generic_client_until_disabled() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(5)).await;
    let mut ws = connect_ok(&srv.ws_url(&format!("{GEN}&engine=counter"))).await;
    send_text(&mut ws, r#"{"type":"start","stream":"sa","offset":0}"#).await;
    assert_eq!(next_json(&mut ws).await["type"], "started");
    srv.control("stop-acking", r#"{"enabled":true}"#).await;
    // 1.5 s of counted audio: the engine finalizes its first second while
    // the output is stalled.
    send_bin(&mut ws, &encode_bytes(0, 24_000)).await;
    assert!(matches!(
        next(&mut ws, Duration::from_millis(1500)).await,
        Got::Timeout
    ));
    srv.control("stop-acking", r#"{"enabled":false}"#).await;
    // The stall ends: the held final and the ack both arrive (the final
    // was held, not lost).
    let (mut ack, mut fin) = (None, None);
    while ack.is_none() || fin.is_none() {
        let v = next_json(&mut ws).await;
        match v["type"].as_str() {
            Some("ack") => ack = v["offset"].as_u64(),
            Some("transcript") if v["is_final"] == true => fin = Some(v),
            _ => {}
        }
    }
    assert_eq!(ack, Some(48_000));
    let fin = fin.unwrap();
    assert!(fin["text"].as_str().unwrap().starts_with("pos "), "{fin}");
    assert_eq!(fin["start"].as_f64(), Some(0.0), "{fin}");
}

#[tokio::test]
async fn malformed_frames_reach_the_client() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    srv.wait_live(1).await;
    srv.control("malformed", r#"{"kind":"invalid-json"}"#).await;
    match next(&mut ws, Duration::from_secs(2)).await {
        Got::Text(t) => assert!(serde_json::from_str::<Value>(&t).is_err()),
        other => panic!("{other:?}"),
    }
    srv.control("malformed", r#"{"kind":"huge-text"}"#).await;
    match next(&mut ws, Duration::from_secs(5)).await {
        Got::Text(t) => assert!(t.len() >= 2_000_000),
        other => panic!("{other:?}"),
    }
    srv.control("malformed", r#"{"kind":"unexpected-binary"}"#)
        .await;
    assert!(matches!(
        next(&mut ws, Duration::from_secs(2)).await,
        Got::Binary(_)
    ));
    let s = &srv.sessions().await[0];
    assert_eq!(s["faults"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn slow_reads_throttle_what_the_server_takes_in() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(10)).await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    srv.wait_live(1).await;
    srv.control("slow-reads", r#"{"bytesPerSec":20000}"#).await;
    let frame = vec![0u8; 32_000];
    for _ in 0..20 {
        // The socket buffers absorb these; the server takes ~20 kB/s.
        send_bin(&mut ws, &frame).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = srv.sessions().await[0]["bytes_received"].as_u64().unwrap();
    assert!(got <= 64_000, "server read {got} bytes in 0.7 s at 20 kB/s");
    srv.control("slow-reads", r#"{"bytesPerSec":0}"#).await;
    let s = srv.wait_session(|s| s["bytes_received"] == 640_000).await;
    assert_eq!(s["audio_frames"], 20);
}

/// A stuck reader: the server goes on pinging (Omi) but takes nothing in;
/// what the client sent meanwhile waits in the socket and is read when the
/// reader recovers (unlike a blackhole, nothing is lost on the way).
#[tokio::test]
async fn stuck_reader_keeps_pinging_but_reads_nothing_until_it_recovers() {
    let srv = start_with(long_omi_idle).await;
    let mut ws = omi_ready(&srv).await;
    send_bin(&mut ws, &encode_bytes(0, 1600)).await;
    srv.wait_session(|s| s["bytes_received"] == 3200).await;
    srv.control("stuck-reader", r#"{"ms":1200}"#).await;
    let t0 = Instant::now();
    send_bin(&mut ws, &encode_bytes(1600, 3200)).await;
    // Pings (every 300 ms here) keep coming: the downlink looks alive.
    for _ in 0..2 {
        match next(&mut ws, Duration::from_millis(800)).await {
            Got::Text(t) if t == "ping" => {}
            other => panic!("expected a ping while stuck, got {other:?}"),
        }
    }
    assert!(t0.elapsed() < Duration::from_millis(1100));
    let s = &srv.sessions().await[0];
    assert_eq!(s["bytes_received"], 3200, "nothing read while stuck: {s}");
    assert_eq!(s["faults"][0], "stuck-reader");
    let s = srv.wait_session(|s| s["bytes_received"] == 6400).await;
    assert!(t0.elapsed() >= Duration::from_millis(1100));
    assert_eq!(s["audio_frames"], 2);
    assert_eq!(s["blackholed_bytes"], 0);
}

#[tokio::test]
async fn stuck_reader_without_end_holds_until_clear() {
    let srv = start_with(long_omi_idle).await;
    let mut ws = omi_ready(&srv).await;
    srv.control("stuck-reader", "{}").await;
    send_bin(&mut ws, &encode_bytes(0, 1600)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(srv.sessions().await[0]["bytes_received"], 0);
    srv.control("clear", "").await;
    srv.wait_session(|s| s["bytes_received"] == 3200).await;
}

/// `interims-only` (Deepgram): the results keep coming, as interims; no
/// final commits the audio until it is switched off.
#[tokio::test]
async fn interims_only_sends_every_result_as_an_interim_until_disabled() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(10)).await;
    let mut ws = connect_ok(&srv.ws_url(&format!("{DG}&engine=counter"))).await;
    srv.wait_live(1).await;
    let v = srv.control("interims-only", r#"{"enabled":true}"#).await;
    assert_eq!(v["scope"], "current");
    send_bin(&mut ws, &encode_bytes(0, 40_000)).await;
    let mut interims = 0;
    while interims < 8 {
        let v = next_json(&mut ws).await;
        assert_eq!(v["type"], "Results");
        assert_eq!(v["is_final"], false, "a final while interims-only: {v}");
        interims += 1;
    }
    srv.control("interims-only", r#"{"enabled":false}"#).await;
    send_bin(&mut ws, &encode_bytes(40_000, 56_000)).await;
    let fin = loop {
        let v = next_json(&mut ws).await;
        if v["is_final"] == true {
            break v;
        }
    };
    let text = fin["channel"]["alternatives"][0]["transcript"]
        .as_str()
        .unwrap();
    assert!(text.starts_with("pos "), "{text}");
    let s = &srv.sessions().await[0];
    assert_eq!(s["faults"][0], "interims-only");
    let (_, f) = srv.json("GET", "/control/faults", None).await;
    assert_eq!(f["interims_only"], false);
}

/// `next` sessions get interims only; the others get their finals.
#[tokio::test]
async fn interims_only_next_hits_only_the_next_session() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(10)).await;
    srv.control("interims-only", r#"{"enabled":true,"count":1}"#)
        .await;
    let url = srv.ws_url(&format!("{DG}&engine=counter"));
    for want_final in [false, true] {
        let mut ws = connect_ok(&url).await;
        send_bin(&mut ws, &encode_bytes(0, 16_000)).await;
        send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
        let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(close.map(|c| c.0), Some(1000));
        let finals = msgs.iter().filter(|m| m["is_final"] == true).count();
        assert_eq!(finals > 0, want_final, "{msgs:?}");
    }
}

/// `/control/sessions/:id/frames`: when each stretch of the recording
/// arrived, frame by frame, in the order of the audio.
#[tokio::test]
async fn frames_say_when_each_part_of_the_recording_arrived() {
    let srv = start_with(|c| c.timeouts.idle = Duration::from_secs(10)).await;
    let mut ws = connect_ok(&srv.ws_url(DG)).await;
    send_bin(&mut ws, &encode_bytes(0, 1600)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    send_bin(&mut ws, &encode_bytes(1600, 2400)).await;
    let s = srv.wait_session(|s| s["bytes_received"] == 4800).await;
    let (status, v) = srv
        .json(
            "GET",
            &format!("/control/sessions/{}/frames", s["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 2, "{v}");
    assert_eq!(frames[0][1], 3200);
    assert_eq!(frames[1][1], 1600);
    let (a, b) = (
        frames[0][0].as_u64().unwrap(),
        frames[1][0].as_u64().unwrap(),
    );
    assert!(b >= a + 100, "arrivals {a} then {b}");
    assert_eq!(s["first_audio_ms"].as_u64(), Some(a));
    assert_eq!(s["last_audio_ms"].as_u64(), Some(b));
    let (status, _) = srv.json("GET", "/control/sessions/s999/frames", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_control_input_is_a_400_naming_the_field() {
    let srv = start().await;
    let cases = [
        ("delay-handshake", r#"{"ms":-5}"#, "ms"),
        ("delay-handshake", r#"{"ms":"soon"}"#, "ms"),
        (
            "delay-handshake",
            r#"{"ms":100,"scope":"current"}"#,
            "scope",
        ),
        ("reject", r#"{"status":99}"#, "status"),
        ("reject", r#"{"status":600}"#, "status"),
        ("reject", r#"{}"#, "status"),
        ("close", r#"{"code":1005}"#, "code"),
        ("close", r#"{"code":1006}"#, "code"),
        ("close", r#"{"code":1015}"#, "code"),
        ("close", r#"{"code":999}"#, "code"),
        ("close", r#"{"code":5000}"#, "code"),
        ("close", r#"{"code":4000,"scope":"later"}"#, "scope"),
        ("close", r#"{"code":4000,"reason":7}"#, "reason"),
        ("close", r#"{"code":4000,"holdMs":-1}"#, "holdMs"),
        ("blackhole", r#"{"ms":-1}"#, "ms"),
        ("down", r#"{"ms":99999999999}"#, "ms"),
        ("down", r#"{}"#, "ms"),
        ("flap", r#"{"ms":0}"#, "ms"),
        ("flap", r#"{"ms":100,"durationMs":-3}"#, "durationMs"),
        ("stop-acking", r#"{"enabled":"yes"}"#, "enabled"),
        ("malformed", r#"{"kind":"weird"}"#, "kind"),
        ("slow-reads", r#"{"bytesPerSec":-10}"#, "bytesPerSec"),
        ("stuck-reader", r#"{"ms":-1}"#, "ms"),
        ("interims-only", r#"{}"#, "enabled"),
        ("interims-only", r#"{"enabled":1}"#, "enabled"),
        (
            "interims-only",
            r#"{"enabled":false,"scope":"next"}"#,
            "enabled",
        ),
        ("reset", r#"{"count":0}"#, "count"),
        ("close", r#"{"code": 4000"#, "JSON"),
        ("close", r#"[1,2]"#, "object"),
    ];
    for (cmd, body, field) in cases {
        let (status, v) = srv
            .json("POST", &format!("/control/{cmd}"), Some(body))
            .await;
        assert_eq!(status, 400, "{cmd} {body}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(field),
            "{cmd} {body}: message {msg:?} should name {field}"
        );
    }
    let (status, v) = srv.json("POST", "/control/explode", Some("{}")).await;
    assert_eq!(status, 404);
    assert!(v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "flap"));
    // Nothing was applied by the bad requests, and the server still works.
    let (_, f) = srv.json("GET", "/control/faults", None).await;
    assert_eq!(f["pending"], serde_json::json!([]));
    connect_ok(&srv.ws_url(DG)).await;
}
