//! Errors of the core. A lost connection is never an error here: it is an
//! [`Event`](super::Event). These types mean the caller did something wrong.

use std::fmt;

/// An invalid configuration value. Names the field and the value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The option's name as the JavaScript API spells it, e.g. `reconnect.maxDelayMs`.
    pub field: &'static str,
    /// The rejected value, rendered for a person.
    pub value: String,
    /// What would have been valid.
    pub expected: String,
}

impl ConfigError {
    pub(crate) fn new(
        field: &'static str,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError {
            field,
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// The message, as [`Display`](fmt::Display) writes it, built without
    /// the formatting machinery (for the WebAssembly build).
    pub fn message(&self) -> String {
        [
            "invalid option `",
            self.field,
            "`: got ",
            &self.value,
            ", expected ",
            &self.expected,
        ]
        .concat()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ConfigError {}

/// A call the session cannot honour in its current state: a caller bug,
/// never a network condition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// `connect` was called on a session that is already connecting or
    /// connected. Not fatal: the session carries on.
    AlreadyConnected,
    /// `connect` was called after `close` or after a fatal failure. Create a
    /// new session instead.
    Closed,
    /// A token arrived although none was requested. Ignored.
    UnexpectedToken,
    /// `beginUtterance()` while an utterance runs: end it first.
    UtteranceActive,
    /// `endUtterance()` with no utterance begun.
    NoUtterance,
}

impl UsageError {
    /// What went wrong, for a person.
    pub fn as_str(&self) -> &'static str {
        match self {
            UsageError::AlreadyConnected => "connect() was already called on this client",
            UsageError::Closed => "the client is closed; create a new one to connect again",
            UsageError::UnexpectedToken => "a token arrived although none was requested",
            UsageError::UtteranceActive => {
                "beginUtterance() while an utterance runs; call endUtterance() first"
            }
            UsageError::NoUtterance => "endUtterance() without beginUtterance()",
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for UsageError {}
