//! Root cause 2 of the original client: reconnect gave up (backoff
//! `min(2^n, 32)` s, 10 attempts, then failure until the app restarted).
//! These scenarios pin the reconnect policy: forever by default, capped,
//! jittered, counted, reset only after a healthy connection, and cut short
//! when the browser says the network is back.

mod common;
use common::*;
use resilient_transcriber::core::{
    Config, ErrorCode, Event, Instant, Provider, State, CLOSE_STALE,
};
use std::time::Duration;

/// A two-hour backend outage with default settings. The client must keep
/// trying through all of it (no give-up, no gap longer than the 60 s cap)
/// and be back within about a minute of the server's return. Two hours of
/// virtual time in well under a second: the microphone runs before the
/// outage and through its last minutes (two hours of 16 kHz PCM would be
/// 230 MB pushed through a debug build; the audio path during outages is
/// what the loss scenarios cover).
#[test]
fn reconnects_forever_through_a_two_hour_outage() {
    let wall = std::time::Instant::now();
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.mic_start();
    h.run_for(secs(10));
    assert_eq!(h.state(), State::Open);
    let down_at = h.now;
    let outage = secs(2 * 3600);
    h.fault(Fault::Down(outage));
    let back = down_at + outage;
    h.run_until(down_at + secs(30));
    h.mic_stop();
    h.run_until(t(back.as_millis() - 90_000));
    h.mic_start();
    h.run_until(back);

    let attempts: Vec<Instant> = h
        .opens
        .iter()
        .map(|(at, ..)| *at)
        .filter(|at| *at > down_at)
        .collect();
    assert!(
        attempts.len() >= 120,
        "only {} attempts in 2 h",
        attempts.len()
    );
    assert!(attempts[0] - down_at <= secs(1), "first retry late");
    for w in attempts.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap <= ms(60_100), "{gap:?} between attempts at {:?}", w[0]);
    }
    let last = *attempts.last().unwrap();
    assert!(back - last <= ms(60_100), "stopped trying at {last:?}");
    for (at, attempt, delay) in h.reconnecting() {
        assert!(delay <= secs(60), "attempt {attempt} at {at:?}: {delay:?}");
    }
    assert!(h.errors().iter().all(|(_, _, fatal)| !fatal));
    assert_eq!(h.state(), State::Reconnecting);

    let reopened = h.run_until_pred(secs(120), "open after the outage", |h| {
        h.state() == State::Open
    });
    assert!(
        reopened - back <= ms(61_000),
        "reopened {:?} after",
        reopened - back
    );
    // The last 30 s of audio (the TTL) survived and was replayed.
    h.run_for(secs(20));
    h.assert_server_audio_in_order();
    let elapsed = wall.elapsed();
    eprintln!(
        "two-hour outage simulated in {elapsed:?} ({} steps)",
        h.steps
    );
    assert!(h.steps < 200_000, "{} steps", h.steps);
}

/// The delay schedule on the wire: each delay within
/// `[(1 - jitter) × base, base]` where `base = min(cap, initial × m^(n-1))`,
/// never above the cap however long the outage, and drawn afresh on every
/// attempt (two clients cut off together do not come back together, and
/// one client at the cap does not retry on a fixed beat).
#[test]
fn backoff_never_exceeds_cap_and_jitters_every_attempt() {
    let run = |seed: u64| {
        let mut cfg = config(Provider::Deepgram);
        cfg.seed = seed;
        cfg.reconnect.initial_delay = ms(200);
        cfg.reconnect.max_delay = secs(5);
        cfg.reconnect.multiplier = 3.0;
        cfg.reconnect.jitter = 0.5;
        let mut h = Harness::with_config(cfg);
        h.server.open_mode = OpenMode::Refuse;
        h.connect();
        h.run_for(secs(600));
        h.reconnecting()
    };
    let a = run(1);
    let b = run(2);
    assert!(a.len() > 150, "{} attempts in 10 min", a.len());
    for (i, (_, attempt, delay)) in a.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1, "attempts count up");
        let base = (200.0 * 3f64.powi(i as i32)).min(5_000.0);
        let d = delay.as_millis() as f64;
        assert!(d <= base + 0.5, "attempt {attempt}: {d} ms > base {base}");
        assert!(
            d >= base * 0.5 - 0.5,
            "attempt {attempt}: {d} ms < half of {base}"
        );
        assert!(*delay <= secs(5));
    }
    let at_cap: Vec<Duration> = a.iter().skip(5).map(|(_, _, d)| *d).collect();
    let repeats = at_cap.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        repeats * 20 < at_cap.len(),
        "jitter not drawn per attempt: {repeats} repeats"
    );
    let same = a.iter().zip(&b).filter(|(x, y)| x.2 == y.2).count();
    assert!(same * 20 < a.len(), "two seeds gave {same} equal delays");
}

/// `reconnect.maxAttempts` is an opt-in budget: when it is spent, the
/// session stops with a fatal `max-attempts` error, reports the audio it
/// could not deliver, and makes no further attempt.
#[test]
fn max_attempts_gives_up_with_fatal_error() {
    let mut cfg = config(Provider::Deepgram);
    cfg.reconnect.max_attempts = Some(3);
    let mut h = Harness::with_config(cfg);
    h.server.open_mode = OpenMode::Refuse;
    h.mic_start();
    h.connect();
    h.run_for(secs(600));
    assert_eq!(h.state(), State::Failed);
    assert_eq!(h.opens.len(), 3, "exactly the budget");
    assert_eq!(h.stats().attempts, 3);
    let fatal: Vec<_> = h.errors().into_iter().filter(|e| e.2).collect();
    assert_eq!(fatal.len(), 1);
    assert_eq!(fatal[0].1, ErrorCode::MaxAttempts);
    let (closed_at, code, _) = h.closed().expect("closed event");
    assert_eq!(code, None);
    assert!(closed_at <= t(10_000), "gave up at {closed_at:?}");
    // What was queued at that moment is reported, not silently forgotten.
    assert!(h.dropped_bytes(resilient_transcriber::core::DropReason::Failed) > 0);
    assert_eq!(h.stats().bytes_sent, 0);
}

/// The attempt counter (the backoff exponent and the budget) must not
/// reset just because a socket opened: a server that accepts and drops
/// after 5 s would otherwise be hammered at the initial delay forever.
/// It resets only after `resetAfterMs` (10 s) of healthy connection.
#[test]
fn attempt_counter_resets_only_after_reset_after_ms() {
    let mut h = Harness::new(Provider::Deepgram);
    h.mic_start();
    h.connect();
    let mut attempts = Vec::new();
    // Three short connections of 5 s each, then one of 11 s.
    for up in [5, 5, 5, 11] {
        let opened = h.run_until_pred(secs(60), "open", |h| h.state() == State::Open);
        h.run_until(opened + secs(up));
        h.fault(Fault::Reset);
        h.run_until_pred(secs(1), "reconnecting", |h| {
            h.state() == State::Reconnecting
        });
        attempts.push(h.reconnecting().last().unwrap().1);
    }
    assert_eq!(attempts, [1, 2, 3, 1]);
    let states = h.states();
    let last = &states.last().unwrap().1;
    assert_eq!((last.state, last.attempt), (State::Reconnecting, 1));
}

/// A route that swallows the upgrade request (no open, no close) must not
/// hang the session: after `connectTimeoutMs` the attempt is abandoned
/// with a non-fatal `connect-timeout`, counted, and retried with backoff.
#[test]
fn connect_timeout_counts_as_failed_attempt() {
    let mut cfg = config(Provider::Deepgram);
    cfg.reconnect.max_attempts = Some(3);
    let mut h = Harness::with_config(cfg);
    h.server.open_mode = OpenMode::NeverAnswer;
    h.connect();
    h.run_until(t(10_000));
    let errs = h.errors();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].0, errs[0].1, errs[0].2),
        (t(10_000), ErrorCode::ConnectTimeout, false)
    );
    assert_eq!(h.closes.len(), 1, "the stuck socket is closed");
    assert_eq!(h.closes[0].2, CLOSE_STALE);
    assert_eq!(h.reconnecting()[0].1, 1);
    h.at(t(10_100), Fault::OpenMode(OpenMode::Accept(ms(100))));
    h.run_for(secs(5));
    assert_eq!(h.state(), State::Open);
    // The timed-out attempt counted: a second one is what succeeded, and
    // the budget of 3 is not touched by it being "only" a timeout.
    assert_eq!(h.stats().attempts, 2);
    // And timeouts alone spend the budget.
    let mut cfg = config(Provider::Deepgram);
    cfg.reconnect.max_attempts = Some(2);
    let mut h = Harness::with_config(cfg);
    h.server.open_mode = OpenMode::NeverAnswer;
    h.connect();
    h.run_for(secs(60));
    assert_eq!(h.state(), State::Failed);
    assert_eq!(h.opens.len(), 2);
    assert!(h
        .errors()
        .iter()
        .any(|e| e.1 == ErrorCode::MaxAttempts && e.2));
}

/// The browser's `online` event is better information than any backoff:
/// when the network comes back, the next attempt starts at once instead of
/// sitting out a delay that may be a minute long. `online` while the
/// connection is healthy changes nothing.
#[test]
fn online_event_retries_at_once() {
    let mut h = Harness::new(Provider::Deepgram);
    h.connect();
    h.run_for(secs(2));
    h.fault(Fault::Down(secs(120)));
    h.client_at(t(2_000 + 120_000 + 1_000), Deliver::Online);
    h.run_until(t(123_000));
    let online_at = t(123_000);
    let pending = h.reconnecting().last().unwrap().2;
    assert!(pending > secs(10), "backoff had grown to {pending:?}");
    let opens_after: Vec<_> = h.opens.iter().filter(|o| o.0 >= online_at).collect();
    assert_eq!(opens_after.len(), 1, "{opens_after:?}");
    assert_eq!(
        opens_after[0].0, online_at,
        "the retry starts with the online event"
    );
    h.run_for(secs(1));
    assert_eq!(h.state(), State::Open);
    // Online while open: no new socket.
    let n = h.opens.len();
    let _ = h.input(resilient_transcriber::core::Input::Online);
    h.run_for(secs(5));
    assert_eq!(h.opens.len(), n);
    assert_eq!(h.state(), State::Open);
}

/// Proxies, load balancers and iOS close idle or migrated sockets with a
/// clean 1000 the client never asked for. That is not the end of the
/// session: it reconnects (the old client treated it as "closed").
#[test]
fn unsolicited_1000_from_server_reconnects() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        let mut h = Harness::new(provider);
        h.connect();
        h.mic_start();
        h.run_until(t(5_050));
        h.fault(Fault::close(1000, ""));
        h.run_for(secs(5));
        assert_eq!(h.state(), State::Open, "{provider:?}");
        assert_eq!(h.ready_events().len(), 2, "{provider:?}");
        assert!(h.closed().is_none(), "{provider:?}: session ended on 1000");
        assert!(h.dropped().is_empty(), "{provider:?}: {:?}", h.dropped());
        if provider == Provider::Generic {
            // Resumed from the last ack: the server's copy is exact.
            h.mic_stop();
            h.run_for(secs(3));
            let stored = h.server.stream(h.session.stream_id());
            assert!(stored == pcm_bytes(0, h.pushed_samples()).as_slice());
        } else {
            // Audio in flight when the server closed, which its results had
            // not yet covered, is resent on the new connection: nothing is
            // lost, and only that unconfirmed tail arrives twice.
            h.assert_server_audio_in_order();
            h.mic_stop();
            h.run_for(secs(3));
            assert_eq!(
                h.unique_samples_received(),
                h.pushed_samples(),
                "{provider:?}"
            );
            let dup = h.duplicate_samples_received();
            assert!(dup <= 3 * 16_000, "{provider:?}: {dup} samples resent");
        }
        let r = h.reconnecting();
        assert_eq!(r.len(), 1);
        assert!(r[0].2 <= ms(500));
    }
}

/// With `getToken`, every attempt gets a fresh token (short-lived tokens
/// expire during long outages), requested before the socket opens and
/// placed in the subprotocols. A failed or unusable token is a non-fatal
/// `token-failed` error and a counted attempt, retried with backoff.
#[test]
fn token_is_requested_before_every_attempt_and_failures_retry() {
    let mut cfg: Config = config(Provider::Deepgram);
    cfg.token_callback = true;
    let mut h = Harness::with_config(cfg);
    h.token_script.extend([
        Ok("t1".to_string()),
        Err("network down".to_string()),
        Ok(String::new()),
        Ok("has space".to_string()),
        Ok("t5".to_string()),
    ]);
    h.connect();
    h.run_for(secs(3));
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.opens[0].2, ["token", "t1"]);
    assert!(h.token_requests[0] <= h.opens[0].0);
    h.fault(Fault::Reset);
    h.run_for(secs(30));
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.token_requests.len(), 5, "one token per attempt");
    assert_eq!(h.opens.len(), 2, "failed tokens open no socket");
    assert_eq!(h.opens[1].2, ["token", "t5"]);
    let token_errors: Vec<_> = h
        .errors()
        .into_iter()
        .filter(|e| e.1 == ErrorCode::TokenFailed)
        .collect();
    assert_eq!(token_errors.len(), 3);
    assert!(token_errors.iter().all(|e| !e.2), "not fatal");
    let attempts: Vec<u32> = h.reconnecting().iter().map(|r| r.1).collect();
    assert_eq!(attempts, [1, 2, 3, 4], "every failure counts");
    // Every open was preceded by its own token request.
    for (at, ..) in &h.opens {
        assert!(h
            .token_requests
            .iter()
            .any(|r| *r <= *at && *at - *r <= ms(100)));
    }
    // Events are well-formed: the message of a token error never carries
    // the token itself.
    for (_, e) in &h.events {
        if let Event::Error { message, .. } = e {
            assert!(!message.contains("t5") && !message.contains("has space"));
        }
    }
}
