//! TLS termination in the relay itself (`--tls-cert`, `--tls-key`, rustls
//! with ring): a wss:// client streams through it; bad files fail at start.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use resilient_relay::{Relay, TlsFiles};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::Connector;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("relay-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_wss_client_streams_through_a_relay_that_terminates_tls() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = temp_dir("ok");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();

    let up = upstream().await;
    let mut c = config(&up.url());
    c.tls = Some(TlsFiles { cert, key });
    let relay = start_relay(c).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("wss://localhost:{}{DG}", relay.addr.port());
    let mut req = url.into_client_request().unwrap();
    let t = token("alice");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("token, {t}")).unwrap(),
    );
    let (mut ws, res) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        true,
        Some(Connector::Rustls(Arc::new(client))),
    )
    .await
    .expect("TLS handshake and upgrade");
    assert_eq!(res.headers()["sec-websocket-protocol"], "token");
    send_bin(&mut ws, &tone(0.5, 0.5)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (closed, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(closed.map(|c| c.0), Some(1000));
    assert!(msgs.iter().any(|m| m["is_final"] == true));
    // Plain HTTP to the TLS port gets no answer, never an upgrade.
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unreadable_or_mismatched_tls_files_fail_at_start_naming_the_flag() {
    let dir = temp_dir("bad");
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key, junk) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("junk.pem"),
    );
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
    std::fs::write(&junk, "not pem").unwrap();
    let up = upstream().await;
    let bind = |cert: &PathBuf, key: &PathBuf| {
        let mut c = config(&up.url());
        c.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
        Relay::bind(c)
    };
    let e = bind(&dir.join("missing.pem"), &key)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("--tls-cert (RELAY_TLS_CERT): cannot read") && e.contains("missing.pem"),
        "{e}"
    );
    let e = bind(&junk, &key).await.err().unwrap().to_string();
    assert!(
        e.starts_with("--tls-cert (RELAY_TLS_CERT): no certificate"),
        "{e}"
    );
    let e = bind(&cert, &junk).await.err().unwrap().to_string();
    assert!(e.starts_with("--tls-key (RELAY_TLS_KEY)"), "{e}");
    let e = bind(&cert, &key).await.err().unwrap().to_string();
    assert!(e.contains("does not fit the certificate"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
