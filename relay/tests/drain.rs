//! The drain (what SIGTERM does): stop accepting, close every client with
//! 1012 so the client library reconnects elsewhere and replays, wait for
//! the closing handshakes, bounded. Before, every deploy cut every stream.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_drain_closes_every_client_1012_tells_the_upstream_and_stops_accepting() {
    let up = upstream().await;
    let mut relay = start_relay(config(&up.url())).await;
    let mut a = connect_as(&relay.ws(DG), "alice").await;
    let mut b = connect_as(&relay.ws(DG), "bob").await;
    send_bin(&mut a, &tone(0.1, 0.0)).await;
    for _ in 0..100 {
        if up
            .sessions()
            .await
            .iter()
            .filter(|s| s["http_status"] == 101)
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = relay.addr;
    let t0 = Instant::now();
    relay.drain.drain();
    let (ca, _) = until_close(&mut a, Duration::from_secs(5)).await;
    let (cb, _) = until_close(&mut b, Duration::from_secs(5)).await;
    assert_eq!(ca, Some((1012, "service restart".into())));
    assert_eq!(cb, Some((1012, "service restart".into())));
    let summary = relay.drain_and_join().await;
    assert_eq!((summary.drained, summary.abandoned), (2, 0));
    // The clients answered at once, so the drain did not wait for its bound.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // No longer accepting: a load balancer moves new clients elsewhere.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    for s in up.sessions().await {
        assert_eq!(s["close_code_received"], 1001, "{s}");
        assert_eq!(s["close_reason_received"], "relay restarting");
    }
}

/// A client that never answers the 1012 cannot hold the process: the
/// drain gives up after `--drain-timeout`.
#[tokio::test]
async fn a_client_that_never_answers_cannot_stall_the_drain_past_its_bound() {
    let up = upstream().await;
    let mut c = config(&up.url());
    c.timeouts.drain = Duration::from_millis(500);
    c.timeouts.close = Duration::from_secs(5);
    let mut relay = start_relay(c).await;
    // A hand-made handshake, then silence: nothing reads the close frame.
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let t = token("mallory");
    let req = format!(
        "GET {DG} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: token, {t}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = tcp.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    up.wait_session(|s| s["http_status"] == 101).await;
    let t0 = Instant::now();
    let summary = relay.drain_and_join().await;
    let took = t0.elapsed();
    assert_eq!((summary.drained, summary.abandoned), (1, 1));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{took:?}"
    );
    drop(tcp);
}

#[tokio::test]
async fn a_handshake_arriving_during_the_drain_is_not_admitted() {
    let up = upstream().await;
    let mut relay = start_relay(config(&up.url())).await;
    // Open the TCP connection before the drain, send the upgrade after it.
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.drain.drain();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = token("late");
    let req = format!(
        "GET {DG} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: token, {t}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut head)).await;
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let _ = relay.drain_and_join().await;
    assert!(up.sessions().await.is_empty());
}
