//! The sans-IO core: pure Rust, no browser, no clock, no timers, no
//! randomness of its own. Fed [`Input`]s that carry `now`, drained of
//! [`Output`]s. Builds and tests natively with `cargo test`.
#![forbid(unsafe_code)]

/// The audio path (the `resilient-audio` crate).
pub use resilient_audio as audio;
mod backoff;
mod clock;
mod config;
pub mod diagnostics;
mod error;
mod event;
mod io;
pub mod json;
pub mod options;
pub mod payload;
mod protocol;
mod queue;
mod rng;
mod session;
mod text;
mod time;
mod timer;
mod watchdog;

pub use backoff::Backoff;
pub use clock::{Clock, SLEEP_THRESHOLD};
pub use config::{redact_url, validate_url, Config, Provider, PushToTalk, ReconnectConfig};
pub use error::{ConfigError, UsageError};
pub use event::{
    DropReason, Dropped, ErrorCode, Event, State, StateChange, Stats, Transcript, UtteranceResult,
    Word,
};
pub use io::{Credential, Frame, Input, Output, SocketId, TokenRequest, TokenScheme};
pub use queue::{AudioQueue, Chunk};
pub use rng::Rng;
pub use session::{Session, CLOSE_STALE};
pub(crate) use text::num;
pub use time::Instant;
pub use watchdog::{Expectation, Stale, Watchdog};
