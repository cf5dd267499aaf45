//! Session configuration, with defaults and validation.
//!
//! Every check names the option as the JavaScript API spells it, so the
//! error a web developer sees points at the line to fix.

use std::time::Duration;

use super::error::ConfigError;
use super::io::Credential;
pub use super::protocol::Provider;
use super::protocol::{is_token, Format};
use super::text::{int, num};

/// The keepalive interval when neither it nor a short stale threshold is set.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);

/// Reconnection policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectConfig {
    /// Delay before the first retry (`reconnect.initialDelayMs`, default 500 ms).
    pub initial_delay: Duration,
    /// Cap on any delay (`reconnect.maxDelayMs`, default 60 s).
    pub max_delay: Duration,
    /// Growth per attempt (`reconnect.multiplier`, default 2).
    pub multiplier: f64,
    /// Fraction of each delay drawn at random, 0..=1 (`reconnect.jitter`, default 0.5).
    pub jitter: f64,
    /// Give up after this many consecutive failed attempts; `None` = never
    /// (`reconnect.maxAttempts`, default Infinity).
    pub max_attempts: Option<u32>,
    /// The attempt counter resets only after a connection stayed open this
    /// long (`reconnect.resetAfterMs`, default 10 s).
    pub reset_after: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
            reset_after: Duration::from_secs(10),
        }
    }
}

/// Push-to-talk: what is kept while no utterance runs, and how long an
/// ended utterance may wait for its final transcripts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushToTalk {
    /// Audio kept from before `beginUtterance()`, so the first syllable is
    /// not cut (`pushToTalk.preRollMs`, default 300).
    pub pre_roll: Duration,
    /// `endUtterance()` resolves with what arrived, `timedOut: true`, when
    /// the finals do not cover the utterance by then
    /// (`pushToTalk.timeoutMs`, default 3000).
    pub timeout: Duration,
    /// `pushToTalk.connection: "onDemand"`: no connection is held between
    /// utterances (state `standby`); `beginUtterance()` opens one, with the
    /// utterance's audio queued meanwhile. Default `"warm"`: the connection
    /// stays open with keepalives, so an utterance starts with no handshake.
    pub on_demand: bool,
}

impl Default for PushToTalk {
    fn default() -> Self {
        PushToTalk {
            pre_roll: Duration::from_millis(300),
            timeout: Duration::from_secs(3),
            on_demand: false,
        }
    }
}

/// Everything a [`Session`](super::Session) needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Backend protocol (`provider`).
    pub provider: Provider,
    /// WebSocket URL, `ws://` or `wss://` (`url`).
    pub url: String,
    /// Extra WebSocket subprotocols (`protocols`).
    pub protocols: Vec<String>,
    /// A static credential (`token`); one from `getToken` replaces it.
    pub token: Option<Credential>,
    /// Whether the caller supplies a fresh token before every attempt
    /// (`getToken`): the session then emits [`Output::RequestToken`](super::Output::RequestToken).
    pub token_callback: bool,
    /// Language passed to the backend, if any (`language`).
    pub language: Option<String>,
    /// Target sample rate of the PCM16 stream (`sampleRate`, default 16000).
    pub sample_rate: u32,
    /// Audio channels, interleaved (`channels`, 1 or 2, default 1): with
    /// two, channel 0 is the microphone and 1 the system audio.
    pub channels: u16,
    /// Push-to-talk (`pushToTalk`): audio reaches the stream only between
    /// `beginUtterance()` and `endUtterance()`, plus the pre-roll.
    pub push_to_talk: Option<PushToTalk>,
    /// Chunk length (`chunkMs`, default 100).
    pub chunk_ms: u32,
    /// Reconnection policy (`reconnect`).
    pub reconnect: ReconnectConfig,
    /// Send the provider's keepalive after this long without audio
    /// (`keepalive.intervalMs`). `None`: derived from the stale threshold,
    /// see [`Config::keepalive_interval`].
    pub keepalive: Option<Duration>,
    /// Stale when no frame arrived for this long while the server is
    /// expected to speak (`watchdog.staleAfterMs`, default 25 s).
    pub stale_after: Duration,
    /// Stale when `bufferedAmount` did not drain for this long while audio
    /// flows (`watchdog.stallAfterMs`, default 10 s).
    pub stall_after: Duration,
    /// Queued audio older than this is dropped (`buffer.ttlMs`, default 30 s).
    pub ttl: Duration,
    /// Cap on queued audio bytes (`buffer.maxBytes`, default 960 000).
    pub max_bytes: usize,
    /// Backlog replay speed as a multiple of real time (`buffer.replayRate`, default 4).
    pub replay_rate: f64,
    /// An attempt that is not ready within this long fails (`connectTimeoutMs`, default 10 s).
    pub connect_timeout: Duration,
    /// Upper bound on a graceful close (`closeTimeoutMs`, default 5 s).
    pub close_timeout: Duration,
    /// Seed of the jitter RNG and the stream id.
    pub seed: u64,
}

impl Config {
    /// A configuration with every default, for `url` and `provider`.
    pub fn new(provider: Provider, url: impl Into<String>) -> Config {
        Config {
            provider,
            url: url.into(),
            protocols: Vec::new(),
            token: None,
            token_callback: false,
            language: None,
            sample_rate: 16_000,
            channels: 1,
            push_to_talk: None,
            chunk_ms: 100,
            reconnect: ReconnectConfig::default(),
            keepalive: None,
            stale_after: Duration::from_secs(25),
            stall_after: Duration::from_secs(10),
            ttl: Duration::from_secs(30),
            max_bytes: 960_000,
            replay_rate: 4.0,
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            seed: 0x5EED,
        }
    }

    /// The keepalive interval in force: `keepalive.intervalMs` when given,
    /// else `min(5 s, watchdog.staleAfterMs / 3)`, so a user who shortens
    /// the stale threshold gets keepalives that keep up with it.
    pub fn keepalive_interval(&self) -> Duration {
        let third = Duration::from_millis((self.stale_after.as_millis() / 3) as u64);
        self.keepalive
            .unwrap_or_else(|| DEFAULT_KEEPALIVE.min(third))
            .max(Duration::from_millis(1))
    }

    /// The audio on the wire, as a provider's URL parameters describe it.
    pub(crate) fn format(&self) -> Format {
        Format {
            sample_rate: self.sample_rate,
            channels: self.channels,
        }
    }

    /// Bytes of one full chunk of PCM16 (all channels) at the target rate.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_samples() * 2
    }

    /// Samples in one full chunk, all channels (whole frames).
    pub fn chunk_samples(&self) -> usize {
        (self.sample_rate as usize * self.chunk_ms as usize / 1000).max(1)
            * usize::from(self.channels.max(1))
    }

    /// PCM16 bytes per millisecond of audio (wall time, all channels).
    pub fn bytes_per_ms(&self) -> f64 {
        self.sample_rate as f64 * 2.0 * f64::from(self.channels.max(1)) / 1000.0
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|e| *e)
    }

    /// [`validate`](Self::validate) with the error boxed, so each `?` and
    /// early return moves one pointer rather than eight words.
    fn check(&self) -> Result<(), Box<ConfigError>> {
        validate_url(&self.url).map_err(Box::new)?;
        for p in &self.protocols {
            if !is_token(p) {
                return Err(ConfigError::new(
                    "protocols",
                    ["\"", &redact(p), "\""].concat(),
                    "WebSocket subprotocol tokens (letters, digits and !#$%&'*+-.^_`|~)",
                )
                .into());
            }
        }
        if let Some(t) = &self.token {
            if t.token.is_empty() {
                return Err(ConfigError::new("token", "\"\"", "a non-empty string").into());
            }
        }
        if !(8_000..=48_000).contains(&self.sample_rate) {
            return Err(ConfigError::new(
                "sampleRate",
                int(self.sample_rate.into()),
                "8000..=48000",
            )
            .into());
        }
        if !(1..=2).contains(&self.channels) {
            return Err(ConfigError::new(
                "channels",
                int(self.channels.into()),
                "1 or 2 (microphone, system audio)",
            )
            .into());
        }
        let max = self.provider.wire().max_channels();
        if self.channels > max {
            return Err(ConfigError::new(
                "channels",
                int(self.channels.into()),
                [
                    "at most ",
                    &int(max.into()),
                    " with provider \"",
                    self.provider.as_str(),
                    "\" (its endpoint transcribes one channel)",
                ]
                .concat(),
            )
            .into());
        }
        if let Some(p) = &self.push_to_talk {
            if p.pre_roll > Duration::from_secs(10) {
                return Err(
                    ConfigError::new("pushToTalk.preRollMs", ms(p.pre_roll), "0..=10000").into(),
                );
            }
            positive("pushToTalk.timeoutMs", p.timeout)?;
            if p.on_demand && self.provider.wire().flush().is_none() {
                // Without a flush, the last words of an utterance are only
                // confirmed by audio after it: closing the connection
                // between utterances would leave them unconfirmed.
                return Err(ConfigError::new(
                    "pushToTalk.connection",
                    "\"onDemand\"",
                    [
                        "\"warm\" with provider \"",
                        self.provider.as_str(),
                        "\" (it has no flush to finalize an utterance with)",
                    ]
                    .concat(),
                )
                .into());
            }
        }
        if !(10..=1000).contains(&self.chunk_ms) {
            return Err(ConfigError::new("chunkMs", int(self.chunk_ms.into()), "10..=1000").into());
        }
        let r = &self.reconnect;
        positive("reconnect.initialDelayMs", r.initial_delay)?;
        positive("reconnect.maxDelayMs", r.max_delay)?;
        if r.max_delay < r.initial_delay {
            return Err(ConfigError::new(
                "reconnect.maxDelayMs",
                ms(r.max_delay),
                [">= reconnect.initialDelayMs (", &ms(r.initial_delay), ")"].concat(),
            )
            .into());
        }
        if !(r.multiplier.is_finite() && (1.0..=10.0).contains(&r.multiplier)) {
            return Err(ConfigError::new(
                "reconnect.multiplier",
                num(r.multiplier),
                "a number in 1..=10",
            )
            .into());
        }
        if !(r.jitter.is_finite() && (0.0..=1.0).contains(&r.jitter)) {
            return Err(
                ConfigError::new("reconnect.jitter", num(r.jitter), "a number in 0..=1").into(),
            );
        }
        if r.max_attempts == Some(0) {
            return Err(ConfigError::new(
                "reconnect.maxAttempts",
                "0",
                "an integer >= 1 or Infinity",
            )
            .into());
        }
        positive("reconnect.resetAfterMs", r.reset_after)?;
        if let Some(k) = self.keepalive {
            positive("keepalive.intervalMs", k)?;
        }
        positive("watchdog.staleAfterMs", self.stale_after)?;
        positive("watchdog.stallAfterMs", self.stall_after)?;
        if let Some(k) = self.keepalive.filter(|k| *k >= self.stale_after) {
            // Both were set by the user (the derived interval always fits):
            // a server that answers only keepalives would look dead before
            // the next keepalive went out.
            return Err(ConfigError::new(
                "keepalive.intervalMs",
                ms(k),
                [
                    "< watchdog.staleAfterMs (",
                    &ms(self.stale_after),
                    "): lower keepalive.intervalMs or raise watchdog.staleAfterMs",
                ]
                .concat(),
            )
            .into());
        }
        positive("buffer.ttlMs", self.ttl)?;
        if self.max_bytes < self.chunk_bytes() {
            return Err(ConfigError::new(
                "buffer.maxBytes",
                int(self.max_bytes as u64),
                [
                    ">= one chunk (",
                    &int(self.chunk_bytes() as u64),
                    " bytes at ",
                    &int(self.sample_rate.into()),
                    " Hz, ",
                    &int(self.chunk_ms.into()),
                    " ms)",
                ]
                .concat(),
            )
            .into());
        }
        if !(self.replay_rate.is_finite() && (1.0..=100.0).contains(&self.replay_rate)) {
            return Err(ConfigError::new(
                "buffer.replayRate",
                num(self.replay_rate),
                "a number in 1..=100",
            )
            .into());
        }
        positive("connectTimeoutMs", self.connect_timeout)?;
        positive("closeTimeoutMs", self.close_timeout)?;
        Ok(())
    }
}

/// Milliseconds of `d`, as text.
fn ms(d: Duration) -> String {
    int(d.as_millis() as u64)
}

fn positive(field: &'static str, d: Duration) -> Result<(), Box<ConfigError>> {
    if d.is_zero() {
        return Err(ConfigError::new(field, "0", "a positive number of milliseconds").into());
    }
    Ok(())
}

/// Shows the first characters of a possibly secret value, never all of it.
pub(crate) fn redact(s: &str) -> String {
    if s.len() <= 4 {
        return s.to_string();
    }
    let mut head: String = s.chars().take(3).collect();
    head.push('…');
    head
}

/// Checks a WebSocket URL: `ws://` or `wss://`, a host, no fragment, no spaces.
pub fn validate_url(url: &str) -> Result<(), ConfigError> {
    let bad = |expected: &str| {
        Err(ConfigError::new(
            "url",
            ["\"", &redact_url(url), "\""].concat(),
            expected,
        ))
    };
    let rest = if let Some(r) = url.strip_prefix("wss://") {
        r
    } else if let Some(r) = url.strip_prefix("ws://") {
        r
    } else {
        return bad("a ws:// or wss:// URL");
    };
    let (authority, _) = split_at_any(rest, b"/?");
    let host = after_last(authority, b'@');
    if host.is_empty() || host.starts_with(':') {
        return bad("a URL with a host");
    }
    if url.bytes().any(|b| b == b'#') {
        return bad("a URL without a #fragment");
    }
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return bad("a URL without spaces or control characters");
    }
    if let Some((_, port)) = host.rsplit_once(':') {
        if !host.ends_with(']') && port.parse::<u16>().is_err() {
            return bad("a URL whose port is a number in 0..=65535");
        }
    }
    Ok(())
}

/// What follows the last `sep` in `s` (all of `s` without one), found by
/// byte: `sep` is ASCII, so the cut is at a character boundary.
fn after_last(s: &str, sep: u8) -> &str {
    match s.bytes().rposition(|b| b == sep) {
        Some(i) => s.get(i + 1..).unwrap_or(""),
        None => s,
    }
}

/// A URL safe to print: credentials (`user:pass@`), the query string and
/// the fragment (either may hold a token) are cut.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.as_bytes().windows(3).position(|w| w == b"://") {
        Some(i) => (url.get(..i).unwrap_or(""), url.get(i + 3..).unwrap_or("")),
        None => ("", url),
    };
    let (head, query) = split_at_any(rest, b"?#");
    let (authority, path) = split_at_any(head, b"/");
    let host = after_last(authority, b'@');
    [
        scheme,
        if scheme.is_empty() { "" } else { "://" },
        if host.len() < authority.len() {
            "…@"
        } else {
            ""
        },
        host,
        path,
        if query.is_empty() { "" } else { "…" },
    ]
    .concat()
}

/// `s` cut before its first byte in `set` (all of `s` and `""` without
/// one). By byte rather than with a `str` pattern, whose searchers cost ~1 KB
/// of WASM: the bytes in `set` are ASCII, so the cut is at a character
/// boundary.
fn split_at_any<'a>(s: &'a str, set: &[u8]) -> (&'a str, &'a str) {
    let i = s.bytes().position(|b| set.contains(&b)).unwrap_or(s.len());
    (s.get(..i).unwrap_or(s), s.get(i..).unwrap_or(""))
}
#[cfg(test)]
mod tests;
