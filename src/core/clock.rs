//! The browser's two clocks, turned into the session's `now`.
//!
//! Deadlines must ride on a monotonic clock (`performance.now()`): if they
//! rode on the wall clock (`Date.now()`), a clock stepped back by NTP or by
//! the user would freeze session time and stall every timer by the size of
//! the step. The wall clock still has one use: a suspended machine stops
//! the monotonic clock but not the wall clock, so a wall clock that ran far
//! ahead of the monotonic one between two observations means the machine
//! slept, which the session must hear about ([`Input::Slept`](super::Input::Slept)).

use std::time::Duration;

use super::time::Instant;

/// A wall clock ahead of the monotonic clock by at least this much between
/// two observations is a sleep (NTP slews by milliseconds, not seconds).
pub const SLEEP_THRESHOLD: Duration = Duration::from_secs(5);

/// Observes both clocks on every event the shell feeds the session.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    last: Option<(f64, f64)>,
}

impl Clock {
    /// A clock that has seen nothing yet.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// Observes `mono_ms` (`performance.now()`) and `wall_ms`
    /// (`Date.now()`), read together. Returns the session's `now`, from the
    /// monotonic clock only, and how long the machine slept since the last
    /// observation, if it did.
    pub fn observe(&mut self, mono_ms: f64, wall_ms: f64) -> (Instant, Option<Duration>) {
        let now = Instant::from_millis(mono_ms.max(0.0) as u64);
        let slept = self.last.and_then(|(mono0, wall0)| {
            let ahead = (wall_ms - wall0) - (mono_ms - mono0);
            (ahead >= SLEEP_THRESHOLD.as_millis() as f64)
                .then(|| Duration::from_millis(ahead as u64))
        });
        self.last = Some((mono_ms, wall_ms));
        (now, slept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before: deadlines rode on `Date.now()`; a clock stepped back an hour
    /// froze session time (the core ignores a `now` older than the last)
    /// and every timer stalled for that hour.
    #[test]
    fn a_wall_clock_stepped_back_neither_stalls_time_nor_looks_like_sleep() {
        let mut c = Clock::new();
        let (t0, s0) = c.observe(1_000.0, 1.7e12);
        let (t1, s1) = c.observe(1_100.0, 1.7e12 - 3_600_000.0);
        let (t2, s2) = c.observe(1_200.0, 1.7e12 - 3_600_000.0 + 100.0);
        assert_eq!((s0, s1, s2), (None, None, None));
        assert_eq!(t1 - t0, Duration::from_millis(100));
        assert_eq!(t2 - t1, Duration::from_millis(100));
    }

    #[test]
    fn a_wall_clock_far_ahead_of_the_monotonic_one_is_a_sleep() {
        let mut c = Clock::new();
        c.observe(1_000.0, 1.7e12);
        // Lid closed 40 minutes: the monotonic clock moved 200 ms.
        let (_, slept) = c.observe(1_200.0, 1.7e12 + 40.0 * 60_000.0 + 200.0);
        assert_eq!(slept, Some(Duration::from_secs(40 * 60)));
        // A busy tab (both clocks advance together) is no sleep.
        let (_, slept) = c.observe(61_200.0, 1.7e12 + 40.0 * 60_000.0 + 60_200.0);
        assert_eq!(slept, None);
    }
}
