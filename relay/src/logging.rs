//! Structured logs on stderr with `tracing`.
//!
//! What is never logged, anywhere in the crate: tokens, the provider
//! credential, the JWT secret, query strings (they can carry a token) and
//! the upstream URL beyond scheme, host and path. Sessions log their peer,
//! path, token subject, close code and byte counts.

use tracing_subscriber::fmt;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable `key=value` lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Sessions, rejections and lifecycle (default).
    #[default]
    Info,
    /// Per-frame detail is never logged; this adds handshake detail.
    Debug,
}

/// Installs the global subscriber (once; later calls are no-ops, so tests
/// and embedders may call it freely).
pub fn init(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    let builder = fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
