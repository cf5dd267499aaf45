use super::*;
use crate::core::config::PushToTalk;

fn client(json: &str) -> Result<ClientOptions, Bad> {
    client_options(&["{\"v\":", json, "}"].concat(), 7)
}

#[test]
fn every_option_is_read() {
    let o = client(
        r#"{"url":"wss://h/v1/listen","provider":"generic","protocols":["p1"],
           "token":{"token":"a.b.c","scheme":"bearer"},"getToken":{"$rt":"function"},
           "language":"de","sampleRate":24000,"chunkMs":50,
           "reconnect":{"initialDelayMs":100,"maxDelayMs":2000,"multiplier":3,"jitter":0.1,"maxAttempts":{"$rt":"Infinity"},"resetAfterMs":500},
           "keepalive":{"intervalMs":1000},"watchdog":{"staleAfterMs":9000,"stallAfterMs":4000},
           "buffer":{"ttlMs":5000,"maxBytes":96000,"replayRate":2},
           "connectTimeoutMs":3000,"closeTimeoutMs":2000,"seed":42,"channels":2,
           "pushToTalk":{"preRollMs":0,"timeoutMs":1500,"connection":"onDemand"}}"#,
    )
    .unwrap();
    let c = o.config;
    assert!(o.get_token);
    assert_eq!(c.provider, Provider::Generic);
    assert_eq!(c.protocols, ["p1"]);
    assert_eq!(c.token.unwrap().scheme, TokenScheme::Bearer);
    assert_eq!(c.language.as_deref(), Some("de"));
    assert_eq!((c.sample_rate, c.chunk_ms), (24_000, 50));
    assert_eq!(c.reconnect.max_attempts, None);
    assert_eq!(c.reconnect.multiplier, 3.0);
    assert_eq!(c.keepalive, Some(Duration::from_secs(1)));
    assert_eq!(c.stale_after, Duration::from_secs(9));
    assert_eq!(c.max_bytes, 96_000);
    assert_eq!(
        (c.connect_timeout, c.close_timeout),
        (Duration::from_secs(3), Duration::from_secs(2))
    );
    assert_eq!(c.seed, 42);
    assert_eq!(c.channels, 2);
    let p = c.push_to_talk.unwrap();
    assert_eq!(
        (p.pre_roll, p.timeout, p.on_demand),
        (Duration::ZERO, Duration::from_millis(1500), true)
    );
    assert_eq!(client(r#"{"url":"wss://h/"}"#).unwrap().config.seed, 7);
    let on = client(r#"{"url":"wss://h/","pushToTalk":true}"#).unwrap();
    assert_eq!(on.config.push_to_talk, Some(PushToTalk::default()));
    let off = client(r#"{"url":"wss://h/","pushToTalk":false}"#).unwrap();
    assert_eq!(off.config.push_to_talk, None);
    assert_eq!((off.log_level, off.logger), (LogLevel::Off, false));
    let logged = client(r#"{"url":"wss://h/","logger":{"$rt":"function"}}"#).unwrap();
    assert_eq!((logged.log_level, logged.logger), (LogLevel::Info, true));
    let debug = client(r#"{"url":"wss://h/","logLevel":"debug"}"#).unwrap();
    assert_eq!((debug.log_level, debug.logger), (LogLevel::Debug, false));
}

#[test]
fn bad_options_name_the_option_and_the_value() {
    for (json, field, range, needle) in [
        (r#"5"#, "options", false, "got 5"),
        (r#"{}"#, "url", false, "required"),
        (r#"{"url":5}"#, "url", false, "must be a string, got 5"),
        (
            r#"{"url":"wss://h/","bogus":1}"#,
            "bogus",
            false,
            "unknown option `bogus`",
        ),
        (
            r#"{"url":"wss://h/","reconnect":{"x":1}}"#,
            "reconnect.x",
            false,
            "valid options here",
        ),
        (
            r#"{"url":"wss://h/","reconnect":[]}"#,
            "reconnect",
            false,
            "an array",
        ),
        (
            r#"{"url":"wss://h/","logLevel":"verbose"}"#,
            "logLevel",
            true,
            "\"verbose\"",
        ),
        (
            r#"{"url":"wss://h/","logger":"console"}"#,
            "logger",
            false,
            "a function",
        ),
        (
            r#"{"url":"wss://h/","pushToTalk":{"connection":"lazy"}}"#,
            "pushToTalk.connection",
            true,
            "\"lazy\"",
        ),
        (
            r#"{"url":"wss://h/","provider":"azure"}"#,
            "provider",
            true,
            "\"azure\"",
        ),
        (
            r#"{"url":"wss://h/","getToken":"t"}"#,
            "getToken",
            false,
            "got \"t\"",
        ),
        (
            r#"{"url":"wss://h/","token":5}"#,
            "token",
            false,
            "must be a string or",
        ),
        (
            r#"{"url":"wss://h/","protocols":["a",3]}"#,
            "protocols",
            false,
            "protocols[1]",
        ),
        (
            r#"{"url":"wss://h/","sampleRate":1.5}"#,
            "sampleRate",
            true,
            "1.5",
        ),
        (
            r#"{"url":"wss://h/","sampleRate":1000}"#,
            "sampleRate",
            true,
            "1000",
        ),
        (
            r#"{"url":"wss://h/","reconnect":{"maxAttempts":0}}"#,
            "reconnect.maxAttempts",
            true,
            "Infinity",
        ),
        (
            r#"{"url":"wss://h/","reconnect":{"jitter":{"$rt":"NaN"}}}"#,
            "reconnect.jitter",
            true,
            "NaN",
        ),
        (
            r#"{"url":"wss://h/","watchdog":{"staleAfterMs":-1}}"#,
            "watchdog.staleAfterMs",
            true,
            "-1",
        ),
        (
            r#"{"url":"wss://h/","closeTimeoutMs":"5"}"#,
            "closeTimeoutMs",
            false,
            "got \"5\"",
        ),
        (r#"{"url":"http://h/?token=secret"}"#, "url", true, "ws://"),
        (
            r#"{"url":"wss://h/","provider":"omi"}"#,
            "token",
            false,
            "getToken",
        ),
    ] {
        let e = client(json).expect_err(json);
        assert_eq!((e.field.as_str(), e.range), (field, range), "{json}: {e:?}");
        assert!(e.message.contains(needle), "{json}: {}", e.message);
        assert!(!e.message.contains("secret"), "{}", e.message);
    }
}

#[test]
fn capture_and_close_options() {
    let mic_only = CaptureOptions {
        microphone: Source::Request,
        ..CaptureOptions::default()
    };
    assert_eq!(capture_options(r#"{}"#).unwrap(), mic_only);
    let o = capture_options(
        r#"{"v":{"deviceId":"d","echoCancellation":false,"contextSampleRate":16000}}"#,
    )
    .unwrap();
    assert_eq!(o.device_id.as_deref(), Some("d"));
    assert_eq!(o.echo_cancellation, Some(false));
    assert_eq!(o.context_rate, Some(16_000.0));
    let e = capture_options(r#"{"v":{"sampleRate":16000}}"#).unwrap_err();
    assert_eq!(e.field, "sampleRate");
    assert!(
        e.message.contains("unknown option `sampleRate`"),
        "{}",
        e.message
    );
    assert_eq!(start_capture_options(r#"{}"#).unwrap(), mic_only);
    let o = start_capture_options(
        r#"{"v":{"microphone":{"deviceId":"d"},"systemAudio":{"$rt":"MediaStream"}}}"#,
    )
    .unwrap();
    assert_eq!(
        (o.microphone, o.system_audio),
        (Source::Request, Source::Given)
    );
    assert_eq!(o.device_id.as_deref(), Some("d"));
    let o = start_capture_options(r#"{"v":{"microphone":false,"systemAudio":true}}"#).unwrap();
    assert_eq!(
        (o.microphone, o.system_audio),
        (Source::Off, Source::Request)
    );
    for (json, field, needle) in [
        (
            r#"{"microphone":false}"#,
            "microphone",
            "nothing to capture",
        ),
        (r#"{"systemAudio":"tab"}"#, "systemAudio", "got \"tab\""),
        (
            r#"{"microphone":{"sampleRate":1}}"#,
            "microphone.sampleRate",
            "unknown option",
        ),
        (r#"{"deviceId":"d"}"#, "deviceId", "unknown option"),
    ] {
        let e = start_capture_options(&["{\"v\":", json, "}"].concat()).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e:?}");
        assert!(e.message.contains(needle), "{json}: {}", e.message);
    }
    assert_eq!(utterance_options(r#"{}"#).unwrap(), None);
    assert_eq!(
        utterance_options(r#"{"v":{"preRollMs":120}}"#).unwrap(),
        Some(Duration::from_millis(120))
    );
    assert_eq!(
        utterance_options(r#"{"v":{"preRollMs":-1}}"#)
            .unwrap_err()
            .field,
        "preRollMs"
    );
    assert_eq!(
        utterance_options(r#"{"v":{"pre":1}}"#).unwrap_err().field,
        "pre"
    );
    assert_eq!(close_options(r#"{}"#).unwrap(), (true, None));
    assert_eq!(
        close_options(r#"{"v":{"flush":false,"timeoutMs":250}}"#).unwrap(),
        (false, Some(Duration::from_millis(250)))
    );
    assert_eq!(
        close_options(r#"{"v":{"flush":1}}"#).unwrap_err().field,
        "flush"
    );
    assert_eq!(close_options(r#"{"v":"x"}"#).unwrap_err().field, "options");
}
