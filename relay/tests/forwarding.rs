//! Close codes survive the relay both ways and no side is ever reset
//! without a close frame (root cause 5 in DESIGN.md). Ported from the
//! devserver's relay tests, now with client tokens.

mod common;

use std::time::Duration;

use common::*;
use resilient_relay::{ClientAuth, Config, Relay};

#[tokio::test]
async fn upstream_close_code_and_reason_reach_the_client() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    let t = token("alice");
    let (mut ws, sel) = connect(&relay.ws(&format!("{DG}&language=en")), &["token", &t], &[])
        .await
        .unwrap();
    assert_eq!(sel.as_deref(), Some("token"));
    // Audio and text pass through.
    send_bin(&mut ws, &tone(0.2, 0.0)).await;
    send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    let s = up.wait_session(|s| s["keepalives"] == 1).await;
    assert_eq!(s["bytes_received"], 6400);
    assert_eq!(s["query"]["language"], "en");
    // The relay's credential replaced the client's token.
    assert_eq!(
        s["token_fingerprint"],
        devserver::util::fingerprint(PROVIDER_KEY)
    );
    up.control("close", r#"{"code":4321,"reason":"custom"}"#)
        .await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5)).await.0,
        Some((4321, "custom".into()))
    );
}

#[tokio::test]
async fn upstream_reset_becomes_1011_for_the_client() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    up.wait_session(|s| s["http_status"] == 101).await;
    up.control("reset", "").await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1011, "upstream closed abnormally".into())));
}

#[tokio::test]
async fn client_close_code_reaches_the_upstream() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    up.wait_session(|s| s["http_status"] == 101).await;
    close(&mut ws, 4000, "client done").await;
    let s = up.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["close_code_received"], 4000);
    assert_eq!(s["close_reason_received"], "client done");
}

#[tokio::test]
async fn upstream_rejections_become_close_frames_not_resets() {
    let up = upstream().await;
    // A wrong provider credential: the devserver answers 401.
    let mut c = config(&up.url());
    c.upstream_auth = Some(resilient_relay::Secret::new("Token bad-key"));
    let relay = start_relay(c).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5)).await.0,
        Some((1008, "upstream handshake failed: 401".into()))
    );
    up.control("reject", r#"{"status":502}"#).await;
    let relay = start_relay(config(&up.url())).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5)).await.0,
        Some((1011, "upstream handshake failed: 502".into()))
    );
}

#[tokio::test]
async fn unreachable_upstream_is_a_1011_close() {
    // A port that was just free: nothing listens there.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let relay = start_relay(config(&format!("ws://{free}"))).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1011);
    assert!(reason.starts_with("upstream unreachable"), "{reason}");
    // Never the upstream URL (its query is the client's).
    assert!(
        !reason.contains("127.0.0.1") && !reason.contains("sample_rate"),
        "{reason}"
    );
}

#[tokio::test]
async fn transcripts_flow_back_through_the_relay() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    let mut ws = connect_as(&relay.ws(DG), "alice").await;
    send_bin(&mut ws, &tone(0.5, 0.5)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert_eq!(msgs.last().unwrap()["type"], "Metadata");
    assert!(msgs.iter().any(|m| m["is_final"] == true));
}

#[tokio::test]
async fn bad_upstream_url_is_refused_at_startup() {
    let err = Relay::bind(Config::new(
        "127.0.0.1:0",
        "http://example.invalid",
        ClientAuth::InsecureNoAuth,
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "--upstream (RELAY_UPSTREAM): must start with ws:// or wss://, got \"http://example.invalid\""
    );
}

/// With neither client tokens nor a credential of its own, the relay is a
/// plain close-code-preserving proxy: the client's own `token, K` reaches
/// the upstream (what `devserver relay --insecure-no-auth` is for).
#[tokio::test]
async fn insecure_relay_without_a_credential_passes_the_client_s_through() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.auth = ClientAuth::InsecureNoAuth;
    c.upstream_auth = None;
    let relay = start_relay(c).await;
    let (mut ws, sel) = connect(&relay.ws(DG), &["token", PROVIDER_KEY], &[])
        .await
        .unwrap();
    assert_eq!(sel.as_deref(), Some("token"));
    let s = up.wait_session(|s| s["http_status"] == 101).await;
    assert_eq!(
        s["token_fingerprint"],
        devserver::util::fingerprint(PROVIDER_KEY)
    );
    close(&mut ws, 1000, "").await;
}
