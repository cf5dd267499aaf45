//! The session's deadlines, one slot per purpose.

use super::time::Instant;

/// Why the session wants to wake up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The current attempt must be ready by then.
    Connect,
    /// Start the next attempt.
    Reconnect,
    /// The connection stayed open long enough: forget past failures.
    ResetAttempts,
    /// Keepalive and liveness deadlines.
    Watchdog,
    /// Replay pacing or backpressure: try sending again.
    Pace,
    /// The oldest queued chunk reaches its TTL.
    Expiry,
    /// A graceful close must be over by then.
    CloseDeadline,
    /// A connection on probation must have proved alive by then.
    Probation,
    /// An ended utterance resolves by then, covered by finals or not.
    Utterance,
}

const ALL: [Timer; 9] = [
    Timer::Connect,
    Timer::Reconnect,
    Timer::ResetAttempts,
    Timer::Watchdog,
    Timer::Pace,
    Timer::Expiry,
    Timer::CloseDeadline,
    Timer::Probation,
    Timer::Utterance,
];

/// At most one deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable([Option<Instant>; ALL.len()]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    pub(crate) fn set_opt(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t as usize] = at;
    }

    pub(crate) fn clear(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    pub(crate) fn clear_all(&mut self) {
        self.0 = Default::default();
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Removes and returns the timers due at `now`, in declaration order.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Timer> {
        ALL.into_iter()
            .filter(|t| {
                let due = self.get(*t).is_some_and(|at| at <= now);
                if due {
                    self.clear(*t);
                }
                due
            })
            .collect()
    }
}
