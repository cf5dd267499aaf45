//! `new TranscriptionClient(options)`: every option checked, every error
//! naming the option and the value. Secrets (`token`, `protocols`) are never
//! echoed whole.

use std::time::Duration;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::js::{range_error, show, type_error};
use crate::core::{Config, Provider};

/// Options the core does not see.
pub(crate) struct ShellOptions {
    pub(crate) config: Config,
    pub(crate) get_token: Option<Function>,
}

const TOP: &[&str] = &[
    "url",
    "provider",
    "protocols",
    "token",
    "getToken",
    "language",
    "sampleRate",
    "chunkMs",
    "reconnect",
    "keepalive",
    "watchdog",
    "buffer",
    "connectTimeoutMs",
    "closeTimeoutMs",
    "seed",
];
const RECONNECT: &[&str] = &[
    "initialDelayMs",
    "maxDelayMs",
    "multiplier",
    "jitter",
    "maxAttempts",
    "resetAfterMs",
];
const KEEPALIVE: &[&str] = &["intervalMs"];
const WATCHDOG: &[&str] = &["staleAfterMs", "stallAfterMs"];
const BUFFER: &[&str] = &["ttlMs", "maxBytes", "replayRate"];

pub(crate) fn parse(options: &JsValue) -> Result<ShellOptions, JsValue> {
    if !options.is_object() || options.is_function() || Array::is_array(options) {
        return Err(type_error(
            "options",
            &format!(
                "TranscriptionClient options must be an object like {{ url, provider }}, got {}",
                show(options)
            ),
        ));
    }
    check_keys(options, "", TOP)?;
    let url = match get(options, "url") {
        v if v.is_undefined() => {
            return Err(type_error(
                "url",
                "option `url` is required (a ws:// or wss:// URL)",
            ))
        }
        v => v.as_string().ok_or_else(|| {
            type_error(
                "url",
                &format!("option `url` must be a string, got {}", show(&v)),
            )
        })?,
    };
    let provider = match string(options, "provider", "provider")? {
        Some(p) => Provider::parse(&p).map_err(|e| range_error("provider", &e.to_string()))?,
        None => Provider::Deepgram,
    };
    let mut cfg = Config::new(provider, url);
    if let Some(list) = present(options, "protocols") {
        let arr: Array = list.dyn_into().map_err(|v| {
            type_error(
                "protocols",
                &format!(
                    "option `protocols` must be an array of strings, got {}",
                    show(&v)
                ),
            )
        })?;
        for (i, p) in arr.iter().enumerate() {
            let s = p.as_string().ok_or_else(|| {
                type_error(
                    "protocols",
                    &format!("option `protocols[{i}]` must be a string, got {}", show(&p)),
                )
            })?;
            cfg.protocols.push(s);
        }
    }
    if let Some(t) = present(options, "token") {
        // Never echo the token itself.
        let c = super::driver::credential(&t)
            .map_err(|why| type_error("token", &format!("option `token`: {why}")))?;
        cfg.token = Some(c);
    }
    let get_token = match present(options, "getToken") {
        Some(f) => Some(
            f.dyn_into::<Function>()
                .map_err(|v| type_error("getToken", &format!("option `getToken` must be a function returning a token (or a Promise of one), got {}", show(&v))))?,
        ),
        None => None,
    };
    cfg.token_callback = get_token.is_some();
    cfg.language = string(options, "language", "language")?;
    if let Some(n) = integer(options, "sampleRate", "sampleRate")? {
        cfg.sample_rate = n as u32;
    }
    if let Some(n) = integer(options, "chunkMs", "chunkMs")? {
        cfg.chunk_ms = n as u32;
    }
    if let Some(r) = section(options, "reconnect", RECONNECT)? {
        let c = &mut cfg.reconnect;
        set_ms(
            &r,
            "initialDelayMs",
            "reconnect.initialDelayMs",
            &mut c.initial_delay,
        )?;
        set_ms(&r, "maxDelayMs", "reconnect.maxDelayMs", &mut c.max_delay)?;
        if let Some(m) = number(&r, "multiplier", "reconnect.multiplier")? {
            c.multiplier = m;
        }
        if let Some(j) = number(&r, "jitter", "reconnect.jitter")? {
            c.jitter = j;
        }
        if let Some(m) = number(&r, "maxAttempts", "reconnect.maxAttempts")? {
            c.max_attempts = if m == f64::INFINITY {
                None
            } else if m.fract() == 0.0 && m >= 1.0 && m <= u32::MAX as f64 {
                Some(m as u32)
            } else {
                return Err(range_error(
                    "reconnect.maxAttempts",
                    &format!("option `reconnect.maxAttempts` must be an integer >= 1 or Infinity, got {}", crate::core::num(m)),
                ));
            };
        }
        set_ms(
            &r,
            "resetAfterMs",
            "reconnect.resetAfterMs",
            &mut c.reset_after,
        )?;
    }
    if let Some(k) = section(options, "keepalive", KEEPALIVE)? {
        let mut interval = Duration::ZERO;
        if present(&k, "intervalMs").is_some() {
            set_ms(&k, "intervalMs", "keepalive.intervalMs", &mut interval)?;
            cfg.keepalive = Some(interval);
        }
    }
    if let Some(w) = section(options, "watchdog", WATCHDOG)? {
        set_ms(
            &w,
            "staleAfterMs",
            "watchdog.staleAfterMs",
            &mut cfg.stale_after,
        )?;
        set_ms(
            &w,
            "stallAfterMs",
            "watchdog.stallAfterMs",
            &mut cfg.stall_after,
        )?;
    }
    if let Some(b) = section(options, "buffer", BUFFER)? {
        set_ms(&b, "ttlMs", "buffer.ttlMs", &mut cfg.ttl)?;
        if let Some(n) = integer(&b, "maxBytes", "buffer.maxBytes")? {
            cfg.max_bytes = n as usize;
        }
        if let Some(r) = number(&b, "replayRate", "buffer.replayRate")? {
            cfg.replay_rate = r;
        }
    }
    set_ms(
        options,
        "connectTimeoutMs",
        "connectTimeoutMs",
        &mut cfg.connect_timeout,
    )?;
    set_ms(
        options,
        "closeTimeoutMs",
        "closeTimeoutMs",
        &mut cfg.close_timeout,
    )?;
    cfg.seed = match integer(options, "seed", "seed")? {
        Some(s) => s as u64,
        None => (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64,
    };
    cfg.validate()
        .map_err(|e| range_error(e.field, &e.to_string()))?;
    Ok(ShellOptions {
        config: cfg,
        get_token,
    })
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// The value, unless `undefined` (absent).
fn present(o: &JsValue, key: &str) -> Option<JsValue> {
    Some(get(o, key)).filter(|v| !v.is_undefined())
}

fn check_keys(o: &JsValue, prefix: &str, allowed: &[&str]) -> Result<(), JsValue> {
    let Some(obj) = o.dyn_ref::<Object>() else {
        return Ok(());
    };
    for key in Object::keys(obj).iter() {
        let k = key.as_string().unwrap_or_default();
        if !allowed.contains(&k.as_str()) {
            let name = format!("{prefix}{k}");
            return Err(type_error(
                "options",
                &format!(
                    "unknown option `{name}`; valid options{}: {}",
                    if prefix.is_empty() { "" } else { " here" },
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn section(o: &JsValue, key: &'static str, allowed: &[&str]) -> Result<Option<JsValue>, JsValue> {
    let Some(v) = present(o, key) else {
        return Ok(None);
    };
    if !v.is_object() || Array::is_array(&v) || v.is_function() {
        return Err(type_error(
            key,
            &format!("option `{key}` must be an object, got {}", show(&v)),
        ));
    }
    check_keys(&v, &format!("{key}."), allowed)?;
    Ok(Some(v))
}

fn string(o: &JsValue, key: &str, field: &str) -> Result<Option<String>, JsValue> {
    match present(o, key) {
        None => Ok(None),
        Some(v) => v.as_string().map(Some).ok_or_else(|| {
            type_error(
                field,
                &format!("option `{field}` must be a string, got {}", show(&v)),
            )
        }),
    }
}

fn number(o: &JsValue, key: &str, field: &str) -> Result<Option<f64>, JsValue> {
    let Some(v) = present(o, key) else {
        return Ok(None);
    };
    let n = v.as_f64().ok_or_else(|| {
        type_error(
            field,
            &format!("option `{field}` must be a number, got {}", show(&v)),
        )
    })?;
    if n.is_nan() || (n.is_infinite() && n < 0.0) {
        return Err(range_error(
            field,
            &format!(
                "option `{field}` must be a number, got {}",
                crate::core::num(n)
            ),
        ));
    }
    Ok(Some(n))
}

fn integer(o: &JsValue, key: &str, field: &str) -> Result<Option<f64>, JsValue> {
    let Some(n) = number(o, key, field)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !(0.0..=9_007_199_254_740_991.0).contains(&n) {
        return Err(range_error(
            field,
            &format!(
                "option `{field}` must be a non-negative integer, got {}",
                crate::core::num(n)
            ),
        ));
    }
    Ok(Some(n))
}

fn set_ms(o: &JsValue, key: &str, field: &str, slot: &mut Duration) -> Result<(), JsValue> {
    if let Some(n) = number(o, key, field)? {
        if !(n > 0.0 && n.is_finite() && n <= 86_400_000.0) {
            return Err(range_error(
                field,
                &format!("option `{field}` must be a positive number of milliseconds (at most one day), got {}", crate::core::num(n)),
            ));
        }
        *slot = Duration::from_millis(n.round() as u64);
    }
    Ok(())
}
