//! Small helpers for building JS values and errors.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function rt_unsubscriber(set, fn) {
  return () => { set.delete(fn); };
}
export function rt_once(set, fn) {
  const w = function (e) { set.delete(w); return fn.call(this, e); };
  w.rtOriginal = fn;
  return w;
}
export function rt_remove(set, fn) {
  for (const f of Array.from(set)) {
    if (f === fn || f.rtOriginal === fn) set.delete(f);
  }
}
"#)]
extern "C" {
    /// `() => set.delete(fn)`: the unsubscribe function `on` returns. Made
    /// in JS so no Rust closure has to live as long as the caller keeps it.
    pub(crate) fn rt_unsubscriber(set: &js_sys::Set, f: &js_sys::Function) -> js_sys::Function;
    /// A wrapper that removes itself from `set` before calling `fn` once.
    pub(crate) fn rt_once(set: &js_sys::Set, f: &js_sys::Function) -> js_sys::Function;
    /// Removes `fn`, or a `once` wrapper of it, from `set`.
    pub(crate) fn rt_remove(set: &js_sys::Set, f: &js_sys::Function);
}

/// A plain object from key/value pairs.
pub(crate) fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

/// `null` for `None`.
pub(crate) fn opt_str(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

/// `null` for `None`.
pub(crate) fn opt_num(n: Option<f64>) -> JsValue {
    n.map_or(JsValue::NULL, JsValue::from_f64)
}

/// The message of a thrown value, for error events and reasons.
pub(crate) fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string()
        .unwrap_or_else(|| String::from("a non-Error value"))
}

/// An `Error` with a `code` property (`ClientError` in the typings).
pub(crate) fn client_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

/// A `TypeError` naming the option or argument, with `code` and `field`.
pub(crate) fn type_error(field: &str, message: &str) -> JsValue {
    let e = js_sys::TypeError::new(message);
    let _ = Reflect::set(&e, &"code".into(), &"invalid-argument".into());
    let _ = Reflect::set(&e, &"field".into(), &field.into());
    e.into()
}

/// A `RangeError` naming the option or argument, with `code` and `field`.
pub(crate) fn range_error(field: &str, message: &str) -> JsValue {
    let e = js_sys::RangeError::new(message);
    let _ = Reflect::set(&e, &"code".into(), &"invalid-argument".into());
    let _ = Reflect::set(&e, &"field".into(), &field.into());
    e.into()
}

/// A short, safe rendering of a JS value for an error message.
pub(crate) fn show(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        let cut: String = s.chars().take(40).collect();
        return format!("\"{cut}\"");
    }
    if let Some(n) = v.as_f64() {
        return crate::core::num(n);
    }
    if v.is_null() {
        return "null".into();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if let Some(b) = v.as_bool() {
        return b.to_string();
    }
    if v.is_function() {
        return "a function".into();
    }
    if js_sys::Array::is_array(v) {
        return "an array".into();
    }
    v.js_typeof().as_string().unwrap_or_else(|| "value".into())
}
