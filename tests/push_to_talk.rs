//! Push-to-talk (issue 14): hold a key, speak, release, get the text. The
//! utterance's audio (with its pre-roll) reaches the stream, is finalized
//! with the provider's flush once it is all on the wire, and resolves when
//! the finals cover it, or at its deadline with what arrived; an utterance
//! spoken while the connection is down completes after the reconnect.

mod common;

use std::time::Duration;

use common::*;
use resilient_transcriber::core::{
    Config, Event, Input, Instant, Provider, PushToTalk, State, UtteranceResult,
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

/// Omi has no flush: its last segment ends only once audio after the
/// speech arrives, so the audio after an ended utterance keeps flowing (a
/// post-roll) until its segments cover it; then gating resumes.
#[test]
fn omi_utterances_resolve_by_their_segments_with_a_post_roll() {
    let mut h = Harness::with_config(ptt(Provider::Omi));
    h.connect();
    h.mic_start();
    let from = begin_at(&mut h, t(1_000), Some(ms(0)));
    let to = end_at(&mut h, t(2_800));
    h.run_until(t(9_000));
    let u = &results(&h)[0];
    // 1.8 s: the fake's per-second segments cover it once the post-roll
    // completes the second second.
    assert!(!u.timed_out, "{u:?}");
    assert_eq!(to - from, 1_800 * 16);
    assert_eq!(covered(u), vec![(from, from + 32_000)]);
    // The post-roll stopped once it was covered: far less than the 6 s
    // since the key went up reached the server.
    let sent = h.unique_samples_received();
    assert!(sent <= 2_400 * 16, "{sent} samples sent");
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

fn on_demand(provider: Provider) -> Config {
    let mut c = ptt(provider);
    c.push_to_talk = Some(PushToTalk {
        on_demand: true,
        ..PushToTalk::default()
    });
    c
}

/// `pushToTalk.connection: "onDemand"`: the first connection proves the
/// credentials, then closes cleanly (1000) once nothing is pending; each
/// utterance opens one with its audio (pre-roll included) queued until
/// it is ready, resolves with its words, and the session stands by again.
/// No keepalive is sent while standing by, no reconnect is scheduled.
#[test]
fn on_demand_opens_a_connection_per_utterance_and_loses_nothing() {
    for provider in [Provider::Deepgram, Provider::Generic] {
        let mut h = Harness::with_config(on_demand(provider));
        h.connect();
        h.mic_start();
        h.run_until(t(1_000));
        assert_eq!(h.ready_events().len(), 1, "{provider:?}");
        assert_eq!(h.state(), State::Standby, "{provider:?}");
        assert_eq!(h.closes.len(), 1, "{provider:?}: {:?}", h.closes);
        assert_eq!(h.closes[0].2, 1000, "{provider:?}");
        let mut spoken = Vec::new();
        for i in 0..3u64 {
            let begin = 2_000 + i * 6_000;
            let from = begin_at(&mut h, t(begin), None);
            assert_ne!(h.state(), State::Standby, "{provider:?}");
            spoken.push((from - 300 * 16, end_at(&mut h, t(begin + 1_500))));
            h.run_until(t(begin + 5_500));
            assert_eq!(h.state(), State::Standby, "{provider:?} after #{i}");
        }
        let r = results(&h);
        assert_eq!(r.len(), 3, "{provider:?}");
        for (u, want) in r.iter().zip(&spoken) {
            assert!(!u.timed_out, "{provider:?}: {u:?}");
            assert_eq!(covered(u), vec![*want], "{provider:?} #{}", u.id);
        }
        assert_eq!(h.ready_events().len(), 4, "{provider:?}");
        assert!(h.dropped().is_empty(), "{provider:?}: {:?}", h.dropped());
        assert!(h.reconnecting().is_empty(), "{provider:?}");
        assert_eq!(h.stats().keepalives_sent, 0, "{provider:?}");
        // A close while standing by ends at once, with nothing to report.
        h.input(Input::Close {
            flush: true,
            timeout: None,
        })
        .unwrap();
        assert_eq!(h.state(), State::Closed, "{provider:?}");
    }
}

/// On demand, an utterance whose connection cannot be opened waits in the
/// queue through the backoff and completes once the server is back.
#[test]
fn on_demand_retries_until_the_utterance_is_delivered() {
    let mut h = Harness::with_config(on_demand(Provider::Deepgram));
    h.connect();
    h.mic_start();
    h.run_until(t(1_000));
    h.at(t(1_500), Fault::Down(secs(6)));
    let from = begin_at(&mut h, t(2_000), Some(ms(0)));
    let to = end_at(&mut h, t(3_000));
    h.run_until(t(20_000));
    let r = results(&h);
    assert_eq!(r.len(), 1);
    assert!(!r[0].timed_out, "{:?}", r[0]);
    assert_eq!(covered(&r[0]), vec![(from, to)]);
    assert!(!h.reconnecting().is_empty());
    assert_eq!(h.state(), State::Standby);
}

/// Omi has no flush: on demand would close before its last words are
/// confirmed, so it is refused at construction, naming field and value.
#[test]
fn on_demand_is_refused_for_a_provider_without_a_flush() {
    let err = resilient_transcriber::core::Session::new(on_demand(Provider::Omi))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pushToTalk.connection") && err.contains("onDemand"),
        "{err}"
    );
}
