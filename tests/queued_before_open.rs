//! Root cause 1 of the original client: readiness by timer. Audio sent
//! before the socket was really open (or during a slow handshake) was
//! silently dropped.

mod common;
use common::*;
use resilient_transcriber::core::{ErrorCode, Provider, State};

/// The microphone starts before `connect` resolves (the usual order in an
/// app: capture on click, connect in parallel). Every sample pushed before
/// the open event must reach the server, first and in order.
#[test]
fn audio_before_open_is_queued_not_dropped() {
    let mut h = Harness::new(Provider::Deepgram);
    h.mic_start();
    h.run_for(ms(700)); // 7 chunks before connect is even called
    assert_eq!(h.state(), State::Idle);
    h.connect();
    h.run_for(secs(5));
    assert_eq!(h.state(), State::Open);
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
    let got = h.server_audio();
    assert_eq!(
        got.first().map(|r| r.first),
        Some(0),
        "the first sample comes first"
    );
    h.assert_server_audio_in_order();
    assert_eq!(h.unique_samples_received(), h.pushed_samples());
}

/// A backend under load takes 8 s to complete the WebSocket handshake. The
/// old client declared itself connected after 500 ms and threw away what
/// it "sent" in the meantime. Here readiness comes from the open event:
/// the 8 s of audio wait in the queue and all of it reaches the server.
#[test]
fn slow_handshake_of_8s_loses_no_audio() {
    let mut h = Harness::new(Provider::Deepgram);
    h.server.open_mode = OpenMode::Accept(secs(8));
    h.connect();
    h.mic_start();
    h.run_for(secs(7));
    assert_eq!(h.state(), State::Connecting);
    assert!(
        h.server_audio().is_empty(),
        "nothing can be sent before open"
    );
    h.run_for(secs(13));
    let ready = h.ready_events();
    assert_eq!(ready.len(), 1, "one connection, no timeout: {ready:?}");
    let opened_at = ready[0].0.as_millis();
    assert!(
        (8_000..8_100).contains(&opened_at),
        "ready at {opened_at} ms"
    );
    assert!(h.errors().is_empty(), "{:?}", h.errors());
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
    h.mic_stop();
    h.run_for(secs(5));
    h.assert_server_audio_in_order();
    assert_eq!(h.unique_samples_received(), h.pushed_samples());
    assert!(h.stats().chunks_replayed >= 79, "{:?}", h.stats());
}

/// Omi's browser endpoint authenticates with the first message. The socket
/// being open means nothing until `auth_response` says success: audio sent
/// before it is discarded by the server. So `open` (the state and the
/// event) waits for the response, and audio waits with it.
#[test]
fn omi_ready_only_after_auth_response() {
    let mut h = Harness::new(Provider::Omi);
    h.server.auth_delay = secs(2);
    h.mic_start();
    h.connect();
    h.run_for(ms(500));
    assert_eq!(
        h.state(),
        State::Authenticating,
        "socket open, auth pending"
    );
    let auth = &h.sent[0];
    assert!(
        matches!(&auth.2, Sent::Text(t) if t == r#"{"type":"auth","token":"omi-secret"}"#),
        "the first frame is the auth message: {auth:?}"
    );
    assert!(h.ready_events().is_empty());
    h.run_for(secs(10));
    let ready = h.ready_events();
    assert_eq!(ready.len(), 1);
    assert!(ready[0].0 >= t(2_170), "ready at {:?}", ready[0].0);
    let first_audio = h
        .sent
        .iter()
        .find(|(_, _, s)| matches!(s, Sent::Audio(..)))
        .expect("audio flows");
    assert!(first_audio.0 >= ready[0].0, "audio before auth_response");
    assert!(h.server.violations.is_empty(), "{:?}", h.server.violations);
    h.mic_stop();
    h.run_for(secs(2));
    assert_eq!(h.unique_samples_received(), h.pushed_samples());
    h.assert_server_audio_in_order();
}

/// The other half of the Omi handshake: `auth_response` with
/// `success: false` is final (a wrong token does not become right by
/// retrying), so the session fails at once instead of hammering the server.
#[test]
fn omi_rejected_auth_fails_without_retrying() {
    let mut h = Harness::new(Provider::Omi);
    h.server.reject_auth = true;
    h.mic_start();
    h.connect();
    h.run_for(secs(60));
    assert_eq!(h.state(), State::Failed);
    assert_eq!(h.opens.len(), 1, "no retry after an auth rejection");
    assert!(h
        .errors()
        .iter()
        .any(|(_, c, fatal)| *c == ErrorCode::AuthFailed && *fatal));
    assert!(h.server.violations.is_empty(), "{:?}", h.server.violations);
}
