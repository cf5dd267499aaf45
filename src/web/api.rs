//! `TranscriptionClient`, the JavaScript API (see DESIGN.md for the contract).

use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::driver::{Action, AudioIn, Shared};
use super::js::{self, client_error, range_error, type_error};
use crate::core::audio::{self, le_bytes_to_pcm16};
use crate::core::options::{self, Bad};
use crate::core::{payload, Input, Session, State, UsageError};

/// The event types `on`, `once` and `off` accept.
pub use crate::core::payload::EVENT_TYPES;

/// The TypeScript declarations wasm-bindgen cannot derive (options, event
/// payloads, the `on` overloads), kept in `api.d.ts` so editors and
/// `scripts/check-api.mjs` read them as TypeScript.
#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = include_str!("api.d.ts");

/// Streams audio to a transcription backend through any network failure.
#[wasm_bindgen(js_name = TranscriptionClient)]
pub struct TranscriptionClient {
    shared: Rc<Shared>,
}

/// An option error as the TypeError or RangeError JavaScript sees.
// By value, so it fits `map_err`; the box is freed here.
#[allow(clippy::boxed_local)]
fn option_error(e: Bad) -> JsValue {
    if e.range {
        range_error(&e.field, &e.message)
    } else {
        type_error(&e.field, &e.message)
    }
}

/// Options as JSON (see `core::options`); `undefined` for none.
fn json_of(v: &Option<JsValue>) -> Result<String, JsValue> {
    let json = js::rt_json(v.as_ref().unwrap_or(&JsValue::UNDEFINED));
    if json == "!" {
        return Err(type_error(
            "options",
            "options must be a plain object of strings, numbers, booleans and functions",
        ));
    }
    Ok(json)
}

#[wasm_bindgen(js_class = TranscriptionClient)]
impl TranscriptionClient {
    /// Validates `options` (throwing a TypeError/RangeError naming the bad
    /// field) and creates an idle client. Audio sent before `connect()` is
    /// queued.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TranscriptionClientOptions")] options: JsValue,
    ) -> Result<TranscriptionClient, JsValue> {
        let json = json_of(&Some(options.clone()))?;
        let seed = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        let opts = options::client_options(&json, seed).map_err(option_error)?;
        let get_token = opts.get_token.then(|| js::rt_get(&options, "getToken"));
        let logger = if opts.logger {
            js::rt_get(&options, "logger")
        } else {
            JsValue::UNDEFINED
        };
        let session = Session::new(opts.config).map_err(|e| range_error(e.field, &e.message()))?;
        Ok(TranscriptionClient {
            shared: Shared::new(session, get_token, opts.log_level, logger),
        })
    }

    /// Starts connecting. Resolves when the session is ready (open, or the
    /// backend's acknowledgement); rejects only on a fatal error or on
    /// `close()` before readiness. Reconnects then run by themselves.
    /// Calling it again returns a promise for the same readiness.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn connect(&self) -> Promise {
        let shared = self.shared.clone();
        Promise::new(&mut |resolve, reject| {
            shared.run(move |d, actions| match d.session.state() {
                State::Idle => match d.input(Input::Connect, actions) {
                    Ok(()) => d.pending.connect.push((resolve, reject)),
                    Err(e) => {
                        actions.push(Action::Settle(reject, client_error("usage", e.as_str())))
                    }
                },
                State::Open | State::Offline => {
                    actions.push(Action::Settle(resolve, JsValue::UNDEFINED))
                }
                State::Connecting | State::Authenticating | State::Reconnecting => {
                    d.pending.connect.push((resolve, reject))
                }
                _ => actions.push(Action::Settle(
                    reject,
                    client_error("closed", UsageError::Closed.as_str()),
                )),
            })
        })
    }

    /// Queues audio: an Int16Array (PCM16), a Float32Array (−1..1, clipped)
    /// or an ArrayBuffer of PCM16 little-endian, at `sampleRate` (default:
    /// the client's `sampleRate`; other rates are resampled). Never drops
    /// silently: after `close()` the audio is reported in a `dropped` event
    /// with reason "closed". Wrong types throw a TypeError.
    #[wasm_bindgen(js_name = sendAudio)]
    pub fn send_audio(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Int16Array | Float32Array | ArrayBuffer")]
        samples: JsValue,
        #[wasm_bindgen(js_name = sampleRate)] sample_rate: Option<f64>,
    ) -> Result<(), JsValue> {
        let rate = match sample_rate {
            None => None,
            Some(r)
                if r.fract() == 0.0
                    && (f64::from(audio::MIN_RATE)..=f64::from(audio::MAX_RATE)).contains(&r) =>
            {
                Some(r as u32)
            }
            Some(r) => {
                return Err(range_error(
                    "sampleRate",
                    &[
                        "sendAudio(samples, sampleRate): sampleRate must be an integer in 8000..=192000, got ",
                        &crate::core::num(r),
                    ]
                    .concat(),
                ))
            }
        };
        let block = match js::rt_kind(&samples) {
            1 => Block::I16(js::i16s(&samples)),
            2 => Block::F32(js::f32s(&samples)),
            3 => {
                let bytes = js::bytes(&js_sys::Uint8Array::new(&samples));
                let mut raw = Vec::with_capacity(bytes.len() / 2);
                if le_bytes_to_pcm16(&bytes, &mut raw).is_err() {
                    return Err(range_error(
                        "samples",
                        &[
                            "sendAudio(samples): an ArrayBuffer must hold PCM16 (an even number of bytes), got ",
                            &crate::core::num(bytes.len() as f64),
                            " bytes",
                        ]
                        .concat(),
                    ));
                }
                Block::I16(raw)
            }
            _ => {
                return Err(type_error(
                    "samples",
                    &[
                        "sendAudio(samples): samples must be an Int16Array, a Float32Array or an ArrayBuffer of PCM16 little-endian, got ",
                        &js::rt_show(&samples),
                    ]
                    .concat(),
                ))
            }
        };
        let channels = self.shared.channels;
        if channels > 1 && block.len() % channels != 0 {
            return Err(range_error(
                "samples",
                &[
                    "sendAudio(samples): with channels: 2 the samples are interleaved frames (an even number of samples), got ",
                    &crate::core::num(block.len() as f64),
                ]
                .concat(),
            ));
        }
        self.shared.run(move |d, actions| {
            let rate = rate.unwrap_or(d.session.config().sample_rate);
            let audio = match &block {
                Block::I16(v) => AudioIn::I16(v),
                Block::F32(v) => AudioIn::F32(v),
            };
            // The rate was checked above; a failure here is reported by
            // `push_audio` as dropped audio, never silent.
            let _ = d.push_audio(audio, rate, actions);
        });
        Ok(())
    }

    /// Closes. With `flush` (default true): sends what is queued, asks the
    /// backend to finalize, waits for final results and its close, bounded
    /// by `timeoutMs` (default `closeTimeoutMs`), then closes 1000. Without:
    /// closes at once and reports unsent audio as dropped. Resolves with a
    /// summary (close code, reason, stats); never rejects.
    #[wasm_bindgen(skip_typescript)]
    pub fn close(&self, options: Option<JsValue>) -> Result<Promise, JsValue> {
        let (flush, timeout) = options::close_options(&json_of(&options)?).map_err(option_error)?;
        let shared = self.shared.clone();
        Ok(Promise::new(&mut |resolve, _reject| {
            shared.run(move |d, actions| {
                if let Some(summary) = &d.closed {
                    actions.push(Action::Settle(resolve, js::rt_parse(summary)));
                    return;
                }
                d.pending.close.push(resolve);
                if !d.ready_once {
                    // The contract: close() before readiness rejects
                    // connect(), even while a flush still runs.
                    for (_, reject) in d.pending.connect.drain(..) {
                        let e = client_error(
                            "closed",
                            "close() was called before the session was ready",
                        );
                        actions.push(Action::Settle(reject, e));
                    }
                }
                // What the microphone still holds (the worklet's last
                // batch, the resampler's tail) is delivered before the close
                // starts, flushing or not: without a flush it is then
                // reported dropped with the rest, never lost silently.
                if d.stop_mic() {
                    d.close_after_mic(flush, timeout);
                } else {
                    // Audio from `sendAudio` still in the resampler.
                    d.flush_pipeline(actions);
                    let _ = d.input(Input::Close { flush, timeout }, actions);
                }
            })
        }))
    }

    /// The connection state.
    #[wasm_bindgen(getter, unchecked_return_type = "TranscriptionState")]
    pub fn state(&self) -> String {
        match self.shared.driver.try_borrow() {
            Ok(d) => d.session.state().as_str().to_string(),
            Err(_) => self.shared.last_state.get().as_str().to_string(),
        }
    }

    /// Counters: bytes/chunks pushed, sent, acked, queued, dropped,
    /// replayed; attempts, reconnects, keepalives, messages. Always
    /// `bytesPushed == bytesSent + bytesQueued + bytesDropped`.
    #[wasm_bindgen(unchecked_return_type = "TranscriptionStats")]
    pub fn stats(&self) -> JsValue {
        match self.shared.driver.try_borrow() {
            Ok(d) => js::rt_parse(&payload::stats(&d.session.stats())),
            // Only inside a synchronous browser callback of our own call.
            Err(_) => JsValue::NULL,
        }
    }

    /// A snapshot for a bug report: version, state, the last transitions
    /// (with reasons) and socket closes (codes), the last error, timings
    /// (time to ready, uptime), the counters and the configuration that
    /// matters. No token, no query string, no transcript text.
    #[wasm_bindgen(unchecked_return_type = "DiagnosticsSnapshot")]
    pub fn diagnostics(&self) -> JsValue {
        match self.shared.driver.try_borrow() {
            Ok(d) => {
                let stats = payload::stats(&d.session.stats());
                let json =
                    d.diag
                        .snapshot(js::rt_now(), d.session.config(), d.session.state(), &stats);
                js::rt_parse(&json)
            }
            Err(_) => JsValue::NULL,
        }
    }

    /// Live JS callbacks held by all clients in this page (listeners and
    /// timers), for leak tests.
    #[wasm_bindgen(js_name = debugStats, unchecked_return_type = "{ liveListeners: number; liveTimers: number }")]
    pub fn debug_stats(&self) -> JsValue {
        let n = |v: f64| crate::core::num(v);
        js::rt_parse(
            &[
                "{\"liveListeners\":",
                &n(js::rt_live()),
                ",\"liveTimers\":",
                &n(js::rt_timers()),
                "}",
            ]
            .concat(),
        )
    }

    /// Captures the microphone (getUserMedia → AudioWorklet → resample →
    /// PCM16 → queue). Resolves when audio flows. Capture keeps running
    /// through reconnects (audio waits in the queue) and may start before
    /// `connect()` (audio is queued, bounded by `buffer.ttlMs`). Rejects
    /// with code `mic-active` if already capturing, `closed` after
    /// `close()`, `mic-superseded` when a later `startMicrophone()`, a
    /// `stopMicrophone()` or `close()` came before it was running,
    /// `mic-permission` (also an `error` event) when the user or policy
    /// denies the microphone.
    #[wasm_bindgen(js_name = startMicrophone, skip_typescript)]
    pub fn start_microphone(&self, options: Option<JsValue>) -> Result<Promise, JsValue> {
        let o = options::capture_options(&json_of(&options)?).map_err(option_error)?;
        let shared = self.shared.clone();
        Ok(Promise::new(&mut |resolve, reject| {
            let o = o.clone();
            shared.run(move |d, actions| {
                d.start_mic(&o, &JsValue::UNDEFINED, resolve, reject, actions)
            });
        }))
    }

    /// Captures the microphone and/or the system audio through one
    /// AudioContext and one worklet: `microphone` (default `true`: a
    /// device, its options, or a `MediaStream`) on channel 0, `systemAudio`
    /// (`true`: the browser asks to share a tab or screen with its audio;
    /// or a `MediaStream` from Electron's `desktopCapturer`, a Tauri plugin)
    /// on channel 1, sample-aligned; with `channels: 1` both are mixed into
    /// one. A source that ends leaves its channel silent (a `capture` event
    /// says which); the last one ending stops the capture. Rejects like
    /// `startMicrophone()`, and with `system-audio-permission` /
    /// `system-audio-unavailable` for the system audio; a source that
    /// fails stops the other.
    #[wasm_bindgen(js_name = startCapture, skip_typescript)]
    pub fn start_capture(&self, options: Option<JsValue>) -> Result<Promise, JsValue> {
        let o = options::start_capture_options(&json_of(&options)?).map_err(option_error)?;
        let given = options.unwrap_or(JsValue::UNDEFINED);
        let shared = self.shared.clone();
        Ok(Promise::new(&mut |resolve, reject| {
            let (o, given) = (o.clone(), given.clone());
            shared.run(move |d, actions| d.start_mic(&o, &given, resolve, reject, actions));
        }))
    }

    /// `stopMicrophone()`, by the name that fits `startCapture()`.
    #[wasm_bindgen(js_name = stopCapture, unchecked_return_type = "Promise<void>")]
    pub fn stop_capture(&self) -> Promise {
        self.stop_microphone()
    }

    /// Begins an utterance (push-to-talk: the key went down); returns its
    /// id. With `pushToTalk`, audio reaches the stream only between
    /// `beginUtterance()` and `endUtterance()`, starting with the last
    /// `preRollMs` (at most the configured `pushToTalk.preRollMs`) captured
    /// before the call. Throws a ClientError `usage` while one runs,
    /// `closed` after `close()`.
    #[wasm_bindgen(js_name = beginUtterance, skip_typescript)]
    pub fn begin_utterance(&self, options: Option<JsValue>) -> Result<f64, JsValue> {
        let pre_roll = options::utterance_options(&json_of(&options)?).map_err(option_error)?;
        let (r, id) = self
            .shared
            .run_now(|d, actions| {
                let r = d.input(Input::BeginUtterance { pre_roll }, actions);
                (r, d.session.current_utterance())
            })
            .ok_or_else(busy)?;
        match (r, id) {
            (Ok(()), Some(id)) => Ok(id as f64),
            (Err(UsageError::Closed), _) => {
                Err(client_error("closed", UsageError::Closed.as_str()))
            }
            (Err(e), _) => Err(client_error("usage", e.as_str())),
            (Ok(()), None) => Err(client_error("usage", "the utterance did not begin")),
        }
    }

    /// Ends the utterance (the key went up): its audio is finalized with
    /// the provider's flush once it is all sent (after a reconnect, if the
    /// connection is down), and the promise resolves with `{ id, text,
    /// finals, startMs, endMs, audioMs, latencyMs, timedOut }` when the
    /// final transcripts cover it, or after `pushToTalk.timeoutMs` with what
    /// arrived (`timedOut: true`). Never hangs. Rejects with `usage` when
    /// no utterance runs.
    #[wasm_bindgen(js_name = endUtterance, skip_typescript)]
    pub fn end_utterance(&self) -> Promise {
        let shared = self.shared.clone();
        Promise::new(&mut |resolve, reject| {
            shared.run(move |d, actions| {
                let Some(id) = d.session.current_utterance() else {
                    let e = client_error("usage", UsageError::NoUtterance.as_str());
                    actions.push(Action::Settle(reject, e));
                    return;
                };
                d.pending.utterances.push((id, resolve, reject));
                let _ = d.input(Input::EndUtterance, actions);
            })
        })
    }

    /// Stops the microphone: the tracks stop at once, the samples still in
    /// the worklet and the resampler are delivered, then the AudioContext
    /// closes. Resolves when that is done (at most ~0.5 s). The audio
    /// captured so far stays queued and is sent. Harmless when not
    /// capturing. A `startMicrophone()` still in progress rejects with
    /// `mic-superseded`. `close()` does this by itself.
    #[wasm_bindgen(js_name = stopMicrophone, unchecked_return_type = "Promise<void>")]
    pub fn stop_microphone(&self) -> Promise {
        let shared = self.shared.clone();
        Promise::new(&mut |resolve, _reject| {
            shared.run(move |d, actions| {
                d.stop_mic();
                d.when_mic_stopped(resolve, actions);
            })
        })
    }

    /// Whether the microphone is capturing (false from `stopMicrophone()` on).
    #[wasm_bindgen(getter, js_name = capturing)]
    pub fn capturing(&self) -> bool {
        self.shared.driver.try_borrow().is_ok_and(|d| d.capturing())
    }

    /// Adds a listener; returns a function that removes it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, kind: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        self.listen("on", &kind, &listener)
            .map(JsCast::unchecked_into)
    }

    /// Adds a listener called at most once; returns a function that removes it.
    #[wasm_bindgen(skip_typescript)]
    pub fn once(&self, kind: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        self.listen("once", &kind, &listener)
            .map(JsCast::unchecked_into)
    }

    /// Removes a listener added with `on` or `once`.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, kind: JsValue, listener: JsValue) -> Result<(), JsValue> {
        self.listen("off", &kind, &listener).map(|_| ())
    }
}

impl TranscriptionClient {
    fn listen(&self, method: &str, kind: &JsValue, listener: &JsValue) -> Result<JsValue, JsValue> {
        js::rt_listen(
            &self.shared.listeners,
            method,
            kind,
            listener,
            &EVENT_TYPES.join(","),
        )
    }
}

/// A copy of the caller's samples, owned so the work can wait for the
/// driver (see [`Shared::run`]).
enum Block {
    I16(Vec<i16>),
    F32(Vec<f32>),
}

impl Block {
    fn len(&self) -> usize {
        match self {
            Block::I16(v) => v.len(),
            Block::F32(v) => v.len(),
        }
    }
}

/// `beginUtterance()` from inside a listener of this client's own events
/// would need the session while it is busy.
fn busy() -> JsValue {
    client_error(
        "usage",
        "beginUtterance() cannot be called from inside this client's own synchronous callback; call it from a microtask",
    )
}

/// Resample → PCM16 → fixed-size chunks, the path every captured block
/// takes, exposed for the benchmark (`--features bench`).
#[cfg(feature = "bench")]
#[wasm_bindgen]
pub struct AudioPreprocessor {
    pipeline: crate::core::audio::AudioPipeline,
    chunker: crate::core::audio::Chunker,
    pcm: Vec<i16>,
    chunks: u32,
    last: Vec<u8>,
}

#[cfg(feature = "bench")]
#[wasm_bindgen]
impl AudioPreprocessor {
    /// A preprocessor producing `chunkMs` chunks of PCM16 at `targetRate`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = targetRate)] target_rate: u32,
        #[wasm_bindgen(js_name = chunkMs)] chunk_ms: u32,
    ) -> Result<AudioPreprocessor, JsValue> {
        let pipeline = crate::core::audio::AudioPipeline::new(target_rate)
            .map_err(|e| range_error("targetRate", &e.message()))?;
        if !(10..=1000).contains(&chunk_ms) {
            return Err(range_error(
                "chunkMs",
                &[
                    "chunkMs must be in 10..=1000, got ",
                    &crate::core::num(chunk_ms.into()),
                ]
                .concat(),
            ));
        }
        let samples = (target_rate as usize * chunk_ms as usize / 1000).max(1);
        Ok(AudioPreprocessor {
            pipeline,
            chunker: crate::core::audio::Chunker::new(samples),
            pcm: Vec::new(),
            chunks: 0,
            last: Vec::new(),
        })
    }

    /// Pushes float samples at `sampleRate`; returns the number of full
    /// chunks produced so far.
    pub fn push(
        &mut self,
        samples: &[f32],
        #[wasm_bindgen(js_name = sampleRate)] sample_rate: u32,
    ) -> Result<u32, JsValue> {
        self.pcm.clear();
        self.pipeline
            .push_f32(samples, sample_rate, &mut self.pcm)
            .map_err(|e| range_error("sampleRate", &e.message()))?;
        let (chunks, last) = (&mut self.chunks, &mut self.last);
        self.chunker.push(&self.pcm, |c| {
            *chunks += 1;
            last.clear();
            crate::core::audio::pcm16_to_le_bytes(c, last);
        });
        Ok(self.chunks)
    }

    /// The bytes (PCM16 LE) of the last full chunk.
    #[wasm_bindgen(js_name = lastChunk)]
    pub fn last_chunk(&self) -> Vec<u8> {
        self.last.clone()
    }
}
