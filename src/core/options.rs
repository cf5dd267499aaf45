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

fn type_error(field: &str, message: String) -> OptionError {
    OptionError {
        field: field.into(),
        message,
        range: false,
    }
}

fn range_error(field: &str, message: String) -> OptionError {
    OptionError {
        field: field.into(),
        message,
        range: true,
    }
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

    fn check_keys(&self, allowed: &[&str], what: &str) -> Result<(), OptionError> {
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

    fn string(&self, key: &str) -> Result<Option<String>, OptionError> {
        match self.get(key) {
            Js::Absent => Ok(None),
            Js::Str(s) => Ok(Some(s.to_string())),
            other => Err(type_error(
                &self.name(key),
                must(&self.name(key), "a string", &other),
            )),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, OptionError> {
        match self.get(key) {
            Js::Absent => Ok(None),
            Js::Bool(b) => Ok(Some(b)),
            other => Err(type_error(
                &self.name(key),
                must(&self.name(key), "a boolean", &other),
            )),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, OptionError> {
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

    fn integer(&self, key: &str) -> Result<Option<f64>, OptionError> {
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

    fn ms(&self, key: &str, slot: &mut Duration) -> Result<(), OptionError> {
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

    fn section(&self, key: &'static str) -> Result<Option<Section<'a>>, OptionError> {
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
fn root<'a>(doc: &'a Value, what: &str, example: &str) -> Result<Option<Section<'a>>, OptionError> {
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

fn parse(json: &str) -> Result<Value, OptionError> {
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

/// `new TranscriptionClient(options)`: every option checked, then the
/// configuration as a whole. `seed` is the jitter seed to use when the
/// options have none (the shell draws it at random).
pub fn client_options(json: &str, seed: u64) -> Result<ClientOptions, OptionError> {
    let doc = parse(json)?;
    let Some(o) = root(&doc, "TranscriptionClient", "{ url, provider }")? else {
        return Err(type_error(
            "options",
            "TranscriptionClient options must be an object like { url, provider }, got undefined"
                .into(),
        ));
    };
    o.check_keys(CLIENT_KEYS, "TranscriptionClient")?;
    let url = match o.get("url") {
        Js::Absent => {
            return Err(type_error(
                "url",
                "option `url` is required (a ws:// or wss:// URL)".into(),
            ))
        }
        Js::Str(s) => s.to_string(),
        other => return Err(type_error("url", must("url", "a string", &other))),
    };
    let provider = match o.string("provider")? {
        Some(p) => Provider::parse(&p).map_err(|e| range_error("provider", e.message()))?,
        None => Provider::Deepgram,
    };
    let mut cfg = Config::new(provider, url);
    match o
        .fields
        .iter()
        .find(|(k, _)| k == "protocols")
        .map(|(_, v)| v)
    {
        None => {}
        Some(Value::Array(items)) => {
            for (i, p) in items.iter().enumerate() {
                match p {
                    Value::String(s) => cfg.protocols.push(s.clone()),
                    other => {
                        let field = ["protocols[", &int(i as u64), "]"].concat();
                        return Err(type_error(
                            "protocols",
                            must(&field, "a string", &js(Some(other))),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(type_error(
                "protocols",
                must("protocols", "an array of strings", &js(Some(other))),
            ))
        }
    }
    if let Some((_, t)) = o.fields.iter().find(|(k, _)| k == "token") {
        // Never echo the token itself.
        cfg.token = Some(
            credential(t)
                .map_err(|why| type_error("token", ["option `token` must be ", why].concat()))?,
        );
    }
    let get_token = match o.get("getToken") {
        Js::Absent => false,
        Js::Special("function") => true,
        other => {
            return Err(type_error(
                "getToken",
                must(
                    "getToken",
                    "a function returning a token (or a Promise of one)",
                    &other,
                ),
            ))
        }
    };
    cfg.token_callback = get_token;
    let logger = match o.get("logger") {
        Js::Absent => false,
        Js::Special("function") => true,
        other => {
            return Err(type_error(
                "logger",
                must("logger", "a function taking a log entry", &other),
            ))
        }
    };
    let log_level = match o.string("logLevel")? {
        None if logger => LogLevel::Info,
        None => LogLevel::Off,
        Some(l) => LogLevel::parse(&l).ok_or_else(|| {
            range_error(
                "logLevel",
                must(
                    "logLevel",
                    "\"off\", \"error\", \"warn\", \"info\" or \"debug\"",
                    &Js::Str(&l),
                ),
            )
        })?,
    };
    cfg.language = o.string("language")?;
    if let Some(n) = o.integer("sampleRate")? {
        cfg.sample_rate = n.min(f64::from(u32::MAX)) as u32;
    }
    if let Some(n) = o.integer("channels")? {
        cfg.channels = n.min(f64::from(u16::MAX)) as u16;
    }
    if let Some(n) = o.integer("chunkMs")? {
        cfg.chunk_ms = n.min(f64::from(u32::MAX)) as u32;
    }
    match o.get("pushToTalk") {
        Js::Bool(true) => cfg.push_to_talk = Some(super::config::PushToTalk::default()),
        Js::Bool(false) => cfg.push_to_talk = None,
        _ => {}
    }
    for (name, keys) in SECTIONS {
        if *name == "pushToTalk" && matches!(o.get(name), Js::Bool(_)) {
            continue;
        }
        let Some(s) = o.section(name)? else { continue };
        s.check_keys(keys, "TranscriptionClient")?;
        match *name {
            "reconnect" => {
                let c = &mut cfg.reconnect;
                s.ms("initialDelayMs", &mut c.initial_delay)?;
                s.ms("maxDelayMs", &mut c.max_delay)?;
                if let Some(m) = s.number("multiplier")? {
                    c.multiplier = m;
                }
                if let Some(j) = s.number("jitter")? {
                    c.jitter = j;
                }
                if let Some(m) = s.number("maxAttempts")? {
                    c.max_attempts = if m == f64::INFINITY {
                        None
                    } else if m.fract() == 0.0 && m >= 1.0 && m <= f64::from(u32::MAX) {
                        Some(m as u32)
                    } else {
                        return Err(range_error(
                            "reconnect.maxAttempts",
                            must(
                                "reconnect.maxAttempts",
                                "an integer >= 1 or Infinity",
                                &Js::Num(m),
                            ),
                        ));
                    };
                }
                s.ms("resetAfterMs", &mut c.reset_after)?;
            }
            "keepalive" => {
                let mut interval = Duration::ZERO;
                if !matches!(s.get("intervalMs"), Js::Absent) {
                    s.ms("intervalMs", &mut interval)?;
                    cfg.keepalive = Some(interval);
                }
            }
            "watchdog" => {
                s.ms("staleAfterMs", &mut cfg.stale_after)?;
                s.ms("stallAfterMs", &mut cfg.stall_after)?;
            }
            "pushToTalk" => {
                let mut p = super::config::PushToTalk::default();
                // A pre-roll of 0 is allowed (no pre-roll): not `ms`.
                if let Some(n) = s.number("preRollMs")? {
                    if !(0.0..=10_000.0).contains(&n) {
                        return Err(range_error(
                            "pushToTalk.preRollMs",
                            must(
                                "pushToTalk.preRollMs",
                                "a number of milliseconds in 0..=10000",
                                &Js::Num(n),
                            ),
                        ));
                    }
                    p.pre_roll = Duration::from_millis(n.round() as u64);
                }
                s.ms("timeoutMs", &mut p.timeout)?;
                match s.string("connection")?.as_deref() {
                    None | Some("warm") => {}
                    Some("onDemand") => p.on_demand = true,
                    Some(other) => {
                        return Err(range_error(
                            "pushToTalk.connection",
                            must(
                                "pushToTalk.connection",
                                "\"warm\" or \"onDemand\"",
                                &Js::Str(other),
                            ),
                        ))
                    }
                }
                cfg.push_to_talk = Some(p);
            }
            _ => {
                s.ms("ttlMs", &mut cfg.ttl)?;
                if let Some(n) = s.integer("maxBytes")? {
                    cfg.max_bytes = n as usize;
                }
                if let Some(r) = s.number("replayRate")? {
                    cfg.replay_rate = r;
                }
            }
        }
    }
    o.ms("connectTimeoutMs", &mut cfg.connect_timeout)?;
    o.ms("closeTimeoutMs", &mut cfg.close_timeout)?;
    cfg.seed = match o.integer("seed")? {
        Some(s) => s as u64,
        None => seed,
    };
    cfg.validate()
        .map_err(|e| range_error(e.field, e.message()))?;
    if cfg.provider.wire().auth() == super::protocol::Auth::FirstMessage
        && cfg.token.is_none()
        && !get_token
    {
        return Err(type_error(
            "token",
            "option `token` or `getToken` is required: this provider authenticates with its first message"
                .into(),
        ));
    }
    Ok(ClientOptions {
        config: cfg,
        get_token,
        log_level,
        logger,
    })
}

/// `startMicrophone(options)`.
pub fn capture_options(json: &str) -> Result<CaptureOptions, OptionError> {
    let doc = parse(json)?;
    let mut out = CaptureOptions {
        microphone: Source::Request,
        ..CaptureOptions::default()
    };
    let Some(o) = root(&doc, "startMicrophone", "{ deviceId }")? else {
        return Ok(out);
    };
    o.check_keys(CAPTURE_KEYS, "startMicrophone")?;
    microphone_constraints(&o, &mut out)?;
    context_options(&o, &mut out)?;
    Ok(out)
}

/// `startCapture(options)`: `microphone` (default `true`: a device, its
/// options, or a `MediaStream`) and `systemAudio` (default `false`:
/// `true` asks the browser to share a tab or screen with its audio, or a
/// `MediaStream`), at least one of them.
pub fn start_capture_options(json: &str) -> Result<CaptureOptions, OptionError> {
    let doc = parse(json)?;
    let mut out = CaptureOptions {
        microphone: Source::Request,
        ..CaptureOptions::default()
    };
    let Some(o) = root(
        &doc,
        "startCapture",
        "{ microphone: true, systemAudio: true }",
    )?
    else {
        return Ok(out);
    };
    o.check_keys(START_CAPTURE_KEYS, "startCapture")?;
    out.microphone = match o.get("microphone") {
        Js::Absent | Js::Bool(true) => Source::Request,
        Js::Bool(false) | Js::Null => Source::Off,
        Js::Special("MediaStream") => Source::Given,
        Js::Obj(fields) => {
            let m = Section {
                fields,
                prefix: "microphone.",
            };
            m.check_keys(MICROPHONE_KEYS, "startCapture")?;
            microphone_constraints(&m, &mut out)?;
            Source::Request
        }
        other => {
            return Err(type_error(
                "microphone",
                must(
                    "microphone",
                    "true, false, a MediaStream or { deviceId, echoCancellation, ... }",
                    &other,
                ),
            ))
        }
    };
    out.system_audio = match o.get("systemAudio") {
        Js::Absent | Js::Null | Js::Bool(false) => Source::Off,
        Js::Bool(true) => Source::Request,
        Js::Special("MediaStream") => Source::Given,
        other => {
            return Err(type_error(
                "systemAudio",
                must("systemAudio", "true, false or a MediaStream", &other),
            ))
        }
    };
    if out.microphone == Source::Off && out.system_audio == Source::Off {
        return Err(range_error(
            "microphone",
            "startCapture(options): nothing to capture; set `microphone` or `systemAudio`".into(),
        ));
    }
    context_options(&o, &mut out)?;
    Ok(out)
}

fn microphone_constraints(o: &Section<'_>, out: &mut CaptureOptions) -> Result<(), OptionError> {
    out.device_id = o.string("deviceId")?;
    out.echo_cancellation = o.boolean("echoCancellation")?;
    out.noise_suppression = o.boolean("noiseSuppression")?;
    out.auto_gain_control = o.boolean("autoGainControl")?;
    Ok(())
}

fn context_options(o: &Section<'_>, out: &mut CaptureOptions) -> Result<(), OptionError> {
    out.worklet_url = o.string("workletUrl")?;
    if let Some(r) = o.number("contextSampleRate")? {
        if !(8_000.0..=192_000.0).contains(&r) {
            return Err(range_error(
                "contextSampleRate",
                must(
                    "contextSampleRate",
                    "a number in 8000..=192000",
                    &Js::Num(r),
                ),
            ));
        }
        out.context_rate = Some(r);
    }
    Ok(())
}

/// `beginUtterance(options)`: the pre-roll asked for (`preRollMs`).
pub fn utterance_options(json: &str) -> Result<Option<Duration>, OptionError> {
    let doc = parse(json)?;
    let Some(o) = root(&doc, "beginUtterance", "{ preRollMs }")? else {
        return Ok(None);
    };
    o.check_keys(UTTERANCE_KEYS, "beginUtterance")?;
    match o.number("preRollMs")? {
        None => Ok(None),
        Some(n) if (0.0..=10_000.0).contains(&n) => {
            Ok(Some(Duration::from_millis(n.round() as u64)))
        }
        Some(n) => Err(range_error(
            "preRollMs",
            must(
                "preRollMs",
                "a number of milliseconds in 0..=10000",
                &Js::Num(n),
            ),
        )),
    }
}

/// `close(options)`: `(flush, timeout)`.
pub fn close_options(json: &str) -> Result<(bool, Option<Duration>), OptionError> {
    let doc = parse(json)?;
    let Some(o) = root(&doc, "close", "{ flush, timeoutMs }")? else {
        return Ok((true, None));
    };
    o.check_keys(CLOSE_KEYS, "close")?;
    let flush = o.boolean("flush")?.unwrap_or(true);
    let mut timeout = Duration::ZERO;
    o.ms("timeoutMs", &mut timeout)?;
    Ok((flush, (!timeout.is_zero()).then_some(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::PushToTalk;

    fn client(json: &str) -> Result<ClientOptions, OptionError> {
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
}
