//! The core's notion of time: a millisecond instant supplied by the caller.
//!
//! The core never reads a clock. The browser shell passes wall-clock
//! milliseconds (`Date.now()`), so a laptop that slept or a frozen tab shows
//! up as a jump in `now` and the watchdog sees it on the very next input.

use core::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in milliseconds since an arbitrary epoch chosen by the
/// caller. Only differences between instants carry meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// An instant `ms` milliseconds after the caller's epoch.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms)
    }

    /// Milliseconds since the caller's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}
