//! Scenario harness: one [`Session`] on a virtual clock, a scripted
//! [`FakeServer`] for one provider, and a microphone that pushes audio whose
//! samples encode their own position in the stream.
//!
//! Modelled on quinn-proto's `tests/util.rs` `Pair`: [`Harness::step`]
//! advances the clock to the earlier of the session's `Output::Timeout`
//! deadline, the next scripted action (server reply, fault, client input) and
//! the next microphone push, does that one thing, and drains the session.
//! Hours of simulated outage run in milliseconds.
//!
//! After every drain the harness checks the invariants every scenario relies
//! on (and panics with the recent trace when one breaks):
//! - `bytes_pushed == bytes_sent + bytes_queued + bytes_dropped`;
//! - the bytes of all `Dropped` events sum to `stats.bytes_dropped`;
//! - `queued_bytes() <= buffer.maxBytes`;
//! - the `Timeout` deadline is never in the past;
//! - once `closed`/`failed`, the state never changes again, and `closed` is
//!   the last event (only audio pushed afterwards is reported after it);
//! - time makes progress (no busy loop at one instant).
//!
//! The parts, each in its own file:
//! - `audio.rs`: self-describing audio ([`sample_at`], [`decode_frame`],
//!   [`named_ranges`]);
//! - `server/`: the [`FakeServer`] and its [`Fault`]s, the cadence of
//!   results, and one file per provider for what only that provider does;
//! - `mic.rs`: the [`Mic`];
//! - `harness.rs`: the [`Harness`], what travels to the session
//!   ([`Deliver`]) and what it sent ([`Sent`]).
//!
//! [`Session`]: resilient_transcriber::core::Session
#![allow(dead_code)]

mod audio;
mod harness;
mod mic;
mod server;

// Every test binary compiles this module and uses a different part of it.
#[allow(unused_imports)]
pub use {audio::*, harness::*, mic::*, server::*};

use std::time::Duration;

use resilient_transcriber::core::Instant;

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An instant `n` ms after the epoch.
pub fn t(n: u64) -> Instant {
    Instant::from_millis(n)
}
