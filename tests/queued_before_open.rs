//! Root cause 1 of the original client: readiness by timer. Audio sent
//! before the socket was really open (or during a slow handshake) was
//! silently dropped.

mod common;
use common::*;
use resilient_transcriber::core::{Provider, State};

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
