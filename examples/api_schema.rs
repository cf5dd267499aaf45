//! The JavaScript API as the core builds it, as JSON on stdout: option
//! keys and their defaults, every event type with sample payloads (the
//! exact JSON the shell hands to listeners), error codes, drop reasons and
//! states. `scripts/check-api.mjs` (run by `npm test`) holds this against
//! the TypeScript declarations (`src/web/api.d.ts`, as built into `pkg/`)
//! and `docs/api.md`, and fails on anything that exists in one and not in
//! the others.
//!
//! ```sh
//! cargo run --quiet --example api_schema > target/api-schema.json
//! ```
//!
//! Each event comes with two samples: every optional field set, and every
//! optional field empty (`null`), so the check sees each field's JSON types.
//! An event type in `payload::EVENT_TYPES` without a sample here is an
//! error: add one below.

use std::time::Duration;

use resilient_transcriber::core::options::{
    self, CaptureOptions, Source, CAPTURE_KEYS, CLIENT_KEYS, CLOSE_KEYS, MICROPHONE_KEYS, SECTIONS,
    START_CAPTURE_KEYS, UTTERANCE_KEYS,
};
use resilient_transcriber::core::payload::{self, EVENT_TYPES};
use resilient_transcriber::core::{
    Config, DropReason, Dropped, ErrorCode, Event, Provider, PushToTalk, State, StateChange, Stats,
    Transcript, UtteranceResult, Word,
};

/// Options of `startCapture(options)`, `microphone`'s own ones nested.
fn start_capture_keys() -> Vec<String> {
    let mut v: Vec<String> = START_CAPTURE_KEYS.iter().map(|k| k.to_string()).collect();
    v.extend(MICROPHONE_KEYS.iter().map(|k| ["microphone.", k].concat()));
    v
}

/// Fields the browser shell adds to a core payload (they are in no core
/// sample): `(event, field, where)`.
const SHELL_FIELDS: &[(&str, &str, &str)] = &[(
    "error",
    "cause",
    "src/web/shell.js: what a throwing listener threw (code `listener`)",
)];

fn quote(s: &str) -> String {
    let mut out = String::new();
    resilient_transcriber::core::json::push_str(&mut out, s);
    out
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = items.into_iter().map(quote).collect();
    ["[", &v.join(","), "]"].concat()
}

fn object(pairs: &[(String, String)]) -> String {
    let v: Vec<String> = pairs
        .iter()
        .map(|(k, v)| [quote(k).as_str(), ":", v].concat())
        .collect();
    ["{", &v.join(","), "}"].concat()
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Every option's default, as `docs/api.md` must show it first in its
/// default cell (from `Config::new` and the option readers themselves).
fn defaults() -> Vec<(String, String)> {
    let c = Config::new(Provider::Deepgram, "wss://example.com/v1/listen");
    let r = &c.reconnect;
    let attempts = r
        .max_attempts
        .map_or("Infinity".to_string(), |n| n.to_string());
    let (flush, timeout) = options::close_options("{}").expect("close() without options");
    let capture = options::capture_options("{}").expect("startMicrophone() without options");
    let mic_only = CaptureOptions {
        microphone: Source::Request,
        ..CaptureOptions::default()
    };
    assert_eq!(
        capture, mic_only,
        "capture options have defaults now: list them"
    );
    let start = options::start_capture_options("{}").expect("startCapture() without options");
    assert_eq!(
        start, mic_only,
        "startCapture options have new defaults: list them"
    );
    let ptt = PushToTalk::default();
    let pre_roll = options::utterance_options("{}").expect("beginUtterance() without options");
    assert_eq!(
        pre_roll, None,
        "beginUtterance options have defaults now: list them"
    );
    let d: Vec<(&str, String)> = vec![
        ("url", "required".into()),
        ("provider", quote(Provider::Deepgram.as_str())),
        ("protocols", "[]".into()),
        ("token", "none".into()),
        ("getToken", "none".into()),
        ("language", "none".into()),
        ("sampleRate", c.sample_rate.to_string()),
        ("channels", c.channels.to_string()),
        ("pushToTalk.preRollMs", ms(ptt.pre_roll)),
        ("pushToTalk.timeoutMs", ms(ptt.timeout)),
        (
            "pushToTalk.connection",
            quote(if ptt.on_demand { "onDemand" } else { "warm" }),
        ),
        ("beginUtterance.preRollMs", "pushToTalk.preRollMs".into()),
        ("startCapture.microphone", "true".into()),
        ("startCapture.systemAudio", "false".into()),
        ("chunkMs", c.chunk_ms.to_string()),
        ("reconnect.initialDelayMs", ms(r.initial_delay)),
        ("reconnect.maxDelayMs", ms(r.max_delay)),
        ("reconnect.multiplier", r.multiplier.to_string()),
        ("reconnect.jitter", r.jitter.to_string()),
        ("reconnect.maxAttempts", attempts),
        ("reconnect.resetAfterMs", ms(r.reset_after)),
        ("keepalive.intervalMs", ms(c.keepalive_interval())),
        ("watchdog.staleAfterMs", ms(c.stale_after)),
        ("watchdog.stallAfterMs", ms(c.stall_after)),
        ("buffer.ttlMs", ms(c.ttl)),
        ("buffer.maxBytes", c.max_bytes.to_string()),
        ("buffer.replayRate", c.replay_rate.to_string()),
        ("connectTimeoutMs", ms(c.connect_timeout)),
        ("closeTimeoutMs", ms(c.close_timeout)),
        ("seed", "random".into()),
        ("logLevel", quote("off")),
        ("logger", "console".into()),
        ("close.flush", flush.to_string()),
        (
            "close.timeoutMs",
            timeout.map_or("closeTimeoutMs".to_string(), ms),
        ),
    ];
    let mut d: Vec<(String, String)> = d.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for k in CAPTURE_KEYS {
        d.push((["startMicrophone.", k].concat(), "none".into()));
    }
    for k in start_capture_keys() {
        // `microphone` and `systemAudio` have theirs above.
        if k != "microphone" && k != "systemAudio" {
            d.push((["startCapture.", &k].concat(), "none".into()));
        }
    }
    d.sort();
    // Every option has a default here, and nothing else does.
    let mut keys: Vec<String> = Vec::new();
    for k in CLIENT_KEYS {
        match SECTIONS.iter().find(|(s, _)| s == k) {
            Some((s, sub)) => keys.extend(sub.iter().map(|f| [s, ".", f].concat())),
            None => keys.push(k.to_string()),
        }
    }
    keys.extend(
        CAPTURE_KEYS
            .iter()
            .map(|k| ["startMicrophone.", k].concat()),
    );
    keys.extend(CLOSE_KEYS.iter().map(|k| ["close.", k].concat()));
    keys.extend(
        start_capture_keys()
            .iter()
            .map(|k| ["startCapture.", k].concat()),
    );
    keys.extend(
        UTTERANCE_KEYS
            .iter()
            .map(|k| ["beginUtterance.", k].concat()),
    );
    keys.sort();
    let have: Vec<String> = d.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        have, keys,
        "examples/api_schema.rs: defaults() must list exactly the option keys of core::options"
    );
    d.into_iter().map(|(k, v)| (k, quote(&v))).collect()
}

fn transcript(full: bool) -> Transcript {
    Transcript {
        text: "hello world".into(),
        is_final: true,
        speech_final: false,
        start: 1.5,
        end: 2.25,
        speaker: full.then(|| "S0".into()),
        channel: 0,
        words: vec![Word {
            word: "hello".into(),
            start: 1.5,
            end: 1.9,
        }],
    }
}

/// Two samples of every core event: optional fields set, then empty.
fn samples(full: bool) -> Vec<Event> {
    vec![
        Event::State(StateChange {
            state: State::Reconnecting,
            previous: State::Open,
            attempt: 1,
            retry_in: full.then(|| Duration::from_millis(500)),
            reason: full.then(|| "close 1006".into()),
        }),
        Event::Open {
            connection: 2,
            backlog_chunks: 3,
            resume_offset: full.then_some(64_000),
        },
        Event::Transcript(transcript(full)),
        Event::Message("{\"type\":\"Metadata\"}".into()),
        Event::Dropped(Dropped {
            chunks: 2,
            bytes: 6400,
            audio_ms: 200.0,
            reason: DropReason::Ttl,
        }),
        Event::Error {
            code: ErrorCode::ConnectTimeout,
            message: "the attempt was not ready within 10000 ms".into(),
            fatal: false,
        },
        Event::Reconnecting {
            attempt: 1,
            delay: Duration::from_millis(500),
        },
        Event::Utterance(UtteranceResult {
            id: 1,
            text: "hello world".into(),
            finals: if full {
                vec![transcript(true), transcript(false)]
            } else {
                vec![]
            },
            start_ms: 1500.0,
            end_ms: 2250.0,
            audio_ms: 750.0,
            latency_ms: 120.0,
            timed_out: !full,
        }),
        Event::Closed {
            code: full.then_some(1000),
            reason: "closed".into(),
        },
    ]
}

fn stats(full: bool) -> String {
    payload::stats(&Stats {
        server_offset: full.then_some(64_000),
        ..Stats::default()
    })
}

fn main() {
    let mut events: Vec<(String, Vec<String>)> = EVENT_TYPES
        .iter()
        .map(|t| (t.to_string(), vec![]))
        .collect();
    for full in [true, false] {
        for e in samples(full) {
            let (kind, json) = match (&e, payload::event(&e)) {
                (_, Some(p)) => p,
                (Event::Closed { code, reason }, None) => (
                    "close",
                    payload::summary(*code, reason, State::Closed.as_str(), &stats(full)),
                ),
                (e, None) => panic!("payload::event gave no payload for {e:?}"),
            };
            match events.iter_mut().find(|(t, _)| t == kind) {
                Some((_, v)) => v.push(json),
                None => panic!("event type `{kind}` is not in payload::EVENT_TYPES"),
            }
        }
    }
    // `capture` comes from the shell (src/web/driver.rs), built by the core.
    if let Some((_, v)) = events.iter_mut().find(|(t, _)| t == "capture") {
        v.push(payload::capture("microphone", "started"));
        v.push(payload::capture("systemAudio", "ended"));
    }
    for (t, v) in &events {
        assert!(
            !v.is_empty(),
            "examples/api_schema.rs: event type `{t}` (payload::EVENT_TYPES) has no sample; add one to samples()"
        );
    }
    let events: Vec<(String, String)> = events
        .into_iter()
        .map(|(t, v)| (t, ["[", &v.join(","), "]"].concat()))
        .collect();
    let sections: Vec<(String, String)> = SECTIONS
        .iter()
        .map(|(s, keys)| (s.to_string(), list(keys.iter().copied())))
        .collect();
    let shell: Vec<String> = SHELL_FIELDS
        .iter()
        .map(|(e, f, w)| {
            object(&[
                ("event".into(), quote(e)),
                ("field".into(), quote(f)),
                ("source".into(), quote(w)),
            ])
        })
        .collect();
    let doc = object(&[
        (
            "options".into(),
            object(&[
                ("client".into(), list(CLIENT_KEYS.iter().copied())),
                ("sections".into(), object(&sections)),
                ("capture".into(), list(CAPTURE_KEYS.iter().copied())),
                ("close".into(), list(CLOSE_KEYS.iter().copied())),
                (
                    "startCapture".into(),
                    list(start_capture_keys().iter().map(String::as_str)),
                ),
                ("utterance".into(), list(UTTERANCE_KEYS.iter().copied())),
            ]),
        ),
        ("defaults".into(), object(&defaults())),
        ("eventTypes".into(), list(EVENT_TYPES.iter().copied())),
        ("events".into(), object(&events)),
        (
            "stats".into(),
            ["[", &stats(true), ",", &stats(false), "]"].concat(),
        ),
        ("shellFields".into(), ["[", &shell.join(","), "]"].concat()),
        (
            "errorCodes".into(),
            list(ErrorCode::ALL.iter().map(|c| c.as_str())),
        ),
        (
            "dropReasons".into(),
            list(DropReason::ALL.iter().map(|r| r.as_str())),
        ),
        ("states".into(), list(State::ALL.iter().map(|s| s.as_str()))),
    ]);
    println!("{doc}");
}
