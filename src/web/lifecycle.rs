//! Page lifecycle: `online`, `offline`, `visibilitychange`,
//! `pagehide`/`pageshow`, `freeze`/`resume` (where supported), attached in
//! `shell.js`. A page kept in the back/forward cache (`pagehide`) is frozen
//! like a `freeze`; whether the connection survived is decided on the way
//! back.

use wasm_bindgen::JsValue;

use super::js;

/// The listeners, removed on drop.
pub(crate) struct Lifecycle {
    off: js_sys::Function,
}

impl Lifecycle {
    pub(crate) fn attach(sink: &JsValue) -> Lifecycle {
        Lifecycle {
            off: js::rt_lifecycle(sink),
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        let _ = self.off.call0(&JsValue::NULL);
    }
}
