//! Structured logs on stderr with `tracing`.
//!
//! What is never logged, anywhere in the crate: tokens, the provider
//! credential, the JWT secret, query strings (they can carry a token) and
//! the upstream URL beyond scheme, host and path. Sessions log their peer,
//! path, token subject, close code and byte counts.

use tracing_subscriber::fmt;

use crate::cli::{LogFormat, LogLevel};

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
