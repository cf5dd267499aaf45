//! One re-armable timeout. When it fires the driver feeds `Input::Timeout`
//! with the clock read at that moment: the timer is never trusted to be on
//! time (background tabs throttle timers to once a minute).

use wasm_bindgen::JsValue;

use super::js;
use crate::core::Instant;

/// The driver's single wake-up; disarmed when dropped.
#[derive(Default)]
pub(crate) struct WakeUp {
    timer: Option<JsValue>,
    at: Option<Instant>,
}

impl WakeUp {
    /// Arms for `at` (replacing any earlier arming) or disarms for `None`.
    pub(crate) fn arm(&mut self, at: Option<Instant>, now: Instant, sink: &JsValue) {
        if at == self.at && self.timer.is_some() {
            return;
        }
        if let Some(t) = self.timer.take() {
            js::rt_timer_clear(&t);
        }
        self.at = at;
        self.timer = at.map(|at| {
            let delay = at
                .saturating_duration_since(now)
                .as_millis()
                .min(i32::MAX as u128) as u32;
            js::rt_timer(delay, sink)
        });
    }

    /// Forgets the fired timer so the next `arm` re-creates it.
    pub(crate) fn fired(&mut self) {
        self.timer = None;
        self.at = None;
    }
}

impl Drop for WakeUp {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            js::rt_timer_clear(&t);
        }
    }
}
