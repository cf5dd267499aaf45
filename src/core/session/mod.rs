//! The session: one audio stream to one backend, over as many sockets as
//! it takes. Sans-IO: every input carries `now`, every effect is an
//! [`Output`] to drain.
//!
//! Split the way quinn-proto splits its connection:
//! - [`link`]: the connection lifecycle, a [`Link`](link::Link) enum that
//!   owns the socket (idle, fetching a token, connecting, handshake, ready,
//!   backoff), attempts and backoff;
//! - [`liveness`]: the watchdog, probation after freezes and sleeps, offline;
//! - [`receive`]: what server frames mean (transcripts, confirmations);
//! - [`send`]: the pump from the queue to the socket, pacing, keepalives;
//! - [`close`]: the bounded close sequence and the terminal states;
//! - [`timeline`]: stream time and finals shown once.
//!
//! The byte ledger lives in the queue. The public [`State`] is derived from
//! the link, the close sequence and the terminal state, never stored twice.

mod close;
mod link;
mod liveness;
mod pacer;
mod receive;
mod send;
mod timeline;
mod utterance;

use std::collections::VecDeque;
use std::time::Duration;

use super::backoff::Backoff;
use super::config::Config;
use super::error::{ConfigError, UsageError};
use super::event::{ErrorCode, Event, State, StateChange, Stats};
use super::io::{Credential, Input, Output, SocketId};
use super::protocol::{self, Auth, Parsed, Wire};
use super::queue::AudioQueue;
use super::rng::Rng;
use super::time::Instant;
use super::timer::{Timer, TimerTable};

use close::Closing;
use link::Link;
use pacer::Pacer;
use timeline::Finals;

/// Close code for connections we judge dead (private range).
pub const CLOSE_STALE: u16 = 4000;

/// Counters that are not the byte ledger (which the queue owns).
#[derive(Debug, Clone, Default)]
struct Counters {
    attempts: u64,
    reconnects: u64,
    keepalives_sent: u64,
    messages_received: u64,
    transcripts: u64,
    buffered_amount: u64,
    server_offset: Option<u64>,
    probes_failed: u64,
    duplicate_finals_suppressed: u64,
}

/// One audio stream to one backend, over any number of sockets.
///
/// Drive it with [`handle_input`](Session::handle_input), then drain
/// [`poll_output`](Session::poll_output) until it returns
/// [`Output::Timeout`]; call `handle_input(now, Input::Timeout)` at that
/// instant. Inputs MUST be fed in the order they happened.
#[derive(Debug)]
pub struct Session {
    cfg: Config,
    wire: &'static dyn Wire,
    url: String,
    link: Link,
    /// `closed` or `failed`, once reached: nothing more happens.
    ended: Option<State>,
    /// The last state announced in a `state` event.
    announced: State,
    /// Consecutive failed attempts (the backoff exponent and the budget).
    failures: u32,
    /// Times the session became ready.
    connections: u32,
    next_socket: u64,
    next_token: u64,
    token: Option<Credential>,
    timers: TimerTable,
    backoff: Backoff,
    queue: AudioQueue,
    closing: Option<Closing>,
    pacer: Pacer,
    /// The browser reports no network: audio waits in the queue.
    offline: bool,
    /// When a `freeze` (or `pagehide`) came, with no resume since.
    frozen: Option<Instant>,
    finals: Finals,
    utterances: utterance::Utterances,
    stream_id: String,
    out: VecDeque<Output>,
    now: Instant,
    counters: Counters,
    scratch: Vec<Parsed>,
}

impl std::fmt::Debug for dyn Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Session {
    /// A session in `idle`, validating the configuration.
    pub fn new(cfg: Config) -> Result<Session, ConfigError> {
        cfg.validate()?;
        let wire = cfg.provider.wire();
        if wire.auth() == Auth::FirstMessage && cfg.token.is_none() && !cfg.token_callback {
            return Err(ConfigError::new(
                "token",
                "undefined",
                "a token or getToken (this provider authenticates with its first message)",
            ));
        }
        let mut rng = Rng::new(cfg.seed);
        let stream_id = ["rt-", &super::text::hex16(rng.next_u64())].concat();
        Ok(Session {
            url: protocol::url(wire, &cfg.url, cfg.format(), cfg.language.as_deref()),
            wire,
            link: Link::Idle,
            ended: None,
            announced: State::Idle,
            failures: 0,
            connections: 0,
            next_socket: 1,
            next_token: 1,
            token: cfg.token.clone(),
            timers: TimerTable::default(),
            backoff: Backoff::new(cfg.reconnect.clone(), rng.next_u64()),
            queue: AudioQueue::new(cfg.chunk_samples(), cfg.ttl, cfg.max_bytes),
            closing: None,
            pacer: Pacer::new(cfg.replay_rate),
            offline: false,
            frozen: None,
            finals: Finals::default(),
            utterances: utterance::Utterances::default(),
            stream_id,
            out: VecDeque::new(),
            now: Instant::default(),
            counters: Counters::default(),
            scratch: Vec::new(),
            cfg,
        })
    }

    /// The current state, derived from the connection, the close sequence
    /// and whether the session ended.
    pub fn state(&self) -> State {
        if let Some(s) = self.ended {
            return s;
        }
        if self.closing.is_some() {
            return State::Closing;
        }
        match &self.link {
            Link::Idle => State::Idle,
            Link::FetchingToken(_) | Link::Connecting(_) => State::Connecting,
            Link::Handshake(_) => State::Authenticating,
            Link::Ready(..) if self.offline => State::Offline,
            Link::Ready(..) => State::Open,
            Link::Backoff => State::Reconnecting,
            Link::Standby => State::Standby,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters; see [`Stats`] for the conservation law they obey.
    /// The value returned may change after any `handle_input`.
    pub fn stats(&self) -> Stats {
        let l = self.queue.ledger();
        let c = &self.counters;
        Stats {
            bytes_pushed: l.pushed_bytes,
            bytes_sent: l.sent_bytes,
            bytes_acked: l.acked_bytes,
            bytes_queued: self.queue.queued_bytes(),
            bytes_dropped: l.dropped_bytes,
            bytes_resent: l.resent_bytes,
            chunks_pushed: l.pushed_chunks,
            chunks_sent: l.sent_chunks,
            chunks_queued: self.queue.queued_chunks(),
            chunks_dropped: l.dropped_chunks,
            chunks_replayed: l.replayed_chunks,
            audio_ms_dropped: l.dropped_ms,
            audio_ms_queued: self.queue.queued_bytes() as f64 / self.cfg.bytes_per_ms(),
            attempts: c.attempts,
            reconnects: c.reconnects,
            keepalives_sent: c.keepalives_sent,
            messages_received: c.messages_received,
            transcripts: c.transcripts,
            buffered_amount: c.buffered_amount,
            server_offset: c.server_offset,
            probes_failed: c.probes_failed,
            duplicate_finals_suppressed: c.duplicate_finals_suppressed,
            audio_ms_gated: self.gated_samples() as f64 * 2.0 / self.cfg.bytes_per_ms(),
        }
    }

    /// The utterance begun and not ended, if any (its id, as the
    /// [`Event::Utterance`] that resolves it will carry).
    pub fn current_utterance(&self) -> Option<u64> {
        self.utterances.active()
    }

    /// Bytes the queue holds (unsent plus unacknowledged): never more
    /// than `buffer.maxBytes`.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// The id the generic protocol resumes this stream under.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The next output. Drain until [`Output::Timeout`], which is always
    /// last and says when to call back with [`Input::Timeout`].
    #[must_use = "outputs are the session's effects: each must be carried out"]
    pub fn poll_output(&mut self) -> Output {
        let Some(o) = self.out.pop_front() else {
            // A deadline that passed while the page did not run (a freeze)
            // is due now, not in the past: the caller wakes at once.
            return Output::Timeout(self.timers.next().map(|t| t.max(self.now)));
        };
        if let Output::Send(id, frame) = &o {
            // What the caller hands to the socket from here on: the
            // baseline `bufferedAmount` samples are compared against.
            if let Some(conn) = self.link.conn_mut(*id) {
                conn.handed += frame.len() as u64;
            }
        }
        o
    }

    /// Feeds one input that happened at `now`. A `now` earlier than a
    /// previous one is treated as the previous one (clocks step back).
    ///
    /// `Err` means misuse (see [`UsageError`]) and changes nothing. Lost
    /// connections are never errors: they are events.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), UsageError> {
        let now = now.max(self.now);
        self.now = now;
        if let Input::BufferedAmount(id, bytes) = input {
            // A fresh sample must be seen before liveness is judged: a
            // stale one would make a drained buffer look stuck.
            self.on_buffered(now, id, bytes);
        }
        // Liveness first, against `now`, on EVERY input: the first event
        // after a frozen tab must see the freeze before anything else.
        self.check_liveness(now);
        match input {
            Input::Connect => self.handle_connect(now)?,
            Input::Audio(samples) => self.handle_audio(now, samples),
            Input::AudioLost(samples) => self.queue.lost(samples),
            Input::SocketOpened(id) => self.handle_opened(now, id),
            Input::SocketText(id, text) => self.handle_text(now, id, text),
            Input::SocketBinary(id, data) => self.handle_binary(now, id, data),
            Input::SocketClosed { id, code, reason } => self.handle_closed(now, id, code, reason),
            // Browsers follow an error with a close event, which decides;
            // if none comes, the connect timeout or the watchdog does.
            Input::SocketError(_) | Input::BufferedAmount(..) | Input::PageHidden => {}
            Input::Online => self.handle_online(now),
            Input::Offline => self.handle_offline(),
            Input::PageFrozen => self.frozen = Some(now),
            Input::PageResumed => {
                if self.frozen.take().is_some() {
                    self.start_probation(now, "page resumed after a freeze");
                }
            }
            Input::Slept(_) => self.start_probation(now, "machine woke from sleep"),
            Input::Token(req, result) => self.handle_token(now, req, result)?,
            Input::Timeout => self.handle_timeout(now),
            Input::Close { flush, timeout } => self.handle_close(now, flush, timeout),
            Input::BeginUtterance { pre_roll } => {
                if self.ended.is_some() || self.closing.is_some() {
                    return Err(UsageError::Closed);
                }
                if self.utterances.active().is_some() {
                    return Err(UsageError::UtteranceActive);
                }
                self.begin_utterance(now, pre_roll);
                if matches!(self.link, Link::Standby) {
                    self.start_attempt(now);
                }
            }
            Input::EndUtterance => {
                if self.end_utterance(now).is_none() {
                    return Err(UsageError::NoUtterance);
                }
            }
        }
        self.after_input(now);
        debug_assert!(self.queue.conserved(), "the byte ledger must balance");
        Ok(())
    }

    fn handle_audio(&mut self, now: Instant, samples: &[i16]) {
        match self.state() {
            // Close is terminal: later audio is reported, never lost silently.
            State::Failed => self
                .queue
                .refuse(samples.len() as u64, super::event::DropReason::Failed),
            State::Closed | State::Closing => self
                .queue
                .refuse(samples.len() as u64, super::event::DropReason::Closed),
            _ if self.gated() => self.hold_pre_roll(samples),
            _ => {
                let waited = self.link.ready().is_none();
                self.queue.push(now, samples, waited);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for t in self.timers.take_expired(now) {
            match t {
                Timer::Connect => self.attempt_timed_out(now),
                Timer::Reconnect => self.start_attempt(now),
                Timer::ResetAttempts => self.failures = 0,
                // Keepalive, pacing and expiry run in after_input.
                Timer::Watchdog | Timer::Pace | Timer::Expiry => {}
                Timer::CloseDeadline => self.close_deadline(),
                Timer::Probation => self.probation_expired(now),
                Timer::Utterance => self.settle_utterances(now, true),
            }
            if self.ended.is_some() {
                return;
            }
        }
    }

    /// Runs after every input: expiry, sending, keepalive, events, timers.
    fn after_input(&mut self, now: Instant) {
        if self.ended.is_none() {
            self.queue.expire(now);
            self.pump(now);
            self.keepalive(now);
            self.end_linger_when_confirmed();
            self.settle_utterances(now, false);
            self.stand_by_when_idle();
        }
        self.report_drops();
        self.arm_timers();
    }

    // --- events -------------------------------------------------------------

    /// Announces the derived state when it changed (and every new
    /// `reconnecting`, which carries a new attempt and delay).
    fn announce(&mut self, reason: Option<String>, retry_in: Option<Duration>) {
        let state = self.state();
        if state == self.announced && state != State::Reconnecting {
            return;
        }
        let previous = std::mem::replace(&mut self.announced, state);
        self.emit(Event::State(StateChange {
            state,
            previous,
            attempt: self.failures,
            retry_in,
            reason,
        }));
    }

    fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn emit_error(&mut self, code: ErrorCode, message: String, fatal: bool) {
        self.emit(Event::Error {
            code,
            message,
            fatal,
        });
    }

    fn report_drops(&mut self) {
        for d in self.queue.take_reports(self.cfg.bytes_per_ms()) {
            self.emit(Event::Dropped(d));
        }
    }

    /// The socket `id`, if it is the current one.
    fn current(&mut self, id: SocketId) -> Option<&mut timeline::Conn> {
        self.link.conn_mut(id)
    }
}
