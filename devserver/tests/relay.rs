//! The relay in front of a devserver: close codes survive both ways and no
//! side is ever reset without a close frame (root cause 5 in DESIGN.md).

mod common;

use std::time::Duration;

use common::*;
use devserver::relay::Relay;

const DG: &str = "/v1/listen?encoding=linear16&sample_rate=16000";

async fn relay_to(upstream: &str, auth: Option<&str>) -> std::net::SocketAddr {
    let relay = Relay::bind_with_auth("127.0.0.1:0", upstream, auth.map(str::to_string))
        .await
        .unwrap();
    let addr = relay.local_addr();
    tokio::spawn(relay.run());
    addr
}

#[tokio::test]
async fn upstream_close_code_and_reason_reach_the_client() {
    let srv = start().await;
    let relay = relay_to(&format!("ws://{}", srv.addr), Some("Token relay-key")).await;
    let (mut ws, sel) = connect(
        &format!("ws://{relay}{DG}&language=en"),
        &["token", "client-side"],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(sel.as_deref(), Some("token"));
    // Audio and text pass through.
    send_bin(&mut ws, &tone(0.2, 0.0, 16_000)).await;
    send_text(&mut ws, r#"{"type":"KeepAlive"}"#).await;
    let s = srv.wait_session(|s| s["keepalives"] == 1).await;
    assert_eq!(s["bytes_received"], 6400);
    assert_eq!(s["query"]["language"], "en");
    // The relay's credential replaced the client's.
    assert_eq!(
        s["token_fingerprint"],
        devserver::util::fingerprint("relay-key")
    );
    srv.control("close", r#"{"code":4321,"reason":"custom"}"#)
        .await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5)).await.0,
        Some((4321, "custom".into()))
    );
}

#[tokio::test]
async fn upstream_reset_becomes_1011_for_the_client() {
    let srv = start().await;
    let relay = relay_to(&format!("ws://{}", srv.addr), None).await;
    let mut ws = connect_ok(&format!("ws://{relay}{DG}")).await;
    srv.wait_live(1).await;
    srv.control("reset", "").await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1011, "upstream closed abnormally".into())));
}

#[tokio::test]
async fn client_close_code_reaches_the_upstream() {
    let srv = start().await;
    let relay = relay_to(&format!("ws://{}", srv.addr), None).await;
    let mut ws = connect_ok(&format!("ws://{relay}{DG}")).await;
    srv.wait_live(1).await;
    close(&mut ws, 4000, "client done").await;
    let s = srv.wait_session(|s| !s["ended_at_ms"].is_null()).await;
    assert_eq!(s["close_code_received"], 4000);
    assert_eq!(s["close_reason_received"], "client done");
}

#[tokio::test]
async fn upstream_rejections_become_close_frames_not_resets() {
    let srv = start().await;
    let relay = relay_to(&format!("ws://{}", srv.addr), Some("Token bad-key")).await;
    let mut ws = connect_ok(&format!("ws://{relay}{DG}")).await;
    assert_eq!(
        until_close(&mut ws, Duration::from_secs(5)).await.0,
        Some((1008, "upstream handshake failed: 401".into()))
    );
    srv.control("reject", r#"{"status":502}"#).await;
    let relay = relay_to(&format!("ws://{}", srv.addr), None).await;
    let mut ws = connect_ok(&format!("ws://{relay}{DG}")).await;
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
    let relay = relay_to(&format!("ws://{free}"), None).await;
    let mut ws = connect_ok(&format!("ws://{relay}{DG}")).await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1011);
    assert!(reason.starts_with("upstream unreachable"), "{reason}");
    assert!(reason.len() <= 123);
}

#[tokio::test]
async fn transcripts_flow_back_through_the_relay() {
    let srv = start().await;
    let relay = relay_to(&format!("ws://{}", srv.addr), None).await;
    let mut ws = connect_ok(&format!("ws://{relay}{DG}")).await;
    send_bin(&mut ws, &tone(0.5, 0.5, 16_000)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert_eq!(msgs.last().unwrap()["type"], "Metadata");
    assert!(msgs.iter().any(|m| m["is_final"] == true));
}

#[tokio::test]
async fn bad_upstream_url_is_refused_at_startup() {
    let err = Relay::bind_with_auth("127.0.0.1:0", "http://example.invalid", None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("ws://"));
}
