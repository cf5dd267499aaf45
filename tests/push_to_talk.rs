//! Push-to-talk (issue 14): hold a key, speak, release, get the text. The
//! utterance's audio (with its pre-roll) reaches the stream, is finalized
//! with the provider's flush once it is all on the wire, and resolves when
//! the finals cover it, or at its deadline with what arrived; an utterance
//! spoken while the connection is down completes after the reconnect.

mod common;

use std::time::Duration;

use common::*;
use resilient_transcriber::core::{
    Config, Event, Input, Instant, Provider, PushToTalk, UtteranceResult,
};

fn ptt(provider: Provider) -> Config {
    let mut c = config(provider);
    c.push_to_talk = Some(PushToTalk::default());
    c
}

fn results(h: &Harness) -> Vec<UtteranceResult> {
    h.events_where(|e| match e {
        Event::Utterance(u) => Some(u.clone()),
        _ => None,
    })
    .into_iter()
    .map(|(_, u)| u)
    .collect()
}

/// Runs to `at` and begins an utterance there: the mic position (the
/// sample value sent, which counts gated audio too) its speech starts at.
fn begin_at(h: &mut Harness, at: Instant, pre_roll: Option<Duration>) -> u64 {
    h.run_until(at);
    h.input(Input::BeginUtterance { pre_roll }).expect("begin");
    h.pushed_samples()
}

/// Runs to `at` and ends the utterance there: the mic position it ends at.
fn end_at(h: &mut Harness, at: Instant) -> u64 {
    h.run_until(at);
    h.input(Input::EndUtterance).expect("end");
    h.pushed_samples()
}

/// The mic positions an utterance's finals name, merged.
fn covered(u: &UtteranceResult) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = u
        .finals
        .iter()
        .flat_map(|t| named_ranges(&t.text))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Audio outside utterances stays out of the stream, but the last 300 ms
/// before the key went down go in first, so the first syllable is not
/// cut; the utterance resolves with finals covering exactly its audio.
#[test]
fn an_utterance_resolves_with_the_finals_of_its_audio_and_its_pre_roll() {
    for provider in [Provider::Deepgram, Provider::Generic] {
        let mut h = Harness::with_config(ptt(provider));
        h.connect();
        h.mic_start();
        let from = begin_at(&mut h, t(2_000), None);
        let to = end_at(&mut h, t(4_000));
        h.run_until(t(8_000));
        let r = results(&h);
        assert_eq!(r.len(), 1, "{provider:?}: {r:?}");
        let u = &r[0];
        assert!(!u.timed_out, "{provider:?}: {u:?}");
        // 2 s of speech plus 300 ms of pre-roll (the mic pushes 100 ms blocks).
        assert!(
            (u.audio_ms - 2_300.0).abs() < 1.0,
            "{provider:?}: {}",
            u.audio_ms
        );
        assert_eq!(
            u.start_ms, 0.0,
            "{provider:?}: the stream starts with the utterance"
        );
        assert!(u.latency_ms < 1_000.0, "{provider:?}: {}", u.latency_ms);
        // The server got the utterance's samples and nothing else, and
        // the finals name exactly them.
        let roll = 300 * 16;
        assert_eq!(to - from, 2_000 * 16, "{provider:?}");
        assert_eq!(
            h.unique_samples_received(),
            to - from + roll,
            "{provider:?}"
        );
        assert_eq!(covered(u), vec![(from - roll, to)], "{provider:?}: {u:?}");
        assert!(!u.text.is_empty());
        // Every captured sample is in the stream, let go of as gated, or
        // in the pre-roll ring now (at most 300 ms).
        let gated = (h.stats().audio_ms_gated * 16.0).round() as u64;
        let held = h.pushed_samples() - h.unique_samples_received() - gated;
        assert!(held <= roll, "{provider:?}: {held} samples unaccounted for");
    }
}

/// `beginUtterance({preRollMs})` may ask for less pre-roll than configured.
#[test]
fn the_pre_roll_can_be_shortened_per_utterance() {
    let mut h = Harness::with_config(ptt(Provider::Deepgram));
    h.connect();
    h.mic_start();
    let from = begin_at(&mut h, t(2_000), Some(ms(100)));
    let to = end_at(&mut h, t(3_000));
    h.run_until(t(6_000));
    let u = &results(&h)[0];
    assert!((u.audio_ms - 1_100.0).abs() < 1.0, "{}", u.audio_ms);
    assert_eq!(covered(u), vec![(from - 100 * 16, to)], "{u:?}");
}

/// The server never answers the flush: the utterance resolves at its
/// deadline (`pushToTalk.timeoutMs` after its audio was all sent) with the
/// finals that did arrive, `timedOut: true`. It never hangs.
#[test]
fn a_flush_that_is_never_answered_resolves_at_the_deadline_with_what_arrived() {
    let mut h = Harness::with_config(ptt(Provider::Deepgram));
    h.server.answer_flush = false;
    h.connect();
    h.mic_start();
    let from = begin_at(&mut h, t(1_000), Some(ms(0)));
    end_at(&mut h, t(3_500));
    h.run_until(t(10_000));
    let r = results(&h);
    assert_eq!(r.len(), 1);
    let u = &r[0];
    assert!(u.timed_out);
    let at = h
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Utterance(_)))
        .unwrap()
        .0;
    assert!(at >= t(6_500) && at <= t(6_600), "resolved at {at:?}");
    // Two whole seconds had their finals; the last half second did not.
    assert_eq!(covered(u), vec![(from, from + 32_000)], "{u:?}");
}

/// The key goes down and up while the server is unreachable: the
/// utterance's audio waits in the queue, goes out after the reconnect, is
/// finalized there and resolves with all its words (its deadline counts
/// from when its audio was on the wire, not from the key going up).
#[test]
fn an_utterance_spoken_while_disconnected_completes_after_the_reconnect() {
    for provider in [Provider::Deepgram, Provider::Generic] {
        let mut h = Harness::with_config(ptt(provider));
        h.connect();
        h.mic_start();
        h.at(t(1_000), Fault::Down(secs(8)));
        let from = begin_at(&mut h, t(2_000), Some(ms(0)));
        let to = end_at(&mut h, t(4_000));
        h.run_until(t(20_000));
        let r = results(&h);
        assert_eq!(r.len(), 1, "{provider:?}");
        let u = &r[0];
        assert!(!u.timed_out, "{provider:?}: {u:?}");
        assert_eq!(covered(u), vec![(from, to)], "{provider:?}");
        assert!(h.dropped().is_empty(), "{provider:?}");
        assert!(h.ready_events().len() >= 2, "{provider:?}");
    }
}

/// Five utterances, the connection reset in the middle of the third: every
/// one resolves with the words of its own audio, none lost, none twice.
#[test]
fn five_utterances_with_a_reset_in_the_third_all_resolve_with_their_words() {
    for provider in [Provider::Deepgram, Provider::Generic] {
        let mut h = Harness::with_config(ptt(provider));
        h.connect();
        h.mic_start();
        h.at(t(7_750), Fault::Reset);
        let mut spoken = Vec::new();
        for i in 0..5u64 {
            let begin = 1_000 + i * 3_000;
            let from = begin_at(&mut h, t(begin), Some(ms(0)));
            spoken.push((from, end_at(&mut h, t(begin + 1_500))));
        }
        h.run_until(t(25_000));
        let r = results(&h);
        assert_eq!(r.len(), 5, "{provider:?}: {r:?}");
        for (i, u) in r.iter().enumerate() {
            assert_eq!(u.id, i as u64 + 1);
            assert!(!u.timed_out, "{provider:?} #{}: {u:?}", u.id);
            // Each utterance's finals name its own 1.5 s and no other's.
            assert_eq!(covered(u), vec![spoken[i]], "{provider:?} #{}", u.id);
            // In the stream, each starts where the last ended.
            assert!((u.start_ms - i as f64 * 1_500.0).abs() < 1.0, "{u:?}");
        }
        assert!(h.dropped().is_empty(), "{provider:?}: {:?}", h.dropped());
    }
}

/// Omi has no flush: an utterance resolves when its segments cover it,
/// else at its deadline.
#[test]
fn omi_utterances_resolve_by_their_segments_or_the_deadline() {
    let mut h = Harness::with_config(ptt(Provider::Omi));
    h.connect();
    h.mic_start();
    let from = begin_at(&mut h, t(1_000), Some(ms(0)));
    let to = end_at(&mut h, t(3_000));
    h.run_until(t(9_000));
    let u = &results(&h)[0];
    // Two whole seconds: the fake's per-second segments cover it.
    assert!(!u.timed_out, "{u:?}");
    assert_eq!(covered(u), vec![(from, to)]);
}

/// Misuse is an error that changes nothing; utterances work without
/// push-to-talk too (they then mark a stretch of an always-on stream).
#[test]
fn utterance_misuse_and_utterances_without_push_to_talk() {
    let mut h = Harness::with_config(ptt(Provider::Deepgram));
    h.connect();
    h.run_until(t(500));
    assert!(h.input(Input::EndUtterance).is_err());
    h.input(Input::BeginUtterance { pre_roll: None }).unwrap();
    assert!(h.input(Input::BeginUtterance { pre_roll: None }).is_err());
    assert_eq!(h.session.current_utterance(), Some(1));

    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    let from = begin_at(&mut h, t(2_000), None);
    let to = end_at(&mut h, t(3_000));
    h.run_until(t(6_000));
    let u = &results(&h)[0];
    // No gating: the stream holds everything, and the utterance the finals
    // that overlap its second (the fake's finals are whole seconds of the
    // stream, so the ones on its edges reach outside it).
    let c = covered(u);
    assert_eq!(c.len(), 1, "{u:?}");
    assert!(c[0].0 <= from && c[0].1 >= to, "{c:?} for {from}..{to}");
    for f in &u.finals {
        for (a, b) in named_ranges(&f.text) {
            assert!(a < to && b > from, "{f:?} is outside {from}..{to}");
        }
    }
    assert_eq!(h.stats().audio_ms_gated, 0.0);
}
