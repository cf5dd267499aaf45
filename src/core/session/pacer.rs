//! Replay pacing: a backlog goes out at `replayRate` × real time, after a
//! burst, so a reconnect does not get the socket closed for sending faster
//! than real time.

use std::time::Duration;

use crate::core::time::Instant;

/// Audio that may be sent at once when a connection becomes ready, before
/// pacing at `replayRate` takes over.
const REPLAY_BURST_MS: f64 = 1000.0;

/// A token bucket of milliseconds of audio.
#[derive(Debug, Clone)]
pub(super) struct Pacer {
    rate: f64,
    credit_ms: f64,
    last: Instant,
}

impl Pacer {
    pub(super) fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            credit_ms: REPLAY_BURST_MS,
            last: Instant::default(),
        }
    }

    /// A fresh burst, for a connection that just became ready.
    pub(super) fn reset(&mut self, now: Instant) {
        self.credit_ms = REPLAY_BURST_MS;
        self.last = now;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_millis() as f64;
        self.credit_ms = (self.credit_ms + elapsed * self.rate).min(REPLAY_BURST_MS);
        self.last = now;
    }

    /// Spends `cost_ms` if available, else says when it will be.
    pub(super) fn spend(&mut self, now: Instant, cost_ms: f64) -> Result<(), Instant> {
        self.refill(now);
        // Live audio costs one chunk per chunk interval, far below the
        // refill rate; a chunk larger than the burst still goes out once
        // the bucket is full, so pacing can never wedge the queue.
        if self.credit_ms >= cost_ms.min(REPLAY_BURST_MS) {
            self.credit_ms -= cost_ms;
            return Ok(());
        }
        let wait = ((cost_ms.min(REPLAY_BURST_MS) - self.credit_ms) / self.rate)
            .ceil()
            .max(1.0);
        Err(now + Duration::from_millis(wait as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_goes_out_in_a_burst_then_at_the_replay_rate() {
        let mut p = Pacer::new(4.0);
        let t0 = Instant::from_millis(1_000);
        p.reset(t0);
        for _ in 0..10 {
            assert_eq!(p.spend(t0, 100.0), Ok(()));
        }
        // The burst is spent: the next 100 ms chunk waits 25 ms at 4x.
        assert_eq!(p.spend(t0, 100.0), Err(t0 + Duration::from_millis(25)));
        assert_eq!(p.spend(t0 + Duration::from_millis(25), 100.0), Ok(()));
    }
}
