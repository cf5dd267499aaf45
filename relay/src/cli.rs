//! Command line: `resilient-relay [OPTIONS]` runs the relay,
//! `resilient-relay mint ...` prints a client token. Every option also has
//! an environment variable; secrets have only variables or files.
//!
//! The devserver embeds [`ServeArgs`] for its thin `devserver relay`
//! command, so both spell the options identically.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::logging::{LogFormat, LogLevel};

use crate::config::{
    parse_duration, ClientAuth, Config, ConfigError, JwtConfig, Limits, Secret, Timeouts, TlsFiles,
};

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Options of the relay itself. See relay/README.md for the table.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free one).
    #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:8788")]
    pub listen: String,
    /// Upstream base URL (ws:// or wss://); the client's path and query,
    /// minus its token, are appended.
    #[arg(long, env = "RELAY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,
    /// Required `aud` claim of client tokens.
    #[arg(long, env = "RELAY_AUDIENCE")]
    pub audience: Option<String>,
    /// Required `iss` claim of client tokens (unchecked if unset).
    #[arg(long, env = "RELAY_ISSUER")]
    pub issuer: Option<String>,
    /// File holding the HS256 token secret (instead of RELAY_JWT_SECRET).
    #[arg(long, env = "RELAY_JWT_SECRET_FILE", value_name = "PATH")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Clock skew allowed on a token's exp and nbf.
    #[arg(long, env = "RELAY_TOKEN_LEEWAY", default_value = "30s", value_parser = duration)]
    pub token_leeway: Duration,
    /// Accept clients without a token. Local development only: anyone who
    /// reaches the relay spends the upstream credential.
    #[arg(long, env = "RELAY_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// An origin allowed to connect (repeatable, or comma-separated in the
    /// variable). Unset: any origin.
    #[arg(
        long = "allow-origin",
        env = "RELAY_ALLOW_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allow_origins: Vec<String>,
    /// Concurrent sessions in this process.
    #[arg(
        long,
        env = "RELAY_MAX_CONNECTIONS",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub max_connections: usize,
    /// Concurrent sessions per token subject in this process.
    #[arg(
        long,
        env = "RELAY_MAX_CONNECTIONS_PER_SUBJECT",
        default_value_t = 4,
        value_name = "N"
    )]
    pub max_connections_per_subject: usize,
    /// Longest session.
    #[arg(long, env = "RELAY_MAX_SESSION", default_value = "4h", value_parser = duration)]
    pub max_session: Duration,
    /// Largest client message.
    #[arg(long, env = "RELAY_MAX_MESSAGE_BYTES", default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// Longest time without a frame from the client.
    #[arg(long, env = "RELAY_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// TLS handshake plus upgrade request.
    #[arg(long, env = "RELAY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub handshake_timeout: Duration,
    /// Opening the upstream.
    #[arg(long, env = "RELAY_UPSTREAM_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub upstream_connect_timeout: Duration,
    /// Closing handshake of one side.
    #[arg(long, env = "RELAY_CLOSE_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub close_timeout: Duration,
    /// After SIGTERM, how long sessions get to finish their 1012 closes.
    #[arg(long, env = "RELAY_DRAIN_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// PEM certificate chain: terminate TLS here (with --tls-key).
    #[arg(long, env = "RELAY_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "RELAY_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Serve /metrics on this IP:PORT instead of the main listener.
    #[arg(long, env = "RELAY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log format.
    #[arg(long, env = "RELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level.
    #[arg(long, env = "RELAY_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

impl ServeArgs {
    /// The configuration these options describe, with secrets read from
    /// `env` (`RELAY_JWT_SECRET`, `RELAY_JWT_SECRET_PREVIOUS`,
    /// `RELAY_AUTH_HEADER`, `DEEPGRAM_API_KEY`) and files. Validated.
    pub fn to_config(&self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let upstream_auth = var("RELAY_AUTH_HEADER")
            .or_else(|| var("DEEPGRAM_API_KEY").map(|k| format!("Token {k}")))
            .map(Secret::new);
        let mut secrets = Vec::new();
        let from_env = var("RELAY_JWT_SECRET");
        match (&self.jwt_secret_file, from_env) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "RELAY_JWT_SECRET and --jwt-secret-file (RELAY_JWT_SECRET_FILE) are both set: keep one",
                ))
            }
            (Some(path), None) => {
                let s = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!(
                        "--jwt-secret-file (RELAY_JWT_SECRET_FILE): cannot read {}: {}",
                        path.display(),
                        e.kind()
                    ))
                })?;
                secrets.push(Secret::new(s.trim()));
            }
            (None, Some(s)) => secrets.push(Secret::new(s)),
            (None, None) => {}
        }
        if let Some(prev) = var("RELAY_JWT_SECRET_PREVIOUS") {
            secrets.push(Secret::new(prev));
        }
        let auth = if self.insecure_no_auth {
            if !secrets.is_empty() || self.audience.is_some() {
                return Err(ConfigError::new(
                    "--insecure-no-auth (RELAY_INSECURE_NO_AUTH) disables client tokens, but a token \
                     secret or --audience is set too: drop one or the other",
                ));
            }
            ClientAuth::InsecureNoAuth
        } else {
            ClientAuth::Jwt(JwtConfig {
                secrets,
                audience: self.audience.clone().unwrap_or_default(),
                issuer: self.issuer.clone(),
                leeway: self.token_leeway,
            })
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => {
                return Err(ConfigError::new(
                    "--tls-cert (RELAY_TLS_CERT) and --tls-key (RELAY_TLS_KEY) go together: set both or neither",
                ))
            }
        };
        let config = Config {
            listen: self.listen.clone(),
            upstream: self.upstream.clone().unwrap_or_default(),
            upstream_auth,
            auth,
            allow_origins: self.allow_origins.clone(),
            limits: Limits {
                max_connections: self.max_connections,
                max_connections_per_subject: self.max_connections_per_subject,
                max_session: self.max_session,
                max_message_bytes: self.max_message_bytes,
                idle_timeout: self.idle_timeout,
            },
            timeouts: Timeouts {
                handshake: self.handshake_timeout,
                upstream_connect: self.upstream_connect_timeout,
                close: self.close_timeout,
                drain: self.drain_timeout,
            },
            tls,
            metrics_listen: self.metrics_listen.clone(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// Options of `resilient-relay mint`.
#[derive(Clone, Debug, clap::Args)]
pub struct MintArgs {
    /// The token secret. Prefer RELAY_JWT_SECRET: a flag shows in `ps`.
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
    /// The subject (`sub`): who the token is for; limits count per subject.
    #[arg(long)]
    pub sub: String,
    /// The audience (`aud`), as the relay's --audience.
    #[arg(long)]
    pub aud: String,
    /// The issuer (`iss`), if the relay checks one.
    #[arg(long)]
    pub iss: Option<String>,
    /// Lifetime: exp = now + ttl. Keep it short; the client fetches a
    /// fresh token before every reconnect.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub ttl: Duration,
}

/// Prints a token for `args` on stdout.
pub fn mint(args: &MintArgs, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    let secret = args
        .secret
        .clone()
        .or_else(|| env("RELAY_JWT_SECRET"))
        .ok_or("mint: give the secret in RELAY_JWT_SECRET (or --secret)")?;
    if secret.len() < crate::config::MIN_SECRET_BYTES {
        return Err(format!(
            "mint: the secret must be at least {} bytes, got {}",
            crate::config::MIN_SECRET_BYTES,
            secret.len()
        ));
    }
    let token = crate::auth::mint(
        secret.as_bytes(),
        &args.sub,
        &args.aud,
        args.iss.as_deref(),
        args.ttl,
    )
    .map_err(|e| format!("mint: {e}"))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{token}");
    Ok(())
}

/// Runs the relay with `args` until SIGTERM or SIGINT has drained it: the
/// whole `resilient-relay` (and `devserver relay`) command. Prints exactly
/// one line to stdout, `resilient-relay listening on ws://ADDR` (wss://
/// with TLS), then logs to stderr.
pub async fn serve(args: &ServeArgs) -> Result<(), String> {
    crate::logging::init(args.log_format, args.log_level);
    let config = args
        .to_config(|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    let tls = config.tls.is_some();
    let relay = crate::Relay::bind(config)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        let scheme = if tls { "wss" } else { "ws" };
        let _ = writeln!(
            out,
            "resilient-relay listening on {scheme}://{}",
            relay.local_addr()
        );
        if let Some(m) = relay.metrics_addr() {
            let _ = writeln!(out, "resilient-relay metrics on http://{m}/metrics");
        }
        let _ = out.flush();
    }
    let drain = relay.drain_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: draining (a second signal exits at once)");
        drain.drain();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without waiting for the drain");
        std::process::exit(1);
    });
    let summary = relay.run().await;
    if summary.abandoned > 0 {
        tracing::warn!(
            abandoned = summary.abandoned,
            "drain timeout: sessions still open at exit"
        );
    }
    tracing::info!(drained = summary.drained, "relay stopped");
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
