//! Browser tests of `TranscriptionClient` over real sockets, against a
//! devserver started by `scripts/test-browsers.sh` (its address comes in at
//! compile time as `RT_DEVSERVER`, default 127.0.0.1:8799, engine `meter`).
//!
//! They use the API exactly as JavaScript does (the Rust methods take and
//! return `JsValue`s), in real time with generous bounds.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Int16Array, Object, Promise, Reflect};
use resilient_transcriber::web::api::{TranscriptionClient, EVENT_TYPES};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const HOST: &str = match option_env!("RT_DEVSERVER") {
    Some(h) => h,
    None => "127.0.0.1:8799",
};

// --- helpers ----------------------------------------------------------------

fn ws(path: &str) -> String {
    format!("ws://{HOST}{path}")
}

fn parse(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("valid JSON in test")
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn num(v: &JsValue, key: &str) -> f64 {
    get(v, key).as_f64().unwrap_or(f64::NAN)
}

fn string(v: &JsValue, key: &str) -> String {
    get(v, key).as_string().unwrap_or_default()
}

async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

async fn http(method: &str, path: &str, body: Option<&str>) -> JsValue {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(b) = body {
        init.set_body(&JsValue::from_str(b));
        let headers = web_sys::Headers::new().unwrap();
        headers.set("content-type", "application/json").unwrap();
        init.set_headers(&headers);
    }
    let url = format!("http://{HOST}{path}");
    let req = web_sys::Request::new_with_str_and_init(&url, &init).unwrap();
    let window = web_sys::window().unwrap();
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .unwrap_or_else(|e| panic!("fetch {url} failed: {e:?}"))
        .dyn_into()
        .unwrap();
    let status = resp.status();
    let text = JsFuture::from(resp.text().unwrap())
        .await
        .unwrap()
        .as_string()
        .unwrap_or_default();
    assert!(status < 300, "{method} {path} → {status}: {text}");
    if text.is_empty() {
        JsValue::NULL
    } else {
        js_sys::JSON::parse(&text).unwrap_or(JsValue::from_str(&text))
    }
}

async fn control(cmd: &str, body: &str) {
    http("POST", &format!("/control/{cmd}"), Some(body)).await;
}

async fn reset_server() {
    control("clear", "{}").await;
    http("DELETE", "/control/sessions", None).await;
}

async fn sessions() -> Vec<JsValue> {
    let v = http("GET", "/control/sessions", None).await;
    Array::from(&get(&v, "sessions")).iter().collect()
}

/// Every event the client emitted, in order, with its payload.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<(String, JsValue)>>>);

impl Log {
    fn attach(&self, client: &TranscriptionClient) {
        // Every event type the API accepts, from the API itself.
        for kind in EVENT_TYPES {
            let log = self.0.clone();
            let f = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                log.borrow_mut().push((kind.to_string(), e))
            });
            client.on(kind.into(), f.as_ref().clone()).unwrap();
            f.forget(); // test-only: lives as long as the page
        }
    }
    fn of(&self, kind: &str) -> Vec<JsValue> {
        self.0
            .borrow()
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn count(&self, kind: &str) -> usize {
        self.of(kind).len()
    }
    fn states(&self) -> Vec<String> {
        self.of("state")
            .iter()
            .map(|s| string(s, "state"))
            .collect()
    }
    fn dropped_bytes(&self) -> f64 {
        self.of("dropped").iter().map(|d| num(d, "bytes")).sum()
    }
}

async fn wait_until(what: &str, timeout_ms: u32, mut cond: impl FnMut() -> bool) {
    let start = js_sys::Date::now();
    while !cond() {
        assert!(
            js_sys::Date::now() - start < timeout_ms as f64,
            "timed out after {timeout_ms} ms waiting for {what}"
        );
        sleep(20).await;
    }
}

fn client(options: &str) -> (TranscriptionClient, Log) {
    let c = TranscriptionClient::new(parse(options))
        .unwrap_or_else(|e| panic!("options {options}: {e:?}"));
    let log = Log::default();
    log.attach(&c);
    (c, log)
}

/// 100 ms of 16 kHz PCM16 whose samples count up from `start` (so order,
/// gaps and duplicates are visible in what the server recorded).
fn counting_chunk(start: i32) -> Int16Array {
    let v: Vec<i16> = (0..1600).map(|i| ((start + i) % 30_000) as i16).collect();
    Int16Array::from(&v[..])
}

/// A 440 Hz tone loud enough for the meter engine to call it speech.
fn tone_chunk(n: usize) -> Int16Array {
    let v: Vec<i16> = (0..1600)
        .map(|i| {
            let t = (n * 1600 + i) as f64 / 16_000.0;
            ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16
        })
        .collect();
    Int16Array::from(&v[..])
}

async fn connect(c: &TranscriptionClient) -> Result<JsValue, JsValue> {
    JsFuture::from(c.connect()).await
}

async fn close(c: &TranscriptionClient, opts: &str) -> JsValue {
    JsFuture::from(c.close(Some(parse(opts))).unwrap())
        .await
        .unwrap()
}

fn assert_conserved(c: &TranscriptionClient) {
    let s = c.stats();
    let (pushed, sent, queued, dropped) = (
        num(&s, "bytesPushed"),
        num(&s, "bytesSent"),
        num(&s, "bytesQueued"),
        num(&s, "bytesDropped"),
    );
    assert_eq!(
        pushed,
        sent + queued + dropped,
        "stats must conserve bytes: {pushed} != {sent} + {queued} + {dropped}"
    );
}

// --- readiness ----------------------------------------------------------------

/// Root cause 1: readiness was guessed by a 500 ms timer. Here a 1.5 s
/// handshake delays `connect()` accordingly, and audio sent before open
/// arrives complete and in order.
#[wasm_bindgen_test]
async fn readiness_comes_from_open_and_early_audio_arrives_in_order() {
    reset_server().await;
    control("delay-handshake", r#"{"ms":1500,"scope":"next","count":1}"#).await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","seed":1}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let t0 = js_sys::Date::now();
    let ready = c.connect();
    for n in 0..10 {
        c.send_audio(counting_chunk(n * 1600).into(), None).unwrap();
    }
    assert_eq!(c.state(), "connecting");
    JsFuture::from(ready).await.unwrap();
    let waited = js_sys::Date::now() - t0;
    assert!(
        waited >= 1400.0,
        "ready after {waited} ms, before the delayed handshake finished"
    );
    assert_eq!(c.state(), "open");
    let summary = close(&c, "{}").await;
    assert_eq!(num(&summary, "code"), 1000.0);
    assert_eq!(log.count("dropped"), 0);
    let s = sessions().await;
    let last = s.last().expect("a session");
    assert_eq!(num(last, "bytes_received"), 10.0 * 3200.0);
    // The recorded audio is the counting signal, in order.
    let id = string(last, "id");
    let wav = fetch_wav(&format!("/control/sessions/{id}/audio")).await;
    assert_eq!(wav.len(), 16_000);
    for (i, s) in wav.iter().enumerate() {
        assert_eq!(*s as i32, (i as i32) % 30_000, "sample {i} out of order");
    }
    assert_conserved(&c);
}

async fn fetch_wav(path: &str) -> Vec<i16> {
    let window = web_sys::window().unwrap();
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_str(&format!("http://{HOST}{path}")))
            .await
            .unwrap()
            .dyn_into()
            .unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    let buf = JsFuture::from(resp.array_buffer().unwrap()).await.unwrap();
    let bytes = js_sys::Uint8Array::new(&buf).to_vec();
    // Find the "data" chunk rather than assuming a 44-byte header.
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        if &bytes[i..i + 4] == b"data" {
            let data = &bytes[i + 8..(i + 8 + len).min(bytes.len())];
            return data
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk in {path}");
}

/// Omi's browser endpoint is ready only after `auth_response` success.
#[wasm_bindgen_test]
async fn omi_is_ready_only_after_auth_response() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"omi","token":"good-token"}}"#,
        ws("/v4/web/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    let states = log.states();
    assert_eq!(
        states,
        ["connecting", "authenticating", "open"],
        "states: {states:?}"
    );
    close(&c, "{}").await;
    let s = sessions().await;
    assert!(get(s.last().unwrap(), "authenticated")
        .as_bool()
        .unwrap_or(false));
}

/// A bad token is a fatal error: no retry storm against a server that
/// will never accept it.
#[wasm_bindgen_test]
async fn omi_auth_failure_is_fatal_and_rejects_connect() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"omi","token":"bad-token"}}"#,
        ws("/v4/web/listen?engine=meter")
    ));
    let err = connect(&c).await.expect_err("connect must reject");
    assert_eq!(string(&err, "code"), "auth-failed");
    assert_eq!(c.state(), "failed");
    let errors = log.of("error");
    assert!(errors
        .iter()
        .any(|e| get(e, "fatal").as_bool() == Some(true)));
    assert_eq!(
        sessions().await.len(),
        1,
        "no retry after a fatal auth failure"
    );
}

// --- reconnects -------------------------------------------------------------

async fn stream_for(c: &TranscriptionClient, ms: u32, start: &mut i32) {
    let mut left = ms;
    while left > 0 {
        c.send_audio(counting_chunk(*start).into(), None).unwrap();
        *start += 1600;
        sleep(100).await;
        left = left.saturating_sub(100);
    }
}

/// The server closes mid-stream (1012 restart): the client reconnects by
/// itself and the audio queued meanwhile reaches the new connection.
#[wasm_bindgen_test]
async fn reconnects_after_server_close_and_replays() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","reconnect":{{"initialDelayMs":200,"maxDelayMs":1000}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    let mut pos = 0;
    stream_for(&c, 500, &mut pos).await;
    control("close", r#"{"code":1012,"reason":"restart"}"#).await;
    stream_for(&c, 1500, &mut pos).await;
    wait_until("the second connection", 5000, || log.count("open") >= 2).await;
    assert!(log.states().contains(&"reconnecting".to_string()));
    assert!(log.count("reconnecting") >= 1);
    close(&c, "{}").await;
    let total: f64 = sessions()
        .await
        .iter()
        .map(|s| num(s, "bytes_received"))
        .sum();
    let st = c.stats();
    assert_eq!(num(&st, "bytesDropped"), 0.0);
    // Audio in flight when the server closed, not yet covered by its
    // results, was resent: everything arrived, and only resends twice.
    let pushed = num(&st, "bytesPushed");
    assert!(total >= pushed, "server got {total} of {pushed}");
    assert!(
        total <= pushed + num(&st, "bytesResent"),
        "server got {total} of {pushed}"
    );
    assert!(num(&st, "reconnects") >= 1.0);
    assert_conserved(&c);
}

/// A TCP reset without a close frame (what the original relay did) is a
/// reconnect, not a dead client.
#[wasm_bindgen_test]
async fn reconnects_after_tcp_reset() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","reconnect":{{"initialDelayMs":200,"maxDelayMs":1000}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    let mut pos = 0;
    stream_for(&c, 300, &mut pos).await;
    control("reset", "{}").await;
    wait_until("reconnect after reset", 8000, || log.count("open") >= 2).await;
    close(&c, "{}").await;
    assert_conserved(&c);
}

/// A blackholed connection (TCP up, nothing moves) is detected by the
/// watchdog within its threshold and replaced.
#[wasm_bindgen_test]
async fn blackhole_is_detected_and_recovered() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","watchdog":{{"staleAfterMs":3000}},"keepalive":{{"intervalMs":1000}},
            "reconnect":{{"initialDelayMs":100,"maxDelayMs":500}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    let mut pos = 0;
    stream_for(&c, 1200, &mut pos).await;
    control("blackhole", r#"{"scope":"current"}"#).await;
    let t0 = js_sys::Date::now();
    let mut waited = 0;
    while log.count("open") < 2 {
        stream_for(&c, 100, &mut pos).await;
        waited += 100;
        assert!(waited < 12_000, "blackhole not detected within 12 s");
    }
    let detected = js_sys::Date::now() - t0;
    assert!(detected < 3000.0 + 4000.0, "took {detected} ms");
    let reasons: Vec<String> = log
        .of("state")
        .iter()
        .map(|s| string(s, "reason"))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("stale")),
        "reasons: {reasons:?}"
    );
    close(&c, r#"{"flush":false}"#).await;
    assert_conserved(&c);
}

/// A fatal close code (1008 policy/auth) stops the client with an error
/// event instead of retrying forever.
#[wasm_bindgen_test]
async fn fatal_close_stops_with_error_event() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    control("close", r#"{"code":1008,"reason":"policy"}"#).await;
    wait_until("failed state", 5000, || c.state() == "failed").await;
    let e = log.of("error");
    assert!(e
        .iter()
        .any(|e| get(e, "fatal").as_bool() == Some(true) && string(e, "code") == "auth-failed"));
    assert_eq!(log.count("close"), 1);
    sleep(500).await;
    assert_eq!(
        sessions().await.len(),
        1,
        "no reconnect after a fatal close"
    );
}

/// getToken is awaited before every (re)connect, so a refreshed token is
/// used on the reconnect.
#[wasm_bindgen_test]
async fn token_is_refreshed_on_reconnect() {
    reset_server().await;
    let calls = Rc::new(RefCell::new(0));
    let calls2 = calls.clone();
    let get_token = Closure::<dyn FnMut() -> Promise>::new(move || {
        *calls2.borrow_mut() += 1;
        let n = *calls2.borrow();
        Promise::resolve(&JsValue::from_str(&format!("token-{n}")))
    });
    let opts = parse(&format!(
        r#"{{"url":"{}","provider":"deepgram","reconnect":{{"initialDelayMs":100}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    Reflect::set(&opts, &"getToken".into(), get_token.as_ref()).unwrap();
    let c = TranscriptionClient::new(opts).unwrap();
    let log = Log::default();
    log.attach(&c);
    connect(&c).await.unwrap();
    control("close", r#"{"code":1011,"reason":"boom"}"#).await;
    wait_until("second open", 5000, || log.count("open") >= 2).await;
    close(&c, "{}").await;
    assert_eq!(*calls.borrow(), 2);
    let s = sessions().await;
    assert_eq!(s.len(), 2);
    let (a, b) = (
        string(&s[0], "token_fingerprint"),
        string(&s[1], "token_fingerprint"),
    );
    assert!(!a.is_empty() && a != b, "fingerprints {a} / {b}");
    drop(get_token);
}

/// A rejected getToken is a failed attempt, retried with backoff.
#[wasm_bindgen_test]
async fn rejected_get_token_is_retried() {
    reset_server().await;
    let calls = Rc::new(RefCell::new(0));
    let calls2 = calls.clone();
    let get_token = Closure::<dyn FnMut() -> Promise>::new(move || {
        *calls2.borrow_mut() += 1;
        if *calls2.borrow() == 1 {
            Promise::reject(&JsValue::from_str("auth service down"))
        } else {
            Promise::resolve(&JsValue::from_str("fresh"))
        }
    });
    let opts = parse(&format!(
        r#"{{"url":"{}","provider":"deepgram","reconnect":{{"initialDelayMs":100}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    Reflect::set(&opts, &"getToken".into(), get_token.as_ref()).unwrap();
    let c = TranscriptionClient::new(opts).unwrap();
    let log = Log::default();
    log.attach(&c);
    connect(&c).await.unwrap();
    assert_eq!(*calls.borrow(), 2);
    assert!(log
        .of("error")
        .iter()
        .any(|e| string(e, "code") == "token-failed"));
    close(&c, r#"{"flush":false}"#).await;
    drop(get_token);
}

// --- close --------------------------------------------------------------------

/// close({flush:true}) sends the queue, finalizes (CloseStream), and
/// delivers the final transcripts before the close event.
#[wasm_bindgen_test]
async fn graceful_close_delivers_final_transcripts() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    for n in 0..20 {
        c.send_audio(tone_chunk(n).into(), None).unwrap();
    }
    let summary = close(&c, "{}").await;
    assert_eq!(num(&summary, "code"), 1000.0);
    let order: Vec<String> = log.0.borrow().iter().map(|(k, _)| k.clone()).collect();
    let last_final = log
        .0
        .borrow()
        .iter()
        .rposition(|(k, v)| k == "transcript" && get(v, "isFinal").as_bool() == Some(true))
        .expect("a final transcript");
    let close_at = order.iter().position(|k| k == "close").unwrap();
    assert!(last_final < close_at);
    let s = sessions().await;
    assert!(
        get(s.last().unwrap(), "close_stream")
            .as_bool()
            .unwrap_or(false),
        "CloseStream was sent"
    );
    assert_eq!(num(s.last().unwrap(), "bytes_received"), 20.0 * 3200.0);
}

/// close() while still connecting rejects connect() and resolves close().
#[wasm_bindgen_test]
async fn close_during_connecting_rejects_connect() {
    reset_server().await;
    control("delay-handshake", r#"{"ms":2000,"scope":"next","count":1}"#).await;
    let (c, _log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let ready = c.connect();
    sleep(100).await;
    let closed = c.close(None).unwrap();
    let err = JsFuture::from(ready)
        .await
        .expect_err("connect must reject after close");
    assert!(!string(&err, "message").is_empty());
    JsFuture::from(closed).await.unwrap();
    assert_eq!(c.state(), "closed");
}

/// A throwing listener never breaks the client: it becomes an error event.
#[wasm_bindgen_test]
async fn listener_that_throws_is_reported_not_fatal() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let thrower = Function::new_with_args("e", "throw new Error('listener bug')");
    c.on("state".into(), thrower.into()).unwrap();
    connect(&c).await.unwrap();
    assert_eq!(c.state(), "open");
    let e = log.of("error");
    assert!(e
        .iter()
        .any(|e| string(e, "code") == "listener" && string(e, "message").contains("listener bug")));
    close(&c, "{}").await;
}

/// A listener may call close() re-entrantly (no "recursive use" error).
#[wasm_bindgen_test]
async fn reentrant_close_from_listener() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let c = Rc::new(c);
    let c2 = c.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
        let _ = c2.close(None).unwrap();
        c2.send_audio(counting_chunk(0).into(), None).unwrap();
    });
    c.on("open".into(), f.as_ref().clone()).unwrap();
    connect(&c).await.unwrap();
    wait_until("closed", 5000, || c.state() == "closed").await;
    assert!(log.of("error").is_empty(), "errors: {:?}", log.of("error"));
    let dropped = log.of("dropped");
    assert!(
        dropped.iter().any(|d| string(d, "reason") == "closed"),
        "audio after close is reported"
    );
    drop(f);
}

/// sendAudio after close() reports the audio as dropped and never throws.
#[wasm_bindgen_test]
async fn send_audio_after_close_is_reported_dropped() {
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    close(&c, "{}").await;
    c.send_audio(counting_chunk(0).into(), None).unwrap();
    let d = log.of("dropped");
    assert_eq!(d.len(), 1);
    assert_eq!(string(&d[0], "reason"), "closed");
    assert_eq!(num(&d[0], "bytes"), 3200.0);
    assert!((num(&d[0], "audioMs") - 100.0).abs() < 1e-9);
    assert_conserved(&c);
}

// --- leaks and accounting -------------------------------------------------------

/// 200 reconnect cycles leave no listener or timer behind: every socket's
/// listeners are removed when it is replaced.
#[wasm_bindgen_test]
async fn no_listener_leak_over_200_reconnect_cycles() {
    reset_server().await;
    let (probe, _) = client(r#"{"url":"ws://127.0.0.1:9/","provider":"deepgram"}"#);
    let outside = get(&probe.debug_stats(), "liveListeners").as_f64().unwrap();
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","reconnect":{{"initialDelayMs":1,"maxDelayMs":5,"jitter":0}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let baseline = get(&c.debug_stats(), "liveListeners").as_f64().unwrap();
    control(
        "close",
        r#"{"code":1011,"reason":"cycle","scope":"next","count":200}"#,
    )
    .await;
    let _ = c.connect();
    wait_until("200 reconnect cycles", 60_000, || log.count("open") >= 201).await;
    let live = get(&c.debug_stats(), "liveListeners").as_f64().unwrap();
    // While open: the baseline (lifecycle) plus one socket's four.
    assert_eq!(live, baseline + 4.0, "listeners alive after 200 cycles");
    assert!(get(&c.debug_stats(), "liveTimers").as_f64().unwrap() <= 1.0);
    close(&c, r#"{"flush":false}"#).await;
    // Closed: the socket's and the page lifecycle's listeners are gone.
    assert_eq!(
        get(&c.debug_stats(), "liveListeners").as_f64().unwrap(),
        outside
    );
    assert_eq!(get(&c.debug_stats(), "liveTimers").as_f64().unwrap(), 0.0);
}

/// free() (what `[Symbol.dispose]` and a dropped Rust handle do) releases
/// the socket's and the page lifecycle's listeners and the timer, and
/// settles a pending connect() instead of leaving it hanging.
#[wasm_bindgen_test]
async fn free_releases_listeners_timers_and_pending_promises() {
    reset_server().await;
    let (probe, _) = client(r#"{"url":"ws://127.0.0.1:9/","provider":"deepgram"}"#);
    let before = probe.debug_stats();
    control("delay-handshake", r#"{"ms":3000,"scope":"next","count":1}"#).await;
    let (c, _log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let ready = c.connect();
    sleep(100).await;
    let during = probe.debug_stats();
    assert!(num(&during, "liveListeners") > num(&before, "liveListeners"));
    assert!(num(&during, "liveTimers") > num(&before, "liveTimers"));
    drop(c);
    let after = probe.debug_stats();
    assert_eq!(num(&after, "liveListeners"), num(&before, "liveListeners"));
    assert_eq!(num(&after, "liveTimers"), num(&before, "liveTimers"));
    let err = JsFuture::from(ready)
        .await
        .expect_err("a freed client's connect() rejects");
    assert_eq!(string(&err, "code"), "freed");
}

/// Under drops (tiny buffer, server down), the stats still conserve bytes
/// and every dropped byte was reported in a `dropped` event.
#[wasm_bindgen_test]
async fn stats_conserve_bytes_under_loss() {
    reset_server().await;
    control("down", r#"{"ms":1500}"#).await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","buffer":{{"maxBytes":9600}},"reconnect":{{"initialDelayMs":100,"maxDelayMs":300}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let ready = c.connect();
    let mut pos = 0;
    stream_for(&c, 1000, &mut pos).await;
    assert_conserved(&c);
    JsFuture::from(ready).await.unwrap();
    stream_for(&c, 300, &mut pos).await;
    close(&c, "{}").await;
    assert_conserved(&c);
    let st = c.stats();
    assert!(num(&st, "bytesDropped") > 0.0);
    assert_eq!(num(&st, "bytesDropped"), log.dropped_bytes());
    let got: f64 = sessions()
        .await
        .iter()
        .map(|s| num(s, "bytes_received"))
        .sum();
    assert_eq!(got, num(&st, "bytesSent"));
}

// --- bad input ---------------------------------------------------------------------

/// Every invalid option throws naming the field.
#[wasm_bindgen_test]
fn invalid_options_throw_naming_the_field() {
    let cases = [
        (r#"{}"#, "url"),
        (r#"{"url":42}"#, "url"),
        (r#"{"url":"http://x/"}"#, "url"),
        (r#"{"url":"ws://h/","provider":"azure"}"#, "provider"),
        (
            r#"{"url":"ws://h/","reconnect":{"maxDelayMs":-5}}"#,
            "reconnect.maxDelayMs",
        ),
        (
            r#"{"url":"ws://h/","reconnect":{"initialDelayMs":5000,"maxDelayMs":100}}"#,
            "reconnect.maxDelayMs",
        ),
        (r#"{"url":"ws://h/","buffer":{"ttlMs":0}}"#, "buffer.ttlMs"),
        (
            r#"{"url":"ws://h/","buffer":{"maxBytes":10}}"#,
            "buffer.maxBytes",
        ),
        // An unknown option is named itself (it used to be "options").
        (r#"{"url":"ws://h/","reconect":{}}"#, "reconect"),
        (
            r#"{"url":"ws://h/","reconnect":{"maxDelay":1}}"#,
            "reconnect.maxDelay",
        ),
        (
            r#"{"url":"ws://h/","keepalive":{"intervalMs":"5s"}}"#,
            "keepalive.intervalMs",
        ),
        (r#"{"url":"ws://h/","provider":"omi"}"#, "token"),
        (r#"{"url":"ws://h/","protocols":"token"}"#, "protocols"),
    ];
    for (opts, field) in cases {
        let e = TranscriptionClient::new(parse(opts))
            .err()
            .unwrap_or_else(|| panic!("{opts} must throw"));
        assert_eq!(
            string(&e, "field"),
            field,
            "{opts}: {}",
            string(&e, "message")
        );
        assert!(
            e.is_instance_of::<js_sys::TypeError>() || e.is_instance_of::<js_sys::RangeError>()
        );
    }
    let e = TranscriptionClient::new(JsValue::from_str("ws://h/"))
        .err()
        .unwrap();
    assert!(e.is_instance_of::<js_sys::TypeError>());
}

/// Wrong-typed calls throw naming the argument; unknown event types list the valid ones.
#[wasm_bindgen_test]
fn wrong_typed_calls_throw_naming_the_argument() {
    let (c, _) = client(r#"{"url":"ws://127.0.0.1:9/","provider":"deepgram"}"#);
    let e = c.send_audio(JsValue::from_str("pcm"), None).unwrap_err();
    assert_eq!(string(&e, "field"), "samples");
    let e = c
        .send_audio(js_sys::ArrayBuffer::new(3).into(), None)
        .unwrap_err();
    assert_eq!(string(&e, "field"), "samples");
    let e = c
        .send_audio(Int16Array::new_with_length(10).into(), Some(7.0))
        .unwrap_err();
    assert_eq!(string(&e, "field"), "sampleRate");
    let e = c
        .on("transcripts".into(), Function::new_no_args("").into())
        .unwrap_err();
    assert!(
        string(&e, "message").contains("transcript, message"),
        "{}",
        string(&e, "message")
    );
    let e = c.on("open".into(), JsValue::from_f64(1.0)).unwrap_err();
    assert_eq!(string(&e, "field"), "listener");
    let e = c.close(Some(JsValue::from_str("now"))).unwrap_err();
    assert_eq!(string(&e, "field"), "options");
    let e = c.close(Some(parse(r#"{"timeoutMs":-1}"#))).unwrap_err();
    assert_eq!(string(&e, "field"), "timeoutMs");
    // Nothing above changed the client.
    assert_eq!(c.state(), "idle");
    let _ = Object::new();
}

/// once() fires once; the function returned by on() unsubscribes.
#[wasm_bindgen_test]
async fn once_and_unsubscribe() {
    let (c, _) = client(r#"{"url":"ws://127.0.0.1:9/","provider":"deepgram"}"#);
    let hits = Rc::new(RefCell::new(Vec::new()));
    let h1 = hits.clone();
    let f1 = Closure::<dyn FnMut(JsValue)>::new(move |_| h1.borrow_mut().push("on"));
    let h2 = hits.clone();
    let f2 = Closure::<dyn FnMut(JsValue)>::new(move |_| h2.borrow_mut().push("once"));
    let off = c.on("dropped".into(), f1.as_ref().clone()).unwrap();
    c.once("dropped".into(), f2.as_ref().clone()).unwrap();
    close(&c, r#"{"flush":false}"#).await;
    c.send_audio(counting_chunk(0).into(), None).unwrap();
    off.call0(&JsValue::NULL).unwrap();
    c.send_audio(counting_chunk(0).into(), None).unwrap();
    assert_eq!(*hits.borrow(), ["on", "once"]);
}

// --- issue 8: the shell's part of "never drop a healthy link, never lose silently" ---

/// A healthy connection held for a minute on every provider, sending audio
/// the way an app does (100 ms every 100 ms). Before: the shell sampled
/// `bufferedAmount` right after each send, the watchdog took equal non-zero
/// samples for a stalled buffer, and the client dropped its own connection
/// every 10-20 s.
#[wasm_bindgen_test]
async fn a_healthy_connection_is_held_for_60_s_on_every_provider() {
    reset_server().await;
    let providers = [
        ("deepgram", "/v1/listen?engine=meter", ""),
        (
            "omi",
            "/v4/web/listen?engine=meter",
            r#","token":"good-token""#,
        ),
        ("generic", "/v1/stream?engine=meter", ""),
    ];
    let clients: Vec<_> = providers
        .iter()
        .map(|(p, path, extra)| {
            client(&format!(
                r#"{{"url":"{}","provider":"{p}"{extra}}}"#,
                ws(path)
            ))
        })
        .collect();
    for (c, _) in &clients {
        connect(c).await.unwrap();
    }
    let t0 = js_sys::Date::now();
    let mut n = 0;
    while js_sys::Date::now() - t0 < 61_000.0 {
        for (c, _) in &clients {
            c.send_audio(tone_chunk(n).into(), None).unwrap();
        }
        n += 1;
        sleep(100).await;
    }
    for ((c, log), (p, ..)) in clients.iter().zip(&providers) {
        let st = c.stats();
        assert_eq!(num(&st, "reconnects"), 0.0, "{p}: {:?}", log.states());
        assert_eq!(num(&st, "attempts"), 1.0, "{p}: {:?}", log.states());
        assert_eq!(num(&st, "bytesResent"), 0.0, "{p}");
        assert_eq!(c.state(), "open", "{p}");
        assert_eq!(log.count("dropped"), 0, "{p}");
    }
    for (c, _) in &clients {
        close(c, "{}").await;
    }
}

/// Deadlines ride on `performance.now()`. Before: they rode on
/// `Date.now()`, and a wall clock stepped back an hour froze session time
/// and stretched the next timer (here the reconnect after a reset) by an
/// hour.
#[wasm_bindgen_test]
async fn a_wall_clock_stepped_back_stalls_no_timer() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram","reconnect":{{"initialDelayMs":300,"maxDelayMs":600}}}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    let step_back = Function::new_no_args(
        "globalThis.__rtRealNow = Date.now; Date.now = () => globalThis.__rtRealNow() - 3600000;",
    );
    let restore = Function::new_no_args("Date.now = globalThis.__rtRealNow;");
    step_back.call0(&JsValue::NULL).unwrap();
    let mut pos = 0;
    stream_for(&c, 300, &mut pos).await;
    control("reset", "{}").await;
    let t0 = js_sys::Date::now();
    let mut reopened = false;
    while js_sys::Date::now() - t0 < 8_000.0 {
        if log.count("open") >= 2 {
            reopened = true;
            break;
        }
        sleep(50).await;
    }
    restore.call0(&JsValue::NULL).unwrap();
    assert!(
        reopened,
        "no reconnect with the wall clock an hour back: {:?}",
        log.states()
    );
    close(&c, "{}").await;
    assert_conserved(&c);
}

/// The resampler in this build (the simd128 dot product, `four`'s vector
/// loads) gives the same output bits as the native build's scalar one:
/// resilient-audio's fingerprint test pins the same value natively.
#[wasm_bindgen_test]
fn the_simd128_resampler_gives_the_native_output() {
    use resilient_transcriber::core::audio::{fingerprint, FINGERPRINT};
    let got = fingerprint();
    assert_eq!(got, FINGERPRINT, "fingerprint {got:#x}");
}

/// `close()` without a microphone. Before: the resampler's look-ahead (a
/// few ms of `sendAudio` audio at 48 kHz) never reached the session; now 1 s
/// sent at 48 kHz is exactly 1 s at 16 kHz, and the server has all of it.
#[wasm_bindgen_test]
async fn close_without_a_microphone_delivers_the_resamplers_tail() {
    reset_server().await;
    let (c, log) = client(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    connect(&c).await.unwrap();
    for block in 0..10 {
        let v: Vec<f32> = (0..4_800)
            .map(|i| {
                let t = (block * 4_800 + i) as f32 / 48_000.0;
                (t * 440.0 * std::f32::consts::TAU).sin() * 0.3
            })
            .collect();
        c.send_audio(js_sys::Float32Array::from(&v[..]).into(), Some(48_000.0))
            .unwrap();
    }
    let summary = close(&c, "{}").await;
    let st = get(&summary, "stats");
    assert_eq!(num(&st, "bytesPushed"), 32_000.0, "{:?}", st);
    assert_eq!(num(&st, "bytesSent"), 32_000.0);
    assert_eq!(log.count("dropped"), 0);
    let s = sessions().await;
    assert_eq!(num(s.last().unwrap(), "bytes_received"), 32_000.0);
}

/// A credential with its scheme: Deepgram's short-lived JWTs go as the
/// `bearer` subprotocol, API keys as `token`.
#[wasm_bindgen_test]
async fn get_token_can_return_a_bearer_credential() {
    reset_server().await;
    let opts = parse(&format!(
        r#"{{"url":"{}","provider":"deepgram"}}"#,
        ws("/v1/listen?engine=meter")
    ));
    let get_token = Function::new_no_args(
        "return Promise.resolve({ token: 'eyJhbGciOi.payload.sig', scheme: 'bearer' });",
    );
    Reflect::set(&opts, &"getToken".into(), get_token.as_ref()).unwrap();
    let c = TranscriptionClient::new(opts).unwrap();
    connect(&c).await.unwrap();
    close(&c, "{}").await;
    let s = sessions().await;
    assert_eq!(string(s.last().unwrap(), "subprotocol"), "bearer");
}
