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

use js_sys::{Function, Map, Set};
use wasm_bindgen::prelude::*;

use super::js::{client_error, describe, obj, opt_num, opt_str};
use super::lifecycle::Lifecycle;
use super::socket::Socket;
use super::timer::WakeUp;
use crate::core::audio::AudioPipeline;
use crate::core::{
    Clock, Credential, Event, Input, Output, Session, SocketId, State, Stats, TokenRequest,
    TokenScheme, UsageError,
};

/// Browser happenings, owned (the core's [`Input`] borrows).
#[derive(Debug, Clone)]
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
}

/// A JS call to make once the driver is no longer borrowed.
pub(crate) enum Action {
    /// Call the listeners of an event type.
    Dispatch(&'static str, JsValue),
    /// Settle a promise.
    Settle(Function, JsValue),
    /// Call `getToken` for this request.
    GetToken(TokenRequest),
}

type Deferred = Box<dyn FnOnce(&mut Driver, &mut Vec<Action>)>;

/// What the closures hold (weakly) and the client holds (strongly).
pub(crate) struct Shared {
    pub(crate) driver: RefCell<Driver>,
    /// Event type → Set of listener functions. Kept in JS so `on` can return
    /// a plain JS unsubscribe function.
    pub(crate) listeners: Map,
    pub(crate) get_token: Option<Function>,
    /// Work that arrived while the driver was borrowed, run in order as
    /// soon as it is free.
    deferred: RefCell<VecDeque<Deferred>>,
    /// The state after the last run, for getters called re-entrantly.
    pub(crate) last_state: Cell<State>,
}

/// Connect and close promises waiting for the session.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) connect: Vec<(Function, Function)>,
    pub(crate) close: Vec<Function>,
}

/// Microphone bookkeeping.
#[derive(Default)]
pub(crate) struct Mic {
    /// The running capture.
    pub(crate) capture: Option<super::capture::Capture>,
    /// Bumped by every `startMicrophone()` and `stopMicrophone()`: a start
    /// still in progress whose generation is no longer current lost the
    /// race (a later start or a stop came in) and rejects.
    pub(crate) generation: u64,
    /// The generation of the start in progress, if any.
    pub(crate) starting: Option<u64>,
    /// `stopMicrophone()` promises, resolved when the capture is torn down.
    pub(crate) stopped: Vec<Function>,
    /// A `close()` waiting for the microphone's last samples: (flush, timeout).
    pub(crate) close_after: Option<(bool, Option<std::time::Duration>)>,
}

/// Everything the run loop mutates.
pub(crate) struct Driver {
    pub(crate) session: Session,
    socket: Option<(SocketId, Socket)>,
    wake: WakeUp,
    lifecycle: Option<Lifecycle>,
    clock: Clock,
    pub(crate) pipeline: AudioPipeline,
    pub(crate) pcm: Vec<i16>,
    pub(crate) pending: Pending,
    pub(crate) ready_once: bool,
    /// The fatal error, for rejecting `connect()`.
    fatal: Option<(String, String)>,
    /// The final `close` payload, once closed.
    pub(crate) closed: Option<JsValue>,
    weak: Weak<Shared>,
    /// Inputs produced while draining (e.g. a socket that failed to open).
    later: Vec<Incoming>,
    pub(crate) mic: Mic,
}

impl Shared {
    pub(crate) fn new(session: Session, get_token: Option<Function>) -> Rc<Shared> {
        let rate = session.config().sample_rate;
        Rc::new_cyclic(|weak: &Weak<Shared>| Shared {
            driver: RefCell::new(Driver {
                session,
                socket: None,
                wake: WakeUp::default(),
                lifecycle: Some(Lifecycle::attach(weak.clone())),
                clock: Clock::new(),
                pipeline: AudioPipeline::new(rate).expect("sample rate validated by Config"),
                pcm: Vec::new(),
                pending: Pending::default(),
                ready_once: false,
                fatal: None,
                closed: None,
                weak: weak.clone(),
                later: Vec::new(),
                mic: Mic::default(),
            }),
            listeners: Map::new(),
            get_token,
            deferred: RefCell::new(VecDeque::new()),
            last_state: Cell::new(State::Idle),
        })
    }

    /// Runs `f` on the driver, then performs the JS calls it collected
    /// with no borrow held. The one way in: when the driver is busy (a
    /// browser API dispatched an event synchronously inside our own call),
    /// `f` waits and runs right after the current work, never panics.
    pub(crate) fn run(self: &Rc<Self>, f: impl FnOnce(&mut Driver, &mut Vec<Action>) + 'static) {
        let Ok(mut d) = self.driver.try_borrow_mut() else {
            self.deferred.borrow_mut().push_back(Box::new(f));
            return;
        };
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
    pub(crate) fn perform(self: &Rc<Self>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Dispatch(kind, payload) => self.dispatch(kind, &payload),
                Action::Settle(f, v) => {
                    let _ = f.call1(&JsValue::NULL, &v);
                }
                Action::GetToken(req) => self.call_get_token(req),
            }
        }
    }

    /// Calls every listener of `kind`. A throwing listener never breaks the
    /// client: its exception becomes an `error` event.
    pub(crate) fn dispatch(self: &Rc<Self>, kind: &'static str, payload: &JsValue) {
        let Some(set) = self
            .listeners
            .get(&JsValue::from_str(kind))
            .dyn_into::<Set>()
            .ok()
        else {
            return;
        };
        // Snapshot: listeners added or removed during dispatch take effect next time.
        let fns = js_sys::Array::from(&set);
        for f in fns.iter() {
            let Ok(f) = f.dyn_into::<Function>() else {
                continue;
            };
            if let Err(e) = f.call1(&JsValue::NULL, payload) {
                let message = format!("a \"{kind}\" listener threw: {}", describe(&e));
                if kind == "error" {
                    // Reporting an error listener's error to itself would loop.
                    web_sys::console::error_2(&JsValue::from_str(&message), &e);
                } else {
                    let p = obj(&[
                        ("code", "listener".into()),
                        ("message", message.into()),
                        ("fatal", false.into()),
                        ("cause", e),
                    ]);
                    self.dispatch("error", &p);
                }
            }
        }
    }

    fn call_get_token(self: &Rc<Self>, req: TokenRequest) {
        let Some(f) = self.get_token.clone() else {
            return;
        };
        let weak = Rc::downgrade(self);
        let result = f.call0(&JsValue::NULL);
        wasm_bindgen_futures::spawn_local(async move {
            let outcome = match result {
                Err(e) => Err(describe(&e)),
                Ok(v) => {
                    match wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&v)).await {
                        Ok(t) => credential(&t).map_err(str::to_string),
                        Err(e) => Err(describe(&e)),
                    }
                }
            };
            if let Some(s) = weak.upgrade() {
                s.feed(Incoming::Token(req, outcome));
            }
        });
    }
}

/// A credential from JS: a string (an API key, the `token` scheme) or
/// `{ token, scheme: "token" | "bearer" }` (Deepgram's short-lived JWTs use
/// `bearer`).
pub(crate) fn credential(v: &JsValue) -> Result<Credential, &'static str> {
    if let Some(t) = v.as_string() {
        return Ok(Credential::token(t));
    }
    const SHAPE: &str =
        "a token must be a string or { token: string, scheme?: \"token\" | \"bearer\" }";
    if !v.is_object() {
        return Err(SHAPE);
    }
    let get = |k: &str| js_sys::Reflect::get(v, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let token = get("token").as_string().ok_or(SHAPE)?;
    let scheme = match get("scheme") {
        s if s.is_undefined() => TokenScheme::Token,
        s => match s.as_string().as_deref() {
            Some("token") => TokenScheme::Token,
            Some("bearer") => TokenScheme::Bearer,
            _ => return Err(SHAPE),
        },
    };
    Ok(Credential { token, scheme })
}

impl Driver {
    /// The session's `now` (monotonic), telling the session first when
    /// the wall clock shows the machine slept since the last event.
    fn now(&mut self) -> crate::core::Instant {
        let (now, slept) = self.clock.observe(super::mono_ms(), js_sys::Date::now());
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
        if matches!(incoming, Incoming::Timeout) {
            self.wake.fired();
            // The timer is a chance to look at the send buffer too: the
            // stall detector needs samples even when no audio is sent.
            if let Some((id, s)) = &self.socket {
                let (id, b) = (*id, s.buffered_amount());
                let _ = self.session.handle_input(now, Input::BufferedAmount(id, b));
            }
        }
        let r = match incoming {
            Incoming::Opened(id) => self.session.handle_input(now, Input::SocketOpened(id)),
            Incoming::Text(id, t) => self.session.handle_input(now, Input::SocketText(id, &t)),
            Incoming::Binary(id, b) => self.session.handle_input(now, Input::SocketBinary(id, &b)),
            Incoming::Closed(id, code, reason) => {
                if self.socket.as_ref().is_some_and(|(sid, _)| *sid == id) {
                    // The socket is dead; drop it (listeners first).
                    self.socket = None;
                }
                self.session.handle_input(
                    now,
                    Input::SocketClosed {
                        id,
                        code,
                        reason: &reason,
                    },
                )
            }
            Incoming::Error(id) => self.session.handle_input(now, Input::SocketError(id)),
            Incoming::Online => self.session.handle_input(now, Input::Online),
            Incoming::Offline => self.session.handle_input(now, Input::Offline),
            Incoming::Hidden => self.session.handle_input(now, Input::PageHidden),
            Incoming::Frozen => self.session.handle_input(now, Input::PageFrozen),
            Incoming::Resumed => self.session.handle_input(now, Input::PageResumed),
            Incoming::Token(req, t) => match self.session.handle_input(now, Input::Token(req, t)) {
                // A token for an attempt that already timed out: harmless.
                Err(UsageError::UnexpectedToken) => Ok(()),
                r => r,
            },
            Incoming::Timeout => self.session.handle_input(now, Input::Timeout),
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
    ) -> Result<(), crate::core::audio::ResampleError> {
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        let (converted, frames) = match samples {
            AudioIn::F32(s) => (self.pipeline.push_f32(s, rate, &mut pcm), s.len()),
            AudioIn::I16(s) => (self.pipeline.push_i16(s, rate, &mut pcm), s.len()),
        };
        let r = match converted {
            Ok(()) => {
                let _ = self.input(Input::Audio(&pcm), actions);
                Ok(())
            }
            Err(e) => {
                let target = u64::from(self.session.config().sample_rate);
                let lost = (frames as u64 * target).div_ceil(u64::from(rate.max(1)));
                let _ = self.input(Input::AudioLost(lost), actions);
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

    /// Carries out every output of the session.
    fn drain(&mut self, actions: &mut Vec<Action>) {
        // Bounded: each round either makes progress or ends; the bound only
        // guards against a bug turning into a frozen tab.
        for _ in 0..64 {
            let mut sent = false;
            loop {
                match self.session.poll_output() {
                    Output::Open { id, url, protocols } => {
                        match Socket::open(id, &url, &protocols, self.weak.clone()) {
                            Ok(s) => {
                                if let Some((_, old)) = self.socket.replace((id, s)) {
                                    old.close(1000, "replaced");
                                }
                            }
                            Err(e) => self.later.push(Incoming::Closed(
                                id,
                                1006,
                                format!("could not open: {e}"),
                            )),
                        }
                    }
                    Output::Send(id, frame) => {
                        if let Some((sid, s)) = &self.socket {
                            if *sid == id {
                                s.send(&frame);
                                sent = true;
                            }
                        }
                    }
                    Output::Close { id, code, reason } => {
                        if self.socket.as_ref().is_some_and(|(sid, _)| *sid == id) {
                            let (_, s) = self.socket.take().expect("checked above");
                            s.close(code, &reason);
                        }
                    }
                    Output::RequestToken(req) => actions.push(Action::GetToken(req)),
                    Output::Event(e) => self.on_event(e, actions),
                    Output::Timeout(at) => {
                        let now = self.now();
                        self.wake.arm(at, now, &self.weak);
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
            let mut nested = Vec::new();
            let _ = self.feed(next, &mut nested);
            actions.extend(nested);
            break;
        }
    }

    fn on_event(&mut self, e: Event, actions: &mut Vec<Action>) {
        match e {
            Event::State(s) => actions.push(Action::Dispatch(
                "state",
                obj(&[
                    ("state", s.state.as_str().into()),
                    ("previous", s.previous.as_str().into()),
                    ("attempt", s.attempt.into()),
                    (
                        "retryInMs",
                        opt_num(s.retry_in.map(|d| d.as_millis() as f64)),
                    ),
                    ("reason", opt_str(s.reason.as_deref())),
                ]),
            )),
            Event::Open {
                connection,
                backlog_chunks,
                resume_offset,
            } => {
                self.ready_once = true;
                for (resolve, _) in self.pending.connect.drain(..) {
                    actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
                }
                actions.push(Action::Dispatch(
                    "open",
                    obj(&[
                        ("connection", connection.into()),
                        ("backlogChunks", backlog_chunks.into()),
                        ("resumeOffset", opt_num(resume_offset.map(|o| o as f64))),
                    ]),
                ));
            }
            Event::Transcript(t) => {
                let words = js_sys::Array::new();
                for w in &t.words {
                    words.push(&obj(&[
                        ("word", w.word.as_str().into()),
                        ("start", w.start.into()),
                        ("end", w.end.into()),
                    ]));
                }
                actions.push(Action::Dispatch(
                    "transcript",
                    obj(&[
                        ("text", t.text.into()),
                        ("isFinal", t.is_final.into()),
                        ("speechFinal", t.speech_final.into()),
                        ("start", t.start.into()),
                        ("end", t.end.into()),
                        ("speaker", opt_str(t.speaker.as_deref())),
                        ("channel", t.channel.into()),
                        ("words", words.into()),
                    ]),
                ))
            }
            Event::Message(text) => {
                actions.push(Action::Dispatch("message", obj(&[("data", text.into())])))
            }
            Event::Dropped(d) => actions.push(Action::Dispatch(
                "dropped",
                obj(&[
                    ("chunks", d.chunks.into()),
                    ("bytes", (d.bytes as f64).into()),
                    ("audioMs", d.audio_ms.into()),
                    ("reason", d.reason.as_str().into()),
                ]),
            )),
            Event::Error {
                code,
                message,
                fatal,
            } => {
                if fatal {
                    self.fatal = Some((code.as_str().to_string(), message.clone()));
                }
                actions.push(Action::Dispatch(
                    "error",
                    obj(&[
                        ("code", code.as_str().into()),
                        ("message", message.into()),
                        ("fatal", fatal.into()),
                    ]),
                ));
            }
            Event::Reconnecting { attempt, delay } => actions.push(Action::Dispatch(
                "reconnecting",
                obj(&[
                    ("attempt", attempt.into()),
                    ("delayMs", (delay.as_millis() as f64).into()),
                ]),
            )),
            Event::Closed { code, reason } => {
                let summary = obj(&[
                    ("code", opt_num(code.map(f64::from))),
                    ("reason", reason.clone().into()),
                    ("state", self.session.state().as_str().into()),
                    ("stats", stats_js(&self.session.stats())),
                ]);
                self.closed = Some(summary.clone());
                // Tear down now: no timer, socket or microphone outlives
                // the session.
                let now = self.now();
                self.wake.arm(None, now, &self.weak);
                self.mic.capture = None;
                self.mic.starting = None;
                self.mic.close_after = None;
                // A closed client needs no page lifecycle events either.
                self.lifecycle = None;
                for resolve in self.mic.stopped.drain(..) {
                    actions.push(Action::Settle(resolve, JsValue::UNDEFINED));
                }
                if let Some((_, s)) = self.socket.take() {
                    s.close(1000, "closed");
                }
                let (code_s, msg) = self.fatal.clone().unwrap_or_else(|| {
                    (
                        "closed".to_string(),
                        format!("the client was closed before the session was ready ({reason})"),
                    )
                });
                for (_, reject) in self.pending.connect.drain(..) {
                    actions.push(Action::Settle(reject, client_error(&code_s, &msg)));
                }
                for resolve in self.pending.close.drain(..) {
                    actions.push(Action::Settle(resolve, summary.clone()));
                }
                actions.push(Action::Dispatch("close", summary));
            }
        }
    }
}

/// Audio handed to [`Driver::push_audio`].
pub(crate) enum AudioIn<'a> {
    F32(&'a [f32]),
    I16(&'a [i16]),
}

impl Drop for Driver {
    /// `free()` / `[Symbol.dispose]()`: the socket, timer, lifecycle
    /// listeners and capture drop with their owners; promises still waiting
    /// are settled so no `await` hangs on a freed client.
    fn drop(&mut self) {
        for (_, reject) in self.pending.connect.drain(..) {
            let _ = reject.call1(
                &JsValue::NULL,
                &client_error("freed", "the client was freed (free() or Symbol.dispose)"),
            );
        }
        let summary = obj(&[
            ("code", JsValue::NULL),
            ("reason", "freed".into()),
            ("state", "closed".into()),
        ]);
        for resolve in self.pending.close.drain(..) {
            let _ = resolve.call1(&JsValue::NULL, &summary);
        }
        // The capture (and its grace timer) drops with the driver.
        for resolve in self.mic.stopped.drain(..) {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }
}

/// `stats()` as a JS object.
pub(crate) fn stats_js(s: &Stats) -> JsValue {
    let n = |v: u64| JsValue::from_f64(v as f64);
    obj(&[
        ("bytesPushed", n(s.bytes_pushed)),
        ("bytesSent", n(s.bytes_sent)),
        ("bytesAcked", n(s.bytes_acked)),
        ("bytesQueued", n(s.bytes_queued)),
        ("bytesDropped", n(s.bytes_dropped)),
        ("bytesResent", n(s.bytes_resent)),
        ("chunksPushed", n(s.chunks_pushed)),
        ("chunksSent", n(s.chunks_sent)),
        ("chunksQueued", n(s.chunks_queued)),
        ("chunksDropped", n(s.chunks_dropped)),
        ("chunksReplayed", n(s.chunks_replayed)),
        ("audioMsQueued", s.audio_ms_queued.into()),
        ("audioMsDropped", s.audio_ms_dropped.into()),
        ("attempts", n(s.attempts)),
        ("reconnects", n(s.reconnects)),
        ("keepalivesSent", n(s.keepalives_sent)),
        ("messagesReceived", n(s.messages_received)),
        ("transcripts", n(s.transcripts)),
        ("bufferedAmount", n(s.buffered_amount)),
        ("serverOffset", opt_num(s.server_offset.map(|o| o as f64))),
        ("probesFailed", n(s.probes_failed)),
        (
            "duplicateFinalsSuppressed",
            n(s.duplicate_finals_suppressed),
        ),
    ])
}
