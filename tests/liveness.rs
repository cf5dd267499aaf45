//! Root cause 3 of the original client: slow stale detection (keepalive
//! every 8 s, watchdog every 30 s, threshold 60 s) lost up to 90 s of audio
//! to a silently dead connection. These scenarios pin the watchdog:
//! wall-clock deadlines checked on every input, keepalives only when idle,
//! send-buffer stalls, sleeps and frozen tabs, and late events from sockets
//! the session already replaced.

mod common;
use common::*;
use resilient_transcriber::core::{Input, Provider, SocketId, State, CLOSE_STALE};

fn stale_reason(h: &Harness) -> Vec<(Instant, String)> {
    h.states()
        .into_iter()
        .filter(|(_, s)| s.state == State::Reconnecting)
        .map(|(at, s)| (at, s.reason.unwrap_or_default()))
        .collect()
}

use resilient_transcriber::core::{DropReason, Instant};

/// A NAT mapping dies while audio flows: no close, no error, nothing ever
/// arrives again. The server answers audio (results, acks) or sends
/// heartbeats, so silence while audio goes unanswered means the connection
/// is dead. It must be detected within `staleAfterMs` (25 s) of the last
/// sign of life, closed, and replaced; for the resumable protocol, what was
/// sent into the void is resent.
#[test]
fn blackholed_connection_detected_within_stale_threshold() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(20_000));
        assert_eq!(h.state(), State::Open);
        let hole = h.now;
        h.fault(Fault::Blackhole);
        let detected = h.run_until_pred(secs(60), "stale detection", |h| h.state() != State::Open);
        let after = detected - hole;
        assert!(
            after <= ms(25_000 + 200),
            "{provider:?}: detected after {after:?}"
        );
        assert!(after >= ms(23_500), "{provider:?}: too eager: {after:?}");
        let (_, reason) = stale_reason(&h).pop().unwrap();
        assert!(reason.contains("stale"), "{provider:?}: {reason}");
        let close = h.closes.last().unwrap();
        assert_eq!((close.0, close.2), (detected, CLOSE_STALE));
        h.run_for(secs(5));
        assert_eq!(h.state(), State::Open, "{provider:?}: replaced");
        h.mic_stop();
        // Let the 4× replay of the ~28 s backlog finish.
        h.run_for(secs(10));
        if provider == Provider::Generic {
            let stored = h.server.stream(h.session.stream_id());
            assert!(
                stored == pcm_bytes(0, h.pushed_samples()).as_slice(),
                "generic: the blackholed audio was resent"
            );
        } else {
            // The 25 s swallowed by the blackhole were never covered by a
            // result (Deepgram) or followed by a frame (Omi): they are
            // resent on the new connection, not lost in silence.
            assert_eq!(
                h.unique_samples_received(),
                h.pushed_samples(),
                "{provider:?}: the blackholed audio was resent"
            );
        }
        assert!(h.dropped().is_empty(), "{provider:?}: {:?}", h.dropped());
    }
}

/// A laptop lid closes for 40 minutes while streaming. Timers do not run
/// in sleep, and the network is gone with it. On wake, the very first
/// event the page sees (here the overdue timer) must reveal the sleep: the
/// connection gets a short proof-of-life window (it may have survived), and
/// when no answer to the audio sent since comes, it is replaced within 3 s
/// of the wake, not 25 s later, with the unconfirmed tail resent.
#[test]
fn laptop_sleep_is_detected_on_first_event_after_wake() {
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_until(t(10_000));
    h.fault(Fault::Blackhole);
    h.freeze_for(secs(40 * 60));
    let wake = t(10_000 + 40 * 60_000);
    let closes_before = h.closes.len();
    h.run_until(wake);
    assert_eq!(
        h.closes.len(),
        closes_before,
        "nothing decided before the wake"
    );
    let reopened = h.run_until_pred(secs(10), "reopened", |h| h.ready_events().len() == 2);
    assert!(
        reopened <= wake + secs(3),
        "reopened {:?} after the wake",
        reopened - wake
    );
    let close = h.closes.last().expect("old socket closed");
    assert_eq!(close.2, CLOSE_STALE);
    assert!(close.0 >= wake && close.0 <= wake + ms(2_100), "{close:?}");
    let (_, reason) = stale_reason(&h).pop().unwrap();
    assert!(reason.contains("suspended"), "{reason}");
    h.run_for(secs(5));
    h.mic_stop();
    h.run_for(secs(3));
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.opens.len(), 2);
    // The second before the blackhole was never confirmed (its results
    // were swallowed), and 40 minutes later it is far past its TTL: it is
    // reported, not resent. Nothing else is missing.
    let missing = (h.pushed_samples() - h.unique_samples_received()) * 2;
    let reported = h.dropped_bytes(DropReason::Ttl);
    assert!(
        reported >= missing,
        "{missing} bytes lost, {reported} reported"
    );
    assert!(reported <= 32_000, "{reported}");
}

/// A backgrounded tab is frozen for 10 minutes. Meanwhile the server closed
/// the idle connection (Deepgram's NET-0001 after 10 s), and its close event
/// waits in the browser's queue. On resume everything arrives at once:
/// the queued close, the overdue timer, the microphone. The session must
/// make exactly one new attempt, not one per missed deadline or per late
/// event. The same holds when the tab freezes during an outage.
#[test]
fn no_reconnect_storm_after_tab_sleep() {
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_until(t(10_000));
    h.freeze_for(secs(600));
    let wake = t(610_000);
    h.run_until(wake + secs(60));
    let after: Vec<_> = h.opens.iter().filter(|o| o.0 >= wake).collect();
    assert_eq!(after.len(), 1, "one attempt after the freeze: {after:?}");
    assert!(after[0].0 - wake <= secs(1));
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.reconnecting().iter().filter(|r| r.0 >= wake).count(), 1);

    // Frozen during an outage whose end falls inside the freeze: on resume
    // one attempt (the overdue one), which succeeds.
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_until(t(5_000));
    h.fault(Fault::Down(secs(120)));
    h.run_until(t(60_000));
    h.freeze_for(secs(600));
    let wake = t(660_000);
    h.run_until(wake + secs(120));
    let after: Vec<_> = h.opens.iter().filter(|o| o.0 >= wake).collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(h.state(), State::Open);
}

/// The socket accepts frames but the network does not drain them:
/// `bufferedAmount` only grows. Audio "sent" into that buffer is as lost as
/// audio sent into a blackhole, so a send buffer that does not drain for
/// `stallAfterMs` (10 s) is a dead connection, whether it is below the
/// high-water mark (audio still handed to the socket) or above it (audio
/// held back in the queue, where it is replayed from).
#[test]
fn send_buffer_stall_is_detected() {
    for held in [4_000u64, 200_000] {
        let mut h = Harness::new(Provider::Deepgram);
        // Deepgram would close after 10 s without data, which would hide
        // the client's own detection: this server waits indefinitely.
        h.server.idle_timeout = None;
        h.connect();
        h.mic_start();
        h.run_until(t(10_050));
        let stall = h.now;
        h.fault(Fault::HoldBuffered(held));
        let detected = h.run_until_pred(secs(40), "stall", |h| h.state() != State::Open);
        let after = detected - stall;
        assert!(after <= ms(10_400), "held {held}: detected after {after:?}");
        assert!(after >= ms(9_900), "held {held}: too eager {after:?}");
        let (_, reason) = stale_reason(&h).pop().unwrap();
        assert!(reason.contains("send buffer"), "{reason}");
        h.fault(Fault::ReleaseBuffered);
        h.run_for(secs(30));
        assert_eq!(h.state(), State::Open);
        if held > 64 * 1024 {
            // Above the high-water mark only the chunk that revealed the
            // stall went into the dead buffer; the rest waited and was replayed.
            let missing = h.pushed_samples() - h.unique_samples_received();
            assert!(missing <= 1_600, "held {held}: {missing} samples lost");
        }
    }
}

/// Keepalives exist for idle connections (Deepgram closes after 10 s
/// without data). While audio flows they are noise and, for Deepgram, cost
/// money; when the microphone stops they must go out every
/// `keepalive.intervalMs` so the connection survives the pause, and the
/// watchdog must not mistake an idle, answered-for connection for a dead one.
#[test]
fn keepalive_sent_when_idle_and_not_while_audio_flows() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(30_000));
        let is_keepalive = |s: &Sent| match s {
            Sent::Text(t) => t.contains("eepAlive") || t.contains("\"keepalive\""),
            Sent::Other(n) => *n <= 2,
            Sent::Audio(..) => false,
        };
        let during: Vec<_> = h.sent.iter().filter(|s| is_keepalive(&s.2)).collect();
        assert!(
            during.is_empty(),
            "{provider:?}: keepalive while streaming: {during:?}"
        );
        h.mic_stop();
        let last_audio = h
            .sent
            .iter()
            .rev()
            .find(|s| matches!(s.2, Sent::Audio(..)))
            .unwrap()
            .0;
        h.run_for(secs(60));
        let kas: Vec<Instant> = h
            .sent
            .iter()
            .filter(|s| is_keepalive(&s.2))
            .map(|s| s.0)
            .collect();
        assert!(
            kas.len() >= 11,
            "{provider:?}: {} keepalives in 60 s idle",
            kas.len()
        );
        assert_eq!(kas[0] - last_audio, secs(5), "{provider:?}");
        for w in kas.windows(2) {
            assert_eq!(w[1] - w[0], secs(5), "{provider:?}");
        }
        assert_eq!(h.state(), State::Open, "{provider:?}");
        assert_eq!(h.opens.len(), 1, "{provider:?}: idle connection survived");
        assert_eq!(h.stats().keepalives_sent as usize, kas.len());
    }
}

/// After a reconnect, the browser may still deliver events from the old
/// socket: a late `open` from an attempt that timed out, a message that was
/// in flight, a close (even with a fatal code), an error, a buffer sample.
/// None of them may touch the new connection.
#[test]
fn stale_socket_events_are_ignored() {
    let mut h = Harness::new(Provider::Deepgram);
    h.server.open_mode = OpenMode::NeverAnswer;
    h.connect();
    h.at(t(9_000), Fault::OpenMode(OpenMode::Accept(ms(100))));
    h.mic_start();
    h.run_until(t(13_000));
    assert_eq!(h.state(), State::Open);
    let old = SocketId(1);
    assert_ne!(h.opens.last().unwrap().1, old);
    h.run_until(t(15_000));
    h.fault(Fault::Reset);
    h.run_until(t(20_000));
    assert_eq!(h.state(), State::Open);
    let (cur, prev) = (h.opens.last().unwrap().1, h.opens[h.opens.len() - 2].1);
    let results = r#"{"type":"Results","channel_index":[0,1],"duration":1,"start":0,"is_final":true,"channel":{"alternatives":[{"transcript":"ghost"}]}}"#;
    let events_before = h.events.len();
    let (sent_before, closes_before, opens_before) = (h.sent.len(), h.closes.len(), h.opens.len());
    for id in [old, prev] {
        let now = h.now;
        for d in [
            Deliver::Opened(id),
            Deliver::Text(id, results.into()),
            Deliver::Binary(id, vec![1, 2, 3]),
            Deliver::Buffered(id, 1 << 30),
            Deliver::Error(id),
            Deliver::Closed(id, 1008, "policy violation".into()),
        ] {
            h.client_at(now, d);
        }
    }
    h.run_for(ms(1));
    let new: Vec<_> = h.events[events_before..].iter().collect();
    assert!(new.is_empty(), "stale events changed something: {new:?}");
    assert_eq!(h.closes.len(), closes_before);
    assert_eq!(h.opens.len(), opens_before);
    assert!(h.sent[sent_before..].iter().all(|s| s.1 == cur));
    assert_eq!(h.stats().buffered_amount, 0);
    h.run_for(secs(20));
    assert_eq!(h.state(), State::Open);
    assert!(h.transcripts().iter().all(|(_, t)| t.text != "ghost"));
    let _ = Input::Timeout;
}

/// Omi's heartbeat task can outlive its reader: `ping`s keep coming while
/// nothing sent is read. `bufferedAmount` cannot tell (the kernel's socket
/// buffers take megabytes first), but a transcribing server answers speech
/// with segments: speech sent for `staleAfterMs` (25 s) without a single
/// transcript means the server no longer hears this socket. Replaced, and
/// the unheard audio resent.
#[test]
fn a_server_that_pings_but_hears_nothing_is_replaced() {
    let mut h = Harness::new(Provider::Omi);
    h.connect();
    h.mic_start();
    h.run_until(t(5_000));
    let stuck = h.now;
    h.fault(Fault::StopReading);
    let detected = h.run_until_pred(secs(60), "stuck reader", |h| h.state() != State::Open);
    let after = detected - stuck;
    assert!(
        after >= ms(24_000) && after <= ms(25_300),
        "detected after {after:?}"
    );
    let (_, reason) = stale_reason(&h).pop().unwrap();
    assert!(reason.contains("no transcript for speech"), "{reason}");
    h.fault(Fault::ResumeReading);
    h.run_for(secs(5));
    assert_eq!(h.state(), State::Open, "replaced");
    h.mic_stop();
    h.run_for(secs(10));
    assert_eq!(
        h.unique_samples_received(),
        h.pushed_samples(),
        "the unheard audio was resent"
    );
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
}

/// The other side of it: silence is not speech, and a server that sends
/// no transcript for two minutes of silence (while its pings arrive) is
/// healthy. The connection is kept.
#[test]
fn silence_without_transcripts_keeps_the_connection() {
    let mut h = Harness::new(Provider::Omi);
    h.opaque_audio = true;
    h.connect();
    h.run_until(t(1_000));
    h.fault(Fault::StopReading);
    let quiet = vec![7i16; 1600];
    for k in 1..=1200u64 {
        h.run_until(t(1_000 + k * 100));
        h.input(Input::Audio(&quiet)).unwrap();
    }
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.opens.len(), 1, "{:?}", stale_reason(&h));
}
