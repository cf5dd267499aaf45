//! The browser, as a few JavaScript functions.
//!
//! The shell used to reach the browser through web-sys and gloo: one
//! binding (and glue function) per method it touched, 122 imports in all,
//! plus the futures machinery for `getUserMedia` and `getToken`. Here the
//! browser calls that belong together (open a socket and attach its four
//! listeners, run the capture set-up sequence, read an options object,
//! call listeners) are one JavaScript function each. They decide nothing:
//! every decision stays in Rust, and every handle they return is owned by
//! an RAII type on the Rust side ([`super::socket::Socket`],
//! [`super::timer::WakeUp`], [`super::lifecycle::Lifecycle`],
//! [`super::capture::Capture`]), which releases it on drop. Everything the
//! browser says comes back through one sink function per client, which the
//! driver turns into core inputs.

use wasm_bindgen::prelude::*;

/// What the sink's first argument means (`sink(kind, id, data, n)`).
pub(crate) mod kind {
    pub const OPEN: u32 = 0;
    pub const TEXT: u32 = 1;
    pub const BINARY: u32 = 2;
    pub const CLOSE: u32 = 3;
    pub const ERROR: u32 = 4;
    pub const TIMER: u32 = 5;
    pub const ONLINE: u32 = 6;
    pub const OFFLINE: u32 = 7;
    pub const HIDDEN: u32 = 8;
    pub const FROZEN: u32 = 9;
    pub const RESUMED: u32 = 10;
    pub const TOKEN: u32 = 11;
    pub const MIC_READY: u32 = 12;
    pub const MIC_FAILED: u32 = 13;
    pub const MIC_AUDIO: u32 = 14;
    pub const MIC_LAST: u32 = 15;
    pub const MIC_ENDED: u32 = 16;
    pub const MIC_FINISH: u32 = 17;
    pub const MIC_SUSPENDED: u32 = 18;
}

#[wasm_bindgen(module = "/src/web/shell.js")]
extern "C" {
    pub(crate) fn rt_live() -> f64;
    pub(crate) fn rt_timers() -> f64;
    pub(crate) fn rt_now() -> f64;
    pub(crate) fn rt_wall() -> f64;
    pub(crate) fn rt_sink(f: &JsValue) -> JsValue;
    pub(crate) fn rt_sink_off(s: &JsValue);
    pub(crate) fn rt_json(o: &JsValue) -> String;
    pub(crate) fn rt_get(o: &JsValue, key: &str) -> JsValue;
    pub(crate) fn rt_parse(json: &str) -> JsValue;
    pub(crate) fn rt_err(kind: u32, code: &str, field: &str, message: &str) -> JsValue;
    pub(crate) fn rt_kind(x: &JsValue) -> u32;
    pub(crate) fn rt_len(x: &JsValue) -> u32;
    #[wasm_bindgen(js_name = rt_copy)]
    fn rt_copy_u8(src: &JsValue, dst: &mut [u8]);
    #[wasm_bindgen(js_name = rt_copy)]
    fn rt_copy_i16(src: &JsValue, dst: &mut [i16]);
    #[wasm_bindgen(js_name = rt_copy)]
    fn rt_copy_f32(src: &JsValue, dst: &mut [f32]);
    pub(crate) fn rt_show(x: &JsValue) -> String;
    #[wasm_bindgen(catch)]
    pub(crate) fn rt_listen(
        ls: &JsValue,
        method: &str,
        kind: &JsValue,
        f: &JsValue,
        valid: &str,
    ) -> Result<JsValue, JsValue>;
    pub(crate) fn rt_emit(ls: &JsValue, kind: &str, json: &str);
    pub(crate) fn rt_log(logger: &JsValue, level: &str, json: &str);
    pub(crate) fn rt_ws_open(url: &str, protocols: Vec<String>, id: f64, sink: &JsValue)
        -> JsValue;
    #[wasm_bindgen(js_name = rt_ws_send)]
    pub(crate) fn rt_ws_send_text(ws: &JsValue, data: &str) -> bool;
    #[wasm_bindgen(js_name = rt_ws_send)]
    pub(crate) fn rt_ws_send_bytes(ws: &JsValue, data: &[u8]) -> bool;
    pub(crate) fn rt_ws_buffered(ws: &JsValue) -> f64;
    pub(crate) fn rt_ws_close(ws: &JsValue, code: u16, reason: &str);
    pub(crate) fn rt_timer(ms: u32, sink: &JsValue) -> JsValue;
    pub(crate) fn rt_timer_clear(t: &JsValue);
    pub(crate) fn rt_lifecycle(sink: &JsValue) -> js_sys::Function;
    pub(crate) fn rt_token(f: &JsValue, req: f64, sink: &JsValue);
    pub(crate) fn rt_worklet_source() -> String;
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rt_capture(
        mic: &str,
        given: &JsValue,
        system: u32,
        url: Option<String>,
        rate: f64,
        channels: u32,
        gen: f64,
        sink: &JsValue,
    ) -> JsValue;
    pub(crate) fn rt_capture_stop(cap: &JsValue, grace: u32, gen: f64, sink: &JsValue);
    pub(crate) fn rt_capture_close(cap: &JsValue);
}

/// A copy of a `Uint8Array` (js-sys's `to_vec` asserts the length with
/// `assert_eq!`, which pulls the formatting machinery into the bundle).
pub(crate) fn bytes(src: &JsValue) -> Vec<u8> {
    let mut v = vec![0; rt_len(src) as usize];
    rt_copy_u8(src, &mut v);
    v
}

/// A copy of an `Int16Array`.
pub(crate) fn i16s(src: &JsValue) -> Vec<i16> {
    let mut v = vec![0; rt_len(src) as usize];
    rt_copy_i16(src, &mut v);
    v
}

/// A copy of a `Float32Array`.
pub(crate) fn f32s(src: &JsValue) -> Vec<f32> {
    let mut v = vec![0.0; rt_len(src) as usize];
    rt_copy_f32(src, &mut v);
    v
}

/// An `Error` with a `code` property (`ClientError` in the typings).
pub(crate) fn client_error(code: &str, message: &str) -> JsValue {
    rt_err(0, code, "", message)
}

/// A `TypeError` naming the option or argument.
pub(crate) fn type_error(field: &str, message: &str) -> JsValue {
    rt_err(2, "invalid-argument", field, message)
}

/// A `RangeError` naming the option or argument.
pub(crate) fn range_error(field: &str, message: &str) -> JsValue {
    rt_err(1, "invalid-argument", field, message)
}
