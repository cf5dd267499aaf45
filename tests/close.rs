//! Closing is bounded: flush the queue, finalize, wait for the final
//! results, close 1000, and never hang, whatever the server does.

mod common;
use common::*;
use resilient_transcriber::core::{DropReason, Event, Input, Provider, State};

fn close(h: &mut Harness, timeout: Option<std::time::Duration>) {
    h.input(Input::Close {
        flush: true,
        timeout,
    })
    .unwrap();
}

/// `close({flush: true})` after speech: the tail of the last chunk is sent,
/// then the provider's finalize (Deepgram `CloseStream`, generic `finish`;
/// Omi has none and lingers), and the final transcripts are delivered as
/// `transcript` events before `closed`, which carries 1000. Nothing lost.
#[test]
fn close_flushes_then_finalizes_then_closes_1000() {
    for provider in [Provider::Deepgram, Provider::Generic, Provider::Omi] {
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(3_000));
        h.mic_stop();
        h.push_audio(500); // a partial chunk
        close(&mut h, None);
        assert_eq!(h.state(), State::Closing);
        h.drive_bounded(1_000);
        assert_eq!(h.state(), State::Closed, "{provider:?}");
        let (closed_at, code, _) = h.closed().unwrap();
        assert_eq!(code, Some(1000), "{provider:?}");
        assert!(
            closed_at <= t(3_000 + 2_000),
            "{provider:?}: closed at {closed_at:?}"
        );
        // Everything, the partial tail included, reached the server.
        assert_eq!(
            h.unique_samples_received(),
            h.pushed_samples(),
            "{provider:?}"
        );
        if provider == Provider::Omi {
            // Omi has no finalize: the last partial second got no segment
            // before the linger ended. It reached the server, but no final
            // covers it, so it is reported `unconfirmed`, never assumed
            // delivered (before: confirmed by guess).
            assert_eq!(
                h.dropped_bytes(DropReason::Unconfirmed),
                1_000,
                "{:?}",
                h.dropped()
            );
            assert_eq!(h.stats().bytes_dropped, 1_000);
        } else {
            assert!(h.dropped().is_empty(), "{provider:?}: {:?}", h.dropped());
        }
        let sock = h.opens.last().unwrap().1;
        let frames: Vec<&Sent> = h
            .sent
            .iter()
            .filter(|s| s.1 == sock)
            .map(|s| &s.2)
            .collect();
        let last_audio = frames
            .iter()
            .rposition(|s| matches!(s, Sent::Audio(..)))
            .unwrap();
        assert_eq!(
            *frames[last_audio],
            Sent::Audio(48_000, 500),
            "{provider:?}: tail last"
        );
        match provider {
            Provider::Deepgram => {
                assert_eq!(
                    frames[last_audio + 1..],
                    [&Sent::Text(r#"{"type":"CloseStream"}"#.into())]
                );
            }
            Provider::Generic => {
                assert_eq!(
                    frames[last_audio + 1..],
                    [&Sent::Text(r#"{"type":"finish"}"#.into())]
                );
            }
            _ => {
                assert!(frames[last_audio + 1..].is_empty());
                let c = h.closes.last().unwrap();
                assert_eq!((c.1, c.2), (sock, 1000), "Omi: the client closes 1000");
            }
        }
        // The final transcript covers the tail and precedes `closed`.
        let events: Vec<&Event> = h.events.iter().map(|e| &e.1).collect();
        let closed_idx = events
            .iter()
            .position(|e| matches!(e, Event::Closed { .. }))
            .unwrap();
        let last_tr = events
            .iter()
            .rposition(|e| matches!(e, Event::Transcript(_)))
            .unwrap();
        assert!(last_tr < closed_idx, "{provider:?}");
        let Event::Transcript(tr) = events[last_tr] else {
            unreachable!()
        };
        if provider != Provider::Omi {
            assert!(
                (tr.end - 48_500.0 / 16_000.0).abs() < 1e-9,
                "{provider:?}: {tr:?}"
            );
            assert!(tr.is_final);
        }
        assert!(h.server.violations.is_empty(), "{:?}", h.server.violations);
    }
}

/// The server never answers `CloseStream` (or the network died under the
/// close). `close()` must still end at its deadline (closeTimeoutMs, or the
/// caller's own timeout, long or short) with a 1000 close of the socket;
/// audio that could not be sent by then is reported dropped with reason
/// `closed`, to the byte.
#[test]
fn close_never_hangs_past_timeout() {
    // 1. Final results never come, default 5 s and a long 30 s timeout.
    for timeout in [None, Some(secs(30))] {
        let mut h = Harness::new(Provider::Deepgram);
        h.server.answer_finalize = false;
        h.server.idle_timeout = None; // silent, not even an idle close
        h.connect();
        h.mic_start();
        h.run_until(t(3_000));
        h.mic_stop();
        close(&mut h, timeout);
        h.drive_bounded(1_000);
        let bound = t(3_000) + timeout.unwrap_or(secs(5));
        let (closed_at, code, reason) = h.closed().unwrap();
        assert!(closed_at <= bound, "{timeout:?}: closed at {closed_at:?}");
        if timeout.is_none() {
            assert_eq!(closed_at, bound);
            assert_eq!(code, Some(1000));
            assert_eq!(h.closes.last().unwrap().2, 1000);
        } else {
            // A server silent for staleAfterMs after the last audio is
            // dead: the watchdog may end a long close early, never late.
            assert!(closed_at >= t(3_000 + 25_000), "{reason}");
        }
        assert!(h.dropped().is_empty(), "everything was sent");
    }

    // 2. Unsent audio at the deadline: the connection is held up (send
    // buffer full), so the backlog cannot go out.
    let mut h = Harness::new(Provider::Deepgram);
    h.server.idle_timeout = None;
    h.connect();
    h.mic_start();
    h.run_until(t(2_050));
    h.fault(Fault::HoldBuffered(1 << 20));
    h.run_until(t(6_000));
    h.mic_stop();
    h.push_audio(300);
    let unsent = h.stats().bytes_queued;
    assert!(unsent > 30 * 3_200, "{unsent} bytes waiting");
    // Sent into the held-up socket but never covered by a result.
    let unconfirmed = h.stats().bytes_sent - h.stats().bytes_acked;
    close(&mut h, None);
    h.drive_bounded(1_000);
    assert_eq!(h.state(), State::Closed);
    let (closed_at, _, reason) = h.closed().unwrap();
    assert_eq!(closed_at, t(11_000), "{reason}");
    assert_eq!(h.dropped_bytes(DropReason::Closed), unsent);
    assert_eq!(h.dropped_bytes(DropReason::Unconfirmed), unconfirmed);

    // 3. Closing during an outage: one last attempt, refused, then the
    // deadline: the backlog is reported, the session does not hang on.
    let mut h = Harness::new(Provider::Generic);
    h.connect();
    h.mic_start();
    h.run_until(t(2_050));
    h.fault(Fault::Down(secs(3_600)));
    h.run_until(t(20_000));
    h.mic_stop();
    close(&mut h, None);
    let unsent = h.stats().bytes_queued;
    h.drive_bounded(1_000);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.closed().unwrap().0, t(25_000));
    // Never sent: `closed`; sent on the dead socket and waiting to be
    // resent: `unconfirmed`.
    assert_eq!(
        h.dropped_bytes(DropReason::Closed) + h.dropped_bytes(DropReason::Unconfirmed),
        unsent
    );
    assert!(
        h.opens.iter().any(|o| o.0 == t(20_000)),
        "one more try at close"
    );
}

/// `close({flush: true})` while `getToken` is still running: the attempt in
/// progress carries the flush. Starting another one would call `getToken`
/// a second time, count a phantom attempt, and reject the first answer as
/// unexpected.
#[test]
fn close_while_fetching_token_makes_no_second_attempt() {
    let mut cfg = config(Provider::Deepgram);
    cfg.token_callback = true;
    let mut h = Harness::with_config(cfg);
    h.token_delay = secs(2);
    h.connect();
    h.push_audio(3_200);
    h.run_for(ms(500));
    close(&mut h, None);
    h.drive_bounded(1_000);
    assert_eq!(h.token_requests.len(), 1, "{:?}", h.token_requests);
    assert!(h.usage_errors.is_empty(), "{:?}", h.usage_errors);
    assert_eq!(h.stats().attempts, 1);
    assert_eq!(h.opens.len(), 1);
    assert_eq!(h.closed().unwrap().1, Some(1000));
    assert_eq!(
        h.unique_samples_received(),
        3_200,
        "flushed over the one attempt"
    );
    assert!(h.dropped().is_empty());
}

/// The generic server acknowledged everything, then the socket died
/// before the finals of the last seconds came (a reset after `finish`).
/// Nothing is left to resend, but finals are owed: the close reconnects
/// (`final_from` asks for them again, the stream finalizes what it
/// stored) instead of ending with audio no final covers.
#[test]
fn a_flushing_close_reconnects_for_the_finals_of_acknowledged_audio() {
    let mut h = Harness::new(Provider::Generic);
    h.server.final_every = 3 * 16_000;
    h.server.answer_finalize = false;
    h.connect();
    h.mic_start();
    h.run_until(t(4_500));
    h.mic_stop();
    h.run_for(ms(500));
    close(&mut h, None);
    h.run_for(ms(500));
    assert_eq!(h.state(), State::Closing);
    assert_eq!(h.stats().bytes_acked, h.stats().bytes_pushed, "all stored");
    h.server.answer_finalize = true;
    h.fault(Fault::Reset);
    h.drive_bounded(10_000);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.opens.len(), 2, "reconnected for the finals");
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
    assert_eq!(h.uncovered_samples(), 0, "{:?}", h.final_coverage());
}
