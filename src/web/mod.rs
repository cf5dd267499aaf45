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

/// Wall-clock milliseconds (`Date.now()`): the watchdog needs wall time so a
/// laptop that slept shows up as a jump.
pub(crate) fn now() -> crate::core::Instant {
    crate::core::Instant::from_millis(js_sys::Date::now().max(0.0) as u64)
}
