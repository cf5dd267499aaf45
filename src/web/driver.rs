//! The run loop: feed one input to the core, drain its outputs into browser
//! calls, then, with every borrow released, call JS.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Map, Set};
use wasm_bindgen::prelude::*;

use super::js::{client_error, describe, obj, opt_num, opt_str};
use super::lifecycle::Lifecycle;
use super::socket::Socket;
use super::timer::WakeUp;
use crate::core::audio::AudioPipeline;
use crate::core::{Event, Input, Output, Session, SocketId, Stats, UsageError};

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
    Resumed,
    Token(Result<String, String>),
    Timeout,
}

/// A JS call to make once the driver is no longer borrowed.
pub(crate) enum Action {
    /// Call the listeners of an event type.
    Dispatch(&'static str, JsValue),
    /// Settle a promise.
    Settle(Function, JsValue),
    /// Call `getToken`.
    GetToken,
}

/// What the closures hold (weakly) and the client holds (strongly).
pub(crate) struct Shared {
    pub(crate) driver: RefCell<Driver>,
    /// Event type → Set of listener functions. Kept in JS so `on` can return
    /// a plain JS unsubscribe function.
    pub(crate) listeners: Map,
    pub(crate) get_token: Option<Function>,
}

/// Connect and close promises waiting for the session.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) connect: Vec<(Function, Function)>,
    pub(crate) close: Vec<Function>,
}

/// Everything the run loop mutates.
pub(crate) struct Driver {
    pub(crate) session: Session,
    socket: Option<(SocketId, Socket)>,
    wake: WakeUp,
    _lifecycle: Option<Lifecycle>,
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
    /// The running microphone capture.
    pub(crate) capture: Option<super::capture::Capture>,
    /// `startMicrophone()` is in progress (cleared by `stopMicrophone()` to cancel it).
    pub(crate) capture_starting: bool,
    /// `stopMicrophone()` promises, resolved when the capture is torn down.
    pub(crate) mic_stopped: Vec<Function>,
    /// A `close()` waiting for the microphone's last samples: (flush, timeout).
    pub(crate) close_after_mic: Option<(bool, Option<std::time::Duration>)>,
}

impl Shared {
    pub(crate) fn new(session: Session, get_token: Option<Function>) -> Rc<Shared> {
        let rate = session.config().sample_rate;
        Rc::new_cyclic(|weak: &Weak<Shared>| Shared {
            driver: RefCell::new(Driver {
                session,
                socket: None,
                wake: WakeUp::default(),
                _lifecycle: Some(Lifecycle::attach(weak.clone())),
                pipeline: AudioPipeline::new(rate).expect("sample rate validated by Config"),
                pcm: Vec::new(),
                pending: Pending::default(),
                ready_once: false,
                fatal: None,
                closed: None,
                weak: weak.clone(),
                later: Vec::new(),
                capture: None,
                capture_starting: false,
                mic_stopped: Vec::new(),
                close_after_mic: None,
            }),
            listeners: Map::new(),
            get_token,
        })
    }

    /// Feeds a browser happening and performs what follows.
    pub(crate) fn feed(self: &Rc<Self>, incoming: Incoming) {
        let actions = {
            let Ok(mut d) = self.driver.try_borrow_mut() else {
                // Only possible if a browser API dispatched an event
                // synchronously inside our own call; defer it.
                let weak = Rc::downgrade(self);
                wasm_bindgen_futures::spawn_local(async move {
                    if let Some(s) = weak.upgrade() {
                        s.feed(incoming);
                    }
                });
                return;
            };
            let mut actions = Vec::new();
            let _ = d.feed(incoming, &mut actions);
            actions
        };
        self.perform(actions);
    }

    /// Runs `f` on the driver with the session input it returns, then
    /// performs the actions. For API calls that pass borrowed data.
    pub(crate) fn with_input<R>(
        self: &Rc<Self>,
        f: impl FnOnce(&mut Driver, &mut Vec<Action>) -> R,
    ) -> R {
        let mut actions = Vec::new();
        let r = {
            let mut d = self.driver.borrow_mut();
            f(&mut d, &mut actions)
        };
        self.perform(actions);
        r
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
                Action::GetToken => self.call_get_token(),
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

    fn call_get_token(self: &Rc<Self>) {
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
                        Ok(t) => t
                            .as_string()
                            .ok_or_else(|| "getToken must resolve to a string".to_string()),
                        Err(e) => Err(describe(&e)),
                    }
                }
            };
            if let Some(s) = weak.upgrade() {
                s.feed(Incoming::Token(outcome));
            }
        });
    }
}

impl Driver {
    /// One input, then drain. `Err` only for misuse (API calls).
    pub(crate) fn feed(
        &mut self,
        incoming: Incoming,
        actions: &mut Vec<Action>,
    ) -> Result<(), UsageError> {
        let now = super::now();
        if matches!(incoming, Incoming::Timeout) {
            self.wake.fired();
            // The timer is a chance to look at the send buffer too: the
            // stall detector needs samples even when no audio is sent.
            if let Some((id, s)) = &self.socket {
                let (id, b) = (*id, s.buffered_amount());
                let _ = self.session.handle_input(now, Input::BufferedAmount(id, b));
            }
        }
        let r = match &incoming {
            Incoming::Opened(id) => self.session.handle_input(now, Input::SocketOpened(*id)),
            Incoming::Text(id, t) => self.session.handle_input(now, Input::SocketText(*id, t)),
            Incoming::Binary(id, b) => self.session.handle_input(now, Input::SocketBinary(*id, b)),
            Incoming::Closed(id, code, reason) => {
                if self.socket.as_ref().is_some_and(|(sid, _)| sid == id) {
                    // The socket is dead; drop it (listeners first).
                    self.socket = None;
                }
                self.session.handle_input(
                    now,
                    Input::SocketClosed {
                        id: *id,
                        code: *code,
                        reason,
                    },
                )
            }
            Incoming::Error(id) => self.session.handle_input(now, Input::SocketError(*id)),
            Incoming::Online => self.session.handle_input(now, Input::Online),
            Incoming::Offline => self.session.handle_input(now, Input::Offline),
            Incoming::Hidden => self.session.handle_input(now, Input::PageHidden),
            Incoming::Resumed => self.session.handle_input(now, Input::PageResumed),
            Incoming::Token(t) => match self.session.handle_input(now, Input::Token(t.clone())) {
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
        let r = self.session.handle_input(super::now(), input);
        self.drain(actions);
        r
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
                    Output::RequestToken => actions.push(Action::GetToken),
                    Output::Event(e) => self.on_event(e, actions),
                    Output::Timeout(at) => {
                        self.wake.arm(at, super::now(), &self.weak);
                        break;
                    }
                }
            }
            let now = super::now();
            if sent {
                if let Some((id, s)) = &self.socket {
                    let (id, b) = (*id, s.buffered_amount());
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
            Event::Transcript(t) => actions.push(Action::Dispatch(
                "transcript",
                obj(&[
                    ("text", t.text.into()),
                    ("isFinal", t.is_final.into()),
                    ("speechFinal", t.speech_final.into()),
                    ("start", t.start.into()),
                    ("end", t.end.into()),
                    ("speaker", opt_str(t.speaker.as_deref())),
                    ("channel", t.channel.into()),
                ]),
            )),
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
                self.wake.arm(None, super::now(), &self.weak);
                self.capture = None;
                self.capture_starting = false;
                self.close_after_mic = None;
                // A closed client needs no page lifecycle events either.
                self._lifecycle = None;
                for resolve in self.mic_stopped.drain(..) {
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
        for resolve in self.mic_stopped.drain(..) {
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
    ])
}
