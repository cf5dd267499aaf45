//! A mistyped option must fail at construction with an error that names the
//! option as the JavaScript API spells it and the value given, never later
//! as a mysterious connection failure (or a session that spins on a zero
//! interval). The JS layer maps negative numbers to this same path; here
//! zero, inverted and out-of-range values go through `Session::new`.

use std::time::Duration;

use resilient_transcriber::core::{Config, Provider, Session};

fn cfg(provider: Provider) -> Config {
    let mut c = Config::new(provider, "wss://api.example.test/v1/listen");
    if provider == Provider::Omi {
        c.token = Some("k".into());
    }
    c
}

/// Every invalid value is rejected by `Session::new` with the field and the
/// value in the error; valid defaults for every provider are accepted.
#[test]
fn invalid_configuration_is_rejected_naming_field_and_value() {
    for p in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        Session::new(cfg(p)).expect("defaults are valid");
    }
    type Case = (Provider, fn(&mut Config), &'static str, &'static str);
    let cases: &[Case] = &[
        (
            Provider::Deepgram,
            |c| c.reconnect.initial_delay = Duration::ZERO,
            "reconnect.initialDelayMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.reconnect.max_delay = Duration::ZERO,
            "reconnect.maxDelayMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.reconnect.max_delay = Duration::from_millis(250),
            "reconnect.maxDelayMs",
            "250",
        ),
        (
            Provider::Deepgram,
            |c| c.reconnect.reset_after = Duration::ZERO,
            "reconnect.resetAfterMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.reconnect.multiplier = 0.5,
            "reconnect.multiplier",
            "0.5",
        ),
        (
            Provider::Deepgram,
            |c| c.reconnect.jitter = -0.1,
            "reconnect.jitter",
            "-0.1",
        ),
        (
            Provider::Deepgram,
            |c| c.reconnect.max_attempts = Some(0),
            "reconnect.maxAttempts",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.keepalive = Some(Duration::ZERO),
            "keepalive.intervalMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.stale_after = Duration::ZERO,
            "watchdog.staleAfterMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.stall_after = Duration::ZERO,
            "watchdog.stallAfterMs",
            "0",
        ),
        (
            // Both set by the user, and they cannot work together: the
            // error names both.
            Provider::Deepgram,
            |c| {
                c.keepalive = Some(Duration::from_millis(5_000));
                c.stale_after = Duration::from_millis(4_000);
            },
            "keepalive.intervalMs",
            "watchdog.staleAfterMs (4000)",
        ),
        (
            Provider::Deepgram,
            |c| c.ttl = Duration::ZERO,
            "buffer.ttlMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.max_bytes = 3_199,
            "buffer.maxBytes",
            "3199",
        ),
        (
            Provider::Deepgram,
            |c| c.max_bytes = 0,
            "buffer.maxBytes",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.replay_rate = f64::INFINITY,
            "buffer.replayRate",
            "Infinity",
        ),
        (
            Provider::Deepgram,
            |c| c.replay_rate = 0.0,
            "buffer.replayRate",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.connect_timeout = Duration::ZERO,
            "connectTimeoutMs",
            "0",
        ),
        (
            Provider::Deepgram,
            |c| c.close_timeout = Duration::ZERO,
            "closeTimeoutMs",
            "0",
        ),
        (Provider::Deepgram, |c| c.chunk_ms = 0, "chunkMs", "0"),
        (Provider::Deepgram, |c| c.sample_rate = 0, "sampleRate", "0"),
        (
            Provider::Deepgram,
            |c| c.url = "https://api.example.test/v1/listen".into(),
            "url",
            "https://api.example.test/v1/listen",
        ),
        (
            Provider::Deepgram,
            |c| c.url = "ftp://h/x".into(),
            "url",
            "ftp://h/x",
        ),
        (
            Provider::Deepgram,
            |c| c.url = "wss://".into(),
            "url",
            "wss://",
        ),
        (
            Provider::Deepgram,
            |c| c.url = "wss://:443/x".into(),
            "url",
            "wss://:443/x",
        ),
        (
            Provider::Deepgram,
            |c| c.url = "wss://h x/".into(),
            "url",
            "wss://h x/",
        ),
        (
            Provider::Deepgram,
            |c| c.url = "wss://h:port/".into(),
            "url",
            "h:port",
        ),
        (
            Provider::Deepgram,
            |c| c.url = "wss://h/#frag".into(),
            "url",
            "#frag",
        ),
        (Provider::Deepgram, |c| c.url = String::new(), "url", "\"\""),
        (
            Provider::Deepgram,
            |c| c.token = Some("".into()),
            "token",
            "\"\"",
        ),
        (
            Provider::Deepgram,
            |c| c.protocols = vec!["two words".into()],
            "protocols",
            "two",
        ),
        (Provider::Omi, |c| c.token = None, "token", "undefined"),
    ];
    for (provider, mutate, field, value) in cases {
        let mut c = cfg(*provider);
        mutate(&mut c);
        let e = Session::new(c).expect_err(field);
        assert_eq!(e.field, *field, "{e}");
        assert!(
            e.to_string().contains(value),
            "{e} should mention {value:?}"
        );
        assert!(e.to_string().contains(field), "{e} should name {field}");
    }
    // Omi with getToken instead of a static token is fine.
    let mut c = cfg(Provider::Omi);
    c.token = None;
    c.token_callback = true;
    Session::new(c).expect("getToken supplies Omi's token");
    // Unknown providers are rejected when the option is parsed.
    let e = Provider::parse("azure").unwrap_err();
    assert_eq!(e.field, "provider");
    assert!(e.to_string().contains("\"azure\""), "{e}");
}

/// The URL may carry a secret in its query (`?token=...`): the error shows
/// where the URL went wrong without printing the secret.
#[test]
fn url_errors_do_not_leak_query_secrets() {
    let mut c = cfg(Provider::Deepgram);
    c.url = "http://h/v1/listen?token=supersecret".into();
    let e = Session::new(c).unwrap_err().to_string();
    assert!(e.contains("http://h/v1/listen"), "{e}");
    assert!(!e.contains("supersecret"), "{e}");
}
