//! The harness: one [`Session`] on a virtual clock, the [`FakeServer`] and
//! the [`Mic`]. [`Harness::step`] does the next thing (a scheduled delivery,
//! a server timer, a fault, a microphone push or the session's timeout);
//! draining the session and the invariants checked after every drain are
//! in `drain.rs`, the helpers that look at what happened in `observe.rs`.

mod drain;
mod observe;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use resilient_transcriber::core::{
    Config, Credential, Event, Input, Instant, Provider, Session, SocketId, State, TokenRequest,
};

use super::audio::{samples, RATE};
use super::mic::Mic;
use super::ms;
use super::server::{config, FakeServer, Fault, ServerTimer};

// --- what travels ------------------------------------------------------------

/// An input for the session, owned so it can wait in the schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Deliver {
    /// `Input::SocketOpened`.
    Opened(SocketId),
    /// `Input::SocketText`.
    Text(SocketId, String),
    /// `Input::SocketBinary`.
    Binary(SocketId, Vec<u8>),
    /// `Input::SocketClosed`.
    Closed(SocketId, u16, String),
    /// `Input::SocketError`.
    Error(SocketId),
    /// `Input::BufferedAmount`.
    Buffered(SocketId, u64),
    /// `Input::Online`.
    Online,
    /// `Input::Offline`.
    Offline,
    /// `Input::PageHidden`.
    PageHidden,
    /// `Input::PageFrozen`.
    PageFrozen,
    /// `Input::PageResumed`.
    PageResumed,
    /// `Input::Slept`.
    Slept(Duration),
    /// `Input::BeginUtterance` with this pre-roll.
    Begin(Option<Duration>),
    /// `Input::EndUtterance`.
    End,
    /// `Input::Token`, answering the request with this id.
    Token(TokenRequest, Result<String, String>),
    /// `Input::Close`.
    Close {
        /// Flush first.
        flush: bool,
        /// Bound on the close.
        timeout: Option<Duration>,
    },
}

impl Deliver {
    fn socket(&self) -> Option<SocketId> {
        match self {
            Deliver::Opened(id)
            | Deliver::Text(id, _)
            | Deliver::Binary(id, _)
            | Deliver::Closed(id, ..)
            | Deliver::Error(id)
            | Deliver::Buffered(id, _) => Some(*id),
            _ => None,
        }
    }

    fn as_input(&self) -> Input<'_> {
        match self {
            Deliver::Opened(id) => Input::SocketOpened(*id),
            Deliver::Text(id, s) => Input::SocketText(*id, s),
            Deliver::Binary(id, b) => Input::SocketBinary(*id, b),
            Deliver::Closed(id, code, reason) => Input::SocketClosed {
                id: *id,
                code: *code,
                reason,
            },
            Deliver::Error(id) => Input::SocketError(*id),
            Deliver::Buffered(id, n) => Input::BufferedAmount(*id, *n),
            Deliver::Online => Input::Online,
            Deliver::Offline => Input::Offline,
            Deliver::PageHidden => Input::PageHidden,
            Deliver::PageFrozen => Input::PageFrozen,
            Deliver::PageResumed => Input::PageResumed,
            Deliver::Slept(d) => Input::Slept(*d),
            Deliver::Begin(pre_roll) => Input::BeginUtterance {
                pre_roll: *pre_roll,
            },
            Deliver::End => Input::EndUtterance,
            Deliver::Token(id, r) => Input::Token(*id, r.clone().map(Credential::token)),
            Deliver::Close { flush, timeout } => Input::Close {
                flush: *flush,
                timeout: *timeout,
            },
        }
    }
}

/// Something waiting in the harness's schedule.
#[derive(Debug, Clone)]
pub(super) enum Scheduled {
    /// From the server, over the socket: lost if the socket is blackholed.
    FromServer(Deliver),
    /// From the page (token, lifecycle, an injected stale event).
    Client(Deliver),
    Server(ServerTimer),
    Fault(Fault),
}

// --- the harness --------------------------------------------------------------

/// A client-side record of something the session sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Audio: first position and samples.
    Audio(u64, u64),
    /// A text frame.
    Text(String),
    /// A binary frame that is not audio (Omi keepalive).
    Other(usize),
}

/// A session, a clock, a server, a microphone.
pub struct Harness {
    /// The session under test.
    pub session: Session,
    /// Virtual now.
    pub now: Instant,
    /// The scripted server.
    pub server: FakeServer,
    /// The microphone.
    pub mic: Mic,
    /// Every event, with its time.
    pub events: Vec<(Instant, Event)>,
    /// Every `Output::Open`: time, id, protocols.
    pub opens: Vec<(Instant, SocketId, Vec<String>)>,
    /// Every frame the session sent, client side (reached the server or not).
    pub sent: Vec<(Instant, SocketId, Sent)>,
    /// Every `Output::Close`: time, id, code, reason.
    pub closes: Vec<(Instant, SocketId, u16, String)>,
    /// Times of `Output::RequestToken`.
    pub token_requests: Vec<Instant>,
    /// Answers to token requests, in order; when empty, `Ok("tok-N")`.
    pub token_script: VecDeque<Result<String, String>>,
    /// Delay of `getToken`.
    pub token_delay: Duration,
    /// Per-request delays of `getToken`, in order; when empty, `token_delay`.
    pub token_delays: VecDeque<Duration>,
    /// Report `bufferedAmount` as a browser on a healthy link does: right
    /// after a send it reads the bytes just sent, and it is back to zero
    /// by the next timer (the shell samples at both moments). Without it,
    /// only held buffers (`HoldBuffered`) are sampled.
    pub browser_buffer: bool,
    unsampled_bytes: u64,
    /// Errors returned by `handle_input` (misuse), with their time.
    pub usage_errors: Vec<(Instant, String)>,
    /// Steps taken.
    pub steps: u64,
    /// Check the stats invariants after every drain (costs a queue walk).
    pub check_stats: bool,
    deadline: Option<Instant>,
    schedule: BTreeMap<(Instant, u64), Scheduled>,
    seq: u64,
    frozen_until: Option<Instant>,
    same_instant: u64,
    last_step_at: Instant,
    terminal: Option<State>,
    closed_seen: bool,
    in_audio: bool,
    /// The test pushes audio of its own (not the mic's self-describing
    /// stream): frames are recorded by length, not decoded.
    pub opaque_audio: bool,
    dropped_in_events: u64,
    trace: VecDeque<String>,
    last_buffered: HashMap<SocketId, u64>,
}

/// Steps at one instant before the harness calls it a busy loop.
const MAX_STEPS_AT_ONE_INSTANT: u64 = 10_000;

impl Harness {
    /// A harness with the default configuration of `provider`.
    pub fn new(provider: Provider) -> Harness {
        Harness::with_config(config(provider))
    }

    /// A harness around a session made from `cfg`.
    pub fn with_config(cfg: Config) -> Harness {
        assert_eq!(
            u64::from(cfg.sample_rate),
            RATE,
            "the harness mic runs at {RATE} Hz"
        );
        let provider = cfg.provider;
        let channels = u64::from(cfg.channels);
        let every = Duration::from_millis(u64::from(cfg.chunk_ms));
        let mut server = FakeServer::new(provider);
        server.positions_are_offsets = cfg.push_to_talk.is_none();
        server.channels = channels;
        Harness {
            session: Session::new(cfg).expect("valid config"),
            now: Instant::from_millis(0),
            server,
            mic: Mic {
                on: false,
                every,
                next_at: Instant::from_millis(0),
                pos: 0,
                channels,
            },
            events: Vec::new(),
            opens: Vec::new(),
            sent: Vec::new(),
            closes: Vec::new(),
            token_requests: Vec::new(),
            token_script: VecDeque::new(),
            token_delay: ms(50),
            token_delays: VecDeque::new(),
            browser_buffer: false,
            unsampled_bytes: 0,
            usage_errors: Vec::new(),
            steps: 0,
            check_stats: true,
            deadline: None,
            schedule: BTreeMap::new(),
            seq: 0,
            frozen_until: None,
            same_instant: 0,
            last_step_at: Instant::from_millis(0),
            terminal: None,
            closed_seen: false,
            in_audio: false,
            opaque_audio: false,
            dropped_in_events: 0,
            trace: VecDeque::new(),
            last_buffered: HashMap::new(),
        }
    }

    // --- driving ---

    /// `Input::Connect`, now.
    pub fn connect(&mut self) {
        self.input(Input::Connect).expect("connect");
    }

    /// Feeds one input now and drains.
    pub fn input(&mut self, input: Input<'_>) -> Result<(), String> {
        let timeout = matches!(input, Input::Timeout);
        self.note(format!("in  {:?}", brief_input(&input)));
        let r = self.session.handle_input(self.now, input);
        self.drain(timeout);
        r.map_err(|e| {
            let s = e.to_string();
            self.usage_errors.push((self.now, s.clone()));
            s
        })
    }

    /// Pushes `n` samples of the mic's stream now.
    pub fn push_audio(&mut self, n: u64) {
        let pcm = samples(self.mic.pos, n);
        self.mic.pos += n;
        self.note(format!("in  audio {n}"));
        self.session
            .handle_input(self.now, Input::Audio(&pcm))
            .expect("audio is never misuse");
        self.in_audio = true;
        self.drain(false);
        self.in_audio = false;
    }

    /// Starts the microphone: a push every chunk interval from now on.
    pub fn mic_start(&mut self) {
        self.mic.on = true;
        self.mic.next_at = self.now + self.mic.every;
    }

    /// Stops the microphone.
    pub fn mic_stop(&mut self) {
        self.mic.on = false;
    }

    /// Schedules a fault at `at`.
    pub fn at(&mut self, at: Instant, fault: Fault) {
        self.schedule(at, Scheduled::Fault(fault));
    }

    /// Applies a fault now (the server acts at once; its frames still take
    /// the latency to arrive).
    pub fn fault(&mut self, fault: Fault) {
        self.server.apply(self.now, fault);
        self.absorb();
    }

    /// Schedules a page-side input at `at` (lifecycle, close, a stale event).
    pub fn client_at(&mut self, at: Instant, d: Deliver) {
        self.schedule(at, Scheduled::Client(d));
    }

    /// The page (and the microphone) is frozen for `d` from now: a laptop
    /// lid closed, a tab frozen. Nothing reaches the session until then;
    /// everything that happened meanwhile is delivered at once on waking.
    /// The server carries on.
    pub fn freeze_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.frozen_until = Some(until);
        if self.mic.next_at < until {
            // No capture while asleep: the stream resumes where it stopped.
            self.mic.next_at = until + self.mic.every;
        }
    }

    fn schedule(&mut self, at: Instant, s: Scheduled) {
        self.seq += 1;
        self.schedule.insert((at, self.seq), s);
    }

    fn absorb(&mut self) {
        for (at, s) in std::mem::take(&mut self.server.out) {
            self.schedule(at, s);
        }
    }

    fn effective(&self, at: Instant, client_bound: bool) -> Instant {
        match self.frozen_until {
            Some(u) if client_bound && at < u => u,
            _ => at,
        }
    }

    /// The next scheduled item by effective time (freeze-aware).
    fn next_scheduled(&self) -> Option<(Instant, (Instant, u64))> {
        let mut best: Option<(Instant, (Instant, u64))> = None;
        for (key, s) in &self.schedule {
            let client_bound = matches!(s, Scheduled::FromServer(_) | Scheduled::Client(_));
            let eff = self.effective(key.0, client_bound);
            let better = match best {
                None => true,
                Some((b, bk)) => (eff, *key) < (b, bk),
            };
            if better {
                best = Some((eff, *key));
            }
            if self.frozen_until.is_none() {
                break; // keys are in time order
            }
        }
        best
    }

    /// When the next thing happens, if anything is pending.
    pub fn next_time(&self) -> Option<Instant> {
        let a = self.next_scheduled().map(|(t, _)| t);
        let b = self.mic.on.then_some(self.mic.next_at);
        let c = self.deadline.map(|d| self.effective(d, true));
        [a, b, c].into_iter().flatten().min()
    }

    /// Advances the clock to the next thing and does it. False when idle.
    pub fn step(&mut self) -> bool {
        let Some(next) = self.next_time() else {
            return false;
        };
        let at = next.max(self.now);
        if at == self.last_step_at {
            self.same_instant += 1;
            if self.same_instant > MAX_STEPS_AT_ONE_INSTANT {
                self.fail(&format!(
                    "no progress: {MAX_STEPS_AT_ONE_INSTANT} steps at t={} ms (busy loop?)",
                    at.as_millis()
                ));
            }
        } else {
            self.same_instant = 0;
            self.last_step_at = at;
        }
        self.now = at;
        if self.frozen_until.is_some_and(|u| u <= at) {
            self.frozen_until = None;
        }
        self.steps += 1;
        if let Some((eff, key)) = self.next_scheduled() {
            if eff <= at {
                let s = self.schedule.remove(&key).expect("present");
                self.run_scheduled(s);
                return true;
            }
        }
        if self.mic.on && self.mic.next_at <= at {
            let n = self.mic.samples_per_push();
            self.mic.next_at = self.mic.next_at + self.mic.every;
            self.push_audio(n);
            return true;
        }
        if self.deadline.is_some_and(|d| d <= at) {
            self.sample_before_timer();
            let _ = self.input(Input::Timeout);
        }
        true
    }

    fn run_scheduled(&mut self, s: Scheduled) {
        match s {
            Scheduled::FromServer(d) => {
                let lost = d
                    .socket()
                    .and_then(|id| self.server.sockets.get(&id))
                    .is_some_and(|s| s.blackholed);
                if !lost {
                    let _ = self.input(d.as_input());
                }
            }
            Scheduled::Client(d) => {
                let _ = self.input(d.as_input());
            }
            Scheduled::Server(t) => {
                self.server.on_timer(self.now, t);
                self.absorb();
            }
            Scheduled::Fault(f) => {
                self.note(format!("fault {f:?}"));
                self.server.apply(self.now, f);
                self.absorb();
            }
        }
    }

    /// Steps until `until` (everything due at `until` included), then sets
    /// the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
        while self.next_time().is_some_and(|t| t <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Steps until nothing is pending; panics if that takes more than
    /// `max_steps` (the session never settles).
    pub fn drive_bounded(&mut self, max_steps: u64) {
        for _ in 0..max_steps {
            if !self.step() {
                return;
            }
        }
        self.fail(&format!(
            "did not settle within {max_steps} steps (t={} ms, state {:?}, deadline {:?})",
            self.now.as_millis(),
            self.session.state(),
            self.deadline
        ));
    }

    /// Runs until `pred` holds (checked after every step) or `limit` of
    /// virtual time passes; returns when it held, or panics.
    pub fn run_until_pred(
        &mut self,
        limit: Duration,
        what: &str,
        mut pred: impl FnMut(&Harness) -> bool,
    ) -> Instant {
        let end = self.now + limit;
        loop {
            if pred(self) {
                return self.now;
            }
            match self.next_time() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => self.fail(&format!(
                    "{what}: not reached within {} ms",
                    limit.as_millis()
                )),
            }
        }
    }
}

fn brief_input(i: &Input<'_>) -> String {
    match i {
        Input::Audio(s) => format!("Audio({} samples)", s.len()),
        Input::SocketBinary(id, b) => format!("SocketBinary({id:?}, {} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}
