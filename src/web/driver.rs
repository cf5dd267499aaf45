//! The run loop: feed one input to the core, drain its outputs into browser
//! calls, then, with every borrow released, call JS.
//!
//! One discipline for every entry (browser events and API calls alike):
//! [`Shared::run`]. If the driver is already borrowed (only possible when a
//! browser API dispatches an event synchronously inside one of our own
//! calls), the work is queued and runs right after the current one, in
//! order, instead of panicking (which, with `panic = "abort"`, would kill
//! the whole client).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Duration;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::capture::Capture;
use super::js::{self, client_error, kind};
use super::lifecycle::Lifecycle;
use super::socket::Socket;
use super::timer::WakeUp;
use crate::core::audio::{InterleavedError, InterleavedPipeline};
use crate::core::diagnostics::{Diagnostics, LogLevel};
use crate::core::json::Value;
use crate::core::options::{credential, CaptureOptions};
use crate::core::{
    payload, Clock, Credential, Event, Input, Output, Session, SocketId, State, TokenRequest,
    UsageError,
};

/// Browser happenings, owned (the core's [`Input`] borrows).
pub(crate) enum Incoming {
    Opened(SocketId),
    Text(SocketId, String),
    Binary(SocketId, Vec<u8>),
    Closed(SocketId, u16, String),
    Error(SocketId),
    Online,
    Offline,
    Hidden,
    Frozen,
    Resumed,
    Token(TokenRequest, Result<Credential, String>),
    Timeout,
    /// The capture started with this generation is running.
    MicReady(u64),
    /// It could not start: the exception's name and a message.
    MicFailed(u64, String, String),
    /// A worklet batch (`last`: the answer to "flush").
    MicAudio(u64, Vec<f32>, u32, bool),
    /// A source's tracks all ended: 0 microphone, 1 system audio.
    MicEnded(u64, usize),
    MicFinish(u64),
    MicSuspended(u64),
}

/// A JS call to make once the driver is no longer borrowed.
pub(crate) enum Action {
    /// Call the listeners of an event type with a JSON payload.
    Dispatch(&'static str, String),
    /// Settle a promise.
    Settle(Function, JsValue),
    /// Call `getToken` for this request.
    GetToken(TokenRequest),
    /// A diagnostics entry for the logger (or the console).
    Log(LogLevel, String),
}

type Deferred = Box<dyn FnOnce(&mut Driver, &mut Vec<Action>)>;

/// The one JS→Rust entry of a client: `shell.js` calls the wrapper, which
/// calls the closure until [`js::rt_sink_off`] switches it off. Dropped
/// last, after everything that could still call it.
struct SinkOwner {
    wrapper: JsValue,
    _closure: Closure<dyn FnMut(u32, f64, JsValue, f64)>,
}

impl Drop for SinkOwner {
    fn drop(&mut self) {
        js::rt_sink_off(&self.wrapper);
    }
}

/// What the sink holds (weakly) and the client holds (strongly).
pub(crate) struct Shared {
    pub(crate) driver: RefCell<Driver>,
    /// Event type → Set of listener functions (a plain JS object).
    pub(crate) listeners: JsValue,
    pub(crate) get_token: Option<JsValue>,
    /// The `logger` option (undefined: the console).
    logger: JsValue,
    /// Work that arrived while the driver was borrowed, run in order as
    /// soon as it is free.
    deferred: RefCell<VecDeque<Deferred>>,
    /// The state after the last run, for getters called re-entrantly.
    pub(crate) last_state: Cell<State>,
    /// Interleaved channels of the stream (`channels`).
    pub(crate) channels: usize,
    _sink: SinkOwner,
}

/// Connect and close promises waiting for the session.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) connect: Vec<(Function, Function)>,
    pub(crate) close: Vec<Function>,
    /// `endUtterance()` promises: (utterance id, resolve, reject).
    pub(crate) utterances: Vec<(u64, Function, Function)>,
}

/// A `startMicrophone()` in progress.
struct Starting {
    capture: Capture,
    resolve: Function,
    reject: Function,
}

/// Microphone bookkeeping.
#[derive(Default)]
pub(crate) struct Mic {
    /// The running capture.
    capture: Option<Capture>,
    /// The start in progress. A later `startMicrophone()`, a
    /// `stopMicrophone()` or `close()` supersedes it: its half-built
    /// capture is released at once, and it rejects with `mic-superseded`
    /// when the browser reports how that start ended (so a caller who
    /// awaits the later call first still catches it).
    starting: Option<Starting>,
    /// Superseded starts waiting for that report: (generation, reject).
    superseded: Vec<(u64, Function)>,
    /// Bumped by every start and stop: events of an older capture are stale.
    generation: u64,
    /// `stopMicrophone()` promises, resolved when the capture is torn down.
    stopped: Vec<Function>,
    /// A `close()` waiting for the microphone's last samples: (flush, timeout).
    close_after: Option<(bool, Option<Duration>)>,
}

/// Everything the run loop mutates.
pub(crate) struct Driver {
    pub(crate) session: Session,
    socket: Option<(SocketId, Socket)>,
    wake: WakeUp,
    lifecycle: Option<Lifecycle>,
    mic: Mic,
    clock: Clock,
    pipeline: InterleavedPipeline,
    pcm: Vec<i16>,
    pub(crate) pending: Pending,
    pub(crate) ready_once: bool,
    /// The fatal error, for rejecting `connect()`.
    fatal: Option<(&'static str, String)>,
    /// The final `close` payload, once closed.
    pub(crate) closed: Option<String>,
    /// Inputs produced while draining (e.g. a socket that failed to open).
    later: Vec<Incoming>,
    /// The sink wrapper, handed to every browser call that reports back.
    sink: JsValue,
    pub(crate) diag: Diagnostics,
}

impl Shared {
    pub(crate) fn new(
        session: Session,
        get_token: Option<JsValue>,
        log_level: LogLevel,
        logger: JsValue,
    ) -> Rc<Shared> {
        let rate = session.config().sample_rate;
        let channels = usize::from(session.config().channels);
        Rc::new_cyclic(|weak: &Weak<Shared>| {
            let weak = weak.clone();
            let closure = Closure::new(move |k: u32, id: f64, data: JsValue, n: f64| {
                if let (Some(s), Some(incoming)) = (weak.upgrade(), decode(k, id, data, n)) {
                    s.feed(incoming);
                }
            });
            let wrapper = js::rt_sink(closure.as_ref());
            Shared {
                driver: RefCell::new(Driver {
                    session,
                    socket: None,
                    wake: WakeUp::default(),
                    lifecycle: Some(Lifecycle::attach(&wrapper)),
                    mic: Mic::default(),
                    clock: Clock::new(),
                    pipeline: InterleavedPipeline::new(rate, channels).unwrap_or_else(|_| {
                        unreachable!("the sample rate was validated by Config")
                    }),
                    pcm: Vec::new(),
                    pending: Pending::default(),
                    ready_once: false,
                    fatal: None,
                    closed: None,
                    later: Vec::new(),
                    sink: wrapper.clone(),
                    diag: Diagnostics::new(log_level, js::rt_now()),
                }),
                listeners: js_sys::Object::new().into(),
                get_token,
                logger,
                deferred: RefCell::new(VecDeque::new()),
                last_state: Cell::new(State::Idle),
                channels,
                _sink: SinkOwner {
                    wrapper,
                    _closure: closure,
                },
            }
        })
    }

    /// Runs `f` on the driver, then performs the JS calls it collected
    /// with no borrow held. The one way in: when the driver is busy (a
    /// browser API dispatched an event synchronously inside our own call),
    /// `f` waits and runs right after the current work, never panics.
    pub(crate) fn run(self: &Rc<Self>, f: impl FnOnce(&mut Driver, &mut Vec<Action>) + 'static) {
        let Ok(d) = self.driver.try_borrow_mut() else {
            self.deferred.borrow_mut().push_back(Box::new(f));
            return;
        };
        self.run_borrowed(d, f);
    }

    /// As [`Shared::run`], for an API call that returns a value at once:
    /// `None` (nothing done) if the driver is busy.
    pub(crate) fn run_now<R>(
        self: &Rc<Self>,
        f: impl FnOnce(&mut Driver, &mut Vec<Action>) -> R,
    ) -> Option<R> {
        let d = self.driver.try_borrow_mut().ok()?;
        let mut out = None;
        self.run_borrowed(d, |d, actions| out = Some(f(d, actions)));
        out
    }

    fn run_borrowed(
        self: &Rc<Self>,
        mut d: std::cell::RefMut<'_, Driver>,
        f: impl FnOnce(&mut Driver, &mut Vec<Action>),
    ) {
        let mut actions = Vec::new();
        f(&mut d, &mut actions);
        self.last_state.set(d.session.state());
        drop(d);
        self.perform(actions);
        // Work queued meanwhile, in arrival order (each may queue more).
        loop {
            let next = self.deferred.borrow_mut().pop_front();
            let Some(f) = next else { break };
            let Ok(mut d) = self.driver.try_borrow_mut() else {
                // An outer run still holds it: it drains the queue.
                self.deferred.borrow_mut().push_front(f);
                break;
            };
            let mut actions = Vec::new();
            f(&mut d, &mut actions);
            self.last_state.set(d.session.state());
            drop(d);
            self.perform(actions);
        }
    }

    /// Feeds a browser happening and performs what follows.
    pub(crate) fn feed(self: &Rc<Self>, incoming: Incoming) {
        self.run(move |d, actions| {
            let _ = d.feed(incoming, actions);
        });
    }

    /// Calls JS. No borrow of the driver is held here, so listeners may
    /// call back into the client (`close()` from a `state` listener).
    fn perform(self: &Rc<Self>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Dispatch(kind, json) => js::rt_emit(&self.listeners, kind, &json),
                Action::Settle(f, v) => {
                    let _ = f.call1(&JsValue::NULL, &v);
                }
                Action::GetToken(req) => {
                    if let Some(f) = &self.get_token {
                        js::rt_token(f, req.0 as f64, &self._sink.wrapper);
                    }
                }
                Action::Log(level, json) => js::rt_log(&self.logger, level.as_str(), &json),
            }
        }
    }
}

/// Turns what `shell.js` reports into an [`Incoming`].
fn decode(k: u32, id: f64, data: JsValue, n: f64) -> Option<Incoming> {
    let sid = SocketId(id as u64);
    let gen = id as u64;
    Some(match k {
        kind::OPEN => Incoming::Opened(sid),
        kind::TEXT => Incoming::Text(sid, data.as_string().unwrap_or_default()),
        kind::BINARY => Incoming::Binary(sid, js::bytes(&data)),
        kind::CLOSE => Incoming::Closed(sid, n as u16, data.as_string().unwrap_or_default()),
        kind::ERROR => Incoming::Error(sid),
        kind::TIMER => Incoming::Timeout,
        kind::ONLINE => Incoming::Online,
        kind::OFFLINE => Incoming::Offline,
        kind::HIDDEN => Incoming::Hidden,
        kind::FROZEN => Incoming::Frozen,
        kind::RESUMED => Incoming::Resumed,
        kind::TOKEN => {
            let text = data.as_string().unwrap_or_default();
            let answer = if n == 1.0 {
                Value::parse(&text)
                    .ok()
                    .as_ref()
                    .and_then(|v| v.get("v"))
                    .ok_or("getToken must resolve to a string or { token, scheme }")
                    .and_then(credential)
                    .map_err(|why| ["getToken must resolve to ", why].concat())
            } else {
                Err(text)
            };
            Incoming::Token(TokenRequest(id as u64), answer)
        }
        kind::MIC_READY => Incoming::MicReady(gen),
        kind::MIC_FAILED => Incoming::MicFailed(
            gen,
            js::rt_get(&data, "name").as_string().unwrap_or_default(),
            js::rt_get(&data, "message").as_string().unwrap_or_default(),
        ),
        kind::MIC_AUDIO | kind::MIC_LAST => {
            Incoming::MicAudio(gen, js::f32s(&data), n as u32, k == kind::MIC_LAST)
        }
        kind::MIC_ENDED => Incoming::MicEnded(
            gen,
            usize::from(data.as_string().as_deref() == Some("systemAudio")),
        ),
        kind::MIC_FINISH => Incoming::MicFinish(gen),
        kind::MIC_SUSPENDED => Incoming::MicSuspended(gen),
        _ => return None,
    })
}

/// Audio handed to [`Driver::push_audio`].
pub(crate) enum AudioIn<'a> {
    F32(&'a [f32]),
    I16(&'a [i16]),
}

/// The capture sources, by channel.
const SOURCES: [&str; 2] = ["microphone", "systemAudio"];

fn error_event(code: &'static str, message: &str) -> Action {
    Action::Dispatch("error", payload::error(code, message, false))
}

impl Driver {
    /// The session's `now` (monotonic), telling the session first when
    /// the wall clock shows the machine slept since the last event.
    fn now(&mut self) -> crate::core::Instant {
        let (now, slept) = self.clock.observe(js::rt_now(), js::rt_wall());
        if let Some(d) = slept {
            let _ = self.session.handle_input(now, Input::Slept(d));
        }
        now
    }

    /// One input, then drain. `Err` only for misuse (API calls).
    pub(crate) fn feed(
        &mut self,
        incoming: Incoming,
        actions: &mut Vec<Action>,
    ) -> Result<(), UsageError> {
        let now = self.now();
        let input = match incoming {
            Incoming::Timeout => {
                self.wake.fired();
                // The timer is a chance to look at the send buffer too: the
                // stall detector needs samples even when no audio is sent.
                if let Some((id, s)) = &self.socket {
                    let (id, b) = (*id, s.buffered_amount());
                    let _ = self.session.handle_input(now, Input::BufferedAmount(id, b));
                }
                Input::Timeout
            }
            Incoming::Opened(id) => Input::SocketOpened(id),
            Incoming::Text(id, t) => {
                let r = self.session.handle_input(now, Input::SocketText(id, &t));
                self.drain(actions);
                return r;
            }
            Incoming::Binary(id, b) => {
                let r = self.session.handle_input(now, Input::SocketBinary(id, &b));
                self.drain(actions);
                return r;
            }
            Incoming::Closed(id, code, reason) => {
                if self.socket.as_ref().is_some_and(|(sid, _)| *sid == id) {
                    // The socket is dead; drop it (listeners first).
                    self.socket = None;
                    if let Some(l) = self.diag.on_close(js::rt_now(), false, code, &reason) {
                        actions.push(Action::Log(l.0, l.1));
                    }
                }
                let r = self.session.handle_input(
                    now,
                    Input::SocketClosed {
                        id,
                        code,
                        reason: &reason,
                    },
                );
                self.drain(actions);
                return r;
            }
            Incoming::Error(id) => Input::SocketError(id),
            Incoming::Online => Input::Online,
            Incoming::Offline => Input::Offline,
            Incoming::Hidden => Input::PageHidden,
            Incoming::Frozen => Input::PageFrozen,
            Incoming::Resumed => Input::PageResumed,
            Incoming::Token(req, t) => Input::Token(req, t),
            Incoming::MicReady(gen) => {
                self.mic_ready(gen, actions);
                return Ok(());
            }
            Incoming::MicFailed(gen, name, message) => {
                self.mic_failed(gen, &name, &message, actions);
                return Ok(());
            }
            Incoming::MicAudio(gen, samples, rate, last) => {
                if self
                    .mic
                    .capture
                    .as_ref()
                    .is_some_and(|c| c.generation == gen)
                {
                    if let Err(e) = self.push_audio(AudioIn::F32(&samples), rate, actions) {
                        actions.push(error_event("audio-format", &e.message()));
                    }
                    if last {
                        self.finish_capture(actions);
                    }
                }
                return Ok(());
            }
            Incoming::MicEnded(gen, source) => {
                let sink = self.sink.clone();
                if let Some(c) = self.mic.capture.as_mut().filter(|c| c.generation == gen) {
                    if !c.is_stopping() && std::mem::take(&mut c.live[source]) {
                        // One source ending leaves its channel silent and
                        // the other running; the last one ending (unplugged,
                        // revoked, sharing stopped) delivers what the worklet
                        // holds, then tears down.
                        actions.push(Action::Dispatch(
                            "capture",
                            payload::capture(SOURCES[source], "ended"),
                        ));
                        if !c.live.contains(&true) {
                            c.stop(&sink);
                            actions.push(if source == 0 {
                                error_event("mic-ended", "the microphone was disconnected or stopped; call startMicrophone() or startCapture() to capture again")
                            } else {
                                error_event("system-audio-ended", "the system audio ended (sharing stopped); call startCapture() to capture again")
                            });
                        }
                    }
                }
                return Ok(());
            }
            Incoming::MicFinish(gen) => {
                if self
                    .mic
                    .capture
                    .as_ref()
                    .is_some_and(|c| c.generation == gen)
                {
                    self.finish_capture(actions);
                }
                return Ok(());
            }
            Incoming::MicSuspended(gen) => {
                if self
                    .mic
                    .capture
                    .as_ref()
                    .is_some_and(|c| c.generation == gen)
                {
                    actions.push(error_event(
                        "audio-suspended",
                        "the AudioContext is suspended by the browser's autoplay policy; capture starts on the next click or key press",
                    ));
                }
                return Ok(());
            }
        };
        let r = match self.session.handle_input(now, input) {
            // A token for an attempt that already timed out: harmless.
            Err(UsageError::UnexpectedToken) => Ok(()),
            r => r,
        };
        self.drain(actions);
        r
    }

    /// Feeds a core input directly (API calls), then drains.
    pub(crate) fn input(
        &mut self,
        input: Input<'_>,
        actions: &mut Vec<Action>,
    ) -> Result<(), UsageError> {
        let now = self.now();
        let r = self.session.handle_input(now, input);
        self.drain(actions);
        r
    }

    /// Converts captured or sent audio and feeds it. Audio that cannot be
    /// converted (an unsupported rate) is reported dropped, never discarded.
    pub(crate) fn push_audio(
        &mut self,
        samples: AudioIn<'_>,
        rate: u32,
        actions: &mut Vec<Action>,
    ) -> Result<(), InterleavedError> {
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        let channels = self.pipeline.channels();
        let (converted, samples) = match samples {
            AudioIn::F32(s) => (self.pipeline.push_f32(s, rate, &mut pcm), s.len()),
            AudioIn::I16(s) => (self.pipeline.push_i16(s, rate, &mut pcm), s.len()),
        };
        let frames = samples / channels;
        let r = match converted {
            Ok(()) => {
                let _ = self.input(Input::Audio(&pcm), actions);
                Ok(())
            }
            Err(e) => {
                let target = u64::from(self.session.config().sample_rate);
                let lost = (frames as u64 * target).div_ceil(u64::from(rate.max(1)));
                let _ = self.input(Input::AudioLost(lost * channels as u64), actions);
                Err(e)
            }
        };
        self.pcm = pcm;
        r
    }

    /// Delivers the resampler's look-ahead (a few ms) into the session, so
    /// nothing captured or sent stays behind in the filter.
    pub(crate) fn flush_pipeline(&mut self, actions: &mut Vec<Action>) {
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        self.pipeline.flush(&mut pcm);
        if !pcm.is_empty() {
            let _ = self.input(Input::Audio(&pcm), actions);
        }
        self.pcm = pcm;
    }

    // --- the microphone -------------------------------------------------

    /// `startMicrophone()`: the latest call wins.
    pub(crate) fn start_mic(
        &mut self,
        o: &CaptureOptions,
        given: &JsValue,
        resolve: Function,
        reject: Function,
        actions: &mut Vec<Action>,
    ) {
        if self.mic.capture.as_ref().is_some_and(|c| c.is_stopping()) {
            // A stop still waiting for the worklet's last batch (switching
            // devices): finish it now, flushing the resampler's tail.
            self.finish_capture(actions);
        }
        let state = self.session.state();
        if state.is_terminal() || state == State::Closing {
            let e = client_error(
                "closed",
                "startMicrophone()/startCapture() after close(): create a new client",
            );
            actions.push(Action::Settle(reject, e));
            return;
        }
        if self.mic.capture.is_some() {
            let e = client_error(
                "mic-active",
                "the microphone is already capturing; call stopMicrophone() first",
            );
            actions.push(Action::Settle(reject, e));
            return;
        }
        self.supersede_start();
        self.mic.generation += 1;
        let channels = self.session.config().channels;
        let capture = Capture::start(o, given, channels, self.mic.generation, &self.sink);
        self.mic.starting = Some(Starting {
            capture,
            resolve,
            reject,
        });
    }

    /// A start still in progress loses to a later call: what it opened
    /// is released now (dropping its capture); it rejects once the browser
    /// reports the end of that start.
    fn supersede_start(&mut self) {
        if let Some(s) = self.mic.starting.take() {
            self.mic.superseded.push((s.capture.generation, s.reject));
        }
    }

    /// Rejects the superseded start `gen`, if it is one. True if it was.
    fn settle_superseded(&mut self, gen: u64, actions: &mut Vec<Action>) -> bool {
        let Some(i) = self.mic.superseded.iter().position(|(g, _)| *g == gen) else {
            return false;
        };
        let (_, reject) = self.mic.superseded.remove(i);
        let e = client_error(
            "mic-superseded",
            "a later startMicrophone(), stopMicrophone() or close() came before this one was running",
        );
        actions.push(Action::Settle(reject, e));
        true
    }

    fn mic_ready(&mut self, gen: u64, actions: &mut Vec<Action>) {
        if self.settle_superseded(gen, actions) {
            return;
        }
        if !self
            .mic
            .starting
            .as_ref()
            .is_some_and(|s| s.capture.generation == gen)
        {
            return;
        }
        let Some(s) = self.mic.starting.take() else {
            return;
        };
        for (i, live) in s.capture.live.iter().enumerate() {
            if *live {
                actions.push(Action::Dispatch(
                    "capture",
                    payload::capture(SOURCES[i], "started"),
                ));
            }
        }
        self.mic.capture = Some(s.capture);
        actions.push(Action::Settle(s.resolve, JsValue::UNDEFINED));
    }

    fn mic_failed(&mut self, gen: u64, name: &str, message: &str, actions: &mut Vec<Action>) {
        if self.settle_superseded(gen, actions) {
            return;
        }
        if !self
            .mic
            .starting
            .as_ref()
            .is_some_and(|s| s.capture.generation == gen)
        {
            return;
        }
        let Some(s) = self.mic.starting.take() else {
            return;
        };
        let code = match name {
            "NotAllowedError" | "SecurityError" => "mic-permission",
            "system-NotAllowedError" | "system-SecurityError" => "system-audio-permission",
            "audio-context" => "audio-context",
            n if n.starts_with("system-") => "system-audio-unavailable",
            _ => "mic-unavailable",
        };
        if code != "audio-context" {
            // Fatal to the capture, not to the session: `fatal` means the
            // session is now failed, and it is not (sendAudio still works,
            // startMicrophone may be retried after the user allows it).
            actions.push(error_event(code, message));
        }
        actions.push(Action::Settle(s.reject, client_error(code, message)));
    }

    /// `stopMicrophone()` and `close()`: stops the input; the capture is torn
    /// down when the worklet's last batch arrives (or the grace ends).
    /// Returns whether a capture was running.
    pub(crate) fn stop_mic(&mut self) -> bool {
        self.mic.generation += 1;
        self.supersede_start();
        let sink = self.sink.clone();
        match self.mic.capture.as_mut() {
            Some(c) => {
                c.stop(&sink);
                true
            }
            None => false,
        }
    }

    /// Resolves `resolve` once the capture is torn down (at once if none).
    pub(crate) fn when_mic_stopped(&mut self, resolve: Function, actions: &mut Vec<Action>) {
        if self.mic.capture.is_some() {
            self.mic.stopped.push(resolve);
        } else {
            actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
        }
    }

    /// Runs the close once the microphone's last samples are in.
    pub(crate) fn close_after_mic(&mut self, flush: bool, timeout: Option<Duration>) {
        self.mic.close_after.get_or_insert((flush, timeout));
    }

    /// Whether the microphone is capturing (not stopping).
    pub(crate) fn capturing(&self) -> bool {
        self.mic.capture.as_ref().is_some_and(|c| !c.is_stopping())
    }

    /// Tears the capture down and flushes the resampler's tail into the
    /// session, so stopping loses nothing; then a waiting close goes ahead.
    fn finish_capture(&mut self, actions: &mut Vec<Action>) {
        if self.mic.capture.take().is_none() {
            return;
        }
        self.flush_pipeline(actions);
        for resolve in self.mic.stopped.drain(..) {
            actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
        }
        if let Some((flush, timeout)) = self.mic.close_after.take() {
            let _ = self.input(Input::Close { flush, timeout }, actions);
        }
    }

    // --- draining --------------------------------------------------------

    /// Carries out every output of the session.
    fn drain(&mut self, actions: &mut Vec<Action>) {
        // Bounded: each round either makes progress or ends; the bound only
        // guards against a bug turning into a frozen tab.
        for _ in 0..64 {
            let mut sent = false;
            loop {
                match self.session.poll_output() {
                    Output::Open { id, url, protocols } => {
                        match Socket::open(id, &url, protocols, &self.sink) {
                            Ok(s) => {
                                if let Some((_, old)) = self.socket.replace((id, s)) {
                                    old.close(1000, "replaced");
                                }
                            }
                            Err(e) => self.later.push(Incoming::Closed(
                                id,
                                1006,
                                ["could not open: ", &e].concat(),
                            )),
                        }
                    }
                    Output::Send(id, frame) => {
                        if let Some((sid, s)) = &self.socket {
                            if *sid == id {
                                sent |= s.send(&frame);
                            }
                        }
                    }
                    Output::Close { id, code, reason } => {
                        if self.socket.as_ref().is_some_and(|(sid, _)| *sid == id) {
                            if let Some((_, s)) = self.socket.take() {
                                s.close(code, &reason);
                            }
                            if let Some(l) = self.diag.on_close(js::rt_now(), true, code, &reason) {
                                actions.push(Action::Log(l.0, l.1));
                            }
                        }
                    }
                    Output::RequestToken(req) => actions.push(Action::GetToken(req)),
                    Output::Event(e) => self.on_event(e, actions),
                    Output::Timeout(at) => {
                        let now = self.now();
                        self.wake.arm(at, now, &self.sink);
                        break;
                    }
                }
            }
            if sent {
                if let Some((id, s)) = &self.socket {
                    let (id, b) = (*id, s.buffered_amount());
                    let now = self.now();
                    let _ = self.session.handle_input(now, Input::BufferedAmount(id, b));
                    continue;
                }
            }
            let Some(next) = (!self.later.is_empty()).then(|| self.later.remove(0)) else {
                break;
            };
            let _ = self.feed(next, actions);
            break;
        }
    }

    fn on_event(&mut self, e: Event, actions: &mut Vec<Action>) {
        // Recorded for diagnostics() always; logged only at its level.
        let queued = if self.diag.level() == LogLevel::Off {
            0.0
        } else {
            self.session.stats().audio_ms_queued
        };
        if let Some((level, json)) = self.diag.on_event(js::rt_now(), &e, queued) {
            actions.push(Action::Log(level, json));
        }
        match &e {
            Event::Open { .. } => {
                self.ready_once = true;
                for (resolve, _) in self.pending.connect.drain(..) {
                    actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
                }
            }
            Event::Error {
                code,
                message,
                fatal: true,
            } => self.fatal = Some((code.as_str(), message.clone())),
            Event::Closed { code, reason } => {
                self.closed(*code, reason, actions);
                return;
            }
            Event::Utterance(u) => {
                if let Some(i) = self.pending.utterances.iter().position(|p| p.0 == u.id) {
                    let (_, resolve, _) = self.pending.utterances.remove(i);
                    let json = payload::utterance(u);
                    actions.push(Action::Settle(resolve, js::rt_parse(&json)));
                }
            }
            _ => {}
        }
        if let Some((kind, json)) = payload::event(&e) {
            actions.push(Action::Dispatch(kind, json));
        }
    }

    /// The session ended: tear everything down, settle every promise, and
    /// dispatch `close` with the summary.
    fn closed(&mut self, code: Option<u16>, reason: &str, actions: &mut Vec<Action>) {
        let stats = payload::stats(&self.session.stats());
        let summary = payload::summary(code, reason, self.session.state().as_str(), &stats);
        self.closed = Some(summary.clone());
        // No timer, socket, microphone or page listener outlives the session.
        let now = self.now();
        self.wake.arm(None, now, &self.sink);
        self.supersede_start();
        for (_, reject) in self.mic.superseded.drain(..) {
            let e = client_error(
                "closed",
                "the client was closed while the microphone was starting",
            );
            actions.push(Action::Settle(reject, e));
        }
        self.mic.capture = None;
        self.mic.close_after = None;
        self.lifecycle = None;
        for resolve in self.mic.stopped.drain(..) {
            actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
        }
        if let Some((_, s)) = self.socket.take() {
            s.close(1000, "closed");
        }
        let (code_s, msg) = match self.fatal.clone() {
            Some(f) => f,
            None => (
                "closed",
                [
                    "the client was closed before the session was ready (",
                    reason,
                    ")",
                ]
                .concat(),
            ),
        };
        for (_, reject) in self.pending.connect.drain(..) {
            actions.push(Action::Settle(reject, client_error(code_s, &msg)));
        }
        // Every ended utterance resolved before `closed`; none is left.
        for (_, _, reject) in self.pending.utterances.drain(..) {
            let e = client_error("closed", "the client closed before the utterance resolved");
            actions.push(Action::Settle(reject, e));
        }
        for resolve in self.pending.close.drain(..) {
            actions.push(Action::Settle(resolve, js::rt_parse(&summary)));
        }
        actions.push(Action::Dispatch("close", summary));
    }
}

impl Drop for Driver {
    /// `free()` / `[Symbol.dispose]()`: the socket, timer, lifecycle
    /// listeners and capture drop with their owners; promises still waiting
    /// are settled so no `await` hangs on a freed client.
    fn drop(&mut self) {
        let freed = || client_error("freed", "the client was freed (free() or Symbol.dispose)");
        for (_, reject) in self.pending.connect.drain(..) {
            let _ = reject.call1(&JsValue::NULL, &freed());
        }
        for (_, _, reject) in self.pending.utterances.drain(..) {
            let _ = reject.call1(&JsValue::NULL, &freed());
        }
        if let Some(s) = self.mic.starting.take() {
            let _ = s.reject.call1(&JsValue::NULL, &freed());
        }
        for (_, reject) in self.mic.superseded.drain(..) {
            let _ = reject.call1(&JsValue::NULL, &freed());
        }
        // A CloseSummary like any other (its stats too), reason "freed".
        let stats = payload::stats(&self.session.stats());
        let summary = js::rt_parse(&payload::summary(None, "freed", "closed", &stats));
        for resolve in self.pending.close.drain(..) {
            let _ = resolve.call1(&JsValue::NULL, &summary);
        }
        for resolve in self.mic.stopped.drain(..) {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }
}
