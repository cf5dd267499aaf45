//! RAII owners for JS callbacks, with live counts for leak tests.
//!
//! gloo's `EventListener` removes its listener when dropped, and gloo's
//! `Timeout` cancels when dropped; these wrappers add a count of the ones
//! alive, exposed through `TranscriptionClient.debugStats()`, so a test can
//! prove that 200 reconnects leave no closure behind.

use std::cell::Cell;

use gloo_events::{EventListener, EventListenerOptions};
use gloo_timers::callback::Timeout;
use web_sys::EventTarget;

thread_local! {
    static LIVE_LISTENERS: Cell<i64> = const { Cell::new(0) };
    static LIVE_TIMERS: Cell<i64> = const { Cell::new(0) };
}

/// Listeners alive in this thread (all clients).
pub(crate) fn live_listeners() -> i64 {
    LIVE_LISTENERS.with(Cell::get)
}

/// Timers alive in this thread (all clients).
pub(crate) fn live_timers() -> i64 {
    LIVE_TIMERS.with(Cell::get)
}

/// An event listener removed from its target when dropped.
#[must_use = "the listener is removed as soon as this is dropped"]
pub(crate) struct Listener(#[allow(dead_code)] EventListener);

impl Listener {
    pub(crate) fn new(
        target: &EventTarget,
        event: &'static str,
        f: impl FnMut(&web_sys::Event) + 'static,
    ) -> Listener {
        LIVE_LISTENERS.with(|c| c.set(c.get() + 1));
        Listener(EventListener::new_with_options(
            target,
            event,
            EventListenerOptions::enable_prevent_default(),
            f,
        ))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        LIVE_LISTENERS.with(|c| c.set(c.get() - 1));
    }
}

/// A one-shot timer cancelled when dropped.
#[must_use = "the timer is cancelled as soon as this is dropped"]
pub(crate) struct Timer(#[allow(dead_code)] Timeout);

impl Timer {
    pub(crate) fn new(ms: u32, f: impl FnOnce() + 'static) -> Timer {
        LIVE_TIMERS.with(|c| c.set(c.get() + 1));
        Timer(Timeout::new(ms, f))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        LIVE_TIMERS.with(|c| c.set(c.get() - 1));
    }
}
