//! Reconnect delays: exponential, capped, jittered on every attempt.

use std::time::Duration;

use super::config::ReconnectConfig;
use super::rng::Rng;

/// Caps the exponent so `multiplier^n` cannot overflow to infinity after
/// thousands of attempts in a long outage; the cap on the delay is reached
/// long before this anyway.
const MAX_BACKOFF_EXPONENT: u32 = 64;

/// Computes the delay before each reconnect attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: ReconnectConfig,
    rng: Rng,
}

impl Backoff {
    /// A backoff with its own seeded jitter source.
    pub fn new(cfg: ReconnectConfig, seed: u64) -> Backoff {
        Backoff {
            cfg,
            rng: Rng::new(seed),
        }
    }

    /// The delay before attempt number `attempt` (1 for the first retry):
    /// `min(cap, initial × multiplier^(attempt-1))`, of which a fraction
    /// `jitter` is drawn at random, fresh on every call. Never exceeds the cap.
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let n = attempt.saturating_sub(1).min(MAX_BACKOFF_EXPONENT);
        let initial = self.cfg.initial_delay.as_secs_f64() * 1000.0;
        let cap = self.cfg.max_delay.as_secs_f64() * 1000.0;
        let base = (initial * self.cfg.multiplier.powi(n as i32)).min(cap);
        // "Equal jitter": keep (1 - jitter) of the delay, randomise the rest,
        // so a fleet of clients cut off together do not return together, and
        // no client retries sooner than (1 - jitter) × base.
        let r = self.rng.next_f64();
        let ms = base * (1.0 - self.cfg.jitter * r);
        Duration::from_millis(ms.round().max(0.0) as u64)
    }

    /// The configured policy.
    pub fn config(&self) -> &ReconnectConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_exceeds_cap_and_jitters_every_attempt() {
        let cfg = ReconnectConfig::default();
        let mut b = Backoff::new(cfg.clone(), 42);
        let mut prev = None;
        let mut distinct = 0;
        for attempt in 1..=10_000 {
            let d = b.delay(attempt);
            assert!(d <= cfg.max_delay, "attempt {attempt}: {d:?}");
            assert!(d >= Duration::from_millis(250), "attempt {attempt}: {d:?}");
            if prev != Some(d) {
                distinct += 1;
            }
            prev = Some(d);
        }
        // Jitter drawn per attempt: consecutive delays at the cap still differ.
        assert!(
            distinct > 9_000,
            "only {distinct} distinct consecutive delays"
        );
    }

    #[test]
    fn delays_grow_exponentially_until_the_cap() {
        let cfg = ReconnectConfig {
            jitter: 0.0,
            ..ReconnectConfig::default()
        };
        let mut b = Backoff::new(cfg, 1);
        let ms: Vec<u128> = (1..=9).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
    }
}
