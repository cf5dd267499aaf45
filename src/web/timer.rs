//! One re-armable timeout. When it fires it feeds `Input::Timeout` with the
//! clock read at that moment: the timer is never trusted to be on time
//! (background tabs throttle timers to once a minute).

use std::rc::Weak;

use super::driver::{Incoming, Shared};
use super::owned::Timer;
use crate::core::Instant;

/// The driver's single wake-up.
#[derive(Default)]
pub(crate) struct WakeUp {
    timer: Option<Timer>,
    at: Option<Instant>,
}

impl WakeUp {
    /// Arms for `at` (replacing any earlier arming) or disarms for `None`.
    pub(crate) fn arm(&mut self, at: Option<Instant>, now: Instant, shared: &Weak<Shared>) {
        if at == self.at && self.timer.is_some() {
            return;
        }
        self.at = at;
        self.timer = at.map(|at| {
            let delay = at
                .saturating_duration_since(now)
                .as_millis()
                .min(i32::MAX as u128) as u32;
            let shared = shared.clone();
            Timer::new(delay, move || {
                if let Some(s) = shared.upgrade() {
                    s.feed(Incoming::Timeout);
                }
            })
        });
    }

    /// Forgets the fired timer so the next `arm` re-creates it.
    pub(crate) fn fired(&mut self) {
        self.timer = None;
        self.at = None;
    }
}
