//! Diagnostics: what a field report needs to explain itself.
//!
//! Two things, both opt-in and both built from what the session already
//! tells the page (events, socket closes), so they cannot disagree with it:
//!
//! - a log: with `logLevel` (or a `logger`), structured entries for state
//!   transitions with their reasons, attempts, close codes, queue levels,
//!   drops and errors go to the `logger` function or the console;
//! - `client.diagnostics()`: a snapshot a host app attaches to a bug report
//!   (state, the last transitions and close codes, timings, the queue, the
//!   counters, the configuration that matters, the version).
//!
//! Neither carries a secret: no token, no query string (URLs go through
//! [`redact_url`]), no transcript text (a transcript entry says how long
//! its text is, not what it says).

use std::collections::VecDeque;

use super::config::{redact_url, Config};
use super::event::{Event, State};
use super::payload::{self, Obj};

/// How much is logged (`logLevel`); each level includes those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Nothing (the default without a `logger`).
    #[default]
    Off,
    /// Fatal errors.
    Error,
    /// Reconnects, drops, non-fatal errors.
    Warn,
    /// State transitions, connections, socket closes (the default with a
    /// `logger`).
    Info,
    /// Everything, transcripts and server messages included (their size,
    /// not their content).
    Debug,
}

impl LogLevel {
    /// The names `logLevel` takes.
    pub const NAMES: [&'static str; 5] = ["off", "error", "warn", "info", "debug"];

    /// Parses a `logLevel` value.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            _ => return None,
        })
    }

    /// The name, as entries and the console use it.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Transitions and closes kept for the snapshot.
const KEEP: usize = 16;

/// One socket close: who closed, code and reason (as received or sent).
#[derive(Debug, Clone)]
struct Close {
    at_ms: f64,
    by_client: bool,
    code: u16,
    reason: String,
}

/// The diagnostics of one client. Times are milliseconds since it was
/// created (monotonic).
#[derive(Debug, Clone)]
pub struct Diagnostics {
    level: LogLevel,
    created_ms: f64,
    transitions: VecDeque<(f64, State, State, Option<String>)>,
    closes: VecDeque<Close>,
    last_error: Option<(f64, String, String, bool)>,
    /// When the current attempt (connecting) started.
    attempt_started: Option<f64>,
    /// Time to ready of the last successful attempt.
    last_connect_ms: Option<f64>,
    ready_at: Option<f64>,
    connections: u64,
    utterances: u64,
    last_utterance_latency: Option<f64>,
}

impl Diagnostics {
    /// Diagnostics logging at `level`, for a client created at `now_ms`.
    pub fn new(level: LogLevel, now_ms: f64) -> Diagnostics {
        Diagnostics {
            level,
            created_ms: now_ms,
            transitions: VecDeque::new(),
            closes: VecDeque::new(),
            last_error: None,
            attempt_started: None,
            last_connect_ms: None,
            ready_at: None,
            connections: 0,
            utterances: 0,
            last_utterance_latency: None,
        }
    }

    /// The log level.
    pub fn level(&self) -> LogLevel {
        self.level
    }

    fn rel(&self, now_ms: f64) -> f64 {
        (now_ms - self.created_ms).max(0.0).round()
    }

    /// Records an event; returns the log entry for it (level, JSON) if the
    /// level lets it through. `queued_ms`: the queue's level now.
    pub fn on_event(
        &mut self,
        now_ms: f64,
        e: &Event,
        queued_ms: f64,
    ) -> Option<(LogLevel, String)> {
        let at = self.rel(now_ms);
        let level = match e {
            Event::State(s) => {
                push(
                    &mut self.transitions,
                    (at, s.previous, s.state, s.reason.clone()),
                );
                if matches!(s.state, State::Connecting) && s.previous != State::Authenticating {
                    self.attempt_started = Some(at);
                }
                LogLevel::Info
            }
            Event::Open { .. } => {
                self.connections += 1;
                self.ready_at = Some(at);
                self.last_connect_ms = self.attempt_started.take().map(|t| at - t);
                LogLevel::Info
            }
            Event::Reconnecting { .. } | Event::Dropped(_) => LogLevel::Warn,
            Event::Error {
                code,
                message,
                fatal,
            } => {
                self.last_error = Some((at, code.as_str().into(), message.clone(), *fatal));
                if *fatal {
                    LogLevel::Error
                } else {
                    LogLevel::Warn
                }
            }
            Event::Utterance(u) => {
                self.utterances += 1;
                self.last_utterance_latency = Some(u.latency_ms);
                LogLevel::Info
            }
            Event::Closed { .. } => LogLevel::Info,
            Event::Transcript(_) | Event::Message(_) => LogLevel::Debug,
        };
        if level > self.level {
            return None;
        }
        let (kind, data) = match e {
            // Content stays out of logs: only its shape.
            Event::Transcript(t) => (
                "transcript",
                Obj::new()
                    .bool("isFinal", t.is_final)
                    .num("start", t.start)
                    .num("end", t.end)
                    .int("channel", t.channel.into())
                    .int("chars", char_count(&t.text))
                    .done(),
            ),
            Event::Message(m) => ("message", Obj::new().int("bytes", m.len() as u64).done()),
            Event::Utterance(u) => (
                "utterance",
                Obj::new()
                    .int("id", u.id)
                    .num("audioMs", u.audio_ms)
                    .num("latencyMs", u.latency_ms)
                    .bool("timedOut", u.timed_out)
                    .int("finals", u.finals.len() as u64)
                    .done(),
            ),
            Event::Closed { code, reason } => (
                "closed",
                Obj::new()
                    .opt_int("code", code.map(u64::from))
                    .str("reason", reason)
                    .done(),
            ),
            other => payload::event(other)?,
        };
        Some((level, entry(level, kind, at, &data, Some(queued_ms))))
    }

    /// Records a socket close (`by_client`: the client closed it); returns
    /// its log entry if logged (info).
    pub fn on_close(
        &mut self,
        now_ms: f64,
        by_client: bool,
        code: u16,
        reason: &str,
    ) -> Option<(LogLevel, String)> {
        let at = self.rel(now_ms);
        push(
            &mut self.closes,
            Close {
                at_ms: at,
                by_client,
                code,
                reason: reason.chars().take(123).collect(),
            },
        );
        if LogLevel::Info > self.level {
            return None;
        }
        let data = Obj::new()
            .str(
                "by",
                if by_client {
                    "client"
                } else {
                    "server or network"
                },
            )
            .int("code", code.into())
            .str("reason", reason)
            .done();
        Some((
            LogLevel::Info,
            entry(LogLevel::Info, "socket-closed", at, &data, None),
        ))
    }

    /// The snapshot `client.diagnostics()` returns, as JSON.
    pub fn snapshot(&self, now_ms: f64, cfg: &Config, state: State, stats_json: &str) -> String {
        let at = self.rel(now_ms);
        let mut transitions = String::from("[");
        for (i, (t, from, to, why)) in self.transitions.iter().enumerate() {
            if i > 0 {
                transitions.push(',');
            }
            transitions.push_str(
                &Obj::new()
                    .num("atMs", *t)
                    .str("from", from.as_str())
                    .str("to", to.as_str())
                    .opt_str("reason", why.as_deref())
                    .done(),
            );
        }
        transitions.push(']');
        let mut closes = String::from("[");
        for (i, c) in self.closes.iter().enumerate() {
            if i > 0 {
                closes.push(',');
            }
            closes.push_str(
                &Obj::new()
                    .num("atMs", c.at_ms)
                    .str(
                        "by",
                        if c.by_client {
                            "client"
                        } else {
                            "server or network"
                        },
                    )
                    .int("code", c.code.into())
                    .str("reason", &c.reason)
                    .done(),
            );
        }
        closes.push(']');
        let last_error = match &self.last_error {
            Some((t, code, message, fatal)) => Obj::new()
                .num("atMs", *t)
                .str("code", code)
                .str("message", message)
                .bool("fatal", *fatal)
                .done(),
            None => "null".into(),
        };
        let opt = |v: Option<f64>| v.map_or("null".to_string(), crate::core::num);
        let ptt = match &cfg.push_to_talk {
            Some(p) => Obj::new()
                .int("preRollMs", p.pre_roll.as_millis() as u64)
                .int("timeoutMs", p.timeout.as_millis() as u64)
                .str("connection", if p.on_demand { "onDemand" } else { "warm" })
                .done(),
            None => "null".into(),
        };
        let config = Obj::new()
            .str("provider", cfg.provider.as_str())
            .str("url", &redact_url(&cfg.url))
            .int("sampleRate", cfg.sample_rate.into())
            .int("channels", cfg.channels.into())
            .int("chunkMs", cfg.chunk_ms.into())
            .raw("pushToTalk", &ptt)
            .int("staleAfterMs", cfg.stale_after.as_millis() as u64)
            .int("ttlMs", cfg.ttl.as_millis() as u64)
            .int("maxBytes", cfg.max_bytes as u64)
            .bool("getToken", cfg.token_callback)
            .done();
        let timings = Obj::new()
            .num("uptimeMs", at)
            .raw("lastConnectMs", &opt(self.last_connect_ms))
            .raw("readySinceMs", &opt(self.ready_at))
            .raw("lastUtteranceLatencyMs", &opt(self.last_utterance_latency))
            .done();
        Obj::new()
            .str("version", env!("CARGO_PKG_VERSION"))
            .str("state", state.as_str())
            .int("connections", self.connections)
            .int("utterances", self.utterances)
            .raw("timings", &timings)
            .raw("transitions", &transitions)
            .raw("closes", &closes)
            .raw("lastError", &last_error)
            .raw("stats", stats_json)
            .raw("config", &config)
            .str("logLevel", self.level.as_str())
            .done()
    }
}

fn push<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == KEEP {
        q.pop_front();
    }
    q.push_back(v);
}

fn entry(level: LogLevel, kind: &str, at: f64, data: &str, queued_ms: Option<f64>) -> String {
    let mut o = Obj::new();
    o.str("level", level.as_str())
        .str("event", kind)
        .num("atMs", at)
        .raw("data", data);
    if let Some(q) = queued_ms {
        o.num("queuedMs", q.round());
    }
    o.done()
}

/// Characters in `s`, counted by byte (each byte that does not continue a
/// UTF-8 sequence starts a character): `chars().count()` brings in half a
/// KB of counting routine.
fn char_count(s: &str) -> u64 {
    s.bytes().filter(|&b| b & 0xC0 != 0x80).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Provider;
    use crate::core::event::{ErrorCode, StateChange, Transcript};
    use crate::core::json::Value;
    use std::time::Duration;

    fn state(from: State, to: State, why: &str) -> Event {
        Event::State(StateChange {
            state: to,
            previous: from,
            attempt: 1,
            retry_in: Some(Duration::from_millis(500)),
            reason: Some(why.into()),
        })
    }

    #[test]
    fn levels_filter_and_entries_are_structured() {
        let mut d = Diagnostics::new(LogLevel::Warn, 1000.0);
        assert!(d
            .on_event(1100.0, &state(State::Idle, State::Connecting, "x"), 0.0)
            .is_none());
        let (l, json) = d
            .on_event(
                1500.0,
                &Event::Reconnecting {
                    attempt: 2,
                    delay: Duration::from_millis(750),
                },
                320.0,
            )
            .unwrap();
        assert_eq!(l, LogLevel::Warn);
        let v = Value::parse(&json).unwrap();
        assert_eq!(v.str_field("level"), Some("warn"));
        assert_eq!(v.str_field("event"), Some("reconnecting"));
        assert_eq!(v.num_field("atMs"), Some(500.0));
        assert_eq!(v.num_field("queuedMs"), Some(320.0));
        assert_eq!(
            v.get("data").and_then(|d| d.num_field("delayMs")),
            Some(750.0)
        );
        assert!(
            d.on_close(1600.0, false, 1006, "").is_none(),
            "info is below warn"
        );
        let mut d = Diagnostics::new(LogLevel::Debug, 0.0);
        assert!(d.on_close(5.0, false, 1006, "").is_some());
        assert_eq!(LogLevel::parse("info"), Some(LogLevel::Info));
        assert_eq!(LogLevel::parse("verbose"), None);
    }

    #[test]
    fn transcripts_are_logged_by_their_shape_never_their_words() {
        let mut d = Diagnostics::new(LogLevel::Debug, 0.0);
        let t = Event::Transcript(Transcript {
            text: "my card number is 4111".into(),
            is_final: true,
            speech_final: false,
            start: 1.0,
            end: 2.0,
            speaker: None,
            channel: 1,
            words: vec![],
        });
        let (_, json) = d.on_event(10.0, &t, 0.0).unwrap();
        assert!(!json.contains("card") && !json.contains("4111"), "{json}");
        assert!(json.contains("\"chars\":22"), "{json}");
        let (_, json) = d
            .on_event(11.0, &Event::Message("{\"secret\":1}".into()), 0.0)
            .unwrap();
        assert!(!json.contains("secret"), "{json}");
    }

    #[test]
    fn the_snapshot_carries_transitions_closes_timings_and_no_secret() {
        let mut cfg = Config::new(
            Provider::Deepgram,
            "wss://user:pw@api.example/v1/listen?token=SECRET",
        );
        cfg.channels = 2;
        let mut d = Diagnostics::new(LogLevel::Off, 0.0);
        d.on_event(
            10.0,
            &state(State::Idle, State::Connecting, "connect()"),
            0.0,
        );
        d.on_event(
            130.0,
            &Event::Open {
                connection: 1,
                backlog_chunks: 0,
                resume_offset: None,
            },
            0.0,
        );
        d.on_event(135.0, &state(State::Connecting, State::Open, "open"), 0.0);
        d.on_close(900.0, false, 1006, "");
        d.on_event(
            901.0,
            &Event::Error {
                code: ErrorCode::ConnectTimeout,
                message: "not ready".into(),
                fatal: false,
            },
            0.0,
        );
        for i in 0..40 {
            d.on_close(1000.0 + f64::from(i), true, 4000, "stale");
        }
        let json = d.snapshot(2000.0, &cfg, State::Reconnecting, "{\"bytesSent\":1}");
        let v = Value::parse(&json).expect("valid JSON");
        assert!(!json.contains("SECRET") && !json.contains("pw"), "{json}");
        assert_eq!(v.str_field("state"), Some("reconnecting"));
        assert_eq!(v.str_field("version"), Some(env!("CARGO_PKG_VERSION")));
        let timings = v.get("timings").unwrap();
        assert_eq!(timings.num_field("lastConnectMs"), Some(120.0));
        assert_eq!(timings.num_field("uptimeMs"), Some(2000.0));
        let closes = v.get("closes").unwrap();
        // The last KEEP closes, newest last.
        assert!(closes.at(KEEP - 1).is_some() && closes.at(KEEP).is_none());
        assert_eq!(closes.at(KEEP - 1).unwrap().num_field("atMs"), Some(1039.0));
        assert_eq!(
            v.get("transitions")
                .and_then(|t| t.at(1))
                .and_then(|t| t.str_field("to")),
            Some("open")
        );
        assert_eq!(
            v.get("lastError").and_then(|e| e.str_field("code")),
            Some("connect-timeout")
        );
        assert_eq!(
            v.get("config").and_then(|c| c.num_field("channels")),
            Some(2.0)
        );
        assert_eq!(
            v.get("stats").and_then(|s| s.num_field("bytesSent")),
            Some(1.0)
        );
    }
}
