//! Regressions found by review, each a way audio could be lost without a
//! `dropped` event, or a close could end wrongly. Every test here failed
//! before its fix.

mod common;

use common::*;
use resilient_transcriber::core::{Input, Provider, State};

/// Audio in flight when a socket dies is queued for resend; if it then
/// expires during a long outage, its old socket's confirmations (Deepgram's
/// wire bytes, Omi's send time) must not be taken for confirmations on the
/// new socket. It is reported dropped. (Before: 600 ms lost silently.)
#[test]
fn resends_that_expire_during_an_outage_are_reported_not_confirmed_by_the_next_socket() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        for down in [20, 31, 50] {
            let mut h = Harness::new(provider);
            h.connect();
            h.mic_start();
            h.run_until(t(10_000));
            h.fault(Fault::HoldBuffered(0));
            h.run_until(t(10_650));
            h.fault(Fault::Down(secs(down)));
            h.run_until_pred(secs(200), "reconnected", |h| h.ready_events().len() == 2);
            h.run_for(secs(40));
            h.mic_stop();
            h.run_for(secs(5));
            let dropped = h.stats().bytes_dropped;
            let missing = (h.pushed_samples() - h.unique_samples_received()) * 2;
            assert!(
                dropped >= missing,
                "{provider:?}, down {down} s: {} bytes lost without a dropped event",
                missing - dropped
            );
        }
    }
}

/// The socket resets after our finalize went out: a 1006 is not the
/// server's normal end, so it confirms nothing. Whatever the server lacks
/// is resent on a new socket or reported. (Before: treated as "finished",
/// 19 200 bytes lost silently.)
#[test]
fn abnormal_close_after_finalize_confirms_nothing() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(10_000));
        h.fault(Fault::HoldBuffered(0));
        h.run_until(t(10_650));
        h.mic_stop();
        h.input(Input::Close {
            flush: true,
            timeout: None,
        })
        .unwrap();
        h.run_for(ms(200));
        h.fault(Fault::Reset);
        h.run_for(secs(10));
        assert_eq!(h.state(), State::Closed, "{provider:?}");
        let dropped = h.stats().bytes_dropped;
        let missing = (h.pushed_samples() - h.unique_samples_received()) * 2;
        assert!(
            dropped >= missing,
            "{provider:?}: {} bytes lost without a dropped event",
            missing - dropped
        );
    }
}

/// A flushing close whose socket dies after the finalize (here: the
/// network changed) reconnects, and the new socket must resend the
/// unconfirmed audio and finalize again. (Before: it sat silent until the
/// deadline and everything was dropped.)
#[test]
fn reconnect_during_a_flushing_close_resends_and_finalizes_again() {
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_until(t(10_000));
    h.fault(Fault::HoldBuffered(0));
    h.run_until(t(10_650));
    h.mic_stop();
    h.input(Input::Close {
        flush: true,
        timeout: Some(secs(20)),
    })
    .unwrap();
    h.run_for(ms(100));
    h.input(Input::Offline).unwrap();
    h.run_for(ms(100));
    h.input(Input::Online).unwrap();
    h.run_for(secs(25));
    assert!(h.opens.len() >= 2, "a new socket was opened");
    let (_, code, reason) = h.closed().expect("closed");
    assert_eq!(code, Some(1000), "{reason}");
    assert!(h.dropped().is_empty(), "{:?}", h.dropped());
    assert_eq!(h.unique_samples_received(), h.pushed_samples());
}

/// A close timeout longer than `staleAfterMs` with a server that neither
/// answers the finalize nor closes: after the finalize no keepalive timer
/// runs, so the long gap is not a suspended page. The close ends at the
/// deadline with 1000, not with a 4000 "stale: page was suspended".
#[test]
fn long_close_timeout_is_not_mistaken_for_a_suspended_page() {
    let mut h = Harness::new(Provider::Deepgram);
    h.server.answer_finalize = false;
    h.server.idle_timeout = None;
    h.connect();
    h.mic_start();
    h.run_until(t(5_000));
    h.mic_stop();
    h.run_for(secs(2));
    h.input(Input::Close {
        flush: true,
        timeout: Some(secs(40)),
    })
    .unwrap();
    h.run_for(secs(45));
    let (_, code, reason) = h.closed().expect("closed");
    assert!(!reason.contains("suspended"), "{reason}");
    assert_eq!(code, Some(1000), "{reason}");
}
