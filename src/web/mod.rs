//! The browser shell (`wasm32` only): turns browser callbacks into core
//! inputs and core outputs into browser calls. Thin by design: every
//! decision lives in the sans-IO core.
//!
//! Every JS callback is owned by an RAII holder that unregisters it on drop
//! ([`owned`]), closures capture `Weak` references only, and no JS is called
//! while the driver's `RefCell` is borrowed: the driver collects
//! [`driver::Action`]s, releases the borrow, then performs them.

pub mod api;
mod capture;
mod driver;
mod js;
mod lifecycle;
mod options;
mod owned;
mod socket;
mod timer;

/// Monotonic milliseconds (`performance.now()`): the session's deadlines
/// ride on them, so a wall clock stepped back cannot stall a timer. The wall
/// clock is read beside it only to notice that the machine slept
/// ([`crate::core::Clock`]).
pub(crate) fn mono_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}
