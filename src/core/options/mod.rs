//! The JavaScript API's option objects, read from JSON.
//!
//! The browser shell hands over `JSON.stringify({ v: options })`, where a
//! value JSON cannot carry is replaced by a marker `{"$rt": kind}`
//! (`function`, `Infinity`, `-Infinity`, `NaN`, `bigint`, `symbol`), so every
//! check happens here, in plain Rust, natively tested: each error names the
//! option as JavaScript spells it and shows the value (secrets never whole).
//! The key tables are public so a test can hold them against the
//! TypeScript declarations.

use std::time::Duration;

use super::config::Config;
use super::diagnostics::LogLevel;
use super::io::{Credential, TokenScheme};
use super::json::Value;
use super::protocol::Provider;
use super::text::{int, num};

/// Top-level options of `new TranscriptionClient(options)`.
pub const CLIENT_KEYS: &[&str] = &[
    "url",
    "provider",
    "protocols",
    "token",
    "getToken",
    "language",
    "sampleRate",
    "channels",
    "chunkMs",
    "pushToTalk",
    "reconnect",
    "keepalive",
    "watchdog",
    "buffer",
    "connectTimeoutMs",
    "closeTimeoutMs",
    "seed",
    "logLevel",
    "logger",
];
/// Keys of each nested option object.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "reconnect",
        &[
            "initialDelayMs",
            "maxDelayMs",
            "multiplier",
            "jitter",
            "maxAttempts",
            "resetAfterMs",
        ],
    ),
    ("keepalive", &["intervalMs"]),
    ("watchdog", &["staleAfterMs", "stallAfterMs"]),
    ("buffer", &["ttlMs", "maxBytes", "replayRate"]),
    ("pushToTalk", &["preRollMs", "timeoutMs", "connection"]),
];
/// Options of `startMicrophone(options)`.
pub const CAPTURE_KEYS: &[&str] = &[
    "deviceId",
    "echoCancellation",
    "noiseSuppression",
    "autoGainControl",
    "workletUrl",
    "contextSampleRate",
];
/// Options of `startCapture(options)`.
pub const START_CAPTURE_KEYS: &[&str] = &[
    "microphone",
    "systemAudio",
    "workletUrl",
    "contextSampleRate",
];
/// Options of `startCapture({ microphone: {...} })`.
pub const MICROPHONE_KEYS: &[&str] = &[
    "deviceId",
    "echoCancellation",
    "noiseSuppression",
    "autoGainControl",
];
/// Options of `beginUtterance(options)`.
pub const UTTERANCE_KEYS: &[&str] = &["preRollMs"];
/// Options of `close(options)`.
pub const CLOSE_KEYS: &[&str] = &["flush", "timeoutMs"];

/// A bad option: which one, a sentence for a person, and whether it is a
/// wrong value (`RangeError`) or a wrong type (`TypeError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// The option as JavaScript spells it (`reconnect.maxDelayMs`).
    pub field: String,
    /// What is wrong, naming the option and the value.
    pub message: String,
    /// A wrong value rather than a wrong type.
    pub range: bool,
}

/// An option error as the checks return it: boxed, so that every `?` on
/// the way out moves one pointer rather than seven words (a few KB of the
/// WASM build's constructor).
pub type Bad = Box<OptionError>;

fn type_error(field: &str, message: String) -> Bad {
    Box::new(OptionError {
        field: field.into(),
        message,
        range: false,
    })
}

fn range_error(field: &str, message: String) -> Bad {
    Box::new(OptionError {
        field: field.into(),
        message,
        range: true,
    })
}

/// The client's options, checked.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The session configuration.
    pub config: Config,
    /// `getToken` is a function (the shell keeps it).
    pub get_token: bool,
    /// `logLevel` (default `"off"`, `"info"` with a `logger`).
    pub log_level: LogLevel,
    /// `logger` is a function (the shell keeps it); without one, entries
    /// go to the console.
    pub logger: bool,
}

/// Where a capture source comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// Not captured.
    #[default]
    Off,
    /// The browser asks the user: `getUserMedia` for the microphone,
    /// `getDisplayMedia` (a tab, window or screen with its audio) for the
    /// system audio.
    Request,
    /// A `MediaStream` the host passed (Electron's `desktopCapturer`, a
    /// Tauri plugin, a stream the page already has).
    Given,
}

/// `startMicrophone`'s and `startCapture`'s options, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureOptions {
    /// The microphone (channel 0).
    pub microphone: Source,
    /// The system audio (channel 1; mixed into channel 0 with one channel).
    pub system_audio: Source,
    /// `deviceId` (exact).
    pub device_id: Option<String>,
    /// Browser voice processing, where the caller sets it.
    pub echo_cancellation: Option<bool>,
    /// See `echo_cancellation`.
    pub noise_suppression: Option<bool>,
    /// See `echo_cancellation`.
    pub auto_gain_control: Option<bool>,
    /// URL of the worklet module, for a CSP that forbids `blob:`.
    pub worklet_url: Option<String>,
    /// Sample rate to ask the AudioContext for.
    pub context_rate: Option<f64>,
}

/// What a JSON value from JavaScript was.
enum Js<'a> {
    Absent,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Arr,
    Obj(&'a [(String, Value)]),
    /// A marker: `function`, `bigint`, `symbol`.
    Special(&'a str),
}

fn js(v: Option<&Value>) -> Js<'_> {
    match v {
        None => Js::Absent,
        Some(Value::Null) => Js::Null,
        Some(Value::Bool(b)) => Js::Bool(*b),
        Some(Value::Number(n)) => Js::Num(*n),
        Some(Value::String(s)) => Js::Str(s),
        Some(Value::Array(_)) => Js::Arr,
        Some(Value::Object(fields)) => match (fields.len(), fields.first()) {
            (1, Some((k, Value::String(kind)))) if k == "$rt" => match kind.as_str() {
                "Infinity" => Js::Num(f64::INFINITY),
                "-Infinity" => Js::Num(f64::NEG_INFINITY),
                "NaN" => Js::Num(f64::NAN),
                other => Js::Special(other),
            },
            _ => Js::Obj(fields),
        },
    }
}

/// A short, safe rendering of a value for an error message.
fn show(v: &Js<'_>) -> String {
    match v {
        Js::Absent => "undefined".into(),
        Js::Null => "null".into(),
        Js::Bool(b) => if *b { "true" } else { "false" }.into(),
        Js::Num(n) => num(*n),
        Js::Str(s) => {
            // At most 40 bytes, cut at a character boundary.
            let mut end = s.len().min(40);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            ["\"", s.get(..end).unwrap_or(""), "\""].concat()
        }
        Js::Arr => "an array".into(),
        Js::Obj(_) => "an object".into(),
        Js::Special("function") => "a function".into(),
        Js::Special(kind) => ["a ", kind].concat(),
    }
}

/// One option object and the path to it (`""` or `"reconnect."`).
struct Section<'a> {
    fields: &'a [(String, Value)],
    prefix: &'a str,
}

impl<'a> Section<'a> {
    fn get(&self, key: &str) -> Js<'a> {
        js(self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    fn name(&self, key: &str) -> String {
        [self.prefix, key].concat()
    }

    fn check_keys(&self, allowed: &[&str], what: &str) -> Result<(), Bad> {
        for (k, _) in self.fields {
            if !allowed.contains(&k.as_str()) {
                let name = self.name(k);
                return Err(type_error(
                    &name,
                    [
                        what,
                        ": unknown option `",
                        &name,
                        "`; valid options",
                        if self.prefix.is_empty() { "" } else { " here" },
                        ": ",
                        &allowed.join(", "),
                    ]
                    .concat(),
                ));
            }
        }
        Ok(())
    }

    fn string(&self, key: &str) -> Result<Option<String>, Bad> {
        match self.get(key) {
            Js::Absent => Ok(None),
            Js::Str(s) => Ok(Some(s.to_string())),
            other => Err(type_error(
                &self.name(key),
                must(&self.name(key), "a string", &other),
            )),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, Bad> {
        match self.get(key) {
            Js::Absent => Ok(None),
            Js::Bool(b) => Ok(Some(b)),
            other => Err(type_error(
                &self.name(key),
                must(&self.name(key), "a boolean", &other),
            )),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, Bad> {
        let field = self.name(key);
        match self.get(key) {
            Js::Absent => Ok(None),
            Js::Num(n) if n.is_nan() || n == f64::NEG_INFINITY => {
                Err(range_error(&field, must(&field, "a number", &Js::Num(n))))
            }
            Js::Num(n) => Ok(Some(n)),
            other => Err(type_error(&field, must(&field, "a number", &other))),
        }
    }

    fn integer(&self, key: &str) -> Result<Option<f64>, Bad> {
        let Some(n) = self.number(key)? else {
            return Ok(None);
        };
        if n.fract() != 0.0 || !(0.0..=9_007_199_254_740_991.0).contains(&n) {
            let field = self.name(key);
            return Err(range_error(
                &field,
                must(&field, "a non-negative integer", &Js::Num(n)),
            ));
        }
        Ok(Some(n))
    }

    fn ms(&self, key: &str, slot: &mut Duration) -> Result<(), Bad> {
        if let Some(n) = self.number(key)? {
            if !(n > 0.0 && n.is_finite() && n <= 86_400_000.0) {
                let field = self.name(key);
                return Err(range_error(
                    &field,
                    must(
                        &field,
                        "a positive number of milliseconds (at most one day)",
                        &Js::Num(n),
                    ),
                ));
            }
            *slot = Duration::from_millis(n.round() as u64);
        }
        Ok(())
    }

    fn section(&self, key: &'static str) -> Result<Option<Section<'a>>, Bad> {
        match self.get(key) {
            Js::Absent => Ok(None),
            Js::Obj(fields) => Ok(Some(Section {
                fields,
                prefix: match key {
                    "reconnect" => "reconnect.",
                    "keepalive" => "keepalive.",
                    "watchdog" => "watchdog.",
                    "pushToTalk" => "pushToTalk.",
                    _ => "buffer.",
                },
            })),
            other => Err(type_error(key, must(key, "an object", &other))),
        }
    }
}

fn must(field: &str, what: &str, got: &Js<'_>) -> String {
    ["option `", field, "` must be ", what, ", got ", &show(got)].concat()
}

/// The `{ v: ... }` wrapper's object, or why it is not one.
fn root<'a>(doc: &'a Value, what: &str, example: &str) -> Result<Option<Section<'a>>, Bad> {
    match js(doc.get("v")) {
        Js::Absent | Js::Null => Ok(None),
        Js::Obj(fields) => Ok(Some(Section { fields, prefix: "" })),
        other => Err(type_error(
            "options",
            [
                what,
                " options must be an object like ",
                example,
                ", got ",
                &show(&other),
            ]
            .concat(),
        )),
    }
}

fn parse(json: &str) -> Result<Value, Bad> {
    Value::parse(json).map_err(|_| {
        type_error(
            "options",
            "options must be a plain object of strings, numbers, booleans and functions".into(),
        )
    })
}

/// A credential: a string, or `{ token, scheme }`.
pub fn credential(v: &Value) -> Result<Credential, &'static str> {
    const SHAPE: &str = "a string or { token: string, scheme?: \"token\" | \"bearer\" }";
    match js(Some(v)) {
        Js::Str(t) => Ok(Credential::token(t)),
        Js::Obj(_) => {
            let token = v.str_field("token").ok_or(SHAPE)?;
            let scheme = match v.get("scheme") {
                None => TokenScheme::Token,
                Some(s) => match s.as_str() {
                    Some("token") => TokenScheme::Token,
                    Some("bearer") => TokenScheme::Bearer,
                    _ => return Err(SHAPE),
                },
            };
            Ok(Credential {
                token: token.to_string(),
                scheme,
            })
        }
        _ => Err(SHAPE),
    }
}

mod capture;
mod client;
#[cfg(test)]
mod tests;

pub use capture::{capture_options, close_options, start_capture_options, utterance_options};
pub use client::client_options;
