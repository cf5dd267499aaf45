//! Capture: the microphone (getUserMedia or a given MediaStream) and the
//! system audio (getDisplayMedia or a given MediaStream) → one
//! AudioContext → a tiny AudioWorklet that posts interleaved Float32 blocks
//! (batched to ~20 ms, transferred, not copied) to the main thread, where
//! the core resamples each channel, converts to PCM16 and chunks. The
//! browser calls run in `shell.js` (`rt_capture`); this side owns the
//! handle and decides what each outcome means.
//!
//! The worklet ships inside the package and is loaded from a Blob URL, so
//! nobody has to host a file; `workletUrl` (the package's
//! `rt-capture-worklet.js`, processor name `rt-capture`) serves pages whose
//! Content-Security-Policy forbids `blob:`.

use wasm_bindgen::JsValue;

use super::js;
use crate::core::options::{CaptureOptions, Source};

/// How long `stopMicrophone()` waits for the worklet's last batch before
/// tearing down anyway (a suspended or closed AudioContext never answers).
pub(crate) const STOP_GRACE_MS: u32 = 500;

/// A capture handle (`rt_capture`'s): starting or running. Dropping it
/// stops the tracks, disconnects the graph, closes the AudioContext and
/// removes every listener.
pub(crate) struct Capture {
    handle: JsValue,
    /// The start's ticket: events carrying another are stale.
    pub(crate) generation: u64,
    /// `stop` was called: waiting for the worklet's last batch.
    stopping: bool,
    /// The sources still delivering: `[microphone, systemAudio]`.
    pub(crate) live: [bool; 2],
}

impl Capture {
    /// Starts the browser side of a capture; its outcome comes to `sink`
    /// as `MIC_READY` or `MIC_FAILED` with `generation`.
    pub(crate) fn start(
        o: &CaptureOptions,
        given: &JsValue,
        channels: u16,
        generation: u64,
        sink: &JsValue,
    ) -> Capture {
        let mic = match o.microphone {
            Source::Request => constraints(o),
            Source::Off | Source::Given => String::new(),
        };
        let system = match o.system_audio {
            Source::Off => 0,
            Source::Request => 1,
            Source::Given => 2,
        };
        let handle = js::rt_capture(
            &mic,
            given,
            system,
            o.worklet_url.clone(),
            o.context_rate.unwrap_or(0.0),
            channels.into(),
            generation as f64,
            sink,
        );
        Capture {
            handle,
            generation,
            stopping: false,
            live: [o.microphone != Source::Off, o.system_audio != Source::Off],
        }
    }

    /// Whether a stop is in progress.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Stops the input and asks the worklet for the samples it still holds
    /// (up to 20 ms); they arrive as `MIC_LAST`, or `MIC_FINISH` comes after
    /// a grace period.
    pub(crate) fn stop(&mut self, sink: &JsValue) {
        if !self.stopping {
            self.stopping = true;
            js::rt_capture_stop(&self.handle, STOP_GRACE_MS, self.generation as f64, sink);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        js::rt_capture_close(&self.handle);
    }
}

/// The `audio` constraints of `getUserMedia`, as JSON: mono, the exact
/// device if one was chosen, and the voice processing the caller set.
fn constraints(o: &CaptureOptions) -> String {
    let mut s = String::from(r#"{"channelCount":1"#);
    if let Some(id) = &o.device_id {
        s.push_str(r#","deviceId":{"exact":"#);
        crate::core::json::push_str(&mut s, id);
        s.push('}');
    }
    for (k, v) in [
        ("echoCancellation", o.echo_cancellation),
        ("noiseSuppression", o.noise_suppression),
        ("autoGainControl", o.auto_gain_control),
    ] {
        if let Some(v) = v {
            s.push_str(",\"");
            s.push_str(k);
            s.push_str("\":");
            s.push_str(if v { "true" } else { "false" });
        }
    }
    s.push('}');
    s
}
