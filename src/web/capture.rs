//! Microphone capture: getUserMedia → AudioContext → a tiny AudioWorklet
//! that posts Float32 blocks (batched to ~20 ms, transferred, not copied) to
//! the main thread, where the core resamples, converts to PCM16 and chunks.
//!
//! The worklet ships inside the package as a string and is loaded from a
//! Blob URL, so nobody has to host a file; `workletUrl` serves pages whose
//! Content-Security-Policy forbids `blob:`.

use std::rc::{Rc, Weak};

use js_sys::{Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AudioContext, AudioContextOptions, AudioContextState, AudioWorkletNode,
    AudioWorkletNodeOptions, MediaStream, MediaStreamAudioSourceNode, MediaStreamConstraints,
    MediaStreamTrack, MessageEvent,
};

use super::driver::{Action, AudioIn, Driver, Shared};
use super::js::{client_error, describe, obj};
use super::owned::Listener;
use crate::core::Input;

/// The AudioWorklet processor. It copies each 128-frame block of channel 0
/// into a batch of ~20 ms and transfers the batch's buffer to the main
/// thread: one message per 20 ms instead of one per 2.7 ms.
pub(crate) const WORKLET_SOURCE: &str = r#"
class RtCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.max(128, Math.round(sampleRate * 0.02 / 128) * 128);
    this.buf = new Float32Array(this.size);
    this.n = 0;
    this.port.onmessage = (e) => { if (e.data === "flush") this.flush(); };
  }
  flush() {
    const out = this.buf.slice(0, this.n);
    this.port.postMessage({ samples: out, sampleRate, last: true }, [out.buffer]);
    this.n = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      this.buf.set(ch, this.n);
      this.n += ch.length;
      if (this.n + 128 > this.size) {
        const out = this.buf.slice(0, this.n);
        this.port.postMessage({ samples: out, sampleRate }, [out.buffer]);
        this.n = 0;
      }
    }
    return true;
  }
}
registerProcessor("rt-capture", RtCapture);
"#;

/// A running capture. Dropping it stops the tracks, disconnects the graph,
/// closes the AudioContext and removes every listener.
pub(crate) struct Capture {
    ctx: AudioContext,
    stream: MediaStream,
    source: MediaStreamAudioSourceNode,
    node: AudioWorkletNode,
    _listeners: Vec<Listener>,
    /// Set by [`Capture::stop`]: waiting for the worklet's last batch,
    /// with a fallback in case it never comes.
    stopping: Option<super::owned::Timer>,
}

/// How long `stopMicrophone()` waits for the worklet's last batch before
/// tearing down anyway (a suspended or closed AudioContext never answers).
const STOP_GRACE_MS: u32 = 500;

impl Capture {
    /// Whether a stop is in progress.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// Stops the input and asks the worklet for the samples it still holds
    /// (up to 20 ms); the capture is torn down when they arrive (see
    /// [`finish`]), or after a grace period.
    pub(crate) fn stop(&mut self, shared: Weak<Shared>) {
        if self.stopping.is_some() {
            return;
        }
        stop_tracks(&self.stream);
        if let Ok(port) = self.node.port() {
            let _ = port.post_message(&JsValue::from_str("flush"));
        }
        self.stopping = Some(super::owned::Timer::new(STOP_GRACE_MS, move || {
            if let Some(s) = shared.upgrade() {
                finish(&s);
            }
        }));
    }
}

/// Tears the capture down and flushes the resampler's tail into the
/// session, so stopping loses nothing.
pub(crate) fn finish(shared: &Rc<Shared>) {
    shared.run(finish_in);
}

/// [`finish`], on a driver already borrowed.
pub(crate) fn finish_in(d: &mut Driver, actions: &mut Vec<Action>) {
    if d.mic.capture.take().is_none() {
        return;
    }
    d.flush_pipeline(actions);
    for resolve in d.mic.stopped.drain(..) {
        actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
    }
    if let Some((flush, timeout)) = d.mic.close_after.take() {
        let _ = d.input(Input::Close { flush, timeout }, actions);
    }
}

fn stop_tracks(stream: &MediaStream) {
    for t in stream.get_tracks().iter() {
        if let Ok(t) = t.dyn_into::<MediaStreamTrack>() {
            t.stop();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self._listeners.clear();
        let _ = self.node.port().map(|p| p.close());
        let _ = self.source.disconnect();
        let _ = self.node.disconnect();
        stop_tracks(&self.stream);
        let _ = self.ctx.close();
    }
}

/// Options of `startMicrophone`, checked before anything starts.
pub(crate) struct MicOptions {
    device_id: Option<String>,
    echo_cancellation: Option<bool>,
    noise_suppression: Option<bool>,
    auto_gain_control: Option<bool>,
    worklet_url: Option<String>,
    context_rate: Option<f32>,
}

pub(crate) fn parse_options(v: &JsValue) -> Result<MicOptions, JsValue> {
    use super::js::{range_error, show, type_error};
    let mut o = MicOptions {
        device_id: None,
        echo_cancellation: None,
        noise_suppression: None,
        auto_gain_control: None,
        worklet_url: None,
        context_rate: None,
    };
    if v.is_undefined() || v.is_null() {
        return Ok(o);
    }
    if !v.is_object() {
        return Err(type_error(
            "options",
            &format!(
                "startMicrophone(options): options must be an object, got {}",
                show(v)
            ),
        ));
    }
    let get = |k: &str| Reflect::get(v, &k.into()).unwrap_or(JsValue::UNDEFINED);
    const KEYS: [&str; 6] = [
        "deviceId",
        "echoCancellation",
        "noiseSuppression",
        "autoGainControl",
        "workletUrl",
        "contextSampleRate",
    ];
    if let Some(obj) = v.dyn_ref::<Object>() {
        for k in Object::keys(obj).iter() {
            let k = k.as_string().unwrap_or_default();
            if !KEYS.contains(&k.as_str()) {
                return Err(type_error(
                    "options",
                    &format!(
                        "startMicrophone: unknown option `{k}`; valid options: {}",
                        KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    let string = |k: &'static str| -> Result<Option<String>, JsValue> {
        let x = get(k);
        if x.is_undefined() {
            return Ok(None);
        }
        x.as_string().map(Some).ok_or_else(|| {
            type_error(
                k,
                &format!("startMicrophone: `{k}` must be a string, got {}", show(&x)),
            )
        })
    };
    let boolean = |k: &'static str| -> Result<Option<bool>, JsValue> {
        let x = get(k);
        if x.is_undefined() {
            return Ok(None);
        }
        x.as_bool().map(Some).ok_or_else(|| {
            type_error(
                k,
                &format!("startMicrophone: `{k}` must be a boolean, got {}", show(&x)),
            )
        })
    };
    o.device_id = string("deviceId")?;
    o.echo_cancellation = boolean("echoCancellation")?;
    o.noise_suppression = boolean("noiseSuppression")?;
    o.auto_gain_control = boolean("autoGainControl")?;
    o.worklet_url = string("workletUrl")?;
    let rate = get("contextSampleRate");
    if !rate.is_undefined() {
        match rate.as_f64() {
            Some(r) if (8_000.0..=192_000.0).contains(&r) => o.context_rate = Some(r as f32),
            _ => {
                return Err(range_error(
                    "contextSampleRate",
                    &format!("startMicrophone: `contextSampleRate` must be a number in 8000..=192000, got {}", show(&rate)),
                ))
            }
        }
    }
    Ok(o)
}

/// Starts capture; resolves when audio flows into the session. `generation`
/// is the start's ticket: if a later start or a stop came in meanwhile,
/// this one rejects with `mic-superseded` and releases what it opened.
pub(crate) async fn start(
    shared: Weak<Shared>,
    o: MicOptions,
    generation: u64,
) -> Result<(), JsValue> {
    let window = web_sys::window().ok_or_else(|| client_error("mic-unavailable", "no window"))?;
    let devices = window.navigator().media_devices().map_err(|_| {
        client_error(
            "mic-unavailable",
            "navigator.mediaDevices is unavailable (is the page served over https or localhost?)",
        )
    })?;
    let audio = obj(&[("channelCount", 1.into())]);
    if let Some(id) = &o.device_id {
        let _ = Reflect::set(&audio, &"deviceId".into(), &obj(&[("exact", id.into())]));
    }
    for (k, v) in [
        ("echoCancellation", o.echo_cancellation),
        ("noiseSuppression", o.noise_suppression),
        ("autoGainControl", o.auto_gain_control),
    ] {
        if let Some(v) = v {
            let _ = Reflect::set(&audio, &k.into(), &v.into());
        }
    }
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&audio);
    let promise = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(|e| client_error("mic-unavailable", &describe(&e)))?;
    let stream: MediaStream = match JsFuture::from(promise).await {
        Ok(s) => s.unchecked_into(),
        Err(e) => {
            let name = Reflect::get(&e, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .unwrap_or_default();
            let code = match name.as_str() {
                "NotAllowedError" | "SecurityError" => "mic-permission",
                _ => "mic-unavailable",
            };
            let message = format!("microphone: {name}: {}", describe(&e));
            // Fatal to the capture, not to the session: `fatal` means the
            // session is now failed, and it is not (sendAudio still works,
            // startMicrophone may be retried after the user allows it).
            report(&shared, code, &message, false);
            if let Some(s) = shared.upgrade() {
                let stale = generation;
                s.run(move |d, _| {
                    if d.mic.starting == Some(stale) {
                        d.mic.starting = None;
                    }
                });
            }
            return Err(client_error(code, &message));
        }
    };
    let ctx_opts = AudioContextOptions::new();
    if let Some(r) = o.context_rate {
        ctx_opts.set_sample_rate(r);
    }
    let ctx = match AudioContext::new_with_context_options(&ctx_opts) {
        Ok(c) => c,
        Err(e) => {
            stop_tracks(&stream);
            return Err(client_error("audio-context", &describe(&e)));
        }
    };
    let fail = |e: JsValue, what: &str| {
        stop_tracks(&stream);
        let _ = ctx.close();
        client_error("audio-context", &format!("{what}: {}", describe(&e)))
    };
    let (url, revoke) = match &o.worklet_url {
        Some(u) => (u.clone(), false),
        None => (
            worklet_blob_url().map_err(|e| fail(e, "creating the worklet Blob URL"))?,
            true,
        ),
    };
    let added = match ctx.audio_worklet() {
        Ok(w) => match w.add_module(&url) {
            Ok(p) => JsFuture::from(p).await.map(|_| ()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if revoke {
        let _ = web_sys::Url::revoke_object_url(&url);
    }
    added.map_err(|e| fail(e, "loading the AudioWorklet (set `workletUrl` if a Content-Security-Policy forbids blob:)"))?;
    let source = ctx
        .create_media_stream_source(&stream)
        .map_err(|e| fail(e, "createMediaStreamSource"))?;
    let node_opts = AudioWorkletNodeOptions::new();
    node_opts.set_number_of_inputs(1);
    node_opts.set_number_of_outputs(1);
    node_opts.set_channel_count(1);
    let node = AudioWorkletNode::new_with_options(&ctx, "rt-capture", &node_opts)
        .map_err(|e| fail(e, "AudioWorkletNode"))?;
    source
        .connect_with_audio_node(&node)
        .map_err(|e| fail(e, "connect"))?;
    // The processor writes nothing to its output (silence); connecting it
    // to the destination keeps the graph pulled in every engine.
    node.connect_with_audio_node(&ctx.destination())
        .map_err(|e| fail(e, "connect"))?;

    let port = node.port().map_err(|e| fail(e, "worklet port"))?;
    let mut listeners = Vec::new();
    let s = shared.clone();
    listeners.push(Listener::new(port.as_ref(), "message", move |e| {
        let Some(e) = e.dyn_ref::<MessageEvent>() else {
            return;
        };
        let data = e.data();
        let rate = Reflect::get(&data, &"sampleRate".into())
            .ok()
            .and_then(|r| r.as_f64())
            .unwrap_or(48_000.0);
        let Ok(samples) =
            Reflect::get(&data, &"samples".into()).and_then(|s| s.dyn_into::<Float32Array>())
        else {
            return;
        };
        let last = Reflect::get(&data, &"last".into())
            .ok()
            .and_then(|l| l.as_bool())
            == Some(true);
        if let Some(shared) = s.upgrade() {
            push_block(&shared, samples.to_vec(), rate as u32);
            if last {
                finish(&shared);
            }
        }
    }));
    port.start();
    for t in stream.get_audio_tracks().iter() {
        let s = shared.clone();
        let track: &web_sys::EventTarget = t.unchecked_ref();
        listeners.push(Listener::new(track, "ended", move |_| {
            let Some(shared) = s.upgrade() else { return };
            let weak = Rc::downgrade(&shared);
            shared.run(move |d, actions| match d.mic.capture.as_mut() {
                // Our own stopMicrophone() ended the track.
                Some(c) if c.is_stopping() => {}
                // Unplugged or revoked: deliver what the worklet holds,
                // then tear down.
                Some(c) => {
                    c.stop(weak);
                    actions.push(mic_error(
                        "mic-ended",
                        "the microphone was disconnected or stopped; call startMicrophone() to capture again",
                        false,
                    ));
                }
                None => {}
            });
        }));
    }
    if ctx.state() == AudioContextState::Suspended {
        // Autoplay policy: resume on the next user gesture.
        let _ = ctx.resume();
        let window_target: &web_sys::EventTarget = window.as_ref();
        for kind in ["pointerdown", "keydown", "touchend"] {
            let ctx2 = ctx.clone();
            listeners.push(Listener::new(window_target, kind, move |_| {
                if ctx2.state() == AudioContextState::Suspended {
                    let _ = ctx2.resume();
                }
            }));
        }
        report(
            &shared,
            "audio-suspended",
            "the AudioContext is suspended by the browser's autoplay policy; capture starts on the next click or key press",
            false,
        );
    }
    let capture = Capture {
        ctx,
        stream,
        source,
        node,
        _listeners: listeners,
        stopping: None,
    };
    let Some(shared) = shared.upgrade() else {
        return Err(client_error("closed", "the client was freed"));
    };
    // Installed in order with everything else (never a direct borrow);
    // the verdict comes back through this cell.
    let verdict: Rc<std::cell::RefCell<Option<Result<(), JsValue>>>> = Rc::default();
    let out = verdict.clone();
    shared.run(move |d, _| {
        let r = if d.mic.starting != Some(generation) {
            // Dropping `capture` releases the tracks and the context.
            Err(client_error(
                "mic-superseded",
                "a later startMicrophone() or stopMicrophone() came before this one was running",
            ))
        } else if d.session.state().is_terminal() {
            Err(client_error(
                "closed",
                "the client was closed while the microphone was starting",
            ))
        } else {
            d.mic.starting = None;
            d.mic.capture = Some(capture);
            Ok(())
        };
        *out.borrow_mut() = Some(r);
    });
    let r = verdict.borrow_mut().take();
    r.unwrap_or_else(|| {
        Err(client_error(
            "closed",
            "the client was freed while the microphone was starting",
        ))
    })
}

/// Feeds one worklet batch into the session. A batch at a rate the
/// resampler does not support is reported dropped (reason `format`) with
/// an `audio-format` error, never discarded silently.
pub(crate) fn push_block(shared: &Rc<Shared>, samples: Vec<f32>, rate: u32) {
    shared.run(move |d, actions| {
        if let Err(e) = d.push_audio(AudioIn::F32(&samples), rate, actions) {
            actions.push(mic_error("audio-format", &e.to_string(), false));
        }
    });
}

fn mic_error(code: &str, message: &str, fatal: bool) -> Action {
    Action::Dispatch(
        "error",
        obj(&[
            ("code", code.into()),
            ("message", message.into()),
            ("fatal", fatal.into()),
        ]),
    )
}

fn report(shared: &Weak<Shared>, code: &str, message: &str, fatal: bool) {
    if let Some(s) = shared.upgrade() {
        s.perform(vec![mic_error(code, message, fatal)]);
    }
}

fn worklet_blob_url() -> Result<String, JsValue> {
    let parts = js_sys::Array::of1(&JsValue::from_str(WORKLET_SOURCE));
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &bag)?;
    web_sys::Url::create_object_url_with_blob(&blob)
}
