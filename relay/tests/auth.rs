//! Client authentication: the relay spends the operator's provider
//! credential only on clients holding a valid token from the app's backend.
//! Before this, `devserver relay` injected the Deepgram key for anyone who
//! found its URL: an open proxy for a paid API.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Every refusal is the same bare 401: nothing tells an attacker whether
/// the token was missing, expired, forged or for someone else.
async fn assert_refused_401(relay: &TestRelay, protocols: &[&str], query: &str) {
    let r = connect(&relay.ws(&format!("{DG}{query}")), protocols, &[]).await;
    assert_eq!(refused_status(r), 401, "{protocols:?} {query}");
}

#[tokio::test]
async fn unauthenticated_clients_get_401_and_the_upstream_never_sees_them() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    assert_refused_401(&relay, &[], "").await;
    // A subprotocol pair without a usable token, and junk tokens.
    assert_refused_401(&relay, &["token", "not-a-jwt"], "").await;
    assert_refused_401(&relay, &[], "&token=").await;
    assert_refused_401(&relay, &["bearer", "a.b.c"], "").await;
    // The body says nothing beyond the status.
    let (status, head, body) = http_raw(
        relay.addr,
        "GET",
        DG,
        "",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body, b"unauthorized\n");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(
        up.sessions().await.is_empty(),
        "the upstream saw a refused client"
    );
    let m = relay.metrics().await;
    assert_eq!(
        metric(&m, r#"relay_auth_failures_total{reason="missing"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric(&m, r#"relay_auth_failures_total{reason="malformed"}"#),
        Some(3.0)
    );
    assert_eq!(metric(&m, "relay_connections_total"), Some(0.0));
}

#[tokio::test]
async fn expired_forged_future_and_misaddressed_tokens_are_refused_before_the_upstream() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    let expired = token_at("alice", -10, None, AUDIENCE, SECRET);
    let future = token_at("alice", 600, Some(300), AUDIENCE, SECRET);
    let forged = token_at(
        "alice",
        600,
        None,
        AUDIENCE,
        "another-secret-another-secret-another",
    );
    let elsewhere = token_at("alice", 600, None, "some-other-service", SECRET);
    for t in [&expired, &future, &forged, &elsewhere] {
        assert_refused_401(&relay, &["token", t], "").await;
        assert_refused_401(&relay, &[], &format!("&token={t}")).await;
    }
    assert!(
        up.sessions().await.is_empty(),
        "the upstream saw a refused client"
    );
    let m = relay.metrics().await;
    for reason in [
        "expired",
        "not_yet_valid",
        "bad_signature",
        "wrong_audience",
    ] {
        assert_eq!(
            metric(
                &m,
                &format!(r#"relay_auth_failures_total{{reason="{reason}"}}"#)
            ),
            Some(2.0),
            "{reason}: {m}"
        );
    }
}

#[tokio::test]
async fn a_valid_token_streams_end_to_end_by_each_carrier() {
    let up = upstream().await;
    let relay = start_relay(config(&up.url())).await;
    let t = token("alice");
    let bearer = format!("Bearer {t}");
    // (subprotocols, query, headers, selected subprotocol)
    type Case<'a> = (
        &'a [&'a str],
        String,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
    );
    let cases: [Case; 4] = [
        (&["token", &t], String::new(), &[], Some("token")),
        (&["bearer", &t], String::new(), &[], Some("bearer")),
        (&[], format!("&token={t}"), &[], None),
        (&[], String::new(), &[("authorization", &bearer)], None),
    ];
    for (i, (protocols, query, headers, want_sel)) in cases.iter().enumerate() {
        let (mut ws, sel) = connect(&relay.ws(&format!("{DG}{query}")), protocols, headers)
            .await
            .unwrap_or_else(|e| panic!("case {i}: {e:?}"));
        assert_eq!(sel.as_deref(), *want_sel, "case {i}");
        send_bin(&mut ws, &tone(0.5, 0.5)).await;
        send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
        let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(close.map(|c| c.0), Some(1000), "case {i}");
        assert!(
            msgs.iter().any(|m| m["is_final"] == true),
            "case {i}: {msgs:?}"
        );
    }
    let sessions = up.sessions().await;
    assert_eq!(sessions.len(), 4);
    for s in &sessions {
        assert_eq!(s["http_status"], 101);
        assert_eq!(s["bytes_received"], 16_000);
        assert_eq!(
            s["token_fingerprint"],
            devserver::util::fingerprint(PROVIDER_KEY)
        );
    }
}

/// What an upstream receives, recorded by a bare tungstenite server.
#[derive(Default, Debug, Clone)]
struct Seen {
    uri: String,
    protocol: Option<String>,
    authorization: Option<String>,
}

async fn recording_upstream() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
                let cb = |req: &Request, res: Response| {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    log.lock().unwrap().push(Seen {
                        uri: req.uri().to_string(),
                        protocol: h("sec-websocket-protocol"),
                        authorization: h("authorization"),
                    });
                    Ok(res)
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await {
                    use futures_util::StreamExt;
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    (format!("ws://{addr}"), seen)
}

#[tokio::test]
async fn the_token_never_reaches_the_upstream_and_the_provider_credential_does() {
    let (url, seen) = recording_upstream().await;
    let relay = start_relay(config(&url)).await;
    let t = token("alice");
    let query = format!("/v1/listen?model=nova&token={t}&language=en");
    for protocols in [
        &["token", t.as_str()][..],
        &["bearer", t.as_str(), "v1.audio"][..],
    ] {
        let (mut ws, _) = connect(&relay.ws(&query), protocols, &[]).await.unwrap();
        send_bin(&mut ws, &[0, 0]).await;
        close(&mut ws, 1000, "").await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.uri, "/v1/listen?model=nova&language=en");
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Token {PROVIDER_KEY}"))
        );
        assert!(!format!("{s:?}").contains(&t), "token forwarded: {s:?}");
    }
    assert_eq!(seen[0].protocol, None);
    assert_eq!(seen[1].protocol.as_deref(), Some("v1.audio"));
}
