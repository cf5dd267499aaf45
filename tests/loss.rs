//! Root cause 4 of the original client: silent drops (`sendAudio()` returned
//! quietly when not connected). Here every pushed byte is sent, replayed, or
//! reported in a `dropped` event with the milliseconds lost, and the
//! scenarios check the server's copy of the stream against what was pushed.

mod common;
use common::*;
use resilient_transcriber::core::{DropReason, Event, Input, Instant, Provider, State};

/// Position (in samples) the microphone had reached at `at` (it pushes
/// 100 ms blocks at every multiple of 100 ms, starting at 100 ms).
fn mic_pos(at: Instant) -> u64 {
    at.as_millis() / 100 * 1_600
}

/// After a 15 s outage the backlog is replayed at `replayRate` (4×) real
/// time: never faster (a backend closes connections that send faster than
/// real time for long), not much slower, oldest first, with live audio
/// queued behind it, so the server sees one strictly increasing stream.
#[test]
fn replay_is_in_order_and_paced() {
    let mut cfg = config(Provider::Deepgram);
    cfg.ttl = secs(120); // this scenario is about pacing, not expiry
    let mut h = Harness::with_config(cfg);
    h.connect();
    h.mic_start();
    h.run_until(t(10_050));
    h.fault(Fault::Down(secs(15)));
    h.run_until_pred(secs(60), "reconnected", |h| h.ready_events().len() == 2);
    let ready = h.now;
    let backlog = h
        .events_where(|e| match e {
            Event::Open { backlog_chunks, .. } => Some(*backlog_chunks),
            _ => None,
        })
        .last()
        .unwrap()
        .1;
    assert!(backlog >= 150, "backlog of {backlog} chunks");
    let backlog_ms = f64::from(backlog) * 100.0;
    // Bucket of 1 s, then 4× real time; live audio adds 1× real time.
    let expected = (backlog_ms - 1_000.0) / 3.0;
    h.run_for(ms(expected as u64 * 2 + 5_000));
    let sock = h.opens.last().unwrap().1;
    let sends: Vec<(Instant, u64, u64)> = h
        .sent
        .iter()
        .filter(|s| s.1 == sock)
        .filter_map(|s| match s.2 {
            Sent::Audio(first, n) => Some((s.0, first, n)),
            _ => None,
        })
        .collect();
    let mut cum_ms = 0.0;
    let mut caught_up = None;
    for (at, first, n) in &sends {
        cum_ms += *n as f64 / 16.0;
        let x = (*at - ready).as_millis() as f64;
        assert!(
            cum_ms <= 1_000.0 + 4.0 * x + 100.0,
            "{cum_ms} ms of audio sent {x} ms after ready: faster than 4x"
        );
        if caught_up.is_none() {
            assert!(
                cum_ms >= 4.0 * x - 200.0,
                "{cum_ms} ms of audio sent {x} ms after ready: slower than 4x"
            );
            if first + n == mic_pos(*at) {
                caught_up = Some(x);
            }
        }
    }
    let caught_up = caught_up.expect("the backlog was replayed");
    assert!(
        caught_up >= expected * 0.8 - 200.0 && caught_up <= expected * 1.2 + 500.0,
        "caught up after {caught_up} ms, expected about {expected} ms"
    );
    h.mic_stop();
    h.run_for(secs(2));
    h.assert_server_audio_in_order();
    assert_eq!(h.unique_samples_received(), h.pushed_samples());
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
    assert!(h.stats().chunks_replayed >= u64::from(backlog));
}

/// A 90 s outage with a 30 s TTL: the audio that waited too long is dropped
/// oldest first and reported, and what the `dropped` events say was lost is
/// exactly what the server never received: one contiguous gap.
#[test]
fn chunks_older_than_ttl_are_reported_dropped() {
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_until(t(10_050));
    h.fault(Fault::Down(secs(90)));
    h.run_until_pred(secs(200), "reconnected", |h| h.ready_events().len() == 2);
    let reopened = h.now;
    h.run_for(secs(40));
    h.mic_stop();
    h.run_for(secs(5));
    let ttl_bytes = h.dropped_bytes(DropReason::Ttl);
    assert!(ttl_bytes > 0);
    assert_eq!(
        h.dropped().len(),
        h.dropped()
            .iter()
            .filter(|d| d.1.reason == DropReason::Ttl)
            .count()
    );
    let missing = h.pushed_samples() - h.unique_samples_received();
    assert_eq!(ttl_bytes, missing * 2, "reported loss == actual loss");
    let reported_ms: f64 = h.dropped().iter().map(|d| d.1.audio_ms).sum();
    assert!((reported_ms - missing as f64 / 16.0).abs() < 1e-6);
    assert!((h.stats().audio_ms_dropped - reported_ms).abs() < 1e-6);
    // One gap, starting where the outage began, ending about a TTL before
    // the reconnect.
    let mut got: Vec<(u64, u64)> = h
        .server_audio()
        .iter()
        .map(|r| (r.first, r.samples))
        .collect();
    got.sort_unstable();
    let gaps: Vec<(u64, u64)> = got
        .windows(2)
        .filter(|w| w[0].0 + w[0].1 != w[1].0)
        .map(|w| (w[0].0 + w[0].1, w[1].0))
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let (a, b) = gaps[0];
    assert_eq!(b - a, missing);
    assert_eq!(a, mic_pos(t(10_000)), "the gap starts at the outage");
    let expect_end = mic_pos(t(reopened.as_millis() - 30_000));
    assert!(
        b.abs_diff(expect_end) <= 3_200,
        "gap ends at {b}, expected about {expect_end}"
    );
    // Drops are reported as they happen, not in one lump at the end.
    assert!(h.dropped().len() > 10);
}

/// A long outage with a small buffer: memory stays within
/// `buffer.maxBytes` at every step (the harness checks), the oldest audio
/// makes room and is reported as a `capacity` drop, and every byte the
/// server lacks is reported. The report may exceed the loss only by the
/// audio still unconfirmed when the connection died (the server may have
/// had it; only an `ack` or a final could have said so).
#[test]
fn queue_memory_stays_within_max_bytes() {
    for provider in [Provider::Deepgram, Provider::Generic] {
        let mut cfg = config(provider);
        cfg.max_bytes = 10 * 3_200;
        cfg.ttl = secs(600);
        let mut h = Harness::with_config(cfg);
        h.connect();
        h.mic_start();
        h.run_until(t(5_050));
        if provider == Provider::Generic {
            // Unacknowledged audio counts against the bound too.
            h.fault(Fault::StopAcking);
            h.run_for(secs(10));
            assert!(h.session.queued_bytes() <= 32_000);
            h.fault(Fault::ResumeAcking);
            h.run_for(secs(2));
        }
        h.fault(Fault::Down(secs(60)));
        h.run_until_pred(secs(200), "reconnected", |h| h.ready_events().len() == 2);
        h.run_for(secs(10));
        h.mic_stop();
        h.run_for(secs(5));
        let cap = h.dropped_bytes(DropReason::Capacity);
        assert!(cap >= 50 * 32_000, "{provider:?}: {cap} bytes dropped");
        assert_eq!(
            cap,
            h.stats().bytes_dropped,
            "{provider:?}: only capacity drops"
        );
        let missing = (h.pushed_samples() - h.unique_samples_received()) * 2;
        assert!(
            cap >= missing,
            "{provider:?}: {missing} lost, {cap} reported"
        );
        assert!(
            cap - missing <= 32_000,
            "{provider:?}: over-reported by {} bytes, more than one result interval",
            cap - missing
        );
        if provider == Provider::Generic {
            assert_eq!(
                h.server.gap_bytes, missing,
                "the server saw the gaps as seeks"
            );
            let stored = h.server.stream(h.session.stream_id());
            let want = pcm_bytes(0, h.pushed_samples());
            assert_eq!(stored.len(), want.len());
            let differing = stored.iter().zip(&want).filter(|(a, b)| a != b).count() as u64;
            assert!(differing <= cap, "only the gaps differ");
        }
    }
}

/// The resumable protocol's promise: through resets, a server restart and
/// a flapping backend, the server's stored stream is exactly the pushed
/// audio, with no hole and no duplicate, because the client resumes from
/// the last acknowledged offset and the server discards what it has.
#[test]
fn generic_protocol_resumes_from_ack_with_no_loss_or_duplicates() {
    let mut h = Harness::new(Provider::Generic);
    h.connect();
    h.mic_start();
    h.at(t(5_050), Fault::Reset);
    h.at(t(17_321), Fault::close(1011, "restart"));
    h.at(t(30_000), Fault::Reset);
    h.at(t(30_900), Fault::Reset);
    h.at(t(44_444), Fault::Blackhole);
    h.at(
        t(75_000),
        Fault::Flap {
            for_: secs(3),
            up: ms(400),
        },
    );
    h.run_until(t(95_000));
    h.mic_stop();
    h.input(Input::Close {
        flush: true,
        timeout: None,
    })
    .unwrap();
    h.drive_bounded(10_000);
    assert_eq!(h.state(), State::Closed);
    let (_, code, _) = h.closed().unwrap();
    assert_eq!(code, Some(1000));
    assert!(h.ready_events().len() >= 5, "{:?}", h.ready_events());
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
    let stored = h.server.stream(h.session.stream_id());
    let want = pcm_bytes(0, h.pushed_samples());
    assert_eq!(stored.len(), want.len(), "no hole, no extra");
    assert!(stored == want.as_slice(), "byte-exact");
    assert_eq!(h.server.gap_bytes, 0);
    assert!(h.server.violations.is_empty(), "{:?}", h.server.violations);
    let s = h.stats();
    assert!(s.bytes_resent > 0, "unacked audio was resent");
    assert_eq!(s.bytes_acked, s.bytes_pushed, "{s:?}");
    assert_eq!(s.bytes_sent, s.bytes_pushed);
}

/// After `close`, pushed audio (a microphone callback that fires late, an
/// app that forgets to stop capture) cannot be sent. It is reported as
/// dropped with reason `closed` (or `failed` after a fatal error) with the
/// exact amount, never swallowed.
#[test]
fn audio_after_close_is_reported_dropped() {
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_until(t(3_000));
    h.mic_stop();
    h.input(Input::Close {
        flush: true,
        timeout: None,
    })
    .unwrap();
    assert_eq!(h.state(), State::Closing);
    h.push_audio(800); // during closing
    h.drive_bounded(1_000);
    assert_eq!(h.state(), State::Closed);
    h.push_audio(8_000); // after closed
    let d = h.dropped();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!((d[0].1.reason, d[0].1.bytes), (DropReason::Closed, 1_600));
    assert_eq!((d[1].1.reason, d[1].1.bytes), (DropReason::Closed, 16_000));
    assert!((d[1].1.audio_ms - 500.0).abs() < 1e-9);
    assert_eq!(d[1].1.chunks, 5);
    assert_eq!(h.stats().bytes_sent, 3_000 / 100 * 3_200);

    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.run_until(t(1_000));
    h.fault(Fault::close(4001, "unauthorized"));
    h.run_for(secs(1));
    assert_eq!(h.state(), State::Failed);
    h.push_audio(1_600);
    let d = h.dropped();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].1.reason, d[0].1.bytes), (DropReason::Failed, 3_200));
}

/// Generic protocol, small buffer: a blackhole swallows audio the client
/// sent (never acknowledged), the queue lets go of that unconfirmed audio
/// for capacity, then the server is down for a while. Before the fix, the
/// unconfirmed audio counted as "sent" forever and ~24 s vanished without a
/// `dropped` event. Now every byte the server never stored is reported:
/// the server's gaps equal the reported drops, exactly.
#[test]
fn unconfirmed_audio_lost_in_a_blackhole_is_reported_not_silent() {
    let mut cfg = config(Provider::Generic);
    cfg.max_bytes = 100 * 3_200; // 10 s
    let mut h = Harness::with_config(cfg);
    h.connect();
    h.mic_start();
    h.at(t(20_000), Fault::Blackhole);
    // The watchdog cuts the blackhole at ~45 s; the server is down 40–60 s.
    h.at(t(40_000), Fault::Down(secs(20)));
    h.run_until(t(120_000));
    assert!(h.ready_events().len() >= 2, "{:?}", h.ready_events());
    h.mic_stop();
    h.input(Input::Close {
        flush: true,
        timeout: None,
    })
    .unwrap();
    h.drive_bounded(10_000);
    let reported: u64 = h.dropped().iter().map(|(_, d)| d.bytes).sum();
    assert!(
        reported > 10 * 32_000,
        "most of the outage is lost: {reported}"
    );
    let missing = (h.pushed_samples() - h.unique_samples_received()) * 2;
    assert!(reported >= missing, "{missing} lost, {reported} reported");
    // Only audio unconfirmed when the connection died can be over-reported
    // (the server may have had it), here the second before the blackhole.
    assert!(
        reported - missing <= 32_000,
        "over-reported by {}",
        reported - missing
    );
    let s = h.stats();
    assert_eq!(
        s.bytes_pushed,
        s.bytes_sent + s.bytes_queued + s.bytes_dropped
    );
    assert_eq!(
        s.bytes_sent, s.bytes_acked,
        "sent means confirmed once the stream finished"
    );
}
