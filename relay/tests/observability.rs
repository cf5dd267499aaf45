//! Health, readiness and metrics: what a load balancer and a dashboard see.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn healthz_is_up_and_readyz_needs_a_resolvable_upstream() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    assert_eq!(
        http(relay.addr, "GET", "/healthz").await,
        (200, b"ok\n".to_vec())
    );
    assert_eq!(
        http(relay.addr, "GET", "/readyz").await,
        (200, b"ready\n".to_vec())
    );
    assert_eq!(http(relay.addr, "GET", "/nope").await.0, 404);

    let dead = start_relay(config("wss://upstream.does-not-exist.invalid")).await;
    assert_eq!(http(dead.addr, "GET", "/healthz").await.0, 200);
    assert_eq!(
        http(dead.addr, "GET", "/readyz").await,
        (503, b"upstream does not resolve\n".to_vec())
    );
}

#[tokio::test]
async fn readyz_is_503_at_capacity() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.limits.max_connections = 1;
    let relay = start_relay(c).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    up.wait_session(|s| s["http_status"] == 101).await;
    assert_eq!(
        http(relay.addr, "GET", "/readyz").await,
        (503, b"at capacity\n".to_vec())
    );
    close(&mut ws, 1000, "").await;
}

/// Checks every line is valid Prometheus text exposition (0.0.4): HELP and
/// TYPE comments, then `name{label="value",...} number` samples whose
/// family was declared. Returns the number of samples.
fn parse_exposition(text: &str) -> usize {
    let mut declared = std::collections::HashSet::new();
    let mut samples = 0;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or("");
            assert!(matches!(kind, "HELP" | "TYPE"), "bad comment: {line}");
            assert!(name_ok(name), "bad name in {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    matches!(t, "counter" | "gauge" | "histogram"),
                    "bad type: {line}"
                );
                declared.insert(name.to_string());
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value: {line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad sample name: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {line}"));
            for pair in inner.split(',') {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(name_ok(k), "bad label name: {line}");
                assert!(
                    v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                    "bad label value: {line}"
                );
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
            .unwrap_or(name);
        assert!(declared.contains(family), "sample before its TYPE: {line}");
        samples += 1;
    }
    samples
}

#[tokio::test]
async fn metrics_parse_and_count_what_happened() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    // One refusal without a token, one with an expired one.
    let _ = connect(&relay.ws(DG), &[], &[]).await.unwrap_err();
    let expired = token_at("alice", -60, None, AUDIENCE, SECRET);
    let _ = connect(&relay.ws(DG), &["token", &expired], &[])
        .await
        .unwrap_err();
    // One session: 3 × 3200 bytes up, transcripts down, the client closes 1000.
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    for _ in 0..3 {
        send_bin(&mut ws, &tone(0.1, 0.5)).await;
    }
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let mut down = 0usize;
    let closed = loop {
        match next(&mut ws, Duration::from_secs(5)).await {
            Got::Text(t) => down += t.len(),
            Got::Binary(b) => down += b.len(),
            Got::Close(c) => break c,
            other => panic!("expected results then a close, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|c| c.0), Some(1000));
    assert!(down > 0);
    // Answer the close (polling flushes tungstenite's queued reply).
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        futures_util::StreamExt::next(&mut ws),
    )
    .await;
    // The upstream closed it (after CloseStream): counted on its side.
    let mut m = String::new();
    for _ in 0..50 {
        m = relay.metrics().await;
        if metric(&m, "relay_connections_open") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(parse_exposition(&m) > 20, "{m}");
    assert_eq!(metric(&m, "relay_connections_total"), Some(1.0), "{m}");
    assert_eq!(metric(&m, "relay_connections_open"), Some(0.0));
    assert_eq!(
        metric(&m, r#"relay_auth_failures_total{reason="missing"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, r#"relay_auth_failures_total{reason="expired"}"#),
        Some(1.0)
    );
    let text_up = r#"{"type":"CloseStream"}"#.len() as f64;
    assert_eq!(
        metric(&m, r#"relay_bytes_total{direction="up"}"#),
        Some(9600.0 + text_up)
    );
    assert_eq!(
        metric(&m, r#"relay_bytes_total{direction="down"}"#),
        Some(down as f64)
    );
    assert_eq!(
        metric(&m, r#"relay_closes_total{code="1000",side="upstream"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "relay_upstream_connect_seconds_count"),
        Some(1.0)
    );
    assert!(metric(&m, "relay_upstream_connect_seconds_sum").unwrap() > 0.0);
    assert_eq!(metric(&m, "relay_draining"), Some(0.0));
}

#[tokio::test]
async fn metrics_can_move_to_their_own_listener() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.metrics_listen = Some("127.0.0.1:0".into());
    let relay = start_relay(c).await;
    let maddr = relay.metrics_addr.expect("a metrics listener");
    assert_eq!(http(relay.addr, "GET", "/metrics").await.0, 404);
    let (status, body) = http(maddr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("relay_connections_open 0"));
    // The internal port answers health checks too, and never upgrades.
    assert_eq!(http(maddr, "GET", "/healthz").await.0, 200);
    let r = connect(&format!("ws://{maddr}{DG}"), &["token", &token("a")], &[]).await;
    assert_eq!(refused_status(r), 404);
}
