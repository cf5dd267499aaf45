//! Random bytes as text and binary frames to every endpoint: the server may
//! close the socket, but must stay up and answer the next request.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn random_frames_never_take_the_server_down() {
    let srv = start().await;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let paths = [
        "/v1/listen?sample_rate=16000",
        "/v4/web/listen?sample_rate=16000&codec=pcm16",
        "/v1/stream?sample_rate=16000",
    ];
    for round in 0..6 {
        for path in paths {
            let mut ws = connect_ok(&srv.ws_url(path)).await;
            if round % 2 == 1 && path.contains("web") {
                send_text(&mut ws, r#"{"type":"auth","token":"t"}"#).await;
            }
            if round % 2 == 1 && path.contains("stream") {
                send_text(&mut ws, r#"{"type":"start","stream":"fz","offset":0}"#).await;
            }
            for _ in 0..20 {
                let len = rng.below(2048) as usize;
                let bytes = rng.bytes(len);
                let msg = if rng.below(2) == 0 {
                    // Random text: valid UTF-8 from random bytes, sometimes JSON-ish.
                    let t: String = bytes.iter().map(|b| char::from(b' ' + b % 95)).collect();
                    if rng.below(3) == 0 {
                        Message::Text(format!("{{\"type\":\"{t}\"}}").into())
                    } else {
                        Message::Text(t.into())
                    }
                } else {
                    Message::Binary(bytes.into())
                };
                if ws.send(msg).await.is_err() {
                    break; // the server closed on us; fine
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                while let Got::Text(_) | Got::Binary(_) =
                    next(&mut ws, Duration::from_millis(200)).await
                {}
            })
            .await;
            // The server still answers.
            let (status, _) = srv.http("GET", "/control/sessions", None).await;
            assert_eq!(status, 200, "round {round} {path}");
        }
    }
    // And still transcribes.
    let mut ws = connect_ok(&srv.ws_url(paths[0])).await;
    send_bin(&mut ws, &tone(0.3, 0.5, 16_000)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close.map(|c| c.0), Some(1000));
    assert_eq!(msgs.last().unwrap()["type"], "Metadata");
    assert_eq!(srv.sessions().await.len(), 19);
}
