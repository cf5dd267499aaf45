//! The relay's configuration: every setting, its default and its bounds, and
//! the one place they are checked.
//!
//! Settings come from flags or environment variables (`cli::ServeArgs`);
//! secrets come from the environment or files only, never from flags, so
//! they do not show up in `ps` or shell history. [`Config::validate`] runs
//! before anything is bound, and its errors name the flag, the variable and
//! the value, except for secrets, of which only the length is shown.

pub use crate::tls::TlsFiles;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A secret value (JWT key, provider credential). Its `Debug` shows only its
/// length, so a config can be logged or printed in a panic safely.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes (what error messages show instead of it).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// How clients prove they may use the relay.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HS256 tokens signed by the app's backend (the default).
    Jwt(JwtConfig),
    /// Anyone may connect (`--insecure-no-auth`): local development only.
    InsecureNoAuth,
}

/// What a client token must satisfy.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// The current HMAC key, then optionally the previous one (rotation).
    pub secrets: Vec<Secret>,
    /// The required `aud` claim.
    pub audience: String,
    /// The required `iss` claim, if any.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Limits, each closing with a documented code when hit.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent sessions in this process (1013 `relay at capacity`).
    pub max_connections: usize,
    /// Concurrent sessions per token subject in this process (1013
    /// `too many connections for this subject`).
    pub max_connections_per_subject: usize,
    /// Longest session (1013 `session time limit`).
    pub max_session: Duration,
    /// Largest client message or frame (1009 `message too big`).
    pub max_message_bytes: usize,
    /// Longest time without any frame from the client (1013 `idle timeout`).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1000,
            max_connections_per_subject: 4,
            max_session: Duration::from_secs(4 * 3600),
            max_message_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Bounds on waiting.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// TLS handshake plus the HTTP upgrade request (slow-loris guard).
    pub handshake: Duration,
    /// Opening the upstream (TCP, TLS, WebSocket handshake).
    pub upstream_connect: Duration,
    /// The closing handshake of one side.
    pub close: Duration,
    /// After SIGTERM: how long sessions get to finish their 1012 closes.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(10),
            upstream_connect: Duration::from_secs(10),
            close: Duration::from_secs(5),
            drain: Duration::from_secs(10),
        }
    }
}

/// A complete relay configuration. Build one with [`Config::new`] (tests,
/// embedding) or from flags and environment with
/// [`crate::cli::ServeArgs::to_config`]; [`crate::Relay::bind`] validates it.
#[derive(Clone, Debug)]
pub struct Config {
    /// `IP:PORT` to listen on (port 0 picks one).
    pub listen: String,
    /// `ws://` or `wss://` base URL; the client's path and query are appended.
    pub upstream: String,
    /// The `Authorization` value sent upstream (`RELAY_AUTH_HEADER`, or
    /// `Token K` from `DEEPGRAM_API_KEY`).
    pub upstream_auth: Option<Secret>,
    /// Client authentication.
    pub auth: ClientAuth,
    /// Exact origins allowed to connect (empty: any).
    pub allow_origins: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// TLS termination, if the relay does it itself.
    pub tls: Option<TlsFiles>,
    /// A separate `IP:PORT` for `/metrics` (else it is on `listen`).
    pub metrics_listen: Option<String>,
}

impl Config {
    /// A configuration with every default, for `upstream`, authenticating
    /// clients with `auth`.
    pub fn new(listen: &str, upstream: &str, auth: ClientAuth) -> Config {
        Config {
            listen: listen.to_string(),
            upstream: upstream.to_string(),
            upstream_auth: None,
            auth,
            allow_origins: Vec::new(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            tls: None,
            metrics_listen: None,
        }
    }

    /// Checks every setting; the error names the flag, its environment
    /// variable and the offending value (only the length of a secret).
    pub fn validate(&self) -> Result<(), ConfigError> {
        parse_addr(&self.listen, "--listen", "RELAY_LISTEN")?;
        check_upstream(&self.upstream)?;
        if let Some(a) = &self.upstream_auth {
            if a.is_empty() || http::HeaderValue::from_str(a.expose()).is_err() {
                return Err(ConfigError::new(format!(
                    "RELAY_AUTH_HEADER / DEEPGRAM_API_KEY: not a valid HTTP header value (a secret of {} bytes)",
                    a.len()
                )));
            }
        }
        match &self.auth {
            ClientAuth::InsecureNoAuth => {}
            ClientAuth::Jwt(j) => {
                if j.secrets.is_empty() {
                    return Err(ConfigError::new(
                        "client authentication needs a token secret: set RELAY_JWT_SECRET or \
                         --jwt-secret-file (RELAY_JWT_SECRET_FILE), or pass --insecure-no-auth \
                         for local development",
                    ));
                }
                for (i, s) in j.secrets.iter().enumerate() {
                    let name = if i == 0 {
                        "RELAY_JWT_SECRET"
                    } else {
                        "RELAY_JWT_SECRET_PREVIOUS"
                    };
                    if s.len() < MIN_SECRET_BYTES {
                        return Err(ConfigError::new(format!(
                            "{name}: must be at least {MIN_SECRET_BYTES} bytes, got a secret of {} bytes",
                            s.len()
                        )));
                    }
                }
                if j.audience.trim().is_empty() {
                    return Err(ConfigError::new(
                        "--audience (RELAY_AUDIENCE): required with client authentication, \
                         e.g. --audience resilient-relay",
                    ));
                }
                check_range(
                    "--token-leeway",
                    "RELAY_TOKEN_LEEWAY",
                    j.leeway,
                    Duration::ZERO,
                    Duration::from_secs(300),
                )?;
            }
        }
        for o in &self.allow_origins {
            check_origin(o)?;
        }
        let l = &self.limits;
        check_count(
            "--max-connections",
            "RELAY_MAX_CONNECTIONS",
            l.max_connections,
            1,
            1_000_000,
        )?;
        check_count(
            "--max-connections-per-subject",
            "RELAY_MAX_CONNECTIONS_PER_SUBJECT",
            l.max_connections_per_subject,
            1,
            1_000_000,
        )?;
        check_range(
            "--max-session",
            "RELAY_MAX_SESSION",
            l.max_session,
            Duration::from_secs(1),
            Duration::from_secs(7 * 86_400),
        )?;
        check_count(
            "--max-message-bytes",
            "RELAY_MAX_MESSAGE_BYTES",
            l.max_message_bytes,
            1024,
            64 << 20,
        )?;
        check_range(
            "--idle-timeout",
            "RELAY_IDLE_TIMEOUT",
            l.idle_timeout,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        let t = &self.timeouts;
        let (lo, hi) = (Duration::from_millis(100), Duration::from_secs(60));
        check_range(
            "--handshake-timeout",
            "RELAY_HANDSHAKE_TIMEOUT",
            t.handshake,
            lo,
            hi,
        )?;
        check_range(
            "--upstream-connect-timeout",
            "RELAY_UPSTREAM_CONNECT_TIMEOUT",
            t.upstream_connect,
            lo,
            hi,
        )?;
        check_range("--close-timeout", "RELAY_CLOSE_TIMEOUT", t.close, lo, hi)?;
        check_range(
            "--drain-timeout",
            "RELAY_DRAIN_TIMEOUT",
            t.drain,
            lo,
            Duration::from_secs(600),
        )?;
        if let Some(m) = &self.metrics_listen {
            parse_addr(m, "--metrics-listen", "RELAY_METRICS_LISTEN")?;
        }
        if let Some(tls) = &self.tls {
            crate::tls::load(tls).map_err(ConfigError::new)?;
        }
        Ok(())
    }
}

/// HS256 keys shorter than the hash (32 bytes) weaken it (RFC 7518 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// A configuration mistake, reported at start. The message names the flag,
/// its environment variable and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(msg: impl Into<String>) -> ConfigError {
        ConfigError(msg.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse_addr(v: &str, flag: &str, env: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        ConfigError::new(format!(
            "{flag} ({env}): expected IP:PORT such as 127.0.0.1:8788 or [::]:8788, got {v:?}"
        ))
    })
}

fn check_upstream(u: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(format!(
            "--upstream (RELAY_UPSTREAM): {why}, got {:?}",
            // The value is shown without anything after '?' or '@', which
            // could carry a credential.
            redact_url(u)
        ))
    };
    if u.is_empty() {
        return Err(ConfigError::new(
            "--upstream (RELAY_UPSTREAM): required, e.g. --upstream wss://api.deepgram.com",
        ));
    }
    if !(u.starts_with("ws://") || u.starts_with("wss://")) {
        return Err(bad("must start with ws:// or wss://"));
    }
    let uri: http::Uri = u.parse().map_err(|_| bad("not a valid URL"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if uri.query().is_some() {
        return Err(bad(
            "must not have a query (the client's path and query are appended to it)",
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "must not carry credentials (set RELAY_AUTH_HEADER or DEEPGRAM_API_KEY)",
        ));
    }
    Ok(())
}

/// `scheme://host[:port]` of a URL, for messages and logs.
pub(crate) fn redact_url(u: &str) -> String {
    let cut = u.find(['?', '#']).unwrap_or(u.len());
    let u = &u[..cut];
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &u[..s], &u[at + 1..]),
        _ => u.to_string(),
    }
}

fn check_origin(o: &str) -> Result<(), ConfigError> {
    let bad = || {
        ConfigError::new(format!(
            "--allow-origin (RELAY_ALLOW_ORIGINS): an origin is scheme://host[:port] with no \
             path or trailing slash, e.g. https://app.example.com; got {o:?}"
        ))
    };
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
        || o != o.to_ascii_lowercase()
    {
        return Err(bad());
    }
    Ok(())
}

fn check_count(flag: &str, env: &str, v: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::new(format!(
            "{flag} ({env}): must be between {lo} and {hi}, got {v}"
        )));
    }
    Ok(())
}

fn check_range(
    flag: &str,
    env: &str,
    v: Duration,
    lo: Duration,
    hi: Duration,
) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::new(format!(
            "{flag} ({env}): must be between {} and {}, got {}",
            format_duration(lo),
            format_duration(hi),
            format_duration(v)
        )));
    }
    Ok(())
}

/// Parses `250ms`, `30s`, `5m`, `4h` or `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("expected a duration such as 250ms, 30s, 5m or 4h, got {s:?}"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => {
            return Err(format!(
                "unknown unit in {s:?}: use ms, s, m, h or d (250ms, 30s, 5m, 4h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The shortest exact form of `d` among ms, s, m, h.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s == 0 {
        "0s".into()
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> ClientAuth {
        ClientAuth::Jwt(JwtConfig {
            secrets: vec![Secret::new("k".repeat(32))],
            audience: "relay".into(),
            issuer: None,
            leeway: Duration::from_secs(30),
        })
    }

    fn err(c: &Config) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn durations_parse_with_units_and_print_back() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(14_400)));
        assert!(parse_duration("4x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(format_duration(Duration::from_secs(14_400)), "4h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn defaults_are_valid() {
        Config::new("127.0.0.1:0", "wss://api.deepgram.com", jwt())
            .validate()
            .unwrap();
    }

    #[test]
    fn errors_name_the_flag_the_variable_and_the_value() {
        let mut c = Config::new("localhost", "wss://x", jwt());
        assert_eq!(
            err(&c),
            "--listen (RELAY_LISTEN): expected IP:PORT such as 127.0.0.1:8788 or [::]:8788, got \"localhost\""
        );
        c.listen = "127.0.0.1:0".into();
        c.limits.max_connections = 0;
        assert_eq!(
            err(&c),
            "--max-connections (RELAY_MAX_CONNECTIONS): must be between 1 and 1000000, got 0"
        );
        c.limits.max_connections = 10;
        c.limits.max_connections_per_subject = 0;
        assert!(err(&c).starts_with("--max-connections-per-subject"));
        c.limits.max_connections_per_subject = 2;
        c.limits.idle_timeout = Duration::from_secs(7200);
        assert_eq!(
            err(&c),
            "--idle-timeout (RELAY_IDLE_TIMEOUT): must be between 100ms and 1h, got 2h"
        );
        c.limits.idle_timeout = Duration::from_secs(60);
        c.allow_origins = vec!["https://app.example.com/".into()];
        assert!(err(&c).contains("\"https://app.example.com/\""));
    }

    #[test]
    fn upstream_must_be_a_websocket_url_without_query_or_userinfo() {
        let mut c = Config::new("127.0.0.1:0", "http://example.com", jwt());
        assert!(err(&c).contains("must start with ws:// or wss://"));
        c.upstream = "wss://api.example.com?key=SECRETKEY".into();
        let e = err(&c);
        assert!(e.contains("must not have a query"), "{e}");
        assert!(!e.contains("SECRETKEY"), "{e}");
        c.upstream = "wss://user:SECRETPW@api.example.com".into();
        let e = err(&c);
        assert!(e.contains("must not carry credentials"), "{e}");
        assert!(!e.contains("SECRETPW"), "{e}");
        c.upstream = String::new();
        assert!(err(&c).contains("required"));
    }

    #[test]
    fn secrets_are_never_printed_only_their_length() {
        let mut c = Config::new(
            "127.0.0.1:0",
            "wss://x",
            ClientAuth::Jwt(JwtConfig {
                secrets: vec![Secret::new("short-secret")],
                audience: "a".into(),
                issuer: None,
                leeway: Duration::ZERO,
            }),
        );
        let e = err(&c);
        assert_eq!(
            e,
            "RELAY_JWT_SECRET: must be at least 32 bytes, got a secret of 12 bytes"
        );
        c.auth = jwt();
        c.upstream_auth = Some(Secret::new("Token bad\nkey"));
        let e = err(&c);
        assert!(
            e.contains("a secret of 13 bytes") && !e.contains("bad"),
            "{e}"
        );
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(<7 bytes>)");
    }

    #[test]
    fn authentication_is_required_unless_explicitly_disabled() {
        let c = Config::new(
            "127.0.0.1:0",
            "wss://x",
            ClientAuth::Jwt(JwtConfig {
                secrets: vec![],
                audience: "a".into(),
                issuer: None,
                leeway: Duration::ZERO,
            }),
        );
        assert!(err(&c).contains("--insecure-no-auth"));
        Config::new("127.0.0.1:0", "wss://x", ClientAuth::InsecureNoAuth)
            .validate()
            .unwrap();
    }
}
