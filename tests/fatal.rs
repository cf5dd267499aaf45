//! Which failures stop the session and which do not. A fatal close (bad
//! credentials, bad audio, protocol error) must not be retried forever,
//! and a message the client does not understand must not kill it.

mod common;
use common::*;
use resilient_transcriber::core::{DropReason, ErrorCode, Event, Provider, State};

/// The server rejects the credentials (1008, 4001) or the audio (1003,
/// Deepgram's `DATA-0000` reason): retrying cannot help and would only
/// hammer the server. The session fails at once with a fatal `error` whose
/// code says why, a `closed` event with the server's code, and the queued
/// audio reported as dropped (`failed`). No second attempt, ever.
#[test]
fn fatal_close_code_stops_retrying_with_error() {
    let cases = [
        (Provider::Deepgram, 1008, "", ErrorCode::AuthFailed),
        (Provider::Deepgram, 1003, "", ErrorCode::BadAudio),
        (Provider::Deepgram, 1011, "DATA-0000", ErrorCode::BadAudio),
        (Provider::Deepgram, 4001, "", ErrorCode::AuthFailed),
        (
            Provider::Generic,
            4001,
            "unauthorized",
            ErrorCode::AuthFailed,
        ),
        (
            Provider::Generic,
            4400,
            "start first",
            ErrorCode::FatalClose,
        ),
        (Provider::Omi, 1008, "", ErrorCode::AuthFailed),
    ];
    for (provider, code, reason, want) in cases {
        let what = format!("{provider:?} {code} {reason:?}");
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(3_000));
        // Queue some audio behind a full send buffer so there is something
        // unsent to report.
        h.fault(Fault::HoldBuffered(1 << 20));
        h.run_until(t(4_000));
        h.mic_stop();
        h.fault(Fault::close(code, reason));
        h.run_for(secs(600));
        assert_eq!(h.state(), State::Failed, "{what}");
        assert_eq!(h.opens.len(), 1, "{what}: retried");
        let errors = h.errors();
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        assert_eq!((errors[0].1, errors[0].2), (want, true), "{what}");
        let (_, closed_code, _) = h.closed().unwrap();
        assert_eq!(closed_code, Some(code), "{what}");
        assert!(h.dropped_bytes(DropReason::Failed) > 0, "{what}");
        assert!(
            matches!(h.events.last().unwrap().1, Event::Closed { .. }),
            "{what}"
        );
    }
}

/// Servers evolve: a new message type, a truncated frame, an error report,
/// an unexpected binary frame. Each is reported (`message` with the raw
/// text, and a non-fatal `error`), and the session carries on: same
/// connection, transcripts keep coming.
#[test]
fn malformed_server_message_is_reported_not_fatal() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(2_000));
        let error_report = match provider {
            Provider::Deepgram => r#"{"type":"Error","description":"overloaded"}"#,
            _ => r#"{"type":"error","message":"overloaded"}"#,
        };
        for f in [
            Fault::SendText("{not json".into()),
            Fault::SendText(r#"{"type":"SomethingNew","x":1}"#.into()),
            Fault::SendText(r#"{"type":"ack","offset":"nope"}"#.into()),
            Fault::SendText(error_report.into()),
            Fault::SendBinary(vec![1, 2, 3]),
        ] {
            h.fault(f);
        }
        let transcripts_before = h.transcripts().len();
        h.run_for(secs(5));
        assert_eq!(h.state(), State::Open, "{provider:?}");
        assert_eq!(h.opens.len(), 1, "{provider:?}");
        let errors = h.errors();
        assert!(errors.len() >= 3, "{provider:?}: {errors:?}");
        assert!(errors.iter().all(|e| !e.2), "{provider:?}: fatal");
        assert!(
            errors.iter().any(|e| e.1 == ErrorCode::ServerError),
            "{provider:?}"
        );
        assert!(
            errors.iter().any(|e| e.1 == ErrorCode::MalformedMessage),
            "{provider:?}"
        );
        let messages = h.events_where(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        });
        assert!(
            messages.iter().any(|m| m.1 == "{not json"),
            "{provider:?}: raw text kept"
        );
        assert!(
            h.transcripts().len() >= transcripts_before + 4,
            "{provider:?}"
        );
    }
}

/// The generic server confirms audio by `ack` (stored), and its final
/// transcripts follow. A fatal close between the two leaves stored audio
/// that no final will ever cover on this stream: for the user it is as
/// lost as audio that never left, so it is reported `unconfirmed`. Every
/// byte pushed is then either under a final or in a `dropped` event, and
/// the ledger still balances.
#[test]
fn fatal_close_reports_stored_audio_no_final_covers() {
    let mut h = Harness::new(Provider::Generic);
    h.server.final_every = 3 * 16_000;
    h.connect();
    h.mic_start();
    h.run_until(t(4_500));
    h.mic_stop();
    h.run_for(ms(300));
    let acked = h.stats().bytes_acked;
    assert!(
        acked > 4 * 32_000,
        "acks reached past the last final: {acked}"
    );
    h.fault(Fault::close(1008, "policy"));
    h.run_for(secs(60));
    assert_eq!(h.state(), State::Failed);
    let covered: f64 = h
        .transcripts()
        .iter()
        .filter(|(_, t)| t.is_final)
        .map(|(_, t)| t.end - t.start)
        .sum();
    assert!((covered - 3.0).abs() < 1e-6, "finals cover {covered} s");
    let s = h.stats();
    let dropped: u64 = h.dropped().iter().map(|(_, d)| d.bytes).sum();
    assert_eq!(
        dropped + 3 * 32_000,
        s.bytes_pushed,
        "pushed = covered + dropped"
    );
    assert!(h.dropped_bytes(DropReason::Unconfirmed) >= acked - 3 * 32_000);
    assert_eq!(
        s.bytes_pushed,
        s.bytes_sent + s.bytes_queued + s.bytes_dropped
    );
}
