//! Two channels (issue 14): the microphone and the system audio (the
//! other side of a call) interleaved in one stream. The provider answers
//! per channel; audio is confirmed only once every channel's finals
//! reached it, so a channel the provider lags on is resent, never lost.

mod common;

use common::*;
use resilient_transcriber::core::{Config, Input, Provider, Session};

fn stereo(provider: Provider) -> Config {
    let mut c = config(provider);
    c.channels = 2;
    c
}

/// A stereo stream across a reset: every frame arrives, in order, and each
/// channel gets its own finals.
#[test]
fn a_stereo_stream_survives_a_reset_with_finals_per_channel() {
    for provider in [Provider::Deepgram, Provider::Generic] {
        let mut h = Harness::with_config(stereo(provider));
        h.connect();
        h.mic_start();
        h.at(t(3_450), Fault::Reset);
        h.run_until(t(8_000));
        h.mic_stop();
        h.input(Input::Close {
            flush: true,
            timeout: None,
        })
        .unwrap();
        h.run_until(t(15_000));
        assert!(h.dropped().is_empty(), "{provider:?}: {:?}", h.dropped());
        assert_eq!(
            h.unique_samples_received(),
            h.pushed_samples(),
            "{provider:?}"
        );
        h.assert_server_audio_in_order();
        // 100 ms blocks of 1600 frames: 3200 interleaved samples each.
        for r in h.server_audio() {
            assert_eq!(
                r.samples % 2,
                0,
                "{provider:?}: half a frame at {}",
                r.first
            );
        }
        let finals: Vec<_> = h
            .transcripts()
            .into_iter()
            .filter(|(_, t)| t.is_final)
            .map(|(_, t)| t)
            .collect();
        for ch in 0..2 {
            let mine: Vec<_> = finals.iter().filter(|t| t.channel == ch).collect();
            // The stream's 8 s (in seconds of audio, not of samples).
            let end = mine.iter().map(|t| t.end).fold(0.0, f64::max);
            assert!(
                (end - 7.9).abs() < 0.15,
                "{provider:?} ch{ch}: finals end at {end}"
            );
        }
    }
}

/// The provider finalizes only channel 0: nothing is confirmed, so after
/// a reset the audio of the whole window is resent; with both channels
/// answered, only what followed the last final is.
#[test]
fn audio_is_confirmed_only_when_every_channel_has_its_finals() {
    let resent = |only: Option<u64>| {
        let mut h = Harness::with_config(stereo(Provider::Deepgram));
        h.server.only_channel = only;
        h.connect();
        h.mic_start();
        h.run_until(t(5_450));
        let before = h.unique_samples_received();
        h.fault(Fault::Reset);
        h.run_until(t(12_000));
        assert!(h.dropped().is_empty());
        assert_eq!(h.unique_samples_received(), h.pushed_samples());
        (h.duplicate_samples_received(), before)
    };
    let (both, _) = resent(None);
    let (one, before) = resent(Some(0));
    // Finals come every second: at most about a second (plus the partial
    // chunk in flight) is resent when both channels confirm.
    assert!(both <= 2 * 16_000 * 3 / 2, "resent {both} samples");
    // With one channel unanswered, everything the socket carried.
    assert_eq!(one, before, "resent {one} of the {before} samples sent");
}

/// Omi takes one channel: asking for two is a construction error naming
/// the field and the value.
#[test]
fn omi_rejects_two_channels_and_three_are_rejected_everywhere() {
    let err = Session::new(stereo(Provider::Omi)).unwrap_err().to_string();
    assert!(err.contains("channels") && err.contains('2'), "{err}");
    let mut c = config(Provider::Deepgram);
    c.channels = 3;
    let err = Session::new(c).unwrap_err().to_string();
    assert!(err.contains("channels") && err.contains('3'), "{err}");
}
