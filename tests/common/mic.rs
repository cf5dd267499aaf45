//! The microphone: audio pushed at the capture period, positions counting up.

use std::time::Duration;

use resilient_transcriber::core::Instant;

use super::audio::RATE;

/// Pushes `every` worth of audio every `every`, positions counting up.
#[derive(Debug, Clone)]
pub struct Mic {
    /// Capturing.
    pub on: bool,
    /// Push period (the capture block).
    pub every: Duration,
    /// Next push.
    pub next_at: Instant,
    /// Samples pushed so far (the next sample's position).
    pub pos: u64,
    /// Interleaved channels: a push holds this many samples per frame.
    pub channels: u64,
}

impl Mic {
    pub(super) fn samples_per_push(&self) -> u64 {
        RATE * self.channels * self.every.as_millis() as u64 / 1000
    }
}
