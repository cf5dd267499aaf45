//! The browser shell (`wasm32` only): turns browser callbacks into core
//! inputs and core outputs into browser calls. Thin by design: every
//! decision lives in the sans-IO core.
//!
//! The browser is reached through a few functions of `shell.js` ([`js`]),
//! each one operation that belongs together; every handle they return is
//! owned by an RAII type here that releases it on drop ([`socket`],
//! [`timer`], [`lifecycle`], [`capture`]). Everything the browser reports
//! comes back through one sink per client, which the [`driver`] turns into
//! core inputs. No JS is called while the driver's `RefCell` is borrowed:
//! the driver collects [`driver::Action`]s, releases the borrow, then
//! performs them.
//!
//! Modules depend downwards only: `api` → `driver` → `socket`, `timer`,
//! `lifecycle`, `capture` → `js`.

pub mod api;
mod capture;
mod driver;
mod js;
mod lifecycle;
mod socket;
mod timer;

/// Talc instead of the default dlmalloc: measured 4-5 KB smaller in the
/// bundle (`npm run size`), and faster for the session's small, short-lived
/// allocations.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static TALC: Outlined = Outlined(talc::wasm::new_wasm_dynamic_allocator());

/// Talc behind calls that are never inlined. Left to itself, LTO inlined
/// talc's free (with its gap bookkeeping) into seven of the functions that
/// drop a `Vec` or a `String`, some of them several times: 1.8 KB of WASM
/// for no speed that matters.
#[cfg(not(target_feature = "atomics"))]
struct Outlined(talc::wasm::WasmDynamicTalc);

// SAFETY: every method forwards its arguments unchanged to talc's own
// `GlobalAlloc`, which upholds the trait's contract.
#[cfg(not(target_feature = "atomics"))]
#[allow(unsafe_code)]
unsafe impl core::alloc::GlobalAlloc for Outlined {
    #[inline(never)]
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        self.0.alloc(layout)
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: core::alloc::Layout) -> *mut u8 {
        self.0.alloc_zeroed(layout)
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        self.0.dealloc(ptr, layout)
    }

    #[inline(never)]
    unsafe fn realloc(
        &self,
        ptr: *mut u8,
        layout: core::alloc::Layout,
        new_size: usize,
    ) -> *mut u8 {
        self.0.realloc(ptr, layout, new_size)
    }
}
