//! Limits: each fires with its documented close code and reason, and the
//! origin allowlist refuses other sites' pages before the upstream.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn a_page_from_another_origin_is_refused_with_403_before_the_upstream() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.allow_origins = vec!["https://app.example.com".into()];
    let relay = start_relay(c).await;
    let t = token("alice");
    let r = connect(
        &relay.ws(DG),
        &["token", &t],
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(refused_status(r), 403);
    // Not even a prefix or another port matches.
    let r = connect(
        &relay.ws(DG),
        &["token", &t],
        &[("origin", "https://app.example.com:8443")],
    )
    .await;
    assert_eq!(refused_status(r), 403);
    assert!(up.sessions().await.is_empty());
    // The allowed origin, and a client that sends none (not a browser).
    let (mut a, _) = connect(
        &relay.ws(DG),
        &["token", &t],
        &[("origin", "https://app.example.com")],
    )
    .await
    .expect("allowed origin");
    let (mut b, _) = connect(&relay.ws(DG), &["token", &t], &[])
        .await
        .expect("no origin");
    close(&mut a, 1000, "").await;
    close(&mut b, 1000, "").await;
    let m = relay.metrics().await;
    assert_eq!(
        metric(&m, r#"relay_rejected_total{reason="origin"}"#),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_connection_limit_closes_1013_and_frees_the_slot_when_a_session_ends() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.limits.max_connections = 1;
    c.limits.max_connections_per_subject = 1;
    let relay = start_relay(c).await;
    let mut first = connect_as(&relay.ws(DG), "alice").await;
    let mut second = connect_as(&relay.ws(DG), "bob").await;
    let (closed, _) = until_close(&mut second, Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1013, "relay at capacity".into())));
    close(&mut first, 1000, "").await;
    // The slot is free again once the session has ended (its permit is
    // dropped with it).
    for _ in 0..100 {
        if metric(&relay.metrics().await, "relay_connections_open") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = connect_as(&relay.ws(DG), "bob").await;
    send_text(&mut third, r#"{"type":"KeepAlive"}"#).await;
    up.wait_session(|s| s["keepalives"] == 1).await;
    close(&mut third, 1000, "").await;
    // Only the two admitted sessions reached the upstream.
    let opened = up
        .sessions()
        .await
        .iter()
        .filter(|s| s["http_status"] == 101)
        .count();
    assert_eq!(opened, 2);
    let m = relay.metrics().await;
    assert!(
        metric(&m, r#"relay_rejected_total{reason="capacity"}"#) >= Some(1.0),
        "{m}"
    );
    assert!(
        metric(&m, r#"relay_closes_total{code="1013",side="relay"}"#) >= Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn the_per_subject_limit_closes_1013_for_that_subject_only() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.limits.max_connections_per_subject = 2;
    let relay = start_relay(c).await;
    let mut a1 = connect_as(&relay.ws(DG), "alice").await;
    let mut a2 = connect_as(&relay.ws(DG), "alice").await;
    let mut a3 = connect_as(&relay.ws(DG), "alice").await;
    let (closed, _) = until_close(&mut a3, Duration::from_secs(5)).await;
    assert_eq!(
        closed,
        Some((1013, "too many connections for this subject".into()))
    );
    let mut b1 = connect_as(&relay.ws(DG), "bob").await;
    assert!(matches!(
        next(&mut b1, Duration::from_millis(300)).await,
        Got::Timeout
    ));
    for ws in [&mut a1, &mut a2, &mut b1] {
        close(ws, 1000, "").await;
    }
    let m = relay.metrics().await;
    assert_eq!(
        metric(&m, r#"relay_rejected_total{reason="subject_capacity"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_session_past_max_session_closes_1013_and_the_upstream_is_told() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.limits.max_session = Duration::from_secs(1);
    let relay = start_relay(c).await;
    let t0 = Instant::now();
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    // Keep it busy: the limit is on duration, not idleness.
    let closed = loop {
        send_bin(&mut ws, &tone(0.1, 0.0)).await;
        match next(&mut ws, Duration::from_millis(100)).await {
            Got::Close(c) => break c,
            Got::Timeout | Got::Text(_) | Got::Binary(_) => {}
            Got::Error(e) => panic!("no close frame: {e}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the session outlived its limit"
        );
    };
    assert_eq!(closed, Some((1013, "session time limit".into())));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    let s = up.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["close_code_received"], 1001);
    assert_eq!(s["close_reason_received"], "session time limit");
}

#[tokio::test]
async fn a_silent_client_is_closed_1013_after_the_idle_timeout() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.limits.idle_timeout = Duration::from_secs(1);
    let relay = start_relay(c).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    // Frames reset the clock...
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    }
    assert!(matches!(
        next(&mut ws, Duration::from_millis(100)).await,
        Got::Timeout
    ));
    // ...silence does not.
    let t0 = Instant::now();
    let (closed, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1013, "idle timeout".into())));
    assert!(t0.elapsed() < Duration::from_secs(3));
    let s = up.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["close_code_received"], 1001);
}

#[tokio::test]
async fn a_message_over_max_message_bytes_closes_1009_and_is_not_forwarded() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.limits.max_message_bytes = 4096;
    let relay = start_relay(c).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    send_bin(&mut ws, &vec![0u8; 4096]).await;
    send_bin(&mut ws, &vec![0u8; 4098]).await;
    let (closed, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1009, "message too big".into())));
    let s = up.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["bytes_received"], 4096);
}
